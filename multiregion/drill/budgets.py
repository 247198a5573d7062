"""Budgets for CI: limits on what a drill measured, each giving one result that says what it checked.

- `max_rto` (seconds): the client-visible RTO of the worst client; a client that never recovered fails it;
- `max_rpo` (seconds): the span of acknowledged writes lost once replication settled (`measures.rpo`
  after the restore); 0 allows no lost write at all. Not measured fails it: a budget is never assumed;
- `min_availability` (percent): the availability of the whole drill's steady traffic.

A budget left at None is not checked and gives no result.
"""

from __future__ import annotations

from dataclasses import dataclass

from multiregion.drill.measures import Measures, Rpo


@dataclass(frozen=True)
class BudgetResult:
    name: str
    limit: float
    measured: float | None
    ok: bool
    message: str


def number(value: float, digits: int = 2) -> str:
    """A number for a message: at most `digits` decimals, no trailing zeros (12.4, 10, 0.05)."""
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Budgets:
    max_rto: float | None = None
    max_rpo: float | None = None
    min_availability: float | None = None

    def evaluate(self, measures: Measures, final_rpo: Rpo | None) -> list[BudgetResult]:
        results = []
        if self.max_rto is not None:
            results.append(rto_budget(measures, self.max_rto))
        if self.max_rpo is not None:
            results.append(rpo_budget(final_rpo, self.max_rpo))
        if self.min_availability is not None:
            results.append(availability_budget(measures, self.min_availability))
        return results


def rto_budget(measures: Measures, limit: float) -> BudgetResult:
    name, flag = "client-visible RTO", f"--max-rto {number(limit)} s"
    unrecovered = [c for c, m in measures.clients.items() if m.rto.note == "not recovered"]
    if unrecovered:
        return BudgetResult(name, limit, None, False,
                            f"{name}: not recovered ({', '.join(unrecovered)} still failing at the end) "
                            f"exceeds {flag}")
    measured = {c: m.rto.seconds for c, m in measures.clients.items() if m.rto.seconds is not None}
    if not measured:
        return BudgetResult(name, limit, None, False, f"{name} not measured (no request after inject); {flag}")
    worst = max(measured, key=lambda c: measured[c])
    value = measured[worst]
    if value > limit:
        return BudgetResult(name, limit, value, False,
                            f"{name} {number(value)} s (client {worst}) exceeds {flag}")
    return BudgetResult(name, limit, value, True, f"{name} {number(value)} s (worst: {worst}) within {flag}")


def rpo_budget(final_rpo: Rpo | None, limit: float) -> BudgetResult:
    name, flag = "RPO", f"--max-rpo {number(limit)} s"
    if final_rpo is None:
        return BudgetResult(name, limit, None, False, f"{name} not measured (no final table contents); {flag}")
    lost = f"{final_rpo.lost} acknowledged write{'' if final_rpo.lost == 1 else 's'} lost"
    # Any lost write fails a budget of 0, whatever the length of its window.
    failed = final_rpo.seconds > limit or (limit == 0 and final_rpo.lost > 0)
    if failed:
        return BudgetResult(name, limit, final_rpo.seconds, False,
                            f"{name} {number(final_rpo.seconds, 3)} s ({lost}) exceeds {flag}")
    return BudgetResult(name, limit, final_rpo.seconds, True,
                        f"{name} {number(final_rpo.seconds, 3)} s ({lost}) within {flag}")


def availability_budget(measures: Measures, limit: float) -> BudgetResult:
    name, flag = "availability", f"--min-availability {number(limit, 3)}%"
    overall = measures.overall.availability
    if overall.percent is None:
        return BudgetResult(name, limit, None, False, f"{name} not measured (no request); {flag}")
    counts = f"{overall.ok}/{overall.requests} requests ok"
    if overall.percent < limit:
        return BudgetResult(name, limit, overall.percent, False,
                            f"{name} {number(overall.percent, 3)}% ({counts}) is below {flag}")
    return BudgetResult(name, limit, overall.percent, True,
                        f"{name} {number(overall.percent, 3)}% ({counts}) meets {flag}")
