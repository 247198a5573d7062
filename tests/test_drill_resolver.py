"""The drill's caching resolver on a driven clock: answers are reused for their TTL, then asked again."""

from __future__ import annotations

import pytest

from multiregion.drill.measures import client_rto, dns_rto, ttl_effect
from multiregion.drill.records import Event, Request
from multiregion.drill.traffic import Answer, CachingResolver, DnsWatcher

EU = Answer("d-eu.execute-api.eu-west-1.amazonaws.com", "eu-west-1", 10.0)
US = Answer("d-us.execute-api.us-east-1.amazonaws.com", "us-east-1", 10.0)


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Route53:
    """What Route 53 answers now, and how often it was asked."""

    def __init__(self, answer: Answer):
        self.answer, self.asked = answer, 0
        self.fail_next = 0

    def __call__(self) -> Answer:
        self.asked += 1
        if self.fail_next:
            self.fail_next -= 1
            raise TimeoutError("SERVFAIL")
        return self.answer


def test_an_answer_is_reused_until_its_ttl_then_asked_again() -> None:
    clock, upstream = Clock(), Route53(EU)
    resolver = CachingResolver(upstream, clock)

    assert resolver.lookup("c") == EU
    clock.advance(9.99)
    assert resolver.lookup("c") == EU
    assert upstream.asked == 1
    clock.advance(0.01)  # the TTL has run out
    assert resolver.lookup("c") == EU
    assert upstream.asked == 2
    assert [r.cached for r in resolver.resolutions()] == [False, True, False]
    assert [r.t for r in resolver.resolutions()] == [0.0, 9.99, 10.0]


def test_a_moved_answer_reaches_the_client_only_after_the_ttl() -> None:
    clock, upstream = Clock(), Route53(EU)
    resolver = CachingResolver(upstream, clock)
    resolver.lookup("c")
    clock.advance(4.0)
    upstream.answer = US  # Route 53 moves the answer at t=4

    seen = []
    for _ in range(8):
        clock.advance(1.0)
        seen.append((clock.t, resolver.lookup("c").region))

    assert seen[:5] == [(5.0, "eu-west-1"), (6.0, "eu-west-1"), (7.0, "eu-west-1"), (8.0, "eu-west-1"),
                        (9.0, "eu-west-1")]
    assert seen[5:] == [(10.0, "us-east-1"), (11.0, "us-east-1"), (12.0, "us-east-1")]


def test_a_ttl_of_zero_asks_every_time() -> None:
    clock, upstream = Clock(), Route53(Answer("1.2.3.4", "eu-west-1", 0.0))
    resolver = CachingResolver(upstream, clock)
    for _ in range(3):
        resolver.lookup("c")
    assert upstream.asked == 3
    assert not any(r.cached for r in resolver.resolutions())


def test_a_failed_lookup_gives_no_answer_and_is_retried_on_the_next_lookup() -> None:
    clock, upstream = Clock(), Route53(EU)
    resolver = CachingResolver(upstream, clock)
    upstream.fail_next = 1

    failed = resolver.lookup("c")
    clock.advance(0.1)
    retried = resolver.lookup("c")

    assert failed.endpoint is None and failed.region is None
    assert retried == EU
    assert upstream.asked == 2
    first = resolver.resolutions()[0]
    assert first.answer is None and not first.cached and "SERVFAIL" in (first.error or "")


def test_serve_stale_hands_out_the_expired_answer_when_the_refresh_fails() -> None:
    clock, upstream = Clock(), Route53(EU)
    resolver = CachingResolver(upstream, clock, serve_stale=True)
    resolver.lookup("c")
    clock.advance(11.0)
    upstream.fail_next = 1

    stale = resolver.lookup("c")

    assert stale == EU
    record = resolver.resolutions()[-1]
    assert record.cached and record.error and "SERVFAIL" in record.error


def test_client_rto_is_at_least_the_dns_rto_because_the_client_waits_out_its_ttl() -> None:
    """An outage at t=4 of the region the client was answered; Route 53 moves at t=5, the client's cached
    answer expires at t=10: the client fails until then, the watcher sees the move at t=5."""
    clock, upstream = Clock(), Route53(EU)
    resolver = CachingResolver(upstream, clock)
    watcher = DnsWatcher({"c": upstream}, interval=0.5, clock=clock)
    requests: list[Request] = []
    events = [Event(4.0, "inject")]
    while clock.t < 14.0:
        if clock.t >= 5.0:
            upstream.answer = US
        if clock.t % 1.0 == 0.5:
            watcher.watch_once()
        answer = resolver.lookup("c")
        ok = answer.region == "us-east-1" or clock.t < 4.0
        requests.append(Request(clock.t, "c", "read", answer.region, answer.region, 200 if ok else 500, 5.0))
        clock.advance(0.5)
    lookups = resolver.resolutions() + watcher.resolutions()

    dns = dns_rto(lookups, events)
    rto = client_rto(requests, events)

    assert dns.seconds == pytest.approx(1.5)  # the watcher's first look after the move, at t=5.5
    assert dns.source == "watcher"
    assert rto.seconds == pytest.approx(6.0)  # first failure t=4, recovered t=10
    assert rto.seconds is not None and dns.seconds is not None and rto.seconds >= dns.seconds
    assert ttl_effect(requests, dns) == pytest.approx(4.5)  # t=5.5 -> t=10
