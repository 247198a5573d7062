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
interval cannot change in place) are deleted here, after routing no longer references them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from multiregion import names
from multiregion.aws import error_code
from multiregion.engine import GLOBAL, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.executor import BuiltinContext, builtin
from multiregion.lookups import health_checks as hc
from multiregion.lookups import routing as lookup
from multiregion.lookups import zones
from multiregion.names import ROUTE53_REGION, dns_name, short_zone_id
from multiregion.plan import GONE, Builtin, Call, Change, JsonText, Retry, Wait, is_known, usd

POLICY_FORMAT = "2015-10-01"
START_RULE = "by-latency"
# Each policy record (traffic policy instance) is billed $50 a month; latency records only per query.
POLICY_RECORD_COST = usd("50.00")
# A policy holds at most 1,000 versions; past PRUNE_AT, versions no policy record uses are deleted, all but
# the newest KEEP_RECENT (kept to roll back to).
PRUNE_AT = 900
KEEP_RECENT = 10
APPLIED, FAILED = "Applied", "Failed"
# A just-deleted policy record can hold its policy version for a moment.
POLICY_IN_USE = Retry(("TrafficPolicyInUse", "ConcurrentModification"), "a policy record still uses it", budget=120.0)


@dataclass(frozen=True)
class Endpoint:
    """One region's target: its regional custom domain and its health check (values or Refs)."""

    region: str
    domain_name: Any
    domain_zone_id: Any
    check_id: Any


def endpoints(env: Env, inputs: Inputs) -> list[Endpoint]:
    out = []
    for region in env.config.regions:
        domain = inputs.of("domains", region)
        name = domain.get("regional_domain_name")
        out.append(Endpoint(region, dns_name(name) if isinstance(name, str) else name, domain.get("regional_zone_id"),
                            inputs.get("health-checks", region, "check_id")))
    return out


def policy_document(eps: list[Endpoint]) -> dict[str, Any]:
    return {
        "AWSPolicyFormatVersion": POLICY_FORMAT,
        "RecordType": lookup.POLICY_TYPE,
        "StartRule": START_RULE,
        "Endpoints": {f"ep-{e.region}": {"Type": "value", "Value": e.domain_name} for e in eps},
        "Rules": {START_RULE: {"RuleType": "latency", "Regions": [
            {"Region": e.region, "EndpointReference": f"ep-{e.region}", "EvaluateTargetHealth": True,
             "HealthCheck": e.check_id} for e in eps]}},
    }


def latency_record(name: str, e: Endpoint) -> dict[str, Any]:
    return {"Name": name, "Type": lookup.ALIAS_TYPE, "SetIdentifier": e.region, "Region": e.region,
            "HealthCheckId": e.check_id,
            "AliasTarget": {"HostedZoneId": e.domain_zone_id, "DNSName": e.domain_name, "EvaluateTargetHealth": True}}


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two record sets equal, with Route 53's spelling differences (trailing dots) removed."""
    alias = record.get("AliasTarget") or {}
    values = sorted(r["Value"] for r in record.get("ResourceRecords") or [])
    return (record.get("Type"), record.get("SetIdentifier"), record.get("Region"), record.get("HealthCheckId"),
            alias.get("HostedZoneId"), dns_name(alias.get("DNSName")), alias.get("EvaluateTargetHealth"),
            record.get("TTL"), values)


def document_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short diff of two latency policy documents, per region."""
    def by_region(doc: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        endpoints_ = doc.get("Endpoints", {})
        rule = doc.get("Rules", {}).get(START_RULE, {})
        return {r.get("Region"): (str((endpoints_.get(r.get("EndpointReference")) or {}).get("Value")),
                                  str(r.get("HealthCheck"))) for r in rule.get("Regions", [])}

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


@dataclass(frozen=True)
class RoutingSnapshot:
    zone_id: str | None
    policy: dict[str, Any] | None = None  # the policy's summary (Id, LatestVersion, Type, TrafficPolicyCount)
    document: dict[str, Any] | None = None  # its latest version's document
    versions: tuple[int, ...] = ()  # every version, read when they may be deleted
    instance: dict[str, Any] | None = None  # our policy record at the global name
    strays: tuple[dict[str, Any], ...] = ()  # our policy's records at other names
    foreign_instance: dict[str, Any] | None = None  # someone else's policy record at the name
    latency: tuple[dict[str, Any], ...] = ()
    foreign_records: tuple[dict[str, Any], ...] = ()
    retired: tuple[dict[str, Any], ...] = ()  # the stack's retired health checks
    external_refs: frozenset[str] = field(default_factory=frozenset)  # check ids other records use


@dataclass(frozen=True)
class RoutingStatus:
    mode: str
    name: str
    zone: str | None
    policy_record: dict[str, Any] | None = None
    latency_records: tuple[str, ...] = ()
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode, "name": self.name, "zone": self.zone}
        if self.policy_record:
            data["policy_record"] = dict(self.policy_record)
        if self.latency_records:
            data["latency_records"] = list(self.latency_records)
        data["answers"] = dict(self.answers)
        return data


class RoutingStage(Stage[RoutingSnapshot]):
    name = "routing"
    help = "The global name: a latency traffic policy and its policy record, or latency records."
    scope = "global"
    depends_on = ("hosted-zone", "domains", "health-checks")

    # ------------------------------------------------------------------------------------------- read

    def read(self, aws: Reader, region: str) -> RoutingSnapshot:
        return self._read(aws, for_down=False)

    def read_down(self, aws: Reader, region: str) -> RoutingSnapshot:
        return self._read(aws, for_down=True)

    def _read(self, aws: Reader, for_down: bool) -> RoutingSnapshot:
        config = aws.config
        zone = zones.find_hosted_zone(aws)
        zone_id = short_zone_id(zone["Id"]) if zone else None
        policy = lookup.find_policy(aws)
        document = lookup.policy_document(aws, policy["Id"], policy["LatestVersion"]) if policy and not for_down \
            else None
        wants_versions = for_down or config.routing.mode != "traffic-policy" or \
            (policy is not None and int(policy.get("TrafficPolicyCount", 0)) >= PRUNE_AT)
        versions = tuple(lookup.policy_versions(aws, policy["Id"])) if policy and wants_versions else ()
        retired = tuple(c for c in hc.all_health_checks(aws) if hc.is_ours(config.service, c) and hc.is_retired(c)) \
            if not for_down else ()
        if zone_id is None:
            return RoutingSnapshot(None, policy, document, versions, retired=retired)
        name = names.record_name(config)
        instance, foreign, strays = None, None, []
        for found in lookup.zone_instances(aws, zone_id):
            at_name = dns_name(found["Name"]) == name
            ours = policy is not None and found["TrafficPolicyId"] == policy["Id"]
            if at_name and ours:
                instance = found
            elif at_name:
                foreign = found
            elif ours:
                strays.append(found)
        at = zones.records_at(aws, zone_id, name)
        latency = tuple(r for r in at if lookup.is_latency_record(r))
        foreign_records = tuple(r for r in at
                                if not lookup.is_latency_record(r) and not r.get("TrafficPolicyInstanceId"))
        external: frozenset[str] = frozenset()
        if retired:
            external = frozenset(r["HealthCheckId"] for r in zones.record_sets(aws, zone_id)
                                 if r.get("HealthCheckId") and dns_name(r["Name"]) != name)
        return RoutingSnapshot(zone_id, policy, document, versions, instance, tuple(strays), foreign, latency,
                               foreign_records, retired, external)

    # ------------------------------------------------------------------------------------------- diff

    def diff(self, env: Env, region: str, snapshot: RoutingSnapshot, inputs: Inputs) -> NodePlan:
        name = names.record_name(env.config)
        if snapshot.foreign_instance is not None:
            raise Conflict(self.name, GLOBAL, f"policy record {name}",
                           f"exists and uses traffic policy {snapshot.foreign_instance['TrafficPolicyId']}, "
                           f"not {names.policy_name(env.config)}",
                           "it is left untouched; delete it or choose another domain.name")
        if snapshot.foreign_records:
            kinds = ", ".join(sorted({r["Type"] for r in snapshot.foreign_records}))
            raise Conflict(self.name, GLOBAL, f"records {name}",
                           f"{kinds} record(s) of that name exist and are not this stack's",
                           "they are left untouched; delete them or choose another domain.name")
        zone_id = inputs.get("hosted-zone", GLOBAL, "zone_id")
        eps = endpoints(env, inputs)
        if env.config.routing.mode == "traffic-policy":
            changes, waits = self._plan_policy(env, snapshot, zone_id, eps)
        else:
            changes, waits = self._plan_records(env, snapshot, zone_id, eps)
        retired, warnings = self._plan_retired(env, snapshot)
        return NodePlan(changes=tuple(changes + retired), waits=tuple(waits), warnings=tuple(warnings))

    # traffic-policy mode

    def _plan_policy(self, env: Env, snapshot: RoutingSnapshot, zone_id: Any,
                     eps: list[Endpoint]) -> tuple[list[Change], list[Wait]]:
        config, name = env.config, names.record_name(env.config)
        policy_name = names.policy_name(config)
        wanted = policy_document(eps)
        policy = snapshot.policy
        changes: list[Change] = []
        waits: list[Wait] = []
        new_version = False
        if policy is None:
            policy_id: Any = self.ref(GLOBAL, "policy_id", "the traffic policy created above")
            version: Any = self.ref(GLOBAL, "policy_version", "its first version")
            changes.append(self.change(GLOBAL, "create", f"traffic policy {policy_name}",
                                       f"latency rule over {', '.join(config.regions)}, health-checked",
                                       Call("route53", ROUTE53_REGION, "create_traffic_policy", {
                                           "Name": policy_name, "Document": JsonText(wanted),
                                           "Comment": f"multiregion stack {config.service}: latency over "
                                                      "health-checked regions"},
                                           outputs={"policy_id": "TrafficPolicy.Id",
                                                    "policy_version": "TrafficPolicy.Version"})))
        else:
            if policy.get("Type") != lookup.POLICY_TYPE:
                raise Conflict(self.name, GLOBAL, f"traffic policy {policy_name}",
                               f"exists with record type {policy.get('Type')}, not {lookup.POLICY_TYPE}",
                               "delete that policy (and its policy records) or choose another service name")
            policy_id, version = policy["Id"], int(policy["LatestVersion"])
            if not is_known(wanted) or snapshot.document != wanted:
                new_version = True
                latest = version
                version = self.ref(GLOBAL, "policy_version", f"version {latest + 1}")
                changes.append(self.change(GLOBAL, "update", f"traffic policy {policy_name}",
                                           f"version {latest} -> {latest + 1}: "
                                           f"{document_diff(snapshot.document or {}, wanted)}",
                                           Call("route53", ROUTE53_REGION, "create_traffic_policy_version",
                                                {"Id": policy_id, "Document": JsonText(wanted)},
                                                outputs={"policy_version": "TrafficPolicy.Version"})))
        if snapshot.latency:
            batch = self.ref(GLOBAL, "change:latency-delete", "that change")
            changes.append(self.change(
                GLOBAL, "delete", f"latency records {name}",
                "switching to traffic-policy: a policy record's CNAME cannot share its name with A records, so "
                "they go right before it is created (answers pause briefly)",
                self._records_call(zone_id, [{"Action": "DELETE", "ResourceRecordSet": r} for r in snapshot.latency],
                                   "change:latency-delete")))
            waits.append(self._wait_insync(batch, name))
        changes += self._plan_instance(env, snapshot, zone_id, policy_id, version, new_version)
        changes += [self.change(GLOBAL, "delete", f"policy record {dns_name(s['Name'])}",
                                f"not the configured name {name} (saves {POLICY_RECORD_COST})",
                                *self._delete_instance(zone_id, s)) for s in snapshot.strays]
        count = int((policy or {}).get("TrafficPolicyCount", 0)) + new_version
        if policy is not None and count > PRUNE_AT:
            changes.append(self.change(GLOBAL, "delete", f"traffic policy {policy_name}",
                                       f"unused old versions ({count} of the 1,000 a policy may hold)",
                                       Builtin("routing.prune-versions", ROUTE53_REGION,
                                               {"policy_id": policy_id, "zone_id": zone_id, "keep": version,
                                                "keep_recent": KEEP_RECENT})))
        return changes, waits

    def _plan_instance(self, env: Env, snapshot: RoutingSnapshot, zone_id: Any, policy_id: Any, version: Any,
                       new_version: bool) -> list[Change]:
        ttl, name = env.config.routing.ttl, names.record_name(env.config)
        instance = snapshot.instance
        resource = f"policy record {name}"
        if instance is None:
            instance_id = self.ref(GLOBAL, "instance_id", "the policy record created above")
            create = Call("route53", ROUTE53_REGION, "create_traffic_policy_instance", {
                "HostedZoneId": zone_id, "Name": name, "TTL": ttl, "TrafficPolicyId": policy_id,
                "TrafficPolicyVersion": version}, outputs={"instance_id": "TrafficPolicyInstance.Id"})
            reason = f"traffic policy {names.policy_name(env.config)}, TTL {ttl}"
            return [self.change(GLOBAL, "create", resource, reason, create, self._wait_applied(instance_id, name),
                                cost=POLICY_RECORD_COST)]
        reasons = []
        if new_version or instance["TrafficPolicyVersion"] != version:
            reasons.append(f"policy version {instance['TrafficPolicyVersion']} -> {version}")
        if instance["TTL"] != ttl:
            reasons.append(f"TTL {instance['TTL']} -> {ttl}")
        if instance.get("State") == FAILED:
            reasons.append(f"last change failed ({instance.get('Message', '')}): applied again")
        if not reasons:
            return []
        update = Call("route53", ROUTE53_REGION, "update_traffic_policy_instance", {
            "Id": instance["Id"], "TTL": ttl, "TrafficPolicyId": policy_id, "TrafficPolicyVersion": version})
        # One change at a time per record (PriorRequestNotComplete): wait for the last one to settle first.
        return [self.change(GLOBAL, "update", resource, ", ".join(reasons),
                            self._wait_applied(instance["Id"], name, settled_only=True), update,
                            self._wait_applied(instance["Id"], name))]

    @staticmethod
    def _wait_applied(instance_id: Any, name: str, settled_only: bool = False) -> Wait:
        return Wait(f"policy record {name} applied", "route53", ROUTE53_REGION, "get_traffic_policy_instance",
                    {"Id": instance_id}, "TrafficPolicyInstance.State",
                    (APPLIED, FAILED, GONE) if settled_only else (APPLIED,),
                    failed=() if settled_only else (FAILED, GONE), gone=("NoSuchTrafficPolicyInstance",),
                    reason="TrafficPolicyInstance.Message",
                    hint="fix the cause (often a health check or endpoint), then run `multiregion up` again",
                    # Waiting for an earlier change to settle is not a wait of this run's making.
                    duration="" if settled_only else "policy_instance_applied")

    def _delete_instance(self, zone_id: Any, instance: dict[str, Any]) -> tuple[Any, ...]:
        instance_id, name = instance["Id"], dns_name(instance["Name"])
        records_gone = Wait(f"the records of policy record {name} deleted", "route53", ROUTE53_REGION,
                            "list_resource_record_sets", {"HostedZoneId": zone_id, "StartRecordName": name},
                            f"length(ResourceRecordSets[?TrafficPolicyInstanceId=='{instance_id}'])", (0,))
        return (self._wait_applied(instance_id, name, settled_only=True),
                Call("route53", ROUTE53_REGION, "delete_traffic_policy_instance", {"Id": instance_id},
                     done_if=("NoSuchTrafficPolicyInstance",)),
                Wait(f"policy record {name} deleted", "route53", ROUTE53_REGION, "get_traffic_policy_instance",
                     {"Id": instance_id}, "TrafficPolicyInstance.State", (GONE,),
                     gone=("NoSuchTrafficPolicyInstance",)),
                # Its CNAME must be gone before other records can take the name.
                records_gone)

    # latency-records mode

    def _plan_records(self, env: Env, snapshot: RoutingSnapshot, zone_id: Any,
                      eps: list[Endpoint]) -> tuple[list[Change], list[Wait]]:
        config, name = env.config, names.record_name(env.config)
        changes: list[Change] = []
        waits: list[Wait] = []
        if snapshot.instance is not None:
            changes.append(self.change(
                GLOBAL, "delete", f"policy record {name}",
                "switching to latency-records: its CNAME cannot share the name with A records, so it goes right "
                f"before they are written (answers pause briefly; saves {POLICY_RECORD_COST})",
                *self._delete_instance(zone_id, snapshot.instance)))
        changes += [self.change(GLOBAL, "delete", f"policy record {dns_name(s['Name'])}",
                                f"not used in latency-records mode (saves {POLICY_RECORD_COST})",
                                *self._delete_instance(zone_id, s)) for s in snapshot.strays]
        current = {r["SetIdentifier"]: r for r in snapshot.latency if r["Type"] == lookup.ALIAS_TYPE}
        # Our records of another type would block the A records: they go first.
        stale = [r for r in snapshot.latency if r["Type"] != lookup.ALIAS_TYPE]
        if stale:
            changes.append(self.change(GLOBAL, "delete", f"latency records {name}",
                                       f"{len(stale)} {stale[0]['Type']} record(s) replaced by alias A records",
                                       self._records_call(zone_id, [{"Action": "DELETE", "ResourceRecordSet": r}
                                                                    for r in stale], "change:stale")))
            waits.append(self._wait_insync(self.ref(GLOBAL, "change:stale", "that change"), name))
        for endpoint in eps:
            have, want = current.get(endpoint.region), latency_record(name, endpoint)
            if have is not None and is_known(want) and record_key(have) == record_key(want):
                continue
            reason = "alias A to the region's custom domain, latency, health-checked" if have is None \
                else self._record_diff(have, want)
            output = f"change:{endpoint.region}"
            changes.append(self.change(endpoint.region, "create" if have is None else "update",
                                       f"latency record {name} ({endpoint.region})", reason,
                                       self._records_call(zone_id, [{"Action": "UPSERT", "ResourceRecordSet": want}],
                                                          output)))
            waits.append(self._wait_insync(self.ref(GLOBAL, output, "that change"), name))
        removed = [r for sid, r in current.items() if sid not in config.regions]
        if removed:
            changes.append(self.change(GLOBAL, "delete", f"latency records {name}",
                                       f"regions no longer configured: {', '.join(r['Region'] for r in removed)}",
                                       self._records_call(zone_id, [{"Action": "DELETE", "ResourceRecordSet": r}
                                                                    for r in removed], "change:removed")))
            waits.append(self._wait_insync(self.ref(GLOBAL, "change:removed", "that change"), name))
        if snapshot.policy is not None:
            changes.append(self.change(GLOBAL, "delete", f"traffic policy {names.policy_name(config)}",
                                       "not used in latency-records mode (every version)",
                                       *self._delete_policy(snapshot)))
        return changes, waits

    @staticmethod
    def _record_diff(have: dict[str, Any], want: dict[str, Any]) -> str:
        parts = []
        if have.get("HealthCheckId") != want["HealthCheckId"]:
            parts.append(f"health check {have.get('HealthCheckId')} -> {want['HealthCheckId']}")
        have_alias = have.get("AliasTarget") or {}
        target = want["AliasTarget"]["DNSName"]
        if not is_known(target) or dns_name(have_alias.get("DNSName")) != target:
            parts.append(f"target {dns_name(have_alias.get('DNSName')) or '-'} -> {target}")
        return ", ".join(parts) or "alias target settings"

    def _records_call(self, zone_id: Any, changes: list[dict[str, Any]], output: str) -> Call:
        return Call("route53", ROUTE53_REGION, "change_resource_record_sets",
                    {"HostedZoneId": zone_id, "ChangeBatch": {"Comment": "multiregion", "Changes": changes}},
                    outputs={output: "ChangeInfo.Id"})

    @staticmethod
    def _wait_insync(change_id: Any, name: str) -> Wait:
        # Propagation (PENDING -> INSYNC) is waited for after every change of the node is submitted, so that
        # records submitted one after another (a mode switch) leave the shortest gap.
        return Wait(f"records {name} in sync", "route53", ROUTE53_REGION, "get_change", {"Id": change_id},
                    "ChangeInfo.Status", ("INSYNC",), duration="route53_insync")

    def _delete_policy(self, snapshot: RoutingSnapshot) -> tuple[Call, ...]:
        policy_id = (snapshot.policy or {})["Id"]
        versions = snapshot.versions or (int((snapshot.policy or {})["LatestVersion"]),)
        return tuple(Call("route53", ROUTE53_REGION, "delete_traffic_policy", {"Id": policy_id, "Version": v},
                          retry=(POLICY_IN_USE,), done_if=("NoSuchTrafficPolicy",)) for v in versions)

    def _plan_retired(self, env: Env, snapshot: RoutingSnapshot) -> tuple[list[Change], list[str]]:
        changes, warnings = [], []
        for check in snapshot.retired:
            if check["Id"] in snapshot.external_refs:
                warnings.append(f"retired health check {check['Id']} is still referenced by another record of the "
                                "zone; it is left for the next run")
                continue
            changes.append(self.change(GLOBAL, "delete", f"health check {check['Id']}",
                                       f"retired ({check['Tags'].get(hc.TAG_NAME, '?')} was replaced); routing no "
                                       "longer uses it",
                                       Call("route53", ROUTE53_REGION, "delete_health_check",
                                            {"HealthCheckId": check["Id"]}, done_if=("NoSuchHealthCheck",))))
        return changes, warnings

    # ------------------------------------------------------------------------------------------- down

    def destroy(self, env: Env, region: str, snapshot: RoutingSnapshot) -> NodePlan:
        changes: list[Change] = []
        waits: list[Wait] = []
        name = names.record_name(env.config)
        zone_id = snapshot.zone_id
        if zone_id is not None:
            changes += [self.change(GLOBAL, "delete", f"policy record {dns_name(i['Name'])}", "down",
                                    *self._delete_instance(zone_id, i))
                        for i in [*([snapshot.instance] if snapshot.instance else []), *snapshot.strays]]
            if snapshot.latency:
                changes.append(self.change(GLOBAL, "delete", f"latency records {name}", "down",
                                           self._records_call(zone_id, [{"Action": "DELETE", "ResourceRecordSet": r}
                                                                        for r in snapshot.latency], "change:down")))
                waits.append(self._wait_insync(self.ref(GLOBAL, "change:down", "that change"), name))
        if snapshot.policy is not None:
            changes.append(self.change(GLOBAL, "delete", f"traffic policy {names.policy_name(env.config)}",
                                       "down (every version)", *self._delete_policy(snapshot)))
        return NodePlan(changes=tuple(changes), waits=tuple(waits))

    # ------------------------------------------------------------------------------------------- status

    def status(self, aws: Reader, region: str) -> RoutingStatus:
        config = aws.config
        snapshot = self._read(aws, for_down=True)
        mode, name = config.routing.mode, names.record_name(config)
        if snapshot.zone_id is None:
            return RoutingStatus(mode, name, None)
        record = None
        if snapshot.instance is not None:
            i = snapshot.instance
            record = {"id": i["Id"], "state": i["State"], "policy": names.policy_name(config),
                      "version": i["TrafficPolicyVersion"], "ttl": i["TTL"]}
        latency = tuple(sorted(r["SetIdentifier"] for r in snapshot.latency))
        answers: dict[str, dict[str, Any]] = {}
        if record or latency:
            identify = lookup.endpoint_regions(aws)  # one for every client: an address is asked once
            for client_region in config.regions:
                answer, served_by = lookup.dns_answer(aws, client_region, zone_id=snapshot.zone_id,
                                                      identify=identify)
                answers[client_region] = {"answer": answer, "served_by": served_by}
        return RoutingStatus(mode, name, snapshot.zone_id, record, latency, answers)


@builtin("routing.prune-versions")
def prune_versions(ctx: BuiltinContext, region: str, policy_id: str, zone_id: str, keep: int,
                   keep_recent: int) -> dict[str, Any]:
    """Delete the policy's old versions that no policy record in the zone uses, all but the newest few."""
    client = ctx.clients("route53", region)
    in_use = {keep}
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id}
    while True:
        page = client.list_traffic_policy_instances_by_hosted_zone(**kwargs)
        in_use |= {i["TrafficPolicyVersion"] for i in page.get("TrafficPolicyInstances", [])
                   if i["TrafficPolicyId"] == policy_id}
        if not page.get("IsTruncated"):
            break
        kwargs.update(TrafficPolicyInstanceNameMarker=page["TrafficPolicyInstanceNameMarker"],
                      TrafficPolicyInstanceTypeMarker=page["TrafficPolicyInstanceTypeMarker"])
    versions: list[int] = []
    kwargs = {"Id": policy_id}
    while True:
        page = client.list_traffic_policy_versions(**kwargs)
        versions += [int(v["Version"]) for v in page.get("TrafficPolicies", [])]
        if not page.get("IsTruncated"):
            break
        kwargs["TrafficPolicyVersionMarker"] = page["TrafficPolicyVersionMarker"]
    deleted = 0
    for version in [v for v in sorted(versions)[:-keep_recent] if v not in in_use]:
        try:
            client.delete_traffic_policy(Id=policy_id, Version=version)
            deleted += 1
        except ClientError as exc:
            # Used by a policy record in another zone: it stays.
            if error_code(exc) not in ("TrafficPolicyInUse", "NoSuchTrafficPolicy"):
                raise
    return {"deleted": deleted}
