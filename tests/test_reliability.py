"""Reliability (issue 17): concurrent runs on one stack, leases of killed runs, honest failures without
credentials or network, refusals that say what was refused, and bad inputs that never reach AWS.

Concurrent and killed runs are real processes (`python -m multiregion`) against the test sandbox; the guard
they meet is the stack's lease (multiregion.lease), held in the sandbox's DynamoDB as it is in AWS's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from multiregion.aws import ClientProvider
from multiregion.cli import main
from multiregion.lease import Lease, Leases
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, demo_config, refuse, wait_for
from tests.test_cli_conventions import subprocess_env
from tests.test_config import CountingServer

REGIONS = ("eu-west-1", "us-east-1")


def leases(sandbox: Sandbox) -> Leases:
    return Leases(ClientProvider(sandbox.url), "eu-west-1", "items")


def start(config: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "multiregion", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(**env))


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def kill_once_it_holds_the_lease(sandbox: Sandbox, proc: subprocess.Popen[str], command: str) -> Lease:
    """SIGKILL the run as soon as its lease exists: nothing of it runs after that (no release, no renewal)."""

    def held() -> Lease | None:
        assert proc.poll() is None, f"the run ended before it was killed: {proc.communicate()}"
        lease = leases(sandbox).current()
        return lease if lease is not None and lease.command == command else None

    lease: Lease = wait_for(held, timeout=60, interval=0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return lease


def assert_one_of_each(aws: Callable[..., Any]) -> None:
    """No duplicate: one REST API, one certificate and one health check per region."""
    for region in REGIONS:
        assert [a["name"] for a in aws("apigateway", region).get_rest_apis()["items"]] == ["items"], region
        assert len(aws("acm", region).list_certificates()["CertificateSummaryList"]) == 1, region
    checks = aws("route53").list_health_checks()["HealthChecks"]
    regions = sorted(c["HealthCheckConfig"]["FullyQualifiedDomainName"].split(".")[2] for c in checks)
    assert regions == sorted(REGIONS)


# --------------------------------------------------------------------------------------- concurrent runs


@pytest.mark.parametrize("lock_timeout", ["0", "300"], ids=["refuses", "waits"])
def test_two_ups_started_together_never_duplicate_and_leave_the_stack_converged(
        cli: Cli, aws: Callable[..., Any], lock_timeout: str) -> None:
    assert cli.config is not None
    first = start(cli.config, "up", "--json", "--lock-timeout", lock_timeout)
    second = start(cli.config, "up", "--json", "--lock-timeout", lock_timeout)
    assert first.args and second.args
    runs = [finish(first), finish(second)]
    codes = sorted(code for code, _, _ in runs)
    if lock_timeout == "0":
        assert codes == [0, 1], runs
        [(_, _, refused)] = [r for r in runs if r[0] == 1]
        assert "locked" in refused and "is locked by" in refused and "running `up`" in refused, refused
        assert "force-unlock" in refused and "--lock-timeout" in refused
    else:
        assert codes == [0, 0], runs
        [waited] = [r for r in runs if "waiting for the lease" in r[2]]
        assert json.loads(waited[1])["changes"] == []  # it found the stack converged by the other
    [winner] = [json.loads(out) for code, out, _ in runs if code == 0 and json.loads(out)["changes"]]
    assert winner["ok"]
    assert_one_of_each(aws)
    assert cli("plan", "--detailed-exitcode").exit_code == 0
    assert leases_of_stack_released(cli)


def leases_of_stack_released(cli: Cli) -> bool:
    code, status = cli.json("status")
    return code == 0 and status["global"]["lease"] is None


def test_two_ups_start_within_100_ms(cli: Cli) -> None:
    # The window the test above claims: both processes exist before either could take the lease.
    assert cli.config is not None
    t0 = time.monotonic()
    procs = [start(cli.config, "--version"), start(cli.config, "--version")]
    started = time.monotonic() - t0
    assert started < 0.1, started
    for proc in procs:
        assert finish(proc)[0] == 0


def test_a_killed_runs_lease_is_removed_by_force_unlock_or_expires_by_itself(
        cli: Cli, sandbox: Sandbox, aws: Callable[..., Any]) -> None:
    assert cli.config is not None
    lease = kill_once_it_holds_the_lease(sandbox, start(cli.config, "up"), "up")
    assert lease.expires_at - lease.started_at == pytest.approx(600, abs=1)  # the default: ten minutes
    refused = cli("up")
    assert refused.exit_code == 1 and lease.lease_id in refused.stderr and "force-unlock" in refused.stderr
    shown = " ".join(cli("status").stdout.split())
    assert f"lease {lease.lease_id}: {lease.owner} running `up`" in shown and "force-unlock" in shown
    assert cli("force-unlock", "not-this-one").exit_code == 1
    assert cli("force-unlock", lease.lease_id).exit_code == 0
    assert leases(sandbox).current() is None

    # A short lease (MULTIREGION_LEASE_SECONDS) left by a killed run expires by itself, and up then repairs
    # whatever the two killed runs left half-done.
    short = kill_once_it_holds_the_lease(sandbox, start(cli.config, "up", MULTIREGION_LEASE_SECONDS="4"), "up")
    assert short.expires_at - short.started_at <= 4.0 + 0.01
    assert cli("up").exit_code == 1
    wait_for(lambda: leases(sandbox).current() is None, timeout=15, interval=0.2)
    code, doc = cli.json("up")
    assert code == 0 and doc["ok"], doc
    assert_one_of_each(aws)
    assert cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_lease_duration_that_is_not_a_number_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                                sandbox: Sandbox) -> None:
    for value in ("abc", "1", "nan"):
        monkeypatch.setenv("MULTIREGION_LEASE_SECONDS", value)
        result = cli("up")
        assert result.exit_code == 2 and "MULTIREGION_LEASE_SECONDS" in result.stderr, result.output
        assert leases(sandbox).current() is None


def test_the_drill_refuses_while_up_changes_the_stack(cli: Cli, sandbox: Sandbox, aws: Callable[..., Any]) -> None:
    assert cli.config is not None
    proc = start(cli.config, "up")
    try:
        wait_for(lambda: (lease := leases(sandbox).current()) is not None and lease.command == "up", timeout=60,
                 interval=0.05)
        result = cli("failover-test", "--no-traffic")
        assert result.exit_code == 1, result.output
        assert "locked" in result.stderr and "running `up`" in result.stderr
        assert "preflight" not in result.output and "inject" not in result.output  # it touched nothing
    finally:
        code, out, err = finish(proc)
    assert code == 0, out + err
    assert cli("plan", "--detailed-exitcode").exit_code == 0


# -------------------------------------------------------------------------------------- honest failures


@pytest.fixture
def listener() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


@pytest.fixture
def on_aws_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(demo_config() | {"endpoint": "aws"}))
    return path


def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    # The credentials chain would ask the EC2 instance metadata service (169.254.169.254) last: off the
    # machine, so off here. On a laptop or in CI without a role it finds nothing there either.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("command", ["plan", "status"])
def test_without_credentials_one_message_with_the_hint_and_exit_1(
        command: str, on_aws_config: Path, tmp_path: Path, listener: CountingServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    no_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", listener.url)  # had anything been sent, it would have come here
    result = CliRunner().invoke(main, ["--config", str(on_aws_config), command])
    assert result.exit_code == 1, result.output
    assert result.output.count("no AWS credentials") == 1 and result.output.count("hint:") == 1
    assert "aws configure" in result.output and "AWS_PROFILE" in result.output and "endpoint: sandbox" in \
        result.output
    assert "converged" not in result.output and "Traceback" not in result.output
    assert listener.connections == 0


@pytest.mark.parametrize("command", ["plan", "status"])
def test_an_endpoint_that_does_not_answer_is_said_once_and_exits_1(
        command: str, on_aws_config: Path, listener: CountingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = listener.sock.getsockname()[1]
    listener.close()  # a port of this machine where nothing listens any more
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    result = CliRunner().invoke(main, ["--config", str(on_aws_config), command])
    assert result.exit_code == 1, result.output
    assert result.output.count("cannot reach AWS") == 1 and result.output.count("hint:") == 1
    assert f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}" in result.output
    assert "converged" not in result.output and "Traceback" not in result.output


def test_access_denied_names_stage_region_resource_and_iam_action(cli: Cli, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    refuse(monkeypatch, "dynamodb", "DescribeTable", "AccessDeniedException", "Access denied", times=10**6,
           when=lambda params: params.get("TableName") == "items")
    refuse(monkeypatch, "apigateway", "CreateRestApi", "AccessDeniedException", "Forbidden", times=10**6)
    result = cli("up")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    for region in REGIONS:
        assert f"[api {region}] rest api items: AccessDeniedException: Forbidden (the IAM action apigateway:POST " \
               "on name=items was refused)" in text, text
    assert "[tables eu-west-1] (reading current state): AccessDeniedException: Access denied (the IAM action " \
           "dynamodb:DescribeTable on TableName=items was refused)" in text
    assert "multiregion iam-policy" in text


def test_access_denied_that_names_its_action_already_is_left_as_aws_wrote_it(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_words = ("User: arn:aws:iam::123456789012:user/ci is not authorized to perform: dynamodb:DescribeTable "
                 "on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/items")
    refuse(monkeypatch, "dynamodb", "DescribeTable", "AccessDeniedException", aws_words, times=10**6,
           when=lambda params: params.get("TableName") == "items")
    result = cli("plan")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"[tables eu-west-1] (reading current state): AccessDeniedException: {aws_words}" in text
    assert "was refused)" not in text


def test_up_only_certificates_on_a_fresh_stack_brings_in_the_hosted_zone(cli: Cli, aws: Callable[..., Any]
                                                                          ) -> None:
    code, doc = cli.json("up", "--only", "certificates")
    assert code == 0 and doc["ok"], doc
    assert {c["stage"] for c in doc["changes"]} == {"hosted-zone", "certificates"}
    for region in REGIONS:
        [summary] = aws("acm", region).list_certificates()["CertificateSummaryList"]
        assert aws("acm", region).describe_certificate(CertificateArn=summary["CertificateArn"])[
            "Certificate"]["Status"] == "ISSUED"
        assert aws("apigateway", region).get_rest_apis()["items"] == []  # nothing beyond what was needed
    assert "--only" in cli("up", "--help").stdout and "depend on" in " ".join(cli("up", "--help").stdout.split())


# ------------------------------------------------------------------------------------------ bad inputs


def test_a_config_that_is_not_utf8_exits_2_naming_the_file_and_line_with_no_call(
        tmp_path: Path, listener: CountingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", listener.url)
    text = yaml.safe_dump(demo_config() | {"endpoint": listener.url}).replace("service: items", "service: cr\xe9shy")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(text.encode("latin-1"))
    line = text.splitlines().index("service: cr\xe9shy") + 1
    for command in (["up"], ["plan"], ["status"], ["down", "--yes"]):
        result = CliRunner().invoke(main, ["--config", str(bad), *command])
        assert result.exit_code == 2, result.output
        assert f"{bad}: line {line}: not UTF-8 text (byte 0xe9" in " ".join(result.stderr.split())
        assert "hint: save the file as UTF-8" in result.stderr and "Traceback" not in result.output
    assert listener.connections == 0


def test_regions_as_a_plain_string_is_a_list_of_one_as_documented(tmp_path: Path) -> None:
    from multiregion.config import json_schema, load_config

    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(demo_config()).replace("- eu-west-1\n- us-east-1\n", "") .replace(
        "regions:\n", "regions: us-east-1\n"))
    assert "regions: us-east-1\n" in path.read_text()
    assert load_config(path).regions == ("us-east-1",)
    assert "regions: us-east-1 is a list of one" in json_schema()["properties"]["regions"]["description"]
