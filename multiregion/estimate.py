"""The shortest wall time of a run on AWS: the longest chain of AWS's own waits through the plan's graph.

`up` spends its time in AWS's asynchronous work (a replica being created, a certificate being validated),
not in its own calls. Each `Wait` of a plan names the AWS duration it sits out (`plan.Wait.duration`,
figures in `multiregion.durations`); a `Retry` may name one too (a refusal that lasts while IAM propagates).
From those and the dependency graph the engine walks, the estimate is:

* per node, the time its own operations take, in order, as the executor performs them: a call is taken as
  instant, a wait ends the wait's duration after the call that started what it watches (the latest earlier
  call of the node that produced a value the wait polls, or that names the same thing: a table name, a
  function name), or after the node's start when no call of the node started it (something already in
  progress). So a wait right after its call adds its whole duration, while waits for changes submitted
  together (record changes propagating side by side) overlap as they do on AWS. A retried call of a
  `create` change whose refusal has a duration (a function on a role IAM has not propagated yet) is made
  that long after the node's start, the moment its upstream resource appeared;
* per graph, the longest path: a node starts when the last of its dependencies finished (the runner starts
  every node as soon as it may), so the run ends when the longest chain does.

Reads and the calls themselves are not counted: on AWS they take tenths of seconds against waits of
minutes. The estimate is what the plan implies, at AWS's typical durations, not a measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multiregion import durations
from multiregion.plan import Builtin, Call, Change, Operation, Wait, refs_in

Node = tuple[str, str]
# A chain is named among what dominates when it ends within this share of the longest one, and a wait
# when it takes at least this share of its chain: a 4% table creation is not what users wait for.
NEAR_CRITICAL = 0.9
DOMINANT_SHARE = 0.1


@dataclass(frozen=True)
class NodeTime:
    """One node's own time: seconds from its start to its end, and what they were spent waiting for."""

    node: Node
    seconds: float
    waits: Mapping[str, float] = field(default_factory=dict)  # duration name -> seconds

    def to_dict(self, starts_at: float) -> dict[str, Any]:
        return {"node": f"{self.node[0]}/{self.node[1]}", "starts_at": round(starts_at, 1),
                "seconds": round(self.seconds, 1), "waits": {k: round(v, 1) for k, v in self.waits.items()}}


@dataclass(frozen=True)
class Estimate:
    seconds: float  # AWS seconds from the first node's start to the last node's end
    path: tuple[NodeTime, ...] = ()  # the critical path, first node first
    starts: Mapping[Node, float] = field(default_factory=dict)  # when each node of the path starts
    dominated_by: tuple[str, ...] = ()  # duration names, the longest first

    @property
    def labels(self) -> list[str]:
        return [durations.DURATIONS[name].label for name in self.dominated_by]

    def text(self) -> str:
        """"about 4 minutes, dominated by: replica creation, ACM validation"."""
        if self.seconds <= 0:
            return "no wait for AWS"
        shown = f"about {human_seconds(self.seconds)}"
        return f"{shown}, dominated by: {', '.join(self.labels)}" if self.dominated_by else shown

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "text": self.text(), "dominated_by": self.labels,
                "dominated_by_durations": list(self.dominated_by),
                "critical_path": [step.to_dict(self.starts.get(step.node, 0.0)) for step in self.path]}


def human_seconds(seconds: float) -> str:
    if seconds < 90:
        n = max(1, round(seconds))
        return f"{n} second{'s' if n != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


# ------------------------------------------------------------------------------------------------ a node


def node_time(node: Node, changes: Sequence[Change], waits: Sequence[Wait] = ()) -> NodeTime:
    """The node's own seconds on AWS: its changes' operations in order, then its settling waits."""
    clock = _Timeline()
    for change in changes:
        for op in change.operations:
            clock.run(op, creating=change.action == "create")
    for settle in waits:
        clock.run(settle, creating=False)
    return NodeTime(node, clock.t, {k: v for k, v in clock.spent.items() if v > 0})


class _Timeline:
    def __init__(self) -> None:
        self.t = 0.0
        self.spent: dict[str, float] = {}
        self.started: list[tuple[float, Call | Builtin]] = []  # calls made so far, and when

    def run(self, op: Operation, creating: bool) -> None:
        if isinstance(op, Wait):
            if op.duration:
                self._until(self._trigger(op) + op.typical_seconds, op.duration)
            return
        if isinstance(op, Call) and creating:
            for retry in op.retry:
                if retry.duration:  # refused until the upstream resource (made before this node) settles
                    self._until(durations.seconds(retry.duration), retry.duration)
        self.started.append((self.t, op))

    def _until(self, end: float, duration: str) -> None:
        if end > self.t:
            self.spent[duration] = self.spent.get(duration, 0.0) + end - self.t
            self.t = end

    def _trigger(self, wait: Wait) -> float:
        """When what the wait watches was started: the latest call that made a value it polls, or that
        names the same thing in the same service; the node's start if none did."""
        refs = {ref.name for ref in refs_in(wait.params)}
        names = _names(wait.params)
        for at, op in reversed(self.started):
            if refs & set(op.outputs):
                return at
            if isinstance(op, Call) and op.service == wait.service and names & _names(op.params):
                return at
        return 0.0


def _names(params: Mapping[str, Any]) -> set[str]:
    """The plain identifiers among a call's top-level parameters (a table, a function, an ARN)."""
    return {v for v in params.values() if isinstance(v, str)}


# ----------------------------------------------------------------------------------------------- a graph


def estimate(graph: Mapping[Node, Iterable[Node]], times: Mapping[Node, NodeTime]) -> Estimate:
    """The longest chain through `graph` (node -> the nodes it waits for), each node taking its time."""
    finish: dict[Node, float] = {}
    before: dict[Node, Node | None] = {}

    def end(node: Node) -> float:
        if node not in finish:
            start, after = 0.0, None
            for dep in graph.get(node, ()):
                dep_end = end(dep)
                if after is None or dep_end > start:
                    start, after = dep_end, dep
            before[node] = after
            finish[node] = start + _own(times, node)
        return finish[node]

    for node in graph:
        end(node)
    total = max(finish.values(), default=0.0)
    if total <= 0:
        return Estimate(0.0)
    chains = [_chain(before, last) for last in sorted(finish, key=lambda n: -finish[n])
              if finish[last] >= NEAR_CRITICAL * total and not _feeds_another(graph, last)]
    path = chains[0] if chains else _chain(before, max(finish, key=lambda n: finish[n]))
    starts = {n: finish[n] - _own(times, n) for n in path}
    steps = tuple(times.get(n, NodeTime(n, 0.0)) for n in path)
    return Estimate(total, steps, starts, _dominant(chains or [path], times))


def _own(times: Mapping[Node, NodeTime], node: Node) -> float:
    found = times.get(node)
    return found.seconds if found is not None else 0.0


def _chain(before: Mapping[Node, Node | None], last: Node) -> list[Node]:
    chain = [last]
    while before.get(chain[-1]) is not None:
        chain.append(before[chain[-1]])  # type: ignore[arg-type]
    return chain[::-1]


def _feeds_another(graph: Mapping[Node, Iterable[Node]], node: Node) -> bool:
    """Whether some node waits for this one (then its chain continues there and ends elsewhere)."""
    return any(node in deps for deps in graph.values())


def _dominant(chains: Sequence[Sequence[Node]], times: Mapping[Node, NodeTime]) -> tuple[str, ...]:
    """The durations that make up most of the near-critical chains, the longest first."""
    weight: dict[str, float] = {}
    for chain in chains:
        spent: dict[str, float] = {}
        for node in chain:
            for name, seconds in (times[node].waits.items() if node in times else ()):
                spent[name] = spent.get(name, 0.0) + seconds
        length = sum(spent.values())
        for name, seconds in spent.items():
            if length and seconds >= DOMINANT_SHARE * length:
                weight[name] = max(weight.get(name, 0.0), seconds)
    return tuple(sorted(weight, key=lambda n: -weight[n]))


def of_nodes(graph: Mapping[Node, Iterable[Node]],
             plans: Mapping[Node, tuple[Sequence[Change], Sequence[Wait]]]) -> Estimate:
    """The estimate from each node's changes and settling waits (what a plan, or a run, holds)."""
    return estimate(graph, {node: node_time(node, *plan) for node, plan in plans.items()})
