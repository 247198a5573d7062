"""The drill's traffic end to end, with real threads, against a local HTTP server that imitates two regions.

The server stands in for the sandbox: it serves each request as the region of the endpoint named in
`X-Multiregion-Connect-To` (what `SandboxTransport` sends), and one region can be made to fail. DNS is
a callable per client whose answer the test moves, as Route 53 would after detecting the failure.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from multiregion.drill.budgets import Budgets
from multiregion.drill.measures import acked_writes, conflicts, rpo
from multiregion.drill.report import build_report
from multiregion.drill.traffic import (
    Answer,
    CachingResolver,
    ConflictWriter,
    DnsWatcher,
    Ids,
    SyntheticClient,
    Traffic,
)
from multiregion.drill.transport import CLIENT_IP_HEADER, CONNECT_TO_HEADER, HttpsTransport, SandboxTransport
from multiregion.regions import client_ip

GLOBAL_NAME = "api.drill.example.com"
ENDPOINTS = {"eu-west-1": "d-eu1.execute-api.eu-west-1.amazonaws.com",
             "us-east-1": "d-us1.execute-api.us-east-1.amazonaws.com"}
REGION_OF = {v: k for k, v in ENDPOINTS.items()}


class TwoRegions:
    """Both regions' item API: one table per region, replicated at once, either region can fail."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in ENDPOINTS}
        self.failing: set[str] = set()
        self.hosts: set[tuple[str, str]] = set()
        self.api_keys: list[str | None] = []

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any], str | None]:
        region = REGION_OF.get(headers.get(CONNECT_TO_HEADER, ""))
        with self.lock:
            self.hosts.add((headers.get("Host", ""), headers.get(CLIENT_IP_HEADER, "")))
            self.api_keys.append(headers.get("x-api-key"))
            if region is None:
                return 404, {"message": "unknown endpoint"}, None
            if region in self.failing:
                return 500, {"message": "Internal server error"}, region
            if method == "POST" and path == "/item":
                item = {**json.loads(body), "region": region}
                for table in self.tables.values():  # replication, instantly
                    table[item["id"]] = item
                return 201, item, region
            item_id = urllib.parse.unquote(path.removeprefix("/item/"))
            found = self.tables[region].get(item_id)
            if found is None:
                return 404, {"error": "NotFound"}, region
            return 200, {**found, "served_by": region}, region

    def final(self) -> dict[str, dict[str, str | None]]:
        with self.lock:
            return {r: {i: item.get("drill_token") for i, item in t.items()} for r, t in self.tables.items()}


@pytest.fixture
def regions() -> Iterator[tuple[TwoRegions, str]]:
    app = TwoRegions()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, body, region = app.handle(self.command, self.path, self.headers, self.rfile.read(length))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if region:
                self.send_header("x-multiregion-region", region)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Route53:
    def __init__(self, home: str, ttl: float):
        self.region, self.ttl = home, ttl

    def __call__(self) -> Answer:
        return Answer(ENDPOINTS[self.region], self.region, self.ttl)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_traffic_of_two_regions_through_a_failure_of_one(regions: tuple[TwoRegions, str]) -> None:
    app, url = regions
    dns = {"eu": Route53("eu-west-1", ttl=0.3), "us": Route53("us-east-1", ttl=0.3)}
    ids = Ids("drill-e2e")
    clients = [SyntheticClient(name, dns[name].region, CachingResolver(dns[name]),
                               SandboxTransport(url, GLOBAL_NAME, timeout=2.0, client_ip=client_ip(dns[name].region)),
                               rate=40.0, ids=ids)
               for name in ("eu", "us")]
    conflict_ids = ids.conflict_ids(2)
    writer = ConflictWriter(clients, conflict_ids, rounds=2, interval=0.05)
    watcher = DnsWatcher(dns, interval=0.05)
    eu = clients[0]

    def failures() -> int:
        return sum(1 for r in eu.requests() if not r.ok)

    def ok_since(t: float, region: str, count: int) -> bool:
        return sum(1 for r in eu.requests() if r.t >= t and r.ok and r.served_region == region) >= count

    with Traffic(clients, writer, watcher) as traffic:
        wait_until(lambda: all(sum(r.ok for r in c.requests()) >= 5 for c in clients))
        inject = traffic.event("inject", "eu-west-1 answers 500")
        with app.lock:
            app.failing.add("eu-west-1")
        wait_until(lambda: failures() >= 3)
        traffic.event("detected")
        dns["eu"].region = "us-east-1"
        traffic.event("rerouted")
        wait_until(lambda: ok_since(inject.t, "us-east-1", 5))
        traffic.event("restore")
        with app.lock:
            app.failing.clear()
        dns["eu"].region = "eu-west-1"
        restored = traffic.event("restored")
        wait_until(lambda: ok_since(restored.t, "eu-west-1", 3))

    assert traffic.failures() == []
    requests, events = traffic.requests(), traffic.events()
    report = build_report(stack="items", regions=list(ENDPOINTS), fault="eu-west-1 answers 500",
                          requests=requests, resolutions=traffic.resolutions(), events=events,
                          budgets=Budgets(min_availability=100.0), client_regions={"eu": "eu-west-1",
                                                                                    "us": "us-east-1"},
                          rpo_final=rpo(acked_writes(requests), app.final(), list(ENDPOINTS)),
                          conflicts=conflicts([r for r in requests if r.kind == "conflict"], app.final(),
                                              list(ENDPOINTS)))
    m = report.measures.clients

    assert m["eu"].availability.percent is not None and m["eu"].availability.percent < 100.0
    assert m["us"].availability.percent == 100.0
    assert m["eu"].errors.get("500", 0) >= 3
    assert m["eu"].rto.note == "recovered" and m["eu"].rto.seconds is not None and m["eu"].rto.seconds > 0
    assert m["us"].rto.seconds == 0.0 and m["us"].rto.note == "never failed"
    assert m["eu"].dns.after == "us-east-1" and m["us"].dns.note == "answer did not move"
    assert report.rpo_final is not None and report.rpo_final.lost == 0
    assert report.conflicts is not None and report.conflicts.converged and report.conflicts.ids == 2
    assert [b.ok for b in report.budgets] == [False]  # eu's failures break a 100% availability budget
    # Every request named the global name, whatever endpoint it went to, and its client's location.
    assert app.hosts == {(GLOBAL_NAME, client_ip("eu-west-1")), (GLOBAL_NAME, client_ip("us-east-1"))}
    kinds = {r.kind for r in requests}
    assert kinds == {"write", "read", "conflict"}
    assert all(r.item_id and r.item_id.startswith("drill-e2e-") for r in requests)
    assert set(ids.issued()) >= {r.item_id for r in requests}
    sources = {r.source for r in traffic.resolutions()}
    assert sources == {"resolver", "watcher"}


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sandbox_transport_sends_the_apis_headers_but_keeps_its_own(regions: tuple[TwoRegions, str]) -> None:
    app, url = regions
    transport = SandboxTransport(url, GLOBAL_NAME, timeout=2.0, headers={"x-api-key": "k" * 20, "Host": "wrong"})
    assert transport.send(ENDPOINTS["eu-west-1"], "POST", "/item", {"id": "a"}).status == 201
    assert transport.send(ENDPOINTS["us-east-1"], "GET", "/item/a", None).status == 200
    assert app.api_keys == ["k" * 20] * 2
    assert app.hosts == {(GLOBAL_NAME, "")}


def test_sandbox_transport_gives_status_0_when_nothing_listens() -> None:
    transport = SandboxTransport(f"http://127.0.0.1:{closed_port()}", GLOBAL_NAME, timeout=1.0)
    response = transport.send(ENDPOINTS["eu-west-1"], "GET", "/item/x", None)
    assert response.status == 0 and "Refused" in str(response.body)


def test_https_transport_gives_status_0_on_a_refused_connection() -> None:
    response = HttpsTransport(GLOBAL_NAME, timeout=1.0, port=closed_port()).send("127.0.0.1", "GET", "/x", None)
    assert response.status == 0 and "Refused" in str(response.body)


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext, list[tuple[str | None, str, str | None]]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for the global name; it notes (SNI, Host, x-api-key)
    of each request. The client context trusts that certificate alone."""
    cert, key = self_signed(tmp_path, GLOBAL_NAME)
    seen: list[tuple[str | None, str, str | None]] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sni: dict[int, str | None] = {}
    server_ctx.sni_callback = lambda sock, name, ctx: sni.__setitem__(id(sock), name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((sni.get(id(self.connection)), self.headers.get("Host", ""), self.headers.get("x-api-key")))
            data = json.dumps({"served_by": "eu-west-1"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield server.server_address[1], client_ctx, seen
    server.shutdown()
    server.server_close()


def test_https_transport_sends_the_global_name_as_sni_and_host_and_verifies_it(
        tls_server: tuple[int, ssl.SSLContext, list[tuple[str | None, str, str | None]]]) -> None:
    port, ctx, seen = tls_server
    response = HttpsTransport(GLOBAL_NAME, timeout=2.0, port=port, context=ctx).send("127.0.0.1", "GET", "/x", None)
    assert response.status == 200 and response.body == {"served_by": "eu-west-1"}
    assert seen == [(GLOBAL_NAME, GLOBAL_NAME, None)]


def test_https_transport_sends_the_apis_headers_with_every_request(
        tls_server: tuple[int, ssl.SSLContext, list[tuple[str | None, str, str | None]]]) -> None:
    port, ctx, seen = tls_server
    transport = HttpsTransport(GLOBAL_NAME, timeout=2.0, port=port, context=ctx, headers={"x-api-key": "k" * 20})
    for _ in range(2):
        assert transport.send("127.0.0.1", "GET", "/x", None).status == 200
    assert seen == [(GLOBAL_NAME, GLOBAL_NAME, "k" * 20)] * 2


def test_https_transport_refuses_a_certificate_for_another_name(
        tls_server: tuple[int, ssl.SSLContext, list[tuple[str | None, str, str | None]]]) -> None:
    port, ctx, seen = tls_server
    response = HttpsTransport("other.example.com", timeout=2.0, port=port, context=ctx).send(
        "127.0.0.1", "GET", "/x", None)
    assert response.status == 0 and "certificate" in str(response.body).lower()
    assert seen == []
