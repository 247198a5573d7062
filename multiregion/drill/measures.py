"""Measures of a drill: pure functions of its records and events.

Definitions (every time is on the drill's one clock, in seconds; "ok" means a 2xx answer):

- availability: ok requests / all requests, in percent, over the whole drill. Only the steady traffic
  (`write`, `read`) counts; conflict writes are bursts at chosen moments and are measured by `conflicts`.
- client-visible RTO: from the first failed request sent at or after "inject" to the first request of a
  run of `recovery_run` consecutive ok requests. A client with no failed request after "inject" has an
  RTO of 0 ("never failed"); one whose failures never give way to such a run has None ("not recovered").
- DNS-level RTO: from "inject" to the first lookup that asked Route 53 (not cached) and got a region other
  than the one the client was answered before "inject". The lookups of a `DnsWatcher` count, and give
  Route 53's own moment; without one, the client's resolver only asks when its TTL expired, so the
  moment includes that wait. Clients whose answer never moved have None ("answer did not move").
- TTL effect: how long the client kept going to the old region after Route 53 moved its answer: from the
  DNS-level move to the client's first request answered by the new region. In an outage this is, up to
  one request period, the client-visible RTO minus the DNS-level RTO; it is measured directly because in a
  health-check fault the client never fails and that difference says nothing.
- latency: percentiles by the nearest-rank method (the smallest value with at least p% of the values at or
  below it; always one of the measured values), over answered requests (status > 0: a request without an
  answer has a timeout, not a latency), in three phases by send time: before "inject", from "inject" to
  "restored", after "restored".
- RPO and conflicts: see `rpo` and `conflicts`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from multiregion.drill.records import (
    DETECTED,
    INJECT,
    REROUTED,
    RESTORE,
    RESTORED,
    STEADY_KINDS,
    Event,
    Request,
    Resolution,
    first_event,
)

PHASES: tuple[str, ...] = ("before", "during", "after")
NO_ANSWER = "no answer"
DEFAULT_RECOVERY_RUN = 3

# Final table contents: region -> item id -> the drill token the item holds (None: present, no token).
FinalState = Mapping[str, Mapping[str, "str | None"]]
_ABSENT = object()  # an item a region does not hold (None is an item without a token)


# ------------------------------------------------------------------------------------------ helpers


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at rank ceil(p/100 * n) of the sorted values; None for none."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"a percentile is in (0, 100], not {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered) - 1e-9))
    return ordered[rank - 1]


def by_client(requests: Iterable[Request]) -> dict[str, list[Request]]:
    grouped: dict[str, list[Request]] = defaultdict(list)
    for request in sorted(requests, key=lambda r: r.t):
        grouped[request.client].append(request)
    return dict(grouped)


def steady(requests: Iterable[Request], kinds: Sequence[str] = STEADY_KINDS) -> list[Request]:
    return [r for r in requests if r.kind in kinds]


def phase_of(t: float, events: Sequence[Event]) -> str:
    inject, restored = first_event(events, INJECT), first_event(events, RESTORED)
    if inject is None or t < inject.t:
        return "before"
    if restored is None or t < restored.t:
        return "during"
    return "after"


def _since(events: Sequence[Event], start: str, end: str) -> float | None:
    a, b = first_event(events, start), first_event(events, end)
    return b.t - a.t if a is not None and b is not None else None


# -------------------------------------------------------------------------------------- availability


@dataclass(frozen=True)
class Availability:
    requests: int
    ok: int
    percent: float | None  # None when there was no request at all

    @classmethod
    def of(cls, requests: Sequence[Request]) -> Availability:
        ok = sum(1 for r in requests if r.ok)
        return cls(len(requests), ok, 100.0 * ok / len(requests) if requests else None)


def error_counts(requests: Iterable[Request]) -> dict[str, int]:
    """Non-2xx answers by status code ("500", "404", ...), "no answer" for status 0; sorted by code."""
    counts = Counter(NO_ANSWER if r.status == 0 else str(r.status) for r in requests if not r.ok)
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == NO_ANSWER, kv[0])))


# ---------------------------------------------------------------------------------------------- RTO


@dataclass(frozen=True)
class ClientRto:
    seconds: float | None
    failed_at: float | None = None
    recovered_at: float | None = None
    failures: int = 0  # failed requests sent at or after "inject"
    note: str = ""


def client_rto(requests: Sequence[Request], events: Sequence[Event],
               recovery_run: int = DEFAULT_RECOVERY_RUN) -> ClientRto:
    """The client-visible RTO of one client's requests (see the module's definitions)."""
    if recovery_run < 1:
        raise ValueError(f"recovery_run must be at least 1, not {recovery_run}")
    inject = first_event(events, INJECT)
    if inject is None:
        return ClientRto(None, note="no inject event")
    after = sorted((r for r in requests if r.t >= inject.t), key=lambda r: r.t)
    if not after:
        return ClientRto(None, note="no request after inject")
    failures = sum(1 for r in after if not r.ok)
    first_failure = next((i for i, r in enumerate(after) if not r.ok), None)
    if first_failure is None:
        return ClientRto(0.0, note="never failed")
    failed_at = after[first_failure].t
    run_start, run = None, 0
    for request in after[first_failure:]:
        if not request.ok:
            run_start, run = None, 0
            continue
        run += 1
        run_start = run_start if run_start is not None else request.t
        if run >= recovery_run:
            return ClientRto(run_start - failed_at, failed_at, run_start, failures, "recovered")
    return ClientRto(None, failed_at, None, failures, "not recovered")


@dataclass(frozen=True)
class DnsRto:
    seconds: float | None
    before: str | None = None  # the region answered before inject
    after: str | None = None  # the region the answer moved to
    moved_at: float | None = None
    source: str | None = None  # who saw the move first: "watcher" (Route 53's moment) or "resolver"
    note: str = ""


def dns_rto(resolutions: Sequence[Resolution], events: Sequence[Event]) -> DnsRto:
    """The DNS-level RTO of one client's lookups (see the module's definitions)."""
    inject = first_event(events, INJECT)
    if inject is None:
        return DnsRto(None, note="no inject event")
    answered = sorted((r for r in resolutions if r.answer is not None and r.region is not None), key=lambda r: r.t)
    before = [r for r in answered if r.t < inject.t]
    if not before:
        return DnsRto(None, note="no answer before inject")
    old = before[-1].region
    moved = next((r for r in answered if r.t >= inject.t and not r.cached and r.region != old), None)
    if moved is None:
        return DnsRto(None, old, note="answer did not move")
    return DnsRto(moved.t - inject.t, old, moved.region, moved.t, moved.source, "answer moved")


def ttl_effect(requests: Sequence[Request], dns: DnsRto) -> float | None:
    """From the DNS-level move to the client's first request answered by the new region (None when the
    answer never moved, or the client never went there)."""
    if dns.moved_at is None:
        return None
    first = next((r for r in sorted(requests, key=lambda r: r.t)
                  if r.t >= dns.moved_at and r.answered_region == dns.after), None)
    return max(0.0, first.t - dns.moved_at) if first is not None else None


# ------------------------------------------------------------------------------------------ latency


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        return cls(len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99))


def latency_by_phase(requests: Iterable[Request], events: Sequence[Event]) -> dict[str, Percentiles]:
    """Latency percentiles (ms) of answered requests, per phase (see the module's definitions)."""
    values: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for request in requests:
        if request.status > 0:
            values[phase_of(request.t, events)].append(request.latency_ms)
    return {phase: Percentiles.of(values[phase]) for phase in PHASES}


# ------------------------------------------------------------------------------------------ summary


@dataclass(frozen=True)
class ClientMeasures:
    client: str
    availability: Availability
    rto: ClientRto
    dns: DnsRto
    ttl_effect: float | None
    errors: dict[str, int]
    latency: dict[str, Percentiles]
    requests_by_kind: dict[str, int]


@dataclass(frozen=True)
class Overall:
    availability: Availability
    client_rto: float | None  # the worst client's; None when any client did not recover
    client_rto_note: str
    dns_rto: float | None  # the latest move among the clients whose answer moved
    detection: float | None  # inject -> detected
    route53_reroute: float | None  # inject -> rerouted, as the drill saw Route 53's answer move
    restore: float | None  # restore -> restored
    errors: dict[str, int]
    latency: dict[str, Percentiles]


@dataclass(frozen=True)
class Measures:
    clients: dict[str, ClientMeasures]
    overall: Overall
    recovery_run: int = DEFAULT_RECOVERY_RUN
    kinds: tuple[str, ...] = field(default=STEADY_KINDS)


def summarize(requests: Sequence[Request], resolutions: Sequence[Resolution], events: Sequence[Event], *,
              recovery_run: int = DEFAULT_RECOVERY_RUN, kinds: Sequence[str] = STEADY_KINDS,
              clients: Sequence[str] | None = None) -> Measures:
    """Every per-client and overall measure except RPO, conflicts and lag (which need table contents)."""
    traffic = steady(requests, kinds)
    grouped = by_client(traffic)
    names = list(clients) if clients is not None else sorted(grouped)
    lookups: dict[str, list[Resolution]] = defaultdict(list)
    for resolution in resolutions:
        lookups[resolution.client].append(resolution)
    per_client = {name: _client_measures(name, grouped.get(name, []), lookups.get(name, []), events, recovery_run,
                                         [r for r in requests if r.client == name])
                  for name in names}
    return Measures(per_client, _overall(per_client, traffic, events), recovery_run, tuple(kinds))


def _client_measures(name: str, traffic: list[Request], lookups: list[Resolution], events: Sequence[Event],
                     recovery_run: int, every: list[Request]) -> ClientMeasures:
    dns = dns_rto(lookups, events)
    return ClientMeasures(name, Availability.of(traffic), client_rto(traffic, events, recovery_run), dns,
                          ttl_effect(traffic, dns), error_counts(traffic), latency_by_phase(traffic, events),
                          dict(sorted(Counter(r.kind for r in every).items())))


def _overall(per_client: Mapping[str, ClientMeasures], traffic: Sequence[Request],
             events: Sequence[Event]) -> Overall:
    rtos = [m.rto for m in per_client.values()]
    unrecovered = [name for name, m in per_client.items() if m.rto.note == "not recovered"]
    if unrecovered:
        worst, note = None, f"not recovered: {', '.join(unrecovered)}"
    elif any(r.seconds is None for r in rtos) or not rtos:
        worst, note = None, "not measured"
    else:
        worst = max(r.seconds or 0.0 for r in rtos)
        note = "never failed" if worst == 0 else "worst client"
    moved = [m.dns.seconds for m in per_client.values() if m.dns.seconds is not None]
    return Overall(Availability.of(traffic), worst, note, max(moved) if moved else None,
                   _since(events, INJECT, DETECTED), _since(events, INJECT, REROUTED),
                   _since(events, RESTORE, RESTORED), error_counts(traffic), latency_by_phase(traffic, events))


# ---------------------------------------------------------------------------------------------- RPO


def _read_regions(final: FinalState, regions: Sequence[str]) -> list[str]:
    """The regions whose final contents were read; a region that could not be read is reported, not
    counted as holding nothing, but with none read there is nothing to measure."""
    read = [r for r in regions if r in final]
    if not read:
        raise ValueError(f"no final contents for any of the regions {', '.join(regions) or '(none)'}")
    return read


def acked_writes(requests: Iterable[Request], kinds: Sequence[str] = ("write",)) -> list[Request]:
    """The acknowledged writes (2xx, with a token) of the given kinds."""
    return [r for r in requests if r.kind in kinds and r.ok and r.token is not None and r.item_id is not None]


def write_order(request: Request) -> tuple[float, str, str]:
    """The order of writes as a client can see it: acknowledgement time, then region, then token.

    DynamoDB global tables settle concurrent writes to an item by last writer wins, on the time each
    region applied its write. A client cannot see that time; it knows the write was applied at the latest
    when it was acknowledged, so two writes of which one was acknowledged before the other was sent are
    ordered right. Overlapping writes cannot be ordered from outside: the region (then the token) only
    makes the choice deterministic, and `conflicts` judges such writes by whether the regions agree."""
    return (request.done, request.served_region or request.answered_region or "", request.token or "")


def last_writers(writes: Iterable[Request]) -> dict[str, Request]:
    """Per item id, its last acknowledged write by `write_order`."""
    last: dict[str, Request] = {}
    for write in writes:
        if write.item_id is None or not write.ok:
            continue
        current = last.get(write.item_id)
        if current is None or write_order(write) > write_order(current):
            last[write.item_id] = write
    return last


@dataclass(frozen=True)
class Rpo:
    lost: int  # item ids whose last acknowledged write is missing from at least one region
    item_ids: tuple[str, ...]
    missing_from: dict[str, tuple[str, ...]]  # item id -> regions that lack its last write
    by_region: dict[str, int]  # region -> lost item ids there
    window: tuple[float, float] | None  # (first send, last acknowledgement) of the lost writes
    seconds: float  # the window's length: the span of acknowledged writes lost; 0 when none
    checked: int  # item ids checked
    overwritten: int  # acknowledged writes replaced by a later acknowledged write of the same id (not lost)
    unread_regions: tuple[str, ...] = ()  # regions without final contents: not checked


def rpo(acked: Iterable[Request], final: FinalState, regions: Sequence[str]) -> Rpo:
    """The acknowledged writes that a region does not hold.

    An item is lost in a region when that region lacks it, or holds a token other than that of its last
    writer (`last_writers`: the acknowledged write of that id latest in `write_order`), which is DynamoDB's
    last writer wins as far as the client can see it. An acknowledged write followed by a later one of the
    same id is overwritten, not lost. Call it just before restore (what the isolated region lacks) and
    again once replication settled (what was lost for good)."""
    read = _read_regions(final, regions)
    writes = [w for w in acked if w.ok and w.token is not None and w.item_id is not None]
    last = last_writers(writes)
    overwritten = len(writes) - len(last)
    missing: dict[str, tuple[str, ...]] = {}
    for item_id, write in sorted(last.items()):
        lacking = tuple(r for r in read if final[r].get(item_id, _ABSENT) != write.token)
        if lacking:
            missing[item_id] = lacking
    lost = [last[i] for i in missing]
    window = (min(w.t for w in lost), max(w.done for w in lost)) if lost else None
    by_region = {r: sum(1 for regs in missing.values() if r in regs) for r in read}
    return Rpo(len(missing), tuple(missing), missing, by_region, window,
               window[1] - window[0] if window else 0.0, len(last), overwritten,
               tuple(r for r in regions if r not in final))


# ------------------------------------------------------------------------------------------ conflicts


@dataclass(frozen=True)
class Conflicts:
    ids: int
    writes: int  # conflict writes sent
    acked: int  # of which acknowledged
    converged: bool  # every region ended with the same write for every conflict id
    diverged_ids: tuple[str, ...]
    overwritten: int  # acknowledged writes that are not the write the regions kept
    kept_unacknowledged: int  # ids whose kept write was never acknowledged (a write that failed late)
    missing: int  # ids that no region holds
    winners: dict[str, int]  # region whose write was kept -> ids
    client_order_agrees: int  # ids whose kept write is also the last by `write_order`
    unread_regions: tuple[str, ...] = ()


def conflicts(conflict_writes: Sequence[Request], final: FinalState, regions: Sequence[str]) -> Conflicts:
    """For the conflict ids: did every region end identical, and how many acknowledged writes lost out.

    With last writer wins, one write per id survives; every other acknowledged write of that id was
    overwritten, which is the cost of concurrent writes the drill makes visible."""
    read = _read_regions(final, regions)
    writes_by_id: dict[str, list[Request]] = defaultdict(list)
    for write in conflict_writes:
        if write.item_id is not None:
            writes_by_id[write.item_id].append(write)
    every = [w for ws in writes_by_id.values() for w in ws]
    last = last_writers(every)
    diverged, overwritten, unacked, missing, agrees = [], 0, 0, 0, 0
    winners: Counter[str] = Counter()
    for item_id, writes in sorted(writes_by_id.items()):
        acked_tokens = {w.token for w in writes if w.ok and w.token is not None}
        held = {final[r].get(item_id) for r in read}  # absent and token-less both count as no write kept
        if len(held) != 1:
            diverged.append(item_id)
            overwritten += len(acked_tokens - held)
            continue
        kept = next(iter(held))
        if kept is None:
            missing += 1
            overwritten += len(acked_tokens)
            continue
        overwritten += len(acked_tokens - {kept})
        kept_write = next((w for w in writes if w.token == kept), None)
        if kept not in acked_tokens:
            unacked += 1
        if kept_write is not None:
            winners[kept_write.served_region or kept_write.answered_region or "unknown"] += 1
        if item_id in last and last[item_id].token == kept:
            agrees += 1
    return Conflicts(len(writes_by_id), len(every), sum(1 for w in every if w.ok),
                     not diverged, tuple(diverged), overwritten, unacked, missing, dict(sorted(winners.items())),
                     agrees, tuple(r for r in regions if r not in final))


# --------------------------------------------------------------------------------- replication lag


@dataclass(frozen=True)
class LagStats:
    count: int
    p50: float | None
    p95: float | None
    max: float | None


def replication_lag(lags: Sequence[float]) -> LagStats:
    """Percentiles (nearest rank) and maximum of replication lags the caller measured, in seconds."""
    return LagStats(len(lags), percentile(lags, 50), percentile(lags, 95), max(lags) if lags else None)


# -------------------------------------------------------------------------------------------- writes


@dataclass(frozen=True)
class RegionWrites:
    acknowledged: int  # writes answered 2xx
    refused: int  # writes the region answered with an error (4xx/5xx): not written, the client was told
    refused_by_status: dict[str, int]
    latency_ms: Percentiles  # of the acknowledged writes


@dataclass(frozen=True)
class Writes:
    """The writes of the steady traffic, by the region that answered them: what a mode costs (a strong
    table's write waits for a second region) and what it refuses (a strong table cut off from the others
    refuses writes instead of acknowledging what it cannot replicate)."""

    by_region: dict[str, RegionWrites]
    acknowledged: int
    refused: int
    latency_ms: Percentiles


def writes(requests: Iterable[Request], kinds: Sequence[str] = ("write",)) -> Writes:
    answered = [r for r in requests if r.kind in kinds and r.status > 0]
    regions: dict[str, list[Request]] = defaultdict(list)
    for request in answered:
        regions[request.served_region or request.answered_region or NO_ANSWER].append(request)

    def summary(group: Sequence[Request]) -> RegionWrites:
        refused = [r for r in group if not r.ok]
        return RegionWrites(len(group) - len(refused), len(refused),
                            dict(sorted(Counter(str(r.status) for r in refused).items())),
                            Percentiles.of([r.latency_ms for r in group if r.ok]))

    by_region = {region: summary(group) for region, group in sorted(regions.items())}
    acknowledged = [r for r in answered if r.ok]
    return Writes(by_region, len(acknowledged), len(answered) - len(acknowledged),
                  Percentiles.of([r.latency_ms for r in acknowledged]))
