"""Rich rendering of the engine's reports and results. Only the command layer imports this module."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from multiregion.engine import Change, Progress, Reporter, RunResult, StepError

ACTION_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}


class _Wait(Progress):
    def __init__(self, reporter: RichReporter, what: str, region: str):
        self.reporter, self.what, self.region = reporter, what, region
        self.status = ""
        self.started = time.monotonic()

    def update(self, status: str) -> None:
        self.status = status
        self.reporter.refresh()

    def line(self) -> Text:
        waited = time.monotonic() - self.started
        return Text.assemble(("  ⧗ ", "cyan"), (f"{self.region:<14}", "bold"),
                             f" waiting for {self.what}: ", (self.status or "...", "yellow"),
                             (f"  {waited:.0f}s", "dim"))


class RichReporter(Reporter):
    """Prints each applied change as it lands, and a live line per wait in progress."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet
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
                                             (f"  {seconds:.1f}s", "dim")))

    def node_finished(self, stage: str, region: str, error: StepError | None) -> None:
        if error is not None and not self.quiet:
            with self._lock:
                self.console.print(Text.assemble(("  ✗ ", "red"), (f"{region:<14}", "bold"),
                                                 f" {stage:<14} ", (error.detail, "red")))

    def info(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                self.console.print(f"[cyan]•[/cyan] {message}")

    def warn(self, message: str) -> None:
        with self._lock:
            self.console.print(f"[yellow]![/yellow] {message}")

    @contextlib.contextmanager
    def waiting(self, what: str, region: str) -> Iterator[Progress]:
        wait = _Wait(self, what, region)
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


def changes_table(changes: list[Change], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("stage", "region", "action", "resource", "reason", "cost"):
        table.add_column(column, overflow="fold")
    for c in changes:
        table.add_row(c.stage, c.region, Text(c.action, ACTION_STYLE.get(c.action, "")), c.resource,
                      c.reason, c.cost)
    return table


def print_run_summary(console: Console, result: RunResult, done: str, seconds: float,
                      writes: dict[str, int]) -> None:
    """`done` is the past participle for the changes: "applied", "removed"."""
    for error in result.errors:
        console.print(f"[red]error[/red] {error.message}")
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
