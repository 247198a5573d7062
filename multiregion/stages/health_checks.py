"""Stage `health-checks`: one Route 53 HTTPS health check per region on the region's own API host.

The check probes `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}/health`, never the global name
(that name resolves through the routing the check gates). Route 53 gives health checks no name, so ours are
found again by their tags (stack, region, `Name`), and are never duplicated:

* `CallerReference` is deterministic per stack, region, interval, UTC day and generation. AWS returns the
  existing check for the same reference and settings, so a retried create (or a second run racing this
  one) gets the check the first try made.
* A reference that belonged to a deleted check, or to a check with other settings, is refused
  (`HealthCheckAlreadyExists`); the next generation is tried instead. The day starts the count afresh, so a
  stack brought up and down every day for years never walks past the few attempts of one day.
* A run that crashed between creating and tagging left an untagged check whose reference carries our
  prefix: it is adopted (tagged) when its settings match exactly.
* `RequestInterval` (like the type) cannot change in place. The replacement is created and tagged first;
  the old check is tagged `multiregion:retired=true` and stays until routing no longer references it
  (the `routing` stage re-points its records or policy, then deletes retired checks).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import error_code
from multiregion.config import Config
from multiregion.engine import TAG_REGION, TAG_STACK, Change, Context, Stage, StepError
from multiregion.stages.api import find_rest_api

# Route 53 is a global service; its API is reached through us-east-1.
ROUTE53_REGION = "us-east-1"
TAG_RETIRED = "multiregion:retired"
TAG_NAME = "Name"

# Route 53 prices a basic check on an AWS endpoint at $0.50 a month, and each optional feature on it
# (HTTPS, the 10 s "fast" interval, string matching, latency graphs) at $1.00 more.
BASIC_CHECK_USD = 0.50
OPTIONAL_FEATURE_USD = 1.00

# Settings UpdateHealthCheck cannot change (an IPAddress it can change but never remove): a difference means
# a replacement.
IMMUTABLE = ("Type", "RequestInterval", "MeasureLatency", "IPAddress")
MUTABLE = ("FullyQualifiedDomainName", "Port", "ResourcePath", "FailureThreshold", "EnableSNI", "Inverted",
           "Disabled")
# More than 18% of the checkers must report success for Route 53 to call an endpoint healthy.
HEALTHY_FRACTION = 0.18
TAG_BATCH = 10  # ListTagsForResources takes at most 10 ids
MAX_GENERATION = 999  # per day

_REF_RE = re.compile(r"^mr:[a-z0-9-]+:[a-z0-9-]+:\d+:(?P<day>\d+):(?P<gen>\d+)$")


# ----------------------------------------------------------------------------------------------- reading


def route53(ctx: Context) -> Any:
    return ctx.clients("route53", ROUTE53_REGION)


def api_host(api_id: str, region: str) -> str:
    return f"{api_id}.execute-api.{region}.amazonaws.com"


def wanted_config(config: Config, region: str, api_id: str) -> dict[str, Any]:
    """The HealthCheckConfig the stack wants for one region (checker regions: Route 53's default)."""
    return {
        "Type": "HTTPS",
        "FullyQualifiedDomainName": api_host(api_id, region),
        "Port": 443,
        "ResourcePath": f"/{config.api.stage}/health",
        "RequestInterval": config.health_check.interval,
        "FailureThreshold": config.health_check.failure_threshold,
        "EnableSNI": True,
        "Inverted": False,
        "Disabled": False,
        "MeasureLatency": False,
    }


def monthly_cost(config: Config) -> str:
    features = 1 + (config.health_check.interval == 10)  # HTTPS, and the fast interval
    return f"${BASIC_CHECK_USD + features * OPTIONAL_FEATURE_USD:.2f}/month"


def reference_prefix(service: str, region: str) -> str:
    return f"mr:{service}:{region}:"


def caller_reference(service: str, region: str, interval: int, day: int, generation: int) -> str:
    # At most 3 + 32 + 1 + 14 + 1 + 2 + 1 + 5 + 1 + 3 = 63 characters: CallerReference allows 64.
    return f"{reference_prefix(service, region)}{interval}:{day}:{generation}"


def utc_day() -> int:
    return int(time.time() // 86400)


def generation_of(check: dict[str, Any]) -> tuple[int, int]:
    """(day, generation) from our CallerReference, for "newest first"; (0, 0) for any other reference."""
    match = _REF_RE.match(check.get("CallerReference", ""))
    return (int(match.group("day")), int(match.group("gen"))) if match else (0, 0)


def all_health_checks(ctx: Context, attempts: int = 3) -> list[dict[str, Any]]:
    """Every health check of the account, each with its tags under "Tags" (a dict).

    A check deleted between the listing and the tag lookup (our own `down` in another region, or anyone
    in the account) fails the whole ListTagsForResources batch: list again."""
    for attempt in range(attempts):
        try:
            return _health_checks_with_tags(ctx)
        except ClientError as exc:
            if error_code(exc) != "NoSuchHealthCheck" or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _health_checks_with_tags(ctx: Context) -> list[dict[str, Any]]:
    client = route53(ctx)
    checks = [c for page in client.get_paginator("list_health_checks").paginate() for c in page["HealthChecks"]]
    tags: dict[str, dict[str, str]] = {}
    for i in range(0, len(checks), TAG_BATCH):
        ids = [c["Id"] for c in checks[i:i + TAG_BATCH]]
        sets = client.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids)["ResourceTagSets"]
        for tag_set in sets:
            tags[tag_set["ResourceId"]] = {t["Key"]: t["Value"] for t in tag_set.get("Tags", [])}
    return [{**c, "Tags": tags.get(c["Id"], {})} for c in checks]


def is_ours(ctx: Context, check: dict[str, Any], region: str | None = None) -> bool:
    tags = check["Tags"]
    return tags.get(TAG_STACK) == ctx.config.service and (region is None or tags.get(TAG_REGION) == region)


def is_retired(check: dict[str, Any]) -> bool:
    return check["Tags"].get(TAG_RETIRED) == "true"


def stack_health_checks(ctx: Context, region: str | None = None) -> list[dict[str, Any]]:
    """The stack's checks (of one region, or all), retired ones included."""
    return [c for c in all_health_checks(ctx) if is_ours(ctx, c, region)]


def active_check(ctx: Context, region: str) -> dict[str, Any] | None:
    """The region's current (not retired) check; the newest generation if a crash left two."""
    active = [c for c in stack_health_checks(ctx, region) if not is_retired(c)]
    return max(active, key=generation_of) if active else None


def active_checks(ctx: Context) -> dict[str, dict[str, Any]]:
    """Each region's current check, from one listing (for routing, which needs them all)."""
    by_region: dict[str, dict[str, Any]] = {}
    for check in sorted(stack_health_checks(ctx), key=generation_of):
        if not is_retired(check):
            by_region[check["Tags"].get(TAG_REGION, "")] = check
    return by_region


def retired_checks(ctx: Context) -> list[dict[str, Any]]:
    return [c for c in stack_health_checks(ctx) if is_retired(c)]


def differences(current: dict[str, Any], wanted: dict[str, Any], keys: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    return {k: (current.get(k), wanted.get(k)) for k in keys if current.get(k) != wanted.get(k)}


def default_checker_regions(ctx: Context) -> set[str]:
    return set(route53(ctx).meta.service_model.shape_for("HealthCheckRegion").enum)


def narrowed_regions(ctx: Context, current: dict[str, Any]) -> bool:
    """Whether someone limited the checker regions (we leave Route 53's default: every region)."""
    regions = current.get("Regions") or []
    return bool(regions) and not default_checker_regions(ctx) <= set(regions)


def describe_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {old} -> {new}" for k, old, new in ((k, *v) for k, v in diff.items()))


# ---------------------------------------------------------------------------------------------- health


def health_of(observations: list[dict[str, Any]]) -> tuple[bool | None, datetime | None]:
    """Route 53's verdict from one observation per checker, and since when it holds, as far as a snapshot
    tells: the CheckedTime of the report that tipped the count past the 18% rule (an upper bound)."""
    reports = [o.get("StatusReport") or {} for o in observations]
    reports = sorted((r for r in reports if r.get("Status")), key=_checked_at)
    if not reports:
        return None, None
    ok = [r for r in reports if r["Status"].startswith("Success")]
    failed = [r for r in reports if not r["Status"].startswith("Success")]
    healthy = len(ok) > HEALTHY_FRACTION * len(reports)
    # The fewest agreeing reports that give this verdict; the latest of those marks the flip.
    needed_ok = int(HEALTHY_FRACTION * len(reports)) + 1
    agreeing, needed = (ok, needed_ok) if healthy else (failed, len(reports) - needed_ok + 1)
    since = agreeing[needed - 1].get("CheckedTime")
    return healthy, since if isinstance(since, datetime) else None


def _checked_at(report: dict[str, Any]) -> float:
    value = report.get("CheckedTime")
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _passing(observation: dict[str, Any]) -> bool:
    return str((observation.get("StatusReport") or {}).get("Status", "")).startswith("Success")


def health_status(ctx: Context, region: str, check_id: str | None = None) -> dict[str, Any]:
    """{check_id, healthy, since} for the region's check; healthy is None before any observation."""
    if check_id is None:
        check = active_check(ctx, region)
        if check is None:
            return {"check_id": None, "healthy": None, "since": None}
        check_id = check["Id"]
    observations = route53(ctx).get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
    healthy, since = health_of(observations)
    passing = sum(1 for o in observations if _passing(o))
    return {"check_id": check_id, "healthy": healthy, "since": since.isoformat() if since else None,
            "checkers": f"{passing}/{len(observations)} report success"}


# ----------------------------------------------------------------------------------------------- stage


class HealthChecksStage(Stage):
    name = "health-checks"
    help = "One Route 53 HTTPS health check per region on the region's API (/{stage}/health)."
    scope = "region"
    depends_on = ("api",)

    def _resource(self, region: str, check_id: str | None = None) -> str:
        return f"health check {check_id or self.config.name(region)}"

    def _wanted(self, region: str) -> dict[str, Any] | None:
        api = find_rest_api(self.ctx, region)
        return wanted_config(self.config, region, api["id"]) if api else None

    def _require_wanted(self, region: str) -> dict[str, Any]:
        wanted = self._wanted(region)
        if wanted is None:
            raise StepError(self.name, region, self._resource(region), "the region has no REST API to check",
                            "run `multiregion up` (or `up --only api`) first")
        return wanted

    def _orphans(self, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The stack's checks of regions no longer in the config (each costs money every month)."""
        return [c for c in checks if is_ours(self.ctx, c) and c["Tags"].get(TAG_REGION) not in self.config.regions]

    def _plan_orphans(self, checks: list[dict[str, Any]]) -> list[Change]:
        changes = []
        for check in self._orphans(checks):
            region = check["Tags"].get(TAG_REGION, "?")
            if is_retired(check):
                continue  # routing deletes it once nothing references it
            if self.ctx.prune:
                # Retired, not deleted: routing first drops the region, then deletes retired checks.
                changes.append(self.change(region, "update", self._resource(region, check["Id"]),
                                           "region removed from the config (--prune): retired, deleted once "
                                           "routing no longer uses it", lambda c=check: self._retire(c["Id"])))
            else:
                self.ctx.reporter.warn(f"[{region}] health check {check['Id']} belongs to a region no longer in "
                                       "the config; kept (run `up --prune` to remove it)")
        return changes

    def plan(self, region: str) -> list[Change]:
        checks = all_health_checks(self.ctx)
        orphans = self._plan_orphans(checks) if region == self.config.primary else []
        return orphans + self._plan_region(region, checks)

    def _plan_region(self, region: str, checks: list[dict[str, Any]]) -> list[Change]:
        active = sorted((c for c in checks if is_ours(self.ctx, c, region) and not is_retired(c)),
                        key=generation_of, reverse=True)
        wanted = self._wanted(region)
        target = self._summary(wanted, region)
        cost = monthly_cost(self.config)
        if wanted is None:  # planned before the API exists: nothing to compare with yet
            if active:
                return []
            return [self.change(region, "create", self._resource(region), target,
                                lambda: self._create_or_adopt(region), cost)]
        # Several active checks: a crash between creating a replacement and retiring the old one.
        active.sort(key=lambda c: not differences(c["HealthCheckConfig"], wanted, IMMUTABLE))
        changes = [self.change(region, "update", self._resource(region, c["Id"]),
                               "duplicate: retired, deleted once routing no longer uses it",
                               lambda c=c: self._retire(c["Id"])) for c in active[1:]]
        if not active:
            adoptable = self._adoptable(checks, region, wanted)
            if adoptable:
                reason = "adopt the untagged check an interrupted run created: tag it"
                changes.insert(0, self.change(region, "update", self._resource(region, adoptable["Id"]), reason,
                                              lambda: self._create_or_adopt(region)))
            else:
                changes.insert(0, self.change(region, "create", self._resource(region), target,
                                              lambda: self._create_or_adopt(region), cost))
            return changes
        return self._plan_existing(region, active[0], wanted, cost) + changes

    def _summary(self, wanted: dict[str, Any] | None, region: str) -> str:
        host = wanted["FullyQualifiedDomainName"] if wanted else f"(the {region} API)"
        hc = self.config.health_check
        return f"HTTPS {host}:443/{self.config.api.stage}/health every {hc.interval}s, {hc.failure_threshold} failures"

    def _plan_existing(self, region: str, check: dict[str, Any], wanted: dict[str, Any], cost: str) -> list[Change]:
        current = check["HealthCheckConfig"]
        immutable = differences(current, wanted, IMMUTABLE)
        if immutable:
            reason = (f"{describe_diff(immutable)} (cannot change in place): a new check; routing moves to it, "
                      "then the old one is deleted")
            return [self.change(region, "replace", self._resource(region, check["Id"]), reason,
                                lambda: self._replace(region, check["Id"]), cost)]
        changes = []
        mutable = differences(current, wanted, MUTABLE)
        reset = ["Regions"] if narrowed_regions(self.ctx, current) else []
        if mutable or reset:
            reasons = [describe_diff(mutable)] if mutable else []
            reasons += ["checker regions back to Route 53's default"] if reset else []
            update = {k: wanted[k] for k in mutable}
            changes.append(self.change(region, "update", self._resource(region, check["Id"]), "; ".join(reasons),
                                       lambda: self._update(check["Id"], update, reset)))
        tags = self._wanted_tags(region)
        if any(check["Tags"].get(k) != v for k, v in tags.items()):
            changes.append(self.change(region, "update", self._resource(region, check["Id"]), "tags",
                                       lambda: self._tag(check["Id"], tags)))
        return changes

    def _adoptable(self, checks: list[dict[str, Any]], region: str, wanted: dict[str, Any]) -> dict[str, Any] | None:
        prefix = reference_prefix(self.config.service, region)
        for check in sorted(checks, key=generation_of, reverse=True):
            if check["Tags"].get(TAG_STACK) or not check.get("CallerReference", "").startswith(prefix):
                continue
            current = check["HealthCheckConfig"]
            if differences(current, wanted, IMMUTABLE + MUTABLE) or narrowed_regions(self.ctx, current):
                # Said once per run, though plan and apply both look.
                self.ctx.memo(("health-checks", "lookalike", check["Id"]), lambda c=check: self.ctx.reporter.warn(
                    f"[{region}] untagged health check {c['Id']} carries this stack's reference but other "
                    "settings; left alone"))
                continue
            return check
        return None

    # ------------------------------------------------------------------------------------------ writes

    def _wanted_tags(self, region: str) -> dict[str, str]:
        return {**self.ctx.tags(region), TAG_NAME: self.config.name(region)}

    def _tag(self, check_id: str, tags: dict[str, str], remove: Iterable[str] = ()) -> None:
        kwargs: dict[str, Any] = {"AddTags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        if remove:
            kwargs["RemoveTagKeys"] = list(remove)
        route53(self.ctx).change_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id, **kwargs)

    def _retire(self, check_id: str) -> None:
        self._tag(check_id, {TAG_RETIRED: "true"})

    def _create_or_adopt(self, region: str) -> str:
        wanted = self._require_wanted(region)
        checks = all_health_checks(self.ctx)
        check = self._adoptable(checks, region, wanted) or self._create(region, wanted)
        retired = is_ours(self.ctx, check, region) and is_retired(check)
        self._tag(check["Id"], self._wanted_tags(region), remove=[TAG_RETIRED] if retired else ())
        return str(check["Id"])

    def _create(self, region: str, wanted: dict[str, Any]) -> dict[str, Any]:
        client = route53(self.ctx)
        day = utc_day()
        for generation in range(1, MAX_GENERATION + 1):
            reference = caller_reference(self.config.service, region, wanted["RequestInterval"], day, generation)
            try:
                check = client.create_health_check(CallerReference=reference, HealthCheckConfig=wanted)["HealthCheck"]
            except Exception as exc:
                # The reference belonged to a deleted check, or to one with other settings: next generation.
                if error_code(exc) != "HealthCheckAlreadyExists":
                    raise
                continue
            tags = client.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=[check["Id"]])
            return {**check, "Tags": {t["Key"]: t["Value"] for t in tags["ResourceTagSets"][0].get("Tags", [])}}
        raise StepError(self.name, region, self._resource(region),
                        f"all {MAX_GENERATION} CallerReferences of today are used up",
                        "run again tomorrow (UTC), or delete unused checks whose reference starts with "
                        f"{reference_prefix(self.config.service, region)}")

    def _replace(self, region: str, old_id: str) -> None:
        # The replacement exists and is tagged before the old check is retired: routing always has one.
        if self._create_or_adopt(region) != old_id:
            self._retire(old_id)

    def _update(self, check_id: str, update: dict[str, Any], reset: list[str]) -> None:
        client = route53(self.ctx)
        version = client.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckVersion"]
        kwargs = {**update, **({"ResetElements": reset} if reset else {})}
        client.update_health_check(HealthCheckId=check_id, HealthCheckVersion=version, **kwargs)

    # ----------------------------------------------------------------------------------- settle, down

    def settle(self, region: str) -> None:
        check = active_check(self.ctx, region)
        if check is None:
            raise StepError(self.name, region, self._resource(region), "no health check after converging",
                            "run the same command again")

        def reporting() -> tuple[bool, str]:
            status = health_status(self.ctx, region, check["Id"])
            if status["healthy"] is None:
                return False, "no observation yet"
            return True, "healthy" if status["healthy"] else "unhealthy"

        # Usable once Route 53's checkers report; healthy or not is for `status` and routing to judge.
        self.ctx.wait_until(f"{self._resource(region, check['Id'])} reporting", region, reporting)

    def destroy(self, region: str) -> list[Change]:
        checks = stack_health_checks(self.ctx, region)
        if region == self.config.primary:  # and those of regions dropped from the config since
            checks += self._orphans(all_health_checks(self.ctx))
        return [self.change(region, "delete", self._resource(region, c["Id"]), "down",
                            lambda c=c: self._delete(region, c["Id"])) for c in checks]

    def _delete(self, region: str, check_id: str) -> None:
        try:
            route53(self.ctx).delete_health_check(HealthCheckId=check_id)
        except Exception as exc:
            if error_code(exc) == "HealthCheckInUse":
                raise StepError(self.name, region, self._resource(region, check_id),
                                "a record or traffic policy still references it",
                                "remove that reference (run `down` again if it is this stack's routing)") from exc
            if error_code(exc) != "NoSuchHealthCheck":
                raise

    def status(self, region: str) -> dict[str, Any]:
        return health_status(self.ctx, region)


def delete_retired(ctx: Context, check_id: str, referenced: set[str]) -> bool:
    """Delete a retired check unless something still references it; True when it is gone."""
    if check_id in referenced:
        ctx.reporter.warn(f"retired health check {check_id} is still referenced; it is left for the next run")
        return False
    try:
        route53(ctx).delete_health_check(HealthCheckId=check_id)
    except Exception as exc:
        if error_code(exc) == "HealthCheckInUse":
            ctx.reporter.warn(f"retired health check {check_id} is still in use (HealthCheckInUse); "
                              "it is left for the next run")
            return False
        if error_code(exc) != "NoSuchHealthCheck":
            raise
    return True
