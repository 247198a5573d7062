"""The executor: performs a plan's operations, and remembers the values they produce.

`apply(node, change)` makes each of the change's calls, waits and builtins in order, with every `Ref` in
their parameters replaced by the value an earlier operation of the run produced. Outputs an operation
names (a JMESPath into AWS's answer) are stored under the node that ran it, which is the node a `Ref`
names. Nothing is decided here: the diff decided, the executor only carries out.

Retries are the plan's: a `Retry` on a call says which refusal passes by itself and for how long. AWS
throttling and transient network errors are retried below this, by botocore's standard retry mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import jmespath
from botocore.exceptions import ClientError

from multiregion.aws import ClientProvider, error_code, error_message
from multiregion.plan import (
    GONE,
    Blob,
    Builtin,
    Call,
    Change,
    Concat,
    JsonText,
    Operation,
    Ref,
    Retry,
    Wait,
    encode_json,
)

# Services whose API has one region for the whole account (their clients still need a region name).
GLOBAL_SERVICES = ("route53", "iam")
# Pauses between tries of a retried call: short first (most refusals pass in seconds), then steady.
RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0)


class ExecutionError(Exception):
    """An operation that did not succeed: what was tried and what AWS (or the wait) said."""

    def __init__(self, message: str, hint: str = "", cause: BaseException | None = None):
        super().__init__(message)
        self.hint, self.cause = hint, cause


class Progress:
    """A handle on one long wait, updated while it polls."""

    def update(self, status: str) -> None:  # pragma: no cover - interface
        pass


class WaitReporter(Protocol):
    """What the executor needs to show: a line per wait in progress, and notes on retries."""

    def waiting(self, what: str, region: str, typical: float | None = None) -> AbstractContextManager[Progress]: ...

    def info(self, message: str) -> None: ...


@dataclass
class BuiltinContext:
    """What a builtin procedure gets: the clients, the run's clock and sleep, and a way to wait."""

    clients: ClientProvider
    sleep: Callable[[float], None]
    poll: Callable[[Wait], dict[str, Any]]
    info: Callable[[str], None]


BuiltinFunction = Callable[..., Mapping[str, Any]]
_BUILTINS: dict[str, BuiltinFunction] = {}


def builtin(name: str) -> Callable[[BuiltinFunction], BuiltinFunction]:
    """Register a procedure under `name` (stages do this at import; the plan names it)."""

    def register(fn: BuiltinFunction) -> BuiltinFunction:
        if name in _BUILTINS and _BUILTINS[name] is not fn:
            raise ValueError(f"builtin {name!r} registered twice")
        _BUILTINS[name] = fn
        return fn

    return register


def registered_builtins() -> dict[str, BuiltinFunction]:
    return dict(_BUILTINS)


@dataclass
class _Once:
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None


class Executor:
    def __init__(self, clients: ClientProvider, reporter: WaitReporter, sleep: Callable[[float], None] = time.sleep,
                 poll_interval: float = 1.0, max_wait: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.clients, self.reporter, self.sleep = clients, reporter, sleep
        self.poll_interval, self.max_wait, self.clock = poll_interval, max_wait, clock
        self._values: dict[tuple[str, str], Any] = {}
        self._once: dict[str, _Once] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ values

    def store(self, node: str, name: str, value: Any) -> None:
        with self._lock:
            self._values[(node, name)] = value

    def value(self, ref: Ref) -> Any:
        with self._lock:
            if (ref.node, ref.name) not in self._values:
                raise ExecutionError(f"{ref.placeholder} is not known: no earlier operation of {ref.node} "
                                     f"produced {ref.name}", "this is a bug in multiregion; please report it")
            return self._values[(ref.node, ref.name)]

    def resolve(self, value: Any) -> Any:
        """A parameter with every Ref replaced, JSON text encoded and blobs as bytes."""
        if isinstance(value, Ref):
            return self.value(value)
        if isinstance(value, JsonText):
            return encode_json(self.resolve(value.value))
        if isinstance(value, Concat):
            return "".join(str(self.resolve(p)) for p in value.parts)
        if isinstance(value, Blob):
            return value.data
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, tuple):
            return [self.resolve(v) for v in value]
        return value

    # ------------------------------------------------------------------ operations

    def apply(self, node: str, change: Change) -> None:
        for op in change.operations:
            self.run(node, op)

    def run(self, node: str, op: Operation) -> dict[str, Any]:
        if isinstance(op, Call):
            answer = self._call_once(op) if op.once else self.call(op)
        elif isinstance(op, Wait):
            answer = self.wait(op, node)
        else:
            answer = self._builtin(op)
        self._keep_outputs(node, op, answer)
        return answer

    def _keep_outputs(self, node: str, op: Operation, answer: dict[str, Any]) -> None:
        for name, path in op.outputs.items():
            value = answer.get(path) if isinstance(op, Builtin) else jmespath.search(path, answer)
            if value is None:
                raise ExecutionError(f"{op.describe()} answered without {path}", "this is a bug in multiregion "
                                     "or an AWS answer it does not expect; please report it")
            self.store(node, name, value)

    def call(self, op: Call) -> dict[str, Any]:
        params = self.resolve(op.params)
        method = getattr(self.clients(op.service, op.region), op.method)
        started = self.clock()
        tries = 0
        while True:
            try:
                return dict(method(**params))
            except ClientError as exc:
                if error_code(exc) in op.done_if:
                    return {}
                retry = _matching(op.retry, exc)
                if retry is None or self.clock() - started >= retry.budget:
                    raise
                pause = RETRY_PAUSES[min(tries, len(RETRY_PAUSES) - 1)]
                tries += 1
                self.reporter.info(f"[{op.region}] {op.operation} refused ({error_code(exc)}: {retry.why}); "
                                   f"trying again in {pause:g} s")
                self.sleep(pause)

    def _call_once(self, op: Call) -> dict[str, Any]:
        while True:
            with self._lock:
                entry = self._once.get(op.once)
                first = entry is None
                if entry is None:
                    entry = self._once[op.once] = _Once()
            if not first:
                entry.done.wait()
                if entry.answer is not None:
                    return entry.answer
                continue  # the first try failed: this node tries itself
            try:
                entry.answer = self.call(op)
                return entry.answer
            except BaseException:
                with self._lock:
                    del self._once[op.once]
                raise
            finally:
                entry.done.set()

    def wait(self, op: Wait, node: str = "") -> dict[str, Any]:
        """Poll until ready. `node` ("health-checks/eu-west-1") names the region the progress line shows: the
        one the wait is for, where the API it polls may be another's (Route 53's, the primary's)."""
        timeout = op.timeout if self.max_wait is None else min(op.timeout, self.max_wait)
        deadline = self.clock() + timeout
        params = self.resolve(op.params)
        method = getattr(self.clients(op.service, op.region), op.method)
        status: Any = None
        # Short first pauses (most waits end within seconds), growing to the steady poll interval.
        pause = self.poll_interval / 10
        steady = steady_pause(self.poll_interval, op.typical_seconds if op.duration else None)
        shown = _shown_region(node, op)
        with self.reporter.waiting(op.what, shown, op.typical_seconds or None) as progress:
            while True:
                try:
                    answer = dict(method(**params))
                    status = jmespath.search(op.status, answer)
                except ClientError as exc:
                    if error_code(exc) not in op.gone:
                        raise
                    answer, status = {}, GONE
                progress.update(str(status))
                if status in op.ready:
                    return answer
                if status in op.failed:
                    reason = jmespath.search(op.reason, answer) if op.reason else None
                    raise ExecutionError(f"{op.what}: {status}" + (f" ({reason})" if reason else "") +
                                         f" [{_named(params)}]", op.hint)
                if self.clock() > deadline:
                    raise ExecutionError(f"gave up waiting for {op.what} after {timeout:g} s "
                                         f"(last status: {status}) [{_named(params)}]", op.hint)
                self.sleep(pause)
                pause = min(steady, pause * 2)

    def _builtin(self, op: Builtin) -> dict[str, Any]:
        try:
            fn = _BUILTINS[op.name]
        except KeyError:
            raise ExecutionError(f"no builtin {op.name!r}", "this is a bug in multiregion; please report it") from None
        ctx = BuiltinContext(self.clients, self.sleep, self.wait, self.reporter.info)
        return dict(fn(ctx, op.region, **self.resolve(op.params)))


def _shown_region(node: str, op: Wait) -> str:
    """The region a wait's progress line names: the node's (a region's health check polls Route 53 in
    us-east-1, yet waits for that region); a global node's wait names the API's region, or "global" for
    a global service's (a Route 53 policy record is no region's)."""
    region = node.partition("/")[2]
    if region and region != "global":
        return region
    return "global" if op.service in GLOBAL_SERVICES else op.region


def steady_pause(poll_interval: float, typical: float | None) -> float:
    """The longest pause between two polls of a wait. A wait AWS typically ends in a couple of seconds (a
    function leaving Pending) is polled at a tenth of that, not every `poll_interval` (5 s on AWS), which
    would add up to a pause to each of them; never below the first pause."""
    if typical is None:
        return poll_interval
    return min(poll_interval, max(poll_interval / 10, typical / 10))


def _named(params: Mapping[str, Any]) -> str:
    """What a polled call was about (its identifying parameters), for error messages."""
    return ", ".join(f"{k}={v}" for k, v in params.items() if isinstance(v, (str, int)))


def _matching(retries: tuple[Retry, ...], exc: ClientError) -> Retry | None:
    code, message = error_code(exc), error_message(exc)
    for retry in retries:
        if code in retry.codes and retry.message.lower() in message.lower():
            return retry
    return None
