"""The REST API data plane enforces API keys, usage plans and throttling as API Gateway does (see
sandbox/apigateway_usage.py): 403 without a key it can meter, 429 beyond a token bucket."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from multiregion.sandbox.apigateway import ApiDataPlane
from multiregion.sandbox.apigateway_usage import CHECKER_AGENT
from multiregion.sandbox.server import Sandbox
from tests.conftest import DrivenClock
from tests.test_sandbox_apigateway import Api, Reply, build_api, request
from tests.test_sandbox_lambda import create_role, reuse_clients

REGION = "eu-west-1"
KEY = "k" * 24
OTHER_KEY = "o" * 24


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)  # paced on the sandbox's clock (conftest): CreateDeployment is 1 per 5 s


def mock_method(apigw: Any, api_id: str, resource_id: str, key_required: bool) -> None:
    """GET answered by a MOCK integration with 200 and a body naming the resource."""
    apigw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod="GET", authorizationType="NONE",
                     apiKeyRequired=key_required)
    apigw.put_method_response(restApiId=api_id, resourceId=resource_id, httpMethod="GET", statusCode="200")
    apigw.put_integration(restApiId=api_id, resourceId=resource_id, httpMethod="GET", type="MOCK",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_integration_response(restApiId=api_id, resourceId=resource_id, httpMethod="GET", statusCode="200",
                                   responseTemplates={"application/json": '{"served": "$context.resourcePath"}'})


@pytest.fixture
def pets(aws: Any) -> Api:
    """GET /pets wants an API key, GET /open does not; both MOCK, deployed to prod and beta."""
    apigw = aws("apigateway", REGION)
    api_id = apigw.create_rest_api(name="pets", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    for part, key_required in (("pets", True), ("open", False)):
        resource = apigw.create_resource(restApiId=api_id, parentId=root, pathPart=part)["id"]
        mock_method(apigw, api_id, resource, key_required)
    for stage in ("prod", "beta"):
        apigw.create_deployment(restApiId=api_id, stageName=stage)
    return Api(api_id, REGION)


def require_key(apigw: Any, api_id: str, resource_id: str) -> None:
    """PutMethod again with apiKeyRequired, and its integration (moto has no UpdateMethod; PutMethod drops
    the integration)."""
    integration = apigw.get_integration(restApiId=api_id, resourceId=resource_id, httpMethod="GET")
    apigw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod="GET", authorizationType="NONE",
                     apiKeyRequired=True)
    if integration["type"] == "MOCK":
        mock_method(apigw, api_id, resource_id, key_required=True)
    else:
        apigw.put_integration(restApiId=api_id, resourceId=resource_id, httpMethod="GET", type=integration["type"],
                              integrationHttpMethod="POST", uri=integration["uri"])
    apigw.create_deployment(restApiId=api_id, stageName="prod")


def key_in_plan(aws: Any, api: Api, value: str = KEY, stages: tuple[str, ...] = ("prod",), enabled: bool = True,
                **plan: Any) -> dict[str, str]:
    apigw = aws("apigateway", api.region)
    key_id = apigw.create_api_key(name=f"key-{value[:1]}", value=value, enabled=enabled)["id"]
    plan_id = apigw.create_usage_plan(name=f"plan-{value[:1]}", apiStages=[
        {"apiId": api.id, "stage": s} for s in stages], **plan)["id"]
    apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    return {"key": key_id, "plan": plan_id}


def get(sandbox: Sandbox, api: Api, path: str, key: str | None = None, **headers: str) -> Reply:
    return request(sandbox, api.host, "GET", path, headers={**({"x-api-key": key} if key else {}), **headers})


def assert_forbidden(reply: Reply, why: str) -> None:
    assert reply.status == 403
    assert reply.json() == {"message": "Forbidden"}
    assert reply.header("x-amzn-ErrorType") == "ForbiddenException"
    assert why in (reply.header("x-multiregion-error") or ""), reply.header("x-multiregion-error")


def assert_throttled(reply: Reply, why: str) -> None:
    assert reply.status == 429
    assert reply.json() == {"message": "Too Many Requests"}
    assert why in (reply.header("x-multiregion-error") or ""), reply.header("x-multiregion-error")


def statuses(sandbox: Sandbox, api: Api, path: str, count: int, **kwargs: Any) -> list[int]:
    return [get(sandbox, api, path, **kwargs).status for _ in range(count)]


def throttle_stage(aws: Any, api: Api, rate: float, burst: int, method: str = "*/*", stage: str = "prod") -> None:
    aws("apigateway", api.region).update_stage(restApiId=api.id, stageName=stage, patchOperations=[
        {"op": "replace", "path": f"/{method}/throttling/rateLimit", "value": str(rate)},
        {"op": "replace", "path": f"/{method}/throttling/burstLimit", "value": str(burst)}])


# ---------------------------------------------------------------------------------------------- API keys


def test_a_key_is_needed_enabled_and_in_a_plan_of_the_stage(sandbox: Sandbox, aws: Any, pets: Api) -> None:
    apigw = aws("apigateway", REGION)
    assert_forbidden(get(sandbox, pets, "/prod/pets"), "no x-api-key header")
    assert_forbidden(get(sandbox, pets, "/prod/pets", KEY), "Invalid API Key identifier")
    loose = apigw.create_api_key(name="loose", value=KEY, enabled=True)["id"]
    assert_forbidden(get(sandbox, pets, "/prod/pets", KEY), "not associated with a Usage Plan for API Stage "
                                                            f"{pets.id}/prod")
    plan = apigw.create_usage_plan(name="beta-only", apiStages=[{"apiId": pets.id, "stage": "beta"}])["id"]
    apigw.create_usage_plan_key(usagePlanId=plan, keyId=loose, keyType="API_KEY")
    assert_forbidden(get(sandbox, pets, "/prod/pets", KEY), "not associated with a Usage Plan")
    ok = get(sandbox, pets, "/beta/pets", KEY)
    assert (ok.status, ok.json()) == (200, {"served": "/pets"})
    apigw.update_api_key(apiKey=loose, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    assert_forbidden(get(sandbox, pets, "/beta/pets", KEY), "disabled")


def test_a_valid_key_passes_and_methods_without_api_key_required_want_none(sandbox: Sandbox, aws: Any,
                                                                          pets: Api) -> None:
    key_in_plan(aws, pets)
    assert get(sandbox, pets, "/prod/pets", KEY).status == 200
    assert get(sandbox, pets, "/prod/pets", **{"X-API-Key": KEY}).status == 200  # header names ignore case
    assert get(sandbox, pets, "/prod/open").status == 200
    assert get(sandbox, pets, "/prod/open", "not-a-key-at-all").status == 200  # nothing is looked up
    assert_forbidden(get(sandbox, pets, "/prod/pets", OTHER_KEY), "Invalid API Key")


def test_keys_are_regional(sandbox: Sandbox, aws: Any, pets: Api) -> None:
    us = aws("apigateway", "us-east-1")
    key_id = us.create_api_key(name="us", value=KEY, enabled=True)["id"]
    plan = us.create_usage_plan(name="us", apiStages=[{"apiId": pets.id, "stage": "prod"}])["id"]
    us.create_usage_plan_key(usagePlanId=plan, keyId=key_id, keyType="API_KEY")
    assert_forbidden(get(sandbox, pets, "/prod/pets", KEY), "Invalid API Key")


def test_a_key_from_an_authorizer_is_not_modelled_and_refused(sandbox: Sandbox, aws: Any, pets: Api) -> None:
    key_in_plan(aws, pets)
    apigw = aws("apigateway", REGION)
    apigw.update_rest_api(restApiId=pets.id, patchOperations=[
        {"op": "replace", "path": "/apiKeySource", "value": "AUTHORIZER"}])
    assert_forbidden(get(sandbox, pets, "/prod/pets", KEY), "Lambda authorizer")


def test_the_function_is_told_which_key_metered_the_request(sandbox: Sandbox, aws: Any) -> None:
    api = build_api(aws, create_role(aws), REGION)
    apigw = aws("apigateway", REGION)
    resources = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=api.id)["items"]}
    require_key(apigw, api.id, resources["/health"])
    ids = key_in_plan(aws, api)
    assert_forbidden(get(sandbox, api, "/prod/health"), "no x-api-key header")
    reply = get(sandbox, api, "/prod/health", KEY)
    assert reply.status == 200, reply.body
    identity = reply.json()["event"]["requestContext"]["identity"]
    assert (identity["apiKey"], identity["apiKeyId"]) == (KEY, ids["key"])


# ---------------------------------------------------------------------------------------------- throttling


def test_the_stage_throttles_each_method_with_its_own_token_bucket(sandbox: Sandbox, aws: Any, pets: Api,
                                                                  clock: DrivenClock) -> None:
    throttle_stage(aws, pets, rate=2, burst=3)
    assert statuses(sandbox, pets, "/prod/open", 4) == [200, 200, 200, 429]
    assert_throttled(get(sandbox, pets, "/prod/open"), "Method throttle limit exceeded for RestApi "
                                                        f"{pets.id}, Stage prod")
    assert_throttled(get(sandbox, pets, "/prod/open"), "Limit: 2.00 Burst: 3")
    key_in_plan(aws, pets)
    assert statuses(sandbox, pets, "/prod/pets", 3, key=KEY) == [200] * 3  # another method, another bucket
    assert statuses(sandbox, pets, "/beta/open", 3) == [200] * 3  # beta has no throttle
    clock.advance(0.5)  # one token back at 2 per second
    assert statuses(sandbox, pets, "/prod/open", 2) == [200, 429]
    clock.advance(60.0)  # the bucket holds the burst, never more
    assert statuses(sandbox, pets, "/prod/open", 4) == [200, 200, 200, 429]
    assert sandbox.extension(ApiDataPlane).throttle.throttled == 5


def test_a_method_setting_overrides_the_stage_wide_one(sandbox: Sandbox, aws: Any, pets: Api,
                                                      clock: DrivenClock) -> None:
    throttle_stage(aws, pets, rate=10, burst=3)
    throttle_stage(aws, pets, rate=1, burst=1, method="~1open/GET")
    assert statuses(sandbox, pets, "/prod/open", 2) == [200, 429]
    assert "Limit: 1.00 Burst: 1" in (get(sandbox, pets, "/prod/open").header("x-multiregion-error") or "")
    key_in_plan(aws, pets)
    assert statuses(sandbox, pets, "/prod/pets", 4, key=KEY) == [200, 200, 200, 429]


def test_a_changed_limit_applies_at_once_without_a_deployment(sandbox: Sandbox, aws: Any, pets: Api,
                                                             clock: DrivenClock) -> None:
    throttle_stage(aws, pets, rate=1, burst=1)
    assert statuses(sandbox, pets, "/prod/open", 2) == [200, 429]
    throttle_stage(aws, pets, rate=1, burst=2)
    assert statuses(sandbox, pets, "/prod/open", 3) == [200, 200, 429]


def test_the_usage_plan_throttles_each_key_across_the_stages_of_the_plan(sandbox: Sandbox, aws: Any, pets: Api,
                                                                        clock: DrivenClock) -> None:
    throttle = {"rateLimit": 1.0, "burstLimit": 2}
    first = key_in_plan(aws, pets, KEY, stages=("prod", "beta"), throttle=throttle)
    key_in_plan(aws, pets, OTHER_KEY, stages=("prod",), throttle=throttle)
    assert statuses(sandbox, pets, "/prod/pets", 1, key=KEY) == [200]
    assert statuses(sandbox, pets, "/beta/pets", 2, key=KEY) == [200, 429]  # one bucket for both stages
    assert_throttled(get(sandbox, pets, "/prod/pets", KEY), f"Key throttle limit exceeded for Usage Plan ID "
                                                            f"{first['plan']}, RestApi {pets.id}, Stage prod")
    assert statuses(sandbox, pets, "/prod/pets", 3, key=OTHER_KEY) == [200, 200, 429]  # its own bucket
    assert statuses(sandbox, pets, "/prod/open", 5) == [200] * 5  # no key required: not metered
    clock.advance(1.0)
    assert statuses(sandbox, pets, "/prod/pets", 2, key=KEY) == [200, 429]


def test_the_usage_plan_can_throttle_one_method_of_a_stage(sandbox: Sandbox, aws: Any, pets: Api,
                                                          clock: DrivenClock) -> None:
    apigw = aws("apigateway", REGION)
    resources = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=pets.id)["items"]}
    require_key(apigw, pets.id, resources["/open"])
    key_id = apigw.create_api_key(name="k", value=KEY, enabled=True)["id"]
    plan = apigw.create_usage_plan(name="per-method", apiStages=[
        {"apiId": pets.id, "stage": "prod", "throttle": {"/pets/GET": {"rateLimit": 1.0, "burstLimit": 1}}}])["id"]
    apigw.create_usage_plan_key(usagePlanId=plan, keyId=key_id, keyType="API_KEY")
    assert statuses(sandbox, pets, "/prod/pets", 2, key=KEY) == [200, 429]
    assert "Key method throttle limit" in (get(sandbox, pets, "/prod/pets", KEY).header("x-multiregion-error") or "")
    assert statuses(sandbox, pets, "/prod/open", 3, key=KEY) == [200] * 3


def test_the_usage_plan_comes_before_the_stage(sandbox: Sandbox, aws: Any, pets: Api, clock: DrivenClock) -> None:
    throttle_stage(aws, pets, rate=1, burst=1)
    key_in_plan(aws, pets, throttle={"rateLimit": 1.0, "burstLimit": 1})
    assert get(sandbox, pets, "/prod/pets", KEY).status == 200
    assert_throttled(get(sandbox, pets, "/prod/pets", KEY), "Key throttle limit exceeded")


def test_health_checker_probes_take_a_time_scale_fraction_of_a_token(sandbox: Sandbox, aws: Any, pets: Api,
                                                                    clock: DrivenClock,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.options, "time_scale", 10.0)
    throttle_stage(aws, pets, rate=1, burst=1)
    probe = {"User-Agent": f"{CHECKER_AGENT} (ref 1234; report http://amzn.to/1vsZADi)"}
    assert statuses(sandbox, pets, "/prod/open", 10, **probe) == [200] * 10  # one token for ten probes
    assert statuses(sandbox, pets, "/prod/open", 1, **probe) == [429]
    assert statuses(sandbox, pets, "/prod/open", 1) == [429]
    clock.advance(1.0)
    assert statuses(sandbox, pets, "/prod/open", 2) == [200, 429]  # a client's request is a whole token


def test_a_burst_of_zero_refuses_everything(sandbox: Sandbox, aws: Any, pets: Api, clock: DrivenClock) -> None:
    throttle_stage(aws, pets, rate=0, burst=0)
    assert statuses(sandbox, pets, "/prod/open", 2) == [429, 429]
    clock.advance(100.0)
    assert statuses(sandbox, pets, "/prod/open", 1) == [429]


def test_the_key_check_comes_before_the_throttle(sandbox: Sandbox, aws: Any, pets: Api, clock: DrivenClock) -> None:
    throttle_stage(aws, pets, rate=1, burst=1)
    key_in_plan(aws, pets)
    assert_forbidden(get(sandbox, pets, "/prod/pets"), "no x-api-key")  # refused: no token taken
    assert get(sandbox, pets, "/prod/pets", KEY).status == 200
    assert get(sandbox, pets, "/prod/pets", KEY).status == 429


def test_a_reset_forgets_the_buckets(sandbox: Sandbox, aws: Any, pets: Api) -> None:
    throttle_stage(aws, pets, rate=0, burst=1)
    assert statuses(sandbox, pets, "/prod/open", 2) == [200, 429]
    plane = sandbox.extension(ApiDataPlane)
    plane.throttle.reset()
    assert plane.throttle.throttled == 0
    assert statuses(sandbox, pets, "/prod/open", 1) == [200]
    assert json.loads(get(sandbox, pets, "/prod/open").body) == {"message": "Too Many Requests"}
