"""Stage `functions`: the app's Lambda functions in every region.

Functions are compared before anything is written: code by `CodeSha256` against the local deterministic
zip, configuration field by field, the environment as a whole (UpdateFunctionConfiguration replaces the
whole map). A health function whose `STATUS` was flipped (a failover rehearsal that did not restore, or a
hand edit), and reserved concurrency 0 left behind by a killed outage rehearsal, are reported as drift in
the plan and repaired by `up`, never reset silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion import app, names
from multiregion.engine import TAG_STACK, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups.functions import get_function, is_ours, log_groups, reserved_concurrency, wait_updated
from multiregion.plan import GONE, Blob, Call, Retry, Wait

# A new role cannot be assumed by Lambda for a while after CreateRole (IAM propagation, usually seconds;
# Terraform's AWS provider allows five minutes), and its permissions may lag the same way.
ROLE_PROPAGATION = (
    Retry(("InvalidParameterValueException",), "the new role has not propagated to Lambda yet",
          message="cannot be assumed by Lambda", budget=300.0, duration="iam_role_assumable"),
    Retry(("InvalidParameterValueException",), "the role's permissions have not propagated yet",
          message="execution role does not have permissions", budget=300.0),
)
# Lambda takes one update at a time; a call made while another is in progress is refused.
UPDATE_IN_PROGRESS = Retry(("ResourceConflictException",), "another update of the function is in progress",
                           budget=300.0)
CONFIG_LABELS = {"Runtime": "runtime", "Handler": "handler", "Role": "role", "MemorySize": "memory",
                 "Timeout": "timeout"}


@dataclass(frozen=True)
class DeployedFunction:
    function: dict[str, Any] | None  # GetFunction's answer
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class FunctionsSnapshot:
    functions: dict[str, DeployedFunction] = field(default_factory=dict)  # component -> what Lambda holds
    log_groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # log group name -> DescribeLogGroups


@dataclass(frozen=True)
class FunctionStatus:
    code: str
    state: str | None
    last_update: str | None


@dataclass(frozen=True)
class FunctionsStatus:
    functions: dict[str, FunctionStatus | None]
    health_status: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"functions": {n: (vars(f) if f else None) for n, f in self.functions.items()},
                "health_status": self.health_status}


def environment_drift(deployed: dict[str, str], wanted: dict[str, str]) -> list[str]:
    """Why a deployed environment differs. STATUS and unknown variables are never in the config, so any
    difference there is drift (someone changed the function), reported as such."""
    reasons = []
    for key, value in wanted.items():
        current = deployed.get(key)
        if current == value:
            continue
        shown = "unset" if current is None else current
        if key == "STATUS":
            reasons.append(f"drift: STATUS is {shown}, configured {value}")
        else:
            reasons.append(f"environment {key} {shown} -> {value}")
    reasons += [f"drift: unexpected variable {key}" for key in sorted(deployed) if key not in wanted]
    return reasons


class FunctionsStage(Stage[FunctionsSnapshot]):
    name = "functions"
    help = "The app's Lambda functions in every region, from deterministic zips."
    scope = "region"
    depends_on = ("roles",)

    def read(self, aws: Reader, region: str) -> FunctionsSnapshot:
        deployed = {}
        for function in app.functions(aws.config):
            name = names.function_name(aws.config, function.component)
            found = get_function(aws, region, name)
            concurrency = reserved_concurrency(aws, region, name) if found and is_ours(aws.config.service, found) \
                else None
            deployed[function.component] = DeployedFunction(found, concurrency)
        return FunctionsSnapshot(deployed, log_groups(aws, region, f"/aws/lambda/{aws.config.service}-"))

    def diff(self, env: Env, region: str, snapshot: FunctionsSnapshot, inputs: Inputs) -> NodePlan:
        role_arns = inputs.get("roles", region, "role_arns") or {}
        changes: list[Any] = []
        waits: list[Wait] = []
        for function in app.functions(env.config):
            group = self._plan_log_group(env, region, function, snapshot.log_groups)
            if group is not None:
                changes.append(group)
            deployed = snapshot.functions.get(function.component, DeployedFunction(None))
            change, settle = self._plan_function(env, region, function, deployed, role_arns[function.component])
            if change is not None:
                changes.append(change)
            elif settle is not None:
                waits.append(settle)
        return NodePlan(changes=tuple(changes), waits=tuple(waits))

    def _plan_log_group(self, env: Env, region: str, function: app.Function,
                        groups: dict[str, dict[str, Any]]) -> Any:
        """The function's log group, created by the tool with its retention (never implicitly by Lambda, which
        would keep logs forever; and the roles may not create groups)."""
        name = names.log_group(env.config, function.component)
        retention = function.log_retention_days
        current = groups.get(name)
        set_retention = Call("logs", region, "put_retention_policy",
                             {"logGroupName": name, "retentionInDays": retention})
        if current is None:
            return self.change(region, "create", f"log group {name}", f"retention {retention} days",
                               Call("logs", region, "create_log_group", {"logGroupName": name,
                                                                         "tags": env.tags(region)},
                                    done_if=("ResourceAlreadyExistsException",)), set_retention)
        if current.get("retentionInDays") != retention:
            shown = current.get("retentionInDays") or "never expire"
            return self.change(region, "update", f"log group {name}", f"retention {shown} -> {retention} days",
                               set_retention)
        return None

    def _plan_function(self, env: Env, region: str, function: app.Function, deployed: DeployedFunction,
                       role_arn: str) -> tuple[Any, Wait | None]:
        config = env.config
        name = names.function_name(config, function.component)
        package = env.packages[function.component]
        environment = dict(function.environment)
        if deployed.function is None:
            create = Call("lambda", region, "create_function", {
                "FunctionName": name, "Runtime": function.runtime, "Role": role_arn, "Handler": function.handler,
                "Code": {"ZipFile": Blob(package.zip, f"zip of {name}")},
                "MemorySize": function.memory, "Timeout": function.timeout,
                "Environment": {"Variables": environment}, "Architectures": [function.architecture],
                "Description": f"multiregion {config.service}: {', '.join(r.key for r in function.routes)}"[:256],
                "Tags": env.tags(region)}, retry=ROLE_PROPAGATION)
            reason = (f"{function.runtime}, {function.memory} MB, {function.timeout} s, "
                      f"{', '.join(r.key for r in function.routes)}, code {package.short}")
            return self.change(region, "create", f"function {name}", reason, create,
                               wait_updated(name, region).expecting("lambda_pending")), None
        if not is_ours(config.service, deployed.function):
            raise Conflict(self.name, region, f"function {name}",
                           f"exists but is not tagged {TAG_STACK}={config.service}",
                           "it is left untouched; to adopt it, add that tag to the function")
        current = deployed.function["Configuration"]
        settled = current.get("State", "Active") == "Active" and \
            current.get("LastUpdateStatus", "Successful") == "Successful"
        reasons: list[str] = []
        ops: list[Any] = [] if settled else [wait_updated(name, region)]
        architectures = current.get("Architectures") or ["x86_64"]
        if current.get("CodeSha256") != package.sha256 or architectures != [function.architecture]:
            if current.get("CodeSha256") != package.sha256:
                reasons.append(f"code {str(current.get('CodeSha256', ''))[:8]} -> {package.short}")
            if architectures != [function.architecture]:
                reasons.append(f"architecture {'/'.join(architectures)} -> {function.architecture}")
            ops += [Call("lambda", region, "update_function_code",
                         {"FunctionName": name, "ZipFile": Blob(package.zip, f"zip of {name}"),
                          "Architectures": [function.architecture]},
                         retry=(UPDATE_IN_PROGRESS,)), wait_updated(name, region).expecting("lambda_update")]
        settings = self._configuration_diff(current, function, role_arn, environment, reasons)
        if settings:
            ops += [Call("lambda", region, "update_function_configuration", {"FunctionName": name, **settings},
                         retry=(UPDATE_IN_PROGRESS, *ROLE_PROPAGATION)),
                    wait_updated(name, region).expecting("lambda_update")]
        tags = {k: v for k, v in env.tags(region).items() if (deployed.function.get("Tags") or {}).get(k) != v}
        if tags:
            reasons.append(f"tags {', '.join(tags)}")
            ops.append(Call("lambda", region, "tag_resource",
                            {"Resource": names.function_arn(config, env.account, env.partition, region,
                                                            function.component), "Tags": tags}))
        # Reserved concurrency 0 is how an outage is rehearsed; left behind (a killed failover-test), it
        # throttles every call while everything else looks converged.
        if deployed.reserved_concurrency == 0:
            reasons.append("drift: reserved concurrency 0 throttles every call -> removed")
            ops.append(Call("lambda", region, "delete_function_concurrency", {"FunctionName": name},
                            retry=(UPDATE_IN_PROGRESS,)))
        if not reasons:
            return None, None if settled else wait_updated(name, region)
        return self.change(region, "update", f"function {name}", "; ".join(reasons), *ops), None

    @staticmethod
    def _configuration_diff(current: dict[str, Any], function: app.Function, role_arn: str,
                            environment: dict[str, str], reasons: list[str]) -> dict[str, Any]:
        """The UpdateFunctionConfiguration arguments that differ (reasons appended), {} when none does."""
        wanted = {"Runtime": function.runtime, "Handler": function.handler, "Role": role_arn,
                  "MemorySize": function.memory, "Timeout": function.timeout}
        update: dict[str, Any] = {}
        for key, value in wanted.items():
            if current.get(key) != value:
                update[key] = value
                reasons.append(f"{CONFIG_LABELS[key]} {current.get(key)} -> {value}")
        env_reasons = environment_drift((current.get("Environment") or {}).get("Variables") or {}, environment)
        if env_reasons:
            # UpdateFunctionConfiguration replaces the whole map: send all of it.
            update["Environment"] = {"Variables": environment}
            reasons.extend(env_reasons)
        return update

    def destroy(self, env: Env, region: str, snapshot: FunctionsSnapshot) -> NodePlan:
        changes, warnings = [], []
        for function in app.functions(env.config):
            deployed = snapshot.functions.get(function.component, DeployedFunction(None)).function
            name = names.function_name(env.config, function.component)
            if deployed is None:
                continue
            if not is_ours(env.config.service, deployed):
                warnings.append(f"[{region}] function {name} is not this stack's; left alone")
                continue
            changes.append(self.change(region, "delete", f"function {name}", "down",
                                       Call("lambda", region, "delete_function", {"FunctionName": name},
                                            retry=(UPDATE_IN_PROGRESS,), done_if=("ResourceNotFoundException",)),
                                       Wait(f"function {name} deleted", "lambda", region,
                                            "get_function_configuration", {"FunctionName": name}, "State",
                                            (GONE,), gone=("ResourceNotFoundException",))))
        ours = [names.log_group(env.config, f.component) for f in app.functions(env.config)]
        groups = [g for g in ours if g in snapshot.log_groups]
        if groups and env.delete_data:
            changes += [self.change(region, "delete", f"log group {g}", "down --delete-data",
                                    Call("logs", region, "delete_log_group", {"logGroupName": g},
                                         done_if=("ResourceNotFoundException",))) for g in groups]
        elif groups:
            warnings.append(f"[{region}] {len(groups)} log group(s) of the stack's functions are kept with their "
                            "logs (pass --delete-data to delete them)")
        return NodePlan(changes=tuple(changes), warnings=tuple(warnings))

    def status(self, aws: Reader, region: str) -> FunctionsStatus:
        functions: dict[str, FunctionStatus | None] = {}
        health_status = None
        for function in app.functions(aws.config):
            name = names.function_name(aws.config, function.component)
            found = get_function(aws, region, name)
            if found is None:
                functions[name] = None
                continue
            config = found["Configuration"]
            functions[name] = FunctionStatus(str(config.get("CodeSha256", ""))[:8], config.get("State"),
                                             config.get("LastUpdateStatus"))
            if function.component == app.HEALTH:
                health_status = ((config.get("Environment") or {}).get("Variables") or {}).get("STATUS")
        return FunctionsStatus(functions, health_status)
