"""What the sandbox's Lambda writes to CloudWatch Logs: Lambda's group, streams and lines, per invocation."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from multiregion.sandbox.server import Sandbox
from tests.test_sandbox_apigateway import build_api, request
from tests.test_sandbox_lambda import SLEEPY, call, create_role, deploy, reuse_clients

CHATTY = """
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)
print("cold start of", __name__)


def handler(event, context):
    print("hello from the handler", event.get("n"))
    print("no newline at the end", end="")
    logger.info("a record\\nover two lines")
    return {"stream": context.log_stream_name, "group": context.log_group_name}
"""

# The item API's functions, each printing a marker taken from the request path.
MARKING = """
def handler(event, context):
    print("marker:", event["path"])
    return {"statusCode": 200, "body": "ok"}
"""

STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
REPORT = re.compile(r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d\d) ms\t"
                    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: 256 MB\tMax Memory Used: (?P<used>\d+) MB\t"
                    r"(Init Duration: (?P<init>\d+\.\d\d) ms\t)?(Status: (?P<status>\w+)\t)?\n$")


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)


def events(aws: Any, name: str, region: str = "eu-west-1") -> list[dict[str, Any]]:
    logs = aws("logs", region)
    [stream] = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    return list(logs.get_log_events(logGroupName=f"/aws/lambda/{name}", logStreamName=stream["logStreamName"],
                                    startFromHead=True)["events"])


def test_each_invocation_logs_start_its_output_end_and_report(aws: Any) -> None:
    deploy(aws, create_role(aws), "chatty", CHATTY, MemorySize=256)
    lam = aws("lambda", "eu-west-1")
    before = int(time.time() * 1000)
    first, out = call(lam, "chatty", {"n": 1})
    second, _ = call(lam, "chatty", {"n": 2})
    after = int(time.time() * 1000)
    logs = aws("logs", "eu-west-1")
    [group] = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/chatty")["logGroups"]
    assert group["logGroupName"] == out["group"] == "/aws/lambda/chatty" and "retentionInDays" not in group
    [stream] = logs.describe_log_streams(logGroupName="/aws/lambda/chatty")["logStreams"]
    assert STREAM.match(stream["logStreamName"]) and stream["logStreamName"] == out["stream"]

    got = events(aws, "chatty")
    stamps = [e["timestamp"] for e in got]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after  # milliseconds, in order
    messages = [e["message"] for e in got]
    ids = [first["ResponseMetadata"]["RequestId"], second["ResponseMetadata"]["RequestId"]]
    assert messages[0] == "cold start of app\n"  # the init phase, before the first START
    for n, request_id in enumerate(ids, start=1):
        start = messages.index(f"START RequestId: {request_id} Version: $LATEST\n")
        own = messages[start + 1:start + 4]
        assert own[0] == f"hello from the handler {n}\n" and own[1] == "no newline at the end"
        assert re.fullmatch(rf"\[INFO\]\t\S+Z\t{request_id}\ta record\nover two lines\n", own[2])  # one event
        assert messages[start + 4] == f"END RequestId: {request_id}\n"
        report = REPORT.match(messages[start + 5])
        assert report and report["id"] == request_id and report["status"] is None
        assert int(report["used"]) > 0
        assert (report["init"] is not None) == (n == 1)  # a cold start only for the environment's first call
        billed = float(report["duration"]) + float(report["init"] or 0)
        assert int(report["billed"]) == -int(-billed // 1)  # whole milliseconds, rounded up
    assert len(messages) == 1 + 2 * 6


def test_a_timed_out_call_logs_what_it_wrote_and_the_timeout(aws: Any) -> None:
    source = SLEEPY.replace("    time.sleep", "    print('going to sleep', flush=True)\n    time.sleep")
    deploy(aws, create_role(aws), "sleepy", source, MemorySize=256, Timeout=1)
    resp, _ = call(aws("lambda", "eu-west-1"), "sleepy", {"sleep": 30})
    messages = [e["message"] for e in events(aws, "sleepy")]
    request_id = resp["ResponseMetadata"]["RequestId"]
    start = messages.index(f"START RequestId: {request_id} Version: $LATEST\n")
    assert messages[start + 1] == "going to sleep\n"
    assert messages[start + 2].endswith("Task timed out after 1.00 seconds\n")
    report = REPORT.match(messages[-1])
    assert report and report["status"] == "timeout" and float(report["duration"]) >= 1000


def test_every_execution_environment_has_its_own_stream(aws: Any) -> None:
    deploy(aws, create_role(aws), "chatty", CHATTY)
    lam = aws("lambda", "eu-west-1")
    first = call(lam, "chatty")[1]["stream"]
    lam.update_function_configuration(FunctionName="chatty", Timeout=9)  # a new environment, as on AWS
    second = call(lam, "chatty")[1]["stream"]
    streams = aws("logs", "eu-west-1").describe_log_streams(logGroupName="/aws/lambda/chatty")["logStreams"]
    assert first != second and sorted(s["logStreamName"] for s in streams) == sorted([first, second])


def test_an_existing_log_group_keeps_its_retention(aws: Any) -> None:
    logs = aws("logs", "eu-west-1")
    logs.create_log_group(logGroupName="/aws/lambda/chatty")
    logs.put_retention_policy(logGroupName="/aws/lambda/chatty", retentionInDays=7)
    deploy(aws, create_role(aws), "chatty", CHATTY)
    call(aws("lambda", "eu-west-1"), "chatty")
    [group] = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/chatty")["logGroups"]
    assert group["retentionInDays"] == 7
    assert any(e["message"].startswith("REPORT RequestId:") for e in events(aws, "chatty"))


def test_a_line_printed_behind_the_rest_api_is_found_with_filter_log_events(sandbox: Sandbox, aws: Any) -> None:
    api = build_api(aws, create_role(aws), "eu-west-1", source=MARKING)
    reply = request(sandbox, api.host, "GET", "/prod/item/needle-4711")
    assert reply.status == 200 and request(sandbox, api.host, "GET", "/prod/health").status == 200
    found = aws("logs", "eu-west-1").filter_log_events(logGroupName="/aws/lambda/get_item",
                                                       filterPattern='"needle-4711"')["events"]
    assert [e["message"] for e in found] == ["marker: /item/needle-4711\n"]
    assert STREAM.match(found[0]["logStreamName"])
    # Only that function's group in that region has it.
    assert not aws("logs", "eu-west-1").filter_log_events(logGroupName="/aws/lambda/health",
                                                          filterPattern='"needle-4711"')["events"]
    assert aws("logs", "us-east-1").describe_log_groups()["logGroups"] == []
