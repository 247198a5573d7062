"""How long the sandbox's asynchronous operations take: AWS's table of durations, two profiles.

Every duration AWS spends on its own (a table becoming ACTIVE, a certificate being validated, a Lambda
function leaving Pending...) is named once, in the product's table `multiregion.durations`, with its AWS
seconds and its source: the plan's estimate of `up` reads the same table, so a benchmark on the sandbox
measures against the very figures `plan` prints. The sandbox asks `Sandbox.duration(name)` and gets seconds
of sandbox time:

* profile `fast` (the default): the short, fixed delays the sandbox always used, so tests and the demo
  stay quick; the time scale does not apply (they are already sandbox seconds). A duration the sandbox did
  not model before is 0 here: the state exists (under `SandboxOptions.strict`) but is left at once;
* profile `aws`: the duration AWS typically takes, divided by the time scale, so a benchmark shows the
  wall time a user would wait for on AWS (at time scale 1) or a proportional fraction of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from multiregion import durations

PROFILES = ("fast", "aws")

# Sandbox seconds in the `fast` profile, per duration (not time-scaled). policy_instance_applied's 0.5 s is
# the sandbox's former 5 AWS seconds at the default time scale of 10.
FAST_SECONDS: dict[str, float] = {
    "table_active": 0.0,
    "replica_active": 0.5,
    "replica_deleted": 0.0,
    "acm_validation": 1.0,
    "domain_available": 0.0,
    "route53_insync": 0.0,
    "policy_instance_applied": 0.5,
    "lambda_pending": 0.0,
    "lambda_update": 0.0,
    "iam_role_assumable": 0.0,
    "health_check_first_verdict": 0.0,
}


@dataclass(frozen=True)
class Duration:
    what: str
    fast_seconds: float  # sandbox seconds in the `fast` profile (not time-scaled)
    aws_seconds: float  # AWS seconds in the `aws` profile (divided by the time scale)
    source: str


def _profiles() -> dict[str, Duration]:
    missing = set(durations.DURATIONS) ^ set(FAST_SECONDS)
    if missing:  # a new AWS duration needs its fast value here (and the other way round)
        raise RuntimeError(f"timing.FAST_SECONDS and durations.DURATIONS differ in: {', '.join(sorted(missing))}")
    return {name: Duration(d.what, FAST_SECONDS[name], d.seconds, d.source)
            for name, d in durations.DURATIONS.items()}


DURATIONS: dict[str, Duration] = _profiles()


def sandbox_seconds(name: str, profile: str, time_scale: float) -> float:
    """The duration `name` in sandbox seconds under `profile` (see the module docstring)."""
    duration = DURATIONS[name]
    if profile == "fast":
        return duration.fast_seconds
    if profile == "aws":
        return duration.aws_seconds / time_scale
    raise ValueError(f"unknown timing profile {profile!r}; known: {', '.join(PROFILES)}")
