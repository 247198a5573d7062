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

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from multiregion import names
from multiregion.aws import error_code
from multiregion.config import Config
from multiregion.engine import TAG_REGION, TAG_STACK, Env, Inputs, NodePlan, Reader, Stage, StepError
from multiregion.executor import BuiltinContext, builtin
from multiregion.lookups import health_checks as hc
from multiregion.names import ROUTE53_REGION
from multiregion.plan import Builtin, Call, Change, Cost, Wait, concat, is_known

# Route 53 prices a basic check on an AWS endpoint at $0.50 a month, and each optional feature on it
# (HTTPS, the 10 s "fast" interval, string matching, latency graphs) at $1.00 more.
BASIC_CHECK_USD = "0.50"
OPTIONAL_FEATURE_USD = "1.00"
# Settings UpdateHealthCheck cannot change (an IPAddress it can change but never remove): a difference means
# a replacement.
IMMUTABLE = ("Type", "RequestInterval", "MeasureLatency", "IPAddress")
MUTABLE = ("FullyQualifiedDomainName", "Port", "ResourcePath", "FailureThreshold", "EnableSNI", "Inverted",
           "Disabled")
MAX_GENERATION = 999  # per day


def wanted_config(config: Config, region: str, api_id: Any) -> dict[str, Any]:
    """The HealthCheckConfig the stack wants for one region (checker regions: Route 53's default)."""
    return {
        "Type": "HTTPS",
        "FullyQualifiedDomainName": concat(api_id, f".execute-api.{region}.amazonaws.com"),
        "Port": 443,
        "ResourcePath": f"/{config.api.stage}/health",
        "RequestInterval": config.health_check.interval,
        "FailureThreshold": config.health_check.failure_threshold,
        "EnableSNI": True,
        "Inverted": False,
        "Disabled": False,
        "MeasureLatency": False,
    }


def monthly_cost(config: Config) -> Cost:
    features = 1 + (config.health_check.interval == 10)  # HTTPS, and the fast interval
    return Cost(Decimal(BASIC_CHECK_USD) + features * Decimal(OPTIONAL_FEATURE_USD))


def caller_reference(service: str, region: str, interval: int, day: int, generation: int) -> str:
    # At most 3 + 32 + 1 + 14 + 1 + 2 + 1 + 5 + 1 + 3 = 63 characters: CallerReference allows 64.
    return f"{hc.reference_prefix(service, region)}{interval}:{day}:{generation}"


def differences(current: dict[str, Any], wanted: dict[str, Any], keys: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    return {k: (current.get(k), wanted.get(k)) for k in keys if current.get(k) != wanted.get(k)}


def describe_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {old} -> {new}" for k, (old, new) in diff.items())


@dataclass(frozen=True)
class HealthCheckSnapshot:
    checks: tuple[dict[str, Any], ...] = ()  # every check of the account, with "Tags"
    checker_regions: frozenset[str] = field(default_factory=frozenset)  # Route 53's default set


@dataclass(frozen=True)
class HealthCheckStatus:
    check_id: str | None
    healthy: bool | None
    since: str | None = None
    checkers: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(vars(self))
        if self.checkers is None:
            data.pop("checkers")
        return data


class HealthChecksStage(Stage[HealthCheckSnapshot]):
    name = "health-checks"
    help = "One Route 53 HTTPS health check per region on the region's API (/{stage}/health)."
    scope = "region"
    depends_on = ("api",)

    def read(self, aws: Reader, region: str) -> HealthCheckSnapshot:
        return HealthCheckSnapshot(tuple(hc.all_health_checks(aws)), frozenset(hc.default_checker_regions(aws)))

    @staticmethod
    def _resource(config: Config, region: str, check_id: str | None = None) -> str:
        return f"health check {check_id or names.health_check_name(config, region)}"

    def _narrowed(self, snapshot: HealthCheckSnapshot, current: dict[str, Any]) -> bool:
        """Whether someone limited the checker regions (we leave Route 53's default: every region)."""
        regions = current.get("Regions") or []
        return bool(regions) and not snapshot.checker_regions <= set(regions)

    # ------------------------------------------------------------------------------------------- diff

    def diff(self, env: Env, region: str, snapshot: HealthCheckSnapshot, inputs: Inputs) -> NodePlan:
        config = env.config
        checks = list(snapshot.checks)
        changes: list[Change] = []
        warnings: list[str] = []
        if region == config.primary:
            changes += self._plan_orphans(env, checks, warnings)
        wanted = wanted_config(config, region, inputs.get("api", region, "api_id"))
        active = sorted((c for c in checks if hc.is_ours(config.service, c, region) and not hc.is_retired(c)),
                        key=hc.generation_of, reverse=True)
        # Several active checks: a crash between creating a replacement and retiring the old one.
        active.sort(key=lambda c: bool(differences(c["HealthCheckConfig"], wanted, IMMUTABLE)))
        duplicates = [self.change(region, "update", self._resource(config, region, c["Id"]),
                                  "duplicate: retired, deleted once routing no longer uses it", self._retire(c["Id"]))
                      for c in active[1:]]
        if active:
            plan, check_id = self._plan_existing(env, region, snapshot, active[0], wanted), active[0]["Id"]
            changes += plan
            if plan and plan[0].action == "replace":
                check_id = self.ref(region, "check_id", "the new health check created above")
            return NodePlan(changes=tuple(changes + duplicates), outputs={"check_id": check_id},
                            warnings=tuple(warnings))
        adoptable = self._adoptable(env, region, snapshot, wanted, warnings)
        if adoptable is not None:
            changes.append(self.change(region, "update", self._resource(config, region, adoptable["Id"]),
                                       "adopt the untagged check an interrupted run created: tag it",
                                       self._tag(adoptable["Id"], self._wanted_tags(env, region))))
            return NodePlan(changes=tuple(changes), outputs={"check_id": adoptable["Id"]}, warnings=tuple(warnings))
        check_id = self.ref(region, "check_id", "the health check created above")
        changes.append(self.change(region, "create", self._resource(config, region),
                                   self._summary(config, region, wanted), *self._create(env, region, wanted, check_id),
                                   cost=monthly_cost(config)))
        return NodePlan(changes=tuple(changes), outputs={"check_id": check_id}, warnings=tuple(warnings))

    def _plan_orphans(self, env: Env, checks: list[dict[str, Any]], warnings: list[str]) -> list[Change]:
        """The stack's checks of regions no longer in the config (each costs money every month)."""
        changes = []
        for check in checks:
            region = check["Tags"].get(TAG_REGION, "?")
            if not hc.is_ours(env.config.service, check) or region in env.config.regions or hc.is_retired(check):
                continue  # a retired one is deleted by routing once nothing references it
            if env.prune:
                # Retired, not deleted: routing first drops the region, then deletes retired checks.
                changes.append(self.change(region, "update", self._resource(env.config, region, check["Id"]),
                                           "region removed from the config (--prune): retired, deleted once "
                                           "routing no longer uses it", self._retire(check["Id"])))
            else:
                warnings.append(f"[{region}] health check {check['Id']} belongs to a region no longer in "
                                "the config; kept (run `up --prune` to remove it)")
        return changes

    def _summary(self, config: Config, region: str, wanted: dict[str, Any]) -> str:
        host = wanted["FullyQualifiedDomainName"]
        shown = host if is_known(host) else f"(the {region} API)"
        return (f"HTTPS {shown}:443/{config.api.stage}/health every {config.health_check.interval}s, "
                f"{config.health_check.failure_threshold} failures")

    def _plan_existing(self, env: Env, region: str, snapshot: HealthCheckSnapshot, check: dict[str, Any],
                       wanted: dict[str, Any]) -> list[Change]:
        config = env.config
        current = check["HealthCheckConfig"]
        resource = self._resource(config, region, check["Id"])
        immutable = differences(current, wanted, IMMUTABLE)
        if immutable:
            reason = (f"{describe_diff(immutable)} (cannot change in place): a new check; routing moves to it, "
                      "then the old one is deleted")
            new_id = self.ref(region, "check_id", "the new health check created above")
            return [self.change(region, "replace", resource, reason, *self._create(env, region, wanted, new_id),
                                self._retire(check["Id"]), cost=monthly_cost(config))]
        changes = []
        mutable = differences(current, wanted, MUTABLE)
        reset = ["Regions"] if self._narrowed(snapshot, current) else []
        if mutable or reset:
            reasons = [describe_diff(mutable)] if mutable else []
            reasons += ["checker regions back to Route 53's default"] if reset else []
            update = {"HealthCheckId": check["Id"], "HealthCheckVersion": check.get("HealthCheckVersion", 1),
                      **{k: wanted[k] for k in mutable}, **({"ResetElements": reset} if reset else {})}
            changes.append(self.change(region, "update", resource, "; ".join(reasons),
                                       Call("route53", ROUTE53_REGION, "update_health_check", update)))
        tags = self._wanted_tags(env, region)
        if any(check["Tags"].get(k) != v for k, v in tags.items()):
            changes.append(self.change(region, "update", resource, "tags", self._tag(check["Id"], tags)))
        return changes

    def _adoptable(self, env: Env, region: str, snapshot: HealthCheckSnapshot, wanted: dict[str, Any],
                   warnings: list[str]) -> dict[str, Any] | None:
        if not is_known(wanted["FullyQualifiedDomainName"]):
            return None
        prefix = hc.reference_prefix(env.config.service, region)
        for check in sorted(snapshot.checks, key=hc.generation_of, reverse=True):
            if check["Tags"].get(TAG_STACK) or not check.get("CallerReference", "").startswith(prefix):
                continue
            current = check["HealthCheckConfig"]
            if differences(current, wanted, IMMUTABLE + MUTABLE) or self._narrowed(snapshot, current):
                warnings.append(f"[{region}] untagged health check {check['Id']} carries this stack's reference but "
                                "other settings; left alone")
                continue
            return check
        return None

    def _create(self, env: Env, region: str, wanted: dict[str, Any], check_id: Any) -> tuple[Any, ...]:
        create = Builtin("health-checks.create", ROUTE53_REGION,
                         {"service": env.config.service, "check_region": region, "config": wanted},
                         outputs={"check_id": "check_id"})
        reporting = Wait(f"health check of {region} reporting", "route53", ROUTE53_REGION, "get_health_check_status",
                         {"HealthCheckId": check_id},
                         "length(HealthCheckObservations[?StatusReport.Status]) > `0` && 'reporting' "
                         "|| 'no observation yet'", ("reporting",), timeout=600.0,
                         duration="health_check_first_verdict")
        return create, self._tag(check_id, self._wanted_tags(env, region), remove=[hc.TAG_RETIRED]), reporting

    def _wanted_tags(self, env: Env, region: str) -> dict[str, str]:
        return {**env.tags(region), hc.TAG_NAME: names.health_check_name(env.config, region)}

    @staticmethod
    def _tag(check_id: Any, tags: dict[str, str], remove: Iterable[str] = ()) -> Call:
        params: dict[str, Any] = {"ResourceType": "healthcheck", "ResourceId": check_id,
                                  "AddTags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        if remove:
            params["RemoveTagKeys"] = list(remove)
        return Call("route53", ROUTE53_REGION, "change_tags_for_resource", params)

    def _retire(self, check_id: str) -> Call:
        return self._tag(check_id, {hc.TAG_RETIRED: "true"})

    # ------------------------------------------------------------------------------------------- down

    def destroy(self, env: Env, region: str, snapshot: HealthCheckSnapshot) -> NodePlan:
        config = env.config
        checks = [c for c in snapshot.checks if hc.is_ours(config.service, c, region)]
        if region == config.primary:  # and those of regions dropped from the config since
            checks += [c for c in snapshot.checks if hc.is_ours(config.service, c)
                       and c["Tags"].get(TAG_REGION) not in config.regions]
        return NodePlan(changes=tuple(
            self.change(region, "delete", self._resource(config, region, c["Id"]), "down",
                        Call("route53", ROUTE53_REGION, "delete_health_check", {"HealthCheckId": c["Id"]},
                             done_if=("NoSuchHealthCheck",)))
            for c in checks))

    def status(self, aws: Reader, region: str) -> HealthCheckStatus:
        status = hc.health_status(aws, region)
        return HealthCheckStatus(status["check_id"], status["healthy"], status.get("since"), status.get("checkers"))


@builtin("health-checks.create")
def create_health_check(ctx: BuiltinContext, region: str, service: str, check_region: str,
                        config: dict[str, Any]) -> dict[str, Any]:
    """CreateHealthCheck with the first CallerReference of today's sequence that AWS accepts.

    The same reference and settings return the existing check (a retry after a crash); a reference of a
    deleted check, or of one with other settings, is refused, and the next generation is tried."""
    client = ctx.clients("route53", ROUTE53_REGION)
    day = int(time.time() // 86400)
    for generation in range(1, MAX_GENERATION + 1):
        reference = caller_reference(service, check_region, int(config["RequestInterval"]), day, generation)
        try:
            check = client.create_health_check(CallerReference=reference, HealthCheckConfig=config)["HealthCheck"]
        except ClientError as exc:
            if error_code(exc) != "HealthCheckAlreadyExists":
                raise
            continue
        return {"check_id": check["Id"]}
    raise StepError("health-checks", check_region, f"health check {service}-{check_region}",
                    f"all {MAX_GENERATION} CallerReferences of today are used up",
                    "run again tomorrow (UTC), or delete unused checks whose reference starts with "
                    f"{hc.reference_prefix(service, check_region)}")
