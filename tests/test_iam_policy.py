"""The deploy role's policy (multiregion.iam_policy) against every call the tool makes.

A whole lifecycle runs on the sandbox through the CLI (up, failover-test in health and outage modes,
status, plan, down --yes --delete-data) while every boto3 call the tool makes is recorded: service,
operation, region, parameters, the HTTP request and the answer. Each call is then turned into the
authorization requests AWS makes for it (action, resource ARN, condition keys), written here from the
Service Authorization Reference independently of the module's table, and evaluated against the
generated policy by a small matcher (action and resource wildcards, StringEquals/StringLike, an
explicit Deny wins). The sandbox does not authorize anything, so this is the only place the policy is
checked; what AWS does beyond the documentation cannot be checked here.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.session
import pytest
from botocore import xform_name

from multiregion import iam_policy
from multiregion.aws import ClientProvider
from multiregion.config import Config, load_config, parse_config
from multiregion.regions import REGIONS
from tests.conftest import Cli, demo_config

SOURCE = Path(__file__).resolve().parent.parent / "multiregion"
LIFECYCLE = (("up",), ("failover-test",), ("failover-test", "--mode", "outage"), ("status",), ("plan",),
             ("down", "--yes", "--delete-data"))


# ------------------------------------------------------------------------------------------ recording


@dataclass
class Recorded:
    """One boto3 call the tool made."""

    service: str
    operation: str
    region: str
    params: dict[str, Any]
    method: str = ""
    path: str = ""
    answer: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Records every call of every client the tool's ClientProvider makes (the provider counts calls by
    operation only; the service, region and parameters are needed to know what was touched)."""

    def __init__(self) -> None:
        self.calls: list[Recorded] = []
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Recorder:
        real = ClientProvider.client
        recorder = self

        def client(provider: ClientProvider, service: str, region: str) -> Any:
            made = real(provider, service, region)
            if not getattr(made, "_iam_recorded", False):
                events = made.meta.events
                events.register("before-parameter-build", recorder._parameters)
                events.register("before-call", lambda **kw: recorder._request(service, made.meta.region_name, **kw))
                events.register("after-call", recorder._answer)
                made._iam_recorded = True
            return made

        monkeypatch.setattr(ClientProvider, "client", client)
        return self

    @staticmethod
    def _parameters(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["iam_params"] = json.loads(json.dumps(params, default=str))

    def _request(self, service: str, region: str, model: Any, params: dict[str, Any], context: dict[str, Any],
                 **_: Any) -> None:
        call = Recorded(service, model.name, region, context.get("iam_params", {}), params.get("method", ""),
                        params.get("url_path", ""))
        context["iam_call"] = call
        with self._lock:
            self.calls.append(call)

    @staticmethod
    def _answer(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        call = context.get("iam_call")
        if call is not None:
            call.answer = parsed


# --------------------------------------------------------------------- what AWS authorizes for a call

# For each call: the resources it touches, keyed by IAM service prefix (for the operation's own action and
# any other action of that service) or by one action (an action whose resource differs from the call's,
# or of another service: a role passed to Lambda, tags sent on create, a service-linked role AWS creates).
Touched = dict[str, list[tuple[str, dict[str, str]]]]
NO_RESOURCE: list[tuple[str, dict[str, str]]] = [("*", {})]

ROUTE53_UNSCOPED = {"ListHostedZonesByName", "CreateHostedZone", "ListHealthChecks", "CreateHealthCheck",
                    "ListTrafficPolicies", "CreateTrafficPolicy", "TestDNSAnswer"}
ROUTE53_BY_PARAM = {  # operation -> (parameter, resource type) pairs, per the Service Authorization Reference
    "GetHostedZone": (("Id", "hostedzone"),), "DeleteHostedZone": (("Id", "hostedzone"),),
    "ListResourceRecordSets": (("HostedZoneId", "hostedzone"),),
    "ChangeResourceRecordSets": (("HostedZoneId", "hostedzone"),),
    "ListTrafficPolicyInstancesByHostedZone": (("HostedZoneId", "hostedzone"),),
    "GetChange": (("Id", "change"),),
    "GetHealthCheckStatus": (("HealthCheckId", "healthcheck"),),
    "UpdateHealthCheck": (("HealthCheckId", "healthcheck"),),
    "DeleteHealthCheck": (("HealthCheckId", "healthcheck"),),
    "GetTrafficPolicy": (("Id", "trafficpolicy"),), "ListTrafficPolicyVersions": (("Id", "trafficpolicy"),),
    "CreateTrafficPolicyVersion": (("Id", "trafficpolicy"),), "DeleteTrafficPolicy": (("Id", "trafficpolicy"),),
    "GetTrafficPolicyInstance": (("Id", "trafficpolicyinstance"),),
    "DeleteTrafficPolicyInstance": (("Id", "trafficpolicyinstance"),),
    "UpdateTrafficPolicyInstance": (("Id", "trafficpolicyinstance"), ("TrafficPolicyId", "trafficpolicy")),
    "CreateTrafficPolicyInstance": (("HostedZoneId", "hostedzone"), ("TrafficPolicyId", "trafficpolicy")),
}


REPLICA_NEEDS = {
    "Create": ("dynamodb:CreateTable", "dynamodb:CreateTableReplica", "dynamodb:Scan", "dynamodb:Query",
               "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem",
               "dynamodb:BatchWriteItem"),
    "Delete": ("dynamodb:DeleteTable", "dynamodb:DeleteTableReplica"),
}


@dataclass(frozen=True)
class Account:
    id: str
    partition: str

    def slr(self, service: str, role: str) -> tuple[str, dict[str, str]]:
        return (f"arn:{self.partition}:iam::{self.id}:role/aws-service-role/{service}/{role}",
                {"iam:AWSServiceName": service})


def touched(call: Recorded, account: Account) -> Touched:
    handler = {"sts": _sts, "dynamodb": _dynamodb, "lambda": _lambda, "iam": _iam, "apigateway": _apigateway,
               "acm": _acm, "route53": _route53, "logs": _logs}.get(call.service)
    found = handler(call, account) if handler else None
    if found is None:
        raise AssertionError(f"the test does not know what {call.service} {call.operation} touches: add it "
                             "from the Service Authorization Reference")
    return found


def _sts(call: Recorded, account: Account) -> Touched | None:
    return {"sts": NO_RESOURCE} if call.operation == "GetCallerIdentity" else None


def _dynamodb(call: Recorded, account: Account) -> Touched | None:
    if call.params.get("ResourceArn"):
        return {"dynamodb": [(call.params["ResourceArn"], {})]}
    def table(region: str, table_name: str = "") -> tuple[str, dict[str, str]]:
        return f"arn:{account.partition}:dynamodb:{region}:{account.id}:table/{table_name or name}", {}

    if call.params.get("RequestItems"):  # BatchGetItem / BatchWriteItem: each table named
        return {"dynamodb": [table(call.region, t) for t in call.params["RequestItems"]]}
    name = call.params.get("TableName")
    if not name:
        return None

    out: Touched = {"dynamodb": [table(call.region)]}
    if call.operation == "CreateTable" and call.params.get("Tags"):
        out["dynamodb:TagResource"] = [table(call.region)]
    # A replica added or removed from the primary needs these on the table in the replica's region too
    # (DynamoDB developer guide, global tables security).
    for update in call.params.get("ReplicaUpdates") or []:
        action, replica = next(iter(update.items()))
        for needed in REPLICA_NEEDS[action]:
            out.setdefault(needed, []).append(table(replica["RegionName"]))
        if action == "Create":
            out["iam:CreateServiceLinkedRole"] = [account.slr("replication.dynamodb.amazonaws.com",
                                                              "AWSServiceRoleForDynamoDBReplication")]
    # A strong table's witness (Service Authorization Reference, UpdateTable's actions).
    for update in call.params.get("GlobalTableWitnessUpdates") or []:
        action, witness = next(iter(update.items()))
        out.setdefault(f"dynamodb:{action}GlobalTableWitness", []).append(table(witness["RegionName"]))
    return out


def _lambda(call: Recorded, account: Account) -> Touched | None:
    name = call.params.get("FunctionName") or call.params.get("Resource")
    if not name:
        return None
    arn = name if name.startswith("arn:") else \
        f"arn:{account.partition}:lambda:{call.region}:{account.id}:function:{name}"
    out: Touched = {"lambda": [(arn, {})]}
    if call.operation == "GetFunction":  # its answer's tags need lambda:ListTags (Lambda API reference)
        out["lambda:ListTags"] = [(arn, {})]
    if call.operation == "CreateFunction" and call.params.get("Tags"):
        out["lambda:TagResource"] = [(arn, {})]
    if call.params.get("Role"):
        out["iam:PassRole"] = [(call.params["Role"], {"iam:PassedToService": "lambda.amazonaws.com"})]
    return out


def _iam(call: Recorded, account: Account) -> Touched | None:
    role = call.params.get("RoleName")
    if not role:
        return None
    # The tool's roles live under the path /multiregion/ (the stack-wide role of earlier releases did not).
    path = "" if role.endswith("-lambda") else "multiregion/"
    out: Touched = {"iam": [(f"arn:{account.partition}:iam::{account.id}:role/{path}{role}", {})]}
    if call.operation == "CreateRole" and call.params.get("Tags"):
        out["iam:TagRole"] = out["iam"]
    return out


def _apigateway(call: Recorded, account: Account) -> Touched | None:
    # API Gateway authorizes the HTTP verb on the request's path.
    arn = f"arn:{account.partition}:apigateway:{call.region}::"
    out: Touched = {"apigateway": [(arn + call.path, {})]}
    created = {"CreateRestApi": f"/restapis/{call.answer.get('id')}",
               "CreateDomainName": f"/domainnames/{call.params.get('domainName')}",
               "CreateApiKey": f"/apikeys/{call.answer.get('id')}",
               "CreateUsagePlan": f"/usageplans/{call.answer.get('id')}"}.get(call.operation)
    if created and call.params.get("tags"):
        # Tags sent on create: apigateway:PUT on /tags/{the new resource's ARN, URL-encoded}, as AWS names it
        # in the AccessDenied it answers.
        out["apigateway:PUT"] = [(f"{arn}/tags/{quote(arn + created, safe='')}", {})]
    if call.operation == "CreateDomainName":
        out["iam:CreateServiceLinkedRole"] = [account.slr("ops.apigateway.amazonaws.com",
                                                          "AWSServiceRoleForAPIGateway")]
    return out


def _acm(call: Recorded, account: Account) -> Touched | None:
    if call.operation in ("ListCertificates", "RequestCertificate"):
        out: Touched = {"acm": NO_RESOURCE}
        if call.operation == "RequestCertificate" and call.params.get("Tags"):
            out["acm:AddTagsToCertificate"] = [(call.answer["CertificateArn"], {})]
        return out
    arn = call.params.get("CertificateArn")
    return {"acm": [(arn, {})]} if arn else None


def _logs(call: Recorded, account: Account) -> Touched | None:
    groups = f"arn:{account.partition}:logs:{call.region}:{account.id}:log-group:"
    if call.operation == "DescribeLogGroups":
        return {"logs": [(groups + "*", {})]}
    name = call.params.get("logGroupName")
    if not name:
        return None
    out: Touched = {"logs": [(groups + name, {})]}
    if call.operation == "CreateLogGroup" and call.params.get("tags"):
        out["logs:TagResource"] = out["logs"]
    return out


def _route53(call: Recorded, account: Account) -> Touched | None:
    if call.operation in ROUTE53_UNSCOPED:
        return {"route53": NO_RESOURCE}

    def arn(kind: str, value: str) -> tuple[str, dict[str, str]]:
        return f"arn:{account.partition}:route53:::{kind}/{value.rsplit('/', 1)[-1]}", {}

    if call.operation in ("ChangeTagsForResource", "ListTagsForResource", "ListTagsForResources"):
        ids = call.params.get("ResourceIds") or [call.params["ResourceId"]]
        return {"route53": [arn(call.params["ResourceType"], i) for i in ids]}
    pairs = ROUTE53_BY_PARAM.get(call.operation)
    return {"route53": [arn(kind, str(call.params[p])) for p, kind in pairs]} if pairs else None


# ------------------------------------------------------------------------------------------ the matcher


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    keys = {k.lower(): v for k, v in context.items()}
    for operator, tests in condition.items():
        if operator not in ("StringEquals", "StringLike"):
            raise AssertionError(f"the matcher does not evaluate {operator}")
        for key, wanted in tests.items():
            have = keys.get(key.lower())
            if have is None:
                return False
            if operator == "StringEquals" and have not in _listed(wanted):
                return False
            if operator == "StringLike" and not any(_wildcard(w, have) for w in _listed(wanted)):
                return False
    return True


def _applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    return (any(_wildcard(a, action, ignore_case=True) for a in _listed(statement["Action"]))
            and any(_wildcard(r, resource) for r in _listed(statement["Resource"]))
            and _condition_holds(statement.get("Condition", {}), context))


def allowing_sid(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> str | None:
    """The Sid of a statement that allows the request, or None (no Allow, or an explicit Deny)."""
    allowed = None
    for statement in policy["Statement"]:
        if not _applies(statement, action, resource, context):
            continue
        if statement["Effect"] == "Deny":
            return None
        allowed = allowed or statement.get("Sid", "(no Sid)")
    return allowed


def test_the_matcher_reads_wildcards_conditions_and_denies() -> None:
    policy = {"Statement": [
        {"Sid": "A", "Effect": "Allow", "Action": "lambda:Get*", "Resource": "arn:aws:lambda:*:1:function:s-*"},
        {"Sid": "B", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "*",
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        {"Sid": "C", "Effect": "Deny", "Action": "lambda:GetPolicy", "Resource": "*"}]}
    fn = "arn:aws:lambda:eu-west-1:1:function:s-put"
    assert allowing_sid(policy, "lambda:GetFunction", fn, {}) == "A"
    assert allowing_sid(policy, "LAMBDA:getfunction", fn, {}) == "A"  # action names ignore case
    assert allowing_sid(policy, "lambda:GetFunction", fn.upper(), {}) is None  # ARNs do not
    assert allowing_sid(policy, "lambda:GetFunction", "arn:aws:lambda:eu-west-1:1:function:other", {}) is None
    assert allowing_sid(policy, "lambda:GetPolicy", fn, {}) is None
    assert allowing_sid(policy, "iam:PassRole", "arn:aws:iam::1:role/r", {}) is None
    assert allowing_sid(policy, "iam:PassRole", "arn:aws:iam::1:role/r",
                        {"iam:PassedToService": "ec2.amazonaws.com"}) is None
    assert allowing_sid(policy, "iam:PassRole", "arn:aws:iam::1:role/r",
                        {"iam:PassedToService": "lambda.amazonaws.com"}) == "B"
    # An action without a resource type is requested on "*": only a statement on "*" allows it.
    assert allowing_sid(policy, "lambda:GetAccountSettings", "*", {}) is None


# ------------------------------------------------------------------------------------------ evaluation


@dataclass
class Evaluation:
    denied: list[str] = field(default_factory=list)
    unknown: set[tuple[str, str]] = field(default_factory=set)
    verified: set[tuple[str, str, str]] = field(default_factory=set)  # (service, operation, action)
    used: set[tuple[str, str]] = field(default_factory=set)  # (action, Sid) that allowed a request
    called: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def evaluate(calls: list[Recorded], policy: dict[str, Any], account: Account) -> Evaluation:
    result = Evaluation()
    for call in calls:
        key = (call.service, call.operation)
        result.called.add(key)
        permission = iam_policy.BY_OPERATION.get(key)
        if permission is None:
            result.unknown.add(key)
            continue
        requests = touched(call, account)
        result.problems += [f"{call.service} {call.operation} needs {action}, which the table does not list"
                            for action in requests if ":" in action and action not in permission.actions]
        if call.service == "apigateway" and f"apigateway:{call.method}" not in permission.actions:
            result.problems.append(f"apigateway {call.operation} is a {call.method} call; the table says "
                                   f"{permission.actions}")
        own = f"apigateway:{call.method}" if call.service == "apigateway" else f"{call.service}:{call.operation}"
        for action in dict.fromkeys(permission.actions):
            # The operation's own action is checked on what the call touched; any other action only where the
            # test itself knows the call needs it, so that the table cannot slip in an action of its own.
            resources = requests.get(action) if action != own else requests.get(action) or requests[call.service]
            if resources is None:
                continue  # an action this call does not need (a role not passed, a replica not added)
            result.verified.add((*key, action))
            for resource, context in resources:
                sid = allowing_sid(policy, action, resource, context)
                if sid is None:
                    result.denied.append(f"{call.service} {call.operation} ({call.region}): {action} on {resource}"
                                         + (f" with {context}" if context else ""))
                else:
                    result.used.add((action, sid))
    return result


# ------------------------------------------------------------------------------------------ the lifecycle


@pytest.fixture
def lifecycle(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> tuple[Config, Recorder]:
    """A whole lifecycle of the demo stack through the CLI, every call recorded."""
    recorder = Recorder().install(monkeypatch)
    for args in LIFECYCLE:
        code, doc = cli.json(*args)
        assert code == 0, f"{' '.join(args)}: {json.dumps(doc)[:2000]}"
        if args[0] == "failover-test":
            assert doc["passed"], doc
    assert cli.config is not None
    return load_config(cli.config), recorder


def caller(calls: list[Recorded]) -> Account:
    identity = next(c.answer for c in calls if c.operation == "GetCallerIdentity")
    return Account(str(identity["Account"]), str(identity["Arn"]).split(":")[1])


def test_the_policy_allows_every_call_of_a_lifecycle_and_nothing_else(lifecycle: tuple[Config, Recorder]) -> None:
    config, recorder = lifecycle
    account = caller(recorder.calls)
    policy = iam_policy.document(iam_policy.statements(config, account.id, account.partition))
    result = evaluate(recorder.calls, policy, account)
    assert len(recorder.calls) > 500 and len(result.called) > 60  # the lifecycle really ran

    assert not result.unknown, f"operations missing from iam_policy.PERMISSIONS: {sorted(result.unknown)}"
    assert not result.problems, "\n".join(result.problems)
    assert not result.denied, "denied by the policy:\n" + "\n".join(sorted(set(result.denied)))

    # What the table says happens on every lifecycle did happen, and every action it needs was checked.
    lifecycle_ops = {(p.service, p.operation) for p in iam_policy.PERMISSIONS
                     if iam_policy.needed(p.needs, config) and not p.only_when}
    assert not lifecycle_ops - result.called, f"listed as always called, not called: {lifecycle_ops - result.called}"
    unchecked = [(p.service, p.operation, g.action) for p, g in iam_policy.permissions_for(config)
                 if (p.service, p.operation) in result.called and not g.only_when
                 and (p.service, p.operation, g.action) not in result.verified]
    assert not unchecked, f"grants no call exercised: {unchecked}"

    # Nothing else: each action of each statement allowed a request of this run, or is one the table
    # documents for a path the lifecycle does not take (drift repair, a retry, a mode switch).
    documented = {(g.action, g.scope.sid) for p, g in iam_policy.permissions_for(config) if p.only_when or g.only_when}
    extra = [(action, statement["Sid"]) for statement in policy["Statement"] for action in statement["Action"]
             if (action, statement["Sid"]) not in result.used | documented]
    assert not extra, f"granted but neither called nor documented: {extra}"

    # And the check is not vacuous: a policy of the primary region alone denies the replica's table.
    narrow = iam_policy.operator_policy(dataclasses.replace(config, regions=(config.primary,)), account.id,
                                        account.partition)
    denied = evaluate(recorder.calls, narrow, account).denied
    assert any(d.startswith("dynamodb") and f"{config.regions[1]}:" in d for d in denied), denied[:5]


# -------------------------------------------------------------------------------------------- the source


def _source_calls() -> tuple[set[str], set[str]]:
    """(boto3 method names, service names) the tool's code calls: client methods, paginators, and the
    operations plans name; the deployed handlers (run by the functions' own roles) and the sandbox excluded."""
    methods: set[str] = set()
    services: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if {"sandbox", "handlers"} & set(path.relative_to(SOURCE).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            methods.add(name)
            args = list(node.args)
            if args and isinstance(args[0], ast.Starred):  # Call(*iam, "put_role_policy", ...): (service, region)
                args = [ast.Constant(None), ast.Constant(None), *args[1:]]
            # Call(service, region, method, ...), Wait(what, service, region, method, ...)
            where = {"Call": (0, 2), "Wait": (1, 3), "client": (0, None), "clients": (0, None),
                     "get_paginator": (None, 0)}.get(name)
            if where is None:
                continue
            service, method = (_constant(args, i) for i in where)
            services.update([service] if service else [])
            methods.update([method] if method else [])
    return methods, services


def _constant(args: list[ast.expr], index: int | None) -> str | None:
    if index is None or index >= len(args) or not isinstance(args[index], ast.Constant):
        return None
    value = args[index].value  # type: ignore[attr-defined]
    return value if isinstance(value, str) else None


def test_the_table_lists_what_the_source_calls_and_only_that() -> None:
    session = botocore.session.get_session()
    table_services = {p.service for p in iam_policy.PERMISSIONS}
    operations: dict[str, set[tuple[str, str]]] = {}
    for svc in table_services:
        for op in session.get_service_model(svc).operation_names:
            operations.setdefault(xform_name(op), set()).add((svc, op))
    methods, services = _source_calls()
    assert services <= table_services, f"services the table does not cover: {services - table_services}"
    listed = {(p.service, p.operation) for p in iam_policy.PERMISSIONS}
    # A method name that several services share (tag_resource) is covered when one of them is listed.
    missing = sorted(m for m in methods if m in operations and not operations[m] & listed)
    assert not missing, f"called but missing from the table: {missing}"
    unused = sorted(key for key in listed if xform_name(key[1]) not in methods)
    assert not unused, f"in the table but called nowhere: {unused}"
    for permission in iam_policy.PERMISSIONS:
        assert session.get_service_model(permission.service).operation_model(permission.operation)


def test_api_gateway_actions_are_the_verbs_of_the_rest_calls() -> None:
    model = botocore.session.get_session().get_service_model("apigateway")
    for permission in (p for p in iam_policy.PERMISSIONS if p.service == "apigateway"):
        verb = model.operation_model(permission.operation).http["method"]
        assert permission.actions[0] == f"apigateway:{verb}", permission.operation


# ------------------------------------------------------------------------------------------ the documents


def config_of(**changes: Any) -> Config:
    data = demo_config()
    for key, value in changes.items():
        section, _, leaf = key.partition("__")
        if leaf:
            data.setdefault(section, {})[leaf] = value
        else:
            data[section] = value
    return parse_config(data)


def whole(config: Config, account: str = iam_policy.UNKNOWN_ACCOUNT) -> dict[str, Any]:
    """Every statement of the policy in one document, however many managed policies it takes."""
    return iam_policy.document(s for d in iam_policy.operator_policies(config, account) for s in d["Statement"])


def actions_of(policy: dict[str, Any]) -> set[str]:
    return {a for statement in policy["Statement"] for a in statement["Action"]}


def test_the_demo_policy_is_valid_json_within_iams_limits() -> None:
    config = config_of()
    text = iam_policy.describe(config, "123456789012")
    docs = json.loads(text)
    # Too large for one managed policy (6,144 characters): two, each within the limit; as one inline policy
    # of the deploy role it fits IAM's 10,240.
    assert isinstance(docs, list) and len(docs) == 2
    assert all(iam_policy.size(d) <= iam_policy.MANAGED_POLICY_LIMIT for d in docs)
    assert len(re.sub(r"\s", "", text)) == sum(iam_policy.size(d) for d in docs) + len(docs) + 1  # [a,b]
    policy = iam_policy.document(s for d in docs for s in d["Statement"])
    assert iam_policy.size(policy) <= 10_240
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    table = next(s for s in policy["Statement"] if s["Sid"] == "StackTable")
    assert table["Resource"] == ["arn:aws:dynamodb:eu-west-1:123456789012:table/items",
                                 "arn:aws:dynamodb:us-east-1:123456789012:table/items"]
    passing = next(s for s in policy["Statement"] if "iam:PassRole" in s["Action"])
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    linked = next(s for s in policy["Statement"] if "iam:CreateServiceLinkedRole" in s["Action"])
    assert sorted(linked["Condition"]["StringEquals"]["iam:AWSServiceName"]) == [
        "ops.apigateway.amazonaws.com", "replication.dynamodb.amazonaws.com"]
    assert not any(a.endswith(":*") or a == "*" for a in actions_of(policy))


def test_eight_regions_are_split_over_managed_policies_that_each_fit() -> None:
    config = config_of(regions=list(REGIONS)[:8])
    docs = iam_policy.operator_policies(config, "123456789012")
    assert len(docs) == 2
    assert all(iam_policy.size(d) <= iam_policy.MANAGED_POLICY_LIMIT for d in docs)
    by_sid = sorted((s for d in docs for s in d["Statement"]), key=lambda s: s["Sid"])
    assert by_sid == sorted(iam_policy.statements(config, "123456789012", "aws"), key=lambda s: s["Sid"])
    table = next(s for d in docs for s in d["Statement"] if s["Sid"] == "StackTable")
    assert len(table["Resource"]) == 8
    with pytest.raises(iam_policy.PolicyTooLarge):
        iam_policy.operator_policy(config, "123456789012")
    assert json.loads(iam_policy.describe(config, "123456789012")) == docs  # a JSON array, one document each


def test_a_statement_larger_than_a_managed_policy_is_split_by_its_resources() -> None:
    config = config_of(regions=list(REGIONS), service="a-rather-long-service-name-here")
    docs = iam_policy.operator_policies(config, "123456789012", limit=1000)
    assert all(iam_policy.size(d) <= 1000 for d in docs)
    tables = [s for d in docs for s in d["Statement"] if s["Sid"].startswith("StackTable")]
    assert len(tables) > 1 and len({s["Sid"] for s in tables}) == len(tables)
    assert sorted(r for s in tables for r in s["Resource"]) == sorted(
        f"arn:aws:dynamodb:{r}:123456789012:table/{config.table.name}" for r in REGIONS)


def test_latency_records_need_no_traffic_policy_creation_but_may_remove_one() -> None:
    policy = whole(config_of(routing__mode="latency-records"), "123456789012")
    actions = actions_of(policy)
    assert not {"route53:CreateTrafficPolicy", "route53:CreateTrafficPolicyVersion",
                "route53:CreateTrafficPolicyInstance", "route53:UpdateTrafficPolicyInstance"} & actions
    # Switching from traffic-policy mode deletes the policy record and the policy.
    assert {"route53:DeleteTrafficPolicyInstance", "route53:DeleteTrafficPolicy", "route53:GetChange"} <= actions


def test_a_zone_named_by_id_is_the_only_zone_in_the_policy() -> None:
    config = config_of(domain={"name": "api.example.com", "hosted_zone": "Z0123456789ABC"})
    policy = iam_policy.document(iam_policy.statements(config, "123456789012", "aws"))
    zone = next(s for s in policy["Statement"] if s["Sid"] == "HostedZone")
    assert zone["Resource"] == "arn:aws:route53:::hostedzone/Z0123456789ABC"
    assert not {"route53:ListHostedZonesByName", "route53:CreateHostedZone",
                "route53:DeleteHostedZone"} & actions_of(policy)


def test_one_region_has_no_replicas_to_authorize() -> None:
    policy = iam_policy.operator_policy(config_of(regions=["eu-west-1"]), "123456789012")
    actions = actions_of(policy)
    assert "dynamodb:CreateTableReplica" not in actions and "dynamodb:DescribeTable" in actions
    linked = next(s for s in policy["Statement"] if "iam:CreateServiceLinkedRole" in s["Action"])
    assert linked["Condition"] == {"StringEquals": {"iam:AWSServiceName": "ops.apigateway.amazonaws.com"}}
    assert linked["Resource"].endswith("/ops.apigateway.amazonaws.com/AWSServiceRoleForAPIGateway")


def test_without_an_account_the_arns_name_any_account() -> None:
    policy = whole(config_of())
    table = next(s for s in policy["Statement"] if s["Sid"] == "StackTable")
    assert table["Resource"][0] == "arn:aws:dynamodb:eu-west-1:*:table/items"
