"""The stack's Route 53 health checks, found by their tags, and what Route 53 says of them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import error_code
from multiregion.engine import TAG_REGION, TAG_STACK, Reader
from multiregion.names import ROUTE53_REGION

TAG_RETIRED = "multiregion:retired"
TAG_NAME = "Name"
TAG_BATCH = 10  # ListTagsForResources takes at most 10 ids
# More than 18% of the checkers must report success for Route 53 to call an endpoint healthy.
HEALTHY_FRACTION = 0.18
_REF_RE = re.compile(r"^mr:[a-z0-9-]+:[a-z0-9-]+:\d+:(?P<day>\d+):(?P<gen>\d+)$")


def route53(aws: Reader) -> Any:
    return aws.client("route53", ROUTE53_REGION)


def reference_prefix(service: str, region: str) -> str:
    return f"mr:{service}:{region}:"


def generation_of(check: dict[str, Any]) -> tuple[int, int]:
    """(day, generation) from our CallerReference, for "newest first"; (0, 0) for any other reference."""
    match = _REF_RE.match(check.get("CallerReference", ""))
    return (int(match.group("day")), int(match.group("gen"))) if match else (0, 0)


def all_health_checks(aws: Reader, attempts: int = 3) -> list[dict[str, Any]]:
    """Every health check of the account, each with its tags under "Tags" (a dict).

    A check deleted between the listing and the tag lookup (our own `down` in another region, or anyone
    in the account) fails the whole ListTagsForResources batch: list again."""
    for attempt in range(attempts):
        try:
            return _health_checks_with_tags(aws)
        except ClientError as exc:
            if error_code(exc) != "NoSuchHealthCheck" or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _health_checks_with_tags(aws: Reader) -> list[dict[str, Any]]:
    client = route53(aws)
    checks = [c for page in client.get_paginator("list_health_checks").paginate() for c in page["HealthChecks"]]
    tags: dict[str, dict[str, str]] = {}
    for i in range(0, len(checks), TAG_BATCH):
        ids = [c["Id"] for c in checks[i:i + TAG_BATCH]]
        sets = client.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids)["ResourceTagSets"]
        for tag_set in sets:
            tags[tag_set["ResourceId"]] = {t["Key"]: t["Value"] for t in tag_set.get("Tags", [])}
    return [{**c, "Tags": tags.get(c["Id"], {})} for c in checks]


def is_ours(service: str, check: dict[str, Any], region: str | None = None) -> bool:
    tags = check["Tags"]
    return bool(tags.get(TAG_STACK) == service and (region is None or tags.get(TAG_REGION) == region))


def is_retired(check: dict[str, Any]) -> bool:
    return bool(check["Tags"].get(TAG_RETIRED) == "true")


def active_checks(service: str, checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each region's current (not retired) check of the stack; the newest generation if a crash left two."""
    by_region: dict[str, dict[str, Any]] = {}
    for check in sorted((c for c in checks if is_ours(service, c)), key=generation_of):
        if not is_retired(check):
            by_region[check["Tags"].get(TAG_REGION, "")] = check
    return by_region


def active_check(aws: Reader, region: str) -> dict[str, Any] | None:
    return active_checks(aws.config.service, all_health_checks(aws)).get(region)


def default_checker_regions(aws: Reader) -> set[str]:
    return set(route53(aws).meta.service_model.shape_for("HealthCheckRegion").enum)


# ---------------------------------------------------------------------------------------------- health


def health_of(observations: list[dict[str, Any]]) -> tuple[bool | None, datetime | None]:
    """Route 53's verdict from one observation per checker, and since when it holds, as far as a snapshot
    tells: the CheckedTime of the report that tipped the count past the 18% rule (an upper bound)."""
    reports = [o.get("StatusReport") or {} for o in observations]
    reports = sorted((r for r in reports if r.get("Status")), key=_checked_at)
    if not reports:
        return None, None
    ok = [r for r in reports if str(r["Status"]).startswith("Success")]
    failed = [r for r in reports if not str(r["Status"]).startswith("Success")]
    healthy = len(ok) > HEALTHY_FRACTION * len(reports)
    needed_ok = int(HEALTHY_FRACTION * len(reports)) + 1
    agreeing, needed = (ok, needed_ok) if healthy else (failed, len(reports) - needed_ok + 1)
    since = agreeing[needed - 1].get("CheckedTime")
    return healthy, since if isinstance(since, datetime) else None


def _checked_at(report: dict[str, Any]) -> float:
    value = report.get("CheckedTime")
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _passing(observation: dict[str, Any]) -> bool:
    return str((observation.get("StatusReport") or {}).get("Status", "")).startswith("Success")


def health_status(aws: Reader, region: str, check_id: str | None = None) -> dict[str, Any]:
    """{check_id, healthy, since, checkers} for the region's check; healthy is None before any observation."""
    if check_id is None:
        check = active_check(aws, region)
        if check is None:
            return {"check_id": None, "healthy": None, "since": None}
        check_id = str(check["Id"])
    observations = route53(aws).get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
    healthy, since = health_of(observations)
    passing = sum(1 for o in observations if _passing(o))
    return {"check_id": check_id, "healthy": healthy, "since": since.isoformat() if since else None,
            "checkers": f"{passing}/{len(observations)} report success"}


class CheckerVerdicts:
    """Route 53's verdict as its checkers form it, from GetHealthCheckStatus polled over time.

    GetHealthCheckStatus reports each checker's last result. A checker changes its own view of the endpoint
    only after `FailureThreshold` consecutive results that disagree with it (both ways); the endpoint is
    healthy while more than 18% of the checkers consider it healthy (Route 53 developer guide, "How Route 53
    determines whether a health check is healthy"). Each new result (a new CheckedTime from a checker)
    moves that checker's streak; a checker first seen is taken at its result."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self._views: dict[str, bool] = {}
        self._streaks: dict[str, int] = {}
        self._seen: dict[str, Any] = {}

    def update(self, observations: list[dict[str, Any]]) -> bool | None:
        for observation in observations:
            checker = f"{observation.get('Region')}/{observation.get('IPAddress')}"
            report = observation.get("StatusReport") or {}
            if not report.get("Status"):
                continue
            checked = report.get("CheckedTime")
            if self._seen.get(checker) == checked:
                continue  # the same result seen at an earlier poll
            self._seen[checker] = checked
            passed = str(report["Status"]).startswith("Success")
            if checker not in self._views:
                self._views[checker], self._streaks[checker] = passed, 0
                continue
            if passed == self._views[checker]:
                self._streaks[checker] = 0
                continue
            self._streaks[checker] += 1
            if self._streaks[checker] >= self.threshold:
                self._views[checker], self._streaks[checker] = passed, 0
        if not self._views:
            return None
        return sum(self._views.values()) > HEALTHY_FRACTION * len(self._views)
