"""The hosted zone of the global name, and the record sets in it."""

from __future__ import annotations

from typing import Any

from multiregion.aws import absent_as_none
from multiregion.config import Config
from multiregion.engine import GLOBAL, Reader, StepError
from multiregion.names import ROUTE53_REGION, dns_name, fqdn, is_zone_id, short_zone_id

STAGE = "hosted-zone"
# The zone tag that records which ACM validation record this stack wrote, so that a `down` interrupted
# after deleting the certificates still knows, the next time, that the record is ours to remove.
VALIDATION_TAG_PREFIX = "multiregion:acm-validation:"


def validation_tag(config: Config) -> str:
    return f"{VALIDATION_TAG_PREFIX}{config.service}"


def route53(aws: Reader) -> Any:
    return aws.client("route53", ROUTE53_REGION)


def missing_zone_error(config: Config) -> StepError:
    zone = config.domain.hosted_zone
    if is_zone_id(zone):
        return StepError(STAGE, GLOBAL, f"hosted zone {zone}", f"no hosted zone with id {zone} in this account",
                         "check domain.hosted_zone, or name the zone by its DNS name")
    return StepError(STAGE, GLOBAL, f"hosted zone {zone}", f"no public hosted zone named {zone} in this account",
                     f"create the zone {zone} in Route 53 and delegate it from the registrar, or set "
                     "domain.create_zone: true to let `up` create it")


def find_hosted_zone(aws: Reader) -> dict[str, Any] | None:
    """The configured zone (GetHostedZone's `HostedZone`, `DelegationSet` added), or None when missing.
    StepError when the zone is unusable (private, ambiguous, or not holding domain.name)."""
    configured = aws.config.domain.hosted_zone
    client = route53(aws)
    if is_zone_id(configured):
        found = absent_as_none(lambda: client.get_hosted_zone(Id=short_zone_id(configured)), "NoSuchHostedZone")
    else:
        matches = public_zones_named(aws, configured)
        if not matches:
            return None
        if len(matches) > 1:
            ids = ", ".join(short_zone_id(z["Id"]) for z in matches)
            raise StepError(STAGE, GLOBAL, f"hosted zone {configured}",
                            f"{len(matches)} public hosted zones are named {configured}: {ids}",
                            "set domain.hosted_zone to the id of the zone to use")
        found = client.get_hosted_zone(Id=short_zone_id(matches[0]["Id"]))
    if found is None:
        return None
    zone = dict(found["HostedZone"]) | {"DelegationSet": found.get("DelegationSet", {})}
    check_zone_fits(aws.config, zone)
    return zone


def public_zones_named(aws: Reader, name: str) -> list[dict[str, Any]]:
    client = route53(aws)
    wanted = fqdn(name)
    matches: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"DNSName": wanted, "MaxItems": "100"}
    while True:
        page = client.list_hosted_zones_by_name(**kwargs)
        zones = page.get("HostedZones", [])
        matches += [z for z in zones if fqdn(z["Name"]) == wanted and not z.get("Config", {}).get("PrivateZone")]
        # Zones come sorted by name: once past ours, no page further on can hold another one.
        if not page.get("IsTruncated") or (zones and fqdn(zones[-1]["Name"]) != wanted):
            return matches
        kwargs.update(DNSName=page["NextDNSName"], HostedZoneId=page["NextHostedZoneId"])


def check_zone_fits(config: Config, zone: dict[str, Any]) -> None:
    name, domain = fqdn(zone["Name"]), fqdn(config.domain.name)
    where = f"hosted zone {short_zone_id(zone['Id'])}"
    if zone.get("Config", {}).get("PrivateZone"):
        raise StepError(STAGE, GLOBAL, where, f"{name} is a private zone",
                        "certificate validation and latency routing need a public hosted zone")
    if domain == name or not domain.endswith("." + name):
        raise StepError(STAGE, GLOBAL, where, f"domain.name {config.domain.name} does not lie inside the zone {name}",
                        f"use a name that ends in .{name.rstrip('.')}, or another zone")


def zone_tags(aws: Reader, zone_id: str) -> dict[str, str]:
    answer = route53(aws).list_tags_for_resource(ResourceType="hostedzone", ResourceId=short_zone_id(zone_id))
    return {t["Key"]: t["Value"] for t in answer.get("ResourceTagSet", {}).get("Tags", [])}


def record_sets(aws: Reader, zone_id: str) -> list[dict[str, Any]]:
    paginator = route53(aws).get_paginator("list_resource_record_sets")
    return [rr for page in paginator.paginate(HostedZoneId=short_zone_id(zone_id)) for rr in page["ResourceRecordSets"]]


def records_at(aws: Reader, zone_id: str, name: str) -> list[dict[str, Any]]:
    """Every record set named `name` (ListResourceRecordSets from that name on, until the name changes)."""
    records: list[dict[str, Any]] = []
    wanted = dns_name(name)
    pages = route53(aws).get_paginator("list_resource_record_sets").paginate(
        HostedZoneId=short_zone_id(zone_id), StartRecordName=wanted)
    for page in pages:
        for record in page.get("ResourceRecordSets", []):
            if dns_name(record["Name"]) != wanted:
                return records
            records.append(record)
    return records


def record_set(aws: Reader, zone_id: str, name: str, rtype: str) -> dict[str, Any] | None:
    """The one record set of that name and type (simple routing), or None."""
    page = route53(aws).list_resource_record_sets(HostedZoneId=short_zone_id(zone_id), StartRecordName=name,
                                                  StartRecordType=rtype, MaxItems="1")
    for rrset in page.get("ResourceRecordSets", [])[:1]:
        if fqdn(rrset["Name"]) == fqdn(name) and rrset["Type"] == rtype:
            return dict(rrset)
    return None
