"""moto's internals are reached through multiregion/sandbox/moto_compat.py only, and what it declares of moto's
models is there on the objects the installed moto makes (so `make test-moto-latest` names a renamed attribute
here, not somewhere deep in a replication or routing test)."""

from __future__ import annotations

import ast
import datetime
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from multiregion.sandbox import moto_compat
from multiregion.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"


def _imports_moto(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                      if a.name == "moto" or a.name.startswith("moto.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                (node.module == "moto" or node.module.startswith("moto.")):
            found.append(f"{path.name}:{node.lineno} from {node.module}")
    return found


def test_only_moto_compat_imports_moto() -> None:
    compat = ROOT / "multiregion" / "sandbox" / "moto_compat.py"
    sources = [p for d in ("multiregion", "tests", "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]
    offending = [hit for p in sources if p != compat for hit in _imports_moto(p)]
    assert offending == []
    assert _imports_moto(compat), "moto_compat.py is where moto is imported"


def test_the_import_check_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import moto\nimport moto.server as s\nfrom moto.dynamodb import models\n"
                      "from . import moto\nimport motor\n")
    assert [hit.split(" ", 1)[1] for hit in _imports_moto(sample)] == [
        "import moto", "import moto.server", "from moto.dynamodb"]


def _members(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if isinstance(value, property)}


def _missing(obj: Any, protocol: type) -> list[str]:
    assert _members(protocol), f"{protocol.__name__} declares nothing to check"
    return sorted(name for name in _members(protocol) if not hasattr(obj, name))


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def test_dynamodb_tables_and_streams_as_moto_compat_reads_them(sandbox: Sandbox, aws: Any) -> None:
    client = aws("dynamodb", REGION)
    client.create_table(TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST",
                        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    client.put_item(TableName="t", Item={"id": {"S": "a"}, "v": {"N": "1"}})
    with sandbox.lock:
        table = moto_compat.dynamodb_table(REGION, "t")
        assert table is not None and table.name == "t"
        assert moto_compat.stream_specification(table)["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        [item] = moto_compat.table_items(table)
        assert moto_compat.item_attributes(item) == {"id": {"S": "a"}, "v": {"N": "1"}}
        assert moto_compat.item_key(table, item) == {"id": {"S": "a"}}
        shard = moto_compat.stream_shard(table)
        assert shard is not None
        [record] = moto_compat.shard_records(shard)
        body = moto_compat.record_body(record)
        assert body["eventName"] == "INSERT" and body["dynamodb"]["Keys"] == {"id": {"S": "a"}}
        assert moto_compat.replicated_from(record) is None
        moto_compat.mark_replicated(record, "us-east-1")
        assert moto_compat.replicated_from(record) == "us-east-1"
        assert moto_compat.dynamodb_table(REGION, "missing") is None


def test_the_dynamodb_clock_dates_stream_records(sandbox: Sandbox, aws: Any) -> None:
    aws("dynamodb", REGION).create_table(
        TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    at = datetime.datetime(2026, 1, 1)
    with sandbox.lock:
        with moto_compat.dynamodb_clock(at):
            moto_compat.put_item(REGION, "t", {"id": {"S": "frozen"}})
        moto_compat.put_item(REGION, "t", {"id": {"S": "live"}})
        table = moto_compat.dynamodb_table(REGION, "t")
        assert table is not None
        shard = moto_compat.stream_shard(table)
        assert shard is not None
        frozen, live = (moto_compat.record_body(r)["dynamodb"]["ApproximateCreationDateTime"]
                        for r in moto_compat.shard_records(shard))
    assert frozen == at
    assert live != at


def test_api_gateway_models_have_what_moto_compat_declares(sandbox: Sandbox, aws: Any) -> None:
    apigw = aws("apigateway", REGION)
    api = apigw.create_rest_api(name="a", endpointConfiguration={"types": ["REGIONAL"]})
    root = apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
    res = apigw.create_resource(restApiId=api["id"], parentId=root, pathPart="{id}")
    apigw.put_method(restApiId=api["id"], resourceId=res["id"], httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api["id"], resourceId=res["id"], httpMethod="GET", type="AWS_PROXY",
                          integrationHttpMethod="POST",
                          uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                              f"arn:aws:lambda:{REGION}:123456789012:function:f/invocations")
    apigw.create_deployment(restApiId=api["id"], stageName="prod")
    # EDGE, so that no ISSUED certificate is needed (the sandbox checks REGIONAL domains' certificates).
    apigw.create_domain_name(domainName="api.example.com", certificateArn="arn:aws:acm:us-east-1:1:certificate/x")
    apigw.create_base_path_mapping(domainName="api.example.com", restApiId=api["id"], stage="prod")
    with sandbox.lock:
        rest_api = moto_compat.rest_apis(REGION)[api["id"]]
        assert _missing(rest_api, moto_compat.RestApi) == []
        resource = rest_api.resources[res["id"]]
        assert _missing(resource, moto_compat.Resource) == []
        method = resource.resource_methods["GET"]
        assert _missing(method, moto_compat.Method) == []
        assert _missing(method.method_integration, moto_compat.Integration) == []
        assert _missing(rest_api.stages["prod"], moto_compat.Stage) == []
        domain = moto_compat.domain_names(REGION)["api.example.com"]
        assert _missing(domain, moto_compat.DomainName) == []
        assert set(moto_compat.DOMAIN_PATCH_ATTRIBUTES.values()) <= set(vars(domain))
        assert moto_compat.domain_json(domain)["domainName"] == "api.example.com"
        [mapping] = moto_compat.base_path_mappings(REGION, "api.example.com").values()
        assert _missing(mapping, moto_compat.BasePathMapping) == []
        assert REGION in moto_compat.apigateway_regions()


def test_api_keys_usage_plans_and_mock_responses_have_what_moto_compat_declares(sandbox: Sandbox, aws: Any) -> None:
    apigw = aws("apigateway", REGION)
    api = apigw.create_rest_api(name="a", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    target = {"restApiId": api, "resourceId": root, "httpMethod": "OPTIONS"}
    apigw.put_method(**target, authorizationType="NONE", apiKeyRequired=True)
    apigw.put_method_response(**target, statusCode="200")
    apigw.put_integration(**target, type="MOCK", requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_integration_response(**target, statusCode="200", selectionPattern="2\\d{2}")
    apigw.create_deployment(restApiId=api, stageName="prod")
    key = apigw.create_api_key(name="k", value="v" * 20, enabled=True)["id"]
    plan = apigw.create_usage_plan(name="p", apiStages=[{"apiId": api, "stage": "prod"}])["id"]
    apigw.create_usage_plan_key(usagePlanId=plan, keyId=key, keyType="API_KEY")
    with sandbox.lock:
        method = moto_compat.rest_apis(REGION)[api].resources[root].resource_methods["OPTIONS"]
        assert method.api_key_required is True
        integration = method.method_integration
        assert integration is not None and integration.integration_responses is not None
        assert _missing(integration.integration_responses["200"], moto_compat.IntegrationResponse) == []
        assert integration.integration_responses["200"].selection_pattern == "2\\d{2}"
        assert _missing(method.method_responses["200"], moto_compat.MethodResponse) == []
        assert _missing(moto_compat.api_keys(REGION)[key], moto_compat.ApiKey) == []
        assert _missing(moto_compat.usage_plans(REGION)[plan], moto_compat.UsagePlan) == []
        assert moto_compat.usage_plan_key_ids(REGION, plan) == {key}
        assert moto_compat.usage_plan_key_ids("eu-north-1", plan) == set()


def test_lambda_and_iam_models_have_what_moto_compat_declares(sandbox: Sandbox, aws: Any) -> None:
    role = aws("iam").create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]
    lam = aws("lambda", REGION)
    lam.create_function(FunctionName="f", Runtime="python3.12", Role=role["Arn"], Handler="app.handler",
                        Code={"ZipFile": _zip()})
    lam.add_permission(FunctionName="f", StatementId="s", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com")
    with sandbox.lock:
        fn = moto_compat.function(REGION, "f")
        assert _missing(fn, moto_compat.Function) == []
        assert fn.code_bytes == _zip()
        assert [s["Sid"] for s in moto_compat.policy_statements(fn)] == ["s"]
        with pytest.raises(moto_compat.ClientError) as refused:
            moto_compat.function(REGION, "nope")
        assert (refused.value.code, refused.value.status) == ("ResourceNotFoundException", 404)
        found = moto_compat.role("r")
        assert _missing(found, moto_compat.Role) == []
        assert moto_compat.role_by_arn(role["Arn"]) is found
        assert moto_compat.role_by_arn("arn:aws:iam::123456789012:role/none") is None


def test_route53_models_have_what_moto_compat_declares(sandbox: Sandbox, aws: Any) -> None:
    r53 = aws("route53")
    zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="z")["HostedZone"]["Id"].split("/")[-1]
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE",
        "ResourceRecordSet": {"Name": "www.example.com", "Type": "CNAME", "TTL": 60, "SetIdentifier": "eu",
                              "Region": REGION, "ResourceRecords": [{"Value": "eu.example.net"}]}}]})
    check_id = r53.create_health_check(CallerReference="h", HealthCheckConfig={
        "Type": "HTTPS", "FullyQualifiedDomainName": "eu.example.net", "ResourcePath": "/prod/health"},
    )["HealthCheck"]["Id"]
    with sandbox.lock:
        zone = moto_compat.hosted_zone(zone_id)
        assert zone is not None and zone in moto_compat.hosted_zones()
        assert _missing(zone, moto_compat.HostedZone) == []
        assert moto_compat.name_server(zone)
        record = next(r for r in zone.rrsets if r.type == "CNAME")
        assert _missing(record, moto_compat.RecordSet) == []
        assert moto_compat.policy_instance_of(record) is None
        check = moto_compat.health_check(check_id)
        assert check is not None and [c.id for c in moto_compat.health_checks()] == [check_id]
        assert _missing(check, moto_compat.HealthCheck) == []
        assert int(check.port) == 443  # the sandbox's fix of moto's default (80) for HTTPS
        for attribute in moto_compat.RESETTABLE_HEALTH_CHECK_ELEMENTS.values():
            assert hasattr(check, attribute)


def test_policy_records_and_health_check_fixes_are_written_into_moto(sandbox: Sandbox, aws: Any) -> None:
    r53 = aws("route53")
    zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="z")["HostedZone"]["Id"].split("/")[-1]
    check_id = r53.create_health_check(CallerReference="h", HealthCheckConfig={
        "Type": "HTTP", "FullyQualifiedDomainName": "a.example.net", "Regions": ["us-east-1", "eu-west-1",
                                                                                 "ap-southeast-1"]},
    )["HealthCheck"]["Id"]
    with sandbox.lock:
        zone = moto_compat.hosted_zone(zone_id)
        assert zone is not None
        record = moto_compat.add_record(zone, {"Name": "api.example.com.", "Type": "CNAME",
                                               "ResourceRecords": ["policy"]})
        moto_compat.mark_policy_record(record, "instance-1")
        assert moto_compat.policy_instance_of(record) == "instance-1"
        moto_compat.replace_records(zone, [r for r in zone.rrsets if r is not record])
        assert record not in zone.rrsets
        check = moto_compat.health_check(check_id)
        assert check is not None
        moto_compat.set_health_check_port(check, 8443)
        moto_compat.reset_health_check_element(check, "Regions")
        moto_compat.bump_health_check_version(check)
    got = r53.get_health_check(HealthCheckId=check_id)["HealthCheck"]
    assert got["HealthCheckConfig"]["Port"] == 8443
    assert "Regions" not in got["HealthCheckConfig"]
    assert got["HealthCheckVersion"] == 2


def test_reset_forgets_moto_state(sandbox: Sandbox, aws: Any) -> None:
    aws("route53").create_hosted_zone(Name="example.com", CallerReference="z")
    with sandbox.lock:
        assert moto_compat.hosted_zones()
        moto_compat.reset()
        assert moto_compat.hosted_zones() == []


def test_moto_is_installed_and_says_its_version() -> None:
    assert moto_compat.installed()
    major, minor = (int(part) for part in moto_compat.version().split(".")[:2])
    assert (major, minor) >= (5, 2)
