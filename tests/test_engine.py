"""The engine on its own: dependency order, parallel regions, failures that stop only their dependents."""

from __future__ import annotations

import threading
import time
from typing import Any

from multiregion.aws import ClientProvider, is_write
from multiregion.config import parse_config
from multiregion.engine import GLOBAL, Change, Context, Runner, Stage, StepError, build_graph, monthly_cost

CONFIG = parse_config({"service": "svc", "regions": ["eu-west-1", "us-east-1", "ap-southeast-2"],
                       "domain": {"name": "api.example.com", "hosted_zone": "example.com"}})


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, float]] = []
        self.lock = threading.Lock()

    def add(self, what: str, stage: str, region: str) -> None:
        with self.lock:
            self.events.append((what, stage, region, time.monotonic()))


def make_stage(name: str, scope: str = "region", depends_on: tuple[str, ...] = (), delay: float = 0.0,
               fail_in: str | None = None, rec: Recorder | None = None) -> type[Stage]:
    def plan(self: Stage, region: str) -> list[Change]:
        if region == fail_in:
            raise StepError(name, region, "thing", "boom")

        def apply() -> None:
            rec and rec.add("start", name, region)
            time.sleep(delay)
            rec and rec.add("end", name, region)

        return [self.change(region, "create", f"{name}-thing", "test", apply)]

    return type(f"{name}Stage", (Stage,), {"name": name, "help": name, "scope": scope,
                                            "depends_on": depends_on, "plan": plan})


def context() -> Context:
    return Context(config=CONFIG, clients=ClientProvider("http://127.0.0.1:9"))


def stages(ctx: Context, *classes: type[Stage]) -> dict[str, Stage]:
    return {c.name: c(ctx) for c in classes}


def test_graph_links_regions_primary_and_global_nodes() -> None:
    ctx = context()
    graph = build_graph(stages(ctx, make_stage("a", "primary"), make_stage("b", "global", ("a",)),
                               make_stage("c", "region", ("b",)), make_stage("d", "region", ("c",))))
    assert graph[("a", "eu-west-1")] == set()
    assert graph[("b", GLOBAL)] == {("a", "eu-west-1")}
    assert graph[("c", "us-east-1")] == {("b", GLOBAL)}
    assert graph[("d", "us-east-1")] == {("c", "us-east-1")}


def test_regions_run_in_parallel_and_dependencies_in_order() -> None:
    rec = Recorder()
    ctx = context()
    result = Runner(ctx, stages(ctx, make_stage("first", delay=0.3, rec=rec),
                                make_stage("second", depends_on=("first",), delay=0.05, rec=rec)), "up").run()
    assert result.ok and len(result.changes) == 6
    starts = {(s, r): t for what, s, r, t in rec.events if what == "start"}
    ends = {(s, r): t for what, s, r, t in rec.events if what == "end"}
    # The three regions' slow nodes overlap in time...
    assert max(starts[("first", r)] for r in CONFIG.regions) < min(ends[("first", r)] for r in CONFIG.regions)
    # ...and each region's second node starts only after its own first node ended.
    for r in CONFIG.regions:
        assert starts[("second", r)] >= ends[("first", r)]


def test_a_failed_node_skips_its_dependents_only() -> None:
    rec = Recorder()
    ctx = context()
    result = Runner(ctx, stages(ctx, make_stage("first", fail_in="us-east-1", rec=rec),
                                make_stage("second", depends_on=("first",), rec=rec)), "up").run()
    assert not result.ok
    assert [(e.stage, e.region) for e in result.errors] == [("first", "us-east-1")]
    assert [(n.stage, n.region) for n in result.nodes if n.skipped] == [("second", "us-east-1")]
    done = {(s, r) for what, s, r, _ in rec.events if what == "end"}
    assert ("second", "eu-west-1") in done and ("second", "ap-southeast-2") in done


def test_plan_applies_nothing() -> None:
    rec = Recorder()
    ctx = context()
    result = Runner(ctx, stages(ctx, make_stage("first", rec=rec)), "plan").run()
    assert len(result.changes) == 3 and rec.events == []


def test_down_runs_dependents_first() -> None:
    order: list[str] = []

    def destroying(name: str, depends_on: tuple[str, ...] = ()) -> type[Stage]:
        def destroy(self: Stage, region: str) -> list[Change]:
            return [self.change(region, "delete", name, "down", lambda: order.append(name))]

        return type(name, (Stage,), {"name": name, "help": name, "scope": "global",
                                     "depends_on": depends_on, "destroy": destroy})

    ctx = context()
    Runner(ctx, stages(ctx, destroying("base"), destroying("top", ("base",))), "down").run()
    assert order == ["top", "base"]


def test_monthly_cost_adds_up_the_changes_costs() -> None:
    def change(cost: str) -> Change:
        return Change("s", "eu-west-1", "create", "r", "why", cost)

    assert monthly_cost([change("$50.00/month"), change("$2.50/month"), change(""), change("$0.50/month")]) == 53.0
    assert monthly_cost([]) == 0.0


def test_write_classification() -> None:
    assert not any(is_write(op) for op in ("DescribeTable", "GetFunction", "ListTagsOfResource",
                                           "TestDNSAnswer", "Query", "Scan"))
    assert all(is_write(op) for op in ("CreateTable", "UpdateTable", "PutItem", "ChangeResourceRecordSets",
                                       "AddPermission", "CreateDeployment", "TagResource"))


def test_wait_until_reports_progress_and_times_out() -> None:
    seen: list[str] = []

    class Rep:
        def waiting(self, what: str, region: str) -> Any:
            import contextlib

            class P:
                def update(self, status: str) -> None:
                    seen.append(status)

            return contextlib.nullcontext(P())

    ctx = Context(config=CONFIG, clients=ClientProvider("http://127.0.0.1:9"), reporter=Rep(),  # type: ignore
                  sleep=lambda s: None)
    states = iter(["CREATING", "CREATING", "ACTIVE"])
    assert ctx.wait_until("x", "eu-west-1", lambda: ((s := next(states)) == "ACTIVE", s)) == "ACTIVE"
    assert seen == ["CREATING", "CREATING", "ACTIVE"]
    try:
        ctx.wait_until("never", "eu-west-1", lambda: (False, "PENDING"), timeout=0.01)
    except TimeoutError as exc:
        assert "never" in str(exc) and "PENDING" in str(exc)
    else:
        raise AssertionError("no timeout")
