"""Stage `hosted-zone`, and the hosted-zone lookup shared by every stage that writes DNS.

The zone is named by `domain.hosted_zone`: a DNS name (exactly one public zone of that name must exist)
or a zone id. It is created only when the config says `domain.create_zone: true`: a new public zone on
AWS is useless until the registrar delegates to its name servers, so quietly creating one would hide a
mistake. A zone we create carries the stack's tags and a CallerReference derived from the stack, and
`down` deletes it only when it holds nothing but its SOA and NS records.
"""

from __future__ import annotations

import hashlib
from typing import Any

from multiregion.aws import absent_as_none, error_code
from multiregion.engine import GLOBAL, TAG_STACK, Change, Context, Stage, StepError

STAGE = "hosted-zone"
ZONE_COST = "$0.50/month"
_MEMO_KEY = "hosted-zone-id"
# A CallerReference can never be used again, even after its zone is deleted: after `down`, the next
# create moves on to the next reference of the same deterministic sequence.
_MAX_REFERENCES = 50


def fqdn(name: str) -> str:
    """A DNS name as Route 53 returns it: lower case, with the trailing dot."""
    return name.strip().rstrip(".").lower() + "."


def short_id(zone_id: str) -> str:
    return zone_id.rsplit("/", 1)[-1]


def is_zone_id(value: str) -> bool:
    # The config only accepts dotted DNS names or Z... ids, so a value without a dot is an id.
    return "." not in value.rstrip(".")


def caller_reference(ctx: Context, attempt: int) -> str:
    digest = hashlib.sha256(f"{ctx.config.service}|{fqdn(ctx.config.domain.hosted_zone)}".encode()).hexdigest()
    return f"multiregion-{ctx.config.service}-{digest[:16]}-{attempt}"


def _missing(ctx: Context) -> StepError:
    zone = ctx.config.domain.hosted_zone
    if is_zone_id(zone):
        return StepError(STAGE, GLOBAL, f"hosted zone {zone}", f"no hosted zone with id {zone} in this account",
                         "check domain.hosted_zone, or name the zone by its DNS name")
    return StepError(STAGE, GLOBAL, f"hosted zone {zone}", f"no public hosted zone named {zone} in this account",
                     f"create the zone {zone} in Route 53 and delegate it from the registrar, or set "
                     "domain.create_zone: true to let `up` create it")


def find_hosted_zone(ctx: Context) -> dict[str, Any] | None:
    """The configured zone (GetHostedZone's `HostedZone`, `DelegationSet` added), or None when missing."""
    configured = ctx.config.domain.hosted_zone
    route53 = ctx.clients("route53", ctx.config.primary)
    if is_zone_id(configured):
        found = absent_as_none(lambda: route53.get_hosted_zone(Id=short_id(configured)), "NoSuchHostedZone")
        if found is None:
            return None
        zone = found["HostedZone"] | {"DelegationSet": found.get("DelegationSet", {})}
        _check_zone_fits(ctx, zone)
        return zone
    matches = _public_zones_named(ctx, configured)
    if not matches:
        return None
    if len(matches) > 1:
        ids = ", ".join(short_id(z["Id"]) for z in matches)
        raise StepError(STAGE, GLOBAL, f"hosted zone {configured}",
                        f"{len(matches)} public hosted zones are named {configured}: {ids}",
                        "set domain.hosted_zone to the id of the zone to use")
    found = route53.get_hosted_zone(Id=short_id(matches[0]["Id"]))
    return found["HostedZone"] | {"DelegationSet": found.get("DelegationSet", {})}


def _public_zones_named(ctx: Context, name: str) -> list[dict[str, Any]]:
    route53 = ctx.clients("route53", ctx.config.primary)
    wanted = fqdn(name)
    matches: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"DNSName": wanted, "MaxItems": "100"}
    while True:
        page = route53.list_hosted_zones_by_name(**kwargs)
        zones = page.get("HostedZones", [])
        matches += [z for z in zones if fqdn(z["Name"]) == wanted and not z.get("Config", {}).get("PrivateZone")]
        # Zones come sorted by name: once past ours, no page further on can hold another one.
        if not page.get("IsTruncated") or (zones and fqdn(zones[-1]["Name"]) != wanted):
            return matches
        kwargs.update(DNSName=page["NextDNSName"], HostedZoneId=page["NextHostedZoneId"])


def _check_zone_fits(ctx: Context, zone: dict[str, Any]) -> None:
    name, domain = fqdn(zone["Name"]), fqdn(ctx.config.domain.name)
    where = f"hosted zone {short_id(zone['Id'])}"
    if zone.get("Config", {}).get("PrivateZone"):
        raise StepError(STAGE, GLOBAL, where, f"{name} is a private zone",
                        "certificate validation and latency routing need a public hosted zone")
    if domain == name or not domain.endswith("." + name):
        raise StepError(STAGE, GLOBAL, where,
                        f"domain.name {ctx.config.domain.name} does not lie inside the zone {name}",
                        f"use a name that ends in .{name.rstrip('.')}, or another zone")


def existing_hosted_zone_id(ctx: Context) -> str | None:
    """The configured zone's id (without /hostedzone/), or None while it does not exist. Looked up once
    per run once found; a zone that does not exist yet is looked up again next time."""

    def lookup() -> str | None:
        zone = find_hosted_zone(ctx)
        return short_id(zone["Id"]) if zone else None

    zone_id = ctx.memo(_MEMO_KEY, lookup)
    if zone_id is None:
        ctx.forget(_MEMO_KEY)
    return zone_id


def hosted_zone_id(ctx: Context) -> str:
    """The configured zone's id (without /hostedzone/), memoized per run; StepError when it is missing."""
    zone_id = existing_hosted_zone_id(ctx)
    if zone_id is None:
        raise _missing(ctx)
    return zone_id


def zone_tags(ctx: Context, zone_id: str) -> dict[str, str]:
    resp = ctx.clients("route53", ctx.config.primary).list_tags_for_resource(
        ResourceType="hostedzone", ResourceId=short_id(zone_id))
    return {t["Key"]: t["Value"] for t in resp.get("ResourceTagSet", {}).get("Tags", [])}


def record_sets(ctx: Context, zone_id: str) -> list[dict[str, Any]]:
    paginator = ctx.clients("route53", ctx.config.primary).get_paginator("list_resource_record_sets")
    return [rr for page in paginator.paginate(HostedZoneId=short_id(zone_id)) for rr in page["ResourceRecordSets"]]


def delete_record(ctx: Context, zone_id: str, rrset: dict[str, Any]) -> None:
    """Delete one record set exactly as listed (Route 53 wants every value of the set)."""
    ctx.clients("route53", ctx.config.primary).change_resource_record_sets(
        HostedZoneId=short_id(zone_id), ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": rrset}]})


class HostedZoneStage(Stage):
    name = STAGE
    help = "The public hosted zone of domain.name: found by name or id, created only with domain.create_zone."
    scope = "global"

    @property
    def route53(self) -> Any:
        return self.ctx.clients("route53", self.config.primary)

    def _ours(self, zone: dict[str, Any]) -> bool:
        tagged = zone_tags(self.ctx, zone["Id"]).get(TAG_STACK) == self.config.service
        return tagged or self._our_reference(zone)

    def _our_reference(self, zone: dict[str, Any]) -> bool:
        return str(zone.get("CallerReference", "")).startswith(caller_reference(self.ctx, 0)[:-1])

    def plan(self, region: str = GLOBAL) -> list[Change]:
        zone = find_hosted_zone(self.ctx)
        name = self.config.domain.hosted_zone
        if zone is None:
            if not self.config.domain.create_zone:
                raise _missing(self.ctx)
            return [self.change(GLOBAL, "create", f"hosted zone {name}",
                                "public zone (domain.create_zone: true); delegate it from the registrar",
                                self._create, cost=ZONE_COST)]
        self.ctx.memo(_MEMO_KEY, lambda: short_id(zone["Id"]))
        if self._our_reference(zone) and zone_tags(self.ctx, zone["Id"]).get(TAG_STACK) != self.config.service:
            # Created by an earlier run that stopped before tagging it.
            return [self.change(GLOBAL, "update", f"hosted zone {name}", "tag it as this stack's",
                                lambda: self._tag(zone["Id"]))]
        return []

    def _create(self) -> None:
        name = fqdn(self.config.domain.hosted_zone)
        for attempt in range(_MAX_REFERENCES):
            try:
                resp = self.route53.create_hosted_zone(
                    Name=name, CallerReference=caller_reference(self.ctx, attempt),
                    HostedZoneConfig={"Comment": f"multiregion stack {self.config.service}",
                                      "PrivateZone": False})
            except Exception as exc:
                if error_code(exc) != "HostedZoneAlreadyExists":
                    raise
                existing = find_hosted_zone(self.ctx)
                if existing is None:
                    continue  # that reference belonged to a zone deleted since
                zone_id = existing["Id"]  # another run of this stack created it a moment ago
            else:
                zone_id = resp["HostedZone"]["Id"]
            self._tag(zone_id)
            self.ctx.forget(_MEMO_KEY)
            self.ctx.memo(_MEMO_KEY, lambda zone_id=zone_id: short_id(zone_id))
            return
        raise StepError(self.name, GLOBAL, f"hosted zone {name}",
                        f"all {_MAX_REFERENCES} caller references of this stack are used up",
                        "create the zone by hand and set domain.create_zone: false")

    def _tag(self, zone_id: str) -> None:
        self.route53.change_tags_for_resource(
            ResourceType="hostedzone", ResourceId=short_id(zone_id),
            AddTags=[{"Key": k, "Value": v} for k, v in self.ctx.tags().items()])

    def destroy(self, region: str = GLOBAL) -> list[Change]:
        from multiregion.stages.certificates import unused_validation_records

        zone = find_hosted_zone(self.ctx)
        if zone is None:
            return []
        unused = unused_validation_records(self.ctx, zone["Id"])
        changes = [self.change(GLOBAL, "delete", f"validation record {rr['Name']}",
                               "no certificate in any region needs it any more",
                               lambda rr=rr: delete_record(self.ctx, zone["Id"], rr)) for rr in unused]
        if not self._ours(zone):
            return changes
        leaving = {(fqdn(rr["Name"]), rr["Type"]) for rr in unused}
        others = sorted(rr["Name"] for rr in record_sets(self.ctx, zone["Id"])
                        if rr["Type"] not in ("SOA", "NS") and (fqdn(rr["Name"]), rr["Type"]) not in leaving)
        if others:
            self.ctx.reporter.warn(f"hosted zone {zone['Name']} still holds records ({', '.join(others)}); "
                                   "it is kept")
            return changes
        return changes + [self.change(GLOBAL, "delete", f"hosted zone {zone['Name']}", "created by this stack",
                                      lambda: self._delete(zone["Id"]))]

    def _delete(self, zone_id: str) -> None:
        self.route53.delete_hosted_zone(Id=short_id(zone_id))
        self.ctx.forget(_MEMO_KEY)

    def status(self, region: str = GLOBAL) -> dict[str, Any]:
        zone = find_hosted_zone(self.ctx)
        if zone is None:
            return {"zone_id": None, "name": fqdn(self.config.domain.hosted_zone)}
        return {"zone_id": short_id(zone["Id"]), "name": zone["Name"],
                "name_servers": zone.get("DelegationSet", {}).get("NameServers", []),
                "created_by_stack": self._ours(zone)}
