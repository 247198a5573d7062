"""What Lambda writes to CloudWatch Logs for each invocation, into moto's logs backend.

As the Lambda operator guide describes it ("How CloudWatch structures logs",
https://docs.aws.amazon.com/lambda/latest/operatorguide/log-structure.html): a function logs to the group
`/aws/lambda/{FunctionName}` in its region, each execution environment to a stream of its own named
`YYYY/MM/DD/[{version}]{32 hex}`, and every invocation writes at least a START, an END and a REPORT line
around the function's own output, each event timestamped in milliseconds. The lines' format is the one of
the developer guide's "Log and monitor Python Lambda functions" (python-logging.html).

Lambda creates the group when it is missing, without retention, if the function's role allows
logs:CreateLogGroup; the sandbox does not model IAM authorization, so it always does.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from multiregion.sandbox import moto_compat

if TYPE_CHECKING:
    from multiregion.sandbox.server import Sandbox

LogEvent = tuple[int, str]  # (timestamp in ms since the epoch, message)


def now_ms() -> int:
    return int(time.time() * 1000)


def log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def log_stream(version: str, started: float | None = None) -> str:
    """A new execution environment's stream: its UTC start date, the function version, a GUID."""
    day = time.strftime("%Y/%m/%d", time.gmtime(started))
    return f"{day}/[{version}]{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Report:
    """The figures of one invocation's REPORT line."""

    request_id: str
    duration_ms: float
    memory_size: int
    max_memory_used: int
    init_duration_ms: float | None = None  # only on the first invocation of an environment (a cold start)
    status: str | None = None  # "timeout" or "error" when the runtime, not the handler, ended the call

    def line(self) -> str:
        # Billed in whole milliseconds, rounded up. Since 2025-08-01 the init phase of a cold start is billed
        # too for zip functions on managed runtimes (AWS Compute Blog, "AWS Lambda standardizes billing
        # for INIT Phase").
        billed = math.ceil(self.duration_ms + (self.init_duration_ms or 0.0))
        text = (f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
                f"Billed Duration: {billed} ms\tMemory Size: {self.memory_size} MB\t"
                f"Max Memory Used: {self.max_memory_used} MB\t")
        if self.init_duration_ms is not None:
            text += f"Init Duration: {self.init_duration_ms:.2f} ms\t"
        if self.status is not None:
            # As Lambda's own REPORT lines show it for a timeout or a runtime exit; not in the guide's examples.
            text += f"Status: {self.status}\t"
        return text + "\n"


def invocation_events(request_id: str, version: str, started_ms: int, output: list[LogEvent],
                      report: Report) -> list[LogEvent]:
    """START, the function's own events, END and REPORT, in order."""
    end = max([started_ms, now_ms(), *(t for t, _ in output)])
    return [(started_ms, f"START RequestId: {request_id} Version: {version}\n"), *output,
            (end, f"END RequestId: {request_id}\n"), (end, report.line())]


class FunctionLogs:
    """Writes a function's log events to its group and stream in the function's region."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def put(self, region: str, group: str, stream: str, events: list[LogEvent]) -> None:
        if not events:
            return
        ordered, last = [], 0
        for timestamp, message in events:
            # One PutLogEvents batch must be in chronological order; clocks of two processes may disagree
            # by a millisecond.
            last = max(last, timestamp)
            ordered.append({"timestamp": last, "message": message})
        with self.sandbox.lock:
            moto_compat.put_log_events(region, group, stream, ordered)

