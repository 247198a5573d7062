"""End to end on the sandbox: `up` with `api.auth: api-key`, `api.cors` and `api.throttle`, then requests
through each region's API and through the global name, and a failover drill that must send the key.

What the data plane enforces is API Gateway's: the item routes answer 403 {"message": "Forbidden"} without
the stack's key and serve with it, health needs no key (Route 53's checkers send none), the CORS preflight
is answered by API Gateway itself (a MOCK integration) without a key or a function, and each route of a
stage is throttled beyond its burst with 429 {"message": "Too Many Requests"}.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import yaml

from multiregion.regions import client_ip
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, DrivenClock, demo_config

ORIGIN = "https://app.example.com"
GLOBAL_NAME = "api.multiregion-demo.example.com"
REGIONS = ("eu-west-1", "us-east-1")
RATE, BURST = 20, 5


@dataclass
class Stack:
    cli: Cli
    sandbox: Sandbox
    key: str
    apis: dict[str, str]  # region -> API id


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def stack(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One converged stack for the module, with API keys, CORS and throttling."""
    sandbox_server.reset()
    cfg = demo_config()
    cfg["endpoint"] = sandbox_server.url
    cfg["api"] = {"stage": "prod", "auth": "api-key", "cors": {"origins": [ORIGIN]},
                  "throttle": {"rate": RATE, "burst": BURST}}
    path = tmp_path_factory.mktemp("auth") / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = Cli(path)
    code, doc = cli.json("up")
    assert code == 0, doc
    code, status = cli.json("status")
    assert code == 0, status
    key = status["global"]["api-keys"]["api_key"]
    apis = {r: status["regions"][r]["api"]["api_id"] for r in REGIONS}
    yield Stack(cli, sandbox_server, key, apis)


def send(sandbox: Sandbox, host: str, method: str, path: str, body: Any = None, **headers: str) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers={"Host": host, **headers})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def regional(stack: Stack, region: str, method: str, path: str, body: Any = None, **headers: str) -> Reply:
    host = f"{stack.apis[region]}.execute-api.{region}.amazonaws.com"
    return send(stack.sandbox, host, method, f"/prod{path}", body, **headers)


def global_name(stack: Stack, client_region: str, method: str, path: str, body: Any = None, **headers: str) -> Reply:
    """Through the global name, as a client in `client_region` (the sandbox routes it as Route 53 answers)."""
    return send(stack.sandbox, GLOBAL_NAME, method, path, body,
                **{"X-Multiregion-Client-IP": client_ip(client_region), **headers})


def assert_forbidden(reply: Reply) -> None:
    assert reply.status == 403, reply
    assert reply.json() == {"message": "Forbidden"}
    assert reply.headers["x-amzn-errortype"] == "ForbiddenException"


def test_up_converges_keys_cors_and_throttling(stack: Stack) -> None:
    assert stack.cli.json("plan")[1]["changes"] == []
    for region in REGIONS:
        apigw = boto3.client("apigateway", region_name=region, endpoint_url=stack.sandbox.url)
        stage = apigw.get_stage(restApiId=stack.apis[region], stageName="prod")
        settings = stage["methodSettings"]["*/*"]
        assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (RATE, BURST)
        values = {k["value"] for k in apigw.get_api_keys(includeValues=True)["items"]}
        assert values == {stack.key}


@pytest.mark.parametrize("region", REGIONS)
def test_each_regional_api_wants_the_key_on_the_item_routes(stack: Stack, region: str) -> None:
    item_id = f"auth-{uuid.uuid4().hex[:8]}"
    assert_forbidden(regional(stack, region, "POST", "/item", {"id": item_id}))
    assert_forbidden(regional(stack, region, "POST", "/item", {"id": item_id}, **{"x-api-key": "x" * 40}))
    written = regional(stack, region, "POST", "/item", {"id": item_id}, **{"x-api-key": stack.key})
    assert written.status in (200, 201), written
    assert written.json()["region"] == region
    assert_forbidden(regional(stack, region, "GET", f"/item/{item_id}"))
    read = regional(stack, region, "GET", f"/item/{item_id}", **{"x-api-key": stack.key})
    assert read.status == 200 and read.json()["served_by"] == region
    health = regional(stack, region, "GET", "/health")  # no key: Route 53's checkers send none
    assert health.status == 200 and health.json()["region"] == region


@pytest.mark.parametrize("client_region", REGIONS)
def test_the_global_name_wants_the_key_too(stack: Stack, client_region: str) -> None:
    item_id = f"global-{uuid.uuid4().hex[:8]}"
    refused = global_name(stack, client_region, "POST", "/item", {"id": item_id})
    assert_forbidden(refused)
    assert refused.headers["x-multiregion-region"] == client_region
    written = global_name(stack, client_region, "POST", "/item", {"id": item_id}, **{"x-api-key": stack.key})
    assert written.status in (200, 201) and written.json()["region"] == client_region
    read = global_name(stack, client_region, "GET", f"/item/{item_id}", **{"x-api-key": stack.key})
    assert read.status == 200 and read.json()["id"] == item_id


def assert_preflight(reply: Reply, methods: str) -> None:
    assert reply.status == 200, reply
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert reply.headers["access-control-allow-methods"] == methods
    assert reply.headers["access-control-allow-headers"] == "Content-Type,X-Api-Key,Authorization"
    assert reply.body == b""


def test_the_preflight_is_answered_without_a_key_or_a_function(stack: Stack) -> None:
    lam = boto3.client("lambda", region_name="eu-west-1", endpoint_url=stack.sandbox.url)
    # With the put function unable to run, only API Gateway itself can answer the preflight.
    lam.put_function_concurrency(FunctionName="items-put", ReservedConcurrentExecutions=0)
    try:
        preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type,x-api-key"}
        assert_preflight(regional(stack, "eu-west-1", "OPTIONS", "/item", **preflight), "OPTIONS,POST")
        assert_preflight(regional(stack, "eu-west-1", "OPTIONS", "/item/abc", **preflight), "GET,OPTIONS")
        assert_preflight(global_name(stack, "eu-west-1", "OPTIONS", "/item", **preflight), "OPTIONS,POST")
        down = regional(stack, "eu-west-1", "POST", "/item", {"id": "x"}, **{"x-api-key": stack.key})
        assert (down.status, down.json()) == (500, {"message": "Internal server error"})
    finally:
        lam.delete_function_concurrency(FunctionName="items-put")
    assert regional(stack, "eu-west-1", "OPTIONS", "/health").status == 403  # health has no preflight


def test_each_route_of_a_stage_is_throttled_beyond_its_burst(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = DrivenClock()  # the buckets refill only when the test says so
    monkeypatch.setattr(stack.sandbox, "clock", clock)
    clock.advance(BURST / RATE)  # the earlier tests' requests are refilled: every bucket holds its burst
    key = {"x-api-key": stack.key}
    answers = [regional(stack, "us-east-1", "GET", "/item/throttled", **key) for _ in range(BURST + 1)]
    assert [a.status for a in answers] == [404] * BURST + [429]  # the item does not exist; the 6th is refused
    assert answers[-1].json() == {"message": "Too Many Requests"}
    assert f"Limit: {RATE:.2f} Burst: {BURST}" in answers[-1].headers["x-multiregion-error"]
    through_name = global_name(stack, "us-east-1", "GET", "/item/throttled", **key)
    assert (through_name.status, through_name.json()) == (429, {"message": "Too Many Requests"})
    assert regional(stack, "us-east-1", "POST", "/item", {"id": "t"}, **key).status in (200, 201)  # its own bucket
    assert regional(stack, "eu-west-1", "GET", "/item/throttled", **key).status == 404  # another region's stage
    clock.advance(1 / RATE)  # one token back
    assert [regional(stack, "us-east-1", "GET", "/item/throttled", **key).status for _ in range(2)] == [404, 429]


def test_the_failover_drill_sends_the_key(stack: Stack) -> None:
    code, report = stack.cli.json("failover-test", "--mode", "health")
    assert code == 0, report
    assert report["passed"] is True
    assert (report["served_before"], report["served_after"]) == ("eu-west-1", "us-east-1")
    clients = report["drill"]["records"]["clients"]
    assert clients and all(c["requests"] > 0 for c in clients.values())
    statuses = {status for c in clients.values() for status in c["by_status"]}
    assert statuses.isdisjoint({"403", "429"}), statuses  # every request carried the key, none was throttled
