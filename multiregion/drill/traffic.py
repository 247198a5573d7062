"""Synthetic clients: continuous writes and reads through the global name, each behind a caching resolver.

A client in a region asks its resolver for the global name before every request, as an application does
through its stub resolver; the resolver asks upstream (Route 53's answer for that client's location, a
callable the caller injects) only when the answer it holds has expired, so a client keeps going to the
old region for up to one TTL after Route 53 moved its answer. That delay is what the drill's TTL effect
measures.

Every lookup is recorded as a `Resolution`, every request as a `Request`. Clients run in their own
threads at a steady rate; a `ConflictWriter` writes the same ids from clients in two regions at once; a
`DnsWatcher` asks for each client's answer without caching to see when Route 53 itself moved it;
`Traffic` starts, stops and collects them all.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from multiregion.drill.records import RESOLVER, WATCHER, Event, Request, Resolution

Clock = Callable[[], float]
Sleep = Callable[[float], Any]

# The item API's fields (multiregion/handlers): the region a write landed in, the region a read was
# served by; the sandbox also names the serving region of every answer in a header.
WRITE_REGION_FIELD, READ_REGION_FIELD = "region", "served_by"
REGION_HEADER = "x-multiregion-region"
TOKEN_FIELD = "drill_token"
ERROR_TEXT_CHARS = 200


# ---------------------------------------------------------------------------------------------- DNS


@dataclass(frozen=True)
class Answer:
    """What Route 53 answers a client: the endpoint (CNAME target or address, None for no answer), the
    region it maps to, and the record's TTL in seconds of the drill's clock (on the sandbox the caller
    divides the record TTL by the sandbox's time scale)."""

    endpoint: str | None
    region: str | None
    ttl: float


NO_ANSWER = Answer(None, None, 0.0)


class CachingResolver:
    """A client's recursive resolver, reduced to what matters for failover: one cached answer, kept for
    its TTL, asked again only once it expired.

    A failed lookup (`resolve` raises: SERVFAIL, a timeout) hands out no answer and is asked again on the
    next lookup. Real resolvers may cache a failure (RFC 2308 section 7.1: at most five minutes; BIND's
    `servfail-ttl` defaults to 1 s), which this simple version does not, so a client retries as soon as
    its next request is due. With `serve_stale`, a failed refresh hands out the expired answer instead,
    as resolvers with RFC 8767 serve-stale do (BIND `stale-answer-enable`, Unbound `serve-expired`).

    One resolver may be shared by several clients (clients behind one ISP resolver share its cache);
    lookups are serialised, as a resolver coalesces identical queries."""

    def __init__(self, resolve: Callable[[], Answer], clock: Clock = time.monotonic, *, serve_stale: bool = False):
        self._resolve, self._clock, self.serve_stale = resolve, clock, serve_stale
        self._lock = threading.Lock()
        self._cached: Answer | None = None
        self._expires = -math.inf
        self._resolutions: list[Resolution] = []

    def lookup(self, client: str) -> Answer:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now < self._expires:
                return self._hand_out(now, client, self._cached, cached=True)
            try:
                answer = self._resolve()
            except Exception as exc:  # any failure of the upstream lookup is a failed lookup for the client
                return self._failed(now, client, f"{type(exc).__name__}: {exc}")
            self._cached, self._expires = answer, now + max(0.0, answer.ttl)
            return self._hand_out(now, client, answer, cached=False)

    def _failed(self, now: float, client: str, error: str) -> Answer:
        if self.serve_stale and self._cached is not None:
            return self._hand_out(now, client, self._cached, cached=True, error=error)
        self._resolutions.append(Resolution(now, client, None, None, cached=False, error=error))
        return NO_ANSWER

    def _hand_out(self, now: float, client: str, answer: Answer, cached: bool, error: str | None = None) -> Answer:
        self._resolutions.append(Resolution(now, client, answer.endpoint, answer.region, cached, RESOLVER, error))
        return answer

    def resolutions(self) -> list[Resolution]:
        with self._lock:
            return list(self._resolutions)


# --------------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    """An HTTP answer: `status` 0 means none arrived (the reason is then the text `body`); header names
    are lower case."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | str
    latency_ms: float


class Transport(Protocol):
    def send(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None) -> Response:
        """Send to the endpoint DNS answered, as the global name. Never raises: no answer is status 0."""
        ...


class Routes(Protocol):
    """The app's routes as the drill uses them (the app's routes are configurable)."""

    def write(self, item_id: str, token: str) -> tuple[str, str, dict[str, Any] | None]: ...

    def read(self, item_id: str) -> tuple[str, str]: ...

    def served_region(self, response: Response) -> str | None: ...


@dataclass(frozen=True)
class ItemRoutes:
    """The built-in item API: `POST /item` answers 201 with the stored item (its `region`), `GET /item/{id}`
    answers 200 with the item and `served_by`. The global name's custom domain maps the empty base path to
    the API's stage, so paths carry no stage."""

    collection: str = "/item"

    def write(self, item_id: str, token: str) -> tuple[str, str, dict[str, Any] | None]:
        return "POST", self.collection, {"id": item_id, TOKEN_FIELD: token, "source": "multiregion drill"}

    def read(self, item_id: str) -> tuple[str, str]:
        return "GET", f"{self.collection}/{urllib.parse.quote(item_id, safe='')}"

    def served_region(self, response: Response) -> str | None:
        body = response.body if isinstance(response.body, dict) else {}
        for name in (READ_REGION_FIELD, WRITE_REGION_FIELD):
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
        # An API Gateway error answer carries no body field; the sandbox names the region in a header.
        return response.headers.get(REGION_HEADER) or None


def error_text(response: Response) -> str | None:
    """A short reason for a non-2xx answer, from the body's `message`/`error`, else its text."""
    if 200 <= response.status < 300:
        return None
    body = response.body
    if isinstance(body, dict):
        reason = body.get("message") or body.get("error") or body.get("Message") or ""
        text = str(reason) if reason else ""
    else:
        text = str(body)
    text = " ".join(text.split())[:ERROR_TEXT_CHARS]
    if response.status == 0:
        return text or "no answer"
    return f"HTTP {response.status}" + (f": {text}" if text else "")


# ---------------------------------------------------------------------------------------------- ids


class Ids:
    """Item ids `{prefix}-{client}-{n}` (n from 1 per client) and unique write tokens. Every id handed out
    is remembered, so the caller can delete the drill's items afterwards."""

    def __init__(self, prefix: str, token: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.prefix, self._token = prefix, token
        self._lock = threading.Lock()
        self._counters: dict[str, Iterator[int]] = {}
        self._issued: list[str] = []

    def item(self, client: str) -> str:
        with self._lock:
            counter = self._counters.setdefault(client, itertools.count(1))
            item_id = f"{self.prefix}-{client}-{next(counter)}"
            self._issued.append(item_id)
            return item_id

    def conflict_ids(self, count: int) -> list[str]:
        ids = [f"{self.prefix}-conflict-{i}" for i in range(1, count + 1)]
        with self._lock:
            self._issued.extend(i for i in ids if i not in self._issued)
        return ids

    def token(self) -> str:
        return self._token()

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)


# ------------------------------------------------------------------------------------------ threads


class _Worker:
    """A loop in its own daemon thread: `run()` until stopped. An exception that ends the loop is kept in
    `failure` (a dead client must not pass for a quiet one). The default sleep waits on the stop event, so
    stop() wakes a sleeping loop at once."""

    name = "worker"

    def __init__(self, sleep: Sleep | None):
        self._stop = threading.Event()
        self._sleep: Sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> _Worker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_thread, name=f"drill-{self.name}", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_thread(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.failure = exc


# ------------------------------------------------------------------------------------------ clients


class SyntheticClient(_Worker):
    """One client in `region`, sending `rate` requests per second through its resolver and transport.

    The schedule is steady: request n is due at start + n/rate. A request that takes longer than the
    period does not pile up: the slots it overran are dropped (counted in `missed_slots`) and the client
    waits for the next slot. Writes and reads alternate deterministically in the proportion `mix` (the
    share of writes; 0.5 gives write, read, write, read); a read is of the latest item this client wrote
    and had acknowledged, so it asks for something that must exist; with nothing acknowledged yet, the
    client writes. Every request is recorded, failures included."""

    def __init__(self, name: str, region: str, resolver: CachingResolver, transport: Transport, rate: float, *,
                 ids: Ids, mix: float = 0.5, clock: Clock = time.monotonic, sleep: Sleep | None = None,
                 routes: Routes | None = None):
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if not 0 < mix <= 1:
            raise ValueError(f"mix is the share of writes, in (0, 1], not {mix}")
        super().__init__(sleep)
        self.name, self.region, self.resolver, self.transport = name, region, resolver, transport
        self.rate, self.period, self.mix, self.ids = rate, 1.0 / rate, mix, ids
        self.clock = clock
        self.routes: Routes = routes or ItemRoutes()
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._acked: list[tuple[str, str]] = []
        self._credit = 1.0 - mix  # so that the first request is a write
        self.missed_slots = 0

    # ---------------------------------------------------------------- running

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Send requests on the steady schedule until `until()` (default: stop() was called)."""
        done = until or self._stop.is_set
        start, slot = self.clock(), 0
        while not done():
            due = start + slot * self.period
            now = self.clock()
            if now < due:
                self._sleep(due - now)
                continue
            self.request_once()
            elapsed_slots = math.floor((self.clock() - start) / self.period + 1e-9)
            next_slot = max(slot + 1, elapsed_slots + 1)
            self.missed_slots += next_slot - slot - 1
            slot = next_slot

    def request_once(self) -> Request:
        """The next request of the mix: a write, or a read of the latest acknowledged write."""
        self._credit += self.mix
        latest = self.latest_acked()
        if self._credit >= 1.0 - 1e-9 or latest is None:
            self._credit = max(0.0, self._credit - 1.0)
            return self.write()
        return self.read(latest[0])

    # ---------------------------------------------------------------- requests

    def write(self, item_id: str | None = None, kind: str = "write") -> Request:
        item_id = item_id or self.ids.item(self.name)
        token = self.ids.token()
        method, path, body = self.routes.write(item_id, token)
        request = self._send(kind, method, path, body, item_id, token)
        if request.ok and kind == "write":
            with self._lock:
                self._acked.append((item_id, token))
        return request

    def read(self, item_id: str) -> Request:
        method, path = self.routes.read(item_id)
        return self._send("read", method, path, None, item_id, None)

    def _send(self, kind: str, method: str, path: str, body: dict[str, Any] | None, item_id: str,
              token: str | None) -> Request:
        answer = self.resolver.lookup(self.name)
        sent = self.clock()
        if answer.endpoint is None:
            request = Request(sent, self.name, kind, answer.region, None, 0, 0.0, item_id, token,
                              "DNS: no answer for the global name")
        else:
            response = self._transport_send(answer.endpoint, method, path, body)
            # On the drill's clock, not the transport's own figure: `done` must compare with every other record.
            latency_ms = (self.clock() - sent) * 1000.0
            served = self.routes.served_region(response) if response.status else None
            request = Request(sent, self.name, kind, answer.region, served, response.status, latency_ms, item_id,
                              token, error_text(response))
        with self._lock:
            self._requests.append(request)
        return request

    def _transport_send(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None) -> Response:
        try:
            return self.transport.send(endpoint, method, path, body)
        except Exception as exc:  # a transport must not raise; one that does still gives a recorded failure
            return Response(0, {}, f"{type(exc).__name__}: {exc}", 0.0)

    # ---------------------------------------------------------------- what it recorded

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def acked(self) -> list[tuple[str, str]]:
        """(item id, token) of this client's acknowledged steady writes, in the order they were sent."""
        with self._lock:
            return list(self._acked)

    def latest_acked(self) -> tuple[str, str] | None:
        with self._lock:
            return self._acked[-1] if self._acked else None


# ---------------------------------------------------------------------------------------- conflicts


class ConflictWriter(_Worker):
    """Writes the same few ids from clients in different regions at (nearly) the same moment, `rounds`
    times, `interval` seconds apart. Each write goes through its client's resolver and transport and is
    recorded by that client as a `kind="conflict"` request with its own token. A barrier releases the
    clients together for each id, so the writes overlap within a thread wake-up; DynamoDB then keeps one
    of them per item (last writer wins) and the measures check that every region kept the same one."""

    def __init__(self, clients: Sequence[SyntheticClient], ids: Sequence[str], rounds: int = 3,
                 interval: float = 1.0, *, clock: Clock = time.monotonic, sleep: Sleep | None = None,
                 barrier_timeout: float = 30.0):
        if len(clients) < 2 or len({c.region for c in clients}) < 2:
            raise ValueError("conflicting writes need clients in at least two different regions")
        if not ids:
            raise ValueError("conflicting writes need at least one item id")
        super().__init__(sleep)
        self.name = "conflicts"
        self.clients, self.ids, self.rounds, self.interval = list(clients), list(ids), rounds, interval
        self.clock, self.barrier_timeout = clock, barrier_timeout
        self.rounds_done = 0

    def run(self) -> None:
        for number in range(self.rounds):
            if self._stop.is_set():
                return
            if number:
                self._sleep(self.interval)
                if self._stop.is_set():
                    return
            self.write_round()

    def write_round(self) -> None:
        """One round: for each id, every client writes it, released together by a barrier."""
        barrier = threading.Barrier(len(self.clients), timeout=self.barrier_timeout)
        threads = [threading.Thread(target=self._write_all, args=(client, barrier), daemon=True,
                                    name=f"drill-conflict-{client.name}") for client in self.clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.rounds_done += 1

    def _write_all(self, client: SyntheticClient, barrier: threading.Barrier) -> None:
        for item_id in self.ids:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return  # another writer is stuck: the round ends without pretending to be simultaneous
            client.write(item_id, kind="conflict")


# ------------------------------------------------------------------------------------- DNS watcher


class DnsWatcher(_Worker):
    """Asks Route 53 for each client's answer every `interval` seconds, without caching, and records the
    answers (`source="watcher"`, never cached). A client's own resolver asks only when its TTL expired, so
    its lookups show when the client learned of a move; the watcher's show when Route 53 made it.

    On AWS every lookup is a `TestDNSAnswer` call, and Route 53's API is rate-limited per account (a token
    bucket: ten requests per second sustained for most actions since its 2025 update, five before):
    keep len(clients) / interval well below that, together with the drill's own polling."""

    def __init__(self, resolves: Mapping[str, Callable[[], Answer]], interval: float = 1.0, *,
                 clock: Clock = time.monotonic, sleep: Sleep | None = None):
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        super().__init__(sleep)
        self.name = "dns-watcher"
        self.resolves, self.interval, self.clock = dict(resolves), interval, clock
        self._lock = threading.Lock()
        self._resolutions: list[Resolution] = []

    def run(self, until: Callable[[], bool] | None = None) -> None:
        done = until or self._stop.is_set
        while not done():
            self.watch_once()
            self._sleep(self.interval)

    def watch_once(self) -> None:
        for client, resolve in self.resolves.items():
            now = self.clock()
            try:
                answer = resolve()
                record = Resolution(now, client, answer.endpoint, answer.region, False, WATCHER)
            except Exception as exc:
                record = Resolution(now, client, None, None, False, WATCHER, f"{type(exc).__name__}: {exc}")
            with self._lock:
                self._resolutions.append(record)

    def resolutions(self) -> list[Resolution]:
        with self._lock:
            return list(self._resolutions)


# ------------------------------------------------------------------------------------------ traffic


@dataclass
class Traffic:
    """All of a drill's traffic: start it before the fault, stop it after the restore, then collect.

    `event()` stamps a drill marker on the same clock as the records. Collecting is thread-safe and may
    happen while traffic runs (for a live view)."""

    clients: Sequence[SyntheticClient]
    conflict_writer: ConflictWriter | None = None
    watcher: DnsWatcher | None = None
    clock: Clock | None = None
    _events: list[Event] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError(f"client names must be unique: {', '.join(names)}")
        if self.clock is None:
            self.clock = self.clients[0].clock if self.clients else time.monotonic

    def start(self) -> Traffic:
        if self.watcher is not None:
            self.watcher.start()
        for client in self.clients:
            client.start()
        if self.conflict_writer is not None:
            self.conflict_writer.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every thread and wait for each (a request in flight finishes within its transport timeout)."""
        # Every thread is told first, then each is waited for: the stops overlap instead of adding up.
        for part in self._workers():
            part.request_stop()
        for part in self._workers():
            part.stop(timeout)

    def _workers(self) -> list[_Worker]:
        parts: list[_Worker | None] = [*self.clients, self.conflict_writer, self.watcher]
        return [p for p in parts if p is not None]

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def event(self, name: str, detail: str = "") -> Event:
        assert self.clock is not None
        marker = Event(self.clock(), name, detail)
        with self._lock:
            self._events.append(marker)
        return marker

    def events(self) -> list[Event]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.t)

    def requests(self) -> list[Request]:
        return sorted((r for c in self.clients for r in c.requests()), key=lambda r: (r.t, r.client))

    def resolutions(self) -> list[Resolution]:
        resolvers = {id(c.resolver): c.resolver for c in self.clients}
        found = [r for resolver in resolvers.values() for r in resolver.resolutions()]
        if self.watcher is not None:
            found.extend(self.watcher.resolutions())
        return sorted(found, key=lambda r: (r.t, r.client))

    def failures(self) -> list[str]:
        """Threads that died of an exception (a bug in an injected callable): the drill must say so."""
        return [f"{p.name}: {type(p.failure).__name__}: {p.failure}" for p in self._workers() if p.failure is not None]
