"""The sandbox's REST API data plane: execute-api hosts and regional custom domains reach Lambda."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from multiregion.sandbox.apigateway import ApiDataPlane
from multiregion.sandbox.server import Sandbox
from tests.conftest import wait_for
from tests.test_sandbox_lambda import create_role, deploy, reuse_clients

ACCOUNT = "123456789012"

ECHO = """
import json
import os


def handler(event, context):
    return {"statusCode": 200,
            "headers": {"Content-Type": "application/json", "X-Function": os.environ["AWS_LAMBDA_FUNCTION_NAME"]},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": json.dumps({"event": event, "region": os.environ["AWS_REGION"]})}
"""

# What the function returns is chosen by the request: an error, a bad shape, a sleep, binary data.
MISBEHAVING = """
import base64
import time


def handler(event, context):
    mode = event["pathParameters"]["proxy"]
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "sleep":
        time.sleep(30)
    if mode == "bad-body":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if mode == "no-status":
        return {"body": "hello"}
    if mode == "list":
        return [1, 2]
    if mode == "binary":
        return {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "isBase64Encoded": True,
                "body": base64.b64encode(b"\\x89PNG\\x00\\x01").decode()}
    return {"statusCode": 201, "body": event["body"] or "", "isBase64Encoded": event["isBase64Encoded"]}
"""

ROUTES = (("/item", "POST", "put_item"), ("/item/{id}", "GET", "get_item"), ("/health", "GET", "health"))


@dataclass
class Api:
    id: str
    region: str

    @property
    def host(self) -> str:
        return f"{self.id}.execute-api.{self.region}.amazonaws.com"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def request(sandbox: Sandbox, host: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return Reply(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def lambda_uri(region: str, function_arn: str) -> str:
    return f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def add_route(aws: Any, api_id: str, region: str, parent: str, path: str, method: str, function_arn: str,
              resources: dict[str, str], permit: bool = True) -> None:
    """Create the resources of `path` under `parent`, the method, its AWS_PROXY integration, the permission."""
    apigw = aws("apigateway", region)
    current = parent
    for part in [p for p in path.split("/") if p]:
        key = f"{current}/{part}"
        if key not in resources:
            resources[key] = apigw.create_resource(restApiId=api_id, parentId=resources[current],
                                                   pathPart=part)["id"]
        current = key
    resource_id = resources[current]
    apigw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod=method, authorizationType="NONE")
    apigw.put_integration(restApiId=api_id, resourceId=resource_id, httpMethod=method, type="AWS_PROXY",
                          integrationHttpMethod="POST", uri=lambda_uri(region, function_arn))
    if permit:
        source = f"arn:aws:execute-api:{region}:{ACCOUNT}:{api_id}/*/{method}{path.split('{')[0].rstrip('/')}*"
        aws("lambda", region).add_permission(
            FunctionName=function_arn, StatementId=f"apigw-{method}-{uuid.uuid4().hex[:8]}",
            Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com", SourceArn=source)


def build_api(aws: Any, role: str, region: str, source: str = ECHO, permit: bool = True) -> Api:
    """The item API: POST /item, GET /item/{id}, GET /health, each its own function, deployed to prod."""
    apigw = aws("apigateway", region)
    api_id = apigw.create_rest_api(name="items", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    resources = {"": root}
    for path, method, name in ROUTES:
        arn = deploy(aws, role, name, source, region=region)
        add_route(aws, api_id, region, "", path, method, arn, resources, permit)
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    return Api(api_id, region)


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)


@pytest.fixture
def role(aws: Any) -> str:
    return create_role(aws)


@pytest.fixture
def api(aws: Any, role: str) -> Api:
    return build_api(aws, role, "eu-west-1")


def test_routes_reach_their_functions_with_the_proxy_event(sandbox: Sandbox, api: Api) -> None:
    got = request(sandbox, api.host, "GET", "/prod/item/abc?x=1&x=2&y=3", headers={"X-Test": "yes"})
    assert got.status == 200, got.body
    assert got.header("X-Function") == "get_item"
    assert got.header("x-multiregion-region") == "eu-west-1"
    assert sorted(v for k, v in got.headers if k.lower() == "set-cookie") == ["a=1", "b=2"]
    event = got.json()["event"]
    assert event["httpMethod"] == "GET" and event["resource"] == "/item/{id}" and event["path"] == "/item/abc"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["headers"]["X-Test"] == "yes" and event["multiValueHeaders"]["X-Test"] == ["yes"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert (ctx["stage"], ctx["resourcePath"], ctx["httpMethod"], ctx["apiId"]) == (
        "prod", "/item/{id}", "GET", api.id)
    assert ctx["path"] == "/prod/item/abc" and ctx["domainName"] == api.host
    assert ctx["identity"]["sourceIp"] == "127.0.0.1" and ctx["requestId"]

    posted = request(sandbox, api.host, "POST", "/prod/item", body=b'{"id": "abc", "name": "one"}',
                     headers={"Content-Type": "application/json"})
    assert posted.status == 200 and posted.header("X-Function") == "put_item"
    event = posted.json()["event"]
    assert json.loads(event["body"]) == {"id": "abc", "name": "one"} and event["pathParameters"] is None

    health = request(sandbox, api.host, "GET", "/prod/health")
    assert health.status == 200 and health.header("X-Function") == "health"
    assert health.json()["region"] == "eu-west-1"


def test_unknown_stage_path_or_method_is_refused_like_aws(sandbox: Sandbox, api: Api) -> None:
    for path in ("/dev/health", "/", "/health"):
        got = request(sandbox, api.host, "GET", path)
        assert (got.status, got.json()) == (403, {"message": "Forbidden"}), path
    for method, path in (("GET", "/prod/nothing"), ("DELETE", "/prod/health"), ("GET", "/prod/item")):
        got = request(sandbox, api.host, method, path)
        assert (got.status, got.json()) == (403, {"message": "Missing Authentication Token"}), (method, path)
        assert got.header("x-multiregion-region") == "eu-west-1"
    unknown = request(sandbox, "nosuchapi1.execute-api.eu-west-1.amazonaws.com", "GET", "/prod/health")
    assert (unknown.status, unknown.json()) == (403, {"message": "Forbidden"})


def test_other_hosts_fall_through(sandbox: Sandbox, api: Api, aws: Any) -> None:
    plane = sandbox.extension(ApiDataPlane)
    assert plane.call("example.com", "GET", "/prod/health") is None
    assert plane.call("nosuchapi1.execute-api.eu-west-1.amazonaws.com", "GET", "/prod/health") is None
    # The control plane on the sandbox's own address is still moto's.
    assert aws("apigateway", "eu-west-1").get_rest_api(restApiId=api.id)["name"] == "items"


def test_call_serves_a_probe_for_other_extensions(sandbox: Sandbox, api: Api) -> None:
    resp = sandbox.extension(ApiDataPlane).call(api.host, "GET", "/prod/health")
    assert resp is not None and resp.status_code == 200
    assert resp.headers["x-multiregion-region"] == "eu-west-1"
    event = json.loads(resp.get_data())["event"]
    assert event["resource"] == "/health" and event["headers"]["Host"] == api.host


def issued_certificate(aws: Any, region: str, domain: str) -> str:
    """An ISSUED ACM certificate, validated through its DNS record as on AWS."""
    r53 = aws("route53")
    zones = [z for z in r53.list_hosted_zones()["HostedZones"] if z["Name"] == "example.com."]
    zone_id = zones[0]["Id"] if zones else r53.create_hosted_zone(
        Name="example.com", CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    acm = aws("acm", region)
    arn = acm.request_certificate(DomainName=domain, ValidationMethod="DNS")["CertificateArn"]
    record = wait_for(lambda: acm.describe_certificate(CertificateArn=arn)["Certificate"][
        "DomainValidationOptions"][0].get("ResourceRecord"))  # AWS too shows it only after a moment
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {"Name": record["Name"], "Type": record["Type"], "TTL": 300,
                              "ResourceRecords": [{"Value": record["Value"]}]}}]})
    wait_for(lambda: acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED", 10)
    return str(arn)


def custom_domain(aws: Any, api: Api, name: str, base_path: str = "") -> str:
    apigw = aws("apigateway", api.region)
    apigw.create_domain_name(domainName=name, endpointConfiguration={"types": ["REGIONAL"]},
                             regionalCertificateArn=issued_certificate(aws, api.region, name),
                             securityPolicy="TLS_1_2")
    apigw.create_base_path_mapping(domainName=name, restApiId=api.id, stage="prod", basePath=base_path)
    return str(apigw.get_domain_name(domainName=name)["regionalDomainName"])


def test_custom_domain_routes_without_the_stage(sandbox: Sandbox, api: Api, aws: Any) -> None:
    regional = custom_domain(aws, api, "api.example.com")
    assert regional.endswith(".execute-api.eu-west-1.amazonaws.com") and regional.startswith("d-")
    got = request(sandbox, regional, "GET", "/item/xyz")
    assert got.status == 200, got.body
    assert got.header("X-Function") == "get_item" and got.header("x-multiregion-region") == "eu-west-1"
    event = got.json()["event"]
    assert event["pathParameters"] == {"id": "xyz"} and event["path"] == "/item/xyz"
    assert event["requestContext"]["stage"] == "prod"
    assert event["requestContext"]["domainName"] == "api.example.com"
    assert request(sandbox, regional, "POST", "/item", body=b"{}").header("X-Function") == "put_item"
    assert request(sandbox, regional, "GET", "/prod/item/xyz").status == 403  # no stage in this path


def test_custom_domain_with_a_base_path(sandbox: Sandbox, api: Api, aws: Any) -> None:
    regional = custom_domain(aws, api, "v.example.com", base_path="v1")
    got = request(sandbox, regional, "GET", "/v1/health")
    assert got.status == 200 and got.header("X-Function") == "health"
    assert got.json()["event"]["resource"] == "/health"
    missing = request(sandbox, regional, "GET", "/health")
    assert (missing.status, missing.json()) == (403, {"message": "Forbidden"})


def test_each_region_serves_its_own_function(sandbox: Sandbox, aws: Any, role: str) -> None:
    eu, us = build_api(aws, role, "eu-west-1"), build_api(aws, role, "us-east-1")
    for api in (eu, us):
        got = request(sandbox, api.host, "GET", "/prod/health")
        assert got.status == 200
        assert got.json()["region"] == api.region and got.header("x-multiregion-region") == api.region
    # An API id is only known in its own region.
    wrong = request(sandbox, f"{eu.id}.execute-api.us-east-1.amazonaws.com", "GET", "/prod/health")
    assert wrong.status == 403


@pytest.fixture
def misbehaving(aws: Any, role: str) -> Api:
    """GET /{proxy+} on a function whose answer depends on the path; timeout 1 s."""
    region = "eu-west-1"
    apigw = aws("apigateway", region)
    api_id = apigw.create_rest_api(name="odd", binaryMediaTypes=["image/png", "application/octet-stream"],
                                   endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    arn = deploy(aws, role, "odd", MISBEHAVING, Timeout=1)
    add_route(aws, api_id, region, "", "/{proxy+}", "ANY", arn, {"": root})
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    return Api(api_id, region)


@pytest.mark.parametrize("mode", ["raise", "bad-body", "no-status", "list", "sleep"])
def test_function_errors_and_malformed_answers_are_502(sandbox: Sandbox, misbehaving: Api, mode: str) -> None:
    got = request(sandbox, misbehaving.host, "GET", f"/prod/{mode}")
    assert (got.status, got.json()) == (502, {"message": "Internal server error"})


def test_throttled_function_is_500(sandbox: Sandbox, api: Api, aws: Any) -> None:
    aws("lambda", "eu-west-1").put_function_concurrency(FunctionName="health", ReservedConcurrentExecutions=0)
    got = request(sandbox, api.host, "GET", "/prod/health")
    assert (got.status, got.json()) == (500, {"message": "Internal server error"})
    assert request(sandbox, api.host, "GET", "/prod/item/1").status == 200  # the other functions still answer


def test_missing_permission_is_500(sandbox: Sandbox, aws: Any, role: str) -> None:
    api = build_api(aws, role, "eu-west-1", permit=False)
    got = request(sandbox, api.host, "GET", "/prod/health")
    assert (got.status, got.json()) == (500, {"message": "Internal server error"})
    assert "permissions" in (got.header("x-multiregion-error") or "")
    aws("lambda", "eu-west-1").add_permission(
        FunctionName="health", StatementId="other-api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com", SourceArn=f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:other/*")
    assert request(sandbox, api.host, "GET", "/prod/health").status == 500
    aws("lambda", "eu-west-1").add_permission(
        FunctionName="health", StatementId="this-api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com", SourceArn=f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:{api.id}/*")
    assert request(sandbox, api.host, "GET", "/prod/health").status == 200


def test_stage_serves_its_deployment_not_later_edits(sandbox: Sandbox, api: Api, aws: Any, role: str) -> None:
    apigw = aws("apigateway", "eu-west-1")
    resources = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=api.id)["items"]}
    other = deploy(aws, role, "other", ECHO)
    add_route(aws, api.id, "eu-west-1", "", "/other", "GET", other, {"": resources["/"]})
    assert request(sandbox, api.host, "GET", "/prod/other").status == 403  # not deployed yet
    apigw.create_deployment(restApiId=api.id, stageName="prod")
    got = request(sandbox, api.host, "GET", "/prod/other")
    assert got.status == 200 and got.header("X-Function") == "other"


def test_binary_bodies_travel_base64(sandbox: Sandbox, misbehaving: Api) -> None:
    sent = b"\x00\x01\xffbinary"
    got = request(sandbox, misbehaving.host, "POST", "/prod/echo", body=sent,
                  headers={"Content-Type": "application/octet-stream"})
    assert got.status == 201 and base64.b64decode(got.body) == sent  # the client did not Accept binary
    png = request(sandbox, misbehaving.host, "GET", "/prod/binary", headers={"Accept": "image/png"})
    assert png.status == 200 and png.body == b"\x89PNG\x00\x01" and png.header("Content-Type") == "image/png"
    text = request(sandbox, misbehaving.host, "POST", "/prod/echo", body=b"plain",
                   headers={"Content-Type": "text/plain"})
    assert text.body == b"plain"
