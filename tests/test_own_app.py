"""A team's own app end to end on the sandbox: `init`, then routes of its own with a dependency vendored from a
wheel the test builds (no registry), deployed by `up` to two regions, answered through each regional API and
the global name, least privilege per function, log groups with retention, and the drill through its routes."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner

from multiregion.cli import main
from multiregion.regions import client_ip
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli
from tests.test_packaging import write_wheel

REGIONS = ("eu-west-1", "us-east-1")
SERVICE = "shop"
DOMAIN = "api.shop.example.com"
RETENTION = 14

ORDERS = '''"""Orders: POST /orders stores one, GET /orders/{id} reads it back; both say which tinydep they run."""

import json

import tinydep

import common


@common.api_handler
def create(event, context=None):
    body = json.loads(event.get("body") or "{}")
    item = {k: {"S": str(v)} for k, v in body.items()}
    common.dynamodb().put_item(TableName=common.table_name(), Item=item)
    return common.respond(201, {"id": body["id"], "region": common.region(), "tinydep": tinydep.VERSION})


@common.api_handler
def get(event, context=None):
    item_id = event["pathParameters"]["id"]
    found = common.dynamodb().get_item(TableName=common.table_name(), Key={"id": {"S": item_id}},
                                       ConsistentRead=True).get("Item")
    if found is None:
        return common.error(404, "NotFound", f"no order {item_id}")
    order = {k: v["S"] for k, v in found.items()}
    return common.respond(200, {**order, "served_by": common.region(), "tinydep": tinydep.VERSION})
'''

OPS = '''"""GET /boom: a handler that fails, to see what API clients get."""

import common


@common.api_handler
def boom(event, context=None):
    raise RuntimeError("a bug in the handler")
'''


def init_project(tmp: Path, sandbox: Sandbox) -> Path:
    project = tmp / "project"
    result = CliRunner().invoke(main, ["init", str(project)])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["endpoint"] = sandbox.url
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    return project


# --------------------------------------------------------------------------------------- init as it comes


def test_init_then_up_then_failover_test_passes(sandbox: Sandbox, tmp_path: Path) -> None:
    cli = Cli(init_project(tmp_path, sandbox) / "config.yaml")
    code, doc = cli.json("up")
    assert code == 0, doc
    code, report = cli.json("failover-test")
    assert code == 0, report["error"]
    assert report["drill"]["rpo_final"]["lost"] == 0


# ----------------------------------------------------------------------------------- an app of its own


@pytest.fixture(scope="module")
def shop(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("shop")
    wheels = tmp / "wheels"
    write_wheel(wheels, "tinydep", "1.2.3")
    with pytest.MonkeyPatch.context() as env:  # pip finds the wheel here and nowhere else (offline)
        for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_REQUIRE_VIRTUALENV", "PIP_TARGET", "PIP_USER"):
            env.delenv(var, raising=False)
        env.setenv("PIP_CONFIG_FILE", os.devnull)
        env.setenv("PIP_NO_INDEX", "1")
        env.setenv("PIP_FIND_LINKS", str(wheels))
        sandbox_server.reset()
        project = init_project(tmp, sandbox_server)
        (project / "app" / "orders.py").write_text(ORDERS)
        (project / "app" / "ops.py").write_text(OPS)
        (project / "app" / "requirements.txt").write_text("tinydep==1.2.3\n")
        config = yaml.safe_load((project / "config.yaml").read_text())
        config["service"] = SERVICE
        config["table"] = {"name": SERVICE}
        config["domain"] = {"name": DOMAIN, "hosted_zone": "shop.example.com", "create_zone": True}
        config["app"]["routes"] = [
            {"method": "POST", "path": "/orders", "handler": "orders.create", "table": "write"},
            {"method": "GET", "path": "/orders/{id}", "handler": "orders.get", "table": "read"},
            {"method": "GET", "path": "/boom", "handler": "ops.boom"}]
        config["app"]["log_retention_days"] = RETENTION
        config["drill"] = {"write": "POST /orders", "read": "GET /orders/{id}"}
        (project / "config.yaml").write_text(yaml.safe_dump(config))
        cli = Cli(project / "config.yaml")
        code, doc = cli.json("up")
        assert code == 0, doc
        yield cli


def aws(sandbox: Sandbox, service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=sandbox.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def send(sandbox: Sandbox, host: str, method: str, path: str, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Host": host, "Content-Type": "application/json",
                                                    **(headers or {})})
    answer = conn.getresponse()
    text = answer.read()
    conn.close()
    return answer.status, json.loads(text) if text else None


def api_host(sandbox: Sandbox, region: str) -> str:
    [api] = [a for a in aws(sandbox, "apigateway", region).get_rest_apis()["items"] if a["name"] == SERVICE]
    return f"{api['id']}.execute-api.{region}.amazonaws.com"


def test_both_routes_answer_in_every_region_and_through_the_global_name(shop: Cli, sandbox_server: Sandbox) -> None:
    for region in REGIONS:
        host = api_host(sandbox_server, region)
        status, created = send(sandbox_server, host, "POST", "/prod/orders", {"id": f"o-{region}", "qty": "2"})
        assert status == 201 and created == {"id": f"o-{region}", "region": region, "tinydep": "1.2.3"}
        status, order = send(sandbox_server, host, "GET", f"/prod/orders/o-{region}")
        assert status == 200 and order["qty"] == "2" and order["served_by"] == region
        assert order["tinydep"] == "1.2.3"  # the vendored wheel's version, in the function's own zip
        # Through the global name, as a client in that region: the nearest region serves it.
        status, order = send(sandbox_server, DOMAIN, "GET", f"/orders/o-{region}",
                             headers={"X-Multiregion-Client-IP": client_ip(region)})
        assert status == 200 and order["served_by"] == region


def test_an_unhandled_exception_answers_a_json_500_with_the_request_id(shop: Cli, sandbox_server: Sandbox) -> None:
    status, answer = send(sandbox_server, api_host(sandbox_server, "eu-west-1"), "GET", "/prod/boom")
    assert status == 500 and answer["error"] == "InternalError" and answer["request_id"]


def test_each_role_allows_only_its_routes_table_access_in_its_own_region(shop: Cli, sandbox_server: Sandbox) -> None:
    iam = aws(sandbox_server, "iam", "us-east-1")
    expected = {"orders-create": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
                "orders-get": {"dynamodb:GetItem", "dynamodb:Query"}, "ops-boom": set()}
    for region in REGIONS:
        for component, table_actions in expected.items():
            role = f"{SERVICE}-{component}-{region}"
            names = iam.list_role_policies(RoleName=role)["PolicyNames"]
            assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
            statements = [s for name in names
                          for s in iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]["Statement"]]
            dynamo = {a for s in statements for a in _list(s["Action"]) if a.startswith("dynamodb:")}
            assert dynamo == table_actions, role
            for s in statements:
                actions = _list(s["Action"])
                resources = _list(s["Resource"])
                if any(a.startswith("dynamodb:") for a in actions):
                    assert resources == [f"arn:aws:dynamodb:{region}:123456789012:table/{SERVICE}"]
                else:
                    assert all(a.startswith("logs:") for a in actions), s
                    group = f"arn:aws:logs:{region}:123456789012:log-group:/aws/lambda/{SERVICE}-{component}"
                    assert all(r.startswith(group) for r in resources), (role, resources)


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_log_groups_exist_with_the_configured_retention(shop: Cli, sandbox_server: Sandbox) -> None:
    for region in REGIONS:
        groups = aws(sandbox_server, "logs", region).describe_log_groups(
            logGroupNamePrefix=f"/aws/lambda/{SERVICE}-")["logGroups"]
        found = {g["logGroupName"]: g.get("retentionInDays") for g in groups}
        assert {f"/aws/lambda/{SERVICE}-{c}" for c in ("orders-create", "orders-get", "ops-boom")} <= set(found)
        assert all(days == RETENTION for name, days in found.items() if "health" not in name)


def test_a_converged_up_uploads_nothing_and_one_changed_file_redeploys_only_its_functions(shop: Cli) -> None:
    code, doc = shop.json("up")
    assert code == 0 and doc["changes"] == [] and doc["api_calls"]["writes"] == {}, doc
    assert shop.config is not None
    ops = shop.config.parent / "app" / "ops.py"
    original = ops.read_text()
    ops.write_text(original + "\n# a comment changes the zip\n")
    try:
        code, doc = shop.json("up")
        assert code == 0, doc
        assert sorted((c["region"], c["resource"]) for c in doc["changes"]) == [
            (r, f"function {SERVICE}-ops-boom") for r in sorted(REGIONS)]
    finally:
        ops.write_text(original)
        assert shop.json("up")[0] == 0


def test_the_drill_writes_and_reads_through_the_apps_routes(shop: Cli) -> None:
    code, report = shop.json("failover-test", "--fault", "outage")
    assert code == 0, report["error"]
    drill = report["drill"]
    assert drill["rpo_final"]["lost"] == 0 and drill["rpo_final"]["checked"] > 0
    assert drill["clients"]["us-east-1"]["availability"]["percent"] == 100


@pytest.mark.parametrize("change, path", [
    ({"handler": "orders.missing"}, "app.routes[0].handler"),
    ({"handler": "nowhere.create"}, "app.routes[0].handler"),
])
def test_a_route_without_its_handler_is_refused_before_any_call(shop: Cli, tmp_path: Path, change: dict[str, str],
                                                               path: str) -> None:
    assert shop.config is not None
    config = yaml.safe_load(shop.config.read_text())
    config["app"]["source"] = str(shop.config.parent / "app")
    config["app"]["requirements"] = str(shop.config.parent / "app" / "requirements.txt")
    config["app"]["routes"][0].update(change)
    config["endpoint"] = "http://127.0.0.1:9"  # nothing listens: a call would fail differently
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["--config", str(bad), "plan"])
    assert result.exit_code == 2 and path in result.output, result.output
    config["app"]["source"] = str(tmp_path / "no-such-dir")
    bad.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["--config", str(bad), "plan"])
    assert result.exit_code == 2 and "app.source" in result.output
