"""API Gateway's control-plane throttling, at the rates AWS documents (under `SandboxOptions.strict`).

Source: API Gateway Developer Guide, "Amazon API Gateway quotas", table "API Gateway quotas for creating,
deploying and managing an API" (fixed quotas that "can't be increased"), e.g. CreateDeployment "1 request
every 5 seconds per account", CreateDomainName / DeleteDomainName / UpdateDomainName / DeleteRestApi "1
request every 30 seconds per account", CreateRestApi "for Regional or private API: 1 request every 3
seconds per account" and "for edge-optimized API: 1 request every 30 seconds per account", CreateResource
and DeleteResource "5 requests per second", GetResources "5 requests every 2 seconds", PutRestApi "1 request
per second", "Other operations: No quota up to the total account quota" and "Total operations: 10 requests
per second with a burst quota of 40 requests per second".

Model: one token bucket per region, account and operation, and one for the total, as the quotas are per
account in a Region. A request takes a token from its operation's bucket and from the total; when either is
empty it is answered as AWS answers a throttled call: HTTP 429, `x-amzn-ErrorType: TooManyRequestsException`,
`{"message": "Too Many Requests"}`, and a `Retry-After` header (botocore's model maps that header to the
error's `retryAfterSeconds`; whether AWS sets it on every control-plane throttle could not be checked).
AWS states no burst for the per-operation quotas: a bucket holds what one period allows ("1 request every 5
seconds" holds 1 token, "5 requests every 2 seconds" holds 5).

Time: the quotas are rates in AWS time, and the time scale compresses AWS time, so they are multiplied by
it in both timing profiles (at the default scale of 10, CreateDeployment is one every 0.5 s). A documented
choice for the `fast` profile, whose fixed delays are not scaled: a quota is not a wait of AWS's own but a
limit on the caller, and a compressed run that met AWS's unscaled rates would be throttled ten times harder
than the same run on AWS.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox.apigateway_domains import apigateway_error
from multiregion.sandbox.app import Extension, SandboxRequest


@dataclass(frozen=True)
class Quota:
    requests: float
    per_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.per_seconds


# "Total operations": 10 per second with a burst of 40, a bucket of 40 tokens refilled at 10 per second.
TOTAL_BURST, TOTAL_RATE = 40.0, 10.0
QUOTAS: dict[str, Quota] = {
    "CreateApiKey": Quota(5, 1), "DeleteApiKey": Quota(5, 1),
    "CreateDeployment": Quota(1, 5),
    "CreateDocumentationVersion": Quota(1, 20), "ImportDocumentationParts": Quota(1, 30),
    "CreateDomainName": Quota(1, 30), "DeleteDomainName": Quota(1, 30), "UpdateDomainName": Quota(1, 30),
    "CreateResource": Quota(5, 1), "DeleteResource": Quota(5, 1), "GetResources": Quota(5, 2),
    "CreateRestApi": Quota(1, 3), "CreateRestApi(EDGE)": Quota(1, 30),
    "ImportRestApi": Quota(1, 3), "ImportRestApi(EDGE)": Quota(1, 30),
    "DeleteRestApi": Quota(1, 30), "PutRestApi": Quota(1, 1),
    "UpdateAccount": Quota(1, 20), "UpdateUsagePlan": Quota(1, 20),
}

# (method, path pattern) -> operation, for the operations with a quota of their own.
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile("^" + pattern + "/?$"), op) for method, pattern, op in [
        ("POST", r"/apikeys", "CreateApiKey"), ("DELETE", r"/apikeys/[^/]+", "DeleteApiKey"),
        ("POST", r"/restapis/[^/]+/deployments", "CreateDeployment"),
        ("POST", r"/restapis/[^/]+/documentation/versions", "CreateDocumentationVersion"),
        ("PUT", r"/restapis/[^/]+/documentation/parts", "ImportDocumentationParts"),
        ("POST", r"/domainnames", "CreateDomainName"), ("DELETE", r"/domainnames/[^/]+", "DeleteDomainName"),
        ("PATCH", r"/domainnames/[^/]+", "UpdateDomainName"),
        ("POST", r"/restapis/[^/]+/resources/[^/]+", "CreateResource"),
        ("DELETE", r"/restapis/[^/]+/resources/[^/]+", "DeleteResource"),
        ("GET", r"/restapis/[^/]+/resources", "GetResources"),
        ("POST", r"/restapis", "CreateRestApi"), ("DELETE", r"/restapis/[^/]+", "DeleteRestApi"),
        ("PUT", r"/restapis/[^/]+", "PutRestApi"),
        ("PATCH", r"/account", "UpdateAccount"), ("PATCH", r"/usageplans/[^/]+", "UpdateUsagePlan"),
    ]
]


def operation_of(method: str, path: str, query: dict[str, str], body: Any) -> str | None:
    """The throttled operation a control-plane request is, or None for one under the total quota only."""
    for route_method, pattern, op in _ROUTES:
        if method == route_method and pattern.match(path):
            if op == "CreateRestApi":
                op = "ImportRestApi" if query.get("mode") == "import" else op
                if op == "CreateRestApi" and _edge(body):
                    op += "(EDGE)"
            return op
    return None


def _edge(body: Any) -> bool:
    # A REST API without an endpoint configuration is edge-optimized (API Gateway's default type).
    types = ((body or {}).get("endpointConfiguration") or {}).get("types") if isinstance(body, dict) else None
    return not types or "EDGE" in types


_EPSILON = 1e-6  # a refill of exactly one period must give a whole token despite float rounding


class Bucket:
    """A token bucket on the sandbox clock: `capacity` tokens, refilled at `rate` per second."""

    def __init__(self, capacity: float, rate: float, now: float):
        self.capacity, self.rate = capacity, rate
        self.tokens, self.at = capacity, now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait(self) -> float:
        """Seconds until one token is there (0 when one is)."""
        return max(0.0, (1.0 - _EPSILON - self.tokens) / self.rate)


class TokenBuckets:
    """Token buckets by key, taken from together: the control plane's quotas and the data plane's limits.

    A bucket is made full the first time its key is asked for, and made again (full) when its capacity or
    rate changes. `throttled` counts the refused takes, for tests and benchmarks."""

    def __init__(self) -> None:
        self._buckets: dict[Hashable, Bucket] = {}
        self._lock = threading.Lock()
        self.throttled = 0

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.throttled = 0

    def take(self, wanted: Sequence[tuple[Hashable, float, float]], cost: float, now: float,
             epsilon: float) -> list[Bucket] | None:
        """Take `cost` tokens from each (key, capacity, rate) bucket, or from none: None when granted, else
        the buckets, in the order wanted, refilled to `now` (one at least short of `cost`)."""
        with self._lock:
            buckets = [self._bucket(key, capacity, rate, now) for key, capacity, rate in wanted]
            for bucket in buckets:
                bucket.refill(now)
            if any(b.tokens < cost - epsilon for b in buckets):
                self.throttled += 1
                return buckets
            for bucket in buckets:
                bucket.tokens -= cost
            return None

    def _bucket(self, key: Hashable, capacity: float, rate: float, now: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None or (bucket.capacity, bucket.rate) != (capacity, rate):  # e.g. a changed time scale
            bucket = self._buckets[key] = Bucket(capacity, rate, now)
        return bucket


class ControlPlaneThrottle(Extension):
    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.buckets = TokenBuckets()  # by (region, operation), "*" the total

    @property
    def throttled(self) -> int:
        """Requests answered 429, for tests and benchmarks."""
        return self.buckets.throttled

    def reset(self) -> None:
        self.buckets.reset()

    def handle(self, req: SandboxRequest) -> Response | None:
        if not self.sandbox.strict or req.service != "apigateway":
            return None
        body: Any = None
        if req.method == "POST" and req.path.rstrip("/") == "/restapis":
            try:
                body = req.json()
            except ValueError:
                body = None
        op = operation_of(req.method, req.path, dict(req.raw.args), body)
        wait = self.take(req.region or "", op)
        if wait is None:
            return None
        resp = apigateway_error("TooManyRequestsException", "Too Many Requests", 429)
        resp.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return resp

    def take(self, region: str, op: str | None) -> float | None:
        """Take a token for `op` (and the total) in `region`: None when granted, else the seconds to wait."""
        scale = self._scale()
        wanted = [((region, "*"), TOTAL_BURST, TOTAL_RATE * scale)]
        if op is not None:
            quota = QUOTAS[op]
            wanted.append(((region, op), quota.requests, quota.rate * scale))
        short = self.buckets.take(wanted, 1.0, self.sandbox.now(), _EPSILON)
        return None if short is None else max(b.wait() for b in short)

    def _scale(self) -> float:
        return self.sandbox.options.time_scale
