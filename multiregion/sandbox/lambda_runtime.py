"""A Lambda runtime for the sandbox: runs the deployed zip of a Python function in its own process.

moto stores functions but cannot run them without Docker. Here `Invoke` (and API Gateway's proxy
integration, through `LambdaRuntime.invoke`) runs the handler from the code bytes moto holds for that
account and region, never from a source tree:

- An execution environment is a process running `lambda_bootstrap.py` (forked from a warm fork server that
  has boto3 imported, see `lambda_process`), cwd and sys.path[0] the extracted zip, with the function's
  environment variables plus what Lambda sets (AWS_REGION, AWS_DEFAULT_REGION, AWS_LAMBDA_FUNCTION_NAME,
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE, ...), dummy credentials, and AWS_ENDPOINT_URL = this sandbox, so the
  function's own boto3 calls land in its region of the sandbox.
- Environments stay warm: one process serves one invocation at a time and keeps module-level state
  between calls. Environments are pooled per (function ARN, code SHA-256, configuration); any change of
  code or configuration starts new ones, as on AWS. Overlapping calls get more environments, up to
  `max_environments` per function; calls beyond that wait for a free one.
- The function's timeout is enforced by killing the environment ("Task timed out after N.NN seconds").
- Reserved concurrency is honoured: 0 throttles every call (429 TooManyRequestsException), N throttles the
  (N+1)th overlapping call.
- Each invocation's log (START, the handler's own lines, END, REPORT) goes to CloudWatch Logs, group
  `/aws/lambda/{name}` in the function's region, one stream per environment (see `cloudwatch_logs`).
- A zip that brings its own copy of anything the fork server preloaded (boto3 and its dependencies) gets a
  freshly spawned environment, so its copy wins as on AWS (see `lambda_process`).
- Function states (Pending after create, an update InProgress) are `lambda_states`'; while an update is in
  progress, calls run the previous code and configuration, and a Pending function refuses calls (strict).

Invoke API: `POST /2015-03-31/functions/{name or ARN}/invocations` with InvocationType RequestResponse
(200, X-Amz-Function-Error: Unhandled on errors, X-Amz-Log-Result with LogType=Tail), Event (202, runs in
the background) or DryRun (204).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import selectors
import shutil
import sys
import tempfile
import threading
import time
import uuid
import weakref
import zipfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import Extension, SandboxRequest, aws_json_error, json_response
from multiregion.sandbox.cloudwatch_logs import (
    FunctionLogs,
    LogEvent,
    Report,
    invocation_events,
    log_group,
    log_stream,
    now_ms,
)
from multiregion.sandbox.lambda_process import (
    BOOTSTRAP,
    EnvironmentProcess,
    ForkServer,
    ProcessGone,
    SpawnedProcess,
    top_level_modules,
)

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>.+)/invocations/?$")
INIT_TIMEOUT = 10.0  # AWS's limit on the init phase (importing the handler's module)
LOG_TAIL_BYTES = 4096
IDLE_LIFETIME = 600.0  # seconds an unused environment is kept warm
CODE_DIR_PREFIX = "multiregion-lambda-"  # then the sandbox's pid: tells whose directory it is


class InvokeError(Exception):
    """The Lambda API refused the call: no such function, throttled, bad request."""

    def __init__(self, code: str, message: str, status: int, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra or {}

    def response(self) -> Response:
        if self.extra:
            return json_response({**self.extra, "message": self.message}, status=self.status,
                                 content_type="application/json", headers={"x-amzn-ErrorType": self.code})
        return aws_json_error(self.code, self.message, self.status)


def throttled(reason: str) -> InvokeError:
    return InvokeError("TooManyRequestsException", "Rate Exceeded.", 429, {"Type": "User", "Reason": reason})


@dataclass(frozen=True)
class FunctionSpec:
    """What an execution environment is built from: a snapshot of moto's function, taken under the lock."""

    arn: str
    name: str
    region: str
    version: str
    handler: str
    runtime: str
    code: bytes = field(repr=False)
    code_sha256: str
    environment: tuple[tuple[str, str], ...]
    timeout: float
    memory_size: int
    reserved_concurrency: int | None
    token: int  # tells a deleted-and-recreated function from the old one

    @property
    def key(self) -> tuple[Any, ...]:
        """Environments are shared only between calls with the same code and configuration."""
        return (self.arn, self.token, self.code_sha256, self.handler, self.runtime, self.environment,
                self.timeout, self.memory_size)


@dataclass
class InvokeResult:
    payload: bytes
    request_id: str
    function_error: str | None = None  # "Unhandled" when the handler failed, timed out or crashed
    executed_version: str = "$LATEST"
    logs: str = ""

    def log_tail(self) -> str:
        return base64.b64encode(self.logs.encode()[-LOG_TAIL_BYTES:]).decode()


class WorkerExited(Exception):
    """The environment's process ended; the message says how ("exit status 1", "signal: 9")."""


@dataclass
class Transcript:
    """What an environment logged around one invocation."""

    init_output: list[LogEvent]  # its init phase's, on the first invocation only
    output: list[LogEvent]
    init_duration_ms: float | None
    max_memory_mb: int


class Worker:
    """One execution environment: a bootstrap process serving one invocation at a time over its pipes."""

    def __init__(self, spec: FunctionSpec, process: EnvironmentProcess, stream: str):
        self.spec, self.key, self.process = spec, spec.key, process
        self.log_stream = stream
        self.last_used = time.monotonic()
        self.dead = False
        self._buf = bytearray()
        self._init_output: list[LogEvent] = []
        self._output: list[LogEvent] = []
        self._init_duration_ms: float | None = None
        self._max_memory_mb = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float) -> None:
        message = self._next(time.monotonic() + timeout)
        if not message.get("ready"):
            raise WorkerExited("the environment did not start")
        self._init_output, self._output = self._output, []
        self._init_duration_ms = float(message.get("init_duration_ms") or 0.0)

    def send(self, request: dict[str, Any]) -> None:
        """Hand over an invocation; WorkerExited if the process is gone (the handler never saw it)."""
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise WorkerExited(self.kill()) from exc

    def receive(self, timeout: float) -> dict[str, Any]:
        """The handler's answer; TimeoutError after `timeout` seconds, WorkerExited if the process died."""
        return self._next(time.monotonic() + timeout)

    def transcript(self) -> Transcript:
        """What the environment logged since the last call (its init too, the first time); consumed."""
        taken = Transcript(self._init_output, self._output, self._init_duration_ms, self._max_memory_mb)
        self._init_output, self._output, self._init_duration_ms = [], [], None
        return taken

    def _next(self, deadline: float) -> dict[str, Any]:
        """The next protocol message that is not a log event; log events are kept for the transcript."""
        while True:
            message = self._read(deadline)
            if "max_memory_mb" in message:
                self._max_memory_mb = int(message["max_memory_mb"])
            if "log" not in message:
                return message
            timestamp, text = message["log"]
            self._output.append((int(timestamp), str(text)))

    def _read(self, deadline: float) -> dict[str, Any]:
        fd = self.process.stdout_fd
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise WorkerExited(self.kill())
                self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        message: dict[str, Any] = json.loads(line)
        return message

    def kill(self) -> str:
        """Stop the environment (from any thread); how it ended ("exit status 1", "signal: 9")."""
        self.dead = True
        return self.process.terminate()

    def close(self) -> None:
        """Release the pipes; only by the thread that uses them, or for an idle environment."""
        self.process.close()


class LambdaRuntime(Extension):
    max_environments = 4  # per function; overlapping calls beyond this wait for a free environment

    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self._cond = threading.Condition()
        self._generation = 0
        self._idle: dict[str, list[Worker]] = {}
        self._busy: dict[str, int] = {}
        self._latest: dict[str, tuple[Any, ...]] = {}
        self._workers: set[Worker] = set()
        self._tokens: weakref.WeakKeyDictionary[moto_compat.Function, int] = weakref.WeakKeyDictionary()
        self._token_counter = count(1)
        self._root: Path | None = None
        self._extract_lock = threading.Lock()
        self._modules: dict[Path, frozenset[str]] = {}  # per extracted zip: the modules it brings
        self._logs = FunctionLogs(sandbox)
        # Outlives resets: it holds no function state, only preloaded libraries.
        self._fork_server: ForkServer | None = None
        self._fork_lock = threading.Lock()

    # ------------------------------------------------------------------ the Invoke API

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service != "lambda" or req.method != "POST":
            return None
        match = _INVOKE_PATH.match(req.path)
        if match is None:
            return None
        function = unquote(match.group("function"))
        qualifier = req.raw.args.get("Qualifier")
        invocation_type = req.raw.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            payload = _validate_payload(req.body)
            if invocation_type == "DryRun":
                self.function(function, req.region or "", qualifier)
                return Response(status=204)
            if invocation_type == "Event":
                spec = self.function(function, req.region or "", qualifier)
                threading.Thread(target=self._invoke_async, args=(spec, payload), daemon=True,
                                 name=f"lambda-event-{spec.name}").start()
                return Response(status=202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
            if invocation_type != "RequestResponse":
                raise InvokeError("InvalidParameterValueException",
                                  f"Unsupported InvocationType: {invocation_type}", 400)
            result = self.invoke(function, req.region or "", payload, qualifier)
        except InvokeError as exc:
            return exc.response()
        headers = {"X-Amz-Executed-Version": result.executed_version, "x-amzn-RequestId": result.request_id}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if req.raw.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = result.log_tail()
        return Response(result.payload, status=200, content_type="application/json", headers=headers)

    def _invoke_async(self, spec: FunctionSpec, payload: bytes) -> None:
        try:
            result = self.run(spec, payload)
        except InvokeError as exc:
            print(f"sandbox lambda: event invocation of {spec.name} refused: {exc.code} {exc.message}",
                  file=sys.stderr, flush=True)
            return
        if result.function_error:
            print(f"sandbox lambda: event invocation of {spec.name} failed: {result.payload.decode()}",
                  file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ what other extensions call

    def function(self, function: str, region: str, qualifier: str | None = None) -> FunctionSpec:
        """What a call of the deployed function (name, ARN or qualified ARN) runs: a snapshot of it, or of its
        previous code and configuration while an update is in progress. InvokeError when Lambda would refuse
        the call (404 unknown, 409 Pending in strict mode)."""
        if qualifier == "$LATEST":
            qualifier = None
        with self.sandbox.lock:
            try:
                fn = moto_compat.function(region, function, qualifier)
            except moto_compat.ClientError as exc:
                raise InvokeError(exc.code, exc.message, exc.status) from None
            spec = self.spec_of(fn, region)
            states = self._states()
            return spec if states is None else states.for_invocation(fn, spec)

    def spec_of(self, fn: moto_compat.Function, region: str) -> FunctionSpec:
        """A snapshot of moto's function `fn` (the caller holds sandbox.lock)."""
        token = self._tokens.get(fn)
        if token is None:
            token = self._tokens[fn] = next(self._token_counter)
        reserved = fn.reserved_concurrency
        return FunctionSpec(
            arn=fn.function_arn, name=fn.function_name, region=region, version=str(fn.version),
            handler=fn.handler or "", runtime=fn.run_time or "", code=bytes(fn.code_bytes or b""),
            code_sha256=fn.code_sha_256, environment=tuple(sorted((fn.environment_vars or {}).items())),
            timeout=float(fn.timeout), memory_size=int(fn.memory_size),
            reserved_concurrency=None if reserved is None else int(reserved), token=token)

    def _states(self) -> Any:
        from multiregion.sandbox.lambda_states import FunctionStates

        try:
            return self.sandbox.extension(FunctionStates)
        except LookupError:  # a sandbox built without it: functions are Active at once, as moto has them
            return None

    def invoke(self, function: str, region: str, payload: bytes, qualifier: str | None = None) -> InvokeResult:
        """Run the function synchronously (RequestResponse). Raises InvokeError when Lambda would refuse."""
        return self.run(self.function(function, region, qualifier), payload)

    def run(self, spec: FunctionSpec, payload: bytes) -> InvokeResult:
        if not spec.runtime.startswith("python"):
            raise InvokeError("InvalidRuntimeException", f"The sandbox runs Python functions only, not "
                                                         f"{spec.runtime or 'container images'}", 502)
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + spec.timeout) * 1000)
        request = {"request_id": request_id, "event": payload.decode(), "deadline_ms": deadline_ms, "arn": spec.arn}
        started_ms = now_ms()
        answer: dict[str, Any] | None = None
        status: str | None = None
        worker, generation = self._acquire(spec)
        try:
            if worker is None:
                worker = self._start(spec)
            worker = self._hand_over(spec, worker, request)
            answer = worker.receive(spec.timeout)
            if answer.get("fatal"):  # the init failed: AWS starts a fresh environment for the next call
                worker.kill()
            result = InvokeResult(payload=answer["payload"].encode(), request_id=request_id,
                                  function_error=None if answer.get("ok") else "Unhandled",
                                  executed_version=spec.version)
        except TimeoutError:
            assert worker is not None
            worker.kill()
            status = "timeout"
            result = self._failure(spec, request_id, "Sandbox.Timedout",
                                   f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds")
        except WorkerExited as exc:
            status = "error"
            result = self._failure(spec, request_id, "Runtime.ExitError",
                                   f"RequestId: {request_id} Error: Runtime exited with error: {exc}")
        finally:
            # Taken before the environment can serve another call.
            transcript = worker.transcript() if worker is not None else None
            stream = worker.log_stream if worker is not None else ""
            self._release(spec, worker, generation)
        if transcript is not None:
            self._log(spec, stream, result, started_ms, transcript, answer, status)
        return result

    def _log(self, spec: FunctionSpec, stream: str, result: InvokeResult, started_ms: int, transcript: Transcript,
             answer: dict[str, Any] | None, status: str | None) -> None:
        """The invocation's log: in the result (for LogType=Tail) and in CloudWatch Logs."""
        output = list(transcript.output)
        if status is not None:
            output.append((now_ms(), json.loads(result.payload)["errorMessage"] + "\n"))
        duration = float(answer["duration_ms"]) if answer is not None else float(now_ms() - started_ms)
        report = Report(result.request_id, duration, spec.memory_size, transcript.max_memory_mb,
                        transcript.init_duration_ms, status)
        events = invocation_events(result.request_id, spec.version, started_ms, output, report)
        result.logs = "".join(message for _, message in events)
        try:
            self._logs.put(spec.region, log_group(spec.name), stream, transcript.init_output + events)
        except Exception as exc:  # noqa: BLE001 - on AWS too a call succeeds whether or not its log is written
            print(f"sandbox lambda: the log of {spec.name} was not written: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)

    def _hand_over(self, spec: FunctionSpec, worker: Worker, request: dict[str, Any]) -> Worker:
        """Send the call; a warm environment that died while idle is replaced once, as it never saw the call."""
        try:
            worker.send(request)
            return worker
        except WorkerExited:
            self._kill_all([worker])
        fresh = self._start(spec)
        fresh.send(request)
        return fresh

    @staticmethod
    def _failure(spec: FunctionSpec, request_id: str, error_type: str, message: str) -> InvokeResult:
        payload = json.dumps({"errorType": error_type, "errorMessage": message})
        return InvokeResult(payload=payload.encode(), request_id=request_id, function_error="Unhandled",
                            executed_version=spec.version)

    def environments(self, function_arn: str) -> list[int]:
        """The process ids of the idle warm environments of a function (for tests and status)."""
        with self._cond:
            return [w.pid for w in self._idle.get(function_arn, [])]

    # ------------------------------------------------------------------ the pool

    def _acquire(self, spec: FunctionSpec) -> tuple[Worker | None, int]:
        """A warm environment for `spec`, or None when the caller should start one. Holds a slot."""
        stale: list[Worker] = []
        deadline = time.monotonic() + max(spec.timeout, 1.0)
        with self._cond:
            if spec.reserved_concurrency == 0:
                raise throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
            if spec.reserved_concurrency is not None and self._busy.get(spec.arn, 0) >= spec.reserved_concurrency:
                raise throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
            self._latest[spec.arn] = spec.key
            stale += self._evict(spec)
            while self._busy.get(spec.arn, 0) >= self.max_environments:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._kill_all(stale)
                    raise throttled("ConcurrentInvocationLimitExceeded")
                self._cond.wait(remaining)
            self._busy[spec.arn] = self._busy.get(spec.arn, 0) + 1
            idle = self._idle.get(spec.arn, [])
            worker = idle.pop() if idle else None  # the most recently used, as Lambda tends to
            generation = self._generation
        self._kill_all(stale)
        return worker, generation

    def _evict(self, spec: FunctionSpec) -> list[Worker]:
        """Idle environments that must not serve again: other code or configuration, or idle too long."""
        now = time.monotonic()
        stale: list[Worker] = []
        for arn, idle in self._idle.items():
            keep: list[Worker] = []
            for w in idle:
                old = now - w.last_used > IDLE_LIFETIME or (arn == spec.arn and w.key != spec.key)
                (stale if old else keep).append(w)
            idle[:] = keep
        return stale

    def _release(self, spec: FunctionSpec, worker: Worker | None, generation: int) -> None:
        discard = None
        with self._cond:
            current = generation == self._generation  # False after a reset: that pool is gone
            if current:
                self._busy[spec.arn] = max(0, self._busy.get(spec.arn, 0) - 1)
            if worker is not None:
                reusable = current and not worker.dead and self._latest.get(spec.arn) == worker.key
                if reusable:
                    worker.last_used = time.monotonic()
                    self._idle.setdefault(spec.arn, []).append(worker)
                else:
                    discard = worker
            self._cond.notify_all()
        if discard is not None:
            self._kill_all([discard])

    def _start(self, spec: FunctionSpec) -> Worker:
        code_dir = self._code_dir(spec)
        env = self._env(spec, code_dir)
        try:
            worker = Worker(spec, self._launch(env, code_dir), env["AWS_LAMBDA_LOG_STREAM_NAME"])
        except (OSError, ProcessGone) as exc:
            raise InvokeError("ServiceException", f"Could not start an execution environment for {spec.name}: "
                                                  f"{exc}", 500) from None
        with self._cond:
            self._workers.add(worker)
        try:
            worker.wait_ready(INIT_TIMEOUT)
        except (TimeoutError, WorkerExited) as exc:
            self._kill_all([worker])
            raise InvokeError("ServiceException", f"The execution environment of {spec.name} did not start "
                                                  f"within {INIT_TIMEOUT:.0f} s ({type(exc).__name__})", 500) from None
        return worker

    def _launch(self, env: dict[str, str], code_dir: Path) -> EnvironmentProcess:
        """Fork from the warm fork server, unless the zip brings its own copy of what that server preloaded."""
        if not ForkServer.usable():
            return SpawnedProcess(env, code_dir)
        if self._running_fork_server().preloaded & self._modules_of(code_dir):
            return SpawnedProcess(env, code_dir)
        try:
            return self._running_fork_server().spawn(env, code_dir)
        except ProcessGone:  # it died under us: once more with a new one
            self._close_fork_server()
            return self._running_fork_server().spawn(env, code_dir)

    def _modules_of(self, code_dir: Path) -> frozenset[str]:
        with self._extract_lock:
            if code_dir not in self._modules:
                self._modules[code_dir] = top_level_modules(code_dir)
            return self._modules[code_dir]

    def _running_fork_server(self) -> ForkServer:
        with self._fork_lock:
            if self._fork_server is None or not self._fork_server.alive():
                self._fork_server = ForkServer(self._base_env())
            return self._fork_server

    def _close_fork_server(self) -> None:
        with self._fork_lock:
            server, self._fork_server = self._fork_server, None
        if server is not None:
            server.close()

    @staticmethod
    def _base_env() -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC",
                "PYTHONDONTWRITEBYTECODE": "1"}

    def _env(self, spec: FunctionSpec, code_dir: Path) -> dict[str, str]:
        region = spec.region
        env = self._base_env()
        env.update(dict(spec.environment))
        # What Lambda sets itself; a function's own variables cannot override these on AWS either.
        env.update({
            "_HANDLER": spec.handler, "LAMBDA_TASK_ROOT": str(code_dir), "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name, "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group(spec.name),
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream(spec.version),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": self.sandbox.url,
            # Never the developer's ~/.aws files or an instance role: the function has its role's credentials.
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        return env

    def _code_dir(self, spec: FunctionSpec) -> Path:
        """The zip extracted once per code SHA, shared read-only by that code's environments."""
        digest = base64.b64decode(spec.code_sha256).hex() if spec.code_sha256 else uuid.uuid4().hex
        with self._extract_lock:
            if self._root is None:
                remove_orphaned_code_dirs()
                self._root = Path(tempfile.mkdtemp(prefix=f"{CODE_DIR_PREFIX}{os.getpid()}-"))
            target = self._root / digest
            if target.is_dir():
                return target
            partial = self._root / f".{digest}.{uuid.uuid4().hex}"
            try:
                with zipfile.ZipFile(io.BytesIO(spec.code)) as archive:
                    archive.extractall(partial)
            except zipfile.BadZipFile:
                shutil.rmtree(partial, ignore_errors=True)
                raise InvokeError("InvalidZipFileException", "Lambda was unable to unzip the deployment "
                                                             f"package of {spec.name}", 502) from None
            partial.rename(target)
            return target

    # ------------------------------------------------------------------ lifecycle

    def _kill_all(self, workers: list[Worker]) -> None:
        """End environments that no other thread is using (idle ones, or the caller's own)."""
        for worker in workers:
            worker.kill()
            worker.close()
        with self._cond:
            self._workers.difference_update(workers)

    # Ending workers waits on their processes: never while every request waits on sandbox.lock.
    reset_outside_lock = True

    def reset(self) -> None:
        self._shutdown()

    def stop(self) -> None:
        self._shutdown()
        self._close_fork_server()

    def _shutdown(self) -> None:
        with self._cond:
            self._generation += 1
            idle = [w for workers in self._idle.values() for w in workers]
            busy = [w for w in self._workers if w not in idle]
            self._idle.clear()
            self._busy.clear()
            self._latest.clear()
            self._cond.notify_all()
        self._kill_all(idle)
        for worker in busy:
            # Its caller sees the end of the pipe, answers Runtime.ExitError, and releases the pipes.
            worker.kill()
        with self._extract_lock:
            root, self._root = self._root, None
            self._modules.clear()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def remove_orphaned_code_dirs() -> None:
    """Remove the code directories of sandboxes that died without stopping (killed, crashed)."""
    for path in Path(tempfile.gettempdir()).glob(f"{CODE_DIR_PREFIX}*-*"):
        pid = path.name[len(CODE_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _validate_payload(body: bytes) -> bytes:
    if not body.strip():
        return b"{}"
    try:
        json.loads(body)
    except ValueError as exc:
        raise InvokeError("InvalidRequestContentException",
                          f"Could not parse request body into json: {exc}", 400) from None
    return body
