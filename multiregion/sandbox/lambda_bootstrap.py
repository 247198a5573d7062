"""One Lambda execution environment: the runtime loop that `lambda_runtime` starts in its own process.

Run as a script in isolated mode (`python -I lambda_bootstrap.py`), with the function's code extracted in
the working directory ($LAMBDA_TASK_ROOT) and the function's environment; or forked, already set up that
way, from `lambda_bootstrap.py --fork-server FD` (see `lambda_process`). Only the standard library is
used here, and nothing of `multiregion` is imported: the handler sees what it would see on AWS, its zip
first on sys.path and the runtime's libraries (boto3) after it, never a package installed from a source
tree.

Protocol, one JSON object per line:
  out  {"log": [timestamp_ms, text]}                     any number, during init and invocations
  out  {"ready": true, "init_duration_ms", "max_memory_mb"}   once, after the handler module was imported
  in   {"request_id", "event" (JSON text), "deadline_ms", "arn"}
  out  {"ok": bool, "payload" (JSON text), "duration_ms", "max_memory_mb", "fatal": bool}
The messages travel on a private copy of the original stdout; fd 1 itself is pointed at stderr, so a
handler's print (or a subprocess it starts) can never corrupt the protocol.

Log events are cut as Lambda's Python runtime cuts them for CloudWatch Logs: each line written to
stdout/stderr is one event, each `logging` record and each unhandled error one event (even over several
lines). They are sent as they happen, so a call that times out or crashes still has what it wrote.
"""

from __future__ import annotations

import contextlib
import decimal
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

# What the fork server imports once for every environment: the libraries the Lambda Python runtime provides.
PRELOAD = ("boto3", "botocore")


class LambdaContext:
    """The `context` argument, with the attributes the AWS Python runtime gives it."""

    def __init__(self, request_id: str, arn: str, deadline_ms: int):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class Channel:
    """The protocol's write end, shared by the runtime loop and whatever threads the handler writes from."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message) + "\n"
        with self.lock:
            self.stream.write(line)
            self.stream.flush()

    def log(self, text: str) -> None:
        self.send({"log": [int(time.time() * 1000), text]})


class Tee(io.TextIOBase):
    """The function's stdout and stderr: each completed line is a log event; all of it is echoed to the
    process's stderr (the sandbox's console)."""

    def __init__(self, channel: Channel, sink: Any):
        self.channel, self.sink = channel, sink
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        self.sink.write(text)
        self.sink.flush()
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.channel.log(line + "\n")
        return len(text)

    def record(self, text: str) -> None:
        """One event however many lines it has (a log record, an error report)."""
        self.flush_line()
        self.sink.write(text)
        self.sink.flush()
        self.channel.log(text)

    def flush_line(self) -> None:
        """An unterminated line is an event of its own once the invocation (or init) is over."""
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            self.channel.log(partial)

    def flush(self) -> None:
        self.sink.flush()


class CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The runtime's root log handler: one log event per record, in the Python runtime's text format."""

    request_id = ""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        record.aws_request_id = CurrentStderr.request_id
        if not isinstance(sys.stderr, Tee):  # the handler replaced sys.stderr: it gets plain text
            super().emit(record)
            return
        try:
            sys.stderr.record(self.format(record))
        except Exception:
            self.handleError(record)


def max_memory_mb() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024)  # bytes on macOS, KiB on Linux


def error_record(error: dict[str, Any]) -> str:
    """How the Python runtime logs a failed invocation or init: one event, the error then its stack."""
    text = f"[ERROR] {error.get('errorType')}: {error.get('errorMessage')}\n"
    if error.get("stackTrace"):
        text += "Traceback (most recent call last):\n" + "".join(error["stackTrace"])
    return text


def error_payload(error_type: str, message: str, stack: list[str] | None = None, request_id: str = "") -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "requestId": request_id,
                       "stackTrace": stack or []})


def _decimal_as_number(value: Any) -> Any:
    # The AWS runtime serialises Decimal (what boto3's DynamoDB resource returns) as a number.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def load_handler(spec: str) -> tuple[Any, str | None]:
    """The handler function, or None and the init error payload AWS would report."""
    module_name, _, attr = spec.rpartition(".")
    module_name = module_name.replace("/", ".")
    if not module_name or not attr:
        return None, error_payload("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values "
                                                                   "to unpack (expected 2, got 1)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, error_payload("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
    except SyntaxError as exc:
        return None, error_payload("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}")
    except Exception as exc:
        return None, error_payload(type(exc).__name__, str(exc), _stack(exc))
    handler = getattr(module, attr, None)
    if handler is None:
        return None, error_payload("Runtime.HandlerNotFound", f"Handler '{attr}' missing on module "
                                                              f"'{module_name}'")
    return handler, None


def _stack(exc: BaseException) -> list[str]:
    # Drop the runtime's own frames, as AWS shows only the function's.
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename) != os.path.abspath(__file__)]
    return traceback.format_list(frames)


def invoke(handler: Any, request: dict[str, Any], tee: Tee) -> dict[str, Any]:
    request_id = request["request_id"]
    context = LambdaContext(request_id, request["arn"], int(request["deadline_ms"]))
    CurrentStderr.request_id = request_id
    started = time.monotonic()
    try:
        result = handler(json.loads(request["event"]), context)
        try:
            payload, ok = json.dumps(result, default=_decimal_as_number), True
        except (TypeError, ValueError) as exc:
            payload, ok = error_payload("Runtime.MarshalError", f"Unable to marshal response: {exc}",
                                        request_id=request_id), False
    except Exception as exc:
        payload, ok = error_payload(type(exc).__name__, str(exc), _stack(exc), request_id), False
    duration_ms = round((time.monotonic() - started) * 1000, 2)
    tee.flush_line()
    if not ok:
        tee.record(error_record(json.loads(payload)))
    return {"ok": ok, "payload": payload, "fatal": False, "duration_ms": duration_ms,
            "max_memory_mb": max_memory_mb()}


def main() -> None:
    channel = Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    requests = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    tee = Tee(channel, sys.__stderr__)
    sys.stdout = sys.stderr = tee
    _hide_source_installs()
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()))
    root = logging.getLogger()
    log_handler = CurrentStderr()
    log_handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t"
                                               "%(message)s\n", "%Y-%m-%dT%H:%M:%S"))
    root.addHandler(log_handler)

    started = time.monotonic()
    handler, init_error = load_handler(os.environ.get("_HANDLER", ""))
    init_duration_ms = round((time.monotonic() - started) * 1000, 2)
    tee.flush_line()
    if init_error is not None:
        tee.record(error_record(json.loads(init_error)))
    channel.send({"ready": True, "init_duration_ms": init_duration_ms, "max_memory_mb": max_memory_mb()})
    for line in requests:
        request = json.loads(line)
        if init_error is not None:
            # AWS runs init again in a fresh environment for the next call: this one is done.
            channel.send({"ok": False, "payload": init_error, "fatal": True, "duration_ms": 0,
                          "max_memory_mb": max_memory_mb()})
            return
        channel.send(invoke(handler, request, tee))


# ---------------------------------------------------------------------- fork server (see lambda_process)


def fork_server(fd: int) -> None:
    """Import the runtime's heavy libraries once, then fork an environment per request."""
    import socket

    sock = socket.socket(fileno=fd)
    _hide_source_installs()
    before = set(sys.modules)
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # a runtime without it: environments import what they find
            importlib.import_module(name)
    # Every top-level module the preload brought in (boto3's dependencies too: urllib3, six...): a zip that
    # brings its own copy of any of them must not be forked from here, or the preloaded copy would win.
    # The standard library is left out: the Lambda runtime has imported much of it before any handler too.
    preloaded = {m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)
    children: dict[int, str | None] = {}  # pid -> None while running, its end once reaped
    buf = b""

    def reply(message: dict[str, Any]) -> None:
        sock.sendall(json.dumps(message).encode() + b"\n")

    reply({"ready": True, "preloaded": sorted(preloaded)})
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        if not data:
            break
        buf += data
        while b"\n" not in buf:
            more = sock.recv(1 << 16)
            if not more:
                break
            buf += more
        line, _, buf = buf.partition(b"\n")
        request = json.loads(line)
        _reap(children)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _become_environment(sock, fds, request)
            for f in fds:
                os.close(f)
            children[pid] = None
            reply({"pid": pid})
        elif request["op"] == "kill":
            pid = request["pid"]
            if children.get(pid, "") is None:  # running or a zombie: the pid is still this child's
                os.kill(pid, 9)
                children[pid] = _describe(os.waitpid(pid, 0)[1])
            reply({"status": children.pop(pid, None) or "unknown"})
    for pid, end in children.items():
        if end is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def _reap(children: dict[int, str | None]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children[pid] = _describe(status)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal: {-code}" if code < 0 else f"exit status {code}"


def _become_environment(sock: Any, fds: list[int], request: dict[str, Any]) -> None:
    """In the forked child: take the pipes, the environment and the directory, then run. Never returns."""
    try:
        sock.close()
        os.dup2(fds[0], 0)
        os.dup2(fds[1], 1)
        for f in fds:
            os.close(f)
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        os.chdir(request["cwd"])
        sys.argv = sys.argv[:1]
        main()
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def _hide_source_installs() -> None:
    # Only the function's own code and the runtime's libraries, as on AWS (see the module docstring).
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--fork-server":
        fork_server(int(sys.argv[2]))
    else:
        main()
