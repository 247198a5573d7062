"""failover-test as a measured drill on the sandbox: continuous traffic from a client in each region,
what each client felt (availability, RTO), what was lost (RPO), conflicts, budgets, JUnit and HTML."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from multiregion.lookups.tables import ISOLATION_SID
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, clear_faults, converged_stack, wait_for

REGIONS = ("eu-west-1", "us-east-1")
# At time scale 10: interval 10 s x threshold 2 + one interval + the record's TTL (60 s), in sandbox seconds,
# and room for a loaded machine (one poll, one request period).
RTO_BOUND = (10 * 2 + 10 + 60) / 10 + 1.5


@pytest.fixture(scope="module")
def stack(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return converged_stack(sandbox_server, tmp_path_factory.mktemp("drill"))


@pytest.fixture
def faults(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    yield sandbox_server
    clear_faults(sandbox_server)


def client(sandbox: Sandbox, service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=sandbox.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def drill_items(sandbox: Sandbox, region: str) -> list[str]:
    items = client(sandbox, "dynamodb", region).scan(TableName="items")["Items"]
    return sorted(i["id"]["S"] for i in items if i["id"]["S"].startswith("multiregion-"))


def test_an_outage_is_felt_by_its_region_only_and_recovered_within_the_bound(stack: Cli, tmp_path: Path) -> None:
    junit = tmp_path / "drill.xml"
    code, report = stack.json("failover-test", "--fault", "outage", "--junit", str(junit))
    assert code == 0, report["error"]
    drill = report["drill"]
    eu, us = drill["clients"]["eu-west-1"], drill["clients"]["us-east-1"]
    # The client whose region failed got errors until its cached answer moved it; the other never did.
    assert eu["availability"]["percent"] < 100 and eu["errors"]
    assert us["availability"]["percent"] == 100 and us["rto"]["seconds"] == 0
    assert 0 < eu["rto"]["seconds"] <= RTO_BOUND
    # The DNS moved first; the rest is what the client's resolver cache (the TTL) added.
    assert eu["dns"]["seconds"] is not None and eu["dns"]["seconds"] < eu["rto"]["seconds"]
    assert eu["dns"]["before"] == "eu-west-1" and eu["dns"]["after"] == "us-east-1"
    assert drill["rpo_final"]["lost"] == 0 and drill["rpo_final"]["checked"] > 0
    assert {"before", "during", "after"} <= set(eu["latency"])
    # JUnit: one case per step, all passing.
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "0"
    assert {c.get("name") for c in suite.iter("testcase")} >= {"preflight", "inject", "detect", "restore", "settle"}


def test_the_health_switch_moves_routing_but_no_user_sees_an_error(stack: Cli) -> None:
    # The article's fault fails the health check only: the region's API keeps answering, so its clients
    # keep succeeding (100%) while Route 53 moves them; what they feel is the move, not an outage.
    code, report = stack.json("failover-test", "--fault", "health")
    assert code == 0, report["error"]
    eu = report["drill"]["clients"]["eu-west-1"]
    assert eu["availability"]["percent"] == 100
    assert eu["dns"]["after"] == "us-east-1"
    assert "observe" in [s["step"] for s in report["timeline"]]


def test_concurrent_writes_to_the_same_ids_converge_and_the_overwritten_are_counted(stack: Cli,
                                                                                    sandbox_server: Sandbox) -> None:
    code, report = stack.json("failover-test", "--fault", "health", "--keep-items")
    assert code == 0, report["error"]
    conflicts = report["drill"]["conflicts"]
    assert conflicts["ids"] == 3 and conflicts["converged"] is True and not conflicts["diverged_ids"]
    assert conflicts["overwritten"] > 0
    # And the regions hold the very same items (kept for inspection).
    wait_for(lambda: drill_items(sandbox_server, "eu-west-1") == drill_items(sandbox_server, "us-east-1"))
    assert any("-conflict-" in i for i in drill_items(sandbox_server, "eu-west-1"))
    for region in REGIONS:  # clean up what --keep-items kept
        ddb = client(sandbox_server, "dynamodb", region)
        for item in drill_items(sandbox_server, region):
            ddb.delete_item(TableName="items", Key={"id": {"S": item}})


def test_isolation_reports_what_did_not_replicate_then_nothing_lost(stack: Cli, sandbox_server: Sandbox) -> None:
    code, report = stack.json("failover-test", "--fault", "isolate")
    assert code == 0, report["error"]
    drill = report["drill"]
    during, after = drill["rpo_isolation"], drill["rpo_final"]
    assert during["lost"] > 0 and during["item_ids"]
    assert any("eu-west-1" in i for i in during["item_ids"])  # written in the isolated region
    assert after["lost"] == 0
    assert drill["clients"]["eu-west-1"]["availability"]["percent"] == 100  # its API kept answering
    assert "isolated" in [s["step"] for s in report["timeline"]]
    # The isolation was lifted: no drill statement left in the replica's resource policy.
    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/items"
    ddb = client(sandbox_server, "dynamodb", "eu-west-1")
    try:
        policy = ddb.get_resource_policy(ResourceArn=table).get("Policy") or ""
    except ddb.exceptions.ClientError:
        policy = ""
    assert ISOLATION_SID not in policy


def test_replication_that_never_resumes_fails_naming_the_lost_writes(stack: Cli, faults: Sandbox) -> None:
    # Once the drill's isolation is in place, the region stays cut off after the drill lifts it.
    ddb = client(faults, "dynamodb", "eu-west-1")
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/items"
    stop = threading.Event()

    def cut_off_once_isolated() -> None:
        while not stop.is_set():
            try:
                if ISOLATION_SID in (ddb.get_resource_policy(ResourceArn=arn).get("Policy") or ""):
                    with faults.faults_lock:
                        faults.faults["replication_paused"] = ["eu-west-1"]
                    return
            except ddb.exceptions.ClientError:
                pass
            stop.wait(0.02)

    watcher = threading.Thread(target=cut_off_once_isolated, daemon=True)
    watcher.start()
    try:
        code, report = stack.json("failover-test", "--fault", "isolate", "--timeout", "5")
    finally:
        stop.set()
        watcher.join()
    assert code == 1
    assert report["failed_step"] == "settle"
    lost = report["drill"]["rpo_final"]
    assert lost["lost"] > 0
    assert all(item in report["error"] for item in lost["item_ids"][:3]), (report["error"], lost)


def test_a_budget_below_the_measured_rto_fails_with_a_failing_junit_case(stack: Cli, tmp_path: Path) -> None:
    junit = tmp_path / "drill.xml"
    html = tmp_path / "drill.html"
    code, report = stack.json("failover-test", "--fault", "outage", "--max-rto", "0.1", "--min-availability", "1",
                              "--junit", str(junit), "--report", str(html))
    assert code == 1 and report["failed_step"] is None  # every step held; the budget did not
    budgets = {b["name"]: b for b in report["drill"]["budgets"]}
    assert budgets["client-visible RTO"]["ok"] is False and budgets["availability"]["ok"] is True
    suite = ET.parse(junit).getroot()
    failing = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failing] == ["client-visible RTO"]
    assert "--max-rto" in failing[0].find("failure").get("message", "")  # type: ignore[union-attr]
    page = html.read_text()
    assert page.count('class="client-band"') == 2 and "http://" not in page and "https://" not in page


def test_killed_during_an_isolation_the_next_up_restores_replication(stack: Cli, sandbox_server: Sandbox) -> None:
    assert stack.config is not None
    env = {**os.environ, "MULTIREGION_HOME": os.environ.get("MULTIREGION_HOME", "/tmp")}
    proc = subprocess.Popen([sys.executable, "-m", "multiregion", "--config", str(stack.config), "failover-test",
                             "--fault", "isolate", "--hold", "600"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "inject" in line and "stops replicating" in line:
                break
        else:
            raise AssertionError("the drill never injected")
        os.kill(proc.pid, signal.SIGKILL)  # no restore runs
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    code, plan = stack.json("plan")
    assert [(c["stage"], c["region"], c["reason"]) for c in plan["changes"]] == [
        ("global-table", "eu-west-1", "drift: a drill's isolation still stops replication -> lifted")]
    # The killed run still holds the stack's lease: up refuses until it is removed (status names it).
    code, status = stack.json("status")
    lease = status["global"]["lease"]
    assert lease is not None and lease["command"] == "failover-test"
    assert stack("up").exit_code == 1
    assert stack("force-unlock", lease["lease_id"]).exit_code == 0
    code, doc = stack.json("up")
    assert code == 0, doc
    assert stack.json("plan")[1]["changes"] == []
    # Replication flows again: a write in eu-west-1 reaches us-east-1.
    client(sandbox_server, "dynamodb", "eu-west-1").put_item(TableName="items", Item={"id": {"S": "after-kill"}})
    wait_for(lambda: "Item" in client(sandbox_server, "dynamodb", "us-east-1").get_item(
        TableName="items", Key={"id": {"S": "after-kill"}}))
