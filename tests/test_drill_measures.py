"""The drill's measures on hand-built records: exact values for known timelines."""

from __future__ import annotations

import pytest

from multiregion.drill.budgets import Budgets
from multiregion.drill.measures import (
    acked_writes,
    client_rto,
    conflicts,
    dns_rto,
    error_counts,
    latency_by_phase,
    percentile,
    replication_lag,
    rpo,
    summarize,
)
from multiregion.drill.records import Event, Request, Resolution

EU, US = "eu-west-1", "us-east-1"
EVENTS = [Event(10.0, "inject"), Event(12.0, "detected"), Event(13.0, "rerouted"), Event(20.0, "restore"),
          Event(22.0, "restored")]


def req(t: float, status: int, client: str = "c", kind: str = "read", region: str | None = EU,
        latency: float = 10.0, item: str | None = None, token: str | None = None) -> Request:
    return Request(t, client, kind, region, region if status else None, status, latency, item, token)


def statuses(client: str, pattern: str, start: float = 0.0, step: float = 1.0) -> list[Request]:
    """Requests one `step` apart from `start`: 'o' ok (200), 'x' 500, '-' no answer, '4' 404."""
    codes = {"o": 200, "x": 500, "-": 0, "4": 404}
    return [req(start + i * step, codes[c], client) for i, c in enumerate(pattern)]


# ------------------------------------------------------------------------------------ availability


def test_availability_counts_2xx_answers_over_every_steady_request() -> None:
    requests = statuses("a", "oooooxx-4o") + statuses("b", "oooo")
    requests.append(req(3.0, 500, "b", kind="conflict"))  # conflict writes are not steady traffic

    m = summarize(requests, [], EVENTS)

    assert (m.clients["a"].availability.requests, m.clients["a"].availability.ok) == (10, 6)
    assert m.clients["a"].availability.percent == pytest.approx(60.0)
    assert m.clients["b"].availability.percent == 100.0
    assert m.overall.availability.percent == pytest.approx(100 * 10 / 14)
    assert m.clients["b"].requests_by_kind == {"conflict": 1, "read": 4}


def test_error_counts_are_by_status_with_no_answer_apart() -> None:
    assert error_counts(statuses("a", "ox-x4-o")) == {"404": 1, "500": 2, "no answer": 2}


# --------------------------------------------------------------------------------------------- RTO


def test_client_rto_runs_from_the_first_failure_after_inject_to_the_first_of_three_successes() -> None:
    # t: 8 9 10 11 12 13 14 15 16 17 18 19
    #    o x o  x  x  o  o  x  o  o  o  o     (the failure at 9 is before inject)
    requests = statuses("c", "oxoxxooxoooo", start=8.0)

    rto = client_rto(requests, EVENTS)

    assert rto.failed_at == 11.0  # the first failure at or after inject (10.0 was ok)
    assert rto.recovered_at == 16.0  # 13, 14 were only two successes before the failure at 15
    assert rto.seconds == pytest.approx(5.0)
    assert rto.failures == 3 and rto.note == "recovered"


def test_the_recovery_run_length_is_a_parameter() -> None:
    requests = statuses("c", "oxoxxooxoooo", start=8.0)
    assert client_rto(requests, EVENTS, recovery_run=2).recovered_at == 13.0
    assert client_rto(requests, EVENTS, recovery_run=1).recovered_at == 12.0 + 1.0


def test_a_client_that_never_failed_has_an_rto_of_zero() -> None:
    rto = client_rto(statuses("c", "ooooooooo", start=8.0), EVENTS)
    assert rto.seconds == 0.0 and rto.note == "never failed" and rto.failures == 0


def test_a_client_still_failing_at_the_end_is_not_recovered() -> None:
    rto = client_rto(statuses("c", "ooxxooxx", start=9.0), EVENTS)
    assert rto.seconds is None and rto.note == "not recovered" and rto.failed_at == 11.0


def test_without_inject_there_is_no_rto() -> None:
    assert client_rto(statuses("c", "oxo"), []).seconds is None


def test_overall_rto_is_the_worst_client_and_none_when_one_did_not_recover() -> None:
    fine = statuses("a", "oooooo", start=9.0)
    slow = statuses("b", "oxxxooo", start=9.0)
    assert summarize(fine + slow, [], EVENTS).overall.client_rto == pytest.approx(3.0)
    stuck = statuses("c", "oxxxx", start=9.0)
    overall = summarize(fine + slow + stuck, [], EVENTS).overall
    assert overall.client_rto is None and overall.client_rto_note == "not recovered: c"


# ------------------------------------------------------------------------------------------ DNS RTO


def res(t: float, region: str, cached: bool = False, source: str = "resolver") -> Resolution:
    return Resolution(t, "c", f"d-{region}.example", region, cached, source)


def test_dns_rto_is_inject_to_the_first_fresh_answer_of_another_region() -> None:
    lookups = [res(5.0, EU), res(9.0, EU, cached=True), res(12.0, US, cached=True),  # cached: not Route 53
               res(13.5, US), res(14.0, US, cached=True)]

    dns = dns_rto(lookups, EVENTS)

    assert dns.seconds == pytest.approx(3.5)
    assert (dns.before, dns.after, dns.moved_at) == (EU, US, 13.5)


def test_dns_rto_ignores_failed_lookups_and_reports_an_answer_that_did_not_move() -> None:
    failed = Resolution(11.0, "c", None, None, False, error="SERVFAIL")
    dns = dns_rto([res(5.0, EU), failed, res(15.0, EU)], EVENTS)
    assert dns.seconds is None and dns.note == "answer did not move" and dns.before == EU


def test_summary_gives_the_ttl_effect_from_the_dns_move_to_the_first_request_there() -> None:
    lookups = [res(5.0, EU), res(13.0, US, source="watcher"), res(16.0, US)]
    requests = [req(t, 200 if t < 10 else 500) for t in (8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0)]
    requests += [req(t, 200, region=US) for t in (16.0, 17.0, 18.0)]

    m = summarize(requests, lookups, EVENTS).clients["c"]

    assert m.dns.seconds == pytest.approx(3.0) and m.dns.source == "watcher"
    assert m.ttl_effect == pytest.approx(3.0)  # Route 53 moved at 13, the client went there at 16
    assert m.rto.seconds == pytest.approx(6.0)  # 10 -> 16
    assert m.rto.seconds is not None and m.dns.seconds is not None and m.rto.seconds >= m.dns.seconds


# ------------------------------------------------------------------------------------------ latency


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # rank ceil(2.0) = 2: a measured value, no interpolation
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_latency_is_split_into_before_during_and_after_and_skips_requests_without_answer() -> None:
    before = [req(t, 200, latency=t) for t in (1.0, 2.0, 3.0, 4.0)]
    during = [req(t, 500, latency=100 + t) for t in (10.0, 15.0)] + [req(16.0, 0, latency=5000.0)]
    after = [req(t, 200, latency=50.0) for t in (22.0, 23.0)]

    phases = latency_by_phase(before + during + after, EVENTS)

    assert (phases["before"].count, phases["before"].p50, phases["before"].p99) == (4, 2.0, 4.0)
    assert (phases["during"].count, phases["during"].p50, phases["during"].p95) == (2, 110.0, 115.0)
    assert (phases["after"].count, phases["after"].p50) == (2, 50.0)


# ---------------------------------------------------------------------------------------------- RPO


def write(t: float, item: str, token: str, region: str = EU, latency: float = 20.0, ok: bool = True) -> Request:
    return req(t, 201 if ok else 500, kind="write", region=region, latency=latency, item=item, token=token)


def test_rpo_counts_last_writes_a_region_lacks_and_not_writes_overwritten_later() -> None:
    writes = [write(1.0, "a", "a1"), write(2.0, "a", "a2"), write(3.0, "b", "b1"), write(4.0, "c", "c1", US),
              write(5.0, "d", "d1", ok=False)]  # d was never acknowledged: not the drill's to find
    final = {EU: {"a": "a2", "b": "b1", "c": "c1"},
             US: {"a": "a1", "b": "b1"}}  # us has a's first write only, and lacks c

    result = rpo(acked_writes(writes), final, [EU, US])

    assert result.lost == 2 and result.item_ids == ("a", "c")
    assert result.missing_from == {"a": (US,), "c": (US,)}
    assert result.by_region == {EU: 0, US: 2}
    assert result.window == pytest.approx((2.0, 4.02))  # a2 sent at 2.0 ... c1 acknowledged at 4.02
    assert result.seconds == pytest.approx(2.02)
    assert result.checked == 3 and result.overwritten == 1  # a1 overwritten by a2: not lost


def test_rpo_is_zero_when_every_region_holds_every_last_write() -> None:
    writes = acked_writes([write(1.0, "a", "a1"), write(2.0, "a", "a2")])
    result = rpo(writes, {EU: {"a": "a2"}, US: {"a": "a2"}}, [EU, US])
    assert (result.lost, result.seconds, result.window, result.overwritten) == (0, 0.0, None, 1)


def test_the_last_writer_is_the_later_acknowledgement_then_the_region() -> None:
    # sent earlier but acknowledged later: the client saw it finish last
    slow, fast = write(1.0, "x", "slow", latency=500.0), write(1.2, "x", "fast", latency=10.0)
    assert rpo([slow, fast], {EU: {"x": "slow"}}, [EU]).lost == 0
    # acknowledged at the same moment: the region decides, deterministically
    a, b = write(1.0, "y", "from-eu", EU), write(1.0, "y", "from-us", US)
    assert rpo([a, b], {EU: {"y": "from-us"}}, [EU]).lost == 0
    assert rpo([a, b], {EU: {"y": "from-eu"}}, [EU]).lost == 1


def test_rpo_reports_regions_it_could_not_read_and_needs_one() -> None:
    result = rpo([write(1.0, "a", "a1")], {EU: {"a": "a1"}}, [EU, US])
    assert result.lost == 0 and result.unread_regions == (US,)
    with pytest.raises(ValueError, match="no final contents"):
        rpo([], {}, [EU])


# ------------------------------------------------------------------------------------------ conflicts


def conflict(t: float, item: str, token: str, region: str, ok: bool = True) -> Request:
    return req(t, 201 if ok else 500, client=f"c-{region}", kind="conflict", region=region, item=item, token=token)


def test_conflicts_converged_and_the_acknowledged_writes_overwritten() -> None:
    writes = [conflict(1.0, "k1", "k1-eu", EU), conflict(1.0, "k1", "k1-us", US),
              conflict(2.0, "k2", "k2-eu", EU), conflict(2.0, "k2", "k2-us", US, ok=False)]
    final = {EU: {"k1": "k1-us", "k2": "k2-us"}, US: {"k1": "k1-us", "k2": "k2-us"}}

    result = conflicts(writes, final, [EU, US])

    assert result.converged and result.diverged_ids == ()
    assert (result.ids, result.writes, result.acked) == (2, 4, 3)
    assert result.overwritten == 2  # k1-eu lost to k1-us; k2-eu lost to a write that was never acknowledged
    assert result.kept_unacknowledged == 1
    assert result.winners == {US: 2}
    assert result.client_order_agrees == 1  # k1: same acknowledgement time, us after eu by region


def test_conflicts_that_diverge_are_named() -> None:
    writes = [conflict(1.0, "k1", "k1-eu", EU), conflict(1.0, "k1", "k1-us", US)]
    result = conflicts(writes, {EU: {"k1": "k1-eu"}, US: {"k1": "k1-us"}}, [EU, US])
    assert not result.converged and result.diverged_ids == ("k1",) and result.overwritten == 0
    missing = conflicts(writes, {EU: {}, US: {}}, [EU, US])
    assert missing.converged and missing.missing == 1 and missing.overwritten == 2


# ------------------------------------------------------------------------------------ lag and budgets


def test_replication_lag_percentiles_and_max() -> None:
    lag = replication_lag([0.05, 0.01, 0.2, 0.03])
    assert (lag.count, lag.p50, lag.p95, lag.max) == (4, 0.03, 0.2, 0.2)
    assert replication_lag([]).p50 is None


def test_budgets_pass_and_fail_with_messages_that_name_themselves() -> None:
    requests = statuses("eu", "ooxxxxxxxxxxxxxoooo", start=8.0, step=1.0) + statuses("us", "oooooo", start=8.0)
    measures = summarize(requests, [], EVENTS)
    lost = rpo([write(1.0, "a", "a1")], {EU: {}}, [EU])

    results = Budgets(max_rto=10.0, max_rpo=0.0, min_availability=99.0).evaluate(measures, lost)

    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["client-visible RTO", "RPO", "availability"]
    assert not by_name["client-visible RTO"].ok
    assert by_name["client-visible RTO"].measured == pytest.approx(13.0)
    assert by_name["client-visible RTO"].message == "client-visible RTO 13 s (client eu) exceeds --max-rto 10 s"
    assert not by_name["RPO"].ok and "1 acknowledged write lost" in by_name["RPO"].message
    assert by_name["RPO"].message.endswith("exceeds --max-rpo 0 s")
    assert not by_name["availability"].ok
    assert by_name["availability"].message.startswith("availability 48% (12/25 requests ok) is below")

    relaxed = Budgets(max_rto=20.0, max_rpo=1.0, min_availability=45.0).evaluate(measures, lost)
    assert all(r.ok for r in relaxed), [r.message for r in relaxed]


def test_budgets_fail_when_not_recovered_or_not_measured() -> None:
    stuck = summarize(statuses("eu", "oxxx", start=9.0), [], EVENTS)
    results = Budgets(max_rto=100.0, max_rpo=0.0).evaluate(stuck, None)
    assert [r.ok for r in results] == [False, False]
    assert "not recovered (eu still failing at the end)" in results[0].message
    assert "RPO not measured" in results[1].message
    assert Budgets().evaluate(stuck, None) == []
