"""How long the sandbox's asynchronous operations take: one table, two profiles.

Every duration AWS spends on its own (a table becoming ACTIVE, a certificate being validated, a Lambda
function leaving Pending...) is named here once. The sandbox asks `Sandbox.duration(name)` and gets seconds
of sandbox time:

* profile `fast` (the default): the short, fixed delays the sandbox always used, so tests and the demo
  stay quick; the time scale does not apply (they are already sandbox seconds);
* profile `aws`: the duration AWS typically takes, divided by the time scale, so a benchmark shows the
  wall time a user would wait for on AWS (at time scale 1) or a proportional fraction of it.

Each AWS duration carries its source: AWS documentation where it states one, otherwise published
measurements, and where neither exists, a stated estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("fast", "aws")


@dataclass(frozen=True)
class Duration:
    what: str
    fast_seconds: float  # sandbox seconds in the `fast` profile (not time-scaled)
    aws_seconds: float  # AWS seconds in the `aws` profile (divided by the time scale)
    source: str


# The values of the `aws` profile are refined, with their sources, by the sandbox-realism work; the
# `fast` values are the delays the sandbox has used so far.
DURATIONS: dict[str, Duration] = {
    "table_active": Duration("CreateTable until the table is ACTIVE", 0.0, 10.0, "estimate, to be sourced"),
    "replica_active": Duration("a new replica of an empty table until ACTIVE", 0.5, 180.0, "estimate, to be sourced"),
    "replica_deleted": Duration("a replica removed until it is gone", 0.0, 60.0, "estimate, to be sourced"),
    "acm_validation": Duration("the validation record exists until the certificate is ISSUED", 1.0, 60.0,
                               "estimate, to be sourced"),
    "domain_available": Duration("CreateDomainName until the domain is AVAILABLE", 0.0, 30.0,
                                 "estimate, to be sourced"),
    "route53_insync": Duration("a record change PENDING until INSYNC", 0.0, 60.0, "estimate, to be sourced"),
    "policy_instance_applied": Duration("a traffic policy instance Creating/Updating until Applied", 0.0, 60.0,
                                        "estimate, to be sourced"),
    "lambda_pending": Duration("CreateFunction until State Active", 0.0, 5.0, "estimate, to be sourced"),
    "lambda_update": Duration("an update until LastUpdateStatus Successful", 0.0, 3.0, "estimate, to be sourced"),
    "iam_role_assumable": Duration("CreateRole until Lambda can assume the role", 0.0, 10.0,
                                   "estimate, to be sourced"),
    "health_check_first_verdict": Duration("CreateHealthCheck until the checkers report", 0.0, 30.0,
                                           "estimate, to be sourced"),
}


def sandbox_seconds(name: str, profile: str, time_scale: float) -> float:
    """The duration `name` in sandbox seconds under `profile` (see the module docstring)."""
    duration = DURATIONS[name]
    if profile == "fast":
        return duration.fast_seconds
    if profile == "aws":
        return duration.aws_seconds / time_scale
    raise ValueError(f"unknown timing profile {profile!r}; known: {', '.join(PROFILES)}")
