"""What a drill records: DNS lookups, requests and the drill's own markers, on one monotonic clock.

Every `t` is in seconds on the clock the caller injects (the same one for every record of a drill), so
records from different threads can be ordered and subtracted. Records are frozen: measures are pure
functions of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

RequestKind = Literal["write", "read", "conflict"]
# The steady traffic of the synthetic clients; conflict writes are bursts at chosen moments and are
# measured on their own (see measures.conflicts).
STEADY_KINDS: tuple[str, ...] = ("write", "read")

# The drill's markers, in the order a drill normally passes them.
INJECT, DETECTED, REROUTED, RESTORE, RESTORED = "inject", "detected", "rerouted", "restore", "restored"
EVENT_NAMES: tuple[str, ...] = (INJECT, DETECTED, REROUTED, RESTORE, RESTORED)

# Who made a lookup: the client's own resolver (its answer was used), or a watcher that asks Route 53 for
# the client's location without caching, to see when Route 53 itself moved the answer.
RESOLVER, WATCHER = "resolver", "watcher"


@dataclass(frozen=True)
class Resolution:
    """One DNS answer for a client. `answer` is the endpoint text (a CNAME target such as
    `d-abc.execute-api.eu-west-1.amazonaws.com`, or an IPv4 address), None when the lookup failed or
    answered nothing; `region` is the region that answer maps to, or None. `cached` says the resolver
    handed out an answer it already held instead of asking."""

    t: float
    client: str
    answer: str | None
    region: str | None
    cached: bool
    source: str = RESOLVER
    error: str | None = None


@dataclass(frozen=True)
class Request:
    """One request of a client. `t` is when it was sent (after its DNS lookup), `latency_ms` how long the
    answer took; `status` 0 means no answer at all (DNS failure, refused connection, timeout), with the
    reason in `error`. `answered_region` is where DNS sent the client, `served_region` the region that
    says it served the request (None when unknown). `token` is the write's unique value, for writes."""

    t: float
    client: str
    kind: str
    answered_region: str | None
    served_region: str | None
    status: int
    latency_ms: float
    item_id: str | None = None
    token: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def done(self) -> float:
        """When the answer (or the failure) arrived, on the drill's clock."""
        return self.t + self.latency_ms / 1000.0


@dataclass(frozen=True)
class Event:
    """A drill marker: one of EVENT_NAMES (other names are kept and drawn, but measures ignore them)."""

    t: float
    name: str
    detail: str = ""


class TimelineStep(NamedTuple):
    """One step of the drill as the caller ran it: for the JUnit report and the HTML page."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""


def first_event(events: Sequence[Event], name: str) -> Event | None:
    """The earliest event of that name (a drill has one of each; a repeated marker counts from the first)."""
    matching = [e for e in events if e.name == name]
    return min(matching, key=lambda e: e.t) if matching else None
