"""A synthetic client against a fake item API on a driven clock: schedule, mix, reads and records."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from multiregion.drill.traffic import (
    Answer,
    CachingResolver,
    ConflictWriter,
    Ids,
    ItemRoutes,
    Response,
    SyntheticClient,
    Traffic,
)

ENDPOINT = Answer("d-eu.execute-api.eu-west-1.amazonaws.com", "eu-west-1", 60.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeApi:
    """The item API in one region, taking `latency(method)` seconds of the driven clock per request."""

    def __init__(self, clock: Clock, region: str = "eu-west-1", latency: Callable[[str], float] = lambda m: 0.01,
                 refuse_write: Callable[[int], bool] = lambda n: False):
        self.clock, self.region, self.latency, self.refuse_write = clock, region, latency, refuse_write
        self.items: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[float, str, str]] = []
        self.writes = 0

    def send(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None) -> Response:
        self.sent.append((self.clock(), method, path))
        self.clock.advance(self.latency(method))
        if method == "POST":
            assert body is not None
            self.writes += 1
            if self.refuse_write(self.writes):
                return Response(500, {"x-multiregion-region": self.region}, {"message": "Internal server error"}, 1)
            self.items[body["id"]] = body
            return Response(201, {}, {**body, "region": self.region}, 1.0)
        item_id = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        if item_id not in self.items:
            return Response(404, {}, {"error": "NotFound"}, 1.0)
        return Response(200, {}, {**self.items[item_id], "served_by": self.region}, 1.0)


def client_on(clock: Clock, api: FakeApi, rate: float = 10.0, mix: float = 0.5,
              resolve: Callable[[], Answer] = lambda: ENDPOINT, name: str = "eu") -> SyntheticClient:
    return SyntheticClient(name, "eu-west-1", CachingResolver(resolve, clock), api, rate, ids=Ids("drill-x"),
                           mix=mix, clock=clock, sleep=clock.advance)


def test_requests_follow_a_steady_schedule_at_the_rate() -> None:
    clock = Clock()
    api = FakeApi(clock)
    client = client_on(clock, api, rate=10.0)

    client.run(until=lambda: clock.t >= 2.0)

    sent = [r.t for r in client.requests()]
    assert len(sent) == 20
    assert sent == pytest.approx([i * 0.1 for i in range(20)])
    assert client.missed_slots == 0


def test_a_slow_request_drops_the_slots_it_overran_instead_of_bursting() -> None:
    clock = Clock()
    slow_once = iter([0.35])
    api = FakeApi(clock, latency=lambda m: next(slow_once, 0.01))
    client = client_on(clock, api, rate=10.0)

    client.run(until=lambda: clock.t >= 1.0)

    sent = [r.t for r in client.requests()]
    assert sent[:2] == pytest.approx([0.0, 0.4])  # slots 0.1, 0.2, 0.3 dropped; the next one waits for 0.4
    assert client.missed_slots == 3
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.1 - 1e-9  # never two requests closer than one period
    assert len(sent) == 7  # 0.0, then 0.4 .. 0.9


def test_writes_and_reads_alternate_and_reads_ask_for_the_latest_acknowledged_write() -> None:
    clock = Clock()
    api = FakeApi(clock, refuse_write=lambda n: n % 3 == 0)  # every third write fails
    client = client_on(clock, api, rate=10.0)

    client.run(until=lambda: clock.t >= 3.0)

    requests = client.requests()
    assert [r.kind for r in requests[:6]] == ["write", "read"] * 3
    acked_so_far: list[str] = []
    for request in requests:
        if request.kind == "write" and request.ok:
            acked_so_far.append(request.item_id or "")
        if request.kind == "read":
            assert request.item_id == acked_so_far[-1]
            assert request.status == 200 and request.served_region == "eu-west-1"
    assert [i for i, _ in client.acked()] == acked_so_far
    failed = [r for r in requests if r.kind == "write" and not r.ok]
    assert failed and all(r.status == 500 and r.served_region == "eu-west-1" for r in failed)
    assert all(r.error == "HTTP 500: Internal server error" for r in failed)


def test_the_mix_sets_the_share_of_writes() -> None:
    clock = Clock()
    client = client_on(clock, FakeApi(clock), rate=10.0, mix=0.25)

    client.run(until=lambda: clock.t >= 4.0)

    kinds = [r.kind for r in client.requests()]
    assert kinds[:8] == ["write", "read", "read", "read"] * 2
    assert kinds.count("write") * 4 == len(kinds)


def test_without_an_acknowledged_write_the_client_writes_instead_of_reading() -> None:
    clock = Clock()
    client = client_on(clock, FakeApi(clock, refuse_write=lambda n: True), rate=10.0)

    client.run(until=lambda: clock.t >= 1.0)

    assert {r.kind for r in client.requests()} == {"write"}


def test_every_request_is_recorded_with_ids_tokens_and_dns_failures() -> None:
    clock = Clock()
    api = FakeApi(clock)
    answers: Iterator[Answer | Exception] = iter([ENDPOINT, RuntimeError("SERVFAIL")])

    def resolve() -> Answer:
        answer = next(answers, ENDPOINT)
        if isinstance(answer, Exception):
            raise answer
        return Answer(answer.endpoint, answer.region, 0.0)

    client = client_on(clock, api, resolve=resolve)
    client.run(until=lambda: clock.t >= 1.0)

    requests = client.requests()
    assert len(requests) == 10
    assert len(api.sent) == 9  # the request whose lookup failed was never sent...
    no_dns = [r for r in requests if r.status == 0]
    assert len(no_dns) == 1 and "DNS" in (no_dns[0].error or "")  # ...but it is recorded
    writes = [r for r in requests if r.kind == "write"]
    assert [w.item_id for w in writes if w.ok][:2] == ["drill-x-eu-1", "drill-x-eu-2"]
    tokens = [w.token for w in writes]
    assert all(tokens) and len(set(tokens)) == len(tokens)
    assert all(r.token is None for r in requests if r.kind == "read")


def test_a_transport_that_raises_still_gives_a_recorded_failure() -> None:
    clock = Clock()

    class Broken:
        def send(self, *args: Any) -> Response:
            raise ConnectionResetError("reset by peer")

    client = SyntheticClient("eu", "eu-west-1", CachingResolver(lambda: ENDPOINT, clock), Broken(), 10.0,
                             ids=Ids("p"), clock=clock, sleep=clock.advance)
    request = client.request_once()
    assert request.status == 0 and "reset by peer" in (request.error or "")


def test_the_item_routes_read_the_serving_region_from_the_body_then_the_header() -> None:
    routes = ItemRoutes()
    assert routes.write("a/b", "tok") == ("POST", "/item", {"id": "a/b", "drill_token": "tok",
                                                            "source": "multiregion drill"})
    assert routes.read("a/b") == ("GET", "/item/a%2Fb")
    assert routes.served_region(Response(201, {}, {"region": "eu-west-1"}, 1)) == "eu-west-1"
    assert routes.served_region(Response(200, {}, {"served_by": "us-east-1", "region": "eu-west-1"}, 1)) == "us-east-1"
    assert routes.served_region(Response(500, {"x-multiregion-region": "eu-west-1"}, "oops", 1)) == "eu-west-1"
    assert routes.served_region(Response(500, {}, {"message": "Internal server error"}, 1)) is None


class TimedApi:
    """A thread-safe fake that keeps when each write arrived (real clock)."""

    def __init__(self, region: str):
        self.region, self.lock = region, threading.Lock()
        self.arrivals: list[tuple[float, Any]] = []

    def send(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None) -> Response:
        with self.lock:
            self.arrivals.append((time.monotonic(), (body or {}).get("id")))
        return Response(201, {}, {**(body or {}), "region": self.region}, 1.0)


def fixed(answer: Answer) -> Callable[[], Answer]:
    return lambda: answer


def test_conflicting_writes_reach_both_regions_together_for_every_id_and_round() -> None:
    apis = {"eu-west-1": TimedApi("eu-west-1"), "us-east-1": TimedApi("us-east-1")}
    clients = [SyntheticClient(f"c-{r}", r, CachingResolver(fixed(Answer(f"d-{r}", r, 60.0))), apis[r], 1.0,
                               ids=Ids("drill-x")) for r in apis]
    writer = ConflictWriter(clients, ["drill-x-conflict-1", "drill-x-conflict-2"], rounds=3, interval=0.01)

    writer.run()

    assert writer.rounds_done == 3
    for client in clients:
        conflict = [r for r in client.requests() if r.kind == "conflict"]
        assert [r.item_id for r in conflict] == ["drill-x-conflict-1", "drill-x-conflict-2"] * 3
        assert all(r.ok and r.served_region == client.region for r in conflict)
        assert client.acked() == []  # conflict writes are never read back as the client's own items
    eu, us = (apis[r].arrivals for r in ("eu-west-1", "us-east-1"))
    for (t_eu, id_eu), (t_us, id_us) in zip(eu, us, strict=True):
        assert id_eu == id_us
        assert abs(t_eu - t_us) < 0.05  # released together by the barrier
    tokens = [r.token for c in clients for r in c.requests()]
    assert len(set(tokens)) == len(tokens)


def test_conflicting_writes_need_two_regions() -> None:
    clock = Clock()
    same = [client_on(clock, FakeApi(clock), name=n) for n in ("a", "b")]
    with pytest.raises(ValueError, match="two different regions"):
        ConflictWriter(same, ["x"])


def test_traffic_refuses_two_clients_of_one_name() -> None:
    clock = Clock()
    with pytest.raises(ValueError, match="unique"):
        Traffic([client_on(clock, FakeApi(clock)), client_on(clock, FakeApi(clock))])


def test_ids_remember_everything_handed_out_for_cleanup() -> None:
    ids = Ids("drill-7")
    assert [ids.item("eu"), ids.item("eu"), ids.item("us")] == ["drill-7-eu-1", "drill-7-eu-2", "drill-7-us-1"]
    assert ids.conflict_ids(2) == ["drill-7-conflict-1", "drill-7-conflict-2"]
    assert ids.issued() == ["drill-7-eu-1", "drill-7-eu-2", "drill-7-us-1", "drill-7-conflict-1", "drill-7-conflict-2"]
