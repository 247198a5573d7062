"""Stage `roles`: the functions' IAM execution role, least privilege.

IAM has no regions, so this is one global node that every region's `functions` node waits for. The role
may be assumed by Lambda only; its one inline policy allows `dynamodb:PutItem` and `dynamodb:GetItem` on
the stack's table in the configured regions, and writing to its functions' own log groups. Anything else
found on the role (another inline policy, an attached managed policy, a wider trust) is drift: shown in
the plan and removed by `up`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion import app, names
from multiregion.engine import GLOBAL, TAG_STACK, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups.functions import RoleState, canonical_policy, read_role
from multiregion.plan import Call, JsonText, encode_json

LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem"]
INLINE_POLICY_LIMIT = 10_240  # IAM's limit for a role's inline policies, in characters without whitespace


@dataclass(frozen=True)
class RoleSpec:
    """One execution role as the stack wants it."""

    name: str
    components: tuple[str, ...]  # the functions that run with it
    policy: dict[str, Any]

    @property
    def policy_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class RolesSnapshot:
    roles: dict[str, RoleState | None] = field(default_factory=dict)  # role name -> what IAM holds


@dataclass(frozen=True)
class RolesStatus:
    roles: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {"roles": dict(self.roles)}


def role_specs(env: Env) -> tuple[RoleSpec, ...]:
    components = tuple(f.component for f in app.functions(env.config))
    return (RoleSpec(names.role_name(env.config), components, permissions_policy(env, components)),)


def permissions_policy(env: Env, components: tuple[str, ...]) -> dict[str, Any]:
    """The role's only permissions: the table's items and the functions' own logs, in configured regions."""
    config, account, partition = env.config, env.account, env.partition
    tables = [names.table_arn(config, account, partition, r) for r in config.regions]

    def document(log_regions: list[str]) -> dict[str, Any]:
        logs = []
        for region in log_regions:
            for component in components:
                group = names.log_group_arn(config, account, partition, region, component)
                logs += [group, f"{group}:*"]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ItemTable", "Effect": "Allow", "Action": TABLE_ACTIONS, "Resource": tables},
                {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS, "Resource": logs},
            ],
        }

    policy = document(list(config.regions))
    if len(encode_json(policy)) > INLINE_POLICY_LIMIT:
        # Many regions and a long service name overflow IAM's inline policy size: name the log groups in
        # every region instead (still only this stack's functions' own groups).
        policy = document(["*"])
    return policy


class RolesStage(Stage[RolesSnapshot]):
    name = "roles"
    help = "The functions' least-privilege IAM execution role (IAM is global)."
    scope = "global"

    def read(self, aws: Reader, region: str) -> RolesSnapshot:
        specs = role_specs(aws.env)
        return RolesSnapshot({s.name: read_role(aws, s.name, (s.policy_name,)) for s in specs})

    def diff(self, env: Env, region: str, snapshot: RolesSnapshot, inputs: Inputs) -> NodePlan:
        changes = []
        arns: dict[str, str] = {}
        for spec in role_specs(env):
            state = snapshot.roles.get(spec.name)
            changes += self._plan_role(env, spec, state)
            for component in spec.components:
                arns[component] = names.role_arn(env.config, env.account, env.partition) \
                    if state is None else state.arn
        return NodePlan(changes=tuple(changes), outputs={"role_arns": arns})

    def _plan_role(self, env: Env, spec: RoleSpec, state: RoleState | None) -> list[Any]:
        resource = f"role {spec.name}"
        put_policy = Call("iam", env.config.primary, "put_role_policy",
                          {"RoleName": spec.name, "PolicyName": spec.policy_name,
                           "PolicyDocument": JsonText(spec.policy)})
        if state is None:
            create = Call("iam", env.config.primary, "create_role", {
                "RoleName": spec.name, "AssumeRolePolicyDocument": JsonText(LAMBDA_TRUST_POLICY),
                "Description": f"multiregion {env.config.service}: the item API's functions",
                "Tags": [{"Key": k, "Value": v} for k, v in env.tags().items()]})
            return [self.change(GLOBAL, "create", resource,
                                f"assumed by Lambda; PutItem/GetItem on table {env.config.table.name} in "
                                f"{len(env.config.regions)} region(s); own log groups", create, put_policy)]
        if state.tags.get(TAG_STACK) != env.config.service:
            raise Conflict(self.name, GLOBAL, resource, f"exists but is not tagged {TAG_STACK}={env.config.service}",
                           "it is left untouched; to adopt it, add that tag to the role")
        reasons, ops = [], []
        iam = ("iam", env.config.primary)
        if canonical_policy(state.trust or {}) != canonical_policy(LAMBDA_TRUST_POLICY):
            reasons.append("trust policy differs: only lambda.amazonaws.com may assume it")
            ops.append(Call(*iam, "update_assume_role_policy",
                            {"RoleName": spec.name, "PolicyDocument": JsonText(LAMBDA_TRUST_POLICY)}))
        current = state.policies.get(spec.policy_name)
        if current is None or canonical_policy(current) != canonical_policy(spec.policy):
            reasons.append(f"inline policy {spec.policy_name} differs from least privilege" if current is not None
                           else f"inline policy {spec.policy_name} missing")
            ops.append(put_policy)
        extra = [n for n in state.inline if n != spec.policy_name]
        if extra:
            reasons.append(f"drift: extra inline policies {', '.join(extra)}")
            ops += [Call(*iam, "delete_role_policy", {"RoleName": spec.name, "PolicyName": n},
                         done_if=("NoSuchEntity",)) for n in extra]
        if state.attached:
            reasons.append(f"drift: attached policies {', '.join(state.attached)}")
            ops += [Call(*iam, "detach_role_policy", {"RoleName": spec.name, "PolicyArn": a},
                         done_if=("NoSuchEntity",)) for a in state.attached]
        missing = {k: v for k, v in env.tags().items() if state.tags.get(k) != v}
        if missing:
            reasons.append(f"tags {', '.join(missing)}")
            ops.append(Call(*iam, "tag_role", {"RoleName": spec.name,
                                               "Tags": [{"Key": k, "Value": v} for k, v in missing.items()]}))
        return [self.change(GLOBAL, "update", resource, "; ".join(reasons), *ops)] if ops else []

    def destroy(self, env: Env, region: str, snapshot: RolesSnapshot) -> NodePlan:
        changes, warnings = [], []
        iam = ("iam", env.config.primary)
        for spec in role_specs(env):
            state = snapshot.roles.get(spec.name)
            if state is None:
                continue
            if state.tags.get(TAG_STACK) != env.config.service:
                warnings.append(f"role {spec.name} is not this stack's; left alone")
                continue
            ops = [Call(*iam, "delete_role_policy", {"RoleName": spec.name, "PolicyName": n}, done_if=("NoSuchEntity",))
                   for n in state.inline]
            ops += [Call(*iam, "detach_role_policy", {"RoleName": spec.name, "PolicyArn": a}, done_if=("NoSuchEntity",))
                    for a in state.attached]
            ops.append(Call(*iam, "delete_role", {"RoleName": spec.name}, done_if=("NoSuchEntity",)))
            changes.append(self.change(GLOBAL, "delete", f"role {spec.name}", "down, after every function", *ops))
        return NodePlan(changes=tuple(changes), warnings=tuple(warnings))

    def status(self, aws: Reader, region: str) -> RolesStatus:
        snapshot = self.read(aws, region)
        return RolesStatus({name: state.arn if state else None for name, state in snapshot.roles.items()})
