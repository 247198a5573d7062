"""Stages `functions` and `api` against the sandbox's control plane: converge, rerun, drift, down."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from multiregion import packaging
from multiregion.aws import ClientProvider
from multiregion.config import load_config
from multiregion.engine import TAG_REGION, TAG_STACK, Context, Inputs, Reporter
from multiregion.lookups.apis import duplicates_warning, find_rest_apis
from multiregion.sandbox.app import ACCOUNT_ID
from multiregion.sandbox.server import Sandbox
from multiregion.stages import functions as functions_stage
from multiregion.stages import roles as roles_stage
from tests.conftest import Cli, PacedClock, refuse

ALL = ("--only", "tables", "--only", "global-table", "--only", "functions", "--only", "api")
MINE = ("--only", "functions", "--only", "api")
REGIONS = ("eu-west-1", "us-east-1")
COMPONENTS = {"put": "put_item.handler", "get": "get_item.handler", "health": "health.handler"}
ROUTES = {("POST", "/item"): "put", ("GET", "/item/{id}"): "get", ("GET", "/health"): "health"}


class Recorder(Reporter):
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def info(self, message: str) -> None:
        self.infos.append(message)


def context(sandbox: Sandbox, config: Path, **kwargs: Any) -> Context:
    return Context(config=load_config(config), clients=ClientProvider(sandbox.url), reporter=Recorder(),
                   poll_interval=0.02, **kwargs)


def up(cli: Cli, *stages: str) -> dict[str, Any]:
    code, doc = cli.json("up", *(stages or MINE))
    assert code == 0, doc
    return doc


def planned(cli: Cli) -> list[tuple[str, str, str, str]]:
    code, doc = cli.json("plan", *MINE)
    assert code == 0, doc
    return [(c["stage"], c["region"], c["action"], c["resource"]) for c in doc["changes"]]


def role_name(component: str, region: str) -> str:
    return f"items-{component}-{region}"


def role_arn(component: str = "put", region: str = "eu-west-1") -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/multiregion/{role_name(component, region)}"


def fn_arn(region: str, component: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:items-{component}"


def rest_apis(aws: Any, region: str) -> list[dict[str, Any]]:
    return aws("apigateway", region).get_rest_apis()["items"]


def statements(aws: Any, region: str, name: str) -> list[dict[str, Any]]:
    try:
        return json.loads(aws("lambda", region).get_policy(FunctionName=name)["Policy"])["Statement"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
        return []


def set_status(aws: Any, region: str, status: str) -> None:
    lam = aws("lambda", region)
    env = lam.get_function_configuration(FunctionName="items-health")["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName="items-health", Environment={"Variables": {**env, "STATUS": status}})


# ------------------------------------------------------------------------------------------- converge


def test_up_converges_then_a_second_up_writes_nothing(cli: Cli, aws: Any, sandbox: Sandbox) -> None:
    doc = up(cli, *ALL)

    for region in REGIONS:
        lam = aws("lambda", region)
        for component, handler in COMPONENTS.items():
            function = lam.get_function(FunctionName=f"items-{component}")
            config = function["Configuration"]
            assert (config["Runtime"], config["Handler"], config["Role"]) == (
                "python3.12", handler, role_arn(component, region))
            assert (config["MemorySize"], config["Timeout"]) == (256, 10)
            expected_env = {"TABLE_NAME": "items", **({"STATUS": "200"} if component == "health" else {})}
            assert config["Environment"]["Variables"] == expected_env
            assert config["CodeSha256"] == packaging.code_sha256(packaging.build_zip(component))
            assert function["Tags"] == {TAG_STACK: "items", TAG_REGION: region}

    # One role per function and region, allowing only what its route declares, in its own region.
    iam = aws("iam", "eu-west-1")
    access = {"put": ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
              "get": ["dynamodb:GetItem", "dynamodb:Query"], "health": []}
    for region in REGIONS:
        for component in COMPONENTS:
            name = role_name(component, region)
            role = iam.get_role(RoleName=name)["Role"]
            assert role["AssumeRolePolicyDocument"]["Statement"] == [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
            assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["least-privilege"]
            assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
            assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]} == {
                TAG_STACK: "items", TAG_REGION: region}
            policy = iam.get_role_policy(RoleName=name, PolicyName="least-privilege")["PolicyDocument"]
            group = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:/aws/lambda/items-{component}"
            expected = [{"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                         "Resource": [group, f"{group}:*"]}]
            if access[component]:
                expected.insert(0, {"Sid": "Table", "Effect": "Allow", "Action": access[component],
                                    "Resource": [f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/items"]})
            assert policy == {"Version": "2012-10-17", "Statement": expected}
        groups = aws("logs", region).describe_log_groups(logGroupNamePrefix="/aws/lambda/items-")["logGroups"]
        assert {(g["logGroupName"], g.get("retentionInDays")) for g in groups} == {
            (f"/aws/lambda/items-{c}", 30) for c in COMPONENTS}

    for region in REGIONS:
        apis = rest_apis(aws, region)
        assert len(apis) == 1
        api = apis[0]
        assert api["name"] == "items" and api["tags"][TAG_STACK] == "items"
        assert api["endpointConfiguration"]["types"] == ["REGIONAL"]
        apigw = aws("apigateway", region)
        resources = {r["path"]: r for r in apigw.get_resources(restApiId=api["id"], embed=["methods"])["items"]}
        assert set(resources) == {"/", "/item", "/item/{id}", "/health"}
        for (method, path), component in ROUTES.items():
            assert set(resources[path]["resourceMethods"]) == {method}
            found = resources[path]["resourceMethods"][method]
            assert found["authorizationType"] == "NONE"
            integration = found["methodIntegration"]
            assert (integration["type"], integration["httpMethod"]) == ("AWS_PROXY", "POST")
            assert integration["uri"] == (f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                                          f"{fn_arn(region, component)}/invocations")
            route = path.replace("{id}", "*")
            assert statements(aws, region, f"items-{component}") == [{
                "Sid": f"items-apigw-{api['id']}", "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "lambda:InvokeFunction",
                "Resource": fn_arn(region, component),
                "Condition": {"ArnLike": {"AWS:SourceArn":
                                          f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api['id']}/*/{method}{route}"}},
            }]
        stage = apigw.get_stage(restApiId=api["id"], stageName="prod")
        assert apigw.get_deployment(restApiId=api["id"], deploymentId=stage["deploymentId"])["description"]

        outputs = doc["outputs"]["regions"][region]
        assert outputs["api"]["invoke_url"] == f"https://{api['id']}.execute-api.{region}.amazonaws.com/prod"
        assert outputs["functions"]["health_status"] == "200"

    again = up(cli, *ALL)
    assert again["changes"] == [] and again["api_calls"]["writes"] == {}
    assert planned(cli) == []

    # Functions found unchanged and ready need no wait either: three reads of GetFunction, nothing more.
    ctx = context(sandbox, cli.config)
    stage, reader = functions_stage.FunctionsStage(), ctx.reader()
    snapshot = stage.read(reader, "us-east-1")
    inputs = Inputs({("roles", "us-east-1"): {"role_arns": {c: role_arn(c, "us-east-1") for c in COMPONENTS}}})
    plan = stage.diff(reader.env, "us-east-1", snapshot, inputs)
    assert plan.changes == () and plan.waits == ()
    assert ctx.clients.calls["GetFunction"] == 3 and "GetFunctionConfiguration" not in ctx.clients.calls


def test_plan_on_a_fresh_account_lists_everything_and_writes_nothing(cli: Cli, aws: Any) -> None:
    code, doc = cli.json("plan", *MINE)
    assert code == 0, doc
    resources = {(c["region"], c["resource"]) for c in doc["changes"]}
    assert {(r, f"role items-{c}-{r}") for r in REGIONS for c in COMPONENTS} <= resources
    for region in REGIONS:
        assert {(region, f"function items-{c}") for c in COMPONENTS} <= resources
        assert {(region, "rest api items"), (region, "stage prod")} <= resources
        assert aws("lambda", region).list_functions()["Functions"] == []
        assert rest_apis(aws, region) == []


# ---------------------------------------------------------------------------------------------- updates


def test_changing_one_handler_updates_exactly_that_function(aws: Any, tmp_path: Path,
                                                            write_config: Callable[..., Path]) -> None:
    # The item API as the team's own app (as `init` writes it): edit one module, re-upload what holds it.
    import shutil

    source = tmp_path / "app"
    source.mkdir()
    for module in ("put_item", "get_item", "common"):
        shutil.copy(packaging.HANDLERS_DIR / f"{module}.py", source / f"{module}.py")
    app = {"source": str(source), "routes": [
        {"method": "POST", "path": "/item", "handler": "put_item.handler", "table": "write"},
        {"method": "GET", "path": "/item/{id}", "handler": "get_item.handler", "table": "read"}]}
    cli = Cli(write_config(app=app))
    up(cli)
    before = {r: {f["FunctionName"]: f["CodeSha256"] for f in aws("lambda", r).list_functions()["Functions"]}
              for r in REGIONS}
    (source / "get_item.py").write_text((source / "get_item.py").read_text() + "\n# edited\n")
    assert planned(cli) == [("functions", r, "update", "function items-get-item") for r in REGIONS]
    doc = up(cli)
    assert doc["changes"][0]["reason"].startswith("code ")
    assert doc["api_calls"]["writes"] == {"UpdateFunctionCode": 2}
    for region in REGIONS:
        after = {f["FunctionName"]: f["CodeSha256"] for f in aws("lambda", region).list_functions()["Functions"]}
        assert {n for n in after if after[n] != before[region][n]} == {"items-get-item"}
    assert planned(cli) == []
    # A module both handlers import: both functions, and only they (health is the tool's own code).
    (source / "common.py").write_text((source / "common.py").read_text() + "\n# edited\n")
    assert sorted(planned(cli)) == sorted(("functions", r, "update", f"function items-{c}")
                                          for r in REGIONS for c in ("put-item", "get-item"))


def test_status_drift_is_reported_then_restored(cli: Cli, aws: Any, sandbox: Sandbox) -> None:
    up(cli)
    set_status(aws, "us-east-1", "404")

    code, plan = cli.json("plan", *MINE)
    assert code == 0
    assert [(c["region"], c["action"], c["resource"]) for c in plan["changes"]] == [
        ("us-east-1", "update", "function items-health")]
    assert "drift: STATUS is 404, configured 200" in plan["changes"][0]["reason"]
    ctx = context(sandbox, cli.config)
    assert functions_stage.FunctionsStage().status(ctx.reader(), "us-east-1").health_status == "404"

    doc = up(cli)
    assert doc["api_calls"]["writes"] == {"UpdateFunctionConfiguration": 1}
    env = aws("lambda", "us-east-1").get_function_configuration(FunctionName="items-health")["Environment"]
    assert env["Variables"] == {"TABLE_NAME": "items", "STATUS": "200"}
    assert planned(cli) == []


def test_reserved_concurrency_zero_left_behind_is_drift(cli: Cli, aws: Any) -> None:
    up(cli)
    lam = aws("lambda", "eu-west-1")
    lam.put_function_concurrency(FunctionName="items-get", ReservedConcurrentExecutions=0)
    lam.put_function_concurrency(FunctionName="items-put", ReservedConcurrentExecutions=5)  # a user's choice

    code, plan = cli.json("plan", *MINE)
    assert code == 0
    assert [(c["region"], c["resource"]) for c in plan["changes"]] == [("eu-west-1", "function items-get")]
    assert "reserved concurrency 0" in plan["changes"][0]["reason"]
    doc = up(cli)
    assert doc["api_calls"]["writes"] == {"DeleteFunctionConcurrency": 1}
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="items-get")
    assert lam.get_function_concurrency(FunctionName="items-put")["ReservedConcurrentExecutions"] == 5
    assert planned(cli) == []


def test_configuration_change_and_unknown_variables(cli: Cli, aws: Any, write_config: Callable[..., Path]) -> None:
    up(cli)
    lam = aws("lambda", "eu-west-1")
    lam.update_function_configuration(FunctionName="items-put",
                                      Environment={"Variables": {"TABLE_NAME": "items", "DEBUG": "1"}})
    cli.config = write_config(functions={"memory": 512, "timeout": 20})
    doc = up(cli)
    # One UpdateFunctionConfiguration per function, the environment riding along where it drifted.
    assert doc["api_calls"]["writes"] == {"UpdateFunctionConfiguration": 6}
    reasons = {(c["region"], c["resource"]): c["reason"] for c in doc["changes"]}
    assert reasons.pop(("eu-west-1", "function items-put")) == (
        "memory 256 -> 512; timeout 10 -> 20; drift: unexpected variable DEBUG")
    assert set(reasons.values()) == {"memory 256 -> 512; timeout 10 -> 20"}
    for region in REGIONS:
        config = aws("lambda", region).get_function_configuration(FunctionName="items-put")
        assert (config["MemorySize"], config["Timeout"]) == (512, 20)
        assert config["Environment"]["Variables"] == {"TABLE_NAME": "items"}


def test_role_drift_is_repaired(cli: Cli, aws: Any) -> None:
    up(cli)
    iam = aws("iam", "eu-west-1")
    name = role_name("put", "us-east-1")
    iam.put_role_policy(RoleName=name, PolicyName="least-privilege", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}))
    iam.put_role_policy(RoleName=name, PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))

    code, plan = cli.json("plan", *MINE)
    assert [(c["region"], c["resource"]) for c in plan["changes"]] == [("us-east-1", f"role {name}")]
    assert "differs from least privilege" in plan["changes"][0]["reason"]
    assert "extra inline policies extra" in plan["changes"][0]["reason"]

    doc = up(cli)
    assert doc["api_calls"]["writes"] == {"DeleteRolePolicy": 1, "PutRolePolicy": 1}
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["least-privilege"]
    assert planned(cli) == []


def test_a_new_region_gets_its_functions_and_the_role_is_widened(cli: Cli, aws: Any,
                                                                 write_config: Callable[..., Path]) -> None:
    up(cli)
    cli.config = write_config(regions=[*REGIONS, "ap-southeast-2"])
    doc = up(cli)
    touched = {(c["region"], c["action"], c["resource"]) for c in doc["changes"]}
    # The new region gets its own roles; the others' roles are untouched (each names its own region only).
    assert {(r, a) for r, a, _ in touched} == {("ap-southeast-2", "create")}
    assert ("ap-southeast-2", "create", "role items-put-ap-southeast-2") in touched
    assert len(aws("lambda", "ap-southeast-2").list_functions()["Functions"]) == 3
    policy = aws("iam", "eu-west-1").get_role_policy(RoleName="items-put-ap-southeast-2", PolicyName="least-privilege")
    assert policy["PolicyDocument"]["Statement"][0]["Resource"] == [
        f"arn:aws:dynamodb:ap-southeast-2:{ACCOUNT_ID}:table/items"]


# ------------------------------------------------------------------------------------------ ownership


def test_untagged_function_is_a_conflict_and_left_alone(cli: Cli, aws: Any) -> None:
    iam = aws("iam", "eu-west-1")
    iam.create_role(RoleName="someone-else", AssumeRolePolicyDocument=json.dumps(
        roles_stage.LAMBDA_TRUST_POLICY))
    zipped = packaging.zip_files({"x.py": b"def handler(e, c):\n    return 1\n"})
    aws("lambda", "eu-west-1").create_function(
        FunctionName="items-put", Runtime="python3.11", Handler="x.handler", Code={"ZipFile": zipped},
        Role=f"arn:aws:iam::{ACCOUNT_ID}:role/someone-else")

    code, doc = cli.json("up", *MINE)
    assert code == 1
    error = doc["errors"][0]
    assert (error["stage"], error["region"], error["resource"]) == ("functions", "eu-west-1", "function items-put")
    assert "not tagged" in error["error"]
    config = aws("lambda", "eu-west-1").get_function_configuration(FunctionName="items-put")
    assert (config["Runtime"], config["Handler"]) == ("python3.11", "x.handler")
    assert {"stage": "api", "region": "eu-west-1"} in doc["skipped"]


def test_untagged_role_is_a_conflict(cli: Cli, aws: Any) -> None:
    aws("iam", "eu-west-1").create_role(RoleName="items-get-us-east-1", AssumeRolePolicyDocument=json.dumps(
        roles_stage.LAMBDA_TRUST_POLICY))
    code, doc = cli.json("plan", *MINE)
    assert code == 1
    assert [(e["stage"], e["region"], e["resource"]) for e in doc["errors"]] == [
        ("roles", "us-east-1", "role items-get-us-east-1")]
    assert {"stage": "functions", "region": "us-east-1"} in doc["skipped"]


def test_apis_are_found_by_name_and_tag_and_never_duplicated(cli: Cli, aws: Any, sandbox: Sandbox,
                                                             paced: PacedClock) -> None:
    apigw = paced.pace(aws("apigateway", "eu-west-1"))  # CreateRestApi is one every 3 s: it waits as told
    foreign = apigw.create_rest_api(name="items")["id"]  # same name, not ours: never adopted
    # Ours (tagged) but left EDGE and empty, e.g. by a run that stopped right after creating it.
    oldest = apigw.create_rest_api(name="items", tags={TAG_STACK: "items"},
                                   endpointConfiguration={"types": ["EDGE"]})["id"]
    doc = up(cli)
    assert ("eu-west-1", "update", f"rest api {oldest}", "endpoint EDGE -> REGIONAL") in {
        (c["region"], c["action"], c["resource"], c["reason"]) for c in doc["changes"]}
    assert {api["id"] for api in rest_apis(aws, "eu-west-1")} == {foreign, oldest}
    assert apigw.get_rest_api(restApiId=oldest)["endpointConfiguration"]["types"] == ["REGIONAL"]
    assert {r["path"] for r in apigw.get_resources(restApiId=oldest)["items"]} == {"/", "/item", "/item/{id}",
                                                                                  "/health"}
    assert [r["path"] for r in apigw.get_resources(restApiId=foreign)["items"]] == ["/"]
    # A duplicate made in the same second (createdDate has one-second resolution): the sandbox's custom id
    # makes it sort after ours on the tie, as a later createdDate would.
    apigw.create_rest_api(name="items", tags={TAG_STACK: "items", "_custom_id_": "zzzzzzzzzz"},
                          endpointConfiguration={"types": ["REGIONAL"]})

    ctx = context(sandbox, cli.config)
    found = find_rest_apis(ctx.reader(), "eu-west-1")
    assert found[0]["id"] == oldest and len(found) == 2
    assert oldest in duplicates_warning("items", "eu-west-1", [a["id"] for a in found])
    result = cli("up", *MINE)
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if "REST APIs named items" in line]
    assert len(warnings) == 1 and oldest in warnings[0]  # said once, by the api node that uses the oldest
    doc = up(cli)
    assert doc["api_calls"]["writes"] == {}
    assert len(rest_apis(aws, "eu-west-1")) == 3


# ------------------------------------------------------------------------------------------- api drift


def test_api_drift_is_repaired(cli: Cli, aws: Any) -> None:
    up(cli)
    # us-east-1: a route pointing at the wrong function, and a method that is not ours.
    us = aws("apigateway", "us-east-1")
    us_api = rest_apis(aws, "us-east-1")[0]["id"]
    resources = {r["path"]: r["id"] for r in us.get_resources(restApiId=us_api)["items"]}
    us.put_integration(restApiId=us_api, resourceId=resources["/health"], httpMethod="GET", type="AWS_PROXY",
                       integrationHttpMethod="POST",
                       uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
                           f"{fn_arn('us-east-1', 'get')}/invocations")
    us.put_method(restApiId=us_api, resourceId=resources["/item"], httpMethod="DELETE", authorizationType="NONE")
    us_deployment = us.get_stage(restApiId=us_api, stageName="prod")["deploymentId"]
    # eu-west-1: a stage serving a hand-made deployment, a too-wide permission, a stale and a foreign one.
    eu_api = rest_apis(aws, "eu-west-1")[0]["id"]
    aws("apigateway", "eu-west-1").create_deployment(restApiId=eu_api, stageName="prod", description="by hand")
    lam = aws("lambda", "eu-west-1")
    lam.remove_permission(FunctionName="items-get", StatementId=f"items-apigw-{eu_api}")
    lam.add_permission(FunctionName="items-get", StatementId=f"items-apigw-{eu_api}", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com", SourceArn=f"arn:aws:execute-api:eu-west-1:{ACCOUNT_ID}:*")
    lam.add_permission(FunctionName="items-put", StatementId="items-apigw-deadbeef", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com")
    lam.add_permission(FunctionName="items-put", StatementId="someone-elses", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com")

    assert sorted(planned(cli)) == [
        ("api", "eu-west-1", "delete", "permission items-put/items-apigw-deadbeef"),
        ("api", "eu-west-1", "update", "permission items-get"),
        ("api", "eu-west-1", "update", "stage prod"),
        ("api", "us-east-1", "delete", "route DELETE /item"),
        ("api", "us-east-1", "update", "route GET /health"),
        ("api", "us-east-1", "update", "stage prod"),
    ]
    doc = up(cli)
    assert doc["api_calls"]["writes"] == {"AddPermission": 1, "CreateDeployment": 2, "DeleteMethod": 1,
                                          "PutIntegration": 1, "RemovePermission": 2}
    health = us.get_integration(restApiId=us_api, resourceId=resources["/health"], httpMethod="GET")
    assert fn_arn("us-east-1", "health") in health["uri"]
    assert us.get_stage(restApiId=us_api, stageName="prod")["deploymentId"] != us_deployment
    (get_statement,) = statements(aws, "eu-west-1", "items-get")
    assert get_statement["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(f"{eu_api}/*/GET/item/*")
    assert {s["Sid"] for s in statements(aws, "eu-west-1", "items-put")} == {f"items-apigw-{eu_api}", "someone-elses"}
    assert planned(cli) == []


def test_a_deleted_api_is_recreated_with_fresh_permissions(cli: Cli, aws: Any) -> None:
    up(cli)
    old = rest_apis(aws, "eu-west-1")[0]["id"]
    aws("apigateway", "eu-west-1").delete_rest_api(restApiId=old)
    doc = up(cli)
    new = rest_apis(aws, "eu-west-1")[0]["id"]
    assert new != old
    assert ("eu-west-1", "delete", f"permission items-put/items-apigw-{old}") in {
        (c["region"], c["action"], c["resource"]) for c in doc["changes"]}
    assert [s["Sid"] for s in statements(aws, "eu-west-1", "items-put")] == [f"items-apigw-{new}"]
    assert planned(cli) == []


# ---------------------------------------------------------------------------------------- role timing


def test_create_function_retries_while_the_role_propagates(cli: Cli, sandbox: Sandbox, aws: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    refused = refuse(monkeypatch, "lambda", "CreateFunction", "InvalidParameterValueException",
                     "The role defined for the function cannot be assumed by Lambda.", times=2,
                     when=lambda params: params.get("FunctionName") == "items-put")
    result = cli("up", *MINE)
    assert result.exit_code == 0, result.output
    assert len(refused) == 2
    assert aws("lambda", "eu-west-1").get_function(FunctionName="items-put")["Configuration"]["Role"] == role_arn()
    assert "has not propagated to Lambda yet" in result.output


def test_create_function_retries_while_the_role_s_permissions_propagate(cli: Cli, aws: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The other face of IAM's propagation, which Terraform's provider retries too.
    refused = refuse(monkeypatch, "lambda", "CreateFunction", "InvalidParameterValueException",
                     "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
                     times=2, when=lambda params: params.get("FunctionName") == "items-get")
    result = cli("up", *MINE)
    assert result.exit_code == 0, result.output
    assert len(refused) == 2
    assert aws("lambda", "us-east-1").get_function(FunctionName="items-get")["Configuration"]["Role"]
    assert "permissions have not propagated yet" in result.output


def test_role_propagation_retries_are_bounded(cli: Cli, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # Refused for longer than the retry budget: the function's node fails with AWS's message.
    import threading

    clocks: dict[int, float] = {}  # one driven clock per node's thread

    def sleep(seconds: float) -> None:
        clocks[threading.get_ident()] = clocks.get(threading.get_ident(), 0.0) + seconds

    from multiregion import executor as executor_module

    real = executor_module.Executor.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        self.sleep, self.clock = sleep, lambda: clocks.get(threading.get_ident(), 0.0)

    monkeypatch.setattr(executor_module.Executor, "__init__", init)
    refuse(monkeypatch, "lambda", "CreateFunction", "InvalidParameterValueException",
           "The role defined for the function cannot be assumed by Lambda.", times=10_000)
    code, doc = cli.json("up", *MINE)
    assert code == 1
    assert {(e["stage"], e["region"]) for e in doc["errors"]} == {("functions", r) for r in REGIONS}
    assert all("cannot be assumed" in e["error"] for e in doc["errors"])
    # Each region's node gave up once its 300 s budget was spent, on its driven clock.
    assert sorted(clocks.values())[-2:] and all(300 <= c < 320 for c in sorted(clocks.values())[-2:])


# ------------------------------------------------------------------------------------------------- down


def test_down_removes_what_is_ours_and_only_that(cli: Cli, aws: Any) -> None:
    up(cli)
    foreign = aws("apigateway", "eu-west-1").create_rest_api(name="items")["id"]
    us = aws("lambda", "us-east-1")
    us.untag_resource(Resource=fn_arn("us-east-1", "get"), TagKeys=[TAG_STACK])
    code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    assert [api["id"] for api in rest_apis(aws, "eu-west-1")] == [foreign]
    assert rest_apis(aws, "us-east-1") == []
    assert aws("lambda", "eu-west-1").list_functions()["Functions"] == []
    assert [f["FunctionName"] for f in us.list_functions()["Functions"]] == ["items-get"]
    assert statements(aws, "us-east-1", "items-get") == []  # the API's permission went with the API
    roles = [r["RoleName"] for r in aws("iam", "eu-west-1").list_roles()["Roles"]]
    assert roles == []
    assert [c for c in cli.json("down", "--yes")[1]["changes"]] == []


def test_role_is_deleted_only_after_every_function(cli: Cli, aws: Any) -> None:
    up(cli)
    from multiregion.plan import Call
    from tests.conftest import Crasher

    deleted: list[str] = []

    def note(op: Any) -> bool:
        if isinstance(op, Call) and op.method in ("delete_function", "delete_role"):
            deleted.append((op.region, op.method))
        return False

    import _pytest.monkeypatch

    with _pytest.monkeypatch.MonkeyPatch.context() as patch:
        Crasher(note).install(patch)
        code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    for region in REGIONS:  # in each region: its three functions first, then their three roles
        assert [m for r, m in deleted if r == region] == ["delete_function"] * 3 + ["delete_role"] * 3


def test_a_function_that_cannot_be_deleted_keeps_the_role(cli: Cli, aws: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    up(cli)
    refuse(monkeypatch, "lambda", "DeleteFunction", "AccessDeniedException", "not allowed", times=100,
           when=lambda params: params.get("FunctionName") == "items-get")
    code, doc = cli.json("down", "--yes")
    assert code == 1
    assert {(e["stage"], e["region"]) for e in doc["errors"]} == {("functions", r) for r in REGIONS}
    for region in REGIONS:
        assert {"stage": "roles", "region": region} in doc["skipped"]
        assert aws("iam", "eu-west-1").get_role(RoleName=role_name("get", region))["Role"]


def test_role_names_fit_iams_limit_and_stay_distinct() -> None:
    from multiregion.config import parse_config
    from multiregion.names import role_name as name_of

    config = parse_config({"service": "a-rather-long-service-name-x1234", "regions": ["ap-southeast-2"],
                           "domain": {"name": "api.example.com", "hosted_zone": "example.com"}})
    names = {name_of(config, c, r) for c in ("put", "get", "health", "orders-create-something")
             for r in ("ap-southeast-2", "ap-northeast-1", "eu-west-1")}
    assert len(names) == 12 and all(len(n) <= 64 for n in names)
    assert name_of(config, "put", "eu-west-1") == "a-rather-long-service-name-x1234-put-eu-west-1"
