"""The sandbox's Lambda runtime: Invoke runs the deployed zip in a warm, per-configuration environment."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from multiregion.sandbox.lambda_runtime import CODE_DIR_PREFIX, LambdaRuntime, remove_orphaned_code_dirs
from multiregion.sandbox.server import Sandbox
from tests.conftest import wait_for

ECHO = """
import os

COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    print("handling", event.get("say"))
    return {"event": event, "count": COUNT, "pid": os.getpid(), "cwd": os.getcwd(),
            "region": os.environ["AWS_REGION"], "default_region": os.environ["AWS_DEFAULT_REGION"],
            "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
            "greeting": os.environ.get("GREETING"), "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis()}
"""

WRITER = """
import os

import boto3


def handler(event, context):
    boto3.client("dynamodb").put_item(TableName="t", Item={"id": {"S": event["id"]},
                                                         "by": {"S": os.environ["AWS_REGION"]}})
    return {"written": event["id"]}
"""

FAILING = """
def handler(event, context):
    raise ValueError("no such item: " + event["id"])
"""

SLEEPY = """
import os
import time


def handler(event, context):
    if "started" in event:  # say it runs, then hold until told (at most 30 s)
        open(event["started"], "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(event["release"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""

TABLE = {"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
         "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST"}


def reuse_clients(make: Callable[..., Any]) -> Callable[..., Any]:
    """The conftest `aws` factory, one client per service and region (a new boto3 client costs ~50 ms)."""
    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, region: str = "us-east-1") -> Any:
        if (service, region) not in clients:
            clients[(service, region)] = make(service, region)
        return clients[(service, region)]

    return client


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buf.getvalue()


def create_role(aws: Any) -> str:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    return str(aws("iam").create_role(RoleName="fn", AssumeRolePolicyDocument=policy)["Role"]["Arn"])


@pytest.fixture
def role(aws: Any) -> str:
    return create_role(aws)


def deploy(aws: Any, role: str, name: str, source: str, region: str = "eu-west-1", **extra: Any) -> str:
    """Create a Python function whose module `app` is `source`; returns its ARN."""
    fn = aws("lambda", region).create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": source})}, **extra)
    return str(fn["FunctionArn"])


def call(client: Any, name: str, event: dict[str, Any] | None = None, **extra: Any) -> tuple[dict[str, Any], Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), **extra)
    return resp, json.loads(resp["Payload"].read() or b"null")


def no_retries(sandbox: Sandbox, service: str, region: str) -> Any:
    """A client that shows a throttle as it comes (boto3 would otherwise retry a 429)."""
    return boto3.client(service, region_name=region, endpoint_url=sandbox.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))


def test_invoke_runs_the_deployed_zip_with_the_function_environment(aws: Any, role: str) -> None:
    deploy(aws, role, "echo", ECHO, MemorySize=256, Timeout=7, Environment={"Variables": {"GREETING": "hi"}})
    resp, out = call(aws("lambda", "eu-west-1"), "echo", {"say": "hello"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert out["event"] == {"say": "hello"}
    assert (out["region"], out["default_region"]) == ("eu-west-1", "eu-west-1")
    assert (out["name"], out["memory"], out["greeting"]) == ("echo", "256", "hi")
    assert 0 < out["remaining_ms"] <= 7000
    assert os.path.isfile(os.path.join(out["cwd"], "app.py"))  # cwd is the extracted zip, not this repo


def test_handler_boto3_calls_land_in_the_function_region(aws: Any, role: str) -> None:
    for region in ("eu-west-1", "us-east-1"):
        aws("dynamodb", region).create_table(TableName="t", **TABLE)
    deploy(aws, role, "writer", WRITER)
    resp, out = call(aws("lambda", "eu-west-1"), "writer", {"id": "a1"})
    assert out == {"written": "a1"}, out
    item = aws("dynamodb", "eu-west-1").get_item(TableName="t", Key={"id": {"S": "a1"}})["Item"]
    assert item["by"] == {"S": "eu-west-1"}
    assert "Item" not in aws("dynamodb", "us-east-1").get_item(TableName="t", Key={"id": {"S": "a1"}})


def test_warm_environment_keeps_module_state(aws: Any, role: str, sandbox: Sandbox) -> None:
    arn = deploy(aws, role, "echo", ECHO)
    client = aws("lambda", "eu-west-1")
    outs = [call(client, "echo")[1] for _ in range(3)]
    assert [o["count"] for o in outs] == [1, 2, 3]
    assert len({o["pid"] for o in outs}) == 1
    assert sandbox.extension(LambdaRuntime).environments(arn) == [outs[0]["pid"]]


def test_configuration_change_starts_a_new_environment(aws: Any, role: str) -> None:
    deploy(aws, role, "echo", ECHO, Environment={"Variables": {"GREETING": "hi"}})
    client = aws("lambda", "eu-west-1")
    call(client, "echo")
    warm = call(client, "echo")[1]
    assert (warm["count"], warm["greeting"]) == (2, "hi")
    client.update_function_configuration(FunctionName="echo", Environment={"Variables": {"GREETING": "bye"}})
    fresh = call(client, "echo")[1]
    assert (fresh["count"], fresh["greeting"]) == (1, "bye")
    assert fresh["pid"] != warm["pid"]


def test_code_update_runs_the_new_zip(aws: Any, role: str) -> None:
    deploy(aws, role, "echo", ECHO)
    client = aws("lambda", "eu-west-1")
    assert call(client, "echo")[1]["count"] == 1
    client.update_function_code(FunctionName="echo", ZipFile=zip_of({"app.py": SLEEPY}))
    assert call(client, "echo", {"sleep": 0})[1] == {"slept": 0}


def test_handler_exception_is_an_unhandled_function_error(aws: Any, role: str) -> None:
    deploy(aws, role, "failing", FAILING)
    resp, out = call(aws("lambda", "eu-west-1"), "failing", {"id": "x"})
    assert resp["StatusCode"] == 200 and resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "ValueError" and out["errorMessage"] == "no such item: x"
    assert any('app.py", line 3, in handler' in line for line in out["stackTrace"])
    assert not any("lambda_bootstrap" in line for line in out["stackTrace"])


def test_timeout_kills_the_environment(aws: Any, role: str) -> None:
    deploy(aws, role, "sleepy", SLEEPY, Timeout=1)
    client = aws("lambda", "eu-west-1")
    started = time.monotonic()
    resp, out = call(client, "sleepy", {"sleep": 30})
    assert time.monotonic() - started < 5
    assert resp["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in out["errorMessage"]
    assert call(client, "sleepy", {"sleep": 0})[1] == {"slept": 0}  # a fresh environment serves the next call


def test_reserved_concurrency_zero_throttles(aws: Any, role: str, sandbox: Sandbox) -> None:
    deploy(aws, role, "echo", ECHO)
    aws("lambda", "eu-west-1").put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=0)
    client = no_retries(sandbox, "lambda", "eu-west-1")
    with pytest.raises(ClientError) as err:
        client.invoke(FunctionName="echo", Payload=b"{}")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert err.value.response["Error"]["Message"] == "Rate Exceeded."
    assert err.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    client.delete_function_concurrency(FunctionName="echo")
    assert call(client, "echo")[1]["count"] == 1


def test_overlapping_calls_get_a_bounded_pool(aws: Any, role: str, sandbox: Sandbox,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(LambdaRuntime, "max_environments", 2)
    arn = deploy(aws, role, "sleepy", SLEEPY.replace('{"slept"', '{"pid": __import__("os").getpid(), "slept"'))
    client = aws("lambda", "eu-west-1")
    release = tmp_path / "release"
    started = [tmp_path / f"started-{i}" for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(lambda p=p: call(client, "sleepy", {"started": str(p), "release": str(release)})[1])
                 for p in started]
        # Two calls hold the two environments; the other two wait for one, so exactly two have started.
        wait_for(lambda: sum(p.exists() for p in started) == 2, timeout=30)
        release.touch()
        outs = [c.result(timeout=60) for c in calls]
    assert all(p.exists() for p in started)
    assert len({o["pid"] for o in outs}) == 2  # two environments, each serving two calls in turn
    assert sorted(sandbox.extension(LambdaRuntime).environments(arn)) == sorted({o["pid"] for o in outs})


def test_reserved_concurrency_one_throttles_the_second_overlapping_call(aws: Any, role: str, sandbox: Sandbox,
                                                                         tmp_path: Path) -> None:
    deploy(aws, role, "sleepy", SLEEPY)
    aws("lambda", "eu-west-1").put_function_concurrency(FunctionName="sleepy", ReservedConcurrentExecutions=1)
    client = no_retries(sandbox, "lambda", "eu-west-1")
    assert call(client, "sleepy")[1] == {"slept": 0}  # one at a time is fine (and the client is warm)

    def attempt(event: dict[str, Any]) -> str:
        try:
            return "ok" if call(client, "sleepy", event)[1] == {"slept": 0} else "bad"
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])

    started, release = tmp_path / "started", tmp_path / "release"
    with ThreadPoolExecutor(1) as pool:
        # The first call holds the one execution until released; the second is made while it does.
        first = pool.submit(attempt, {"started": str(started), "release": str(release)})
        wait_for(started.exists, timeout=30)
        second = attempt({})
        release.touch()
        results = sorted([first.result(timeout=60), second])
    assert results == ["TooManyRequestsException", "ok"]


def test_event_and_dry_run_invocations(aws: Any, role: str) -> None:
    aws("dynamodb", "eu-west-1").create_table(TableName="t", **TABLE)
    deploy(aws, role, "writer", WRITER)
    client = aws("lambda", "eu-west-1")
    dry = client.invoke(FunctionName="writer", InvocationType="DryRun", Payload=b'{"id": "dry"}')
    assert dry["StatusCode"] == 204
    event = client.invoke(FunctionName="writer", InvocationType="Event", Payload=b'{"id": "async"}')
    assert event["StatusCode"] == 202
    table = aws("dynamodb", "eu-west-1")
    deadline = time.monotonic() + 10
    while "Item" not in table.get_item(TableName="t", Key={"id": {"S": "async"}}):
        assert time.monotonic() < deadline, "the Event invocation never ran"
        time.sleep(0.05)
    assert "Item" not in table.get_item(TableName="t", Key={"id": {"S": "dry"}})


def test_log_tail_holds_the_handler_output(aws: Any, role: str) -> None:
    deploy(aws, role, "echo", ECHO)
    resp, _ = call(aws("lambda", "eu-west-1"), "echo", {"say": "loud"}, LogType="Tail")
    logs = base64.b64decode(resp["LogResult"]).decode()
    assert "START RequestId:" in logs and "handling loud" in logs and "REPORT RequestId:" in logs


def test_unknown_function_and_bad_payload(aws: Any) -> None:
    client = aws("lambda", "eu-west-1")
    with pytest.raises(ClientError) as err:
        client.invoke(FunctionName="nothing", Payload=b"{}")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bad_payload_is_refused(aws: Any, role: str) -> None:
    deploy(aws, role, "echo", ECHO)
    with pytest.raises(ClientError) as err:
        aws("lambda", "eu-west-1").invoke(FunctionName="echo", Payload=b"{not json")
    assert err.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_import_error_and_isolation_from_the_source_tree(aws: Any, role: str) -> None:
    # The project is installed in this venv, but a function sees only its zip and the runtime's libraries.
    deploy(aws, role, "leaky", "import multiregion\n\ndef handler(event, context):\n    return 1\n")
    resp, out = call(aws("lambda", "eu-west-1"), "leaky")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'multiregion'" in out["errorMessage"]


def test_raw_stdout_writes_do_not_corrupt_answers_and_a_crash_is_reported(aws: Any, role: str) -> None:
    deploy(aws, role, "noisy", "import os\n\ndef handler(event, context):\n"
                               "    os.write(1, b'{\"not\": \"the answer\"}\\n')\n"
                               "    if event.get('crash'):\n        os._exit(3)\n"
                               "    return {'fine': True}\n")
    client = aws("lambda", "eu-west-1")
    assert call(client, "noisy")[1] == {"fine": True}
    resp, out = call(client, "noisy", {"crash": True})
    assert resp["FunctionError"] == "Unhandled" and out["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in out["errorMessage"]
    assert call(client, "noisy")[1] == {"fine": True}


def test_a_zip_with_its_own_botocore_uses_it(aws: Any, role: str) -> None:
    # The fork server preloads the runtime's boto3; a bundled copy must still win, as on AWS.
    code = zip_of({"app.py": "import botocore\n\ndef handler(event, context):\n    return botocore.BUNDLED\n",
                   "botocore/__init__.py": "BUNDLED = 'from the zip'\n"})
    aws("lambda", "eu-west-1").create_function(FunctionName="bundled", Runtime="python3.12", Role=role,
                                               Handler="app.handler", Code={"ZipFile": code})
    assert call(aws("lambda", "eu-west-1"), "bundled")[1] == "from the zip"


def test_invoke_by_arn_in_its_region(aws: Any, role: str) -> None:
    arn = deploy(aws, role, "echo", ECHO, region="ap-southeast-2")
    resp, out = call(aws("lambda", "ap-southeast-2"), arn, Qualifier="$LATEST")
    assert out["region"] == "ap-southeast-2"


def test_reset_stops_environments_and_removes_code(aws: Any, role: str, sandbox: Sandbox) -> None:
    arn = deploy(aws, role, "echo", ECHO)
    out = call(aws("lambda", "eu-west-1"), "echo")[1]
    code_dir = out["cwd"]
    assert os.path.isdir(code_dir)
    sandbox.reset()
    assert sandbox.extension(LambdaRuntime).environments(arn) == []
    assert not os.path.exists(code_dir)
    wait_gone(out["pid"])


def test_reset_ends_a_call_in_flight(aws: Any, role: str, sandbox: Sandbox) -> None:
    deploy(aws, role, "sleepy", SLEEPY, Timeout=30)
    client = aws("lambda", "eu-west-1")
    assert call(client, "sleepy")[1] == {"slept": 0}
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(call, client, "sleepy", {"sleep": 20})
        # In flight: the runtime has an environment busy with it (a fixed sleep could reset before it arrives).
        arn = client.get_function(FunctionName="sleepy")["Configuration"]["FunctionArn"]
        wait_for(lambda: sandbox.extension(LambdaRuntime)._busy.get(arn, 0) == 1)
        started = time.monotonic()
        sandbox.reset()
        resp, out = pending.result(timeout=10)
    assert time.monotonic() - started < 5
    assert resp["FunctionError"] == "Unhandled" and out["errorType"] == "Runtime.ExitError"


def test_stop_ends_every_process_it_started(aws: Any, role: str, sandbox: Sandbox) -> None:
    deploy(aws, role, "echo", ECHO)
    client = aws("lambda", "eu-west-1")
    out = call(client, "echo")[1]
    runtime = sandbox.extension(LambdaRuntime)
    server = runtime._fork_server
    assert server is not None and server.alive()
    runtime.stop()
    assert not server.alive() and not os.path.exists(out["cwd"])
    wait_gone(out["pid"])
    assert call(client, "echo")[1]["count"] == 1  # the next call starts what it needs again


def test_code_dirs_of_dead_sandboxes_are_removed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    orphan = tmp_path / f"{CODE_DIR_PREFIX}{finished.pid}-abc"
    alive = tmp_path / f"{CODE_DIR_PREFIX}{os.getpid()}-def"
    for path in (orphan, alive):
        (path / "sha").mkdir(parents=True)
    remove_orphaned_code_dirs()
    assert not orphan.exists() and alive.exists()


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_fork_server_that_lost_track_of_its_replies_is_retired() -> None:
    from multiregion.sandbox.lambda_process import ForkServer

    server = ForkServer(LambdaRuntime._base_env())
    try:
        assert server.alive()

        def late(*_: Any) -> dict[str, Any]:
            raise TimeoutError("timed out")  # its answer may still come, and would answer the next request

        server._receive = late  # type: ignore[method-assign]
        assert server.kill(2**22) == "unknown"
        assert not server.alive()  # so the runtime starts a fresh one instead of reading a stale reply
    finally:
        server.close()
