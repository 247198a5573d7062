"""The engine: stages, the changes they plan, and the parallel runner that applies them.

A stage reads what exists in AWS, compares it with the configuration and returns `Change`s. `plan` only
collects them; `up` applies each one, then lets the stage `settle` (wait until its resources are usable).
Per-region stages become one node per region, global stages one node; a node starts as soon as the nodes
it depends on have finished, on a thread pool, so one region's API can be built while another region
still waits for its certificate.

The engine never imports click or rich: progress goes through a `Reporter`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from multiregion.aws import ClientProvider, error_message
from multiregion.config import Config

GLOBAL = "global"
TAG_STACK = "multiregion:stack"
TAG_REGION = "multiregion:region"


# --------------------------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Change:
    """One write that `up` would make: data first, with the call that makes it attached."""

    stage: str
    region: str
    action: str  # create | update | replace | delete
    resource: str
    reason: str
    cost: str = ""
    apply: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, str]:
        data = {"stage": self.stage, "region": self.region, "action": self.action,
                "resource": self.resource, "reason": self.reason}
        if self.cost:
            data["cost"] = self.cost
        return data


def monthly_cost(changes: list[Change]) -> float:
    """The monthly cost the changes add, in US dollars (each cost reads like "$50.00/month")."""
    total = 0.0
    for change in changes:
        match = re.fullmatch(r"\$([0-9]+(?:\.[0-9]+)?)/month", change.cost.strip())
        if match:
            total += float(match.group(1))
    return round(total, 2)


class StepError(Exception):
    """A step that failed, with where it failed and what to do."""

    def __init__(self, stage: str, region: str, resource: str, message: str, hint: str = ""):
        self.stage, self.region, self.resource, self.hint = stage, region, resource, hint
        self.detail = message
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"[{self.stage} {self.region}] {self.resource}: {self.detail}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "region": self.region, "resource": self.resource,
                "error": self.detail, "hint": self.hint}


class Conflict(StepError):
    """Something we would have to overwrite or destroy that is not ours to touch."""


# -------------------------------------------------------------------------------------------- reporting


class Progress:
    """A handle on one long wait, updated by the stage while it polls."""

    def update(self, status: str) -> None:  # pragma: no cover - interface
        pass


class Reporter:
    """Progress sink for the engine. The default reports nothing; the command layer renders it."""

    def node_started(self, stage: str, region: str) -> None:
        pass

    def node_finished(self, stage: str, region: str, error: StepError | None) -> None:
        pass

    def change_applied(self, change: Change, seconds: float) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def waiting(self, what: str, region: str) -> Iterator[Progress]:
        yield Progress()


# ----------------------------------------------------------------------------------------------- stages


@dataclass
class Context:
    """What every stage gets: the configuration, the clients, the reporter and the run's options."""

    config: Config
    clients: ClientProvider
    reporter: Reporter = field(default_factory=Reporter)
    prune: bool = False
    delete_data: bool = False
    sleep: Callable[[float], None] = time.sleep
    # Wait limits, in seconds; tests and the sandbox shorten poll intervals, never the meaning.
    poll_interval: float = 1.0
    wait_timeout: float = 900.0
    _memo: dict[Any, Any] = field(default_factory=dict)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Compute a value once per run (e.g. the hosted zone id), shared across threads.

        Only this key's lock is held while computing, so a slow AWS call behind one key never blocks
        another; a failure is not remembered, so the next caller tries again."""
        with self._memo_lock:
            cell = self._memo.setdefault(key, {"lock": threading.Lock()})
        with cell["lock"]:
            if "value" not in cell:
                cell["value"] = compute()
            return cell["value"]

    def forget(self, key: Any) -> None:
        with self._memo_lock:
            self._memo.pop(key, None)

    def tags(self, region: str | None = None) -> dict[str, str]:
        tags = {TAG_STACK: self.config.service}
        if region and region != GLOBAL:
            tags[TAG_REGION] = region
        return tags

    def wait_until(self, what: str, region: str, check: Callable[[], tuple[bool, str]],
                   timeout: float | None = None, interval: float | None = None) -> str:
        """Poll `check` (returning done, status) until done, showing progress; TimeoutError otherwise."""
        deadline = time.monotonic() + (timeout or self.wait_timeout)
        with self.reporter.waiting(what, region) as progress:
            while True:
                done, status = check()
                progress.update(status)
                if done:
                    return status
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gave up waiting for {what} (last status: {status})")
                self.sleep(interval or self.poll_interval)


class Stage:
    """One idempotent step. Subclasses set the class attributes and implement `plan`."""

    name: ClassVar[str]
    help: ClassVar[str]
    # "region": one node per configured region; "primary": one node in the primary region;
    # "global": one node for the whole stack (its changes name the region they touch).
    scope: ClassVar[str] = "region"
    depends_on: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.config = ctx.config

    def regions(self) -> Sequence[str]:
        if self.scope == "region":
            return self.config.regions
        return (self.config.primary,) if self.scope == "primary" else (GLOBAL,)

    def plan(self, region: str) -> list[Change]:
        raise NotImplementedError

    def settle(self, region: str) -> None:
        """Wait until what the stage converged is usable (ACTIVE, ISSUED...). Default: nothing to wait."""

    def destroy(self, region: str) -> list[Change]:
        """The changes that remove what this stage owns (for `down`)."""
        return []

    def status(self, region: str) -> dict[str, Any]:
        """What exists, for `status`."""
        return {}

    def change(self, region: str, action: str, resource: str, reason: str,
               apply: Callable[[], Any], cost: str = "") -> Change:
        return Change(self.name, region, action, resource, reason, cost, apply)


# ----------------------------------------------------------------------------------------------- runner


@dataclass
class NodeResult:
    stage: str
    region: str
    changes: list[Change] = field(default_factory=list)
    error: StepError | None = None
    skipped: bool = False
    seconds: float = 0.0


@dataclass
class RunResult:
    nodes: list[NodeResult]

    @property
    def changes(self) -> list[Change]:
        return [c for n in self.nodes for c in n.changes]

    @property
    def errors(self) -> list[StepError]:
        return [n.error for n in self.nodes if n.error]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(n.skipped for n in self.nodes)


Node = tuple[str, str]


def build_graph(stages: dict[str, Stage], reverse: bool = False) -> dict[Node, set[Node]]:
    """Nodes and what each waits for. Dependencies on stages outside the selection are ignored."""
    graph: dict[Node, set[Node]] = {}
    for stage in stages.values():
        for region in stage.regions():
            deps: set[Node] = set()
            for dep_name in stage.depends_on:
                dep = stages.get(dep_name)
                if dep is None:
                    continue
                if dep.scope == "region" and stage.scope == "region":
                    deps.add((dep_name, region))
                else:
                    deps.update((dep_name, r) for r in dep.regions())
            graph[(stage.name, region)] = deps
    if reverse:
        rev: dict[Node, set[Node]] = {node: set() for node in graph}
        for node, deps in graph.items():
            for dep in deps:
                rev[dep].add(node)
        return rev
    return graph


class Runner:
    """Runs stage nodes in dependency order on a thread pool.

    mode "plan": collect changes only. "up": plan, apply, settle. "down": destroy in reverse order.
    A failed node stops its dependents (reported as skipped); unrelated nodes carry on.
    """

    def __init__(self, ctx: Context, stages: dict[str, Stage], mode: str, max_workers: int = 8):
        self.ctx, self.stages, self.mode, self.max_workers = ctx, stages, mode, max_workers

    def run(self) -> RunResult:
        graph = build_graph(self.stages, reverse=self.mode == "down")
        if self.mode == "plan":
            # Planning writes nothing, so every node may read at once.
            graph = {node: set() for node in graph}
        results: dict[Node, NodeResult] = {}
        pending = dict(graph)
        running: dict[Future[NodeResult], Node] = {}
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="node") as pool:
            while pending or running:
                for node, deps in list(pending.items()):
                    if any(d in pending or any(d == r for r in running.values()) for d in deps):
                        continue
                    del pending[node]
                    failed = [d for d in deps if d in results and (results[d].error or results[d].skipped)]
                    if failed:
                        results[node] = NodeResult(*node, skipped=True)
                        continue
                    running[pool.submit(self._run_node, *node)] = node
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    node = running.pop(future)
                    results[node] = future.result()
        order = {name: i for i, name in enumerate(self.stages)}
        return RunResult(sorted(results.values(), key=lambda n: (order[n.stage], n.region)))

    def _run_node(self, stage_name: str, region: str) -> NodeResult:
        stage = self.stages[stage_name]
        result = NodeResult(stage_name, region)
        reporter = self.ctx.reporter
        started = time.monotonic()
        reporter.node_started(stage_name, region)
        resource = "(reading current state)"
        try:
            changes = stage.destroy(region) if self.mode == "down" else stage.plan(region)
            for change in changes:
                if self.mode == "plan":
                    result.changes.append(change)
                    continue
                resource = change.resource
                t0 = time.monotonic()
                if change.apply is not None:
                    change.apply()
                result.changes.append(change)
                reporter.change_applied(change, time.monotonic() - t0)
            if self.mode == "up":
                resource = "(waiting until ready)"
                stage.settle(region)
        except StepError as exc:
            result.error = exc
        except (ClientError, BotoCoreError) as exc:
            result.error = StepError(stage_name, region, resource, error_message(exc), _hint_for(exc))
        except TimeoutError as exc:
            result.error = StepError(stage_name, region, resource, str(exc),
                                     "run the same command again: it resumes where it stopped")
        result.seconds = time.monotonic() - started
        reporter.node_finished(stage_name, region, result.error)
        return result


def _hint_for(exc: BaseException) -> str:
    text = str(exc)
    if "AccessDenied" in text or "UnauthorizedOperation" in text or "not authorized" in text:
        return "the credentials in use lack a permission for this call"
    if "Could not connect" in text or "EndpointConnectionError" in type(exc).__name__:
        return "is the endpoint reachable? for the sandbox: multiregion sandbox status"
    if "Throttl" in text or "TooManyRequests" in text:
        return "AWS throttled the call; run again in a minute"
    return "run again with --debug for the full traceback"
