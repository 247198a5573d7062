"""The sandbox's WSGI layer: our extensions first, moto for everything they leave alone.

Each extension sees every request and either answers it, or lets it through (`None`). An extension that
only needs to adjust moto's answer calls `forward` and edits the result. moto's backends hold no locks, so
every request that reaches moto, and every background job that touches a backend, holds `sandbox.lock`.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.moto_compat import ACCOUNT_ID as ACCOUNT_ID  # the one account, moto's key

if TYPE_CHECKING:
    from multiregion.sandbox.server import Sandbox

_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


@dataclass
class SandboxRequest:
    """A request with what extensions ask of it parsed once: service, region, target, body."""

    raw: Request
    body: bytes
    service: str | None = None
    region: str | None = None
    target: str | None = None
    _json: Any = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> SandboxRequest:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        raw = Request(environ)
        req = cls(raw=raw, body=body, target=environ.get("HTTP_X_AMZ_TARGET"))
        match = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match:
            req.region, req.service = match.group(1), match.group(2)
        return req

    @property
    def host(self) -> str:
        return (self.raw.host or "").split(":")[0].lower()

    @property
    def path(self) -> str:
        return self.raw.path

    @property
    def method(self) -> str:
        return self.raw.method

    @property
    def operation(self) -> str | None:
        """The operation of a JSON-protocol request (X-Amz-Target `Prefix.Operation`)."""
        return self.target.split(".", 1)[1] if self.target and "." in self.target else None

    def json(self) -> Any:
        if self._json is None:
            self._json = json.loads(self.body or b"{}")
        return self._json


@dataclass
class Forwarded:
    """moto's answer to a request, for an extension to inspect or rewrite."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def response(self, body: bytes | None = None) -> Response:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        return Response(self.body if body is None else body, status=self.status, headers=headers)


class Extension:
    """What the sandbox adds to moto for one area. Subclasses override what they need."""

    # An extension whose reset waits on processes or sockets resets after sandbox.lock is released.
    reset_outside_lock = False

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def handle(self, req: SandboxRequest) -> Response | None:
        return None

    def start(self) -> None:
        """Start background work (a replicator, a prober)."""

    def stop(self) -> None:
        pass

    def reset(self) -> None:
        """Forget everything, as moto does on reset."""

    def forward(self, req: SandboxRequest) -> Forwarded:
        return self.sandbox.app.forward(req)


class BackgroundLoop:
    """A daemon thread calling `tick` every `interval()` seconds until stopped. A failing tick is logged and
    the loop goes on: one bad record or check must not stop the sandbox."""

    def __init__(self, name: str, tick: Callable[[], Any], interval: Callable[[], float]):
        self.name, self.tick, self.interval = name, tick, interval
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self.stopping.wait(self.interval()):
            try:
                self.tick()
            except Exception as exc:
                print(f"{self.name}: {type(exc).__name__}: {exc}", flush=True)


def json_response(data: Any, status: int = 200, content_type: str = "application/x-amz-json-1.0",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data, default=str), status=status, content_type=content_type,
                    headers=headers)


def aws_json_error(code: str, message: str, status: int = 400) -> Response:
    """An error in the JSON protocols (DynamoDB, Lambda's header style is added by the caller)."""
    return json_response({"__type": code, "message": message, "Message": message}, status=status,
                         headers={"x-amzn-ErrorType": code})


class SandboxApp:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.moto = moto_compat.server_app()
        self.extensions: list[Extension] = []
        self._local = threading.local()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = SandboxRequest.from_environ(environ)
        for ext in self.extensions:
            resp = ext.handle(req)
            if resp is not None:
                return resp(environ, start_response)
        with self.sandbox.lock:
            return self._moto_call(req.raw.environ, start_response)

    def _moto_call(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # Consume moto's iterable inside the lock: the body is built from backend state.
        return [b"".join(self.moto(environ, start_response))]

    def forward(self, req: SandboxRequest) -> Forwarded:
        environ = dict(req.raw.environ)
        environ["wsgi.input"] = io.BytesIO(req.body)
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = int(status.split()[0]), headers

        with self.sandbox.lock:
            body = b"".join(self.moto(environ, start_response))
        return Forwarded(captured["status"], captured["headers"], body)
