"""Stage `hosted-zone`: the public hosted zone of the global name.

The zone is named by `domain.hosted_zone`: a DNS name (exactly one public zone of that name must exist)
or a zone id. It is created only when the config says `domain.create_zone: true`: a new public zone on
AWS is useless until the registrar delegates to its name servers, so quietly creating one would hide a
mistake. A zone we create carries the stack's tags and a CallerReference derived from the stack, and
`down` deletes it only when it holds nothing but its SOA and NS records.

`down` also removes the ACM validation record once no certificate (of any region, anyone's) needs it.
Which record is ours is recorded in AWS, as a tag on the zone written with the record, so a `down` that
stopped after deleting the certificates is finished by the next one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import error_code
from multiregion.engine import GLOBAL, TAG_STACK, Env, Inputs, NodePlan, Reader, Stage, StepError
from multiregion.executor import BuiltinContext, builtin
from multiregion.lookups import certificates, zones
from multiregion.names import ROUTE53_REGION, fqdn, short_zone_id
from multiregion.plan import Builtin, Call, usd

ZONE_COST = usd("0.50")
# A CallerReference can never be used again, even after its zone is deleted: after `down`, the next
# create moves on to the next reference of the same deterministic sequence.
MAX_REFERENCES = 50


def reference_seed(env: Env) -> str:
    digest = hashlib.sha256(f"{env.config.service}|{fqdn(env.config.domain.hosted_zone)}".encode()).hexdigest()
    return f"multiregion-{env.config.service}-{digest[:16]}-"


@dataclass(frozen=True)
class ZoneSnapshot:
    zone: dict[str, Any] | None
    tags: dict[str, str] = field(default_factory=dict)
    # for `down`: the zone's records, and the certificates that still use our validation record
    records: tuple[dict[str, Any], ...] = ()
    certificates_using: tuple[str, ...] = ()
    unknown_regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ZoneStatus:
    zone_id: str | None
    name: str
    name_servers: tuple[str, ...] = ()
    created_by_stack: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"zone_id": self.zone_id, "name": self.name, "name_servers": list(self.name_servers),
                "created_by_stack": self.created_by_stack}


def our_reference(env: Env, zone: dict[str, Any]) -> bool:
    return str(zone.get("CallerReference", "")).startswith(reference_seed(env))


class HostedZoneStage(Stage[ZoneSnapshot]):
    name = "hosted-zone"
    help = "The public hosted zone of domain.name: found by name or id, created only with domain.create_zone."
    scope = "global"

    def read(self, aws: Reader, region: str) -> ZoneSnapshot:
        zone = zones.find_hosted_zone(aws)
        return ZoneSnapshot(zone, zones.zone_tags(aws, zone["Id"]) if zone else {})

    def read_down(self, aws: Reader, region: str) -> ZoneSnapshot:
        snapshot = self.read(aws, region)
        if snapshot.zone is None:
            return snapshot
        using, unknown = certificates.certificates_needing_validation(aws)
        return ZoneSnapshot(snapshot.zone, snapshot.tags, tuple(zones.record_sets(aws, snapshot.zone["Id"])),
                            tuple(using), tuple(unknown))

    def diff(self, env: Env, region: str, snapshot: ZoneSnapshot, inputs: Inputs) -> NodePlan:
        zone, name = snapshot.zone, env.config.domain.hosted_zone
        if zone is None:
            if not env.config.domain.create_zone:
                raise zones.missing_zone_error(env.config)
            create = Builtin("hosted-zone.create", ROUTE53_REGION,
                             {"name": fqdn(name), "reference_seed": reference_seed(env),
                              "comment": f"multiregion stack {env.config.service}", "tags": env.tags()},
                             outputs={"zone_id": "zone_id"})
            change = self.change(GLOBAL, "create", f"hosted zone {name}",
                                 "public zone (domain.create_zone: true); delegate it from the registrar",
                                 create, cost=ZONE_COST)
            return NodePlan(changes=(change,), outputs={
                "zone_id": self.ref(GLOBAL, "zone_id", "the hosted zone created above")})
        zone_id = short_zone_id(zone["Id"])
        changes = []
        if our_reference(env, zone) and snapshot.tags.get(TAG_STACK) != env.config.service:
            # Created by an earlier run that stopped before tagging it.
            changes.append(self.change(GLOBAL, "update", f"hosted zone {name}", "tag it as this stack's",
                                       self._tag(zone_id, env.tags())))
        return NodePlan(changes=tuple(changes), outputs={"zone_id": zone_id})

    @staticmethod
    def _tag(zone_id: str, tags: dict[str, str]) -> Call:
        return Call("route53", ROUTE53_REGION, "change_tags_for_resource",
                    {"ResourceType": "hostedzone", "ResourceId": zone_id,
                     "AddTags": [{"Key": k, "Value": v} for k, v in tags.items()]})

    def destroy(self, env: Env, region: str, snapshot: ZoneSnapshot) -> NodePlan:
        zone = snapshot.zone
        if zone is None:
            return NodePlan()
        zone_id = short_zone_id(zone["Id"])
        changes, warnings = [], []
        leaving: set[tuple[str, str]] = set()
        record_name = snapshot.tags.get(zones.validation_tag(env.config))
        if record_name:
            ours = [rr for rr in snapshot.records if fqdn(rr["Name"]) == fqdn(record_name) and rr["Type"] == "CNAME"]
            if snapshot.certificates_using or snapshot.unknown_regions:
                why = (f"certificates still use it ({', '.join(snapshot.certificates_using)})"
                       if snapshot.certificates_using else
                       f"some regions could not be checked: {', '.join(snapshot.unknown_regions)}")
                warnings.append(f"the validation record of {env.config.domain.name} is kept: {why}")
            else:
                ops: list[Any] = [Call("route53", ROUTE53_REGION, "change_resource_record_sets",
                                       {"HostedZoneId": zone_id, "ChangeBatch": {"Changes": [
                                           {"Action": "DELETE", "ResourceRecordSet": rr}]}},
                                       done_if=("InvalidChangeBatch",)) for rr in ours]
                ops.append(Call("route53", ROUTE53_REGION, "change_tags_for_resource",
                                {"ResourceType": "hostedzone", "ResourceId": zone_id,
                                 "RemoveTagKeys": [zones.validation_tag(env.config)]}))
                changes.append(self.change(GLOBAL, "delete", f"validation record {record_name}",
                                           "no certificate in any region needs it any more", *ops))
                leaving = {(fqdn(rr["Name"]), rr["Type"]) for rr in ours}
        ours_zone = snapshot.tags.get(TAG_STACK) == env.config.service or our_reference(env, zone)
        if not ours_zone:
            return NodePlan(changes=tuple(changes), warnings=tuple(warnings))
        others = sorted(rr["Name"] for rr in snapshot.records
                        if rr["Type"] not in ("SOA", "NS") and (fqdn(rr["Name"]), rr["Type"]) not in leaving)
        if others:
            warnings.append(f"hosted zone {zone['Name']} still holds records ({', '.join(others)}); it is kept")
        else:
            changes.append(self.change(GLOBAL, "delete", f"hosted zone {zone['Name']}", "created by this stack",
                                       Call("route53", ROUTE53_REGION, "delete_hosted_zone", {"Id": zone_id},
                                            done_if=("NoSuchHostedZone",))))
        return NodePlan(changes=tuple(changes), warnings=tuple(warnings))

    def status(self, aws: Reader, region: str) -> ZoneStatus:
        zone = zones.find_hosted_zone(aws)
        if zone is None:
            return ZoneStatus(None, fqdn(aws.config.domain.hosted_zone))
        tags = zones.zone_tags(aws, zone["Id"])
        mine = tags.get(TAG_STACK) == aws.config.service or our_reference(aws.env, zone)
        return ZoneStatus(short_zone_id(zone["Id"]), zone["Name"],
                          tuple(zone.get("DelegationSet", {}).get("NameServers", [])), mine)


@builtin("hosted-zone.create")
def create_hosted_zone(ctx: BuiltinContext, region: str, name: str, reference_seed: str, comment: str,
                       tags: dict[str, str]) -> dict[str, Any]:
    """CreateHostedZone with the first free reference of the stack's sequence, then tag the zone.

    A reference answered with HostedZoneAlreadyExists belongs either to a zone of ours that exists (another
    run created it a moment ago: use it) or to a zone deleted since (try the next reference)."""
    client = ctx.clients("route53", region)
    for attempt in range(MAX_REFERENCES):
        try:
            answer = client.create_hosted_zone(Name=name, CallerReference=f"{reference_seed}{attempt}",
                                               HostedZoneConfig={"Comment": comment, "PrivateZone": False})
            zone_id = short_zone_id(answer["HostedZone"]["Id"])
        except ClientError as exc:
            if error_code(exc) != "HostedZoneAlreadyExists":
                raise
            existing = _zone_named(client, name)
            if existing is None:
                continue
            zone_id = existing
        client.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id,
                                        AddTags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return {"zone_id": zone_id}
    raise StepError("hosted-zone", GLOBAL, f"hosted zone {name}",
                    f"all {MAX_REFERENCES} caller references of this stack are used up",
                    "create the zone by hand and set domain.create_zone: false")


def _zone_named(client: Any, name: str) -> str | None:
    page = client.list_hosted_zones_by_name(DNSName=name, MaxItems="1")
    for zone in page.get("HostedZones", []):
        if fqdn(zone["Name"]) == fqdn(name) and not zone.get("Config", {}).get("PrivateZone"):
            return short_zone_id(zone["Id"])
    return None

