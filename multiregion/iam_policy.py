"""`multiregion iam-policy`: the least-privilege policy of the role that runs the tool.

Before a first `up` on a real account a team creates a deploy role. This module says what that role
needs: one IAM policy document that allows exactly the AWS actions the tool calls for a config, in `up`,
`plan`, `status`, `failover-test` and `down`, on resources as narrow as each API allows.

It is built from two tables, both data:

* `PERMISSIONS`: every (boto3 service, operation) the tool calls, with the IAM action(s) it needs and
  the part of the account each action applies to (a `Scope`). Actions come from the Service
  Authorization Reference; an operation that also needs an action of its own (tags sent on create,
  a role passed to Lambda, a replica or a custom domain that makes AWS create a service-linked role)
  lists it too. API Gateway's IAM actions are the HTTP verbs of its REST calls
  (`apigateway:POST` on `arn:aws:apigateway:{region}::/restapis`).
* the scopes: which resource ARNs each `Scope` stands for, from the config, the account and the
  partition (the stack's table in each configured region, functions `{service}-*`, roles `{service}-*`,
  certificates in each region, Route 53's global ARNs, `*` where the action has no resource type).

The policy has one statement per scope, its Sid naming the scope. IAM counts a managed policy's size
without whitespace and allows 6,144 characters (IAM and STS quotas); a policy that does not fit is split
into several documents (`operator_policies`), each under the limit, to attach side by side.

What the policy does not cover: pruning (`up --prune`) removes replicas in regions that are no longer in
the config, whose tables the policy no longer names: run `up --prune` with a policy generated from the
old list of regions. Nothing here is checked against AWS itself; `tests/test_iam_policy.py` runs the
whole lifecycle on the sandbox and checks every call the tool made against the policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from multiregion.config import Config
from multiregion.names import is_zone_id, short_zone_id

POLICY_VERSION = "2012-10-17"
# IAM and STS quotas: a customer managed policy holds at most 6,144 characters, whitespace not counted.
MANAGED_POLICY_LIMIT = 6_144
UNKNOWN_ACCOUNT = "*"

LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
# The service-linked roles AWS creates on the tool's behalf, the first time in an account: DynamoDB's when
# a table gets its first replica (AWSServiceRoleForDynamoDBReplication, DynamoDB developer guide, global
# tables security), API Gateway's for custom domain names (AWSServiceRoleForAPIGateway, trusted by
# ops.apigateway.amazonaws.com, API Gateway developer guide, service-linked roles). Creating one needs
# iam:CreateServiceLinkedRole on its ARN, narrowed here by iam:AWSServiceName.
DYNAMODB_REPLICATION = ("replication.dynamodb.amazonaws.com", "AWSServiceRoleForDynamoDBReplication")
API_GATEWAY_OPS = ("ops.apigateway.amazonaws.com", "AWSServiceRoleForAPIGateway")


# --------------------------------------------------------------------------------------------- scopes


@dataclass(frozen=True)
class Target:
    """Whose resources: the stack's config, in one account and partition."""

    config: Config
    account: str
    partition: str


@dataclass(frozen=True)
class Scope:
    """A part of the account that actions are granted on; one statement of the policy."""

    sid: str
    what: str  # what it covers, for the documentation of the table


IDENTITY = Scope("CallerIdentity", "no resource: the caller's own account and partition")
TABLE = Scope("StackTable", "the stack's table in every configured region")
WITNESS_TABLE = Scope("WitnessTable", "the stack's table name in the witness region (table.witness)")
FUNCTIONS = Scope("StackFunctions", "functions {service}-* in every configured region")
ROLES = Scope("StackRoles", "IAM roles {service}-* (the functions' execution roles)")
PASS_ROLE = Scope("PassStackRolesToLambda", "roles {service}-*, passed to lambda.amazonaws.com only")
SERVICE_LINKED_ROLES = Scope("ServiceLinkedRoles", "the service-linked roles of DynamoDB replication and "
                                                   "API Gateway, created by AWS on first use")
REST_APIS = Scope("RestApiCollection", "API Gateway /restapis in every configured region")
REST_API = Scope("RestApis", "API Gateway /restapis/* in every configured region")
DOMAIN_NAMES = Scope("DomainNameCollection", "API Gateway /domainnames in every configured region")
DOMAIN_NAME = Scope("DomainNames", "API Gateway /domainnames/* in every configured region")
API_TAGS = Scope("ApiGatewayTags", "API Gateway /tags/* in every configured region (tags sent on create)")
CERTIFICATES = Scope("StackCertificates", "ACM certificates in every configured region")
ACM_UNSCOPED = Scope("CertificateRequests", "no resource type: ACM requests and listings")
HOSTED_ZONE = Scope("HostedZone", "the configured hosted zone (any zone when named by its DNS name)")
HEALTH_CHECKS = Scope("HealthChecks", "Route 53 health checks (their ids are assigned by AWS)")
TRAFFIC_POLICIES = Scope("TrafficPolicies", "Route 53 traffic policies")
POLICY_RECORDS = Scope("PolicyRecords", "Route 53 traffic policy instances (policy records)")
CHANGES = Scope("RecordChanges", "Route 53 change batches")
LOG_GROUPS = Scope("StackLogGroups", "the functions' log groups /aws/lambda/{service}-* in every configured region")
LOGS_UNSCOPED = Scope("LogGroupListing", "DescribeLogGroups: every log group of each configured region")
API_KEYS = Scope("ApiKeysAndUsagePlans", "API Gateway /apikeys* and /usageplans* in every configured region")
USAGE_PLANS = API_KEYS
LEASES = Scope("StackLease", "the account's lease table multiregion-leases, in the primary region")
ROUTE53_UNSCOPED = Scope("Route53AccountWide", "no resource type: Route 53 creations, listings, TestDNSAnswer")
ASSUMED_ROLES = Scope("AssumedRoles", "the roles of the config's aws: section, assumed with STS")

SCOPES: tuple[Scope, ...] = (IDENTITY, TABLE, WITNESS_TABLE, FUNCTIONS, ROLES, PASS_ROLE, SERVICE_LINKED_ROLES,
                             REST_APIS, REST_API,
                             DOMAIN_NAMES, DOMAIN_NAME, API_TAGS, CERTIFICATES, ACM_UNSCOPED, HOSTED_ZONE,
                             HEALTH_CHECKS, TRAFFIC_POLICIES, POLICY_RECORDS, CHANGES, ROUTE53_UNSCOPED,
                             LOG_GROUPS, LOGS_UNSCOPED, API_KEYS, LEASES, ASSUMED_ROLES)


def _regional(target: Target, template: str) -> list[str]:
    return [template.format(p=target.partition, r=region, a=target.account, s=target.config.service,
                            t=target.config.table.name) for region in target.config.regions]


def _api_gateway(target: Target, path: str) -> list[str]:
    return [f"arn:{target.partition}:apigateway:{region}::{path}" for region in target.config.regions]


def _service_linked_roles(target: Target) -> list[tuple[str, str]]:
    """(service name, role name) of the service-linked roles the config's stack may make AWS create."""
    return [*([DYNAMODB_REPLICATION] if _has_replicas(target.config) else []), API_GATEWAY_OPS]


def _hosted_zone(target: Target) -> list[str]:
    zone = target.config.domain.hosted_zone
    # A zone named by its DNS name is found by listing; its id is only known at run time.
    zone_id = short_zone_id(zone) if is_zone_id(zone) else "*"
    return [f"arn:{target.partition}:route53:::hostedzone/{zone_id}"]


def scope_resources(scope: Scope, target: Target) -> list[str]:
    """The resource ARNs (or `*`) a scope stands for."""
    p, a, s = target.partition, target.account, target.config.service
    if scope in (IDENTITY, ACM_UNSCOPED, ROUTE53_UNSCOPED):
        return ["*"]
    if scope == TABLE:
        return _regional(target, "arn:{p}:dynamodb:{r}:{a}:table/{t}")
    if scope == WITNESS_TABLE:
        witness = target.config.table.witness
        return [f"arn:{p}:dynamodb:{witness}:{a}:table/{target.config.table.name}"] if witness else []
    if scope == FUNCTIONS:
        return _regional(target, "arn:{p}:lambda:{r}:{a}:function:{s}-*")
    if scope in (ROLES, PASS_ROLE):
        # One role per function and region under the path /multiregion/; `{service}-lambda` is the
        # stack-wide role of earlier releases, which `up` removes.
        return [f"arn:{p}:iam::{a}:role/multiregion/{s}-*", f"arn:{p}:iam::{a}:role/{s}-lambda"]
    if scope == LOG_GROUPS:
        # `*` in an ARN matches any characters, `:` included: this covers the groups and their streams.
        return _regional(target, "arn:{p}:logs:{r}:{a}:log-group:/aws/lambda/{s}-*")
    if scope == LOGS_UNSCOPED:
        return _regional(target, "arn:{p}:logs:{r}:{a}:log-group:*")
    if scope == API_KEYS:  # each collection and its members
        return [*_api_gateway(target, "/apikeys*"), *_api_gateway(target, "/usageplans*")]
    if scope == LEASES:
        return [f"arn:{p}:dynamodb:{target.config.primary}:{a}:table/multiregion-leases"]
    if scope == SERVICE_LINKED_ROLES:
        return [f"arn:{p}:iam::{a}:role/aws-service-role/{service}/{role}"
                for service, role in _service_linked_roles(target)]
    if scope == CERTIFICATES:
        return _regional(target, "arn:{p}:acm:{r}:{a}:certificate/*")
    if scope == ASSUMED_ROLES:
        return sorted({access.role_arn for _, access in target.config.access if access.role_arn})
    paths = {REST_APIS: "/restapis", REST_API: "/restapis/*", DOMAIN_NAMES: "/domainnames",
             DOMAIN_NAME: "/domainnames/*", API_TAGS: "/tags/*"}
    if scope in paths:
        return _api_gateway(target, paths[scope])
    if scope == HOSTED_ZONE:
        return _hosted_zone(target)
    kinds = {HEALTH_CHECKS: "healthcheck", TRAFFIC_POLICIES: "trafficpolicy", POLICY_RECORDS: "trafficpolicyinstance",
             CHANGES: "change"}
    return [f"arn:{p}:route53:::{kinds[scope]}/*"]


def scope_condition(scope: Scope, target: Target) -> dict[str, Any] | None:
    if scope == PASS_ROLE:
        return {"StringEquals": {"iam:PassedToService": LAMBDA_PRINCIPAL}}
    if scope == SERVICE_LINKED_ROLES:
        names = [service for service, _ in _service_linked_roles(target)]
        return {"StringEquals": {"iam:AWSServiceName": names[0] if len(names) == 1 else names}}
    return None


# ---------------------------------------------------------------------------------------------- table

# What part of the config a permission depends on (`Permission.needs`, `Grant.needs`).
ALWAYS = ""
TRAFFIC_POLICY = "traffic-policy"  # routing.mode: traffic-policy
ZONE_BY_NAME = "zone-by-name"  # domain.hosted_zone is a DNS name, not an id
CREATE_ZONE = "create-zone"  # domain.create_zone: true
REPLICAS = "replicas"  # more than one region: a global table with replicas
API_KEY_AUTH = "api-key"  # api.auth: api-key
CORS = "cors"  # api.cors
THROTTLE = "throttle"  # api.throttle
WITNESS = "witness"  # table.witness: a strong table's witness region
ASSUME_ROLES = "assume-roles"  # a role_arn in the aws: section


def _has_replicas(config: Config) -> bool:
    return len(config.regions) > 1


def needed(needs: str, config: Config) -> bool:
    if needs == TRAFFIC_POLICY:
        return config.routing.mode == "traffic-policy"
    if needs == ZONE_BY_NAME:
        return not is_zone_id(config.domain.hosted_zone)
    if needs == CREATE_ZONE:
        return config.domain.create_zone
    if needs == REPLICAS:
        return _has_replicas(config)
    if needs == API_KEY_AUTH:
        return config.api.auth == "api-key"
    if needs == CORS:
        return bool(config.api.cors_origins)
    if needs == THROTTLE:
        return config.api.throttle is not None
    if needs == WITNESS:
        return config.table.witness is not None
    if needs == ASSUME_ROLES:
        return any(access.role_arn for _, access in config.access)
    return True


@dataclass(frozen=True)
class Grant:
    """One IAM action an operation needs, on one scope."""

    action: str
    scope: Scope
    why: str = ""  # why an operation needs an action besides its own
    only_when: str = ""  # when the operation needs it, if not every time it is made
    needs: str = ALWAYS


@dataclass(frozen=True)
class Permission:
    """One operation the tool calls through boto3, and what IAM must allow for it."""

    service: str  # boto3 service name
    operation: str  # the API operation, as botocore names it
    grants: tuple[Grant, ...]
    # When the tool makes the call, if the lifecycle of a stack (up, plan, status, failover-test in both
    # modes, down --delete-data on the demo config) does not: drift repair, a retry, a mode switch.
    only_when: str = ""
    needs: str = ALWAYS

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(g.action for g in self.grants)


def _p(service: str, operation: str, *grants: Grant | Scope, only_when: str = "", needs: str = ALWAYS) -> Permission:
    """A permission; a bare Scope grants the operation's own action on it (`{service}:{operation}`: the
    IAM prefix of each service the tool uses is its boto3 name)."""
    own = f"{service}:{operation}"
    return Permission(service, operation,
                      tuple(g if isinstance(g, Grant) else Grant(own, g) for g in grants), only_when, needs)


def _api(operation: str, verb: str, scope: Scope, *extra: Grant, only_when: str = "", needs: str = ALWAYS
         ) -> Permission:
    return _p("apigateway", operation, Grant(f"apigateway:{verb}", scope), *extra, only_when=only_when, needs=needs)


DRIFT = "repairing drift (someone changed the resource by hand)"
TAG_ON_CREATE = "tags sent with the create call"
# Tags sent with a create call are authorized as a tagging action of their own: documented for Lambda
# (configuration-tags: lambda:TagResource "to tag on create"), seen as an AccessDenied for API Gateway
# (apigateway:PUT on /tags/{the new resource's ARN}). For DynamoDB, IAM and ACM it could not be checked;
# the tagging action is granted on the stack's own resources only, so that a tag-on-create check cannot
# fail the first `up`.
REPLICA_ITEMS = ("dynamodb:CreateTable", "dynamodb:CreateTableReplica", "dynamodb:Scan", "dynamodb:Query",
                 "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem",
                 "dynamodb:BatchWriteItem")

PERMISSIONS: tuple[Permission, ...] = (
    # STS: the first call of every run. AWS documents that GetCallerIdentity needs no permission (even a
    # Deny cannot block it); it is listed so that the policy says everything the tool calls.
    _p("sts", "GetCallerIdentity", IDENTITY),
    # A region's role (the config's aws: section), assumed with the credentials in use. Those need this
    # action; the role itself needs the rest of the policy.
    _p("sts", "AssumeRole", ASSUMED_ROLES, needs=ASSUME_ROLES),
    # DynamoDB: the table in the primary, its replicas (2019.11.21: UpdateTable(ReplicaUpdates) from the
    # primary; AWS then needs these actions on the table in the replica's region too, DynamoDB developer
    # guide, global tables security), and the failover test's own items.
    _p("dynamodb", "DescribeTable", TABLE, LEASES),
    _p("dynamodb", "ListTagsOfResource", TABLE),
    _p("dynamodb", "Scan", TABLE),
    _p("dynamodb", "CreateTable", TABLE, Grant("dynamodb:TagResource", TABLE, why=TAG_ON_CREATE),
       Grant("dynamodb:CreateTable", LEASES, why="the lease table", only_when="the account's first run"),
       Grant("dynamodb:TagResource", LEASES, why=TAG_ON_CREATE, only_when="the account's first run")),
    _p("dynamodb", "UpdateTable", TABLE,
       *(Grant(a, TABLE, why="adding a replica (on the table in its region)", needs=REPLICAS) for a in REPLICA_ITEMS),
       *(Grant(a, TABLE, why="removing a replica (on the table in its region)", needs=REPLICAS)
         for a in ("dynamodb:DeleteTable", "dynamodb:DeleteTableReplica")),
       Grant("iam:CreateServiceLinkedRole", SERVICE_LINKED_ROLES, needs=REPLICAS,
             why="the account's first replica: AWS creates DynamoDB's replication role"),
       # The Service Authorization Reference lists these among UpdateTable's actions (resource type table);
       # which ARN AWS checks them on (the primary's table or the witness region's) is not stated there and
       # cannot be checked here: both are granted.
       *(Grant(a, scope, why="a strong table's witness (table.witness), made and removed with the replicas",
               needs=WITNESS)
         for a in ("dynamodb:CreateGlobalTableWitness", "dynamodb:DeleteGlobalTableWitness")
         for scope in (TABLE, WITNESS_TABLE))),
    _p("dynamodb", "DeleteTable", TABLE),
    _p("dynamodb", "GetItem", TABLE, LEASES),
    _p("dynamodb", "DeleteItem", TABLE, LEASES),
    _p("dynamodb", "BatchGetItem", TABLE, only_when="the failover test reading back what each region holds"),
    # Resource policies: read on every run (a drill's isolation left behind is drift); `failover-test
    # --fault isolate` appends a Deny of DynamoDB's replication role to a replica's policy and removes it.
    _p("dynamodb", "GetResourcePolicy", TABLE),
    _p("dynamodb", "PutResourcePolicy", TABLE, only_when="failover-test --fault isolate, or lifting its isolation"),
    _p("dynamodb", "DeleteResourcePolicy", TABLE,
       only_when="failover-test --fault isolate, or lifting its isolation"),
    # Lambda: the stack's functions in every region. GetFunction returns a function's tags (how the tool
    # knows it is the stack's) only to a caller allowed lambda:ListTags (Lambda API reference).
    _p("lambda", "GetFunction", FUNCTIONS, Grant("lambda:ListTags", FUNCTIONS, why="its tags in the answer")),
    _p("lambda", "GetFunctionConfiguration", FUNCTIONS),
    _p("lambda", "GetFunctionConcurrency", FUNCTIONS),
    _p("lambda", "GetPolicy", FUNCTIONS),
    _p("lambda", "CreateFunction", FUNCTIONS, Grant("lambda:TagResource", FUNCTIONS, why=TAG_ON_CREATE),
       Grant("iam:PassRole", PASS_ROLE, why="the execution role")),
    _p("lambda", "UpdateFunctionCode", FUNCTIONS, only_when="the deployed code differs from the package"),
    _p("lambda", "UpdateFunctionConfiguration", FUNCTIONS,
       Grant("iam:PassRole", PASS_ROLE, why="the execution role", only_when="the function's role changes")),
    _p("lambda", "TagResource", FUNCTIONS, only_when=DRIFT),
    _p("lambda", "PutFunctionConcurrency", FUNCTIONS),
    _p("lambda", "DeleteFunctionConcurrency", FUNCTIONS),
    _p("lambda", "AddPermission", FUNCTIONS),
    _p("lambda", "RemovePermission", FUNCTIONS),
    _p("lambda", "DeleteFunction", FUNCTIONS),
    # IAM: the execution roles, named after the stack.
    _p("iam", "GetRole", ROLES),
    _p("iam", "ListRoleTags", ROLES),
    _p("iam", "ListRolePolicies", ROLES),
    _p("iam", "ListAttachedRolePolicies", ROLES),
    _p("iam", "GetRolePolicy", ROLES),
    _p("iam", "CreateRole", ROLES, Grant("iam:TagRole", ROLES, why=TAG_ON_CREATE)),
    _p("iam", "PutRolePolicy", ROLES),
    _p("iam", "UpdateAssumeRolePolicy", ROLES, only_when=DRIFT),
    _p("iam", "DetachRolePolicy", ROLES, only_when=DRIFT),
    _p("iam", "TagRole", ROLES, only_when=DRIFT),
    _p("iam", "DeleteRolePolicy", ROLES),
    _p("iam", "DeleteRole", ROLES),
    # API Gateway: REST APIs and regional custom domains; the action is the verb of the REST call.
    _api("GetRestApis", "GET", REST_APIS),
    _api("CreateRestApi", "POST", REST_APIS, Grant("apigateway:PUT", API_TAGS, why=TAG_ON_CREATE)),
    _api("UpdateRestApi", "PATCH", REST_API, only_when=DRIFT),
    _api("DeleteRestApi", "DELETE", REST_API),
    _api("GetResources", "GET", REST_API),
    _api("CreateResource", "POST", REST_API),
    _api("DeleteResource", "DELETE", REST_API, only_when=DRIFT),
    _api("PutMethod", "PUT", REST_API),
    _api("DeleteMethod", "DELETE", REST_API, only_when=DRIFT),
    _api("PutIntegration", "PUT", REST_API),
    _api("GetStage", "GET", REST_API),
    _api("GetDeployment", "GET", REST_API),
    _api("CreateDeployment", "POST", REST_API),
    _api("GetDomainName", "GET", DOMAIN_NAME),
    _api("CreateDomainName", "POST", DOMAIN_NAMES, Grant("apigateway:PUT", API_TAGS, why=TAG_ON_CREATE),
         Grant("iam:CreateServiceLinkedRole", SERVICE_LINKED_ROLES,
               why="the account's first custom domain: AWS creates API Gateway's service-linked role")),
    _api("UpdateDomainName", "PATCH", DOMAIN_NAME, only_when=DRIFT),
    _api("DeleteDomainName", "DELETE", DOMAIN_NAME),
    _api("GetBasePathMappings", "GET", DOMAIN_NAME),
    _api("CreateBasePathMapping", "POST", DOMAIN_NAME),
    _api("UpdateBasePathMapping", "PATCH", DOMAIN_NAME, only_when=DRIFT),
    _api("DeleteBasePathMapping", "DELETE", DOMAIN_NAME),
    # ACM: a certificate per region. `down` lists certificates in every region AWS has (the validation
    # record is shared by all certificates of the name); listing has no resource type.
    _p("acm", "ListCertificates", ACM_UNSCOPED),
    _p("acm", "ListTagsForCertificate", CERTIFICATES),
    _p("acm", "DescribeCertificate", CERTIFICATES),
    _p("acm", "RequestCertificate", ACM_UNSCOPED,
       Grant("acm:AddTagsToCertificate", CERTIFICATES, why=TAG_ON_CREATE)),
    _p("acm", "AddTagsToCertificate", CERTIFICATES,
       only_when="a request answered with the untagged certificate of an interrupted run"),
    _p("acm", "DeleteCertificate", CERTIFICATES),
    # Route 53: global ARNs. Listings, creations and TestDNSAnswer have no resource type.
    _p("route53", "ListHostedZonesByName", ROUTE53_UNSCOPED, needs=ZONE_BY_NAME),
    _p("route53", "GetHostedZone", HOSTED_ZONE),
    _p("route53", "CreateHostedZone", ROUTE53_UNSCOPED, needs=CREATE_ZONE),
    _p("route53", "DeleteHostedZone", HOSTED_ZONE, needs=CREATE_ZONE),
    _p("route53", "ListTagsForResource", HOSTED_ZONE),
    _p("route53", "ChangeTagsForResource", HOSTED_ZONE, HEALTH_CHECKS),
    _p("route53", "ListResourceRecordSets", HOSTED_ZONE),
    _p("route53", "ChangeResourceRecordSets", HOSTED_ZONE),
    _p("route53", "GetChange", CHANGES,
       only_when="latency-records mode (or `down` of its records): waiting for a change to be INSYNC"),
    _p("route53", "ListHealthChecks", ROUTE53_UNSCOPED),
    _p("route53", "ListTagsForResources", HEALTH_CHECKS),
    _p("route53", "CreateHealthCheck", ROUTE53_UNSCOPED),
    _p("route53", "GetHealthCheckStatus", HEALTH_CHECKS),
    _p("route53", "UpdateHealthCheck", HEALTH_CHECKS, only_when=DRIFT),
    _p("route53", "DeleteHealthCheck", HEALTH_CHECKS),
    _p("route53", "ListTrafficPolicies", ROUTE53_UNSCOPED),
    _p("route53", "GetTrafficPolicy", TRAFFIC_POLICIES),
    _p("route53", "ListTrafficPolicyVersions", TRAFFIC_POLICIES),
    _p("route53", "CreateTrafficPolicy", ROUTE53_UNSCOPED, needs=TRAFFIC_POLICY),
    _p("route53", "CreateTrafficPolicyVersion", TRAFFIC_POLICIES, needs=TRAFFIC_POLICY,
       only_when="the policy document changed (a region, endpoint or health check)"),
    _p("route53", "DeleteTrafficPolicy", TRAFFIC_POLICIES),
    _p("route53", "ListTrafficPolicyInstancesByHostedZone", HOSTED_ZONE),
    _p("route53", "GetTrafficPolicyInstance", POLICY_RECORDS),
    _p("route53", "CreateTrafficPolicyInstance", HOSTED_ZONE, TRAFFIC_POLICIES, needs=TRAFFIC_POLICY),
    # On the instance and on the policy it moves to, as for CreateTrafficPolicyInstance.
    _p("route53", "UpdateTrafficPolicyInstance", POLICY_RECORDS, TRAFFIC_POLICIES, needs=TRAFFIC_POLICY,
       only_when="a new policy version, a TTL change or a failed instance"),
    _p("route53", "DeleteTrafficPolicyInstance", POLICY_RECORDS),
    _p("route53", "TestDNSAnswer", ROUTE53_UNSCOPED),
    # CloudWatch Logs: the tool creates each function's log group with its retention (the functions' roles
    # may not create groups), and `multiregion logs` reads them.
    _p("logs", "DescribeLogGroups", LOGS_UNSCOPED),
    _p("logs", "CreateLogGroup", LOG_GROUPS, Grant("logs:TagResource", LOG_GROUPS, why=TAG_ON_CREATE)),
    _p("logs", "PutRetentionPolicy", LOG_GROUPS),
    _p("logs", "DeleteLogGroup", LOG_GROUPS, only_when="down --delete-data"),
    _p("logs", "FilterLogEvents", LOG_GROUPS, only_when="multiregion logs"),
    # API keys and usage plans (api.auth: api-key; read in every run, to remove them when auth is off).
    _api("GetApiKeys", "GET", API_KEYS),
    _api("GetUsagePlans", "GET", USAGE_PLANS),
    _api("GetUsagePlanKeys", "GET", USAGE_PLANS, needs=API_KEY_AUTH),
    _api("CreateApiKey", "POST", API_KEYS, Grant("apigateway:PUT", API_TAGS, why=TAG_ON_CREATE),
         needs=API_KEY_AUTH),
    _api("DeleteApiKey", "DELETE", API_KEYS, only_when="api.auth turned off, a key replaced, or down"),
    _api("CreateUsagePlan", "POST", USAGE_PLANS, Grant("apigateway:PUT", API_TAGS, why=TAG_ON_CREATE),
         needs=API_KEY_AUTH),
    _api("UpdateUsagePlan", "PATCH", USAGE_PLANS, only_when="a usage plan moved to another API, or removed"),
    _api("DeleteUsagePlan", "DELETE", USAGE_PLANS, only_when="api.auth turned off, or down"),
    _api("CreateUsagePlanKey", "POST", USAGE_PLANS, needs=API_KEY_AUTH),
    # CORS preflights (a MOCK OPTIONS method) and stage throttling.
    _api("PutMethodResponse", "PUT", REST_API, needs=CORS),
    _api("PutIntegrationResponse", "PUT", REST_API, needs=CORS),
    _api("UpdateStage", "PATCH", REST_API, needs=THROTTLE),
    # The stack's lease (multiregion.lease): one item per stack in a table of the account.
    # (GetItem, DeleteItem, DescribeTable and CreateTable on it are granted with the stack's table above.)
    _p("dynamodb", "PutItem", LEASES),
    _p("dynamodb", "UpdateItem", LEASES, only_when="renewing the lease of a run longer than a few minutes"),
)

BY_OPERATION: dict[tuple[str, str], Permission] = {(p.service, p.operation): p for p in PERMISSIONS}


def permissions_for(config: Config) -> list[tuple[Permission, Grant]]:
    """Every (operation, grant) the config's stack needs."""
    return [(p, g) for p in PERMISSIONS if needed(p.needs, config) for g in p.grants if needed(g.needs, config)]


# --------------------------------------------------------------------------------------------- policy


def statements(config: Config, account: str, partition: str) -> list[dict[str, Any]]:
    """One statement per scope in use, its actions sorted, in the order of SCOPES."""
    target = Target(config, account, partition)
    actions: dict[Scope, set[str]] = {}
    for _, grant in permissions_for(config):
        actions.setdefault(grant.scope, set()).add(grant.action)
    out = []
    for scope in SCOPES:
        if scope not in actions:
            continue
        statement: dict[str, Any] = {"Sid": scope.sid, "Effect": "Allow", "Action": sorted(actions[scope]),
                                     "Resource": _one_or_many(scope_resources(scope, target))}
        condition = scope_condition(scope, target)
        if condition:
            statement["Condition"] = condition
        out.append(statement)
    return out


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def size(document: Any) -> int:
    """A document's size as IAM counts it: characters without whitespace."""
    return len(json.dumps(document, separators=(",", ":")))


def document(stmts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": list(stmts)}


def operator_policies(config: Config, account: str = UNKNOWN_ACCOUNT, partition: str = "aws",
                      limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """The operator's policy as managed policy documents, each within `limit`: one when it fits, else the
    statements spread over as few documents as the first-fit order gives (a statement too large alone is
    split by its resources, Sids numbered)."""
    docs: list[list[dict[str, Any]]] = []
    for statement in _fitting(statements(config, account, partition), limit):
        for stmts in docs:
            if size(document([*stmts, statement])) <= limit:
                stmts.append(statement)
                break
        else:
            docs.append([statement])
    return [document(stmts) for stmts in docs]


def _fitting(stmts: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    out = []
    for statement in stmts:
        if size(document([statement])) <= limit:
            out.append(statement)
            continue
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        chunk: list[str] = []
        parts: list[list[str]] = []
        for arn in resources:
            if chunk and size(document([dict(statement, Resource=[*chunk, arn])])) > limit:
                parts.append(chunk)
                chunk = []
            chunk.append(arn)
        parts.append(chunk)
        out += [dict(statement, Sid=f"{statement['Sid']}{i + 1}", Resource=_one_or_many(part))
                for i, part in enumerate(parts)]
    return out


class PolicyTooLarge(Exception):
    """The config's policy needs more than one managed policy document."""


def operator_policy(config: Config, account: str = UNKNOWN_ACCOUNT, partition: str = "aws") -> dict[str, Any]:
    """The one IAM policy document the deploy role needs for this config (see `operator_policies` when it
    does not fit in one managed policy)."""
    docs = operator_policies(config, account, partition)
    if len(docs) > 1:
        raise PolicyTooLarge(f"the policy of {len(config.regions)} regions needs {len(docs)} managed policies of "
                             f"at most {MANAGED_POLICY_LIMIT} characters each: use operator_policies()")
    return docs[0]


def describe(config: Config, account: str = UNKNOWN_ACCOUNT, partition: str = "aws") -> str:
    """What `multiregion iam-policy` prints: the policy document as JSON, or, when the policy does not fit in
    one managed policy, a JSON array of documents to create one managed policy from each.

    Without the account (`*`), the ARNs match the stack's resources in any account."""
    docs = operator_policies(config, account, partition)
    return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2)
