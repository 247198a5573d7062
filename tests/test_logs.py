"""`multiregion logs`: the functions' logs read from every region's CloudWatch Logs and merged in time order.

On the sandbox: the demo stack deployed with the CLI, requests through each region's API, and the request lines
the item API's handlers write found again, tagged with their region. Against botocore's Stubber: pagination,
refusals, tie-breaking and the follow window, with the exact parameters each call sends.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from multiregion import logs
from multiregion.aws import ClientProvider
from multiregion.config import Config, load_config
from multiregion.logs import LogLine, LogQuery, LogsError, QueryError
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, converged_stack, demo_config, wait_for
from tests.test_sandbox_apigateway import request

REGIONS = ("eu-west-1", "us-east-1")
T0 = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------------ the sandbox


@dataclass
class Stack:
    """The demo stack, deployed once for the module with `multiregion up` (no test here resets the sandbox)."""

    sandbox: Sandbox
    config: Config
    clients: ClientProvider
    apis: dict[str, str] = field(default_factory=dict)

    def put(self, region: str) -> str:
        """POST /item through the region's own API; API Gateway's request id, which the handler logs."""
        host = f"{self.apis[region]}.execute-api.{region}.amazonaws.com"
        body = json.dumps({"id": f"logs-{uuid.uuid4().hex[:8]}", "name": "a line in the log"}).encode()
        reply = request(self.sandbox, host, "POST", f"/{self.config.api.stage}/item", body,
                        {"Content-Type": "application/json"})
        assert reply.status == 201, reply.body
        request_id = reply.header("x-amzn-RequestId")
        assert request_id
        return request_id


@pytest.fixture(scope="module")
def stack(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path = converged_stack(sandbox_server, tmp_path_factory.mktemp("logs")).config
    assert path is not None
    clients = ClientProvider(sandbox_server.url)
    built = Stack(sandbox_server, load_config(path), clients)
    for region in REGIONS:
        [api] = [a for a in clients("apigateway", region).get_rest_apis()["items"] if a["name"] == "items"]
        built.apis[region] = api["id"]
    yield built


def request_line(lines: list[LogLine], request_id: str) -> list[LogLine]:
    """The item API's own JSON line for one request (the handler logs API Gateway's request id)."""
    return [line for line in lines if (data(line) or {}).get("request_id") == request_id]


def data(line: LogLine) -> dict[str, Any] | None:
    doc = json.loads(logs.json_line(line))
    return doc.get("data")


def fetch_until(stack: Stack, query: LogQuery, *request_ids: str) -> list[LogLine]:
    """Fetch until every request's line has arrived (CloudWatch Logs delivers asynchronously on AWS)."""

    def complete() -> list[LogLine] | None:
        lines = list(logs.fetch(stack.clients, stack.config, query))
        return lines if all(request_line(lines, r) for r in request_ids) else None

    found: list[LogLine] = wait_for(complete, timeout=10)
    return found


def test_fetch_shows_each_requests_line_tagged_with_its_region_in_time_order(stack: Stack) -> None:
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    asked = [("eu-west-1", stack.put("eu-west-1")), ("us-east-1", stack.put("us-east-1")),
             ("eu-west-1", stack.put("eu-west-1"))]
    lines = fetch_until(stack, LogQuery(since=since), *(r for _, r in asked))

    positions = []
    for region, request_id in asked:
        [line] = request_line(lines, request_id)
        assert (line.region, line.function, line.group) == (region, "items-put", "/aws/lambda/items-put")
        assert data(line)["region"] == region == line.region  # the handler's own region: the tag is right
        assert data(line)["status"] == 201 and line.timestamp >= since
        positions.append(lines.index(line))
        # Lambda's START and END of the same invocation frame it, in its region's group.
        aws_id = data(line)["aws_request_id"]
        start = next(i for i, x in enumerate(lines) if x.message.startswith(f"START RequestId: {aws_id} "))
        end = next(i for i, x in enumerate(lines) if x.message == f"END RequestId: {aws_id}\n")
        assert start < lines.index(line) < end and lines[start].region == lines[end].region == region
    # One timeline across regions: eu, us, eu as asked, not one region's lines after the other's.
    assert positions == sorted(positions)
    keys = [(line.timestamp, line.region) for line in lines]
    assert keys == sorted(keys)
    assert {line.region for line in lines} == set(REGIONS)
    assert {line.function for line in lines} >= {"items-put", "items-health"}  # Route 53's probes hit health


def test_the_logs_command_prints_a_handlers_line_tagged_with_its_region(stack: Stack) -> None:
    # The command itself, as a user runs it: `multiregion logs`, text lines, no Python API in between.
    assert stack.config.source is not None
    cli = Cli(Path(stack.config.source))
    us, eu = stack.put("us-east-1"), stack.put("eu-west-1")

    def printed() -> list[str] | None:
        result = cli("logs", "--since", "5m", "--function", "put")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        return lines if any(us in line for line in lines) and any(eu in line for line in lines) else None

    lines: list[str] = wait_for(printed, timeout=10)
    for region, request_id in (("us-east-1", us), ("eu-west-1", eu)):
        [line] = [x for x in lines if request_id in x and '"request_id"' in x]
        stamp, tag, function, message = line.split(maxsplit=3)
        assert (tag, function) == (region, "items-put") and stamp.endswith("Z")
        assert json.loads(message)["region"] == region  # the handler's own word on where it ran


def test_region_function_and_filter_narrow_the_lines(stack: Stack) -> None:
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    eu, us = stack.put("eu-west-1"), stack.put("us-east-1")
    everything = fetch_until(stack, LogQuery(since=since), eu, us)
    assert {line.function for line in everything} >= {"items-put", "items-health"}

    only_us = list(logs.fetch(stack.clients, stack.config, LogQuery(regions=("us-east-1",), since=since)))
    assert only_us and {line.region for line in only_us} == {"us-east-1"}
    assert request_line(only_us, us) and not request_line(only_us, eu)

    only_put = list(logs.fetch(stack.clients, stack.config, LogQuery(functions=("put",), since=since)))
    assert {line.function for line in only_put} == {"items-put"}
    assert request_line(only_put, eu) and request_line(only_put, us)
    by_name = list(logs.fetch(stack.clients, stack.config, LogQuery(functions=("items-put",), since=since)))
    assert by_name == only_put

    # CloudWatch Logs' own filter (an exact phrase): only the one request's line.
    found = list(logs.fetch(stack.clients, stack.config, LogQuery(since=since, filter_pattern=f'"{eu}"')))
    assert [(line.region, data(line)["request_id"]) for line in found] == [("eu-west-1", eu)]


def test_a_group_that_does_not_exist_is_skipped_with_a_note(stack: Stack) -> None:
    # `up` creates every function's group; one deleted by hand (or by `down --delete-data`) is skipped.
    for region in REGIONS:
        stack.clients("logs", region).delete_log_group(logGroupName="/aws/lambda/items-get")
    notes: list[str] = []
    lines = list(logs.fetch(stack.clients, stack.config, LogQuery(functions=("get", "put")), notes.append))
    assert lines and {line.function for line in lines} == {"items-put"}
    assert notes == [f"{region}: no log group /aws/lambda/items-get (`multiregion up` creates it); skipped"
                     for region in REGIONS]


class EpochClock:
    """The follower's clock (epoch seconds), moved only by its sleeps."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_follow_hands_out_a_new_event_once_and_a_late_one_too(stack: Stack) -> None:
    with contextlib.suppress(stack.clients("logs", "eu-west-1").exceptions.ResourceNotFoundException):
        stack.clients("logs", "eu-west-1").delete_log_group(logGroupName="/aws/lambda/items-get")
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    before = stack.put("eu-west-1")
    clock = EpochClock(time.time())
    group = "/aws/lambda/items-put"
    cloudwatch = stack.clients("logs", "eu-west-1")
    done: dict[str, Any] = {}

    def sleep(seconds: float) -> None:
        done.setdefault("sleeps", []).append(seconds)
        clock.now += seconds
        if len(done["sleeps"]) == 1:
            done["new"] = stack.put("eu-west-1")
            wait_for(lambda: cloudwatch.filter_log_events(logGroupName=group, filterPattern=f'"{done["new"]}"')
                     ["events"])
        elif len(done["sleeps"]) == 2:
            # An event delivered late, older than the new request's line that was handed out already.
            first = cloudwatch.filter_log_events(logGroupName=group, filterPattern=f'"{before}"')["events"][0]
            cloudwatch.create_log_stream(logGroupName=group, logStreamName="late")
            cloudwatch.put_log_events(logGroupName=group, logStreamName="late",
                                      logEvents=[{"timestamp": first["timestamp"] + 1, "message": "late arrival\n"}])

    query = LogQuery(regions=("eu-west-1",), functions=("put", "get"), since=since)
    notes: list[str] = []
    lines = list(logs.follow(stack.clients, stack.config, query, notes.append, interval=3.0, clock=clock,
                             sleep=sleep, stop=lambda: len(done.get("sleeps", [])) >= 4))

    assert done["sleeps"] == [3.0] * 4  # five polls
    [old], [new] = request_line(lines, before), request_line(lines, done["new"])
    late = [line for line in lines if line.message == "late arrival\n"]
    assert len(late) == 1 and late[0].stream == "late"
    assert lines.index(old) < lines.index(new) < lines.index(late[0])
    assert late[0].timestamp < new.timestamp  # older, yet handed out after: it arrived later
    ids = [line.event_id for line in lines]
    assert len(ids) == len(set(ids))  # nothing twice, though every poll after the first saw it all again
    assert notes == ["eu-west-1: no log group /aws/lambda/items-get (`multiregion up` creates it); skipped"
                     ]  # once, not at every poll


# --------------------------------------------------------------------------------- against the Stubber


def config(tmp_path: Path, regions: tuple[str, ...] = REGIONS) -> Config:
    cfg = demo_config()
    cfg["regions"] = list(regions)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


class Stubbed:
    """A logs client per region behind botocore's Stubber: each call must send exactly the expected parameters."""

    def __init__(self, regions: tuple[str, ...] = REGIONS):
        self.clients = {r: boto3.client("logs", region_name=r, aws_access_key_id="x", aws_secret_access_key="x")
                        for r in regions}
        self.stubs = {r: Stubber(c) for r, c in self.clients.items()}
        for stub in self.stubs.values():
            stub.activate()

    def __call__(self, service: str, region: str) -> Any:
        assert service == "logs"
        return self.clients[region]

    def page(self, region: str, expected: dict[str, Any], events: list[dict[str, Any]],
             token: str | None = None) -> None:
        answer: dict[str, Any] = {"events": events, "searchedLogStreams": []}
        if token:
            answer["nextToken"] = token
        self.stubs[region].add_response("filter_log_events", answer, expected)

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


def event(ms: int, message: str, event_id: str, ingested: int | None = None, stream: str = "s") -> dict[str, Any]:
    return {"timestamp": ms, "message": message, "eventId": event_id, "ingestionTime": ingested or ms,
            "logStreamName": stream}


def test_every_page_is_read_also_after_an_empty_one(tmp_path: Path) -> None:
    cfg = config(tmp_path, ("eu-west-1",))
    stubbed = Stubbed(("eu-west-1",))
    ms = logs.to_ms(T0)
    base = {"logGroupName": "/aws/lambda/items-put", "startTime": ms, "endTime": ms + 60_000}
    # AWS: a page may be empty while more follow; only a missing nextToken ends the search.
    stubbed.page("eu-west-1", base, [], token="t1")
    stubbed.page("eu-west-1", {**base, "nextToken": "t1"}, [event(ms + 1, "one\n", "1")], token="t2")
    stubbed.page("eu-west-1", {**base, "nextToken": "t2"}, [event(ms + 2, "two\n", "2")])
    query = LogQuery(functions=("put",), since=T0, until=T0 + timedelta(minutes=1))
    lines = list(logs.fetch(stubbed, cfg, query))
    assert [(line.message, line.event_id) for line in lines] == [("one\n", "1"), ("two\n", "2")]
    stubbed.done()


def test_a_refusal_names_the_region_and_the_group(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    stubbed = Stubbed()
    for fn in ("put", "get", "health"):
        stubbed.page("eu-west-1", {"logGroupName": f"/aws/lambda/items-{fn}"}, [])
    stubbed.stubs["us-east-1"].add_client_error("filter_log_events", "AccessDeniedException",
                                                "not authorized to perform: logs:FilterLogEvents",
                                                expected_params={"logGroupName": "/aws/lambda/items-put"})
    with pytest.raises(LogsError) as raised:
        list(logs.fetch(stubbed, cfg, LogQuery()))
    assert (raised.value.region, raised.value.group) == ("us-east-1", "/aws/lambda/items-put")
    assert str(raised.value) == ("[logs us-east-1] /aws/lambda/items-put: AccessDeniedException: not authorized "
                                 "to perform: logs:FilterLogEvents")


def test_ties_are_broken_by_region_then_ingestion_order(tmp_path: Path) -> None:
    cfg = config(tmp_path, ("us-east-1", "eu-west-1"))
    stubbed = Stubbed(("us-east-1", "eu-west-1"))
    ms = logs.to_ms(T0)
    stubbed.page("us-east-1", {"logGroupName": "/aws/lambda/items-put"},
                 [event(ms - 5, "us early\n", "u1"), event(ms, "us at t\n", "u2")])
    stubbed.page("eu-west-1", {"logGroupName": "/aws/lambda/items-put"},
                 [event(ms, "eu at t, ingested second\n", "e2", ingested=ms + 9),
                  event(ms, "eu at t, ingested first\n", "e1", ingested=ms + 3),
                  event(ms, "eu at t, ingested first too\n", "e3", ingested=ms + 3)])
    lines = list(logs.fetch(stubbed, cfg, LogQuery(functions=("put",))))
    assert [line.event_id for line in lines] == ["u1", "e1", "e3", "e2", "u2"]
    stubbed.done()


def test_follow_looks_back_a_window_and_hands_out_each_event_once(tmp_path: Path) -> None:
    cfg = config(tmp_path, ("eu-west-1",))
    stubbed = Stubbed(("eu-west-1",))
    now = T0.timestamp()
    clock = EpochClock(now)
    since = T0 - timedelta(minutes=10)
    ms = logs.to_ms(T0)
    group = {"logGroupName": "/aws/lambda/items-health"}
    stubbed.page("eu-west-1", {**group, "startTime": logs.to_ms(since)}, [event(ms - 1000, "first\n", "1")])
    # Three seconds later the poll starts one window (60 s) back, not at `since` and not at the newest event.
    stubbed.page("eu-west-1", {**group, "startTime": ms + 3000 - 60_000},
                 [event(ms - 1000, "first\n", "1"), event(ms - 2000, "late, older\n", "0"),
                  event(ms + 2000, "second\n", "2")])
    stubbed.page("eu-west-1", {**group, "startTime": ms + 6000 - 60_000}, [event(ms + 2000, "second\n", "2")])

    def sleep(seconds: float) -> None:
        clock.now += seconds

    polls = iter(range(3))
    lines = list(logs.follow(stubbed, cfg, LogQuery(functions=("health",), since=since), interval=3.0,
                             window=timedelta(seconds=60), clock=clock, sleep=sleep,
                             stop=lambda: next(polls) == 2))
    assert [line.message for line in lines] == ["first\n", "late, older\n", "second\n"]
    stubbed.done()


def test_follow_ends_once_the_clock_passes_until(tmp_path: Path) -> None:
    cfg = config(tmp_path, ("eu-west-1",))
    stubbed = Stubbed(("eu-west-1",))
    clock = EpochClock(T0.timestamp())
    until = T0 + timedelta(seconds=5)
    expected = {"logGroupName": "/aws/lambda/items-put", "endTime": logs.to_ms(until)}
    stubbed.page("eu-west-1", {**expected, "startTime": logs.to_ms(T0)}, [])  # no since: from now on
    stubbed.page("eu-west-1", {**expected, "startTime": logs.to_ms(T0) + 3000 - 60_000}, [])
    stubbed.page("eu-west-1", {**expected, "startTime": logs.to_ms(T0) + 6000 - 60_000}, [])

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert list(logs.follow(stubbed, cfg, LogQuery(functions=("put",), until=until), interval=3.0, clock=clock,
                            sleep=sleep)) == []
    stubbed.done()  # three polls: at 0 s, 3 s and 6 s, the last one after `until`


# ------------------------------------------------------------------------------------------ the query


def test_a_region_or_function_the_stack_does_not_have_is_a_usage_error(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with pytest.raises(QueryError, match=r"region ap-south-1 is not one of the stack's regions "
                                         r"\(eu-west-1, us-east-1\)"):
        logs.fetch(Stubbed(), cfg, LogQuery(regions=("ap-south-1",)))
    with pytest.raises(QueryError, match=r"function 'items-delete' is not one of the stack's functions: "
                                         r"put \(items-put\), get \(items-get\), health \(items-health\)"):
        logs.follow(Stubbed(), cfg, LogQuery(functions=("items-delete",)))
    assert [(s.region, s.function, s.group) for s in logs.sources(cfg, LogQuery(functions=("health", "put")))] == [
        ("eu-west-1", "items-put", "/aws/lambda/items-put"), ("eu-west-1", "items-health", "/aws/lambda/items-health"),
        ("us-east-1", "items-put", "/aws/lambda/items-put"), ("us-east-1", "items-health", "/aws/lambda/items-health")]


def test_a_query_that_ends_before_it_starts_or_filters_too_much_is_refused() -> None:
    with pytest.raises(QueryError, match="since .* is after until"):
        LogQuery(since=T0, until=T0 - timedelta(seconds=1))
    with pytest.raises(QueryError, match="at most 1024"):
        LogQuery(filter_pattern="x" * 1025)
    naive = LogQuery(since=datetime(2026, 12, 1, 10, 0))
    assert naive.since == datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)  # a time without a zone is UTC


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", T0 - timedelta(minutes=10)),
    ("2h", T0 - timedelta(hours=2)),
    ("1d", T0 - timedelta(days=1)),
    ("30s", T0 - timedelta(seconds=30)),
    ("1w", T0 - timedelta(weeks=1)),
    (" 5M ", T0 - timedelta(minutes=5)),
    ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, tzinfo=timezone.utc)),
    ("2026-12-01T09:00:00.250Z", datetime(2026, 12, 1, 9, 0, 0, 250000, tzinfo=timezone.utc)),
    ("2026-12-01T10:00:00+01:00", datetime(2026, 12, 1, 9, tzinfo=timezone.utc)),
    ("2026-12-01T09:00:00", datetime(2026, 12, 1, 9, tzinfo=timezone.utc)),
    ("2026-12-01", datetime(2026, 12, 1, tzinfo=timezone.utc)),
    ("1796119200123", T0),
])
def test_parse_since_reads_durations_iso_times_and_epoch_milliseconds(text: str, expected: datetime) -> None:
    parsed = logs.parse_since(text, now=T0)
    assert parsed == expected and parsed.tzinfo == timezone.utc


@pytest.mark.parametrize(("text", "message"), [
    ("", "a time is needed: a duration before now"),
    ("yesterday", "cannot read the time 'yesterday': give a duration before now (30s, 10m, 2h, 1d, 1w), an "
                  "ISO 8601 time (2026-12-01T10:00:00Z) or epoch milliseconds"),
    ("-10m", "cannot read the time '-10m'"),
    ("10 minutes", "cannot read the time '10 minutes'"),
    ("10", "10 is too small for epoch milliseconds: for a duration add a unit, as in 10m"),
    ("1796119200", "1796119200 looks like epoch seconds; in milliseconds that is 1796119200000"),
    ("2026-13-01T00:00:00Z", "cannot read the time '2026-13-01T00:00:00Z'"),
    ("99999999999999999999", "is too far from today"),
    ("999999999999w", "is too far from today"),
])
def test_parse_since_says_what_it_accepts(text: str, message: str) -> None:
    with pytest.raises(QueryError) as raised:
        logs.parse_since(text, now=T0)
    assert message in str(raised.value)


def test_parse_since_counts_from_now_by_default() -> None:
    before = datetime.now(timezone.utc)
    parsed = logs.parse_since("10m")
    assert before - timedelta(minutes=10) <= parsed <= datetime.now(timezone.utc) - timedelta(minutes=10)


# ------------------------------------------------------------------------------------------ rendering

LINE = LogLine(timestamp=T0, region="eu-west-1", function="items-put",
               stream="2026/12/01/[$LATEST]0123456789abcdef0123456789abcdef", message="message\n", event_id="42",
               ingestion_time=T0 + timedelta(milliseconds=40), group="/aws/lambda/items-put")
ANSI = re.compile(r"\033\[[0-9;]*m")


def test_format_line_gives_time_region_function_and_message() -> None:
    assert logs.format_line(LINE) == "2026-12-01T10:00:00.123Z eu-west-1 items-put  message"
    padded = logs.format_line(LINE, region_width=14, function_width=12)
    assert padded == "2026-12-01T10:00:00.123Z eu-west-1      items-put     message"
    # A message over two lines stays one event; only the newline Lambda adds at its end goes.
    two = LogLine(T0, "us-east-1", "items-get", "s", "[INFO]\ta record\nover two lines\n")
    assert logs.format_line(two) == "2026-12-01T10:00:00.123Z us-east-1 items-get  [INFO]\ta record\nover two lines"


def test_format_line_in_colour_keeps_the_text_and_marks_errors() -> None:
    coloured = logs.format_line(LINE, color=True)
    assert coloured != logs.format_line(LINE) and ANSI.sub("", coloured) == logs.format_line(LINE)
    error = LogLine(T0, "eu-west-1", "items-put", "s", '{"level": "ERROR", "status": 500}\n')
    assert "\033[31m" in logs.format_line(error, color=True) and "\033[31m" not in coloured
    # Each region keeps its own colour, so two regions' lines are told apart at a glance.
    other = LogLine(T0, "us-east-1", "items-put", "s", "message\n")
    assert logs.format_line(other, color=True).split(" ")[1] != coloured.split(" ")[1]


def test_json_line_carries_every_field_and_the_message_as_data_when_it_is_json() -> None:
    doc = json.loads(logs.json_line(LINE))
    assert doc == {"timestamp": "2026-12-01T10:00:00.123Z", "timestamp_ms": 1796119200123, "region": "eu-west-1",
                   "function": "items-put", "log_group": "/aws/lambda/items-put", "stream": LINE.stream,
                   "event_id": "42", "message": "message", "ingestion_time": "2026-12-01T10:00:00.163Z"}
    structured = LogLine(T0, "eu-west-1", "items-put", "s", '{"status": 201, "region": "eu-west-1"}\n')
    assert json.loads(logs.json_line(structured))["data"] == {"status": 201, "region": "eu-west-1"}
    assert "\n" not in logs.json_line(LogLine(T0, "eu-west-1", "items-put", "s", "a\nb\n"))  # one line each


def test_timestamps_keep_their_milliseconds_exactly() -> None:
    for ms in (0, 1, 999, 1796119200123, 1796119200999):
        assert logs.to_ms(logs.from_ms(ms)) == ms
    assert logs.iso_ms(logs.from_ms(1796119200001)) == "2026-12-01T10:00:00.001Z"
