"""The engine: stages, the graph of their nodes, and the runner that plans, applies or removes them.

A stage is three parts, so that what it decides can be tested without AWS:

* **read** (`Stage.read`): one node's relevant AWS state, into a frozen snapshot (lookups only);
* **diff** (`Stage.diff`, `Stage.destroy`): a pure function from the config, the snapshot and what the
  node's dependencies handed over (`Inputs`) to a `NodePlan`: changes (each with its operations), waits,
  outputs for the dependents, warnings;
* **apply**: the `Executor` performs the operations; values AWS assigns travel as `Ref`s.

Per-region stages become one node per configured region, `primary` stages one node in the primary
region, `global` stages one node. A node starts as soon as its own dependencies finished (on a thread
pool), so one region builds its API while another still waits for its certificate; a failed node skips
only its dependents. `plan` walks the same graph as `up` and hands placeholders downstream where `up`
would hand real ids, so the plan on a fresh account lists exactly what `up` will do.

The engine never imports click or rich: progress goes through a `Reporter`.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from multiregion import estimate as estimates
from multiregion.app import Package, build_packages
from multiregion.aws import ClientProvider, error_code, error_message
from multiregion.config import Config
from multiregion.executor import ExecutionError, Executor, Progress
from multiregion.plan import Change, Inputs, NodePlan, Ref, Wait

GLOBAL = "global"
TAG_STACK = "multiregion:stack"
TAG_REGION = "multiregion:region"
MODES = ("plan", "up", "down", "plan-down")  # plan-down: what `down` would remove, nothing written
BUG_HINT = "this is a bug in multiregion: please report it with the output of the same command run with --debug"

__all__ = ["GLOBAL", "TAG_STACK", "TAG_REGION", "Change", "Conflict", "Context", "Env", "GraphError", "Inputs",
           "NodePlan", "NodeResult", "Progress", "Reader", "Reporter", "RunResult", "Runner", "Stage", "StepError",
           "Unreachable", "build_graph", "stack_tags"]


# ----------------------------------------------------------------------------------------------- errors


class StepError(Exception):
    """A step that failed, with where it failed and what to do."""

    def __init__(self, stage: str, region: str, resource: str, message: str, hint: str = "",
                 trace: str | None = None):
        self.stage, self.region, self.resource, self.hint = stage, region, resource, hint
        self.detail = message
        self.trace = trace
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


class GraphError(Exception):
    """The stages' dependencies do not form a graph the runner can walk (a misspelled name, a cycle)."""


class Unreachable(Exception):
    """The stack cannot be read at all (no credentials, an expired token, no network): said once."""

    def __init__(self, reason: str, hint: str):
        super().__init__(f"{reason}\n  hint: {hint}")
        self.reason, self.hint = reason, hint


# -------------------------------------------------------------------------------------------- reporting


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
    def waiting(self, what: str, region: str, typical: float | None = None) -> Iterator[Progress]:
        """A wait in progress; `typical` is how long AWS usually takes for it, in seconds, when known."""
        yield Progress()


# ------------------------------------------------------------------------------------------- contexts


@dataclass(frozen=True)
class Env:
    """What a diff may know besides the snapshot: the config, the account, the run's options."""

    config: Config
    account: str = "123456789012"
    partition: str = "aws"
    prune: bool = False
    delete_data: bool = False
    # The functions' zips, built once per run before anything is read (see app.build_packages).
    packages: Mapping[str, Package] = field(default_factory=dict)

    def tags(self, region: str | None = None) -> dict[str, str]:
        return stack_tags(self.config, region)


def stack_tags(config: Config, region: str | None = None) -> dict[str, str]:
    tags = {TAG_STACK: config.service}
    if region and region != GLOBAL:
        tags[TAG_REGION] = region
    return tags


@dataclass(frozen=True)
class Reader:
    """What a read gets: the clients and the env. Reads only; every write goes through the executor."""

    env: Env
    clients: ClientProvider

    @property
    def config(self) -> Config:
        return self.env.config

    def client(self, service: str, region: str) -> Any:
        return self.clients(service, region)


@dataclass
class Context:
    """One command run: the configuration, the clients, the reporter and the run's options."""

    config: Config
    clients: ClientProvider
    reporter: Reporter = field(default_factory=Reporter)
    prune: bool = False
    delete_data: bool = False
    sleep: Callable[[float], None] = time.sleep
    poll_interval: float = 1.0
    # An upper bound on every wait, for tests; None leaves each wait its AWS timeout.
    max_wait: float | None = None
    identity: tuple[str, str] | None = None  # (account, partition), asked once per run
    packages: Mapping[str, Package] | None = None

    def env(self) -> Env:
        account, partition = self.caller_identity()
        if self.packages is None:
            self.packages = build_packages(self.config)
        return Env(self.config, account, partition, self.prune, self.delete_data, self.packages)

    def reader(self) -> Reader:
        return Reader(self.env(), self.clients)

    def executor(self) -> Executor:
        return Executor(self.clients, self.reporter, self.sleep, self.poll_interval, self.max_wait)

    def caller_identity(self) -> tuple[str, str]:
        """(account id, partition) of the credentials in use. The first call of every run, so a missing
        credential or an unreachable endpoint is said once, not by every stage."""
        if self.identity is None:
            try:
                answer = self.clients("sts", self.config.primary).get_caller_identity()
            except (NoCredentialsError, NoRegionError) as exc:
                raise Unreachable(f"no AWS credentials ({exc})", CREDENTIALS_HINT) from None
            except ClientError as exc:
                if error_code(exc) in CREDENTIAL_CODES:
                    raise Unreachable(f"AWS refused the credentials: {error_message(exc)}", CREDENTIALS_HINT) from None
                raise
            except BotoCoreError as exc:
                raise Unreachable(f"cannot reach AWS: {exc}", NETWORK_HINT) from None
            self.identity = (str(answer["Account"]), str(answer["Arn"]).split(":")[1])
        return self.identity


CREDENTIAL_CODES = ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
CREDENTIALS_HINT = ("configure credentials (`aws configure`, `aws sso login`, or AWS_PROFILE), or try the tool "
                    "locally with `endpoint: sandbox` in the config")
NETWORK_HINT = "check the network and the config's endpoint; for the sandbox: multiregion sandbox status"


# ----------------------------------------------------------------------------------------------- stages


S = TypeVar("S")


class Stage(Generic[S]):
    """One idempotent step. A stage holds no state of its own: everything comes in as arguments."""

    name: ClassVar[str]
    help: ClassVar[str]
    # "region": one node per configured region; "primary": one node in the primary region;
    # "global": one node for the whole stack (its changes name the region they touch).
    scope: ClassVar[str] = "region"
    depends_on: ClassVar[tuple[str, ...]] = ()

    def regions(self, config: Config) -> tuple[str, ...]:
        if self.scope == "region":
            return config.regions
        return (config.primary,) if self.scope == "primary" else (GLOBAL,)

    def node(self, region: str) -> str:
        return f"{self.name}/{region}"

    def ref(self, region: str, name: str, placeholder: str) -> Ref:
        """A value this node's own operations will produce (see plan.Ref), shown as "(placeholder)"."""
        where = f" in {region}" if self.scope == "region" else ""
        return Ref(self.node(region), name, f"({placeholder}{where})")

    def read(self, aws: Reader, region: str) -> S:
        raise NotImplementedError

    def read_down(self, aws: Reader, region: str) -> S:
        """What `down` needs to read (by default what `up` reads; some stages need more to decide)."""
        return self.read(aws, region)

    def diff(self, env: Env, region: str, snapshot: S, inputs: Inputs) -> NodePlan:
        raise NotImplementedError

    def destroy(self, env: Env, region: str, snapshot: S) -> NodePlan:
        """What `down` removes of what this stage owns. Default: nothing."""
        return NodePlan()

    def status(self, aws: Reader, region: str) -> Any:
        """A typed summary of what exists, for `status` (a dataclass with `to_dict`)."""
        return None

    def change(self, region: str, action: str, resource: str, reason: str, *operations: Any,
               cost: Any = None) -> Change:
        return Change(self.name, region, action, resource, reason, tuple(operations), cost)


# ---------------------------------------------------------------------------------------------- graph


Node = tuple[str, str]


def check_stages(stages: Sequence[Stage[Any]]) -> None:
    """Refuse a misspelled dependency or a cycle, naming it, before anything runs."""
    names = {s.name for s in stages}
    if len(names) != len(stages):
        raise GraphError(f"two stages share a name: {sorted(s.name for s in stages)}")
    by_name = {s.name: s for s in stages}
    for stage in stages:
        for dep in stage.depends_on:
            if dep not in names:
                raise GraphError(f"stage {stage.name!r} depends on {dep!r}, which is not a stage "
                                 f"(known: {', '.join(sorted(names))})")
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise GraphError(f"the stages' dependencies form a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for dep in by_name[name].depends_on:
            visit(dep, [*path, name])
        state[name] = 2

    for stage in stages:
        visit(stage.name, [])


def with_dependencies(stages: Sequence[Stage[Any]], selected: Iterable[str]) -> list[Stage[Any]]:
    """The selected stages and every stage they depend on, in the registry's order."""
    by_name = {s.name: s for s in stages}
    wanted: set[str] = set()
    todo = list(selected)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if name not in by_name:
            raise GraphError(f"no stage {name!r} (known: {', '.join(by_name)})")
        wanted.add(name)
        todo.extend(by_name[name].depends_on)
    return [s for s in stages if s.name in wanted]


def build_graph(stages: Sequence[Stage[Any]], config: Config, reverse: bool = False) -> dict[Node, set[Node]]:
    """Nodes and the nodes each waits for. Every dependency must be among `stages`."""
    check_stages_closed(stages)
    by_name = {s.name: s for s in stages}
    graph: dict[Node, set[Node]] = {}
    for stage in stages:
        for region in stage.regions(config):
            deps: set[Node] = set()
            for dep_name in stage.depends_on:
                dep = by_name[dep_name]
                if dep.scope == "region" and stage.scope == "region":
                    deps.add((dep_name, region))
                else:
                    deps.update((dep_name, r) for r in dep.regions(config))
            graph[(stage.name, region)] = deps
    if not reverse:
        return graph
    rev: dict[Node, set[Node]] = {node: set() for node in graph}
    for node, waits_for in graph.items():
        for upstream in waits_for:
            rev[upstream].add(node)
    return rev


def check_stages_closed(stages: Sequence[Stage[Any]]) -> None:
    names = {s.name for s in stages}
    for stage in stages:
        missing = [d for d in stage.depends_on if d not in names]
        if missing:
            raise GraphError(f"stage {stage.name!r} needs {', '.join(missing)}, which is not selected")


# ----------------------------------------------------------------------------------------------- runner


@dataclass
class NodeResult:
    stage: str
    region: str
    changes: list[Change] = field(default_factory=list)
    error: StepError | None = None
    skipped: bool = False
    seconds: float = 0.0
    outputs: Mapping[str, Any] = field(default_factory=dict)
    waits: list[Wait] = field(default_factory=list)  # the node's settling waits (planned, or made)


@dataclass
class RunResult:
    nodes: list[NodeResult]
    mode: str = "up"
    graph: Mapping[Node, set[Node]] = field(default_factory=dict)  # node -> the nodes it waited for

    @property
    def changes(self) -> list[Change]:
        return [c for n in self.nodes for c in n.changes]

    @property
    def errors(self) -> list[StepError]:
        return [n.error for n in self.nodes if n.error]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(n.skipped for n in self.nodes)

    def estimate(self) -> estimates.Estimate:
        """The shortest wall time of these changes on AWS: the longest chain of AWS's waits (see
        `multiregion.estimate`)."""
        return estimates.of_nodes(self.graph, {(n.stage, n.region): (n.changes, n.waits) for n in self.nodes})


class Runner:
    """Runs stage nodes in dependency order on a thread pool.

    mode "plan": read and diff only, outputs handed downstream as placeholders. "up": read, diff, apply.
    "down": read and destroy, in reverse order. A failed node stops its dependents (reported as skipped);
    unrelated nodes carry on.
    """

    def __init__(self, ctx: Context, stages: Sequence[Stage[Any]], mode: str, max_workers: int | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        check_stages(stages)
        self.ctx, self.stages, self.mode = ctx, list(stages), mode
        self.by_name = {s.name: s for s in self.stages}
        self.graph = build_graph(self.stages, ctx.config, reverse=mode in ("down", "plan-down"))
        # A thread per node by default: nodes spend their time waiting for AWS, and a pool smaller than the
        # graph would keep a ready node (the replica chain) queued behind others that only wait (eight
        # regions' certificates), putting their waits on its path.
        self.max_workers = max_workers or max(1, len(self.graph))

    def run(self) -> RunResult:
        env = self.ctx.env()  # asks for the caller's identity first: Unreachable is raised here, once
        reader = Reader(env, self.ctx.clients)
        executor = self.ctx.executor()
        results: dict[Node, NodeResult] = {}
        pending = dict(self.graph)
        running: dict[Future[NodeResult], Node] = {}
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="node") as pool:
            while pending or running:
                for node, deps in list(pending.items()):
                    if any(d not in results for d in deps):
                        continue
                    del pending[node]
                    if any(results[d].error or results[d].skipped for d in deps):
                        results[node] = NodeResult(*node, skipped=True)
                        continue
                    inputs = Inputs({d: results[d].outputs for d in deps})
                    running[pool.submit(self._run_node, node, env, reader, executor, inputs)] = node
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    results[running.pop(future)] = future.result()
        order = {s.name: i for i, s in enumerate(self.stages)}
        return RunResult(sorted(results.values(), key=lambda n: (order[n.stage], n.region)), self.mode,
                         {node: set(deps) for node, deps in self.graph.items()})

    def _run_node(self, node: Node, env: Env, reader: Reader, executor: Executor, inputs: Inputs) -> NodeResult:
        stage_name, region = node
        stage = self.by_name[stage_name]
        result = NodeResult(stage_name, region)
        reporter = self.ctx.reporter
        started = time.monotonic()
        reporter.node_started(stage_name, region)
        resource = "(reading current state)"
        try:
            removing = self.mode in ("down", "plan-down")
            snapshot = stage.read_down(reader, region) if removing else stage.read(reader, region)
            resource = "(deciding changes)"
            plan = stage.destroy(env, region, snapshot) if removing else stage.diff(env, region, snapshot, inputs)
            for warning in plan.warnings:
                reporter.warn(warning)
            result.waits = list(plan.waits)
            if self.mode in ("plan", "plan-down"):
                result.changes = list(plan.changes)
                result.outputs = dict(plan.outputs)
            else:
                for change in plan.changes:
                    resource = change.resource
                    t0 = time.monotonic()
                    executor.apply(stage.node(region), change)
                    result.changes.append(change)
                    reporter.change_applied(change, time.monotonic() - t0)
                for settle in plan.waits:
                    resource = settle.what
                    executor.run(stage.node(region), settle)
                resource = "(outputs)"
                result.outputs = {k: executor.resolve(v) for k, v in plan.outputs.items()}
        except StepError as exc:
            result.error = exc
        except ExecutionError as exc:
            result.error = StepError(stage_name, region, resource, str(exc), exc.hint)
        except (ClientError, BotoCoreError) as exc:
            result.error = StepError(stage_name, region, resource, error_message(exc), hint_for(exc))
        except Exception as exc:  # a bug must fail its node, never hang the runner
            result.error = StepError(stage_name, region, resource, f"{type(exc).__name__}: {exc}", BUG_HINT,
                                     trace=traceback.format_exc())
        result.seconds = time.monotonic() - started
        reporter.node_finished(stage_name, region, result.error)
        return result


def read_status(ctx: Context, stages: Sequence[Stage[Any]], max_workers: int = 8
                ) -> tuple[dict[Node, Any], list[StepError]]:
    """Every stage's status, per node, read in parallel; a failed read is an error, never hidden."""
    reader = ctx.reader()
    jobs = [(s, region) for s in stages for region in s.regions(ctx.config)]

    def one(job: tuple[Stage[Any], str]) -> tuple[Node, Any, StepError | None]:
        stage, region = job
        node = (stage.name, region)
        try:
            return node, stage.status(reader, region), None
        except StepError as exc:
            return node, None, exc
        except (ClientError, BotoCoreError) as exc:
            return node, None, StepError(stage.name, region, "(status)", error_message(exc), hint_for(exc))
        except Exception as exc:
            return node, None, StepError(stage.name, region, "(status)", f"{type(exc).__name__}: {exc}", BUG_HINT,
                                         trace=traceback.format_exc())

    statuses: dict[Node, Any] = {}
    errors: list[StepError] = []
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="status") as pool:
        for node, status, error in pool.map(one, jobs):
            if error is not None:
                errors.append(error)
            elif status is not None:
                statuses[node] = status
    return statuses, errors


def hint_for(exc: BaseException) -> str:
    code = error_code(exc)
    text = str(exc)
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation") or "not authorized" in text:
        return ("the credentials in use lack the permission named above; `multiregion iam-policy` prints "
                "every permission the tool needs")
    if "Could not connect" in text or "EndpointConnectionError" in type(exc).__name__:
        return "is the endpoint reachable? for the sandbox: multiregion sandbox status"
    if "Throttl" in code or "TooManyRequests" in code:
        return "AWS throttled the call even after retries; run the same command again in a minute"
    return "run the same command with --debug for the full traceback"
