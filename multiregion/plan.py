"""The plan as data: changes, the operations that make them, and the values they pass along.

A stage's diff returns a `NodePlan`: the `Change`s `up` would make in one node (a stage in a region),
each carrying the exact `Operation`s the executor performs, the waits that make the node usable, the
values it hands to the stages that depend on it (`outputs`), and the warnings it has for the user.
Nothing here performs I/O or holds a callable: the same objects are rendered as a table, as JSON, or
executed, so what `plan` prints is what `up` does.

A value that AWS assigns when an earlier operation runs (the id of a REST API created a moment before) is
a `Ref`: in `plan` it prints as its placeholder ("(the REST API created above)"), in `up` the executor
replaces it with what that operation returned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from multiregion import durations

ACTIONS = ("create", "update", "replace", "delete")


# ------------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Ref:
    """A value produced by an earlier operation of the same run, named by the node that produces it."""

    node: str  # "api/eu-west-1"
    name: str  # "rest_api_id"
    placeholder: str  # "(the REST API created above)"

    def __str__(self) -> str:
        return self.placeholder


@dataclass(frozen=True)
class Concat:
    """Text made of parts, some of them Refs (an ARN holding an API id that does not exist yet)."""

    parts: tuple[Any, ...]

    def __str__(self) -> str:
        return "".join(str(p) for p in self.parts)


def concat(*parts: Any) -> Any:
    """Plain text when every part is known, else a Concat to resolve later."""
    if any(isinstance(p, (Ref, Concat)) for p in parts):
        return Concat(tuple(parts))
    return "".join(str(p) for p in parts)


@dataclass(frozen=True)
class JsonText:
    """A parameter AWS takes as JSON text (a policy document); Refs inside are resolved before encoding."""

    value: Any

    def __str__(self) -> str:
        return encode_json(self.value)


@dataclass(frozen=True)
class Blob:
    """Bytes sent as they are (a function's zip): shown by size and digest, never printed."""

    data: bytes = field(repr=False)
    label: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def __str__(self) -> str:
        return f"<{self.label}: {len(self.data)} bytes, sha256 {self.sha256[:12]}>"


def encode_json(value: Any) -> str:
    """Compact, sorted JSON: the same document always gives the same text (and IAM counts characters)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def refs_in(value: Any) -> list[Ref]:
    """Every Ref inside a parameter value, in order."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, JsonText):
        return refs_in(value.value)
    if isinstance(value, Concat):
        return refs_in(value.parts)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in refs_in(v)]
    return []


def is_known(value: Any) -> bool:
    """Whether a value holds no Ref (so it can be compared with what AWS holds)."""
    return not refs_in(value)


# -------------------------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Retry:
    """A refusal that passes by itself (IAM propagation, an update in progress): the call is tried again,
    with growing pauses, for up to `budget` seconds. `message` narrows the code to one reason."""

    codes: tuple[str, ...]
    why: str
    message: str = ""
    budget: float = 120.0
    # How long AWS typically refuses, as a name in `durations.DURATIONS` ("" when it says nothing): the
    # refusal is a wait in disguise (IAM propagation), and the estimate of `up` counts it.
    duration: str = ""

    def __post_init__(self) -> None:
        _check_duration(self.duration)


@dataclass(frozen=True)
class Call:
    """One AWS API call, exactly as it will be made (boto3's method name and parameters)."""

    service: str
    region: str
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # output name -> JMESPath into the answer
    retry: tuple[Retry, ...] = ()
    # Error codes that mean the call's effect is already there (NoSuchX on a delete): not an error.
    done_if: tuple[str, ...] = ()
    # A run-wide key: the same call planned by several nodes (one DNS record that every region's
    # certificate needs) is made once; the others wait for it and take its outputs.
    once: str = ""

    @property
    def operation(self) -> str:
        return "".join(part.capitalize() for part in self.method.split("_"))

    def describe(self) -> str:
        return f"{self.service}:{self.operation} ({self.region})"


GONE = "(gone)"  # the status a Wait sees when the thing it polls no longer exists


@dataclass(frozen=True)
class Wait:
    """Poll one read call until a status (a JMESPath into its answer) is ready, or fails.

    `gone` lists error codes meaning "no such thing": the status is then GONE, which `ready` or
    `failed` may name (a deletion waits for GONE)."""

    what: str
    service: str
    region: str
    method: str
    params: Mapping[str, Any]
    status: str  # JMESPath to the status
    ready: tuple[Any, ...]
    failed: tuple[Any, ...] = ()
    gone: tuple[str, ...] = ()
    reason: str = ""  # JMESPath to the failure reason
    timeout: float = 900.0  # seconds; AWS's own worst case, never the sandbox's
    hint: str = "run the same command again: it resumes where it stopped"
    outputs: Mapping[str, str] = field(default_factory=dict)
    # Which of AWS's asynchronous steps this wait sits out, as a name in `durations.DURATIONS` ("" for a
    # state AWS reaches at once, or one it gives no figure for): what the estimate of `up` adds up.
    duration: str = ""

    def __post_init__(self) -> None:
        _check_duration(self.duration)

    def expecting(self, duration: str) -> Wait:
        """The same wait, saying which AWS duration it typically lasts."""
        return dataclasses.replace(self, duration=duration)

    @property
    def typical_seconds(self) -> float:
        return durations.seconds(self.duration) if self.duration else 0.0

    def describe(self) -> str:
        return f"wait {self.what} ({self.region})"


@dataclass(frozen=True)
class Builtin:
    """A named procedure (registered with the executor) for the few steps that are a loop by AWS's rules,
    e.g. "create with the next CallerReference until one is free". Parameters are data; outputs are
    keys of the dict it returns."""

    name: str
    region: str
    params: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.name} ({self.region})"


Operation = Call | Wait | Builtin


def _check_duration(name: str) -> None:
    if name and name not in durations.DURATIONS:
        raise ValueError(f"unknown AWS duration {name!r} (known: {', '.join(durations.DURATIONS)})")


# ----------------------------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Cost:
    """What a change adds to the monthly bill, at AWS list prices."""

    amount: Decimal
    currency: str = "USD"

    def __str__(self) -> str:
        symbol = "$" if self.currency == "USD" else f"{self.currency} "
        return f"{symbol}{self.amount:.2f}/month"


def usd(amount: str) -> Cost:
    return Cost(Decimal(amount))


@dataclass(frozen=True)
class Change:
    """One change `up` makes: what, where, why, what it costs, and how."""

    stage: str
    region: str
    action: str  # create | update | replace | delete
    resource: str
    reason: str
    operations: tuple[Operation, ...] = ()
    cost: Cost | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies the change between a plan and the run that applies it."""
        return (self.stage, self.region, self.action, self.resource)

    def to_dict(self, detail: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"stage": self.stage, "region": self.region, "action": self.action,
                                "resource": self.resource, "reason": self.reason}
        if self.cost is not None:
            data["cost"] = str(self.cost)
            data["cost_usd"] = float(self.cost.amount) if self.cost.currency == "USD" else None
        if detail:
            data["operations"] = [describe_operation(op) for op in self.operations]
        return data


def monthly_cost(changes: list[Change], currency: str = "USD") -> Decimal:
    """The monthly cost the changes add, in one currency."""
    return sum((c.cost.amount for c in changes if c.cost is not None and c.cost.currency == currency),
               Decimal("0"))


def shown(value: Any) -> Any:
    """A parameter as `plan --detail` shows it: Refs as placeholders, blobs by digest, JSON text parsed."""
    if isinstance(value, (Ref, Blob, Concat)):
        return str(value)
    if isinstance(value, JsonText):
        return shown(value.value)
    if isinstance(value, Mapping):
        return {str(k): shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shown(v) for v in value]
    if isinstance(value, bytes):
        return str(Blob(value, "bytes"))
    return value


def describe_operation(op: Operation) -> dict[str, Any]:
    if isinstance(op, Call):
        data: dict[str, Any] = {"call": f"{op.service}.{op.method}", "region": op.region,
                                "params": shown(op.params)}
        if op.outputs:
            data["outputs"] = dict(op.outputs)
        if op.retry:
            data["retries"] = [f"{', '.join(r.codes)}: {r.why}" for r in op.retry]
        return data
    if isinstance(op, Wait):
        data = {"wait": op.what, "region": op.region, "poll": f"{op.service}.{op.method}",
                "params": shown(op.params), "until": list(op.ready), "timeout_seconds": op.timeout}
        if op.duration:
            data["typically"] = {"duration": op.duration, "seconds_on_aws": op.typical_seconds}
        return data
    return {"builtin": op.name, "region": op.region, "params": shown(op.params)}


# ------------------------------------------------------------------------------------------ node plans


@dataclass(frozen=True)
class NodePlan:
    """Everything one node's diff decided."""

    changes: tuple[Change, ...] = ()
    waits: tuple[Wait, ...] = ()  # waits needed even without a change (a resource still settling)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class Inputs:
    """What a node's dependencies handed over: their outputs, by (stage, region)."""

    def __init__(self, values: Mapping[tuple[str, str], Mapping[str, Any]] | None = None):
        self._values = dict(values or {})

    def of(self, stage: str, region: str) -> Mapping[str, Any]:
        try:
            return self._values[(stage, region)]
        except KeyError:
            raise KeyError(f"no outputs of {stage}/{region}: is it a dependency?") from None

    def get(self, stage: str, region: str, name: str) -> Any:
        return self.of(stage, region).get(name)

    def by_region(self, stage: str) -> dict[str, Mapping[str, Any]]:
        return {region: outputs for (name, region), outputs in self._values.items() if name == stage}

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._values
