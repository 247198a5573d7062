"""The plan as data, end to end: `plan` lists exactly what `up` applies, `down` interrupted at any of its
writes is finished by the next `down`, and the layering rules (no stage imports another) hold."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from multiregion.plan import Call
from multiregion.sandbox.server import Sandbox, SandboxOptions
from tests.conftest import Cli, Crasher, SimulatedCrash, demo_config, wait_for

PACKAGE = Path(__file__).resolve().parent.parent / "multiregion"
MODES = ("traffic-policy", "latency-records")


def change_keys(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["stage"], c["region"], c["action"], c["resource"]) for c in doc["changes"]]


@pytest.mark.parametrize("mode", MODES)
def test_plan_on_a_fresh_account_is_exactly_what_up_applies(write_config: Callable[..., Path], mode: str) -> None:
    cli = Cli(write_config(routing__mode=mode))
    code, plan = cli.json("plan", "--detail")
    assert code == 0, plan["errors"]
    code, applied = cli.json("up")
    assert code == 0, applied["errors"]
    assert change_keys(plan) == change_keys(applied)
    # Each planned change carries its operations; a value AWS assigns only during `up` is a placeholder.
    api = next(c for c in plan["changes"] if c["resource"] == "rest api items")
    assert api["operations"][0]["call"] == "apigateway.create_rest_api"
    mapping = next(c for c in plan["changes"] if c["resource"].startswith("base path mapping"))
    assert mapping["operations"][0]["params"]["restApiId"] == f"(the REST API created above in {mapping['region']})"
    # Converged: nothing planned, and a second `up` makes no write call.
    assert cli.json("plan")[1]["changes"] == []
    code, again = cli.json("up")
    assert code == 0 and again["changes"] == [] and again["api_calls"]["writes"] == {}


# ------------------------------------------------------------------------------------- down, interrupted


@pytest.fixture(scope="module")
def quick_sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own, with time compressed harder, so the sweep's many `up`s stay quick."""
    sb = Sandbox(SandboxOptions(time_scale=100.0, replica_create_delay=0.05, acm_validation_delay=0.02),
                 port=0).start()
    yield sb
    sb.stop()


def quick_cli(sandbox: Sandbox, tmp_path: Path, mode: str) -> Cli:
    sandbox.reset()
    cfg = demo_config()
    cfg["endpoint"] = sandbox.url
    cfg["routing"]["mode"] = mode
    path = tmp_path / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Cli(path)


def leftovers(sandbox: Sandbox) -> list[str]:
    """Whatever of the stack is left anywhere in the sandbox."""
    def client(service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, region_name=region, endpoint_url=sandbox.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    left: list[str] = []
    for region in ("eu-west-1", "us-east-1"):
        left += [f"table {region}" for t in client("dynamodb", region).list_tables()["TableNames"] if t == "items"]
        left += [f"function {f['FunctionName']}" for f in client("lambda", region).list_functions()["Functions"]]
        left += [f"api {a['id']}" for a in client("apigateway", region).get_rest_apis()["items"]]
        left += [f"domain {d['domainName']}" for d in client("apigateway", region).get_domain_names()["items"]]
        left += [f"certificate {c['CertificateArn']}"
                 for c in client("acm", region).list_certificates()["CertificateSummaryList"]]
    r53 = client("route53")
    left += [f"zone {z['Name']}" for z in r53.list_hosted_zones()["HostedZones"]]
    left += [f"health check {c['Id']}" for c in r53.list_health_checks()["HealthChecks"]]
    left += [f"traffic policy {p['Id']}" for p in r53.list_traffic_policies()["TrafficPolicySummaries"]]
    left += [f"role {r['RoleName']}" for r in client("iam").list_roles()["Roles"]]
    return left


def down_writes(sandbox: Sandbox, tmp_path: Path, mode: str) -> int:
    cli = quick_cli(sandbox, tmp_path, mode)
    assert cli.json("up")[0] == 0
    crasher = Crasher(lambda op: False)
    with pytest.MonkeyPatch.context() as patch:
        crasher.install(patch)
        code, doc = cli.json("down", "--yes", "--delete-data")
    assert code == 0, doc["errors"]
    assert leftovers(sandbox) == []
    return sum(1 for op in crasher.seen if isinstance(op, Call))


@pytest.mark.parametrize("mode", MODES)
def test_down_killed_after_any_of_its_writes_is_finished_by_the_next_down(quick_sandbox: Sandbox, tmp_path: Path,
                                                                         mode: str) -> None:
    """`down` is killed right after its first write, again and again: every run starts from the state the
    previous one left (after its 1st, 2nd, ... write of the whole teardown) and must make progress from
    there, never fail, and the last one finds nothing left to do."""
    total = down_writes(quick_sandbox, tmp_path, mode)
    assert total > 20
    cli = quick_cli(quick_sandbox, tmp_path, mode)
    code, doc = cli.json("up")
    assert code == 0, doc["errors"]
    killed, writes = 0, 0
    while True:
        crasher = Crasher(lambda op: isinstance(op, Call))
        with pytest.MonkeyPatch.context() as patch:
            crasher.install(patch)
            try:
                code, doc = cli.json("down", "--yes", "--delete-data")
            except SimulatedCrash:
                killed += 1
                writes += sum(1 for op in crasher.seen if isinstance(op, Call))
                assert killed <= 2 * total, "down keeps writing: it does not converge"
                continue
        assert code == 0, (killed, doc["errors"])
        assert doc["changes"] == []
        break
    # Nodes run in parallel, so a killed run may have made a write or two besides the first: every write of
    # an uninterrupted teardown was made by some killed run, and most runs were killed after one or two.
    assert writes >= total and killed >= total // 2
    # Deletions AWS finishes asynchronously (a policy record's records) may still be on their way.
    wait_for(lambda: leftovers(quick_sandbox) == [], timeout=5)


def test_down_after_the_certificates_went_still_removes_the_validation_record(quick_sandbox: Sandbox,
                                                                           tmp_path: Path) -> None:
    cli = quick_cli(quick_sandbox, tmp_path, "traffic-policy")
    assert cli.json("up")[0] == 0
    with pytest.MonkeyPatch.context() as patch:
        Crasher(lambda op: isinstance(op, Call) and op.method == "delete_certificate").install(patch)
        with pytest.raises(SimulatedCrash):
            cli.json("down", "--yes", "--delete-data")
    code, doc = cli.json("down", "--yes", "--delete-data")
    assert code == 0, doc["errors"]
    assert ("hosted-zone", "global", "delete") in {(c["stage"], c["region"], c["action"]) for c in doc["changes"]}
    assert leftovers(quick_sandbox) == []


# --------------------------------------------------------------------------------------------- layering


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_stage_imports_another_stage() -> None:
    for path in (PACKAGE / "stages").glob("*.py"):
        if path.name == "__init__.py":
            continue
        others = {i for i in imports_of(path) if i.startswith("multiregion.stages")}
        assert not others, f"{path.name} imports {others}"


def test_lookups_and_the_failover_test_import_no_stage_and_no_sandbox() -> None:
    for path in [*(PACKAGE / "lookups").glob("*.py"), PACKAGE / "failover.py", PACKAGE / "engine.py",
                 PACKAGE / "executor.py", PACKAGE / "plan.py", PACKAGE / "estimate.py", PACKAGE / "durations.py"]:
        bad = {i for i in imports_of(path) if i.startswith(("multiregion.stages", "multiregion.sandbox"))}
        assert not bad, f"{path.name} imports {bad}"


def test_the_core_imports_neither_click_nor_rich() -> None:
    core = [PACKAGE / f for f in ("engine.py", "executor.py", "plan.py", "config.py", "failover.py", "app.py",
                                  "estimate.py", "durations.py")]
    for path in [*core, *(PACKAGE / "lookups").glob("*.py"), *(PACKAGE / "stages").glob("*.py")]:
        bad = {i for i in imports_of(path) if i.split(".")[0] in ("click", "rich")}
        assert not bad, f"{path.name} imports {bad}"
