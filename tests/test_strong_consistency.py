"""table.consistency: strong (DynamoDB multi-Region strong consistency) end to end on the sandbox: the config's
rules before any call, the global table made and removed in one update, the API's answers (409 on a replicated
write conflict, 503 in a region cut off), and the drill that shows what strong consistency buys (RPO 0) and
costs (writes refused in the isolated region)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from multiregion.config import ConfigError, parse_config
from multiregion.drill.transport import SandboxTransport
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, DrivenClock, converged_stack, demo_config, wait_for

EU3 = ["eu-west-1", "eu-west-2", "eu-central-1"]


def strong_config(sandbox: Sandbox, regions: list[str], witness: str | None = None,
                  service: str = "strong") -> dict[str, Any]:
    cfg = demo_config()
    cfg.update(service=service, regions=regions, endpoint=sandbox.url)
    cfg["table"] = {"name": service, "consistency": "strong", **({"witness": witness} if witness else {})}
    cfg["domain"] = {"name": f"api.{service}.example.com", "hosted_zone": f"{service}.example.com",
                     "create_zone": True}
    return cfg


def write(tmp: Path, cfg: dict[str, Any]) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def ddb(sandbox: Sandbox, region: str) -> Any:
    return boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def regional_domain(sandbox: Sandbox, region: str, name: str) -> str:
    client = boto3.client("apigateway", region_name=region, endpoint_url=sandbox.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return str(client.get_domain_name(domainName=name)["regionalDomainName"])


# ------------------------------------------------------------------------------------ the config's rules


@pytest.mark.parametrize("regions, witness, path, reason", [
    (["eu-west-1", "eu-west-2"], None, "table.consistency", "exactly three regions"),
    (["eu-west-1", "eu-west-2", "eu-central-1", "eu-west-3"], None, "table.consistency", "exactly three regions"),
    (["eu-west-1", "eu-west-2", "us-east-1"], None, "table.consistency", "span two Region sets"),
    (["eu-west-1", "eu-west-2"], "us-east-1", "table.consistency", "span two Region sets"),
    (["eu-north-1", "eu-west-1", "eu-west-2"], None, "table.consistency", "eu-north-1 is in none"),
    (["eu-west-1", "eu-west-2"], "eu-west-2", "table.witness", "also in `regions`"),
])
def test_configs_outside_aws_rules_are_refused(regions: list[str], witness: str | None, path: str,
                                               reason: str) -> None:
    cfg = demo_config()
    cfg["regions"] = regions
    cfg["table"] = {"consistency": "strong", **({"witness": witness} if witness else {})}
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert err.value.path == path and reason in err.value.reason and err.value.hint


def test_a_witness_needs_strong_consistency() -> None:
    cfg = demo_config()
    cfg["table"] = {"witness": "eu-west-3"}
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert err.value.path == "table.witness" and "table.consistency: strong" in err.value.hint


# ------------------------------------------------------------------------------ three strong replicas


@pytest.fixture(scope="module")
def stack(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return converged_stack(sandbox_server, tmp_path_factory.mktemp("strong"), strong_config(sandbox_server, EU3))


def test_three_regions_converge_into_one_strong_global_table(stack: Cli, sandbox_server: Sandbox) -> None:
    for region in EU3:
        table = ddb(sandbox_server, region).describe_table(TableName="strong")["Table"]
        assert table["MultiRegionConsistency"] == "STRONG"
        assert {r["RegionName"] for r in table["Replicas"]} == set(EU3) - {region}
    assert stack.json("plan")[1]["changes"] == []
    code, status = stack.json("status")
    assert code == 0
    assert status["global"]["global-table"]["consistency"] == "STRONG"


def test_concurrent_writes_of_one_id_give_one_success_and_a_409(stack: Cli, sandbox_server: Sandbox,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # On a driven clock the first write stays in flight until the clock moves: the second region's write
    # of the same id meets it, as two writes a few milliseconds apart would on AWS.
    clock = DrivenClock()
    monkeypatch.setattr(sandbox_server, "clock", clock)
    name = "api.strong.example.com"
    transport = SandboxTransport(sandbox_server.url, name)
    first = transport.send(regional_domain(sandbox_server, "eu-west-1", name), "POST", "/item",
                           {"id": "same", "from": "eu-west-1"})
    second = transport.send(regional_domain(sandbox_server, "eu-west-2", name), "POST", "/item",
                            {"id": "same", "from": "eu-west-2"})
    assert 200 <= first.status < 300
    assert second.status == 409 and second.body["error"] == "WriteConflict" and second.body["retry"] is True
    assert second.headers.get("retry-after") == "1"
    clock.advance(1.0)
    monkeypatch.undo()

    def held() -> set[str]:
        found = set()
        for region in EU3:
            item = ddb(sandbox_server, region).get_item(TableName="strong", Key={"id": {"S": "same"}},
                                                        ConsistentRead=True).get("Item")
            found.add(item["from"]["S"] if item else "")
        return found

    wait_for(lambda: held() == {"eu-west-1"})
    for region in EU3:
        ddb(sandbox_server, region).delete_item(TableName="strong", Key={"id": {"S": "same"}})


def test_an_isolated_region_refuses_writes_and_nothing_acknowledged_is_lost(stack: Cli) -> None:
    code, report = stack.json("failover-test", "--fault", "isolate")
    assert code == 0, report["error"]
    drill = report["drill"]
    assert drill["consistency"] == "strong"
    assert drill["rpo_isolation"]["lost"] == 0 and drill["rpo_final"]["lost"] == 0
    isolated = drill["writes"]["by_region"]["eu-west-1"]
    assert isolated["refused"] > 0 and set(isolated["refused_by_status"]) == {"503"}
    assert all(drill["writes"]["by_region"][r]["acknowledged"] > 0 for r in ("eu-west-2", "eu-central-1"))
    assert "refuses writes while cut off" in next(s["detail"] for s in report["timeline"] if s["step"] == "isolated")


def test_the_mode_of_an_existing_global_table_is_never_switched(stack: Cli, tmp_path: Path,
                                                               sandbox_server: Sandbox) -> None:
    cfg = strong_config(sandbox_server, EU3)
    cfg["table"] = {"name": "strong", "consistency": "eventual"}
    result = Cli(write(tmp_path, cfg))("plan")
    assert result.exit_code == 1
    assert "STRONG" in result.output and "table.consistency: strong" in result.output
    assert ddb(sandbox_server, "eu-west-1").describe_table(TableName="strong")["Table"][
        "MultiRegionConsistency"] == "STRONG"


# ------------------------------------------------------------------------------ two replicas and a witness


def test_two_regions_and_a_witness_converge_and_come_down_in_one_update(sandbox: Sandbox, tmp_path: Path) -> None:
    cli = Cli(write(tmp_path, strong_config(sandbox, ["eu-west-1", "eu-west-2"], witness="eu-west-3",
                                            service="witnessed")))
    code, plan = cli.json("plan")
    strong = [c for c in plan["changes"] if c["stage"] == "global-table"]
    assert len(strong) == 1 and "witness eu-west-3" in strong[0]["reason"]
    code, doc = cli.json("up")
    assert code == 0, doc
    table = ddb(sandbox, "eu-west-1").describe_table(TableName="witnessed")["Table"]
    assert table["MultiRegionConsistency"] == "STRONG"
    assert [w["RegionName"] for w in table["GlobalTableWitnesses"]] == ["eu-west-3"]
    assert cli.json("status")[1]["global"]["global-table"]["witnesses"] == {"eu-west-3": "ACTIVE"}
    # Nothing of the stack runs in the witness's region.
    lambdas = boto3.client("lambda", region_name="eu-west-3", endpoint_url=sandbox.url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    assert lambdas.list_functions()["Functions"] == []
    code, doc = cli.json("down", "--yes", "--delete-data")
    assert code == 0, doc
    calls = [c for c in doc["changes"] if c["stage"] == "global-table"]
    assert len(calls) == 1 and "in one update" in calls[0]["reason"]
    for region in ("eu-west-1", "eu-west-2"):
        with pytest.raises(ddb(sandbox, region).exceptions.ResourceNotFoundException):
            ddb(sandbox, region).describe_table(TableName="witnessed")


def test_a_table_with_items_is_not_made_strong(sandbox: Sandbox, tmp_path: Path) -> None:
    cfg = strong_config(sandbox, ["eu-west-1", "eu-west-2"], witness="eu-west-3", service="filled")
    cli = Cli(write(tmp_path, cfg))
    code, doc = cli.json("up", "--only", "tables")
    assert code == 0, doc
    ddb(sandbox, "eu-west-1").put_item(TableName="filled", Item={"id": {"S": "already-here"}})
    result = cli("plan")
    assert result.exit_code == 1 and "empty" in result.output
    assert "MultiRegionConsistency" not in ddb(sandbox, "eu-west-1").describe_table(TableName="filled")["Table"]
