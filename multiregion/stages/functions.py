"""Stage `functions`: one IAM role for the stack, and the item API's three Lambda functions per region.

The role is global (IAM has no regions), least privilege: `dynamodb:PutItem` and `dynamodb:GetItem` on the
stack's table in the configured regions, and writing to its functions' own log groups. Only the primary's
node lists role changes in the plan (region "global"), but every region's node ensures the role before it
creates or updates a function, once per run through `ctx.memo`, since the region nodes run in parallel.

Functions are compared before anything is written: code by `CodeSha256` against the local deterministic
zip, configuration field by field. A health function whose `STATUS` was flipped (a failover rehearsal that
did not restore, or a hand edit) is reported as drift in the plan, never reset silently.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from multiregion import packaging
from multiregion.aws import absent_as_none, error_code
from multiregion.engine import GLOBAL, TAG_STACK, Change, Conflict, Context, Stage, StepError

RUNTIME = "python3.12"
COMPONENTS = tuple(packaging.PACKAGES)  # put, get, health
HEALTH = "health"
HEALTH_STATUS = "200"
LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem"]
# A new role cannot be assumed by Lambda for about ten seconds: CreateFunction is retried after these
# pauses (about 45 s in all) before the error is reported.
ROLE_PROPAGATION_DELAYS = (1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0)
# `down`: how long the primary waits for the other regions' functions to go before deleting the role.
ROLE_DELETE_WAIT = 180.0


# ------------------------------------------------------------------------------------- shared helpers


def caller_identity(ctx: Context) -> tuple[str, str]:
    """(account id, partition) of the credentials in use, asked once per run."""

    def ask() -> tuple[str, str]:
        identity = ctx.clients("sts", ctx.config.primary).get_caller_identity()
        return identity["Account"], identity["Arn"].split(":")[1]

    return ctx.memo(("sts", "caller"), ask)


def function_name(ctx: Context, component: str) -> str:
    return ctx.config.name(component)


def function_arn(ctx: Context, region: str, component: str) -> str:
    account, partition = caller_identity(ctx)
    return f"arn:{partition}:lambda:{region}:{account}:function:{function_name(ctx, component)}"


def role_name(ctx: Context) -> str:
    return ctx.config.name("lambda")


def role_arn(ctx: Context) -> str:
    account, partition = caller_identity(ctx)
    return f"arn:{partition}:iam::{account}:role/{role_name(ctx)}"


def environment(ctx: Context, component: str) -> dict[str, str]:
    """The function's whole environment. HASH_KEY only when the table's key is not the API's `id`."""
    env = {"TABLE_NAME": ctx.config.table.name}
    if ctx.config.table.hash_key != "id":
        env["HASH_KEY"] = ctx.config.table.hash_key
    if component == HEALTH:
        env["STATUS"] = HEALTH_STATUS
    return env


INLINE_POLICY_LIMIT = 10_240  # IAM's limit for a role's inline policies, in characters without whitespace


def permissions_policy(ctx: Context) -> dict[str, Any]:
    """The role's only permissions: the table's items and the functions' own logs, in configured regions."""
    account, partition = caller_identity(ctx)
    regions = ctx.config.regions
    tables = [f"arn:{partition}:dynamodb:{r}:{account}:table/{ctx.config.table.name}" for r in regions]

    def document(log_regions: list[str]) -> dict[str, Any]:
        logs = []
        for region in log_regions:
            for component in COMPONENTS:
                group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{function_name(ctx, component)}"
                logs += [group, f"{group}:*"]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ItemTable", "Effect": "Allow", "Action": TABLE_ACTIONS, "Resource": tables},
                {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS, "Resource": logs},
            ],
        }

    policy = document(list(regions))
    if len(json.dumps(policy, separators=(",", ":"))) > INLINE_POLICY_LIMIT:
        # Many regions and a long service name overflow IAM's inline policy size: name the log groups in
        # every region instead (still only this stack's functions' own groups).
        policy = document(["*"])
    return policy


def get_function(ctx: Context, region: str, name: str) -> dict[str, Any] | None:
    """GetFunction's answer (Configuration, Tags, Concurrency), or None when there is no such function."""
    return absent_as_none(lambda: ctx.clients("lambda", region).get_function(FunctionName=name),
                          "ResourceNotFoundException")


def wait_function_updated(ctx: Context, region: str, name: str, stage: str = "functions") -> None:
    """`function_updated_v2` semantics: State Active and LastUpdateStatus Successful; Failed is an error."""

    def ready() -> tuple[bool, str]:
        function = get_function(ctx, region, name)
        if function is None:
            raise StepError(stage, region, f"function {name}", "disappeared while being converged", "run `up` again")
        config = function["Configuration"]
        state, update = config.get("State", "Active"), config.get("LastUpdateStatus", "Successful")
        if state == "Failed" or update == "Failed":
            reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or "no reason given"
            raise StepError(stage, region, f"function {name}", f"state {state}, last update {update}: {reason}",
                            "fix the cause, then run `up` again")
        return state == "Active" and update == "Successful", f"{state}, last update {update}"

    ctx.wait_until(f"function {name} updated", region, ready)


def is_ours(ctx: Context, function: dict[str, Any]) -> bool:
    return (function.get("Tags") or {}).get(TAG_STACK) == ctx.config.service


def _canonical(document: Any) -> Any:
    """A policy document in a comparable form: parsed, with Action/Resource as sorted lists."""
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document) if document.startswith("%") else document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    out = []
    for statement in statements:
        s = dict(statement)
        for key in ("Action", "Resource", "NotAction", "NotResource"):
            if isinstance(s.get(key), str):
                s[key] = [s[key]]
            if isinstance(s.get(key), list):
                s[key] = sorted(s[key])
        out.append(s)
    return {"Version": document.get("Version"), "Statement": out}


# ------------------------------------------------------------------------------------------------ role


class Role:
    """The stack's execution role: read it, tell how it differs, converge it."""

    def __init__(self, ctx: Context, stage: str):
        self.ctx, self.stage = ctx, stage
        self.name = role_name(ctx)
        self.iam = ctx.clients("iam", ctx.config.primary)  # IAM is global; any region signs for it

    def read(self) -> dict[str, Any] | None:
        answer = absent_as_none(lambda: self.iam.get_role(RoleName=self.name), "NoSuchEntity")
        if answer is None:
            return None
        role = answer["Role"]
        tags = {t["Key"]: t["Value"] for t in self.iam.list_role_tags(RoleName=self.name).get("Tags", [])}
        inline = [n for page in self.iam.get_paginator("list_role_policies").paginate(RoleName=self.name)
                  for n in page["PolicyNames"]]
        attached = [p["PolicyArn"] for page in
                    self.iam.get_paginator("list_attached_role_policies").paginate(RoleName=self.name)
                    for p in page["AttachedPolicies"]]
        policy = None
        if self.name in inline:
            policy = self.iam.get_role_policy(RoleName=self.name, PolicyName=self.name)["PolicyDocument"]
        return {"arn": role["Arn"], "trust": role.get("AssumeRolePolicyDocument"), "tags": tags,
                "inline": inline, "attached": attached, "policy": policy}

    def check_owned(self, state: dict[str, Any]) -> None:
        if state["tags"].get(TAG_STACK) != self.ctx.config.service:
            raise Conflict(self.stage, GLOBAL, f"role {self.name}",
                           f"exists but is not tagged {TAG_STACK}={self.ctx.config.service}",
                           "it is left untouched; to adopt it, add that tag to the role")

    def differences(self, state: dict[str, Any]) -> list[str]:
        diffs = []
        if _canonical(state["trust"] or {}) != _canonical(LAMBDA_TRUST_POLICY):
            diffs.append("trust policy differs: only lambda.amazonaws.com may assume it")
        if state["policy"] is None:
            diffs.append(f"inline policy {self.name} missing")
        elif _canonical(state["policy"]) != _canonical(permissions_policy(self.ctx)):
            diffs.append(f"inline policy {self.name} differs from least privilege")
        extra = [n for n in state["inline"] if n != self.name]
        if extra:
            diffs.append(f"drift: extra inline policies {', '.join(extra)}")
        if state["attached"]:
            diffs.append(f"drift: attached policies {', '.join(state['attached'])}")
        missing = {k: v for k, v in self.ctx.tags().items() if state["tags"].get(k) != v}
        if missing:
            diffs.append(f"tags {', '.join(missing)}")
        return diffs

    def ensure(self) -> str:
        """Create or converge the role; its ARN. Writes nothing when it already matches."""
        state = self.read()
        if state is None:
            return self._create()
        self.check_owned(state)
        policy = permissions_policy(self.ctx)
        if _canonical(state["trust"] or {}) != _canonical(LAMBDA_TRUST_POLICY):
            self.iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))
        if state["policy"] is None or _canonical(state["policy"]) != _canonical(policy):
            self._put_policy(policy)
        for name in state["inline"]:
            if name != self.name:
                self.iam.delete_role_policy(RoleName=self.name, PolicyName=name)
        for arn in state["attached"]:
            self.iam.detach_role_policy(RoleName=self.name, PolicyArn=arn)
        missing = {k: v for k, v in self.ctx.tags().items() if state["tags"].get(k) != v}
        if missing:
            self.iam.tag_role(RoleName=self.name, Tags=[{"Key": k, "Value": v} for k, v in missing.items()])
        return str(state["arn"])

    def _create(self) -> str:
        role = self.iam.create_role(RoleName=self.name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY),
                                    Description=f"multiregion {self.ctx.config.service}: the item API's functions",
                                    Tags=[{"Key": k, "Value": v} for k, v in self.ctx.tags().items()])["Role"]
        self._put_policy(permissions_policy(self.ctx))
        return str(role["Arn"])

    def _put_policy(self, policy: dict[str, Any]) -> None:
        # Compact JSON: an inline role policy may hold at most 10,240 characters.
        self.iam.put_role_policy(RoleName=self.name, PolicyName=self.name,
                                 PolicyDocument=json.dumps(policy, separators=(",", ":")))

    def delete(self) -> None:
        state = self.read()
        if state is None:
            return
        for name in state["inline"]:
            self.iam.delete_role_policy(RoleName=self.name, PolicyName=name)
        for arn in state["attached"]:
            self.iam.detach_role_policy(RoleName=self.name, PolicyArn=arn)
        self.iam.delete_role(RoleName=self.name)


# ----------------------------------------------------------------------------------------------- stage


class FunctionsStage(Stage):
    name = "functions"
    help = "The least-privilege IAM role and the item API's three Lambda functions in every region."
    scope = "region"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        # region -> functions the plan found unchanged and ready, so `settle` need not read them again
        self._ready: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ plan

    def plan(self, region: str) -> list[Change]:
        self._ready[region] = set()
        changes = []
        if region == self.config.primary:
            changes += self._plan_role()
        for component in COMPONENTS:
            change = self._plan_function(region, component)
            if change is not None:
                changes.append(change)
        return changes

    def _plan_role(self) -> list[Change]:
        role = Role(self.ctx, self.name)
        state = role.read()
        if state is None:
            return [self.change(GLOBAL, "create", f"role {role.name}",
                                f"assumed by Lambda; PutItem/GetItem on table {self.config.table.name} in "
                                f"{len(self.config.regions)} region(s); own log groups", self._ensure_role)]
        role.check_owned(state)
        diffs = role.differences(state)
        if not diffs:
            return []
        return [self.change(GLOBAL, "update", f"role {role.name}", "; ".join(diffs), self._ensure_role)]

    def _ensure_role(self) -> str:
        return str(self.ctx.memo((self.name, "role"), Role(self.ctx, self.name).ensure))

    def _zip(self, component: str) -> bytes:
        return bytes(self.ctx.memo((self.name, "zip", component), lambda: packaging.build_zip(component)))

    def _plan_function(self, region: str, component: str) -> Change | None:
        name = function_name(self.ctx, component)
        sha = packaging.code_sha256(self._zip(component))
        function = get_function(self.ctx, region, name)
        if function is None:
            return self.change(region, "create", f"function {name}",
                               f"{RUNTIME}, {self.config.functions.memory} MB, {self.config.functions.timeout} s, "
                               f"{packaging.PACKAGES[component].route}, code {sha[:8]}",
                               lambda: self._create(region, component))
        if not is_ours(self.ctx, function):
            raise Conflict(self.name, region, f"function {name}",
                           f"exists but is not tagged {TAG_STACK}={self.config.service}",
                           "it is left untouched; to adopt it, add that tag to the function")
        deployed = function["Configuration"]
        reasons: list[str] = []
        code = None
        if deployed.get("CodeSha256") != sha:
            code = self._zip(component)
            reasons.append(f"code {str(deployed.get('CodeSha256', ''))[:8]} -> {sha[:8]}")
        settings = self._configuration_diff(deployed, component, reasons)
        tags = {k: v for k, v in self.ctx.tags(region).items() if (function.get("Tags") or {}).get(k) != v}
        if tags:
            reasons.append(f"tags {', '.join(tags)}")
        # Reserved concurrency 0 is how an outage is rehearsed; left behind (a killed failover-test), it
        # throttles every call while everything else looks converged.
        throttled = self._reserved_concurrency(region, name) == 0
        if throttled:
            reasons.append("drift: reserved concurrency 0 throttles every call -> removed")
        if not reasons:
            if deployed.get("State", "Active") == "Active" and deployed.get("LastUpdateStatus",
                                                                            "Successful") == "Successful":
                self._ready[region].add(component)
            return None
        return self.change(region, "update", f"function {name}", "; ".join(reasons),
                           lambda: self._update(region, component, code, settings, tags, throttled))

    def _configuration_diff(self, deployed: dict[str, Any], component: str, reasons: list[str]) -> dict[str, Any]:
        """The UpdateFunctionConfiguration arguments that differ (reasons appended), {} when none does."""
        wanted = {"Runtime": RUNTIME, "Handler": packaging.PACKAGES[component].handler,
                  "Role": role_arn(self.ctx), "MemorySize": self.config.functions.memory,
                  "Timeout": self.config.functions.timeout}
        labels = {"Runtime": "runtime", "Handler": "handler", "Role": "role", "MemorySize": "memory",
                  "Timeout": "timeout"}
        update: dict[str, Any] = {}
        for key, value in wanted.items():
            if deployed.get(key) != value:
                update[key] = value
                reasons.append(f"{labels[key]} {deployed.get(key)} -> {value}")
        env = environment(self.ctx, component)
        env_reasons = environment_drift((deployed.get("Environment") or {}).get("Variables") or {}, env)
        if env_reasons:
            # UpdateFunctionConfiguration replaces the whole map: send all of it.
            update["Environment"] = {"Variables": env}
            reasons.extend(env_reasons)
        return update

    # ------------------------------------------------------------------ apply

    def _create(self, region: str, component: str) -> None:
        package = packaging.PACKAGES[component]
        arguments = {
            "FunctionName": function_name(self.ctx, component), "Runtime": RUNTIME, "Role": self._ensure_role(),
            "Handler": package.handler, "Code": {"ZipFile": self._zip(component)},
            "MemorySize": self.config.functions.memory, "Timeout": self.config.functions.timeout,
            "Environment": {"Variables": environment(self.ctx, component)},
            "Description": f"multiregion {self.config.service}: {package.route}",
            "Tags": self.ctx.tags(region),
        }
        lam = self.ctx.clients("lambda", region)
        for delay in (*ROLE_PROPAGATION_DELAYS, None):
            try:
                lam.create_function(**arguments)
                return
            except ClientError as exc:
                if delay is None or not role_not_ready(exc):
                    raise
                self.ctx.reporter.info(f"[{region}] role {role_name(self.ctx)} not assumable by Lambda yet "
                                       f"(IAM propagation); retrying in {delay:g} s")
                self.ctx.sleep(delay)

    def _reserved_concurrency(self, region: str, name: str) -> int | None:
        answer = self.ctx.clients("lambda", region).get_function_concurrency(FunctionName=name)
        return answer.get("ReservedConcurrentExecutions")

    def _update(self, region: str, component: str, code: bytes | None, settings: dict[str, Any],
                tags: dict[str, str], unthrottle: bool = False) -> None:
        name = function_name(self.ctx, component)
        lam = self.ctx.clients("lambda", region)
        self._ensure_role()
        # Lambda refuses an update while another is in progress (ResourceConflictException).
        self._wait_updated(region, name)
        if code is not None:
            lam.update_function_code(FunctionName=name, ZipFile=code)
            self._wait_updated(region, name)
        if settings:
            lam.update_function_configuration(FunctionName=name, **settings)
            self._wait_updated(region, name)
        if tags:
            lam.tag_resource(Resource=function_arn(self.ctx, region, component), Tags=tags)
        if unthrottle:
            lam.delete_function_concurrency(FunctionName=name)

    def _wait_updated(self, region: str, name: str) -> None:
        wait_function_updated(self.ctx, region, name, self.name)

    def settle(self, region: str) -> None:
        for component in COMPONENTS:
            if component not in self._ready.get(region, set()):
                self._wait_updated(region, function_name(self.ctx, component))

    # ------------------------------------------------------------------ down

    def destroy(self, region: str) -> list[Change]:
        changes = []
        for component in COMPONENTS:
            name = function_name(self.ctx, component)
            function = get_function(self.ctx, region, name)
            if function is None:
                continue
            if not is_ours(self.ctx, function):
                self.ctx.reporter.warn(f"[{region}] function {name} is not this stack's; left alone")
                continue
            changes.append(self.change(region, "delete", f"function {name}", "down",
                                       lambda n=name: self.ctx.clients("lambda", region).delete_function(
                                           FunctionName=n)))
        if region == self.config.primary:
            changes += self._destroy_role()
        return changes

    def _destroy_role(self) -> list[Change]:
        role = Role(self.ctx, self.name)
        state = role.read()
        if state is None:
            return []
        if state["tags"].get(TAG_STACK) != self.config.service:
            self.ctx.reporter.warn(f"role {role.name} is not this stack's; left alone")
            return []
        return [self.change(GLOBAL, "delete", f"role {role.name}", "down, once no function of the stack remains",
                            lambda: self._delete_role(role))]

    def _delete_role(self, role: Role) -> None:
        # Region nodes of `down` run in parallel: functions elsewhere may still be going. A function whose
        # role is gone fails every call, so the role goes last.
        def no_functions_left() -> tuple[bool, str]:
            left = [f"{r}:{function_name(self.ctx, c)}" for r in self.config.regions for c in COMPONENTS
                    if (fn := get_function(self.ctx, r, function_name(self.ctx, c))) and is_ours(self.ctx, fn)]
            return not left, f"{len(left)} function(s) left" + (f" ({', '.join(left[:3])})" if left else "")

        self.ctx.wait_until(f"functions gone before deleting role {role.name}", GLOBAL, no_functions_left,
                            timeout=min(self.ctx.wait_timeout, ROLE_DELETE_WAIT))
        role.delete()

    # ------------------------------------------------------------------ status

    def status(self, region: str) -> dict[str, Any]:
        functions: dict[str, Any] = {}
        health_status = None
        for component in COMPONENTS:
            name = function_name(self.ctx, component)
            function = get_function(self.ctx, region, name)
            if function is None:
                functions[name] = None
                continue
            config = function["Configuration"]
            functions[name] = {"code": str(config.get("CodeSha256", ""))[:8], "state": config.get("State"),
                               "last_update": config.get("LastUpdateStatus")}
            if component == HEALTH:
                health_status = ((config.get("Environment") or {}).get("Variables") or {}).get("STATUS")
        return {"functions": functions, "health_status": health_status}


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


def role_not_ready(exc: ClientError) -> bool:
    """The error Lambda gives for a role IAM has not propagated yet."""
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) == "InvalidParameterValueException" and "cannot be assumed by Lambda" in message
