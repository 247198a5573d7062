"""How a synthetic client's request reaches the endpoint its DNS answered.

A real client connects to the address its resolver gave for the global name and sends the global name
as TLS server name and Host; API Gateway picks the regional custom domain by that name. The two
transports reproduce that connection:

- `HttpsTransport` (AWS): TCP to `endpoint:443`, TLS with the global name as SNI, the certificate
  verified against the global name (the regional custom domain's ACM certificate is for it), Host the
  global name;
- `SandboxTransport`: plain HTTP to the sandbox, Host the global name and `X-Multiregion-Connect-To` the
  endpoint the client resolved, so the sandbox serves the request as that endpoint's regional custom
  domain would, whatever its own routing answers now (the client's cached answer is what counts).

One connection per request, no keep-alive: a pooled connection would keep a client on the old region
after its DNS answer moved, which is not the behaviour the drill measures. Never raises: a refused
connection, a TLS failure or a timeout is status 0 with the error text.

Both send `headers` with every request: what the API asks of its clients, e.g. `x-api-key` when its
methods require an API key (`api.auth: api-key`).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from multiregion.drill.traffic import Response

CONNECT_TO_HEADER = "X-Multiregion-Connect-To"
CLIENT_IP_HEADER = "X-Multiregion-Client-IP"
USER_AGENT = "multiregion-drill"
DEFAULT_TIMEOUT = 5.0
_NO_ANSWER = (OSError, http.client.HTTPException, ssl.SSLError, ValueError)


def _body(raw: bytes) -> dict[str, Any] | str:
    text = raw.decode("utf-8", errors="replace")
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: dict[str, Any] | None,
              headers: dict[str, str]) -> Response:
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers = {**headers, "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        conn.request(method, path, body=data, headers={"User-Agent": USER_AGENT, **headers})
        resp = conn.getresponse()
        raw = resp.read()
        latency = (time.perf_counter() - started) * 1000.0
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, _body(raw), latency)
    except _NO_ANSWER as exc:
        latency = (time.perf_counter() - started) * 1000.0
        return Response(0, {}, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, latency)
    finally:
        conn.close()


class SandboxTransport:
    """HTTP to the sandbox at `sandbox_url`, as a client that resolved the global name `host` to `endpoint`.

    `client_ip` (an address in the client's region, `multiregion.regions.client_ip`) is sent as well, so
    a sandbox that routes the global name by its own DNS answer, without honouring the Connect-To header,
    still serves the request from the client's location (then without the client's cached answer)."""

    def __init__(self, sandbox_url: str, host: str, timeout: float = DEFAULT_TIMEOUT, *, client_ip: str | None = None,
                 headers: Mapping[str, str] | None = None):
        parsed = urllib.parse.urlsplit(sandbox_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"the sandbox URL must be http://host:port, not {sandbox_url!r}")
        self.address, self.port = parsed.hostname, parsed.port or 80
        self.host, self.timeout, self.client_ip = host, timeout, client_ip
        self.headers = dict(headers or {})

    def send(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None) -> Response:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        headers = {**self.headers, "Host": self.host, CONNECT_TO_HEADER: endpoint}
        if self.client_ip:
            headers[CLIENT_IP_HEADER] = self.client_ip
        return _exchange(conn, method, path, body, headers)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one address with another name for SNI and certificate checks (curl's --connect-to)."""

    def __init__(self, address: str, port: int, server_name: str, timeout: float, context: ssl.SSLContext):
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name, self.tls_context = server_name, context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.server_name)
        except BaseException:
            sock.close()
            raise


class HttpsTransport:
    """HTTPS to the endpoint DNS answered (a regional domain name or an address), port 443, with the
    global name `host` as SNI, Host and the name the certificate must be valid for."""

    def __init__(self, host: str, timeout: float = DEFAULT_TIMEOUT, *, port: int = 443,
                 context: ssl.SSLContext | None = None, headers: Mapping[str, str] | None = None):
        self.host, self.timeout, self.port = host, timeout, port
        self.context = context or ssl.create_default_context()
        self.headers = dict(headers or {})

    def send(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None) -> Response:
        conn = _PinnedHTTPSConnection(endpoint, self.port, self.host, self.timeout, self.context)
        return _exchange(conn, method, path, body, {**self.headers, "Host": self.host})
