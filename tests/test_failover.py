"""`multiregion failover-test` end to end on the sandbox: passes in both modes, fails (and restores) when a
step breaks, restores after Ctrl-C, and moves a client to the next nearest region."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multiregion.failover import TEST_ITEM_PREFIX, FailoverTest
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, clear_faults, converged_stack, wait_for

# The detection bound is measured by polling Route 53's status; allow one poll period on top.
POLL_SLACK = 0.5


@pytest.fixture(scope="module")
def stack(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One converged demo stack for the module: every failover test restores what it changed."""
    return converged_stack(sandbox_server, tmp_path_factory.mktemp("failover"))


@pytest.fixture
def clean_faults(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    yield sandbox_server
    clear_faults(sandbox_server)


def health_env(sandbox: Sandbox, region: str) -> dict[str, str]:
    import boto3

    lam = boto3.client("lambda", region_name=region, endpoint_url=sandbox.url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return lam.get_function_configuration(FunctionName="items-health")["Environment"]["Variables"]


def concurrency(sandbox: Sandbox, region: str, name: str) -> Any:
    import boto3

    lam = boto3.client("lambda", region_name=region, endpoint_url=sandbox.url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")


@pytest.mark.parametrize("mode", ["health", "outage"])
def test_passes_and_reports_the_move(stack: Cli, sandbox_server: Sandbox, mode: str) -> None:
    code, report = stack.json("failover-test", "--mode", mode, "--no-traffic")
    assert code == 0, report
    assert report["passed"] is True
    assert (report["failed_region"], report["client_region"]) == ("eu-west-1", "eu-west-1")
    assert (report["served_before"], report["served_after"], report["served_after_restore"]) == (
        "eu-west-1", "us-east-1", "eu-west-1")
    assert [s["step"] for s in report["timeline"]] == [
        "preflight", "baseline", "inject", "detect", "reroute", "verify", "replicate", "restore"]
    assert report["drill"] is None  # --no-traffic: the checks alone
    assert all(s["ok"] and s["seconds"] >= 0 for s in report["timeline"])
    # interval 10 s x threshold 2 + one interval, at time scale 10
    assert report["detection_bound_seconds"] == pytest.approx(3.0)
    assert report["detection_seconds"] <= report["detection_bound_seconds"] + POLL_SLACK
    assert report["replication_lag_seconds"] is not None and report["replication_lag_seconds"] >= 0
    # Restored exactly, and converged again.
    assert health_env(sandbox_server, "eu-west-1")["STATUS"] == "200"
    for fn in ("items-put", "items-get", "items-health"):
        assert concurrency(sandbox_server, "eu-west-1", fn) is None
    assert stack.json("plan")[1]["changes"] == []
    # Test items are removed, in every region.
    for region in ("eu-west-1", "us-east-1"):
        wait_for(lambda r=region: not stack_test_items(sandbox_server, r), timeout=5)


def test_text_report_shows_the_timeline(stack: Cli) -> None:
    result = stack("failover-test", "--no-traffic")
    assert result.exit_code == 0, result.output
    assert "failover timeline" in result.output
    assert "eu-west-1 -> us-east-1 -> eu-west-1" in result.output
    assert "PASSED" in result.output


def test_status_shows_each_regions_health_and_what_its_clients_are_answered(stack: Cli) -> None:
    code, status = stack.json("status")
    assert code == 0
    for region in ("eu-west-1", "us-east-1"):
        facts = status["regions"][region]
        assert facts["health-checks"]["healthy"] is True and facts["health-checks"]["since"]
        assert facts["api"]["invoke_url"].startswith(f"https://{facts['api']['api_id']}.execute-api.{region}.")
        assert facts["certificates"]["status"] == "ISSUED"
        assert status["global"]["routing"]["answers"][region]["served_by"] == region
    assert status["global"]["global-table"]["replicas"] == {"us-east-1": "ACTIVE"}
    result = stack("status")
    assert result.exit_code == 0
    assert "stack status" in result.output and result.output.count("healthy since") == 2
    assert "api.multiregion-demo.example.com (traffic-policy): policy record Applied" in result.output


def test_replication_that_does_not_reach_the_failed_region_fails_the_test(stack: Cli,
                                                                         clean_faults: Sandbox) -> None:
    clean_faults.faults["replication_paused"] = ["eu-west-1"]
    code, report = stack.json("failover-test", "--timeout", "3", "--no-traffic")
    assert code == 1
    assert report["passed"] is False and report["failed_step"] == "replicate"
    assert "replicate into eu-west-1" in report["error"]
    assert report["restored"] is True
    assert health_env(clean_faults, "eu-west-1")["STATUS"] == "200"
    # Once replication resumes, the held writes arrive, and so do the deletes of the test items.
    clean_faults.faults["replication_paused"] = []
    # Both regions must end empty: wait on exactly that (the deletes replicate in either direction).
    wait_for(lambda: not any(stack_test_items(clean_faults, r) for r in ("eu-west-1", "us-east-1")), timeout=5)


def stack_test_items(sandbox: Sandbox, region: str) -> list[str]:
    import boto3

    ddb = boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return [i["id"]["S"] for i in ddb.scan(TableName="items")["Items"] if i["id"]["S"].startswith(TEST_ITEM_PREFIX)]


def test_a_health_check_that_never_turns_unhealthy_fails_detection(stack: Cli, clean_faults: Sandbox) -> None:
    code, status = stack.json("status")
    check_id = status["regions"]["eu-west-1"]["health-checks"]["check_id"]
    clean_faults.faults["health_check_frozen"] = [check_id]
    code, report = stack.json("failover-test", "--timeout", "3", "--no-traffic")
    assert code == 1
    assert report["failed_step"] == "detect" and "unhealthy" in report["error"]
    assert report["restored"] is True
    assert [s["step"] for s in report["timeline"]][-1] == "restore"
    assert health_env(clean_faults, "eu-west-1")["STATUS"] == "200"


def test_interrupting_after_the_injection_restores(stack: Cli, sandbox_server: Sandbox,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str] = {}

    def interrupted(self: FailoverTest) -> str:
        seen["status"] = health_env(sandbox_server, "eu-west-1")["STATUS"]
        raise KeyboardInterrupt

    monkeypatch.setattr(FailoverTest, "detect", interrupted)
    code, report = stack.json("failover-test", "--no-traffic")
    assert seen["status"] == "404"  # the injection had happened
    assert code == 1 and report["failed_step"] == "detect" and "interrupted" in report["error"]
    assert report["restored"] is True
    assert health_env(sandbox_server, "eu-west-1")["STATUS"] == "200"


def test_preflight_touches_nothing_when_a_region_is_unhealthy(stack: Cli, sandbox_server: Sandbox,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FailoverTest, "healthy", lambda self, region: region != "us-east-1")
    code, report = stack.json("failover-test", "--no-traffic")
    assert code == 1 and report["failed_step"] == "preflight"
    assert "us-east-1" in report["error"]
    assert [s["step"] for s in report["timeline"]] == ["preflight"]
    assert health_env(sandbox_server, "eu-west-1")["STATUS"] == "200"


def test_bad_arguments_exit_2(stack: Cli) -> None:
    assert stack("failover-test", "--region", "mars-1").exit_code == 2
    assert stack("failover-test", "--client-ip", "not-an-ip").exit_code == 2
    assert stack("failover-test", "--client-region", "eu-west-1", "--client-ip", "1.2.3.4").exit_code == 2
    assert stack("failover-test", "--mode", "meteor").exit_code == 2


def test_region_outside_the_stack_is_refused(stack: Cli) -> None:
    code, report = stack.json("failover-test", "--region", "ap-southeast-2", "--no-traffic")
    assert code == 1 and report["failed_step"] == "preflight"
    assert "not one of the stack's regions" in report["error"]


def test_interrupted_injection_is_still_undone(stack: Cli, sandbox_server: Sandbox,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from multiregion.executor import Executor

    real = Executor.wait
    calls = {"n": 0}

    def interrupted_once(self: Executor, op: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:  # the wait right after STATUS=404 was written
            raise KeyboardInterrupt
        return real(self, op)

    monkeypatch.setattr(Executor, "wait", interrupted_once)
    code, report = stack.json("failover-test", "--no-traffic")
    assert code == 1 and report["failed_step"] == "inject", report["error"]
    assert report["restored"] is True
    assert health_env(sandbox_server, "eu-west-1")["STATUS"] == "200"


def test_interrupted_while_the_injection_is_still_in_progress_is_restored(stack: Cli, sandbox_server: Sandbox,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C right after STATUS=404 was written, while Lambda still applies it (LastUpdateStatus InProgress,
    when the strict sandbox refuses another update with ResourceConflictException): the restore waits for
    the update, then writes, and the region is left restored."""
    from dataclasses import replace

    from multiregion.executor import Executor
    from multiregion.sandbox import timing

    assert sandbox_server.strict
    # An update that takes a second here (AWS: a couple of seconds), so that Ctrl-C lands inside it.
    monkeypatch.setitem(timing.DURATIONS, "lambda_update", replace(timing.DURATIONS["lambda_update"],
                                                                   fast_seconds=1.0))
    real = Executor.wait
    calls = {"n": 0}
    seen: list[str] = []

    def interrupted_in_progress(self: Executor, op: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:  # the wait right after STATUS=404 was written
            seen.append(lambda_config(sandbox_server, "eu-west-1")["LastUpdateStatus"])
            raise KeyboardInterrupt
        return real(self, op)

    monkeypatch.setattr(Executor, "wait", interrupted_in_progress)
    code, report = stack.json("failover-test", "--no-traffic")
    assert seen == ["InProgress"]
    assert code == 1 and report["failed_step"] == "inject", report["error"]
    assert report["restored"] is True, report["timeline"]
    assert health_env(sandbox_server, "eu-west-1")["STATUS"] == "200"


def lambda_config(sandbox: Sandbox, region: str) -> dict[str, Any]:
    import boto3

    lam = boto3.client("lambda", region_name=region, endpoint_url=sandbox.url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return dict(lam.get_function_configuration(FunctionName="items-health"))


def test_every_undo_is_tried_when_one_fails(stack: Cli, sandbox_server: Sandbox,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = FailoverTest._set_concurrency
    monkeypatch.setattr(FailoverTest, "detect", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))

    def fails_for_health(self: FailoverTest, region: str, name: str, value: Any) -> None:
        if name == "items-health":
            raise RuntimeError("simulated AWS refusal")
        real(self, region, name, value)

    monkeypatch.setattr(FailoverTest, "_set_concurrency", fails_for_health)
    code, report = stack.json("failover-test", "--mode", "outage", "--no-traffic")
    assert code == 1 and report["restored"] is False
    assert [s["step"] for s in report["timeline"]][-1] == "restore"
    assert "simulated AWS refusal" in report["timeline"][-1]["detail"]
    # The other two functions were restored even though the health function's undo failed.
    assert concurrency(sandbox_server, "eu-west-1", "items-put") is None
    assert concurrency(sandbox_server, "eu-west-1", "items-get") is None
    # Put the stack back for the tests after this one: `up` removes the leftover throttle.
    assert stack.json("up")[0] == 0
    assert concurrency(sandbox_server, "eu-west-1", "items-health") is None


# Last: it resets the sandbox, which the module's shared stack lives in.
def test_three_regions_move_to_the_next_nearest(write_config: Callable[..., Path]) -> None:
    cli = Cli(write_config(regions=["eu-west-1", "us-east-1", "eu-central-1"]))
    code, doc = cli.json("up")
    assert code == 0, doc
    code, report = cli.json("failover-test", "--no-traffic")
    assert code == 0, report
    assert (report["served_before"], report["served_after"], report["served_after_restore"]) == (
        "eu-west-1", "eu-central-1", "eu-west-1")


# Last too: it resets the sandbox.
def test_an_outage_behind_alias_addresses_is_drilled_and_each_answer_named(write_config: Callable[..., Path]) -> None:
    """Latency records are alias A records, which Route 53 (and the sandbox) answer with addresses: every
    region the drill reports comes from asking the endpoint at the address, even while one is down."""
    cli = Cli(write_config(routing__mode="latency-records"))
    code, doc = cli.json("up")
    assert code == 0, doc
    code, report = cli.json("failover-test", "--mode", "outage")
    assert code == 0, report
    assert (report["served_before"], report["served_after"], report["served_after_restore"]) == (
        "eu-west-1", "us-east-1", "eu-west-1")
    clients = report["drill"]["clients"]
    # The failed region's own clients saw the answer move from the (named) failed region to the other one.
    assert (clients["eu-west-1"]["dns"]["before"], clients["eu-west-1"]["dns"]["after"]) == ("eu-west-1", "us-east-1")
    assert clients["us-east-1"]["dns"]["before"] == "us-east-1"
    assert report["drill"]["passed"] is True
