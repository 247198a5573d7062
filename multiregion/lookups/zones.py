"""The hosted zone of the global name, and the record sets in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multiregion.aws import absent_as_none
from multiregion.config import Config
from multiregion.engine import GLOBAL, Reader, StepError
from multiregion.lookups import dns
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


# ------------------------------------------------------------------------------------------ delegation

# The port the zones' own name servers are asked on; DNS's, except in a test's server on 127.0.0.1.
AUTHORITY_PORT = dns.DNS_PORT
DELEGATED, UNDELEGATED, UNKNOWN = "delegated", "undelegated", "unknown"
_SERVERS_TRIED = 3


@dataclass(frozen=True)
class Delegation:
    """Whether the public DNS sends queries for `zone` to the name servers Route 53 gave its hosted zone."""

    zone: str
    name_servers: tuple[str, ...]  # the hosted zone's (GetHostedZone's DelegationSet)
    verdict: str  # DELEGATED | UNDELEGATED | UNKNOWN
    detail: str  # what the parent zone (or the resolver) said
    parent: str | None = None
    delegated_to: tuple[str, ...] = ()

    @property
    def delegated(self) -> bool:
        return self.verdict == DELEGATED


def delegation_set(zone: dict[str, Any]) -> tuple[str, ...]:
    """The name servers Route 53 answers the zone from (find_hosted_zone's `DelegationSet`)."""
    return tuple(dns_name(ns) for ns in (zone.get("DelegationSet") or {}).get("NameServers", []))


def check_delegation(zone: str, name_servers: tuple[str, ...], resolver: dns.Server | None = None,
                     authority_port: int | None = None, timeout: float = 2.0) -> Delegation:
    """Ask the parent zone's name servers (without recursion, as a resolver would on its way down) which name
    servers it delegates `zone` to, and compare them with Route 53's.

    Names that differ may still be the same servers (a white-label delegation set): then their addresses
    decide. When no parent server answers (outbound DNS blocked), the resolver's own answer for the zone's
    NS records stands in. UNKNOWN only when the resolver itself cannot be asked."""
    zone, ours = dns_name(zone), tuple(dns_name(n) for n in name_servers)
    try:
        ask = _Asker(resolver or dns.system_resolver(), authority_port or AUTHORITY_PORT, timeout)
        parent, parent_servers = ask.parent_zone(zone)
        found = ask.parent(zone, parent, parent_servers) or ask.resolver_view(zone)
    except dns.DnsError as exc:
        return Delegation(zone, ours, UNKNOWN, f"the delegation of {zone} could not be checked: {exc}")
    delegated_to, detail = found
    if not delegated_to:
        return Delegation(zone, ours, UNDELEGATED, detail, parent)
    if set(delegated_to) <= set(ours) or ask.same_servers(delegated_to, ours):
        return Delegation(zone, ours, DELEGATED, detail, parent, delegated_to)
    return Delegation(zone, ours, UNDELEGATED, detail, parent, delegated_to)


@dataclass(frozen=True)
class _Asker:
    resolver: dns.Server
    authority_port: int
    timeout: float

    def ask(self, server: dns.Server, name: str, rtype: int, recursion: bool = True) -> dns.Reply:
        return dns.ask(server, name, rtype, recursion, timeout=self.timeout)

    def parent_zone(self, zone: str) -> tuple[str, list[str]]:
        """The closest enclosing zone (the first ancestor with NS records) and its name servers."""
        labels = zone.split(".")
        for i in range(1, len(labels) + 1):
            candidate = ".".join(labels[i:])
            reply = self.ask(self.resolver, candidate or ".", dns.NS)
            servers = reply.names(reply.answers, dns.NS, candidate)
            if reply.rcode == dns.NOERROR and servers:
                return candidate or ".", servers
            if reply.rcode not in (dns.NOERROR, dns.NXDOMAIN):
                raise dns.DnsError(f"resolver {self.resolver} answered {reply.rcode_name} for {candidate or '.'} NS")
        raise dns.DnsError(f"resolver {self.resolver} knows no zone above {zone}")

    def parent(self, zone: str, parent: str, servers: list[str]) -> tuple[tuple[str, ...], str] | None:
        """(name servers the parent delegates `zone` to, what it said); None when no parent server answered."""
        for server in servers[:_SERVERS_TRIED]:
            for address in self.addresses(server)[:1]:
                try:
                    reply = self.ask(dns.Server(address, self.authority_port), zone, dns.NS, recursion=False)
                except dns.DnsError:
                    continue
                if reply.rcode == dns.NXDOMAIN:
                    return (), f"the parent zone {parent} ({server}) has no such name as {zone}"
                if reply.rcode != dns.NOERROR:
                    continue  # a lame or refusing server: the next one
                found = reply.names(reply.authority, dns.NS, zone) or reply.names(reply.answers, dns.NS, zone)
                if not found and not reply.authoritative:
                    continue  # no delegation from a server not authoritative for the parent (lame): the next one
                if not found:
                    return (), f"the parent zone {parent} ({server}) holds {zone} but delegates it to no name servers"
                return tuple(found), f"the parent zone {parent} ({server}) delegates {zone} to {', '.join(found)}"
        return None

    def resolver_view(self, zone: str) -> tuple[tuple[str, ...], str]:
        reply = self.ask(self.resolver, zone, dns.NS)
        if reply.rcode == dns.NXDOMAIN:
            return (), f"resolver {self.resolver} finds no such name as {zone} (no server of its parent zone answered)"
        found = reply.names(reply.answers, dns.NS, zone)
        if reply.rcode != dns.NOERROR or not found:
            raise dns.DnsError(f"no server of its parent zone answered, and resolver {self.resolver} answered "
                               f"{reply.rcode_name} with {len(found)} name server(s)")
        return tuple(found), f"resolver {self.resolver} answers {zone} NS with {', '.join(found)}"

    def addresses(self, name: str) -> list[str]:
        try:
            reply = self.ask(self.resolver, name, dns.A)
        except dns.DnsError:
            return []
        found = reply.names(reply.answers, dns.A, name)
        targets = reply.names(reply.answers, dns.CNAME, name)
        return found or (reply.names(reply.answers, dns.A, targets[0]) if targets else [])

    def same_servers(self, delegated_to: tuple[str, ...], ours: tuple[str, ...]) -> bool:
        """Whether every delegated server has an address of one of Route 53's (white-label name servers)."""
        theirs = {a for n in delegated_to for a in self.addresses(n)}
        mine = {a for n in ours for a in self.addresses(n)}
        return bool(theirs) and theirs <= mine


def undelegated_error(stage: str, region: str, delegation: Delegation) -> StepError:
    """The error for a zone ACM cannot validate through, with the name servers to set."""
    where = f" in the parent zone {delegation.parent}" if delegation.parent and delegation.parent != "." else ""
    return StepError(
        stage, region, f"hosted zone {delegation.zone}",
        f"the zone is not delegated to its Route 53 name servers: {delegation.detail}. ACM validates DNS "
        "through the public DNS, so the certificate would wait in PENDING_VALIDATION until it times out",
        f"set the name servers of {delegation.zone} at its registrar (or as its NS record{where}) to: "
        f"{', '.join(delegation.name_servers)}; then run `up` again (changes at a registrar can take up to two "
        "days to be seen; ACM keeps trying for 72 hours)")
