"""The stack's Lambda functions, their resource policies, and their IAM roles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from multiregion.aws import absent_as_none, error_code
from multiregion.engine import TAG_STACK, Reader
from multiregion.plan import Wait


def get_function(aws: Reader, region: str, name: str) -> dict[str, Any] | None:
    """GetFunction's answer (Configuration, Tags, Concurrency), or None when there is no such function."""
    client = aws.client("lambda", region)
    answer = absent_as_none(lambda: client.get_function(FunctionName=name), "ResourceNotFoundException")
    return dict(answer) if answer else None


def reserved_concurrency(aws: Reader, region: str, name: str) -> int | None:
    # GetFunction omits Concurrency when it is 0 (moto), so ask GetFunctionConcurrency.
    answer = aws.client("lambda", region).get_function_concurrency(FunctionName=name)
    value = answer.get("ReservedConcurrentExecutions")
    return int(value) if value is not None else None


def log_groups(aws: Reader, region: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The log groups whose names start with `prefix`, by name (DescribeLogGroups, every page)."""
    client = aws.client("logs", region)
    groups: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"logGroupNamePrefix": prefix}
    while True:
        page = client.describe_log_groups(**kwargs)
        groups.update({g["logGroupName"]: dict(g) for g in page.get("logGroups", [])})
        if not page.get("nextToken"):
            return groups
        kwargs["nextToken"] = page["nextToken"]


def is_ours(service: str, function: dict[str, Any]) -> bool:
    return (function.get("Tags") or {}).get(TAG_STACK) == service


def policy_statements(aws: Reader, region: str, name: str) -> list[dict[str, Any]]:
    """The function's resource policy statements; [] when it has no policy (or does not exist)."""
    try:
        policy = aws.client("lambda", region).get_policy(FunctionName=name)["Policy"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise
    statements = json.loads(policy).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


@dataclass(frozen=True)
class RoleState:
    name: str
    arn: str
    trust: Any
    tags: dict[str, str]
    inline: tuple[str, ...]
    attached: tuple[str, ...]
    policies: dict[str, Any]  # inline policy name -> document (ours only)


def read_role(aws: Reader, name: str, own_policies: tuple[str, ...]) -> RoleState | None:
    iam = aws.client("iam", aws.config.primary)  # IAM is global; any region signs for it
    answer = absent_as_none(lambda: iam.get_role(RoleName=name), "NoSuchEntity")
    if answer is None:
        return None
    role = answer["Role"]
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name).get("Tags", [])}
    inline = tuple(n for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
                   for n in page["PolicyNames"])
    attached = tuple(p["PolicyArn"] for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
                     for p in page["AttachedPolicies"])
    policies = {p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                for p in own_policies if p in inline}
    return RoleState(name, str(role["Arn"]), role.get("AssumeRolePolicyDocument"), tags, inline, attached, policies)


def canonical_policy(document: Any) -> Any:
    """A policy document in a comparable form: parsed, with Action/Resource as sorted lists."""
    if isinstance(document, str):
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


def wait_updated(name: str, region: str) -> Wait:
    """`function_updated_v2` and `function_active_v2` in one: State Active and the last update Successful."""
    return Wait(f"function {name} ready", "lambda", region, "get_function_configuration", {"FunctionName": name},
                "join(' / ', [State || 'Active', LastUpdateStatus || 'Successful'])",
                ("Active / Successful",), failed=("Failed / Successful", "Active / Failed", "Failed / Failed"),
                reason="LastUpdateStatusReason || StateReason", hint="fix the cause, then run `up` again")
