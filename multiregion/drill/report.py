"""Everything a drill found, in one object: for JSON (`to_dict`), JUnit (`junit`) and HTML (`html`).

Times in `to_dict()` are seconds since the drill's first record or event (`t0`), so a report reads
without the monotonic clock it was taken on; numbers are rounded to milliseconds (percentages to three
decimals). Keys are stable: a measure that could not be taken is null with a note, never left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from typing import Any

from multiregion.drill.budgets import BudgetResult, Budgets
from multiregion.drill.measures import (
    DEFAULT_RECOVERY_RUN,
    ClientMeasures,
    Conflicts,
    LagStats,
    Measures,
    Rpo,
    Writes,
    steady,
    summarize,
    writes,
)
from multiregion.drill.records import Event, Request, Resolution, TimelineStep

ROUND_DIGITS = 3


@dataclass
class DrillReport:
    stack: str
    regions: list[str]
    fault: str  # what was injected, in words ("outage of eu-west-1 (reserved concurrency 0)")
    measures: Measures
    failed_region: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    client_regions: dict[str, str] = field(default_factory=dict)
    steps: list[TimelineStep] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    rpo_isolation: Rpo | None = None  # just before restore: what the isolated region lacked
    rpo_final: Rpo | None = None  # once replication settled: what was lost
    conflicts: Conflicts | None = None
    lag: LagStats | None = None
    budgets: list[BudgetResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    consistency: str = "eventual"  # the table's mode (table.consistency)
    writes: Writes | None = None

    @property
    def passed(self) -> bool:
        return all(s.ok for s in self.steps) and all(b.ok for b in self.budgets)

    @property
    def t0(self) -> float:
        times = [r.t for r in self.requests] + [r.t for r in self.resolutions] + [e.t for e in self.events]
        return min(times) if times else 0.0

    @property
    def t_end(self) -> float:
        times = ([r.done for r in self.requests] + [r.t for r in self.resolutions] + [e.t for e in self.events])
        return max(times) if times else 0.0

    def relative(self, t: float | None) -> float | None:
        return None if t is None else t - self.t0

    # ---------------------------------------------------------------- JSON

    def to_dict(self, include_records: bool = False) -> dict[str, Any]:
        rel = self.relative
        data: dict[str, Any] = {
            "passed": self.passed,
            "stack": self.stack,
            "regions": list(self.regions),
            "fault": self.fault,
            "failed_region": self.failed_region,
            "started_at": self.started_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
            "duration_seconds": self.t_end - self.t0,
            "clients": {name: {"region": self.client_regions.get(name),
                               **_client_dict(m, rel)} for name, m in self.measures.clients.items()},
            "overall": _plain(self.measures.overall),
            "recovery_run": self.measures.recovery_run,
            "rpo_isolation": _rpo_dict(self.rpo_isolation, rel),
            "rpo_final": _rpo_dict(self.rpo_final, rel),
            "conflicts": _plain(self.conflicts) if self.conflicts is not None else None,
            "replication_lag_seconds": _plain(self.lag) if self.lag is not None else None,
            "budgets": [_plain(b) for b in self.budgets],
            "timeline": [{"step": s.name, "ok": s.ok, "seconds": s.seconds, "detail": s.detail} for s in self.steps],
            "events": [{"t": rel(e.t), "name": e.name, "detail": e.detail} for e in self.events],
            "records": self.records_summary(),
            "notes": list(self.notes),
            "consistency": self.consistency,
            "writes": _plain(self.writes) if self.writes is not None else None,
        }
        if include_records:
            data["requests"] = [{**asdict(r), "t": rel(r.t)} for r in self.requests]
            data["resolutions"] = [{**asdict(r), "t": rel(r.t)} for r in self.resolutions]
        rounded: dict[str, Any] = _rounded(data)
        return rounded

    def records_summary(self) -> dict[str, Any]:
        per_client: dict[str, dict[str, Any]] = {}
        for name in sorted({r.client for r in self.requests} | {r.client for r in self.resolutions}):
            requests = [r for r in self.requests if r.client == name]
            lookups = [r for r in self.resolutions if r.client == name]
            per_client[name] = {
                "requests": len(requests),
                "by_kind": dict(sorted(Counter(r.kind for r in requests).items())),
                "by_status": dict(sorted(Counter(str(r.status) for r in requests).items())),
                "lookups": len(lookups),
                "lookups_cached": sum(1 for r in lookups if r.cached),
                "lookups_failed": sum(1 for r in lookups if r.answer is None),
                "lookups_by_source": dict(sorted(Counter(r.source for r in lookups).items())),
            }
        return {"requests": len(self.requests), "resolutions": len(self.resolutions), "clients": per_client}


def build_report(*, stack: str, regions: Sequence[str], fault: str, requests: Sequence[Request],
                 resolutions: Sequence[Resolution], events: Sequence[Event], budgets: Budgets | None = None,
                 steps: Sequence[TimelineStep | tuple[str, bool, float, str]] = (),
                 client_regions: Mapping[str, str] | None = None, failed_region: str | None = None,
                 rpo_isolation: Rpo | None = None, rpo_final: Rpo | None = None, conflicts: Conflicts | None = None,
                 lag: LagStats | None = None, recovery_run: int = DEFAULT_RECOVERY_RUN,
                 started_at: datetime | None = None, notes: Sequence[str] = (),
                 consistency: str = "eventual") -> DrillReport:
    """Measure the records and check the budgets: the one call after a drill's traffic stopped."""
    names = list(client_regions) if client_regions else None
    measures = summarize(requests, resolutions, events, recovery_run=recovery_run, clients=names)
    results = (budgets or Budgets()).evaluate(measures, rpo_final)
    return DrillReport(stack=stack, regions=list(regions), fault=fault, measures=measures,
                       failed_region=failed_region, started_at=started_at or datetime.now(timezone.utc),
                       client_regions=dict(client_regions or {}), steps=[TimelineStep(*s) for s in steps],
                       events=sorted(events, key=lambda e: e.t), requests=sorted(requests, key=lambda r: r.t),
                       resolutions=sorted(resolutions, key=lambda r: r.t), rpo_isolation=rpo_isolation,
                       rpo_final=rpo_final, conflicts=conflicts, lag=lag, budgets=results, notes=list(notes),
                       consistency=consistency, writes=writes(steady(requests)))


# ------------------------------------------------------------------------------------------ helpers


def _client_dict(m: ClientMeasures, rel: Any) -> dict[str, Any]:
    data: dict[str, Any] = _plain(m)
    data.pop("client", None)
    for key in ("failed_at", "recovered_at"):
        data["rto"][key] = rel(data["rto"][key])
    data["dns"]["moved_at"] = rel(data["dns"]["moved_at"])
    return data


def _rpo_dict(value: Rpo | None, rel: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    data: dict[str, Any] = _plain(value)
    data["window"] = [rel(value.window[0]), rel(value.window[1])] if value.window else None
    return data


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON types (lists and dicts), keys as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f: _plain(v) for f, v in asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, ROUND_DIGITS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
