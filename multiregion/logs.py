"""The functions' logs, merged across regions: what `multiregion logs` shows.

Lambda writes each function's output to the log group `/aws/lambda/{FunctionName}` in the function's own
region, so one stack's logs are spread over (regions x functions) groups. `fetch` reads every group of a
query with CloudWatch Logs `FilterLogEvents` (all pages), in parallel, and merges the events into one
timeline; `follow` polls the same groups and hands out each event once. `format_line` and `json_line`
render a line without knowing the terminal, so the command layer chooses colour and output.

The core never imports click or rich: notes (a group that does not exist yet) go to an injected callable.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from multiregion import app, names
from multiregion.aws import error_code, error_message
from multiregion.config import Config

Clients = Callable[[str, str], Any]  # (service, region) -> boto3 client, as multiregion.aws.ClientProvider
Note = Callable[[str], None]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# FilterLogEvents' filterPattern is at most 1,024 characters (botocore's model, shape FilterPattern).
MAX_FILTER_PATTERN = 1024
# FilterLogEvents has a small per-account, per-region rate: 5 transactions per second, not adjustable, in AWS's
# knowledge center article "How do I determine throttling in my CloudWatch logs?" (2022; not checked against
# today's quota page). Calls to one region are started at most this often; throttling that still happens
# (another user of the account) is retried by the clients' standard retry mode.
CALLS_PER_SECOND_PER_REGION = 5.0
MAX_WORKERS = 8
# Every few seconds is live enough for a person watching, and three groups per region stay far below the rate.
FOLLOW_INTERVAL = 3.0
# CloudWatch Logs accepts events whose timestamps are older than ones already delivered (Lambda's delivery is
# asynchronous, and a client's clock may lag ours): each poll looks this far back and drops what it has seen.
# A later arrival older than the window is missed; a wider window costs a re-read of its events every poll.
FOLLOW_WINDOW = timedelta(minutes=1)
# A plain number below this is too small to be epoch milliseconds (1973-03-03T09:46:40Z).
_MIN_EPOCH_MS = 10**11
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ----------------------------------------------------------------------------------------------- errors


class QueryError(ValueError):
    """A query that cannot be run as given (an unknown region or function, an unreadable time): a usage error,
    nothing was read."""


class LogsError(Exception):
    """AWS refused to hand out a group's events."""

    def __init__(self, region: str, group: str, detail: str):
        self.region, self.group, self.detail = region, group, detail
        super().__init__(f"[logs {region}] {group}: {detail}")


# ------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class LogQuery:
    """Which events to show. Empty `regions` or `functions` mean all of the stack's; a function is named by its
    component (`put`) or its full name (`items-put`). `since` and `until` are inclusive; None leaves that end
    open (for `follow`, a missing `since` means from now on)."""

    regions: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    filter_pattern: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "functions", tuple(self.functions))
        object.__setattr__(self, "since", utc(self.since) if self.since is not None else None)
        object.__setattr__(self, "until", utc(self.until) if self.until is not None else None)
        if self.since is not None and self.until is not None and self.since > self.until:
            raise QueryError(f"since ({iso_ms(self.since)}) is after until ({iso_ms(self.until)})")
        if self.filter_pattern is not None and len(self.filter_pattern) > MAX_FILTER_PATTERN:
            raise QueryError(f"the filter pattern has {len(self.filter_pattern)} characters; CloudWatch Logs "
                             f"accepts at most {MAX_FILTER_PATTERN}")


@dataclass(frozen=True)
class Source:
    """One log group to read: a function's group in one region."""

    region: str
    function: str  # the Lambda function's name
    group: str


@dataclass(frozen=True)
class LogLine:
    """One log event of one function in one region."""

    timestamp: datetime  # when the event happened (UTC, millisecond precision)
    region: str
    function: str
    stream: str
    message: str  # as CloudWatch holds it (Lambda's lines end with a newline)
    event_id: str = ""
    ingestion_time: datetime | None = None
    group: str = ""


def sources(config: Config, query: LogQuery) -> list[Source]:
    """The groups a query reads, in the config's order of regions and the app's order of functions."""
    regions = _chosen_regions(config, query.regions)
    functions = _chosen_functions(config, query.functions)
    return [Source(region, names.function_name(config, component), names.log_group(config, component))
            for region in regions for component in functions]


def _chosen_regions(config: Config, wanted: Sequence[str]) -> list[str]:
    unknown = [r for r in wanted if r not in config.regions]
    if unknown:
        raise QueryError(f"region {', '.join(unknown)} is not one of the stack's regions "
                         f"({', '.join(config.regions)})")
    return [r for r in config.regions if not wanted or r in wanted]


def _chosen_functions(config: Config, wanted: Sequence[str]) -> list[str]:
    components = [f.component for f in app.functions(config)]
    by_name = {names.function_name(config, c): c for c in components}
    chosen = set()
    for name in wanted:
        component = name if name in components else by_name.get(name)
        if component is None:
            known = ", ".join(f"{c} ({names.function_name(config, c)})" for c in components)
            raise QueryError(f"function {name!r} is not one of the stack's functions: {known}")
        chosen.add(component)
    return [c for c in components if not wanted or c in chosen]


# ------------------------------------------------------------------------------------------------- fetch


def fetch(clients: Clients, config: Config, query: LogQuery, note: Note | None = None) -> Iterator[LogLine]:
    """Every event of the query, merged across regions and functions in time order (timestamp, then region,
    then ingestion order). Read at once, so that errors come before any line: a QueryError for a query that
    names what the stack does not have, a LogsError naming the region and the group for a refusal. A group that
    does not exist is skipped with a note."""
    lines, missing = _read_all(clients, sources(config, query), _window(query.since, query.until),
                               query.filter_pattern)
    for source in missing:
        (note or _ignore)(missing_note(source))
    return iter(_merged(lines))


def _merged(lines: Iterable[LogLine]) -> list[LogLine]:
    # CloudWatch sorts one group's events, not several groups': the whole result is sorted once, here. The
    # ingestion time, then the arrival order within a group (AWS's order for events ingested in the same
    # millisecond), break ties.
    indexed = list(enumerate(lines))
    indexed.sort(key=lambda pair: (pair[1].timestamp, pair[1].region, pair[1].ingestion_time or EPOCH,
                                   pair[1].function, pair[0]))
    return [line for _, line in indexed]


def _read_all(clients: Clients, chosen: Sequence[Source], window: tuple[int | None, int | None],
              pattern: str | None) -> tuple[list[LogLine], list[Source]]:
    """The events of every group, read in parallel, and the groups that do not exist. The first failure, in
    the sources' order, is raised."""
    if not chosen:
        return [], []
    # boto3 clients are thread-safe once made, but making them may not be: every client is made here.
    logs = {region: clients("logs", region) for region in dict.fromkeys(s.region for s in chosen)}
    pacers = {region: _Pacer(CALLS_PER_SECOND_PER_REGION) for region in logs}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(chosen)), thread_name_prefix="logs") as pool:
        futures = [pool.submit(_read_group, logs[s.region], pacers[s.region], s, window, pattern)
                   for s in chosen]
        try:
            results = [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    lines: list[LogLine] = []
    missing: list[Source] = []
    for source, found in zip(chosen, results, strict=True):
        if found is None:
            missing.append(source)
        else:
            lines.extend(found)
    return lines, missing


def missing_note(source: Source) -> str:
    return f"{source.region}: no log group {source.group} (`multiregion up` creates it); skipped"


def _read_group(logs: Any, pacer: _Pacer, source: Source, window: tuple[int | None, int | None],
                pattern: str | None) -> list[LogLine] | None:
    """Every page of one group's events, or None when the group does not exist."""
    params: dict[str, Any] = {"logGroupName": source.group}
    start, end = window
    if start is not None:
        params["startTime"] = start
    if end is not None:
        params["endTime"] = end
    if pattern:
        params["filterPattern"] = pattern
    lines: list[LogLine] = []
    while True:
        pacer.wait()
        try:
            page = logs.filter_log_events(**params)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise LogsError(source.region, source.group, error_message(exc)) from exc
        except BotoCoreError as exc:
            raise LogsError(source.region, source.group, str(exc)) from exc
        lines.extend(_line(source, event) for event in page.get("events") or [])
        token = page.get("nextToken")
        # A page may be empty, or only partly full, while more follow: only a missing token ends the search.
        # The same token handed back cannot move on (GetLogEvents ends its streams that way).
        if not token or token == params.get("nextToken"):
            return lines
        params["nextToken"] = token


def _line(source: Source, event: dict[str, Any]) -> LogLine:
    ingested = event.get("ingestionTime")
    return LogLine(timestamp=from_ms(int(event["timestamp"])), region=source.region, function=source.function,
                   stream=str(event.get("logStreamName", "")), message=str(event.get("message", "")),
                   event_id=str(event.get("eventId", "")),
                   ingestion_time=from_ms(int(ingested)) if ingested is not None else None, group=source.group)


class _Pacer:
    """Starts calls no closer together than 1/rate seconds (one pacer per region: the quota is per region)."""

    def __init__(self, rate: float):
        self.spacing = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.spacing
        if start > now:
            time.sleep(start - now)


def _ignore(_: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------ follow


def follow(clients: Clients, config: Config, query: LogQuery, note: Note | None = None, *,
           interval: float = FOLLOW_INTERVAL, window: timedelta = FOLLOW_WINDOW,
           clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
           stop: Callable[[], bool] = lambda: False) -> Iterator[LogLine]:
    """New events as they arrive, each once: a poll every `interval` seconds of `clock` (epoch seconds), until
    `stop()` says so, the clock passes `query.until`, or the caller stops iterating (Ctrl-C). The first poll
    starts at `query.since` (or now); each later poll looks `window` back from now, for events delivered late
    with older timestamps, and hands out only events it has not handed out before (by event id). Within one
    poll the events are in time order; a late event comes after newer ones handed out by an earlier poll."""
    chosen = sources(config, query)
    return _follow(clients, chosen, query, note or _ignore, interval, window, clock, sleep, stop)


def _follow(clients: Clients, chosen: Sequence[Source], query: LogQuery, note: Note, interval: float,
            window: timedelta, clock: Callable[[], float], sleep: Callable[[float], None],
            stop: Callable[[], bool]) -> Iterator[LogLine]:
    seen = _Seen()
    noted: set[Source] = set()  # a missing group is noted once, not at every poll
    start = query.since if query.since is not None else from_seconds(clock())
    until = to_ms(query.until) if query.until is not None else None
    while True:
        polled_at = to_ms(from_seconds(clock()))
        lines, missing = _read_all(clients, chosen, (to_ms(start), until), query.filter_pattern)
        for source in missing:
            if source not in noted:
                noted.add(source)
                note(missing_note(source))
        seen.forget_before(to_ms(start))
        for line in _merged(lines):
            if seen.add(line):
                yield line
        if stop() or (until is not None and polled_at >= until):
            return
        sleep(interval)
        start = max(query.since or EPOCH, from_seconds(clock()) - window)


class _Seen:
    """The events already handed out, by group and event id, kept only as long as a poll can return them."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, str, str], int] = {}

    def add(self, line: LogLine) -> bool:
        key = (line.region, line.function, line.event_id or f"{line.stream}|{to_ms(line.timestamp)}|{line.message}")
        if key in self._at:
            return False
        self._at[key] = to_ms(line.timestamp)
        return True

    def forget_before(self, start_ms: int) -> None:
        # A poll starting at `start_ms` cannot return an older event again, so its id is no longer needed.
        for key in [k for k, ms in self._at.items() if ms < start_ms]:
            del self._at[key]

    def __len__(self) -> int:
        return len(self._at)


# ------------------------------------------------------------------------------------------------- times


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A point in time (UTC) from `10m`, `2h`, `1d` (s, m, h, d or w before `now`), an ISO 8601 time (UTC when
    it names no zone) or epoch milliseconds. QueryError, saying what is accepted, for anything else."""
    value = (text or "").strip()
    if not value:
        raise QueryError(f"a time is needed: {_FORMS}")
    duration = _DURATION.match(value)
    try:
        if duration:
            ago = timedelta(seconds=int(duration[1]) * _UNIT_SECONDS[duration[2].lower()])
            return utc(now or datetime.now(timezone.utc)) - ago
        if value.isdigit():
            return _epoch_ms(value)
    except OverflowError:
        raise QueryError(f"{value!r} is too far from today") from None
    return _iso(value)


_FORMS = ("a duration before now (30s, 10m, 2h, 1d, 1w), an ISO 8601 time (2026-12-01T10:00:00Z) or epoch "
          "milliseconds (1796119200123)")


def _epoch_ms(value: str) -> datetime:
    number = int(value)
    if number < _MIN_EPOCH_MS:
        hint = (f"{value} looks like epoch seconds; in milliseconds that is {value}000" if len(value) in (9, 10)
                else "for a duration add a unit, as in 10m")
        raise QueryError(f"{value} is too small for epoch milliseconds: {hint}")
    return from_ms(number)


def _iso(value: str) -> datetime:
    # Python before 3.11 does not read a `Z` suffix.
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"cannot read the time {value!r}: give {_FORMS}") from None
    return utc(parsed)


def utc(moment: datetime) -> datetime:
    """The same moment in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _window(since: datetime | None, until: datetime | None) -> tuple[int | None, int | None]:
    return (to_ms(since) if since is not None else None, to_ms(until) if until is not None else None)


def from_ms(ms: int) -> datetime:
    # Exact, unlike a float division: CloudWatch's timestamps are whole milliseconds.
    return EPOCH + timedelta(milliseconds=ms)


def from_seconds(seconds: float) -> datetime:
    return from_ms(int(seconds * 1000))


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_ms(moment: datetime) -> str:
    """`2026-12-01T10:00:00.123Z`: UTC, milliseconds, as CloudWatch's console shows them."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------------------------------------ render

_RESET, _DIM, _BOLD, _RED = "\033[0m", "\033[2m", "\033[1m", "\033[31m"
_REGION_COLOURS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[96m")
# What marks a line as an error: the item API's own JSON lines, Python's logging in Lambda, the runtime's
# timeout and crash lines.
_ERROR_MARKS = ('"level": "ERROR"', "[ERROR]", "Task timed out", "Runtime exited", "Traceback (most recent")


def format_line(line: LogLine, color: bool = False, region_width: int = 0, function_width: int = 0) -> str:
    """`2026-12-01T10:00:00.123Z eu-west-1 items-put  message`: one event, its trailing newline dropped. With
    widths, the region and function columns are padded so that messages line up; with `color`, ANSI colours
    (the region's own, errors in red)."""
    message = text_of(line)
    region, function = line.region.ljust(region_width), line.function.ljust(function_width)
    if not color:
        return f"{iso_ms(line.timestamp)} {region} {function}  {message}"
    shade = _REGION_COLOURS[zlib.crc32(line.region.encode()) % len(_REGION_COLOURS)]
    body = f"{_RED}{message}{_RESET}" if is_error(line) else message
    return f"{_DIM}{iso_ms(line.timestamp)}{_RESET} {shade}{region}{_RESET} {_BOLD}{function}{_RESET}  {body}"


def json_line(line: LogLine) -> str:
    """One event as one JSON object (for `--json`, one per line); `data` holds the message when it is itself a
    JSON object, as the item API's request lines are."""
    doc: dict[str, Any] = {"timestamp": iso_ms(line.timestamp), "timestamp_ms": to_ms(line.timestamp),
                           "region": line.region, "function": line.function, "log_group": line.group,
                           "stream": line.stream, "event_id": line.event_id, "message": text_of(line)}
    if line.ingestion_time is not None:
        doc["ingestion_time"] = iso_ms(line.ingestion_time)
    data = _json_object(doc["message"])
    if data is not None:
        doc["data"] = data
    return json.dumps(doc, ensure_ascii=False)


def text_of(line: LogLine) -> str:
    return line.message.rstrip("\r\n")


def is_error(line: LogLine) -> bool:
    return any(mark in line.message for mark in _ERROR_MARKS)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
