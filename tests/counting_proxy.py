"""A counting HTTP proxy on 127.0.0.1: every AWS call a process makes through it, named as botocore names it.

Point AWS_ENDPOINT_URL (or an `endpoint:` in a config) at `proxy.url` and the calls reach the sandbox behind
it unchanged; each one is recorded with its service and region (from the SigV4 credential scope), its access
key, and its operation: `X-Amz-Target` for the JSON protocols, `Action=` for the query protocol, the HTTP
method and path matched against the service model's request URIs for the REST protocols. A write is what
`multiregion.aws.is_write` calls one, so "no write call" means the same here as in the tool's own counters,
but counted outside the process that made them.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session

from multiregion.aws import is_write

_SCOPE = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
# SigV4 signing names that differ from botocore's service names.
_SERVICE_OF_SIGNING_NAME = {"execute-api": "apigateway", "tagging": "resourcegroupstaggingapi"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class Request:
    service: str
    region: str
    access_key: str
    operation: str
    method: str
    path: str

    @property
    def write(self) -> bool:
        return is_write(self.operation)


@cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def rest_operation(service: str, method: str, target: str) -> str:
    """The operation of a REST call: the request URI template that matches with the most literal text."""
    url = urlsplit(target)
    path, query = unquote(url.path), parse_qs(url.query, keep_blank_values=True)
    model = _model(service)
    best: tuple[int, str] | None = None
    for name in model.operation_names:
        http_spec = model.operation_model(name).http
        if http_spec.get("method", "POST") != method:
            continue
        template, _, fixed = http_spec.get("requestUri", "/").partition("?")
        if any(k.split("=")[0] not in query for k in fixed.split("&") if k):
            continue
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join(".+" if p.endswith("+}") else "[^/]+" if p.startswith("{") else re.escape(p)
                          for p in parts if p)
        if not re.fullmatch(f"{pattern}/?", path):
            continue
        score = len(re.sub(r"\{[^}]+\}", "", template)) + 100 * len([k for k in fixed.split("&") if k])
        if best is None or score > best[0]:
            best = (score, name)
    return best[1] if best else f"{method} {path}"


def operation_of(service: str, method: str, target: str, headers: Any, body: bytes) -> str:
    amz_target = headers.get("X-Amz-Target")
    if amz_target:
        return str(amz_target).rpartition(".")[2]
    if "x-www-form-urlencoded" in str(headers.get("Content-Type", "")):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return rest_operation(service, method, target)


class CountingProxy:
    """Forwards every request to `upstream` and records it; `close()` when done."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy._record(self.command, self.path, self.headers, body)
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    self.send_response_only(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _record(self, method: str, target: str, headers: Any, body: bytes) -> None:
        scope = _SCOPE.search(str(headers.get("Authorization", "")))
        if scope is None:
            service, region, key = "(unsigned)", "", ""
            operation = f"{method} {urlsplit(target).path}"
        else:
            service = _SERVICE_OF_SIGNING_NAME.get(scope["service"], scope["service"])
            region, key = scope["region"], scope["key"]
            operation = operation_of(service, method, target, headers, body)
        with self._lock:
            self.requests.append(Request(service, region, key, operation, method, urlsplit(target).path))

    def seen(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def writes(self) -> list[Request]:
        return [r for r in self.seen() if r.write]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    proxy = CountingProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
