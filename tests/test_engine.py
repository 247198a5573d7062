"""The engine on its own: dependency order, parallel regions, failures that stop only their dependents, the
graph checked before anything runs, and values passed between nodes as data."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from multiregion.aws import ClientProvider, is_write
from multiregion.config import parse_config
from multiregion.engine import (
    GLOBAL,
    Context,
    Env,
    GraphError,
    Inputs,
    NodePlan,
    Reader,
    Runner,
    Stage,
    StepError,
    build_graph,
    check_stages,
    with_dependencies,
)
from multiregion.executor import BuiltinContext, Executor, Progress, builtin
from multiregion.plan import Builtin, Change, Cost, Ref, monthly_cost, usd

CONFIG = parse_config({"service": "svc", "regions": ["eu-west-1", "us-east-1", "ap-southeast-2"],
                       "domain": {"name": "api.example.com", "hosted_zone": "example.com"}})


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, float]] = []
        self.lock = threading.Lock()

    def add(self, what: str, stage: str, region: str) -> None:
        with self.lock:
            self.events.append((what, stage, region, time.monotonic()))


RECORDERS: dict[str, tuple[Recorder, float]] = {}


@builtin("test.record")
def _record(ctx: BuiltinContext, region: str, key: str, stage: str, delay: float = 0.0,
            produce: str = "") -> dict[str, Any]:
    rec = RECORDERS[key][0]
    rec.add("start", stage, region)
    time.sleep(delay)
    rec.add("end", stage, region)
    return {"value": produce or f"{stage}-{region}"}


def make_stage(name: str, scope: str = "region", depends_on: tuple[str, ...] = (), delay: float = 0.0,
               fail_in: str | None = None, rec: Recorder | None = None, boom_in: str | None = None) -> Stage[Any]:
    key = f"{name}-{id(rec)}"
    if rec is not None:
        RECORDERS[key] = (rec, delay)

    class Made(Stage[None]):
        depends_on: ClassVar[tuple[str, ...]] = ()

        def read(self, aws: Reader, region: str) -> None:
            if region == boom_in:
                raise KeyError("a bug")
            return None

        def diff(self, env: Env, region: str, snapshot: None, inputs: Inputs) -> NodePlan:
            if region == fail_in:
                raise StepError(name, region, "thing", "boom")
            ops = (Builtin("test.record", region, {"key": key, "stage": name, "delay": delay},
                           outputs={"thing": "value"}),) if rec else ()
            return NodePlan(changes=(self.change(region, "create", f"{name}-thing", "test", *ops),),
                            outputs={"thing": self.ref(region, "thing", "the thing")})

    Made.name, Made.help, Made.scope, Made.depends_on = name, name, scope, depends_on
    return Made()


def context() -> Context:
    return Context(config=CONFIG, clients=ClientProvider("http://127.0.0.1:9"), identity=("123456789012", "aws"),
                   packages={})


def test_graph_links_regions_primary_and_global_nodes() -> None:
    graph = build_graph([make_stage("a", "primary"), make_stage("b", "global", ("a",)),
                         make_stage("c", "region", ("b",)), make_stage("d", "region", ("c",))], CONFIG)
    assert graph[("a", "eu-west-1")] == set()
    assert graph[("b", GLOBAL)] == {("a", "eu-west-1")}
    assert graph[("c", "us-east-1")] == {("b", GLOBAL)}
    assert graph[("d", "us-east-1")] == {("c", "us-east-1")}


def test_a_misspelled_dependency_is_refused_before_anything_runs() -> None:
    with pytest.raises(GraphError, match="'b' depends on 'aa', which is not a stage"):
        check_stages([make_stage("a"), make_stage("b", depends_on=("aa",))])
    with pytest.raises(GraphError):
        Runner(context(), [make_stage("a"), make_stage("b", depends_on=("aa",))], "up")


def test_a_cycle_is_refused_with_its_path() -> None:
    with pytest.raises(GraphError, match="cycle: a -> c -> b -> a|cycle: b -> a -> c -> b|cycle: c -> b -> a -> c"):
        check_stages([make_stage("a", depends_on=("c",)), make_stage("b", depends_on=("a",)),
                      make_stage("c", depends_on=("b",))])


def test_only_brings_in_what_the_selected_stages_depend_on() -> None:
    stages = [make_stage("a"), make_stage("b", depends_on=("a",)), make_stage("c", depends_on=("b",)),
              make_stage("d")]
    assert [s.name for s in with_dependencies(stages, ["c"])] == ["a", "b", "c"]
    with pytest.raises(GraphError, match="no stage 'zz'"):
        with_dependencies(stages, ["zz"])


def test_regions_run_in_parallel_and_dependencies_in_order() -> None:
    rec = Recorder()
    result = Runner(context(), [make_stage("first", delay=0.3, rec=rec),
                                make_stage("second", depends_on=("first",), delay=0.05, rec=rec)], "up").run()
    assert result.ok and len(result.changes) == 6
    starts = {(s, r): t for what, s, r, t in rec.events if what == "start"}
    ends = {(s, r): t for what, s, r, t in rec.events if what == "end"}
    # The three regions' slow nodes overlap in time...
    assert max(starts[("first", r)] for r in CONFIG.regions) < min(ends[("first", r)] for r in CONFIG.regions)
    # ...and each region's second node starts only after its own first node ended.
    for r in CONFIG.regions:
        assert starts[("second", r)] >= ends[("first", r)]


def test_every_ready_node_runs_at_once_however_many_wait() -> None:
    # Five stages in three regions: fifteen nodes that only wait (as certificates do for ACM) and a primary
    # node that could start at once (the table, head of the replica chain). None may queue behind the others.
    rec = Recorder()
    waiting = [make_stage(f"waits{i}", delay=0.5, rec=rec) for i in range(5)]
    result = Runner(context(), [*waiting, make_stage("chain", "primary", rec=rec)], "up").run()
    assert result.ok and len(result.changes) == 16
    starts = [t for what, _, _, t in rec.events if what == "start"]
    first_end = min(t for what, s, _, t in rec.events if what == "end" and s != "chain")
    assert len(starts) == 16 and max(starts) < first_end


def test_a_failed_node_skips_its_dependents_only() -> None:
    rec = Recorder()
    result = Runner(context(), [make_stage("first", fail_in="us-east-1", rec=rec),
                                make_stage("second", depends_on=("first",), rec=rec)], "up").run()
    assert not result.ok
    assert [(e.stage, e.region) for e in result.errors] == [("first", "us-east-1")]
    assert [(n.stage, n.region) for n in result.nodes if n.skipped] == [("second", "us-east-1")]
    done = {(s, r) for what, s, r, _ in rec.events if what == "end"}
    assert ("second", "eu-west-1") in done and ("second", "ap-southeast-2") in done


def test_an_unexpected_exception_fails_its_node_as_a_bug_and_does_not_hang() -> None:
    rec = Recorder()
    result = Runner(context(), [make_stage("first", boom_in="eu-west-1", rec=rec),
                                make_stage("second", depends_on=("first",), rec=rec)], "up").run()
    (error,) = result.errors
    assert (error.stage, error.region) == ("first", "eu-west-1")
    assert "KeyError" in error.detail and "bug" in error.hint and error.trace
    assert [(n.stage, n.region) for n in result.nodes if n.skipped] == [("second", "eu-west-1")]


def test_plan_applies_nothing_and_hands_placeholders_downstream() -> None:
    rec = Recorder()
    seen: list[Any] = []

    class Consumer(Stage[None]):
        name, help, scope, depends_on = "consumer", "c", "global", ("first",)

        def read(self, aws: Reader, region: str) -> None:
            return None

        def diff(self, env: Env, region: str, snapshot: None, inputs: Inputs) -> NodePlan:
            seen.append(inputs.get("first", "us-east-1", "thing"))
            return NodePlan()

    result = Runner(context(), [make_stage("first", rec=rec), Consumer()], "plan").run()
    assert len(result.changes) == 3 and rec.events == []
    assert seen == [Ref("first/us-east-1", "thing", "(the thing in us-east-1)")]
    assert str(seen[0]) == "(the thing in us-east-1)"


def test_up_hands_the_values_operations_produced_downstream() -> None:
    rec = Recorder()
    seen: list[Any] = []

    class Consumer(Stage[None]):
        name, help, scope, depends_on = "consumer", "c", "global", ("first",)

        def read(self, aws: Reader, region: str) -> None:
            return None

        def diff(self, env: Env, region: str, snapshot: None, inputs: Inputs) -> NodePlan:
            seen.append(sorted((r, o["thing"]) for r, o in inputs.by_region("first").items()))
            return NodePlan()

    assert Runner(context(), [make_stage("first", rec=rec), Consumer()], "up").run().ok
    assert seen == [[(r, f"first-{r}") for r in sorted(CONFIG.regions)]]


def test_down_runs_dependents_first() -> None:
    order: list[str] = []

    @builtin("test.order")
    def _order(ctx: BuiltinContext, region: str, name: str) -> dict[str, Any]:
        order.append(name)
        return {}

    def destroying(name: str, depends_on: tuple[str, ...] = ()) -> Stage[Any]:
        class Made(Stage[None]):
            def read(self, aws: Reader, region: str) -> None:
                return None

            def destroy(self, env: Env, region: str, snapshot: None) -> NodePlan:
                return NodePlan(changes=(self.change(region, "delete", name, "down",
                                                     Builtin("test.order", region, {"name": name})),))

        Made.name, Made.help, Made.scope, Made.depends_on = name, name, "global", depends_on
        return Made()

    Runner(context(), [destroying("base"), destroying("top", ("base",))], "down").run()
    assert order == ["top", "base"]


def test_monthly_cost_adds_up_the_changes_costs_as_decimals() -> None:
    def change(cost: Cost | None) -> Change:
        return Change("s", "eu-west-1", "create", "r", "why", cost=cost)

    total = monthly_cost([change(usd("50.00")), change(usd("2.50")), change(None), change(usd("0.10")),
                          change(usd("0.20"))])
    assert str(total) == "52.80"  # no float rounding (0.1 + 0.2)
    assert monthly_cost([]) == 0
    assert str(usd("50")) == "$50.00/month"
    assert change(usd("2.50")).to_dict()["cost"] == "$2.50/month"


def test_write_classification() -> None:
    assert not any(is_write(op) for op in ("DescribeTable", "GetFunction", "ListTagsOfResource",
                                           "TestDNSAnswer", "Query", "Scan"))
    assert all(is_write(op) for op in ("CreateTable", "UpdateTable", "PutItem", "ChangeResourceRecordSets",
                                       "AddPermission", "CreateDeployment", "TagResource"))


def test_an_unknown_ref_is_reported_as_a_bug_not_sent_to_aws() -> None:
    executor = Executor(ClientProvider("http://127.0.0.1:9"), context().reporter)
    from multiregion.executor import ExecutionError

    with pytest.raises(ExecutionError, match="not known"):
        executor.resolve({"Id": Ref("x/global", "id", "(x)")})
    executor.store("x/global", "id", "abc")
    assert executor.resolve({"Id": Ref("x/global", "id", "(x)"), "List": (1, 2)}) == {"Id": "abc", "List": [1, 2]}


class Settling:
    """A table that is CREATING for `polls` DescribeTable calls, then ACTIVE."""

    def __init__(self, polls: int):
        self.polls = polls

    def describe_table(self, **_: Any) -> dict[str, Any]:
        self.polls -= 1
        return {"Table": {"TableStatus": "ACTIVE" if self.polls < 0 else "CREATING"}}


@pytest.mark.parametrize(("duration", "longest"), [("lambda_pending", 0.5), ("replica_active", 5.0), ("", 5.0)])
def test_a_wait_is_polled_as_often_as_its_aws_duration_needs(duration: str, longest: float) -> None:
    from multiregion.plan import Wait

    pauses: list[float] = []
    table = Settling(polls=12)
    executor = Executor(lambda service, region: table, context().reporter, sleep=pauses.append, poll_interval=5.0)
    executor.wait(Wait("it", "dynamodb", "eu-west-1", "describe_table", {}, "Table.TableStatus", ("ACTIVE",),
                       duration=duration))
    # The first pauses are short either way; the steady one is a tenth of a 2 s wait, the poll interval for
    # a 3-minute one or a wait with no known duration.
    assert pauses[0] == 0.5 and max(pauses) == longest and len(pauses) == 12


class Lines:
    """A reporter that keeps the (what, region, typical) of every wait it is shown."""

    def __init__(self) -> None:
        self.waits: list[tuple[str, str, float | None]] = []

    @contextlib.contextmanager
    def waiting(self, what: str, region: str, typical: float | None = None) -> Iterator[Progress]:
        self.waits.append((what, region, typical))
        yield Progress()

    def info(self, message: str) -> None:
        pass


@pytest.mark.parametrize(("node", "service", "shown"), [
    ("health-checks/eu-west-1", "route53", "eu-west-1"),  # polls Route 53 in us-east-1, waits for eu-west-1
    ("routing/global", "route53", "global"),
    ("global-table/global", "dynamodb", "us-east-1")])
def test_a_wait_line_names_the_region_it_waits_for_and_what_aws_typically_takes(node: str, service: str,
                                                                                 shown: str) -> None:
    from multiregion.plan import Wait

    lines = Lines()
    executor = Executor(lambda s, r: Settling(polls=0), lines, sleep=lambda s: None)  # type: ignore[arg-type]
    executor.run(node, Wait("it", service, "us-east-1", "describe_table", {}, "Table.TableStatus", ("ACTIVE",),
                            duration="health_check_first_verdict"))
    assert lines.waits == [("it", shown, 30.0)]
