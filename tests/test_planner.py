"""Every stage's diff on its own: hand-built snapshots in, exact changes out. No AWS, no sandbox.

Each test names what AWS holds (the snapshot) and what the dependencies handed over (the inputs), and
checks the changes and the calls they carry, parameter by parameter where it matters.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from multiregion import app
from multiregion.config import parse_config
from multiregion.engine import GLOBAL, TAG_REGION, TAG_STACK, Conflict, Env, Inputs, NodePlan, StepError
from multiregion.lookups.functions import RoleState
from multiregion.lookups.health_checks import TAG_RETIRED
from multiregion.plan import Blob, Builtin, Call, Change, Ref, Wait, monthly_cost
from multiregion.stages.api import ApiSnapshot, ApiStage, deployment_description
from multiregion.stages.api_keys import ApiKeysSnapshot, ApiKeysStage, RegionKeys
from multiregion.stages.certificates import CertificateSnapshot, CertificatesStage
from multiregion.stages.domains import DomainSnapshot, DomainsStage
from multiregion.stages.functions import DeployedFunction, FunctionsSnapshot, FunctionsStage
from multiregion.stages.global_table import GlobalTableSnapshot, GlobalTableStage
from multiregion.stages.health_checks import HealthCheckSnapshot, HealthChecksStage, wanted_config
from multiregion.stages.roles import LAMBDA_TRUST_POLICY, RolesSnapshot, RolesStage, permissions_policy
from multiregion.stages.routing import RoutingSnapshot, RoutingStage, endpoints, policy_document
from multiregion.stages.tables import TableSnapshot, TablesStage
from multiregion.stages.zone import HostedZoneStage, ZoneSnapshot, reference_seed

ACCOUNT = "123456789012"
REGIONS = ("eu-west-1", "us-east-1")
DOMAIN = "api.example.com"
CONFIG = parse_config({"service": "items", "regions": list(REGIONS), "endpoint": "http://127.0.0.1:9",
                       "table": {"name": "items"},
                       "domain": {"name": DOMAIN, "hosted_zone": "example.com", "create_zone": True},
                       "health_check": {"interval": 10, "failure_threshold": 2}})
ENV = Env(CONFIG, ACCOUNT, "aws", packages=app.build_packages(CONFIG))
NONE = Inputs()


def keys(plan: NodePlan) -> list[tuple[str, str, str]]:
    return [(c.region, c.action, c.resource) for c in plan.changes]


def calls(change: Change) -> list[str]:
    return [op.method if isinstance(op, (Call, Wait)) else op.name for op in change.operations]


def tags(region: str | None = None) -> dict[str, str]:
    return ENV.tags(region)


# --------------------------------------------------------------------------------------------- tables


TABLE = {"TableName": "items", "TableArn": "arn:aws:dynamodb:eu-west-1:1:table/items", "TableStatus": "ACTIVE",
         "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
         "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
         "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}


def test_tables_fresh_creates_the_table_and_waits_for_it() -> None:
    plan = TablesStage().diff(ENV, "eu-west-1", TableSnapshot(None), NONE)
    assert keys(plan) == [("eu-west-1", "create", "table items")]
    create, wait = plan.changes[0].operations
    assert isinstance(create, Call) and create.method == "create_table"
    assert create.params["BillingMode"] == "PAY_PER_REQUEST"
    assert create.params["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert create.params["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert isinstance(wait, Wait) and wait.ready == ("ACTIVE",)


def test_tables_converged_plans_nothing_and_drift_is_repaired_one_update_at_a_time() -> None:
    assert keys(TablesStage().diff(ENV, "eu-west-1", TableSnapshot(TABLE, tags()), NONE)) == []
    drifted = {**TABLE, "BillingModeSummary": {"BillingMode": "PROVISIONED"}, "StreamSpecification": {}}
    plan = TablesStage().diff(ENV, "eu-west-1", TableSnapshot(drifted, tags()), NONE)
    assert [c.reason for c in plan.changes] == ["billing PROVISIONED -> PAY_PER_REQUEST",
                                                "stream off -> NEW_AND_OLD_IMAGES"]
    assert all(calls(c) == ["update_table", "describe_table"] for c in plan.changes)
    still_creating = {**TABLE, "TableStatus": "CREATING"}
    plan = TablesStage().diff(ENV, "eu-west-1", TableSnapshot(still_creating, tags()), NONE)
    assert plan.changes == () and [w.ready for w in plan.waits] == [("ACTIVE",)]


def test_tables_not_ours_or_another_key_is_a_conflict_and_down_keeps_data() -> None:
    with pytest.raises(Conflict, match="not tagged"):
        TablesStage().diff(ENV, "eu-west-1", TableSnapshot(TABLE, {}), NONE)
    with pytest.raises(Conflict, match="key schema"):
        TablesStage().diff(ENV, "eu-west-1", TableSnapshot(
            {**TABLE, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}, tags()), NONE)
    kept = TablesStage().destroy(ENV, "eu-west-1", TableSnapshot(TABLE, tags(), holds_items=True))
    assert kept.changes == () and "holds items" in kept.warnings[0]
    forced = Env(CONFIG, ACCOUNT, "aws", delete_data=True)
    assert keys(TablesStage().destroy(forced, "eu-west-1", TableSnapshot(TABLE, tags(), holds_items=True))) == [
        ("eu-west-1", "delete", "table items")]


# --------------------------------------------------------------------------------------- global table


def test_global_table_adds_each_missing_replica_and_waits_for_it() -> None:
    plan = GlobalTableStage().diff(ENV, GLOBAL, GlobalTableSnapshot(TABLE), NONE)
    assert keys(plan) == [("us-east-1", "create", "replica items")]
    update = plan.changes[0].operations[0]
    assert isinstance(update, Call) and update.region == "eu-west-1"  # from the primary
    assert update.params["ReplicaUpdates"] == [{"Create": {"RegionName": "us-east-1"}}]
    assert calls(plan.changes[0]) == ["update_table", "describe_table", "describe_table"]


def test_global_table_keeps_replicas_of_dropped_regions_unless_pruned() -> None:
    table = {**TABLE, "Replicas": [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"},
                                   {"RegionName": "ap-south-1", "ReplicaStatus": "ACTIVE"}]}
    kept = GlobalTableStage().diff(ENV, GLOBAL, GlobalTableSnapshot(table), NONE)
    assert kept.changes == () and "ap-south-1" in kept.warnings[0]
    pruned = GlobalTableStage().diff(Env(CONFIG, ACCOUNT, "aws", prune=True), GLOBAL, GlobalTableSnapshot(table), NONE)
    assert keys(pruned) == [("ap-south-1", "delete", "replica items")]
    delete = pruned.changes[0].operations[1]
    assert isinstance(delete, Call) and delete.params["ReplicaUpdates"] == [{"Delete": {"RegionName": "ap-south-1"}}]
    assert delete.retry and "replicated" in delete.retry[0].message


def test_global_table_refuses_a_region_that_already_holds_a_table() -> None:
    with pytest.raises(Conflict, match="already exists there"):
        GlobalTableStage().diff(ENV, GLOBAL, GlobalTableSnapshot(TABLE, occupied=("us-east-1",)), NONE)


STRONG_CONFIG = parse_config({"service": "items", "regions": ["eu-west-1", "eu-west-2"], "endpoint": "http://127.0.0.1:9",
                              "table": {"name": "items", "consistency": "strong", "witness": "eu-west-3"},
                              "domain": {"name": DOMAIN, "hosted_zone": "example.com", "create_zone": True}})
STRONG_ENV = Env(STRONG_CONFIG, ACCOUNT, "aws")


def test_a_strong_global_table_is_made_in_one_update_with_its_witness() -> None:
    plan = GlobalTableStage().diff(STRONG_ENV, GLOBAL, GlobalTableSnapshot(TABLE), NONE)
    assert keys(plan) == [("eu-west-1", "create", "global table items (strong)")]
    update = plan.changes[0].operations[0]
    assert isinstance(update, Call) and update.method == "update_table" and update.region == "eu-west-1"
    assert update.params == {"TableName": "items", "MultiRegionConsistency": "STRONG",
                             "ReplicaUpdates": [{"Create": {"RegionName": "eu-west-2"}}],
                             "GlobalTableWitnessUpdates": [{"Create": {"RegionName": "eu-west-3"}}]}
    waits = [op.what for op in plan.changes[0].operations[1:] if isinstance(op, Wait)]
    assert waits == ["replica items in eu-west-2 ACTIVE", "witness items in eu-west-3 ACTIVE", "table items ACTIVE"]


def test_a_strong_table_is_made_only_of_an_empty_table_and_then_left_alone() -> None:
    with pytest.raises(Conflict, match="empty table"):
        GlobalTableStage().diff(STRONG_ENV, GLOBAL, GlobalTableSnapshot(TABLE, holds_items=True), NONE)
    made = {**TABLE, "MultiRegionConsistency": "STRONG",
            "Replicas": [{"RegionName": "eu-west-2", "ReplicaStatus": "ACTIVE"}],
            "GlobalTableWitnesses": [{"RegionName": "eu-west-3", "WitnessStatus": "ACTIVE"}]}
    assert GlobalTableStage().diff(STRONG_ENV, GLOBAL, GlobalTableSnapshot(made), NONE) == NodePlan()
    moved = {**made, "GlobalTableWitnesses": [{"RegionName": "eu-central-1", "WitnessStatus": "ACTIVE"}]}
    with pytest.raises(Conflict, match="neither gains nor loses"):
        GlobalTableStage().diff(STRONG_ENV, GLOBAL, GlobalTableSnapshot(moved), NONE)


def test_the_mode_of_a_global_table_is_never_switched() -> None:
    eventual = {**TABLE, "Replicas": [{"RegionName": "eu-west-2", "ReplicaStatus": "ACTIVE"}]}
    with pytest.raises(Conflict, match="is EVENTUAL, the config asks for STRONG") as err:
        GlobalTableStage().diff(STRONG_ENV, GLOBAL, GlobalTableSnapshot(eventual), NONE)
    assert "table.consistency: eventual" in err.value.hint
    strong = {**TABLE, "MultiRegionConsistency": "STRONG",
              "Replicas": [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"}]}
    with pytest.raises(Conflict, match="is STRONG, the config asks for EVENTUAL"):
        GlobalTableStage().diff(ENV, GLOBAL, GlobalTableSnapshot(strong), NONE)


def test_a_strong_global_table_comes_down_in_one_update() -> None:
    made = {**TABLE, "MultiRegionConsistency": "STRONG",
            "Replicas": [{"RegionName": "eu-west-2", "ReplicaStatus": "ACTIVE"}],
            "GlobalTableWitnesses": [{"RegionName": "eu-west-3", "WitnessStatus": "ACTIVE"}]}
    plan = GlobalTableStage().destroy(STRONG_ENV, GLOBAL, GlobalTableSnapshot(made))
    assert keys(plan) == [("eu-west-1", "delete", "global table items (strong)")]
    updates = [op for op in plan.changes[0].operations if isinstance(op, Call)]
    assert [u.params for u in updates] == [{"TableName": "items",
                                            "ReplicaUpdates": [{"Delete": {"RegionName": "eu-west-2"}}],
                                            "GlobalTableWitnessUpdates": [{"Delete": {"RegionName": "eu-west-3"}}]}]


# ---------------------------------------------------------------------------------------------- roles


def role_state(component: str, region: str = "eu-west-1", **changes: Any) -> RoleState:
    actions = {"put": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
               "get": ["dynamodb:GetItem", "dynamodb:Query"], "health": []}[component]
    name = f"items-{component}-{region}"
    base: dict[str, Any] = {"name": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/multiregion/{name}",
                            "trust": LAMBDA_TRUST_POLICY, "tags": tags(region), "inline": ("least-privilege",),
                            "attached": (),
                            "policies": {"least-privilege": permissions_policy(ENV, region, component, actions)}}
    return RoleState(**{**base, **changes})


def converged_roles(region: str = "eu-west-1") -> dict[str, RoleState | None]:
    return {f"items-{c}-{region}": role_state(c, region) for c in ("put", "get", "health")}


def test_roles_fresh_one_role_per_function_with_only_its_declared_access() -> None:
    plan = RolesStage().diff(ENV, "eu-west-1", RolesSnapshot({}), NONE)
    assert keys(plan) == [("eu-west-1", "create", f"role items-{c}-eu-west-1") for c in ("put", "get", "health")]
    policies = {c.resource: c.operations[1].params["PolicyDocument"].value for c in plan.changes}  # type: ignore
    put = policies["role items-put-eu-west-1"]["Statement"]
    assert put[0]["Action"] == ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert put[0]["Resource"] == [f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/items"]  # its own region only
    assert put[1]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert put[1]["Resource"] == [f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/items-put",
                                  f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/items-put:*"]
    assert policies["role items-get-eu-west-1"]["Statement"][0]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]
    assert [s["Sid"] for s in policies["role items-health-eu-west-1"]["Statement"]] == ["OwnLogs"]
    assert plan.outputs["role_arns"]["put"] == f"arn:aws:iam::{ACCOUNT}:role/multiregion/items-put-eu-west-1"


def test_roles_drift_is_listed_and_removed() -> None:
    assert keys(RolesStage().diff(ENV, "eu-west-1", RolesSnapshot(converged_roles()), NONE)) == []
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}
    drifted = {**converged_roles(), "items-put-eu-west-1": role_state(
        "put", inline=("least-privilege", "extra"), attached=("arn:aws:iam::aws:policy/Admin",),
        policies={"least-privilege": wide})}
    (change,) = RolesStage().diff(ENV, "eu-west-1", RolesSnapshot(drifted), NONE).changes
    assert change.reason == ("inline policy least-privilege differs from least privilege; drift: extra inline "
                             "policies extra; drift: attached policies arn:aws:iam::aws:policy/Admin")
    assert calls(change) == ["put_role_policy", "delete_role_policy", "detach_role_policy"]
    with pytest.raises(Conflict, match="not tagged"):
        RolesStage().diff(ENV, "eu-west-1", RolesSnapshot({**converged_roles(),
                                                           "items-get-eu-west-1": role_state("get", tags={})}), NONE)


def test_the_stack_wide_role_of_earlier_releases_goes_once_no_function_uses_it() -> None:
    legacy = RoleState("items-lambda", f"arn:aws:iam::{ACCOUNT}:role/items-lambda", LAMBDA_TRUST_POLICY, tags(),
                       ("items-lambda",), (), {})
    used = RolesStage().diff(ENV, "eu-west-1", RolesSnapshot(converged_roles(), legacy, ("us-east-1 items-get",)), NONE)
    assert used.changes == () and "next `up` removes it" in used.warnings[0]
    free = RolesStage().diff(ENV, "eu-west-1", RolesSnapshot(converged_roles(), legacy), NONE)
    assert keys(free) == [(GLOBAL, "delete", "role items-lambda")]
    assert calls(free.changes[0]) == ["delete_role_policy", "delete_role"]


# ------------------------------------------------------------------------------------------ functions


ROLE_INPUT = Inputs({("roles", "eu-west-1"): {"role_arns": {
    c: f"arn:aws:iam::{ACCOUNT}:role/multiregion/items-{c}-eu-west-1" for c in ("put", "get", "health")}}})


def deployed(component: str, **config: Any) -> DeployedFunction:
    function = next(f for f in app.functions(CONFIG) if f.component == component)
    configuration = {"Runtime": function.runtime, "Handler": function.handler, "MemorySize": 256, "Timeout": 10,
                     "Role": f"arn:aws:iam::{ACCOUNT}:role/multiregion/items-{component}-eu-west-1",
                     "State": "Active", "Architectures": ["x86_64"],
                     "LastUpdateStatus": "Successful", "CodeSha256": ENV.packages[component].sha256,
                     "Environment": {"Variables": dict(function.environment)}, **config}
    return DeployedFunction({"Configuration": configuration, "Tags": tags("eu-west-1")})


def test_functions_fresh_creates_each_with_its_zip_and_waits_until_active() -> None:
    plan = FunctionsStage().diff(ENV, "eu-west-1", FunctionsSnapshot({}), ROLE_INPUT)
    assert keys(plan) == [change for c in ("put", "get", "health") for change in (
        ("eu-west-1", "create", f"log group /aws/lambda/items-{c}"), ("eu-west-1", "create", f"function items-{c}"))]
    group = plan.changes[0]
    assert calls(group) == ["create_log_group", "put_retention_policy"]
    assert group.operations[1].params == {"logGroupName": "/aws/lambda/items-put", "retentionInDays": 30}  # type: ignore
    plan = NodePlan(changes=tuple(c for c in plan.changes if c.resource.startswith("function")))
    create = plan.changes[0].operations[0]
    assert isinstance(create, Call)
    assert create.params["Code"]["ZipFile"] == Blob(ENV.packages["put"].zip, "zip of items-put")
    assert create.params["Environment"] == {"Variables": {"TABLE_NAME": "items"}}
    assert any("cannot be assumed" in r.message for r in create.retry)  # IAM propagation is retried
    health = plan.changes[2].operations[0]
    assert isinstance(health, Call) and health.params["Environment"]["Variables"]["STATUS"] == "200"


GROUPS = {f"/aws/lambda/items-{c}": {"logGroupName": f"/aws/lambda/items-{c}", "retentionInDays": 30}
          for c in ("put", "get", "health")}


def test_functions_converged_plan_nothing_and_each_drift_is_its_own_reason() -> None:
    converged = FunctionsSnapshot({c: deployed(c) for c in ("put", "get", "health")}, GROUPS)
    assert keys(FunctionsStage().diff(ENV, "eu-west-1", converged, ROLE_INPUT)) == []
    drifted = FunctionsSnapshot({
        "put": deployed("put", CodeSha256="old"),
        "get": DeployedFunction(deployed("get").function, reserved_concurrency=0),
        "health": deployed("health", Environment={"Variables": {"TABLE_NAME": "items", "STATUS": "404"}}),
    }, {**GROUPS, "/aws/lambda/items-get": {"logGroupName": "/aws/lambda/items-get"}})
    plan = FunctionsStage().diff(ENV, "eu-west-1", drifted, ROLE_INPUT)
    reasons = {c.resource: c.reason for c in plan.changes}
    assert reasons["function items-put"].startswith("code old -> ")
    assert reasons["function items-get"] == "drift: reserved concurrency 0 throttles every call -> removed"
    assert reasons["function items-health"] == "drift: STATUS is 404, configured 200"
    assert reasons["log group /aws/lambda/items-get"] == "retention never expire -> 30 days"
    by_resource = {c.resource: calls(c) for c in plan.changes}
    assert by_resource["function items-put"] == ["update_function_code", "get_function_configuration"]
    assert by_resource["function items-get"] == ["delete_function_concurrency"]


def test_functions_still_updating_are_waited_for_before_anything_else() -> None:
    busy = FunctionsSnapshot({c: deployed(c, LastUpdateStatus="InProgress") for c in ("put", "get", "health")},
                             GROUPS)
    plan = FunctionsStage().diff(ENV, "eu-west-1", busy, ROLE_INPUT)
    assert plan.changes == () and len(plan.waits) == 3
    updating = FunctionsSnapshot({**busy.functions, "put": deployed("put", LastUpdateStatus="InProgress",
                                                                     MemorySize=128)}, GROUPS)
    (change,) = FunctionsStage().diff(ENV, "eu-west-1", updating, ROLE_INPUT).changes
    assert calls(change) == ["get_function_configuration", "update_function_configuration",
                             "get_function_configuration"]


# ------------------------------------------------------------------------------------------------ api


API_INPUT = Inputs()


def test_api_fresh_creates_api_routes_permissions_and_deployment_with_refs() -> None:
    plan = ApiStage().diff(ENV, "eu-west-1", ApiSnapshot(None), API_INPUT)
    assert keys(plan) == [
        ("eu-west-1", "create", "rest api items"),
        ("eu-west-1", "create", "route POST /item"),
        ("eu-west-1", "create", "route GET /item/{id}"),
        ("eu-west-1", "create", "route GET /health"),
        ("eu-west-1", "create", "permission items-put"),
        ("eu-west-1", "create", "permission items-get"),
        ("eu-west-1", "create", "permission items-health"),
        ("eu-west-1", "create", "stage prod"),
    ]
    api_id = plan.outputs["api_id"]
    assert isinstance(api_id, Ref) and api_id.node == "api/eu-west-1" and str(api_id).startswith("(the REST API")
    # GET /item/{id} builds on the /item resource that POST /item created a moment before.
    post, get = plan.changes[1], plan.changes[2]
    item = post.operations[0]
    assert isinstance(item, Call) and item.method == "create_resource" and item.params["pathPart"] == "item"
    child = get.operations[0]
    assert isinstance(child, Call) and child.params["pathPart"] == "{id}"
    assert child.params["parentId"] == Ref("api/eu-west-1", "resource /item",
                                           "(the resource /item created above in eu-west-1)")
    integration = post.operations[-1]
    assert isinstance(integration, Call) and integration.params["uri"] == (
        f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:{ACCOUNT}:"
        "function:items-put/invocations")
    permission = plan.changes[4].operations[-1]
    assert isinstance(permission, Call)
    assert str(permission.params["SourceArn"]) == (
        f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:(the REST API created above in eu-west-1)/*/POST/item")


def converged_api() -> ApiSnapshot:
    uri = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:" + ACCOUNT
    method = {"authorizationType": "NONE"}

    def route(component: str) -> dict[str, Any]:
        return {**method, "methodIntegration": {"type": "AWS_PROXY", "httpMethod": "POST",
                                                "uri": f"{uri}:function:items-{component}/invocations"}}

    resources = {"/": {"id": "r0"}, "/item": {"id": "r1", "resourceMethods": {"POST": route("put")}},
                 "/item/{id}": {"id": "r2", "resourceMethods": {"GET": route("get")}},
                 "/health": {"id": "r3", "resourceMethods": {"GET": route("health")}}}
    statements = {}
    routes = {"put": ("POST", "item"), "get": ("GET", "item/*"), "health": ("GET", "health")}
    for component, (verb, path) in routes.items():
        statements[component] = [{"Sid": "items-apigw-abc", "Effect": "Allow",
                                  "Principal": {"Service": "apigateway.amazonaws.com"},
                                  "Action": "lambda:InvokeFunction",
                                  "Condition": {"ArnLike": {"AWS:SourceArn":
                                                            f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:abc/*/{verb}/{path}"}}}]
    return ApiSnapshot({"id": "abc", "endpointConfiguration": {"types": ["REGIONAL"]}}, (), resources,
                       {"deploymentId": "d1"}, deployment_description(ENV, "eu-west-1"), statements)


def test_api_converged_plans_nothing_and_hands_over_its_id() -> None:
    plan = ApiStage().diff(ENV, "eu-west-1", converged_api(), API_INPUT)
    assert keys(plan) == [] and plan.outputs == {"api_id": "abc"}


def test_api_drift_an_extra_method_a_stale_permission_and_an_old_deployment() -> None:
    snapshot = converged_api()
    resources = {**snapshot.resources, "/item": {"id": "r1", "resourceMethods": {
        **snapshot.resources["/item"]["resourceMethods"], "DELETE": {"authorizationType": "NONE"}}}}
    statements = {**snapshot.statements, "put": [*snapshot.statements["put"], {"Sid": "items-apigw-old"}]}
    drifted = ApiSnapshot(snapshot.api, (), resources, snapshot.stage, "by hand", statements)
    plan = ApiStage().diff(ENV, "eu-west-1", drifted, API_INPUT)
    assert keys(plan) == [("eu-west-1", "delete", "route DELETE /item"),
                          ("eu-west-1", "delete", "permission items-put/items-apigw-old"),
                          ("eu-west-1", "update", "stage prod")]


# ---------------------------------------------------------------------------------------- hosted zone


ZONE = {"Id": "/hostedzone/Z1", "Name": "example.com.", "Config": {"PrivateZone": False},
        "CallerReference": reference_seed(ENV) + "0"}


def test_hosted_zone_is_created_only_when_the_config_says_so() -> None:
    plan = HostedZoneStage().diff(ENV, GLOBAL, ZoneSnapshot(None), NONE)
    (change,) = plan.changes
    assert (change.action, change.resource, change.cost and change.cost.amount) == (
        "create", "hosted zone example.com", Decimal("0.50"))
    assert isinstance(change.operations[0], Builtin) and change.operations[0].name == "hosted-zone.create"
    assert isinstance(plan.outputs["zone_id"], Ref)
    no_create = Env(parse_config({**_raw(), "domain": {"name": DOMAIN, "hosted_zone": "example.com"}}), ACCOUNT)
    with pytest.raises(StepError, match="no public hosted zone named example.com"):
        HostedZoneStage().diff(no_create, GLOBAL, ZoneSnapshot(None), NONE)


def test_hosted_zone_found_hands_over_its_id_and_an_untagged_one_of_ours_is_tagged() -> None:
    plan = HostedZoneStage().diff(ENV, GLOBAL, ZoneSnapshot(ZONE, tags()), NONE)
    assert plan.changes == () and plan.outputs == {"zone_id": "Z1"}
    plan = HostedZoneStage().diff(ENV, GLOBAL, ZoneSnapshot(ZONE, {}), NONE)
    assert [(c.action, c.reason) for c in plan.changes] == [("update", "tag it as this stack's")]


def test_hosted_zone_down_removes_our_validation_record_when_no_certificate_needs_it() -> None:
    record = {"Name": f"_abc.{DOMAIN}.", "Type": "CNAME", "TTL": 300,
              "ResourceRecords": [{"Value": "_x.acm-validations.aws."}]}
    soa_ns = [{"Name": "example.com.", "Type": t} for t in ("SOA", "NS")]
    owned = {**tags(), "multiregion:acm-validation:items": f"_abc.{DOMAIN}."}
    plan = HostedZoneStage().destroy(ENV, GLOBAL, ZoneSnapshot(ZONE, owned, (record, *soa_ns)))
    assert [(c.action, c.resource) for c in plan.changes] == [
        ("delete", f"validation record _abc.{DOMAIN}."), ("delete", "hosted zone example.com.")]
    still_used = HostedZoneStage().destroy(ENV, GLOBAL, ZoneSnapshot(ZONE, owned, (record, *soa_ns),
                                                                     certificates_using=("ap-south-1 arn:x",)))
    assert still_used.changes == ()  # the record stays, so the zone is not empty
    assert "kept" in still_used.warnings[0] and "still holds records" in still_used.warnings[1]


# -------------------------------------------------------------------------------------- certificates


ZONE_INPUT = Inputs({("hosted-zone", GLOBAL): {"zone_id": "Z1"}})


def test_certificates_fresh_request_tags_the_zone_then_writes_the_shared_record_once() -> None:
    plan = CertificatesStage().diff(ENV, "eu-west-1", CertificateSnapshot(None), ZONE_INPUT)
    (change,) = plan.changes
    assert calls(change) == ["certificates.request", "describe_certificate", "change_tags_for_resource",
                             "change_resource_record_sets", "describe_certificate"]
    tag, record = change.operations[2], change.operations[3]
    assert isinstance(tag, Call) and isinstance(record, Call)
    assert tag.once and record.once  # every region's node plans them; the executor makes each call once
    upsert = record.params["ChangeBatch"]["Changes"][0]
    assert upsert["Action"] == "UPSERT" and isinstance(upsert["ResourceRecordSet"]["Name"], Ref)
    issued = change.operations[4]
    assert isinstance(issued, Wait) and issued.timeout >= 75 * 60  # ACM keeps trying for 72 hours


def test_certificates_issued_with_its_record_in_place_plans_nothing() -> None:
    cert = {"CertificateArn": "arn:c", "Status": "ISSUED", "DomainValidationOptions": [
        {"ResourceRecord": {"Name": f"_abc.{DOMAIN}.", "Type": "CNAME", "Value": "_x.acm-validations.aws."}}]}
    owned = {"multiregion:acm-validation:items": f"_abc.{DOMAIN}."}
    plan = CertificatesStage().diff(ENV, "eu-west-1", CertificateSnapshot(cert, True, owned), ZONE_INPUT)
    assert plan.changes == () and plan.waits == () and plan.outputs == {"certificate_arn": "arn:c"}
    # An older stack without the ownership tag: written once, so `down` can remove the record later.
    (change,) = CertificatesStage().diff(ENV, "eu-west-1", CertificateSnapshot(cert, True, {}), ZONE_INPUT).changes
    assert change.resource == f"validation record {DOMAIN}" and "down" in change.reason
    pending = {**cert, "Status": "PENDING_VALIDATION"}
    plan = CertificatesStage().diff(ENV, "eu-west-1", CertificateSnapshot(pending, True, owned), ZONE_INPUT)
    assert plan.changes == () and [w.ready for w in plan.waits] == [("ISSUED",)]


# ---------------------------------------------------------------------------------------------- domains


def domain_inputs(api_id: Any = "abc", cert: Any = "arn:c") -> Inputs:
    return Inputs({("api", "eu-west-1"): {"api_id": api_id}, ("certificates", "eu-west-1"): {"certificate_arn": cert}})


def test_domains_fresh_creates_the_domain_and_its_mapping_with_the_upstream_values() -> None:
    api_ref = Ref("api/eu-west-1", "api_id", "(the REST API created above in eu-west-1)")
    plan = DomainsStage().diff(ENV, "eu-west-1", DomainSnapshot(None), domain_inputs(api_ref))
    assert keys(plan) == [("eu-west-1", "create", f"domain {DOMAIN}"),
                          ("eu-west-1", "create", f"base path mapping {DOMAIN}/")]
    create = plan.changes[0].operations[0]
    assert isinstance(create, Call) and create.params["regionalCertificateArn"] == "arn:c"
    mapping = plan.changes[1].operations[0]
    assert isinstance(mapping, Call) and mapping.params["restApiId"] == api_ref
    assert isinstance(plan.outputs["regional_domain_name"], Ref)


def test_domains_drift_and_someone_elses_domain() -> None:
    domain = {"domainName": DOMAIN, "regionalCertificateArn": "arn:c", "securityPolicy": "TLS_1_0",
              "endpointConfiguration": {"types": ["REGIONAL"]}, "regionalDomainName": "d-1.example",
              "regionalHostedZoneId": "ZR", "tags": tags("eu-west-1")}
    mappings = {"(none)": {"restApiId": "abc", "stage": "other"}}
    plan = DomainsStage().diff(ENV, "eu-west-1", DomainSnapshot(domain, mappings, ("arn:c",)), domain_inputs())
    assert [c.reason for c in plan.changes] == ["security policy TLS_1_0 -> TLS_1_2", "abc/other -> abc/prod"]
    assert plan.outputs == {"regional_domain_name": "d-1.example", "regional_zone_id": "ZR"}
    foreign = {**domain, "regionalCertificateArn": "arn:theirs", "tags": {}}
    with pytest.raises(Conflict, match="not this stack's"):
        DomainsStage().diff(ENV, "eu-west-1", DomainSnapshot(foreign, mappings, ("arn:c",)), domain_inputs())


# ---------------------------------------------------------------------------------------- health checks


def check(check_id: str, region: str, **config: Any) -> dict[str, Any]:
    wanted = wanted_config(CONFIG, region, "abc")
    return {"Id": check_id, "CallerReference": f"mr:items:{region}:10:1:1", "HealthCheckVersion": 3,
            "HealthCheckConfig": {**wanted, **config}, "Tags": {**tags(region), "Name": f"items-{region}"}}


def hc_inputs(api_id: Any = "abc") -> Inputs:
    return Inputs({("api", r): {"api_id": api_id} for r in REGIONS})


def test_health_checks_fresh_create_tag_and_wait_for_the_first_report_at_a_cost() -> None:
    plan = HealthChecksStage().diff(ENV, "eu-west-1", HealthCheckSnapshot(), hc_inputs())
    (change,) = plan.changes
    assert (change.action, calls(change)) == ("create", ["health-checks.create", "change_tags_for_resource",
                                                         "get_health_check_status"])
    assert change.cost is not None and change.cost.amount == Decimal("2.50")  # HTTPS and the 10 s interval
    create = change.operations[0]
    assert isinstance(create, Builtin) and create.params["config"]["FullyQualifiedDomainName"] == \
        "abc.execute-api.eu-west-1.amazonaws.com"
    assert isinstance(plan.outputs["check_id"], Ref)


def test_health_checks_converged_mutable_drift_and_a_new_interval() -> None:
    snapshot = HealthCheckSnapshot((check("c1", "eu-west-1"), check("c2", "us-east-1")))
    plan = HealthChecksStage().diff(ENV, "eu-west-1", snapshot, hc_inputs())
    assert plan.changes == () and plan.outputs == {"check_id": "c1"}
    drifted = HealthCheckSnapshot((check("c1", "eu-west-1", FailureThreshold=5),))
    (change,) = HealthChecksStage().diff(ENV, "eu-west-1", drifted, hc_inputs()).changes
    assert change.reason == "FailureThreshold 5 -> 2"
    update = change.operations[0]
    assert isinstance(update, Call) and update.params == {"HealthCheckId": "c1", "HealthCheckVersion": 3,
                                                          "FailureThreshold": 2}
    old_interval = HealthCheckSnapshot((check("c1", "eu-west-1", RequestInterval=30),))
    plan = HealthChecksStage().diff(ENV, "eu-west-1", old_interval, hc_inputs())
    (replace,) = plan.changes
    assert replace.action == "replace" and calls(replace)[-1] == "change_tags_for_resource"  # the old one retired
    retire = replace.operations[-1]
    assert isinstance(retire, Call) and retire.params["AddTags"] == [{"Key": TAG_RETIRED, "Value": "true"}]
    assert isinstance(plan.outputs["check_id"], Ref)


def test_health_checks_of_a_dropped_region_are_kept_unless_pruned() -> None:
    orphan = check("c9", "ap-south-1")
    snapshot = HealthCheckSnapshot((check("c1", "eu-west-1"), orphan))
    kept = HealthChecksStage().diff(ENV, "eu-west-1", snapshot, hc_inputs())
    assert kept.changes == () and "ap-south-1" in kept.warnings[0]
    pruned = HealthChecksStage().diff(Env(CONFIG, ACCOUNT, "aws", prune=True), "eu-west-1", snapshot, hc_inputs())
    assert keys(pruned) == [("ap-south-1", "update", "health check c9")]


# ---------------------------------------------------------------------------------------------- routing


def routing_inputs(overrides: dict[tuple[str, str], dict[str, Any]] | None = None) -> Inputs:
    values: dict[tuple[str, str], dict[str, Any]] = {("hosted-zone", GLOBAL): {"zone_id": "Z1"}}
    for region in REGIONS:
        values[("domains", region)] = {"regional_domain_name": f"d-{region}.example.",
                                       "regional_zone_id": f"Z-{region}"}
        values[("health-checks", region)] = {"check_id": f"check-{region}"}
    values.update(overrides or {})
    return Inputs(values)


def test_routing_fresh_traffic_policy_and_its_policy_record_at_50_dollars() -> None:
    plan = RoutingStage().diff(ENV, GLOBAL, RoutingSnapshot("Z1"), routing_inputs())
    assert keys(plan) == [(GLOBAL, "create", "traffic policy items-latency"),
                          (GLOBAL, "create", f"policy record {DOMAIN}")]
    create = plan.changes[0].operations[0]
    assert isinstance(create, Call)
    document = create.params["Document"].value
    assert document["Endpoints"] == {f"ep-{r}": {"Type": "value", "Value": f"d-{r}.example"} for r in REGIONS}
    assert [e["HealthCheck"] for e in document["Rules"]["by-latency"]["Regions"]] == [f"check-{r}" for r in REGIONS]
    instance = plan.changes[1].operations[0]
    assert isinstance(instance, Call) and instance.params["TrafficPolicyId"] == Ref(
        "routing/global", "policy_id", "(the traffic policy created above)")
    assert monthly_cost(list(plan.changes)) == Decimal("50.00")


def test_routing_converged_then_a_new_check_makes_a_new_version() -> None:
    document = policy_document(endpoints(ENV, routing_inputs()))
    policy = {"Id": "p1", "LatestVersion": 1, "Type": "CNAME", "TrafficPolicyCount": 1}
    instance = {"Id": "i1", "Name": f"{DOMAIN}.", "TrafficPolicyId": "p1", "TrafficPolicyVersion": 1, "TTL": 60,
                "State": "Applied"}
    snapshot = RoutingSnapshot("Z1", policy, document, (), instance)
    assert RoutingStage().diff(ENV, GLOBAL, snapshot, routing_inputs()).changes == ()
    moved = routing_inputs({("health-checks", "us-east-1"): {"check_id": "check-new"}})
    plan = RoutingStage().diff(ENV, GLOBAL, snapshot, moved)
    assert [(c.action, c.reason) for c in plan.changes] == [
        ("update", "version 1 -> 2: us-east-1 health check check-us-east-1 -> check-new"),
        ("update", "policy version 1 -> (version 2)")]


def test_routing_latency_records_one_alias_per_region_and_the_policy_goes() -> None:
    latency = Env(parse_config({**_raw(), "routing": {"mode": "latency-records"}}), ACCOUNT)
    policy = {"Id": "p1", "LatestVersion": 2, "Type": "CNAME"}
    plan = RoutingStage().diff(latency, GLOBAL, RoutingSnapshot("Z1", policy, versions=(1, 2)), routing_inputs())
    assert keys(plan) == [("eu-west-1", "create", f"latency record {DOMAIN} (eu-west-1)"),
                          ("us-east-1", "create", f"latency record {DOMAIN} (us-east-1)"),
                          (GLOBAL, "delete", "traffic policy items-latency")]
    upsert = plan.changes[0].operations[0]
    assert isinstance(upsert, Call)
    record = upsert.params["ChangeBatch"]["Changes"][0]["ResourceRecordSet"]
    assert record == {"Name": DOMAIN, "Type": "A", "SetIdentifier": "eu-west-1", "Region": "eu-west-1",
                      "HealthCheckId": "check-eu-west-1", "AliasTarget": {
                          "HostedZoneId": "Z-eu-west-1", "DNSName": "d-eu-west-1.example",
                          "EvaluateTargetHealth": True}}
    assert [op.params["Version"] for op in plan.changes[2].operations if isinstance(op, Call)] == [1, 2]
    assert len(plan.waits) == 2  # INSYNC, once every record is submitted


def test_routing_refuses_a_name_held_by_someone_else() -> None:
    foreign = RoutingSnapshot("Z1", foreign_records=({"Name": f"{DOMAIN}.", "Type": "A"},))
    with pytest.raises(Conflict, match="not this stack's"):
        RoutingStage().diff(ENV, GLOBAL, foreign, routing_inputs())


def test_routing_down_removes_records_instances_then_every_policy_version() -> None:
    instance = {"Id": "i1", "Name": f"{DOMAIN}.", "TrafficPolicyId": "p1", "TrafficPolicyVersion": 2, "TTL": 60}
    policy = {"Id": "p1", "LatestVersion": 2, "Type": "CNAME"}
    plan = RoutingStage().destroy(ENV, GLOBAL, RoutingSnapshot("Z1", policy, None, (1, 2), instance))
    assert keys(plan) == [(GLOBAL, "delete", f"policy record {DOMAIN}"),
                          (GLOBAL, "delete", "traffic policy items-latency")]
    assert calls(plan.changes[0]) == ["get_traffic_policy_instance", "delete_traffic_policy_instance",
                                      "get_traffic_policy_instance", "list_resource_record_sets"]


# ------------------------------------------------------------------------- api keys, CORS, throttling


KEYED = Env(parse_config({**{"service": "items", "regions": list(REGIONS), "table": {"name": "items"},
                             "domain": {"name": DOMAIN, "hosted_zone": "example.com", "create_zone": True}},
                          "api": {"auth": "api-key", "throttle": {"rate": 50, "burst": 100},
                                  "cors": {"origins": ["https://app.example.com"]}}}), ACCOUNT)


def test_api_with_keys_cors_and_throttling_every_route_but_health_wants_the_key() -> None:
    plan = ApiStage().diff(KEYED, "eu-west-1", ApiSnapshot(None), NONE)
    puts = {c.resource: next(op for op in c.operations if isinstance(op, Call) and op.method == "put_method")
            for c in plan.changes if c.resource.startswith("route ")}
    assert {r: op.params["apiKeyRequired"] for r, op in puts.items()} == {
        "route POST /item": True, "route GET /item/{id}": True, "route GET /health": False,
        "route OPTIONS /item": False, "route OPTIONS /item/{id}": False}
    preflight = next(c for c in plan.changes if c.resource == "route OPTIONS /item")
    response = preflight.operations[-1]
    assert isinstance(response, Call) and response.params["responseParameters"][
        "method.response.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"
    throttle = plan.changes[-1]
    assert throttle.resource == "stage prod throttling"
    assert throttle.operations[0].params["patchOperations"][0] == {  # type: ignore[union-attr]
        "op": "replace", "path": "/*/*/throttling/rateLimit", "value": "50"}
    # The deployment's fingerprint changes with them; without them it is what earlier releases deployed.
    assert deployment_description(KEYED, "eu-west-1") != deployment_description(ENV, "eu-west-1")


def test_api_keys_one_value_for_every_region_and_a_usage_plan_each() -> None:
    inputs = Inputs({("api", r): {"api_id": f"api-{r}"} for r in REGIONS})
    plan = ApiKeysStage().diff(KEYED, GLOBAL, ApiKeysSnapshot({r: RegionKeys() for r in REGIONS}), inputs)
    assert keys(plan) == [(GLOBAL, "create", "api key value"),
                          *[change for r in REGIONS for change in ((r, "create", "api key items"),
                                                                   (r, "create", "usage plan items"),
                                                                   (r, "create", "usage plan key items"))]]
    values = {c.region: c.operations[-1].params["value"] for c in plan.changes  # type: ignore[union-attr]
              if c.resource == "api key items"}
    assert values["eu-west-1"] == values["us-east-1"] == Ref("api-keys/global", "value", "(a new random key)")
    # A region with the key already: the other region gets the same value.
    existing = {"eu-west-1": RegionKeys({"id": "k1", "value": "v" * 40},
                                        {"id": "p1", "apiStages": [{"apiId": "api-eu-west-1", "stage": "prod"}]},
                                        ("k1",)),
                "us-east-1": RegionKeys()}
    plan = ApiKeysStage().diff(KEYED, GLOBAL, ApiKeysSnapshot(existing), inputs)
    created = next(c for c in plan.changes if c.resource == "api key items")
    assert created.region == "us-east-1" and created.operations[0].params["value"] == "v" * 40  # type: ignore
    # Without api.auth the keys and plans go.
    removed = ApiKeysStage().diff(ENV, GLOBAL, ApiKeysSnapshot(existing), inputs)
    assert keys(removed) == [("eu-west-1", "delete", "usage plan items"), ("eu-west-1", "delete", "api key items")]


def _raw() -> dict[str, Any]:
    return {"service": "items", "regions": list(REGIONS), "table": {"name": "items"},
            "domain": {"name": DOMAIN, "hosted_zone": "example.com", "create_zone": True},
            "health_check": {"interval": 10, "failure_threshold": 2}}


def test_every_stage_has_planner_tests_here() -> None:
    from multiregion.stages import STAGE_NAMES

    tested = {"tables", "global-table", "roles", "functions", "api", "api-keys", "hosted-zone", "certificates",
              "domains", "health-checks", "routing"}
    assert set(STAGE_NAMES) == tested, "a new stage needs planner tests in this file"
    assert TAG_STACK and TAG_REGION  # the ownership tags the snapshots above carry
