"""MOCK integrations on the sandbox's REST API data plane: the request template selects the status, the
integration response gives headers and body (see sandbox/apigateway_mock.py); and the template subset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from multiregion.sandbox.apigateway_mock import MockRequest, TemplateError, render
from multiregion.sandbox.server import Sandbox
from tests.test_sandbox_apigateway import Api, Reply, request
from tests.test_sandbox_lambda import reuse_clients

REGION = "us-east-1"
ALLOW = {"method.response.header.Access-Control-Allow-Origin": "'https://app.example.com'",
         "method.response.header.Access-Control-Allow-Methods": "'GET,OPTIONS,POST'",
         "method.response.header.Access-Control-Allow-Headers": "'Content-Type,X-Api-Key'"}
# The developer guide's example: the scope query parameter decides between success and error.
SCOPED = """{
  #if( $input.params('scope') == "internal" )
    "statusCode": 200
  #else
    "statusCode": 500
  #end
}"""


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)


class MockApi:
    """A REST API whose methods are MOCK integrations on /thing, deployed to prod on `deploy()`."""

    def __init__(self, aws: Any):
        self.apigw = aws("apigateway", REGION)
        self.id = self.apigw.create_rest_api(name="mocks", endpointConfiguration={"types": ["REGIONAL"]})["id"]
        root = self.apigw.get_resources(restApiId=self.id)["items"][0]["id"]
        self.resource = self.apigw.create_resource(restApiId=self.id, parentId=root, pathPart="thing")["id"]

    def method(self, verb: str, templates: dict[str, str] | None, passthrough: str | None = None) -> None:
        target = {"restApiId": self.id, "resourceId": self.resource, "httpMethod": verb}
        self.apigw.put_method(**target, authorizationType="NONE")
        extra = {"passthroughBehavior": passthrough} if passthrough else {}
        self.apigw.put_integration(**target, type="MOCK", **({"requestTemplates": templates} if templates else {}),
                                   **extra)

    def response(self, verb: str, status: str, pattern: str | None = None, headers: dict[str, str] | None = None,
                 templates: dict[str, str] | None = None, declare: bool = True) -> None:
        target = {"restApiId": self.id, "resourceId": self.resource, "httpMethod": verb, "statusCode": status}
        if declare:
            self.apigw.put_method_response(**target, responseParameters={k: False for k in headers or {}})
        extra: dict[str, Any] = {"selectionPattern": pattern} if pattern else {}
        self.apigw.put_integration_response(**target, responseParameters=headers or {},
                                            responseTemplates=templates or {}, **extra)

    def deploy(self) -> Api:
        self.apigw.create_deployment(restApiId=self.id, stageName="prod")
        return Api(self.id, REGION)


@pytest.fixture
def mocks(aws: Any) -> MockApi:
    return MockApi(aws)


def send(sandbox: Sandbox, api: Api, verb: str, path: str = "/prod/thing", body: bytes | None = None,
         **headers: str) -> Reply:
    return request(sandbox, api.host, verb, path, body=body, headers=headers)


def assert_internal(reply: Reply, why: str) -> None:
    assert reply.status == 500
    assert reply.json() == {"message": "Internal server error"}
    assert why in (reply.header("x-multiregion-error") or ""), reply.header("x-multiregion-error")


# ------------------------------------------------------------------------------------------- the data plane


def test_a_cors_preflight_is_answered_by_api_gateway_itself(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.method("OPTIONS", {"application/json": '{"statusCode": 200}'})
    mocks.response("OPTIONS", "200", headers=ALLOW, templates={"application/json": ""})
    api = mocks.deploy()
    reply = send(sandbox, api, "OPTIONS", Origin="https://app.example.com", **{
        "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-api-key"})
    assert reply.status == 200
    assert reply.header("Access-Control-Allow-Origin") == "https://app.example.com"
    assert reply.header("Access-Control-Allow-Methods") == "GET,OPTIONS,POST"
    assert reply.header("Access-Control-Allow-Headers") == "Content-Type,X-Api-Key"
    assert reply.header("Content-Type") == "application/json"
    assert reply.body == b""
    assert reply.header("x-multiregion-region") == REGION and reply.header("x-amzn-RequestId")


def test_the_request_template_selects_the_response_by_its_status(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.method("GET", {"application/json": SCOPED})
    mocks.response("GET", "200", templates={"application/json": '{"ok": true, "stage": "$context.stage"}'})
    mocks.response("GET", "500", pattern=r"5\d{2}",
                   templates={"application/json": '{"message": "The invoked method is not supported"}'})
    api = mocks.deploy()
    ok = send(sandbox, api, "GET", "/prod/thing?scope=internal")
    assert (ok.status, ok.json()) == (200, {"ok": True, "stage": "prod"})
    refused = send(sandbox, api, "GET", "/prod/thing?scope=public")
    assert (refused.status, refused.json()) == (500, {"message": "The invoked method is not supported"})


def test_a_pattern_matches_the_whole_status(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.method("GET", {"application/json": '{"statusCode": 404}'})
    mocks.response("GET", "200")
    mocks.response("GET", "400", pattern="4")  # "4" is not "404": the default answers
    api = mocks.deploy()
    assert send(sandbox, api, "GET").status == 200
    mocks.response("GET", "404", pattern=r"4\d{2}", templates={"application/json": '{"missing": true}'})
    api = mocks.deploy()
    reply = send(sandbox, api, "GET")
    assert (reply.status, reply.json()) == (404, {"missing": True})


def test_what_api_gateway_cannot_answer_is_a_500(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.method("GET", None)  # no template: the empty body has no statusCode
    mocks.response("GET", "200")
    api = mocks.deploy()
    assert_internal(send(sandbox, api, "GET"), "Unable to parse statusCode")
    mocks.method("GET", {"application/json": '{"statusCode": "200"}'})  # a string is not an integer
    mocks.response("GET", "200")
    assert_internal(send(sandbox, mocks.deploy(), "GET"), "Unable to parse statusCode")
    mocks.method("GET", {"application/json": '{"statusCode": 201}'})
    mocks.response("GET", "200", pattern="200")
    assert_internal(send(sandbox, mocks.deploy(), "GET"), "No match for output mapping and no default output "
                                                          "mapping configured. Endpoint Response Status Code: 201")
    mocks.method("GET", {"application/json": '{"statusCode": 200}'})
    mocks.response("GET", "200", declare=False)  # no method response 200
    assert_internal(send(sandbox, mocks.deploy(), "GET"), "Output mapping refers to an invalid method response: 200")


@pytest.mark.parametrize(("passthrough", "xml_status"), [("WHEN_NO_MATCH", 201), ("WHEN_NO_TEMPLATES", 415),
                                                          ("NEVER", 415)])
def test_an_unmapped_content_type_follows_the_passthrough_behaviour(sandbox: Sandbox, mocks: MockApi,
                                                                    passthrough: str, xml_status: int) -> None:
    mocks.method("POST", {"application/json": '{"statusCode": 200}'}, passthrough)
    mocks.response("POST", "200")
    mocks.response("POST", "201", pattern="201")
    api = mocks.deploy()
    assert send(sandbox, api, "POST").status == 200  # no Content-Type: application/json's template
    assert send(sandbox, api, "POST", body=b"{}", **{"Content-Type": "application/json; charset=utf-8"}).status == 200
    reply = send(sandbox, api, "POST", body=b'{"statusCode": 201}', **{"Content-Type": "application/xml"})
    assert reply.status == xml_status
    if xml_status == 415:
        assert reply.json() == {"message": "Unsupported Media Type"}


def test_the_response_template_follows_accept(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.method("GET", {"application/json": '{"statusCode": 200}'})
    mocks.response("GET", "200", templates={"application/json": '{"as": "json"}', "text/plain": "as text"})
    api = mocks.deploy()
    text = send(sandbox, api, "GET", Accept="text/plain")
    assert (text.body, text.header("Content-Type")) == (b"as text", "text/plain")
    other = send(sandbox, api, "GET", Accept="image/png")
    assert (other.json(), other.header("Content-Type")) == ({"as": "json"}, "application/json")


def test_headers_come_only_from_mappings_the_method_response_declares(sandbox: Sandbox, mocks: MockApi,
                                                                      aws: Any) -> None:
    mocks.method("GET", {"application/json": '{"statusCode": 200}'})
    mocks.apigw.put_method_response(restApiId=mocks.id, resourceId=mocks.resource, httpMethod="GET",
                                    statusCode="200", responseParameters={
                                        "method.response.header.X-Stage": False,
                                        "method.response.header.X-Version": False,
                                        "method.response.header.X-Upstream": False})
    mocks.apigw.put_integration_response(
        restApiId=mocks.id, resourceId=mocks.resource, httpMethod="GET", statusCode="200", responseParameters={
            "method.response.header.X-Stage": "context.stage", "method.response.header.X-Version":
                "stageVariables.version", "method.response.header.X-Upstream": "integration.response.header.X-Up",
            "method.response.header.X-Undeclared": "'never sent'"})
    api = mocks.deploy()
    mocks.apigw.update_stage(restApiId=api.id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/variables/version", "value": "v7"}])
    reply = send(sandbox, api, "GET")
    assert (reply.header("X-Stage"), reply.header("X-Version")) == ("prod", "v7")
    assert reply.header("X-Upstream") is None and reply.header("X-Undeclared") is None


def test_a_template_outside_the_modelled_subset_is_refused(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.method("GET", {"application/json": '#set($code = 200)\n{"statusCode": $code}'})
    mocks.response("GET", "200")
    assert_internal(send(sandbox, mocks.deploy(), "GET"), "the sandbox does not evaluate #set")


def test_a_mock_can_require_a_key_like_any_method(sandbox: Sandbox, mocks: MockApi) -> None:
    mocks.apigw.put_method(restApiId=mocks.id, resourceId=mocks.resource, httpMethod="GET", authorizationType="NONE",
                           apiKeyRequired=True)
    mocks.apigw.put_integration(restApiId=mocks.id, resourceId=mocks.resource, httpMethod="GET", type="MOCK",
                                requestTemplates={"application/json": '{"statusCode": 200}'})
    mocks.response("GET", "200")
    reply = send(sandbox, mocks.deploy(), "GET")
    assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})


# ------------------------------------------------------------------------------------------- templates


def variables(params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
              body: str = "") -> dict[str, Any]:
    from multiregion.sandbox.apigateway_mock import _template_input

    req = MockRequest(body=body.encode(), content_type="", accept="", path={"id": "7"}, querystring=params or {},
                      headers=headers or {}, context={"stage": "prod", "identity": {"sourceIp": "1.2.3.4"}},
                      stage_variables={"color": "blue"})
    return _template_input(req, body)


@pytest.mark.parametrize(("template", "expected"), [
    ("plain text, $ 5 and $.path", "plain text, $ 5 and $.path"),
    ("$context.stage/$context.identity.sourceIp", "prod/1.2.3.4"),
    ("${stageVariables.color}ish", "blueish"),
    ("$input.params('id') $input.params('q') $input.params('X-Thing')", "7 search yes"),
    ("[$input.params('missing')]", "[]"),
    ("$input.params().header.get('x-thing')", "$input.params().header.get('x-thing')"),  # a Map is case-sensitive
    ("$input.params().querystring.get('q')", "search"),
    ("$nothing and $!nothing.", "$nothing and ."),
    ("$input.body|$input.json('$')", "{\"a\": 1}|{\"a\": 1}"),
    ("## a comment\nkept#* and a\nblock *# too", "kept too"),
    ("#if($input.params('q') == 'search')A#elseif($context.stage == 'prod')B#{else}C#end", "A"),
    ("#if($input.params('q') != 'search')A#elseif($context.stage == 'prod')B#{else}C#end", "B"),
    ("#if(!($context.stage == 'prod') || $nothing)A#else#if($context.stage && true)N#end#end", "N"),
    ("#if($input.params('missing'))empty strings are true#end", "empty strings are true"),
    ("#if($nothing)no#{else}undefined is false#end", "undefined is false"),
    ("#if( $input.params('id') == 7 )numbers compare as text#end", "numbers compare as text"),
])
def test_templates_evaluate_the_modelled_subset(template: str, expected: str) -> None:
    assert render(template, variables({"q": "search"}, {"X-Thing": "yes"}, '{"a": 1}')) == expected


@pytest.mark.parametrize("template", ["#foreach($x in $list)$x#end", "$util.escapeJavaScript('x')",
                                      "#if($context.stage == 'prod')unclosed", "#end", "#if $x #end",
                                      "$input.path('$.a')", "$context.stage.replace('a', 'b')"])
def test_templates_outside_the_subset_are_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, variables())
