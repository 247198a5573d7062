"""Stage `routing`: one global name, answered with the nearest healthy region.

Two ways to the same answer, chosen by `routing.mode`:

* `traffic-policy`: a traffic policy `{service}-latency` (a latency rule over one `value` endpoint per
  region, each with its health check) and its policy record (traffic policy instance) for `domain.name`.
  A changed document becomes a new policy version and the instance is moved to it. The policy record costs
  $50 a month, so the plan shows that before creating it.
* `latency-records`: one alias A record per region (SetIdentifier and Region = the region, its health
  check, alias to the regional custom domain), for latency-query pricing only.

A policy record is a CNAME, and DNS lets nothing else share a name with a CNAME: switching modes removes the
old mode's records right before the new ones are written (a short gap in answers, said in the plan).
Switching to latency records also deletes the policy. Health checks that `health-checks` retired (an
interval cannot change in place) are deleted here, once nothing references them any more.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from multiregion.aws import absent_as_none, error_code
from multiregion.engine import GLOBAL, Change, Conflict, Context, Stage, StepError
from multiregion.regions import REGIONS, client_ip
from multiregion.stages.domains import regional_domain
from multiregion.stages.health_checks import active_checks, delete_retired, retired_checks, route53
from multiregion.stages.zone import find_hosted_zone, hosted_zone_id, short_id

POLICY_FORMAT = "2015-10-01"
POLICY_TYPE = "CNAME"  # there is no API Gateway endpoint type in traffic policies: a value endpoint
ALIAS_TYPE = "A"
START_RULE = "by-latency"
# Each policy record (traffic policy instance) is billed $50 a month; latency records only per query.
POLICY_RECORD_COST = "$50.00/month"
# A policy holds at most 1,000 versions; past PRUNE_AT, versions no policy record uses are deleted, all but
# the newest KEEP_RECENT (kept to roll back to).
PRUNE_AT = 900
KEEP_RECENT = 10
APPLIED, FAILED = "Applied", "Failed"
_EXECUTE_API_RE = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")


def dns_name(name: str | None) -> str:
    return (name or "").rstrip(".").lower()


# ------------------------------------------------------------------------------------------ what we want


@dataclass(frozen=True)
class Endpoint:
    """One region's target: its regional custom domain and its health check (None until they exist)."""

    region: str
    domain_name: str | None
    domain_zone_id: str | None
    check_id: str | None

    @property
    def complete(self) -> bool:
        return bool(self.domain_name and self.domain_zone_id and self.check_id)


def endpoints(ctx: Context) -> list[Endpoint]:
    checks = active_checks(ctx)
    out = []
    for region in ctx.config.regions:
        domain = regional_domain(ctx, region)
        check = checks.get(region)
        out.append(Endpoint(region, dns_name(domain[0]) if domain else None, domain[1] if domain else None,
                            check["Id"] if check else None))
    return out


def pending(e: Endpoint) -> str:
    missing = [what for what, value in (("custom domain", e.domain_name), ("health check", e.check_id)) if not value]
    return f"waits for its {' and '.join(missing)}" if missing else "ready"


def policy_document(eps: list[Endpoint]) -> dict[str, Any]:
    return {
        "AWSPolicyFormatVersion": POLICY_FORMAT,
        "RecordType": POLICY_TYPE,
        "StartRule": START_RULE,
        "Endpoints": {f"ep-{e.region}": {"Type": "value", "Value": e.domain_name} for e in eps},
        "Rules": {START_RULE: {"RuleType": "latency", "Regions": [
            {"Region": e.region, "EndpointReference": f"ep-{e.region}", "EvaluateTargetHealth": True,
             "HealthCheck": e.check_id} for e in eps]}},
    }


def serialize(document: dict[str, Any]) -> str:
    # Sorted keys, regions in config order: the same config always gives the same text.
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def latency_record(name: str, e: Endpoint) -> dict[str, Any]:
    return {"Name": name, "Type": ALIAS_TYPE, "SetIdentifier": e.region, "Region": e.region,
            "HealthCheckId": e.check_id,
            "AliasTarget": {"HostedZoneId": e.domain_zone_id, "DNSName": e.domain_name,
                            "EvaluateTargetHealth": True}}


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two record sets equal, with Route 53's spelling differences (trailing dots) removed."""
    alias = record.get("AliasTarget") or {}
    values = sorted(r["Value"] for r in record.get("ResourceRecords") or [])
    return (record.get("Type"), record.get("SetIdentifier"), record.get("Region"), record.get("HealthCheckId"),
            alias.get("HostedZoneId"), dns_name(alias.get("DNSName")), alias.get("EvaluateTargetHealth"),
            record.get("TTL"), values)


def document_checks(document: dict[str, Any]) -> set[str]:
    """The health check ids a policy document references, in any rule."""
    return {entry["HealthCheck"] for rule in document.get("Rules", {}).values()
            for entry in rule.get("Regions", []) if entry.get("HealthCheck")}


def document_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short diff of two latency policy documents, per region."""
    def by_region(doc: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        endpoints_ = doc.get("Endpoints", {})
        rule = doc.get("Rules", {}).get(START_RULE, {})
        return {r.get("Region"): ((endpoints_.get(r.get("EndpointReference")) or {}).get("Value"),
                                  r.get("HealthCheck")) for r in rule.get("Regions", [])}

    before, after = by_region(old), by_region(new)
    parts = []
    for region in [*after, *(r for r in before if r not in after)]:
        if region not in before:
            parts.append(f"+{region}")
        elif region not in after:
            parts.append(f"-{region}")
        elif before[region] != after[region]:
            (old_value, old_check), (new_value, new_check) = before[region], after[region]
            if old_value != new_value:
                parts.append(f"{region} endpoint {old_value} -> {new_value}")
            if old_check != new_check:
                parts.append(f"{region} health check {old_check} -> {new_check}")
    return ", ".join(parts) or "document rewritten"


# ------------------------------------------------------------------------------------- what AWS holds


def find_policy(ctx: Context) -> dict[str, Any] | None:
    """The stack's traffic policy summary (found by its name), or None."""
    name = ctx.config.name("latency")
    kwargs: dict[str, Any] = {}
    while True:
        page = route53(ctx).list_traffic_policies(**kwargs)
        for summary in page.get("TrafficPolicySummaries", []):
            if summary["Name"] == name:
                return summary
        if not page.get("IsTruncated"):
            return None
        kwargs = {"TrafficPolicyIdMarker": page["TrafficPolicyIdMarker"]}


def policy_versions(ctx: Context, policy_id: str) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Id": policy_id}
    while True:
        page = route53(ctx).list_traffic_policy_versions(**kwargs)
        versions += page.get("TrafficPolicies", [])
        if not page.get("IsTruncated"):
            return versions
        kwargs["TrafficPolicyVersionMarker"] = page["TrafficPolicyVersionMarker"]


def zone_instances(ctx: Context, zone_id: str) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id}
    while True:
        try:
            page = route53(ctx).list_traffic_policy_instances_by_hosted_zone(**kwargs)
        except Exception as exc:
            # Route 53 answers a zone without any policy record with this error, not an empty list.
            if error_code(exc) == "NoSuchTrafficPolicyInstance":
                return instances
            raise
        instances += page.get("TrafficPolicyInstances", [])
        if not page.get("IsTruncated"):
            return instances
        kwargs.update(TrafficPolicyInstanceNameMarker=page["TrafficPolicyInstanceNameMarker"],
                      TrafficPolicyInstanceTypeMarker=page["TrafficPolicyInstanceTypeMarker"])


def get_instance(ctx: Context, instance_id: str) -> dict[str, Any] | None:
    answer = absent_as_none(lambda: route53(ctx).get_traffic_policy_instance(Id=instance_id),
                            "NoSuchTrafficPolicyInstance")
    return answer["TrafficPolicyInstance"] if answer else None


def records_at(ctx: Context, zone_id: str, name: str) -> list[dict[str, Any]]:
    """Every record set named `name` (ListResourceRecordSets from that name on, until the name changes)."""
    records: list[dict[str, Any]] = []
    pages = route53(ctx).get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id,
                                                                            StartRecordName=name)
    for page in pages:
        for record in page.get("ResourceRecordSets", []):
            if dns_name(record["Name"]) != name:
                return records
            records.append(record)
    return records


def is_latency_record(record: dict[str, Any]) -> bool:
    """One of our per-region latency records (SetIdentifier = Region = a region code), not a policy's."""
    sid = record.get("SetIdentifier")
    return sid in REGIONS and record.get("Region") == sid and not record.get("TrafficPolicyInstanceId")


@dataclass
class RoutingState:
    zone_id: str | None
    policy: dict[str, Any] | None = None
    instance: dict[str, Any] | None = None  # the policy record for the global name
    strays: list[dict[str, Any]] = field(default_factory=list)  # our policy's records at other names
    latency: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PolicyTarget:
    """The policy id and version the instance must use; filled by an earlier change of the same run."""

    policy_id: str | None
    version: int | None


# ----------------------------------------------------------------------------------------------- stage


class RoutingStage(Stage):
    name = "routing"
    help = "The global name: a latency traffic policy and its policy record, or latency records."
    scope = "global"
    depends_on = ("domains", "health-checks")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._submitted: list[str] = []  # record change ids not yet known INSYNC

    @property
    def record_name(self) -> str:
        return dns_name(self.config.domain.name)

    @property
    def policy_name(self) -> str:
        return self.config.name("latency")

    # ------------------------------------------------------------------------------------------ reading

    def _zone(self) -> str | None:
        """The hosted zone's id, or None before it exists (a plan on a fresh account)."""
        zone = find_hosted_zone(self.ctx)
        return short_id(zone["Id"]) if zone else None

    def _require_zone(self) -> str:
        return short_id(hosted_zone_id(self.ctx))

    def _read(self, zone_id: str | None) -> RoutingState:
        state = RoutingState(zone_id, policy=find_policy(self.ctx))
        if zone_id is None:
            return state
        for instance in zone_instances(self.ctx, zone_id):
            at_name = dns_name(instance["Name"]) == self.record_name
            ours = state.policy is not None and instance["TrafficPolicyId"] == state.policy["Id"]
            if at_name and not ours:
                raise Conflict(self.name, GLOBAL, f"policy record {self.record_name}",
                               f"exists and uses traffic policy {instance['TrafficPolicyId']}, not {self.policy_name}",
                               "it is left untouched; delete it or choose another domain.name")
            if at_name:
                state.instance = instance
            elif ours:
                state.strays.append(instance)
        for record in records_at(self.ctx, zone_id, self.record_name):
            if is_latency_record(record):
                state.latency.append(record)
            elif not record.get("TrafficPolicyInstanceId"):
                state.foreign.append(record)
        if state.foreign:
            kinds = ", ".join(sorted({r["Type"] for r in state.foreign}))
            raise Conflict(self.name, GLOBAL, f"records {self.record_name}",
                           f"{kinds} record(s) of that name exist and are not this stack's",
                           "they are left untouched; delete them or choose another domain.name")
        return state

    def _endpoints(self) -> list[Endpoint]:
        """Every region's endpoint, complete: what a write needs (after domains and health-checks)."""
        eps = endpoints(self.ctx)
        missing = [e for e in eps if not e.complete]
        if missing:
            raise StepError(self.name, GLOBAL, f"global name {self.record_name}",
                            f"regions not ready: {', '.join(f'{e.region} ({pending(e)})' for e in missing)}",
                            "run `multiregion up`: the domains and health-checks stages come first")
        return eps

    # --------------------------------------------------------------------------------------------- plan

    def plan(self, region: str = GLOBAL) -> list[Change]:
        state = self._read(self._zone())
        if self.config.routing.mode == "traffic-policy":
            changes = self._plan_policy(state)
        else:
            changes = self._plan_records(state)
        return changes + self._plan_retired_checks()

    def _plan_policy(self, state: RoutingState) -> list[Change]:
        eps = endpoints(self.ctx)
        missing = [e for e in eps if not e.complete]
        # Planned before domains or health checks exist (`plan` reads everything at once): the new
        # version is certain, its content is known once they do.
        wanted = None if missing else policy_document(eps)
        policy = state.policy
        target = PolicyTarget(policy["Id"] if policy else None, policy["LatestVersion"] if policy else None)
        changes = []
        new_version = False
        if policy is None:
            changes.append(self.change(GLOBAL, "create", f"traffic policy {self.policy_name}",
                                       f"latency rule over {', '.join(self.config.regions)}, health-checked",
                                       lambda: self._create_policy(target)))
        else:
            if policy.get("Type") != POLICY_TYPE:
                raise Conflict(self.name, GLOBAL, f"traffic policy {self.policy_name}",
                               f"exists with record type {policy.get('Type')}, not {POLICY_TYPE}",
                               "delete that policy (and its policy records) or choose another service name")
            found = route53(self.ctx).get_traffic_policy(Id=policy["Id"], Version=policy["LatestVersion"])
            current = json.loads(found["TrafficPolicy"]["Document"])
            if wanted is None or current != wanted:
                new_version = True
                diff = document_diff(current, wanted) if wanted else ", ".join(
                    f"{e.region} {pending(e)}" for e in missing)
                latest = policy["LatestVersion"]
                changes.append(self.change(GLOBAL, "update", f"traffic policy {self.policy_name}",
                                           f"version {latest} -> {latest + 1}: {diff}",
                                           lambda: self._new_version(target)))
        if state.latency:
            changes.append(self.change(
                GLOBAL, "delete", f"latency records {self.record_name}",
                "switching to traffic-policy: a policy record's CNAME cannot share its name with A records, so "
                "they go right before it is created (answers pause briefly)",
                lambda: self._delete_records(state.latency)))
        changes += self._plan_instance(state, target, new_version)
        changes += [self.change(GLOBAL, "delete", f"policy record {dns_name(s['Name'])}",
                                f"not the configured name {self.record_name} (saves {POLICY_RECORD_COST})",
                                lambda s=s: self._delete_instance(s["Id"])) for s in state.strays]
        count = (policy or {}).get("TrafficPolicyCount", 0) + new_version
        if count > PRUNE_AT:
            changes.append(self.change(GLOBAL, "delete", f"traffic policy {self.policy_name}",
                                       f"unused old versions ({count} of the 1,000 a policy may hold)",
                                       lambda: self._prune_versions(target)))
        return changes

    def _prune_versions(self, target: PolicyTarget) -> None:
        policy_id = str(target.policy_id)
        in_use = {i["TrafficPolicyVersion"] for i in zone_instances(self.ctx, self._require_zone())
                  if i["TrafficPolicyId"] == policy_id} | {target.version}
        versions = sorted(v["Version"] for v in policy_versions(self.ctx, policy_id))
        for version in [v for v in versions[:-KEEP_RECENT] if v not in in_use]:
            try:
                route53(self.ctx).delete_traffic_policy(Id=policy_id, Version=version)
            except Exception as exc:
                # Used by a policy record in another zone: it stays.
                if error_code(exc) not in ("TrafficPolicyInUse", "NoSuchTrafficPolicy"):
                    raise

    def _plan_instance(self, state: RoutingState, target: PolicyTarget, new_version: bool) -> list[Change]:
        ttl = self.config.routing.ttl
        instance = state.instance
        resource = f"policy record {self.record_name}"
        if instance is None:
            return [self.change(GLOBAL, "create", resource, f"traffic policy {self.policy_name}, TTL {ttl}",
                                lambda: self._create_instance(target), POLICY_RECORD_COST)]
        reasons = []
        if new_version or instance["TrafficPolicyVersion"] != target.version:
            latest = f"{target.version + 1 if new_version else target.version}"
            reasons.append(f"policy version {instance['TrafficPolicyVersion']} -> {latest}")
        if instance["TTL"] != ttl:
            reasons.append(f"TTL {instance['TTL']} -> {ttl}")
        if instance.get("State") == FAILED:
            reasons.append(f"last change failed ({instance.get('Message', '')}): applied again")
        if not reasons:
            return []
        return [self.change(GLOBAL, "update", resource, ", ".join(reasons),
                            lambda: self._update_instance(instance["Id"], target))]

    def _plan_records(self, state: RoutingState) -> list[Change]:
        changes = []
        if state.instance is not None:
            instance_id = state.instance["Id"]
            changes.append(self.change(
                GLOBAL, "delete", f"policy record {self.record_name}",
                "switching to latency-records: its CNAME cannot share the name with A records, so it goes right "
                f"before they are written (answers pause briefly; saves {POLICY_RECORD_COST})",
                lambda: self._delete_instance(instance_id)))
        changes += [self.change(GLOBAL, "delete", f"policy record {dns_name(s['Name'])}",
                                f"not used in latency-records mode (saves {POLICY_RECORD_COST})",
                                lambda s=s: self._delete_instance(s["Id"])) for s in state.strays]
        eps = {e.region: e for e in endpoints(self.ctx)}
        current = {r["SetIdentifier"]: r for r in state.latency if r["Type"] == ALIAS_TYPE}
        # Our records of another type would block the A records: they go first.
        stale = [r for r in state.latency if r["Type"] != ALIAS_TYPE]
        removed = [r for sid, r in current.items() if sid not in self.config.regions]
        if stale:
            changes.append(self.change(GLOBAL, "delete", f"latency records {self.record_name}",
                                       f"{len(stale)} {stale[0]['Type']} record(s) replaced by alias A records",
                                       lambda: self._delete_records(stale)))
        for region in self.config.regions:
            have, endpoint = current.get(region), eps[region]
            want = latency_record(self.record_name, endpoint) if endpoint.complete else None
            if have is not None and want is not None and record_key(have) == record_key(want):
                continue
            if have is None:
                reason = "alias A to the region's custom domain, latency, health-checked"
            else:
                reason = self._record_diff(have, want) if want else pending(endpoint)
            changes.append(self.change(region, "create" if have is None else "update",
                                       f"latency record {self.record_name} ({region})", reason,
                                       lambda r=region: self._upsert_record(r)))
        if removed:
            changes.append(self.change(GLOBAL, "delete", f"latency records {self.record_name}",
                                       f"regions no longer configured: {', '.join(r['Region'] for r in removed)}",
                                       lambda: self._delete_records(removed)))
        if state.policy is not None:
            changes.append(self.change(GLOBAL, "delete", f"traffic policy {self.policy_name}",
                                       "not used in latency-records mode (every version)",
                                       lambda: self._delete_policy(state.policy["Id"])))
        return changes

    @staticmethod
    def _record_diff(have: dict[str, Any], want: dict[str, Any]) -> str:
        parts = []
        if have.get("HealthCheckId") != want["HealthCheckId"]:
            parts.append(f"health check {have.get('HealthCheckId')} -> {want['HealthCheckId']}")
        have_alias = have.get("AliasTarget") or {}
        if dns_name(have_alias.get("DNSName")) != want["AliasTarget"]["DNSName"]:
            parts.append(f"target {dns_name(have_alias.get('DNSName')) or '-'} -> {want['AliasTarget']['DNSName']}")
        return ", ".join(parts) or "alias target settings"

    def _plan_retired_checks(self) -> list[Change]:
        return [self.change(GLOBAL, "delete", f"health check {c['Id']}",
                            f"retired ({c['Tags'].get('Name', '?')} was replaced); deleted once unreferenced",
                            lambda c=c: delete_retired(self.ctx, c["Id"], self._references()))
                for c in retired_checks(self.ctx)]

    def _references(self) -> set[str]:
        """Health check ids our records and our policy record's document still use."""
        zone = self._require_zone()
        refs = {r["HealthCheckId"] for r in records_at(self.ctx, zone, self.record_name) if r.get("HealthCheckId")}
        policy = find_policy(self.ctx)
        for instance in zone_instances(self.ctx, zone):
            if policy is None or instance["TrafficPolicyId"] != policy["Id"]:
                continue
            doc = route53(self.ctx).get_traffic_policy(Id=policy["Id"], Version=instance["TrafficPolicyVersion"])
            refs |= document_checks(json.loads(doc["TrafficPolicy"]["Document"]))
        return refs

    # ------------------------------------------------------------------------------------------- writes

    def _create_policy(self, target: PolicyTarget) -> None:
        eps = self._endpoints()
        created = route53(self.ctx).create_traffic_policy(
            Name=self.policy_name, Document=serialize(policy_document(eps)),
            Comment=f"multiregion stack {self.config.service}: latency over health-checked regions")
        target.policy_id, target.version = created["TrafficPolicy"]["Id"], created["TrafficPolicy"]["Version"]

    def _new_version(self, target: PolicyTarget) -> None:
        eps = self._endpoints()
        created = route53(self.ctx).create_traffic_policy_version(
            Id=str(target.policy_id), Document=serialize(policy_document(eps)))
        target.version = created["TrafficPolicy"]["Version"]

    def _create_instance(self, target: PolicyTarget) -> None:
        if target.policy_id is None:
            raise StepError(self.name, GLOBAL, f"policy record {self.record_name}",
                            f"traffic policy {self.policy_name} does not exist", "run `multiregion up` again")
        created = route53(self.ctx).create_traffic_policy_instance(
            HostedZoneId=self._require_zone(), Name=self.record_name, TTL=self.config.routing.ttl,
            TrafficPolicyId=target.policy_id, TrafficPolicyVersion=target.version)
        self._wait_applied(created["TrafficPolicyInstance"]["Id"])

    def _update_instance(self, instance_id: str, target: PolicyTarget) -> None:
        self._wait_applied(instance_id, fail=False)  # one change at a time (PriorRequestNotComplete)
        route53(self.ctx).update_traffic_policy_instance(
            Id=instance_id, TTL=self.config.routing.ttl, TrafficPolicyId=target.policy_id,
            TrafficPolicyVersion=target.version)
        self._wait_applied(instance_id)

    def _wait_applied(self, instance_id: str, fail: bool = True) -> None:
        resource = f"policy record {self.record_name}"

        def applied() -> tuple[bool, str]:
            instance = get_instance(self.ctx, instance_id)
            if instance is None:
                raise StepError(self.name, GLOBAL, resource, "the policy record disappeared while being applied",
                                "run `multiregion up` again")
            state = instance["State"]
            if state == FAILED and fail:
                raise StepError(self.name, GLOBAL, resource, f"Route 53 could not apply it: {instance.get('Message')}",
                                "fix the cause (often a health check or endpoint), then run `multiregion up` again")
            return state in (APPLIED, FAILED), state

        self.ctx.wait_until(f"{resource} applied", GLOBAL, applied)

    def _delete_instance(self, instance_id: str) -> None:
        self._wait_applied(instance_id, fail=False)
        try:
            route53(self.ctx).delete_traffic_policy_instance(Id=instance_id)
        except Exception as exc:
            if error_code(exc) != "NoSuchTrafficPolicyInstance":
                raise
        zone = self._require_zone()

        def gone() -> tuple[bool, str]:
            if get_instance(self.ctx, instance_id) is not None:
                return False, "deleting"
            left = [r for r in records_at(self.ctx, zone, self.record_name)
                    if r.get("TrafficPolicyInstanceId") == instance_id]
            return not left, f"{len(left)} record(s) left" if left else "deleted"

        # Its CNAME must be gone before other records can take the name.
        self.ctx.wait_until(f"policy record {self.record_name} deleted", GLOBAL, gone)

    def _delete_policy(self, policy_id: str) -> None:
        for version in policy_versions(self.ctx, policy_id):
            self._delete_policy_version(policy_id, version["Version"])

    def _delete_policy_version(self, policy_id: str, version: int) -> None:
        def deleted() -> tuple[bool, str]:
            try:
                route53(self.ctx).delete_traffic_policy(Id=policy_id, Version=version)
            except Exception as exc:
                # A just-deleted policy record can hold its version for a moment.
                if error_code(exc) in ("TrafficPolicyInUse", "ConcurrentModification"):
                    return False, error_code(exc)
                if error_code(exc) != "NoSuchTrafficPolicy":
                    raise
            return True, "deleted"

        self.ctx.wait_until(f"traffic policy {self.policy_name} v{version} deleted", GLOBAL, deleted, timeout=120)

    def _change_records(self, changes: list[dict[str, Any]]) -> None:
        info = route53(self.ctx).change_resource_record_sets(
            HostedZoneId=self._require_zone(),
            ChangeBatch={"Comment": f"multiregion {self.config.service}", "Changes": changes})["ChangeInfo"]
        # Propagation (PENDING -> INSYNC) is waited for in settle, so that records submitted one after
        # another (a mode switch) leave the shortest gap.
        self._submitted.append(info["Id"])

    def _wait_insync(self) -> None:
        client = route53(self.ctx)
        while self._submitted:
            change_id = self._submitted[0]

            def insync(change_id: str = change_id) -> tuple[bool, str]:
                status = client.get_change(Id=change_id)["ChangeInfo"]["Status"]
                return status == "INSYNC", status

            self.ctx.wait_until(f"records {self.record_name} in sync", GLOBAL, insync)
            self._submitted.pop(0)

    def _upsert_record(self, region: str) -> None:
        endpoint = next(e for e in self._endpoints() if e.region == region)
        self._change_records([{"Action": "UPSERT", "ResourceRecordSet": latency_record(self.record_name, endpoint)}])

    def _delete_records(self, records: list[dict[str, Any]]) -> None:
        self._change_records([{"Action": "DELETE", "ResourceRecordSet": r} for r in records])

    # --------------------------------------------------------------------------------- settle, down, status

    def settle(self, region: str = GLOBAL) -> None:
        self._wait_insync()
        if self.config.routing.mode != "traffic-policy":
            return
        state = self._read(self._require_zone())
        if state.instance is None:
            raise StepError(self.name, GLOBAL, f"policy record {self.record_name}", "missing after converging",
                            "run `multiregion up` again")
        self._wait_applied(state.instance["Id"])

    def destroy(self, region: str = GLOBAL) -> list[Change]:
        zone = self._zone()
        policy = find_policy(self.ctx)
        changes = []
        if zone is not None:
            instances = [i for i in zone_instances(self.ctx, zone)
                         if policy is not None and i["TrafficPolicyId"] == policy["Id"]]
            changes += [self.change(GLOBAL, "delete", f"policy record {dns_name(i['Name'])}", "down",
                                    lambda i=i: self._delete_instance(i["Id"])) for i in instances]
            latency = [r for r in records_at(self.ctx, zone, self.record_name) if is_latency_record(r)]
            if latency:
                changes.append(self.change(GLOBAL, "delete", f"latency records {self.record_name}", "down",
                                           lambda: self._delete_records(latency)))
        if policy is not None:
            changes.append(self.change(GLOBAL, "delete", f"traffic policy {self.policy_name}", "down (every version)",
                                       lambda: self._delete_policy(policy["Id"])))
        return changes

    def status(self, region: str = GLOBAL) -> dict[str, Any]:
        zone = self._zone()
        if zone is None:
            return {"mode": self.config.routing.mode, "name": self.record_name, "zone": None}
        state = self._read(zone)
        out: dict[str, Any] = {"mode": self.config.routing.mode, "name": self.record_name}
        if state.instance is not None:
            out["policy_record"] = {"id": state.instance["Id"], "state": state.instance["State"],
                                    "policy": self.policy_name, "version": state.instance["TrafficPolicyVersion"],
                                    "ttl": state.instance["TTL"]}
        if state.latency:
            out["latency_records"] = sorted(r["SetIdentifier"] for r in state.latency)
        if state.instance is None and not state.latency:
            out["answers"] = {}
            return out
        out["answers"] = {}
        for client_region in self.config.regions:
            answer, served_by = dns_answer(self.ctx, client_region)
            out["answers"][client_region] = {"answer": answer, "served_by": served_by}
        return out


# ------------------------------------------------------------------------------------------ DNS answers


def serving_region(ctx: Context, answer: str | None) -> str | None:
    """The configured region whose regional domain name `answer` is (or whose API host it names)."""
    if not answer:
        return None
    name = dns_name(answer)
    for region in ctx.config.regions:
        domain = regional_domain(ctx, region)
        if domain and dns_name(domain[0]) == name:
            return region
    match = _EXECUTE_API_RE.search(name)
    return match.group(1) if match and match.group(1) in ctx.config.regions else None


def dns_answer(ctx: Context, client_region: str, ip: str | None = None) -> tuple[str | None, str | None]:
    """What the global name answers for a client in `client_region` (TestDNSAnswer with an EDNS0 client
    subnet there, or at `ip`), and which configured region that answer is."""
    zone = hosted_zone_id(ctx)
    record_type = POLICY_TYPE if ctx.config.routing.mode == "traffic-policy" else ALIAS_TYPE
    answer = route53(ctx).test_dns_answer(
        HostedZoneId=short_id(zone), RecordName=dns_name(ctx.config.domain.name), RecordType=record_type,
        EDNS0ClientSubnetIP=ip or client_ip(client_region), EDNS0ClientSubnetMask="24")
    data = [d for d in answer.get("RecordData", []) if d]
    if not data:
        return None, None
    first = dns_name(data[0])
    if _is_ip(first):
        # An alias record is answered with the target's addresses: find whose they are.
        return first, ctx.memo(("routing", "address", first), lambda: region_of_address(ctx, first))
    return first, serving_region(ctx, first)


def region_of_address(ctx: Context, address: str) -> str | None:
    """The configured region whose regional domain name resolves to `address` (alias answers on AWS)."""
    for region in ctx.config.regions:
        domain = regional_domain(ctx, region)
        if not domain:
            continue
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(domain[0], 443, proto=socket.IPPROTO_TCP)}
        except OSError:
            continue
        if address in addresses:
            return region
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
