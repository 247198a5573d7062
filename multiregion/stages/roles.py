"""Stage `roles`: one least-privilege IAM execution role per function and region.

Each role may be assumed by Lambda only. Its one inline policy allows exactly what the function's route
declares on the table in the function's own region (`read`: GetItem and Query; `write`: PutItem,
UpdateItem and DeleteItem; `none`: nothing), and writing to the function's own log group there (the tool
creates the groups, so no role may create one). The health function gets its logs only, plus GetItem
when `health_check.deep` asks it to read the table.

IAM is global, but the roles are per region, so each region's node converges its own: a region's
functions wait only for their own roles. Anything else found on a role (another inline policy, an
attached managed policy, a wider trust) is drift: shown in the plan and removed by `up`.

Earlier releases gave the whole stack one role, `{service}-lambda`. It is deleted once no function of the
stack runs with it any more: the first `up` moves the functions to their own roles, the next removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion import app, names
from multiregion.engine import GLOBAL, TAG_STACK, Change, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups.functions import RoleState, canonical_policy, get_function, read_role
from multiregion.plan import Call, JsonText

LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]
TABLE_ACTIONS = {"read": ["dynamodb:GetItem", "dynamodb:Query"],
                 "write": ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                 "none": []}
DEEP_HEALTH_ACTIONS = ["dynamodb:GetItem"]
POLICY_NAME = "least-privilege"


@dataclass(frozen=True)
class RoleSpec:
    """One execution role as the stack wants it."""

    name: str
    component: str
    policy: dict[str, Any]
    access: str


@dataclass(frozen=True)
class RolesSnapshot:
    roles: dict[str, RoleState | None] = field(default_factory=dict)  # role name -> what IAM holds
    legacy: RoleState | None = None  # the stack-wide role of earlier releases (primary node only)
    legacy_users: tuple[str, ...] = ()  # functions still running with it


@dataclass(frozen=True)
class RolesStatus:
    roles: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {"roles": dict(self.roles)}


def role_specs(env: Env, region: str) -> tuple[RoleSpec, ...]:
    specs = []
    for function in app.functions(env.config):
        access = "none" if function.component == app.HEALTH else function.table_access
        actions = list(TABLE_ACTIONS[access])
        if function.component == app.HEALTH and env.config.health_check.deep:
            access, actions = "deep health check", list(DEEP_HEALTH_ACTIONS)
        specs.append(RoleSpec(names.role_name(env.config, function.component, region), function.component,
                              permissions_policy(env, region, function.component, actions), access))
    return tuple(specs)


def permissions_policy(env: Env, region: str, component: str, table_actions: list[str]) -> dict[str, Any]:
    """A function's only permissions: its declared table actions in its region, and its own log group."""
    config, account, partition = env.config, env.account, env.partition
    group = names.log_group_arn(config, account, partition, region, component)
    statements: list[dict[str, Any]] = [
        {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS, "Resource": [group, f"{group}:*"]}]
    if table_actions:
        statements.insert(0, {"Sid": "Table", "Effect": "Allow", "Action": sorted(table_actions),
                              "Resource": [names.table_arn(config, account, partition, region)]})
    return {"Version": "2012-10-17", "Statement": statements}


class RolesStage(Stage[RolesSnapshot]):
    name = "roles"
    help = "One least-privilege IAM execution role per function and region (the function's own table and logs)."
    scope = "region"

    def read(self, aws: Reader, region: str) -> RolesSnapshot:
        roles = {s.name: read_role(aws, s.name, (POLICY_NAME,)) for s in role_specs(aws.env, region)}
        if region != aws.config.primary:
            return RolesSnapshot(roles)
        legacy_name = names.legacy_role_name(aws.config)
        legacy = read_role(aws, legacy_name, ())
        users: list[str] = []
        if legacy is not None:
            for r in aws.config.regions:
                for function in app.functions(aws.config):
                    found = get_function(aws, r, names.function_name(aws.config, function.component))
                    if found and found["Configuration"].get("Role") == legacy.arn:
                        users.append(f"{r} {names.function_name(aws.config, function.component)}")
        return RolesSnapshot(roles, legacy, tuple(users))

    def diff(self, env: Env, region: str, snapshot: RolesSnapshot, inputs: Inputs) -> NodePlan:
        changes: list[Change] = []
        arns: dict[str, str] = {}
        for spec in role_specs(env, region):
            state = snapshot.roles.get(spec.name)
            changes += self._plan_role(env, region, spec, state)
            arns[spec.component] = state.arn if state is not None else \
                names.role_arn(env.config, env.account, env.partition, spec.component, region)
        legacy_changes, warnings = self._plan_legacy(env, snapshot)
        return NodePlan(changes=tuple(changes + legacy_changes), outputs={"role_arns": arns}, warnings=warnings)

    def _plan_role(self, env: Env, region: str, spec: RoleSpec, state: RoleState | None) -> list[Change]:
        resource = f"role {spec.name}"
        put_policy = Call("iam", region, "put_role_policy",
                          {"RoleName": spec.name, "PolicyName": POLICY_NAME, "PolicyDocument": JsonText(spec.policy)})
        if state is None:
            create = Call("iam", region, "create_role", {
                "RoleName": spec.name, "Path": names.ROLE_PATH,
                "AssumeRolePolicyDocument": JsonText(LAMBDA_TRUST_POLICY),
                "Description": f"multiregion {env.config.service}: function {spec.component} in {region}",
                "Tags": [{"Key": k, "Value": v} for k, v in env.tags(region).items()]})
            what = f"table access {spec.access}" if spec.access != "none" else "no table access"
            return [self.change(region, "create", resource, f"assumed by Lambda; {what} in {region}; own log group",
                                create, put_policy)]
        if state.tags.get(TAG_STACK) != env.config.service:
            raise Conflict(self.name, region, resource, f"exists but is not tagged {TAG_STACK}={env.config.service}",
                           "it is left untouched; to adopt it, add that tag to the role")
        reasons, ops = [], []
        if canonical_policy(state.trust or {}) != canonical_policy(LAMBDA_TRUST_POLICY):
            reasons.append("trust policy differs: only lambda.amazonaws.com may assume it")
            ops.append(Call("iam", region, "update_assume_role_policy",
                            {"RoleName": spec.name, "PolicyDocument": JsonText(LAMBDA_TRUST_POLICY)}))
        current = state.policies.get(POLICY_NAME)
        if current is None or canonical_policy(current) != canonical_policy(spec.policy):
            reasons.append(f"inline policy {POLICY_NAME} differs from least privilege" if current is not None
                           else f"inline policy {POLICY_NAME} missing")
            ops.append(put_policy)
        extra = [n for n in state.inline if n != POLICY_NAME]
        if extra:
            reasons.append(f"drift: extra inline policies {', '.join(extra)}")
            ops += [Call("iam", region, "delete_role_policy", {"RoleName": spec.name, "PolicyName": n},
                         done_if=("NoSuchEntity",)) for n in extra]
        if state.attached:
            reasons.append(f"drift: attached policies {', '.join(state.attached)}")
            ops += [Call("iam", region, "detach_role_policy", {"RoleName": spec.name, "PolicyArn": a},
                         done_if=("NoSuchEntity",)) for a in state.attached]
        missing = {k: v for k, v in env.tags(region).items() if state.tags.get(k) != v}
        if missing:
            reasons.append(f"tags {', '.join(missing)}")
            ops.append(Call("iam", region, "tag_role", {"RoleName": spec.name,
                                                        "Tags": [{"Key": k, "Value": v} for k, v in missing.items()]}))
        return [self.change(region, "update", resource, "; ".join(reasons), *ops)] if ops else []

    def _plan_legacy(self, env: Env, snapshot: RolesSnapshot) -> tuple[list[Change], tuple[str, ...]]:
        legacy = snapshot.legacy
        if legacy is None or legacy.tags.get(TAG_STACK) != env.config.service:
            return [], ()
        if snapshot.legacy_users:
            return [], (f"role {legacy.name} (one role for the whole stack, from an earlier release) is kept while "
                        f"{len(snapshot.legacy_users)} function(s) still run with it; the next `up` removes it",)
        return [self.change(GLOBAL, "delete", f"role {legacy.name}",
                            "replaced by one role per function and region; no function runs with it any more",
                            *self._delete_ops(env.config.primary, legacy))], ()

    @staticmethod
    def _delete_ops(region: str, state: RoleState) -> list[Call]:
        ops = [Call("iam", region, "delete_role_policy", {"RoleName": state.name, "PolicyName": n},
                    done_if=("NoSuchEntity",)) for n in state.inline]
        ops += [Call("iam", region, "detach_role_policy", {"RoleName": state.name, "PolicyArn": a},
                     done_if=("NoSuchEntity",)) for a in state.attached]
        ops.append(Call("iam", region, "delete_role", {"RoleName": state.name}, done_if=("NoSuchEntity",)))
        return ops

    def destroy(self, env: Env, region: str, snapshot: RolesSnapshot) -> NodePlan:
        changes, warnings = [], []
        states = [s for s in snapshot.roles.values() if s is not None]
        if snapshot.legacy is not None:
            states.append(snapshot.legacy)
        for state in states:
            if state.tags.get(TAG_STACK) != env.config.service:
                warnings.append(f"role {state.name} is not this stack's; left alone")
                continue
            changes.append(self.change(region if state is not snapshot.legacy else GLOBAL, "delete",
                                       f"role {state.name}", "down, after the region's functions",
                                       *self._delete_ops(region, state)))
        return NodePlan(changes=tuple(changes), warnings=tuple(warnings))

    def status(self, aws: Reader, region: str) -> RolesStatus:
        snapshot = self.read(aws, region)
        return RolesStatus({name: state.arn if state else None for name, state in snapshot.roles.items()})
