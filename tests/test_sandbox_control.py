"""The sandbox's own endpoints and its background process control."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from multiregion.sandbox import control
from multiregion.sandbox.server import Sandbox


def post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_faults_are_validated_and_merged(sandbox: Sandbox) -> None:
    assert post(f"{sandbox.url}/_sandbox/faults", {"replication_paused": "us-east-1"})[0] == 400
    assert post(f"{sandbox.url}/_sandbox/faults", ["replication_paused"])[0] == 400
    assert post(f"{sandbox.url}/_sandbox/faults", {"meteor": ["x"]})[0] == 400
    assert sandbox.fault("replication_paused") == []
    code, faults = post(f"{sandbox.url}/_sandbox/faults", {"replication_paused": ["us-east-1"]})
    assert code == 200 and faults["replication_paused"] == ["us-east-1"] and faults["acm_fail"] == []


def test_motos_reset_endpoint_resets_the_sandbox_too(sandbox: Sandbox, aws: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    post(f"{sandbox.url}/_sandbox/faults", {"acm_fail": ["*"]})
    assert post(f"{sandbox.url}/moto-api/reset", {})[0] == 200
    assert eu.list_tables()["TableNames"] == []
    ext = next(e for e in sandbox.app.extensions if type(e).__name__ == "GlobalTables")
    assert ext.groups == {}
    assert sandbox.fault("acm_fail") == []


def test_stop_never_signals_a_process_that_is_not_the_sandbox() -> None:
    # A state file left by a sandbox that died, whose pid now belongs to another program.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        control.write_state(control.SandboxInfo(other.pid, 9))  # nothing answers on port 9
        assert control.running() is None
        assert control.stop() is None
        assert other.poll() is None  # still alive
        assert control.read_state() is None
    finally:
        other.kill()
        other.wait()


def test_background_sandbox_start_status_stop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    info = control.start(port=0)
    try:
        assert control.running() == info
        assert control.ping(info.url)["pid"] == info.pid == control.read_state().pid
        assert control.ping(info.url)["strict"] is True  # AWS's refusals unless asked otherwise
        assert control.start(port=0) == info  # already running: the same one
    finally:
        assert control.stop() == info
    assert control.running() is None
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)


def test_sandbox_start_passes_timing_and_strict_to_the_background_server() -> None:
    import boto3
    from click.testing import CliRunner

    from multiregion.cli import main

    runner = CliRunner()
    # Time scale 1: the aws profile's 7 s of CREATING is a window no test machine misses.
    started = runner.invoke(main, ["sandbox", "start", "--port", "0", "--time-scale", "1", "--timing", "aws",
                                   "--strict"])
    assert started.exit_code == 0, started.output
    try:
        info = control.running()
        assert info is not None
        status = json.loads(runner.invoke(main, ["sandbox", "status", "--json"]).stdout)
        assert (status["timing"], status["strict"], status["time_scale"]) == ("aws", True, 1.0)
        text = runner.invoke(main, ["sandbox", "status"]).stdout
        assert "time scale 1, timing aws, strict" in text
        # What the options do: strict answers CreateTable CREATING, and the aws profile keeps it so.
        client = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=info.url,
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        created = client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        assert created["TableDescription"]["TableStatus"] == "CREATING"
        assert client.describe_table(TableName="t")["Table"]["TableStatus"] == "CREATING"
        # A second start with other options keeps the running sandbox, and says so.
        again = runner.invoke(main, ["sandbox", "start", "--port", "0", "--timing", "fast"])
        assert again.exit_code == 0
        assert "already running" in again.stdout and "other timing" in again.stderr
        assert control.running() == info
    finally:
        assert control.stop() is not None


def test_sandbox_start_no_strict_lets_every_call_through() -> None:
    from click.testing import CliRunner

    from multiregion.cli import main

    runner = CliRunner()
    started = runner.invoke(main, ["sandbox", "start", "--port", "0", "--no-strict"])
    assert started.exit_code == 0, started.output
    try:
        status = json.loads(runner.invoke(main, ["sandbox", "status", "--json"]).stdout)
        assert status["strict"] is False
        assert "not strict" in runner.invoke(main, ["sandbox", "status"]).stdout
        # A second start asking for the default (strict) is told the running one is not.
        again = runner.invoke(main, ["sandbox", "start", "--port", "0", "--strict"])
        assert "other strict" in again.stderr
    finally:
        assert control.stop() is not None


def test_a_timing_profile_the_sandbox_lacks_is_refused_before_anything_starts() -> None:
    from click.testing import CliRunner

    from multiregion.cli import main

    for command in ("serve", "start"):
        result = CliRunner().invoke(main, ["sandbox", command, "--port", "0", "--timing", "slow"])
        assert result.exit_code == 2
        assert "'fast'" in result.stderr and "'aws'" in result.stderr
    with pytest.raises(control.SandboxError, match="unknown timing profile 'slow'"):
        control.start(port=0, timing="slow")
    assert control.running() is None and control.read_state() is None


def test_options_differ_names_only_the_options_asked_for() -> None:
    health = {"time_scale": 10.0, "timing": "fast", "strict": False}
    assert control.options_differ(health) == []
    assert control.options_differ(health, timing="fast") == []
    assert control.options_differ(health, time_scale=1.0, timing="aws", strict=True) == [
        "time_scale", "timing", "strict"]
    assert control.options_differ({**health, "strict": True}) == []  # not asking for strict is no difference
    assert control.options_differ({**health, "strict": True}, strict=False) == ["strict"]
    assert control.options_differ(None, timing="aws") == []
