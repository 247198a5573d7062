"""Rich rendering of the engine's reports and results. Only the command layer imports this module."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from multiregion.engine import Progress, Reporter, RunResult, StepError
from multiregion.estimate import Estimate, human_seconds
from multiregion.plan import Change

ACTION_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}


class _Wait(Progress):
    def __init__(self, reporter: RichReporter, what: str, region: str, typical: float | None = None):
        self.reporter, self.what, self.region, self.typical = reporter, what, region, typical
        self.status = ""
        self.started = time.monotonic()

    def update(self, status: str) -> None:
        changed = status != self.status
        self.status = status
        self.reporter.refresh()
        if changed and self.reporter.logging:
            # Not a terminal (a CI log): a line per change of state, never one per poll.
            self.reporter.note(self.line())

    def line(self) -> Text:
        waited = time.monotonic() - self.started
        # What AWS usually takes, so a long wait reads as expected (or not); on the sandbox time is compressed.
        typical = f" (typically {human_seconds(self.typical)} on AWS)" if self.typical else ""
        return Text.assemble(("  ⧗ ", "cyan"), (f"{self.region:<14}", "bold"),
                             f" waiting for {self.what}: ", (self.status or "...", "yellow"),
                             (f"  {waited:.0f}s{typical}", "dim"))


class RichReporter(Reporter):
    """Prints each applied change as it lands, and a live line per wait in progress."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self.logging = not quiet and not console.is_terminal
        self._waits: list[_Wait] = []
        self._lock = threading.RLock()
        self._live: Live | None = None

    def refresh(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.update(self._render_waits())

    def _render_waits(self) -> Any:
        from rich.console import Group

        return Group(*(w.line() for w in self._waits))

    def change_applied(self, change: Change, seconds: float) -> None:
        if self.quiet:
            return
        style = ACTION_STYLE.get(change.action, "white")
        with self._lock:
            self.console.print(Text.assemble(("  ✓ ", "green"), (f"{change.region:<14}", "bold"),
                                             f" {change.stage:<14} ", (change.action, style),
                                             f" {change.resource}", (f"  {change.reason}", "dim"),
                                             (f"  {seconds:.1f}s", "dim")), soft_wrap=True)

    def node_finished(self, stage: str, region: str, error: StepError | None) -> None:
        if error is not None and not self.quiet:
            with self._lock:
                self.console.print(Text.assemble(("  ✗ ", "red"), (f"{region:<14}", "bold"),
                                                 f" {stage:<14} ", (error.detail, "red")), soft_wrap=True)

    def note(self, line: Text) -> None:
        with self._lock:
            self.console.print(line, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                self.console.print(f"[cyan]•[/cyan] {escape(message)}", soft_wrap=True)

    def warn(self, message: str) -> None:
        with self._lock:
            self.console.print(f"[yellow]![/yellow] {escape(message)}", soft_wrap=True)

    @contextlib.contextmanager
    def waiting(self, what: str, region: str, typical: float | None = None) -> Iterator[Progress]:
        wait = _Wait(self, what, region, typical)
        if self.quiet or not self.console.is_terminal:
            yield wait
            return
        with self._lock:
            self._waits.append(wait)
            if self._live is None:
                self._live = Live(self._render_waits(), console=self.console, refresh_per_second=4,
                                  transient=True)
                self._live.start()
        try:
            yield wait
        finally:
            with self._lock:
                self._waits.remove(wait)
                if not self._waits and self._live is not None:
                    self._live.stop()
                    self._live = None
                else:
                    self.refresh()


def changes_lines(changes: list[Change]) -> list[Text]:
    """One line per change (for logs, where a table would wrap): action, stage, region, resource, reason, cost."""
    lines = []
    for c in changes:
        cost = f"  [{c.cost}]" if c.cost else ""
        lines.append(Text.assemble((f"  {c.action:<7}", ACTION_STYLE.get(c.action, "")), f" {c.stage:<14}",
                                   f" {c.region:<14} {c.resource}", (f"  {c.reason}", "dim"), cost))
    return lines


def changes_table(changes: list[Change], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("stage", "region", "action", "resource", "reason", "cost"):
        table.add_column(column, overflow="fold")
    for c in changes:
        table.add_row(c.stage, c.region, Text(c.action, ACTION_STYLE.get(c.action, "")), c.resource,
                      c.reason, str(c.cost) if c.cost else "")
    return table


def print_run_summary(console: Console, result: RunResult, done: str, seconds: float,
                      writes: dict[str, int]) -> None:
    """`done` is the past participle for the changes: "applied", "removed"."""
    for error in result.errors:
        console.print(f"[red]error[/red] {escape(error.message)}", soft_wrap=True)
    skipped = [f"{n.stage}/{n.region}" for n in result.nodes if n.skipped]
    if skipped:
        console.print(f"[yellow]skipped after a failure:[/yellow] {', '.join(skipped)}")
    n = len(result.changes)
    calls = sum(writes.values())
    state = "[green]done[/green]" if result.ok else "[red]failed[/red]"
    if n == 0 and result.ok:
        console.print(f"{state}: no change {done}, nothing to do ({calls} write calls, {seconds:.1f}s)")
    else:
        console.print(f"{state}: {n} change{'s' if n != 1 else ''} {done} in {seconds:.1f}s "
                      f"({calls} write calls)")


def print_estimate(console: Console, estimate: Estimate, remote: bool) -> None:
    """How long `up` will wait for AWS: the plan's critical path at AWS's typical durations."""
    if estimate.seconds <= 0:
        return
    where = "" if remote else " on AWS (the sandbox compresses time)"
    console.print(f"Estimated time{where}: {estimate.text()}.", markup=False, soft_wrap=True)


def print_step(console: Console, step: Any) -> None:
    mark = ("  ✓ ", "green") if step.ok else ("  ✗ ", "red")
    console.print(Text.assemble(mark, (f"{step.step:<10}", "bold"), (f" {step.seconds:6.1f}s  ", "dim"),
                                step.detail), soft_wrap=True)


def print_failover_report(console: Console, report: Any) -> None:
    table = Table(title="failover timeline", title_justify="left")
    table.add_column("step", style="bold")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("detail", overflow="fold")
    for step in report.timeline:
        table.add_row(step.step, Text("ok", "green") if step.ok else Text("FAILED", "red"), f"{step.seconds:.2f}",
                      step.detail)
    console.print(table)
    facts = [
        ("client", f"{report.client_region} ({report.client_ip})"),
        ("failed region", f"{report.failed_region} ({report.mode} mode)"),
        ("served before / during / after", f"{report.served_before} -> {report.served_after} -> "
                                           f"{report.served_after_restore}"),
        ("detection", f"{report.detection_seconds}s (bound {report.detection_bound_seconds}s)"
         if report.detection_seconds is not None else "-"),
        ("reroute", f"{report.reroute_seconds}s" if report.reroute_seconds is not None else "-"),
        ("replication lag", f"{report.replication_lag_seconds}s"
         if report.replication_lag_seconds is not None else "-"),
        ("restored", "yes" if report.restored else "NO: check the region by hand"),
    ]
    for name, value in facts:
        console.print(f"  {name:<32} {value}", markup=False)
    if report.drill is not None:
        print_drill_measures(console, report.drill)
    if report.passed:
        what = "the isolated region caught up" if report.mode == "isolate" else \
            "traffic moved away from the failed region and back"
        console.print(f"[green]PASSED[/green]: {what}, no write lost")
    elif report.failed_step is None and report.drill is not None:
        failed = [b.message for b in report.drill.budgets if not b.ok]
        console.print(f"[red]FAILED[/red]: budget exceeded: {escape('; '.join(failed))}", soft_wrap=True)
    else:
        console.print(f"[red]FAILED[/red] at step {report.failed_step}: {escape(str(report.error))}", soft_wrap=True)


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_drill_measures(console: Console, drill: Any) -> None:
    """What users felt, per client, and what was lost: the drill's measures after the timeline."""
    table = Table(title="what the clients felt", title_justify="left")
    for column, justify in (("client", "left"), ("availability", "right"), ("RTO (client)", "right"),
                            ("DNS moved", "right"), ("TTL added", "right"), ("errors", "left"),
                            ("p50/p95/p99 ms during", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, m in drill.measures.clients.items():
        percent = m.availability.percent
        during = m.latency.get("during")
        latency = "/".join(_ms(v) for v in (during.p50, during.p95, during.p99)) if during and during.count else "-"
        rto = _s(m.rto.seconds) if m.rto.seconds is not None else (m.rto.note or "-")
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(m.errors.items())) or "none"
        table.add_row(f"{name} ({drill.client_regions.get(name, '?')})",
                      "-" if percent is None else f"{percent:.1f}%", rto, _s(m.dns.seconds), _s(m.ttl_effect),
                      errors, latency)
    console.print(table)
    overall = drill.measures.overall
    facts = [("availability, overall", f"{overall.availability.percent:.2f}% of {overall.availability.requests} "
                                       "requests" if overall.availability.percent is not None else "-"),
             ("client-visible RTO, worst", _s(overall.client_rto) if overall.client_rto is not None
              else overall.client_rto_note or "-")]
    if drill.writes is not None:
        w = drill.writes
        by_region = "; ".join(f"{region} {rw.acknowledged} ok" + (f", {rw.refused} refused" if rw.refused else "")
                              + (f", p50 {_ms(rw.latency_ms.p50)} ms" if rw.latency_ms.count else "")
                              for region, rw in w.by_region.items())
        facts.append((f"writes ({drill.consistency})", f"{w.acknowledged} acknowledged, {w.refused} refused; "
                                                        f"{by_region}" if w.by_region else "none"))
    if drill.rpo_isolation is not None:
        facts.append(("at risk during isolation", f"{drill.rpo_isolation.lost} acknowledged write(s)"
                      + (f": {', '.join(drill.rpo_isolation.item_ids[:5])}" if drill.rpo_isolation.lost else "")))
    if drill.rpo_final is not None:
        lost = drill.rpo_final
        facts.append(("lost writes (RPO)", f"{lost.lost} of {lost.checked} item(s)" +
                      (f", {lost.seconds:.3f}s of writes: {', '.join(lost.item_ids[:5])}" if lost.lost else "")))
    if drill.conflicts is not None:
        c = drill.conflicts
        facts.append(("conflicts", f"{c.ids} id(s) written from two regions at once: "
                      f"{'converged' if c.converged else 'DIVERGED'}, {c.overwritten} acknowledged write(s) "
                      "overwritten (last writer wins)"))
    if drill.lag is not None:
        facts.append(("replication lag", f"p50 {_s(drill.lag.p50, 3)}, p95 {_s(drill.lag.p95, 3)}, "
                                         f"max {_s(drill.lag.max, 3)}"))
    for budget in drill.budgets:
        facts.append(("budget", ("ok: " if budget.ok else "EXCEEDED: ") + budget.message))
    for name, value in facts:
        console.print(f"  {name:<32} {value}", markup=False, soft_wrap=True)


def _region_rows(region: str, stages: dict[str, Any], replicas: dict[str, str], answers: dict[str, Any],
                 primary: str) -> dict[str, str]:
    """One column of the status table: the few facts a person checks first."""
    rows: dict[str, str] = {}
    table = (stages.get("tables") or {}).get("table")
    if region == primary:
        rows["table"] = f"{table['status']} (primary, {table.get('version') or 'not global'})" if table else "missing"
    else:
        rows["table"] = f"replica {replicas[region]}" if region in replicas else "no replica"
    fns = (stages.get("functions") or {}).get("functions") or {}
    if fns:
        active = sum(1 for f in fns.values() if isinstance(f, dict) and f.get("state") == "Active")
        rows["functions"] = f"{active}/{len(fns)} active, health STATUS {stages['functions'].get('health_status')}"
    api = stages.get("api") or {}
    rows["invoke URL"] = api.get("invoke_url") or "-"
    rows["certificate"] = (stages.get("certificates") or {}).get("status") or "-"
    rows["custom domain"] = (stages.get("domains") or {}).get("regional_domain_name") or "-"
    hc = stages.get("health-checks") or {}
    if hc.get("check_id"):
        state = "healthy" if hc.get("healthy") else "UNHEALTHY"
        since = str(hc.get("since") or "")[11:19]
        rows["health check"] = f"{state}{' since ' + since if since else ''} ({hc.get('checkers', '')})"
    else:
        rows["health check"] = "-"
    answer = answers.get(region) or {}
    rows["global name, client here"] = answer.get("served_by") or answer.get("answer") or "-"
    for name, value in stages.items():
        if isinstance(value, dict) and value.get("error"):
            rows[f"{name} (error)"] = value["error"]
    return rows


def print_status(console: Console, data: dict[str, Any], regions: tuple[str, ...], primary: str) -> None:
    glob = data.get("global", {})
    replicas = (glob.get("global-table") or {}).get("replicas") or {}
    routing = glob.get("routing") or {}
    columns = {r: _region_rows(r, data["regions"].get(r, {}), replicas, routing.get("answers") or {}, primary)
               for r in regions}
    table = Table(title="stack status", title_justify="left")
    table.add_column("", style="bold")
    for region in regions:
        table.add_column(region, overflow="fold")
    names = list(dict.fromkeys(k for col in columns.values() for k in col))
    for name in names:
        cells = [columns[r].get(name, "-") for r in regions]
        styled = [Text(c, "red") if ("UNHEALTHY" in c or "missing" in c or "error" in name) else Text(c)
                  for c in cells]
        table.add_row(name, *styled)
    console.print(table)
    gt = glob.get("global-table") or {}
    if gt.get("consistency"):
        witnesses = ", ".join(f"{r} ({s})" for r, s in (gt.get("witnesses") or {}).items())
        console.print(f"  consistency   {gt['consistency'].lower()}" + (f", witness {witnesses}" if witnesses else ""),
                      markup=False, soft_wrap=True)
    zone = glob.get("hosted-zone") or {}
    if zone:
        console.print(f"  hosted zone   {zone.get('name')} ({zone.get('zone_id')})", markup=False, soft_wrap=True)
    if routing:
        record = routing.get("policy_record") or {}
        detail = (f"policy record {record.get('state')}, {record.get('policy')} v{record.get('version')}, "
                  f"TTL {record.get('ttl')}") if record else \
            f"{len(routing.get('latency_records') or [])} latency record(s)"
        console.print(f"  global name   {routing.get('name')} ({routing.get('mode')}): {detail}", markup=False,
                      soft_wrap=True)
    lease = glob.get("lease")
    console.print(f"  lease         {lease['lease_id']}: {lease['owner']} running `{lease['command']}` since "
                  f"{lease['started_at']}, expires {lease['expires_at']} (a dead run's: multiregion force-unlock "
                  f"{lease['lease_id']})" if lease else "  lease         none (no run holds the stack)",
                  markup=False, soft_wrap=True)
    for name, value in glob.items():
        if isinstance(value, dict) and value.get("error"):
            console.print(f"  [red]{name}: {value['error']}[/red]")
