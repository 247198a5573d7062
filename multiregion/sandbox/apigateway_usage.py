"""API keys, usage plans and request throttling on the REST API data plane.

From the API Gateway Developer Guide ("API keys and usage plans", "Throttle requests to your REST APIs",
"Gateway response types") and the API reference (Method.apiKeyRequired, RestApi.apiKeySource, Stage
methodSettings, UsagePlan):

- A method with `apiKeyRequired` accepts a request only with a key API Gateway can meter: the key in the
  `x-api-key` header (apiKeySource HEADER, the default), a key of that value in the region that is enabled
  and associated with a usage plan that lists the request's API stage. Anything else is the gateway
  response INVALID_API_KEY: 403 `{"message":"Forbidden"}`, the same body whether the key is missing, unknown,
  disabled or not in a plan of the stage. apiKeySource AUTHORIZER takes the key from a Lambda authorizer,
  which the sandbox does not model: such a method is refused the same way, and `x-multiregion-error` says
  why. Methods without `apiKeyRequired` meter nothing: no key is looked up for them.
- Throttling is a token bucket ("a token counts for a request"): the burst is the bucket's size, the rate
  the tokens added per second, and a request finding no token is the gateway response THROTTLED: 429
  `{"message":"Too Many Requests"}`. The buckets, in the order the guide gives ("per-client or per-method
  throttling limits that you set for an API stage in a usage plan", then "per-method throttling limits
  that you set for an API stage"):
  * the usage plan's `throttle`, one bucket per API key and plan, shared by every API stage of the plan
    (an AWS answer on re:Post: "The usage plan limit is applied per API key and is global to all APIs that
    have that plan associated");
  * the usage plan's per-method `apiStages[].throttle["/{resource path}/{VERB}"]`, per key and method;
  * the stage's method settings: the one of the method (`{resource path}/{VERB}`) or else `*/*`, a bucket
    per method of the stage ("Per-API, per-stage throttling limits are applied at the API method level").
  Only methods with `apiKeyRequired` are metered against a usage plan. A request is let through only when
  every bucket it meets holds a token, and then takes one from each (AWS does not say whether a request
  throttled by a later bucket still used a token of an earlier one). A bucket starts full, and a changed
  limit starts a fresh one. The account-level quota (10,000 requests per second, burst 5,000, per region)
  is not modelled: the sandbox does not serve that many. Usage plan quotas (requests per day, week or
  month) are not enforced either.
- The log lines AWS writes for these refusals are what `x-multiregion-error` carries, e.g. "Key throttle
  limit exceeded for Usage Plan ID ..., RestApi ..., Stage ..., Resource ..., HttpMethod GET. Limit: 5.00
  Burst: 10" (the form AWS's knowledge center quotes).

Time: the buckets refill on the sandbox's clock (`Sandbox.now`, real seconds unless a test drives it), at
the configured rates, not multiplied by the time scale. Throttling limits a client's request rate, and the
clients of the data plane (curl, the drill's synthetic clients, a load test) send in real time: a client
sending 10 requests a second to a stage limited to 5 must see what it would see on AWS. The one sender on
compressed time is the sandbox's own Route 53 health checkers, whose interval is divided by the time scale:
each of their probes counts 1/time_scale of a token, so they use a stage's bucket as much as they would
on AWS (16 checkers every 10 s there are 1.6 tokens a second, here 16 probes a second at 0.1 token each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multiregion.sandbox import moto_compat
from multiregion.sandbox.apigateway_throttle import TokenBuckets

API_KEY_HEADER = "x-api-key"
CHECKER_AGENT = "Amazon-Route53-Health-Check-Service"  # how Route 53's checkers sign their requests
ALL_METHODS = "*/*"
_EPSILON = 1e-9  # ten probes of a tenth of a token each take exactly one token despite float rounding


@dataclass(frozen=True)
class Limit:
    rate: float
    burst: float

    def describe(self) -> str:
        return f"Limit: {self.rate:.2f} Burst: {self.burst:g}"


def limit_of(settings: Mapping[str, Any] | None, rate_key: str, burst_key: str) -> Limit | None:
    """The throttle a settings object describes, or None when it sets none."""
    if not settings:
        return None
    rate, burst = settings.get(rate_key), settings.get(burst_key)
    if rate is None or burst is None:
        return None
    # A negative limit is how API Gateway reports "not set" in some answers (not confirmed from a page).
    if float(rate) < 0 or float(burst) < 0:
        return None
    return Limit(float(rate), float(burst))


def method_key(resource_path: str, verb: str) -> str:
    """`/item/{id}` GET -> `item/{id}/GET`, the form of method setting keys (slashes may arrive as ~1)."""
    return f"{resource_path.replace('~1', '/').strip('/')}/{verb.upper()}"


def stage_limit(method_settings: Mapping[str, Mapping[str, Any]], resource_path: str, verb: str) -> Limit | None:
    """The stage's limit for one method: its own method setting, else the stage-wide `*/*`."""
    wanted = method_key(resource_path, verb)
    for key, settings in method_settings.items():
        if key != ALL_METHODS and method_key(*key.rsplit("/", 1)) == wanted:
            found = limit_of(settings, "throttlingRateLimit", "throttlingBurstLimit")
            if found is not None:
                return found
    return limit_of(method_settings.get(ALL_METHODS), "throttlingRateLimit", "throttlingBurstLimit")


# ---------------------------------------------------------------------------------------------- API keys


@dataclass(frozen=True)
class MeteredKey:
    """A key a request may use on a stage, and the usage plan that meters it there."""

    key_id: str
    plan_id: str
    plan_limit: Limit | None
    method_limits: Mapping[str, Limit]  # method_key -> the plan's limit for that method of this stage


def metered_key(region: str, api_id: str, stage: str, value: str) -> MeteredKey | str:
    """The key of that value and its usage plan for the stage, or why API Gateway refuses it (hold
    sandbox.lock)."""
    key = next((k for k in moto_compat.api_keys(region).values() if k.value == value), None)
    if key is None:
        return "Invalid API Key identifier specified"
    masked = "*" * max(0, len(value) - 4) + value[-4:]
    if not key.enabled:
        return f"API Key {masked} is disabled"
    for plan in moto_compat.usage_plans(region).values():
        stages = [s for s in plan.api_stages if s.get("apiId") == api_id and s.get("stage") == stage]
        if stages and key.id in moto_compat.usage_plan_key_ids(region, plan.id):
            limits = {}
            for path, settings in (stages[0].get("throttle") or {}).items():
                found = limit_of(settings, "rateLimit", "burstLimit")
                if found is not None and "/" in path.strip("/"):
                    limits[method_key(*path.replace("~1", "/").rsplit("/", 1))] = found
            return MeteredKey(key.id, plan.id, limit_of(plan.throttle, "rateLimit", "burstLimit"), limits)
    return (f"API Key {masked} not authorized because method requires API Key and API Key is not associated "
            f"with a Usage Plan for API Stage {api_id}/{stage}")


# ---------------------------------------------------------------------------------------------- throttling


@dataclass(frozen=True)
class Demand:
    """One bucket a request must take a token from, and what AWS logs when it is empty."""

    key: tuple[str, ...]
    limit: Limit
    why: str


class RequestThrottle:
    """Token buckets of the data plane, on the sandbox's clock (see the module docstring)."""

    def __init__(self) -> None:
        self.buckets = TokenBuckets()

    @property
    def throttled(self) -> int:
        """Requests answered 429, for tests and benchmarks."""
        return self.buckets.throttled

    def reset(self) -> None:
        self.buckets.reset()

    def take(self, demands: list[Demand], cost: float, now: float) -> str | None:
        """Take `cost` tokens from every demanded bucket: None when granted, else the first refusal's why."""
        short = self.buckets.take([(d.key, d.limit.burst, d.limit.rate) for d in demands], cost, now, _EPSILON)
        if short is None:
            return None
        return next(d.why for d, bucket in zip(demands, short, strict=True) if bucket.tokens < cost - _EPSILON)


def request_cost(user_agent: str, time_scale: float) -> float:
    """Tokens one request takes: a probe of the sandbox's health checkers runs on compressed time."""
    if user_agent.startswith(CHECKER_AGENT) and time_scale > 0:
        return 1.0 / time_scale
    return 1.0
