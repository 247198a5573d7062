"""What Route 53 would answer: `TestDNSAnswer`, and the global name served over HTTP by the answered region.

Answers (`DnsAnswers.answer`, and `GET /2013-04-01/testdnsanswer`):

* A policy record is answered by evaluating its traffic policy document from StartRule/StartEndpoint.
  Record sets of the same name and type are answered by their routing policy: latency (SetIdentifier +
  Region), failover, weighted, multivalue, geolocation (its default location, the sandbox has no country
  data) or simple. A query for a type the name lacks falls back to the name's CNAME, as DNS does.
* Latency: the nearest region, by `multiregion.regions.distance_km` between the client's region and the
  record's or rule entry's region, among the healthy ones. Healthy means: the entry's health check (if
  any) is healthy, and with EvaluateTargetHealth the target is too, when the sandbox knows the target (a
  nested rule, or an alias to a name in a sandbox hosted zone). When no entry is healthy Route 53 fails
  open and answers as if all were healthy (the nearest), and so does the sandbox. A health check the
  sandbox does not know (deleted, say) counts as healthy.
* Failover: the primary when healthy, else the secondary when healthy, else (failing open) the primary.
* The client's region: the EDNS0 client subnet (masked, default /24) looked up with
  `multiregion.regions.region_of_ip`, else the resolver IP; an address in no known subnet, or none at
  all, answers as a us-east-1 resolver, as Route 53 does without a ResolverIP.
* Values are what the records hold. An alias A or AAAA record (and an alias endpoint of a traffic policy
  of those types) answers as the option `alias_answers` says: "addresses" (the default) answers as Route 53
  does, with addresses: the target's own answer when it is a name in a sandbox hosted zone, else the
  addresses `sandbox/addresses.py` derives for the target (two per name), which the API data plane serves
  through `X-Multiregion-Connect-To`; "names" gives the target's DNS name instead.

The global name over HTTP: a request without AWS credentials whose Host is a name with a policy record or
latency records in a sandbox hosted zone is resolved as above for the client, and served through the API
data plane as if it had been sent to the answered host (a regional domain name or an execute-api host, or
the endpoint that owns an answered address).
The client's location comes from the header `X-Multiregion-Client-IP: <ip>` (make one for a region with
`multiregion.regions.client_ip`), else the first address of `X-Forwarded-For`, else a us-east-1 resolver.
The response carries `x-multiregion-answer` (the DNS answer used) and `x-multiregion-client-region`.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from werkzeug.wrappers import Response

from multiregion.regions import REGIONS, distance_km, region_of_ip
from multiregion.sandbox import moto_compat
from multiregion.sandbox.addresses import endpoint_addresses, is_address
from multiregion.sandbox.app import Extension, SandboxRequest, json_response
from multiregion.sandbox.moto_compat import HostedZone, RecordSet
from multiregion.sandbox.route53 import (
    Members,
    Route53Error,
    dispatch,
    fqdn,
    route,
    xml_response,
    zone_id_of,
)
from multiregion.sandbox.route53_policies import ALIAS_ENDPOINTS, RULE_LISTS, TrafficPolicies

DEFAULT_REGION = "us-east-1"
CLIENT_IP_HEADER = "X-Multiregion-Client-IP"
MAX_DEPTH = 5  # alias and CNAME chains followed inside the sandbox
MULTIVALUE_MAX = 8
ADDRESS_TYPES = {"A": 4, "AAAA": 6}
T = TypeVar("T")
AliasValues = Callable[[str, str], list[str]]  # (alias target, record type) -> the answer's values


@dataclass(frozen=True)
class Choice:
    """An answer and whether it came from a healthy option (False: every option was down, Route 53 failed open)."""

    values: list[str]
    healthy: bool


@dataclass(frozen=True)
class GlobalAnswer:
    """How a request to a global name is routed: the client's region and the host the DNS answer names."""

    zone_id: str
    name: str
    client_region: str
    answer: str


def client_region(ip: str | None, mask: int | None = None) -> str | None:
    """The region a client (or resolver) address belongs to, by the regions' client subnets."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if mask is not None:
        addr = ipaddress.ip_network(f"{addr}/{mask}", strict=False).network_address
    return region_of_ip(str(addr))


def nearest(region: str, options: Sequence[tuple[str | None, T, bool]]) -> tuple[T, bool]:
    """Latency routing: the option nearest to `region` among the healthy ones, or among all (fail open)."""
    healthy = [o for o in options if o[2]]
    pool = healthy or list(options)
    best = min(pool, key=lambda o: (_distance(region, o[0]), o[0] or ""))
    return best[1], bool(healthy)


def _distance(a: str, b: str | None) -> float:
    if b is None or a not in REGIONS or b not in REGIONS:
        return float("inf")
    return distance_km(a, b)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return value is True or str(value).lower() == "true"


# ---------------------------------------------------------------------------------------------- policies


class PolicyEvaluator:
    """Evaluates a traffic policy document for one client region."""

    def __init__(self, doc: dict[str, Any], region: str, check_healthy: Callable[[str], bool],
                 alias_values: AliasValues | None = None):
        self.doc, self.region, self.check_healthy = doc, region, check_healthy
        self.alias_values = alias_values

    def start(self) -> Choice:
        if "StartRule" in self.doc:
            return self.rule(self.doc["StartRule"])
        return self.endpoint(self.doc["StartEndpoint"])

    def endpoint(self, endpoint_id: str) -> Choice:
        endpoint = self.doc["Endpoints"][endpoint_id]
        if endpoint.get("Type") in ALIAS_ENDPOINTS and self.alias_values is not None:
            return Choice(self.alias_values(endpoint["Value"], self.doc["RecordType"]), True)
        return Choice([endpoint["Value"]], True)

    def follow(self, item: dict[str, Any]) -> Choice:
        if "RuleReference" in item:
            return self.rule(item["RuleReference"])
        return self.endpoint(item["EndpointReference"])

    def option(self, item: dict[str, Any]) -> tuple[Choice, bool]:
        """An entry's answer and whether the entry is healthy."""
        sub = self.follow(item)
        ok = self.check_healthy(item["HealthCheck"]) if item.get("HealthCheck") else True
        if _flag(item.get("EvaluateTargetHealth"), True):
            ok = ok and sub.healthy
        return sub, ok

    def rule(self, rule_id: str) -> Choice:
        rule = self.doc["Rules"][rule_id]
        kind = rule["RuleType"]
        if kind == "failover":
            return self._failover(rule)
        options = [(item, *self.option(item)) for item in rule[RULE_LISTS[kind]]]
        if kind in ("latency", "geoproximity"):
            choice, any_healthy = nearest(self.region, [(i.get("Region"), c, ok) for i, c, ok in options])
            return Choice(choice.values, any_healthy)
        if kind == "multivalue":
            healthy = [c for _, c, ok in options if ok]
            picked = healthy or [c for _, c, _ in options]
            return Choice([v for c in picked for v in c.values][:MULTIVALUE_MAX], bool(healthy))
        if kind == "weighted":
            return _weighted([(int(i.get("Weight", 0)), c, ok) for i, c, ok in options])
        # geo: the sandbox has no country data for clients, so the default location (else the first) answers
        located = [(i, c) for i, c, ok in options if ok] or [(i, c) for i, c, _ in options]
        _, choice = next(((i, c) for i, c in located if i.get("IsDefault")), located[0])
        return Choice(choice.values, any(ok for _, _, ok in options))

    def _failover(self, rule: dict[str, Any]) -> Choice:
        primary, primary_ok = self.option(rule["Primary"])
        if primary_ok:
            return Choice(primary.values, True)
        secondary, secondary_ok = self.option(rule["Secondary"])
        if secondary_ok:
            return Choice(secondary.values, True)
        return Choice(primary.values, False)


def _weighted(options: list[tuple[int, Choice, bool]]) -> Choice:
    healthy = [o for o in options if o[2]]
    pool = healthy or options
    weights = [w for w, _, _ in pool]
    _, choice, _ = random.choices(pool, weights=weights if any(weights) else None)[0]
    return Choice(choice.values, bool(healthy))


# ---------------------------------------------------------------------------------------------- extension


class DnsAnswers(Extension):
    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.routes = [route("GET", "/testdnsanswer", self._test_dns_answer)]

    def handle(self, req: SandboxRequest) -> Response | None:
        answered = dispatch(req, self.routes)
        if answered is not None or req.service is not None:
            return answered
        return self._serve_global_name(req)

    # ------------------------------------------------------------------ Python API

    def answer(self, zone_id: str, name: str, rtype: str, client_region: str | None = None) -> list[str]:
        """What Route 53 answers a client in `client_region` (None: a us-east-1 resolver) for name and type."""
        return self.resolve(zone_id, name, rtype, client_region)[0]

    def resolve(self, zone_id: str, name: str, rtype: str, client_region: str | None = None) -> tuple[list[str], str]:
        """The answer's values and DNS response code (NOERROR or NXDOMAIN)."""
        with self.sandbox.lock:
            zone = self._zone(zone_id)
            choice = self._choose(zone, fqdn(name), rtype.upper(), client_region or DEFAULT_REGION, 0)
        if choice is None:
            return [], "NXDOMAIN"
        return choice.values, "NOERROR"

    def global_answer(self, host: str, client_ip: str | None = None) -> GlobalAnswer | None:
        """How a request to `host` from `client_ip` is routed, or None when host is not a routed name."""
        region = client_region(client_ip) or DEFAULT_REGION
        with self.sandbox.lock:
            found = self._routed_name(fqdn(host))
            if found is None:
                return None
            zone, rtype = found
            answer = self._chase(zone, fqdn(host), rtype, region)
        if answer is None:
            return None
        return GlobalAnswer(zone_id_of(zone.id), fqdn(host), region, answer)

    # ------------------------------------------------------------------ TestDNSAnswer

    def _test_dns_answer(self, req: SandboxRequest) -> Response:
        args = req.raw.args
        zone_id, name, rtype = args.get("hostedzoneid"), args.get("recordname"), args.get("recordtype")
        if not zone_id or not name or not rtype:
            raise Route53Error("InvalidInput", "hostedzoneid, recordname and recordtype are required")
        region = self._query_region(args.get("edns0clientsubnetip"), args.get("edns0clientsubnetmask"),
                                    args.get("resolverip"))
        with self.sandbox.lock:
            zone = self._zone(zone_id)
            if zone.private_zone:
                raise Route53Error("InvalidInput", "TestDNSAnswer supports public hosted zones only")
            nameserver = moto_compat.name_server(zone) or "ns-2048.awsdns-64.com"
        values, code = self.resolve(zone_id, name, rtype, region)
        return xml_response("TestDNSAnswerResponse", {
            "Nameserver": nameserver, "RecordName": name, "RecordType": rtype,
            "RecordData": Members("RecordDataEntry", values), "ResponseCode": code, "Protocol": "UDP"})

    @staticmethod
    def _query_region(subnet_ip: str | None, mask: str | None, resolver_ip: str | None) -> str:
        for ip in (subnet_ip, resolver_ip):
            if ip:
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    raise Route53Error("InvalidInput", f"{ip!r} is not an IP address") from None
        bits: int | None = None
        if subnet_ip:
            limit = 32 if ipaddress.ip_address(subnet_ip).version == 4 else 128
            bits = int(mask) if mask and mask.isdigit() else (24 if limit == 32 else 64)
            if not 0 <= bits <= limit:
                raise Route53Error("InvalidInput", f"edns0clientsubnetmask must be between 0 and {limit}")
        return client_region(subnet_ip, bits) or client_region(resolver_ip) or DEFAULT_REGION

    # ------------------------------------------------------------------ answering (hold sandbox.lock)

    def _choose(self, zone: HostedZone, name: str, rtype: str, region: str, depth: int) -> Choice | None:
        """The answer for name and type in the zone; None when the name does not exist there."""
        records = [r for r in zone.rrsets if fqdn(r.name) == name]
        if not records:
            return None
        inst = self._policies().instance_at(zone.id, name)
        if inst is not None and (rtype == inst.type or inst.type == "CNAME"):
            return PolicyEvaluator(self._policies().document(inst), region, self._check_healthy,
                                   lambda target, kind: self._alias_values(target, kind, region, depth)).start()
        plain = [r for r in records if not moto_compat.policy_instance_of(r)]
        typed = [r for r in plain if r.type == rtype] or [r for r in plain if r.type == "CNAME"]
        if not typed:
            return Choice([], True)
        return self._route_records(typed, region, depth)

    def _route_records(self, records: list[RecordSet], region: str, depth: int) -> Choice:
        options = [(r, self._values(r, region, depth), self._record_healthy(r, depth)) for r in records]
        first = records[0]
        if first.region:
            values, any_healthy = nearest(region, [(r.region, v, ok) for r, v, ok in options])
            return Choice(values, any_healthy)
        if first.failover:
            ordered = sorted(options, key=lambda o: o[0].failover != "PRIMARY")
            chosen = next((o for o in ordered if o[2]), ordered[0])
            return Choice(chosen[1], chosen[2])
        if first.weight is not None:
            return _weighted([(int(r.weight), Choice(v, ok), ok) for r, v, ok in options])
        if first.multi_value_answer:
            healthy = [v for _, v, ok in options if ok]
            picked = healthy or [v for _, v, _ in options]
            return Choice([x for v in picked for x in v][:MULTIVALUE_MAX], bool(healthy))
        if first.geo_location:
            default = [o for o in options if (o[0].geo_location or {}).get("CountryCode") == "*"]
            chosen = (default or options)[0]
            return Choice(chosen[1], chosen[2])
        return Choice([x for _, v, _ in options for x in v], all(ok for _, _, ok in options))

    def _values(self, record: RecordSet, region: str, depth: int) -> list[str]:
        if not record.alias_target:
            return [r["Value"] if isinstance(r, dict) else str(r) for r in record.records or []]
        return self._alias_values(str(record.alias_target.get("DNSName", "")), record.type, region, depth)

    def _alias_values(self, target: str, rtype: str, region: str, depth: int) -> list[str]:
        """What an alias to `target` answers: the target's name, or (alias_answers "addresses", as Route 53)
        the target's own A/AAAA answer when it is in a sandbox hosted zone, else the target's addresses."""
        if self.sandbox.options.alias_answers != "addresses" or rtype not in ADDRESS_TYPES:
            return [target]
        zone = self._zone_of(fqdn(target))
        if zone is not None:
            choice = self._choose(zone, fqdn(target), rtype, region, depth + 1) if depth < MAX_DEPTH else None
            return [v for v in (choice.values if choice else []) if is_address(v)]
        return endpoint_addresses(target, ADDRESS_TYPES[rtype])

    def _record_healthy(self, record: RecordSet, depth: int) -> bool:
        ok = self._check_healthy(record.health_check_id) if record.health_check_id else True
        alias = record.alias_target or {}
        if ok and alias and _flag(alias.get("EvaluateTargetHealth"), False):
            ok = self._target_healthy(fqdn(alias.get("DNSName", "")), record.type, depth + 1)
        return ok

    def _target_healthy(self, name: str, rtype: str, depth: int) -> bool:
        """An alias target's health when it is a name in a sandbox hosted zone; unknown targets count healthy."""
        zone = self._zone_of(name)
        if zone is None or depth > MAX_DEPTH:
            return True
        choice = self._choose(zone, name, rtype, DEFAULT_REGION, depth)
        return choice is None or choice.healthy

    def _check_healthy(self, check_id: str) -> bool:
        from multiregion.sandbox.route53_health import HealthChecks

        try:
            return self.sandbox.extension(HealthChecks).health(check_id)[0]
        except (LookupError, KeyError):
            return True

    def _policies(self) -> TrafficPolicies:
        return self.sandbox.extension(TrafficPolicies)

    @staticmethod
    def _zone(zone_id: str) -> HostedZone:
        zone = moto_compat.hosted_zone(zone_id_of(zone_id))
        if zone is None:
            raise Route53Error("NoSuchHostedZone", f"No hosted zone found with ID: {zone_id_of(zone_id)}", 404)
        return zone

    @staticmethod
    def _zone_of(name: str) -> HostedZone | None:
        """The public sandbox hosted zone that holds `name` (the most specific one)."""
        zones = [z for z in moto_compat.hosted_zones()
                 if not z.private_zone and (name == fqdn(z.name) or name.endswith("." + fqdn(z.name)))]
        return max(zones, key=lambda z: len(z.name), default=None)

    # ------------------------------------------------------------------ the global name (hold sandbox.lock)

    def _routed_name(self, name: str) -> tuple[HostedZone, str] | None:
        """The zone and record type of a name with a policy record or latency records, else None."""
        zone = self._zone_of(name)
        if zone is None:
            return None
        inst = self._policies().instance_at(zone.id, name)
        if inst is not None:
            return zone, inst.type
        latency = next((r for r in zone.rrsets if fqdn(r.name) == name and r.set_identifier and r.region), None)
        return (zone, latency.type) if latency is not None else None

    def _chase(self, zone: HostedZone, name: str, rtype: str, region: str) -> str | None:
        """Resolve like a stub resolver: follow answers that are names in sandbox zones to the final host."""
        for depth in range(MAX_DEPTH):
            choice = self._choose(zone, name, rtype, region, depth)
            if choice is None or not choice.values:
                return None
            answer = choice.values[0].rstrip(".").lower()
            next_zone = self._zone_of(fqdn(answer))
            if next_zone is None or not any(fqdn(r.name) == fqdn(answer) for r in next_zone.rrsets):
                return answer
            zone, name = next_zone, fqdn(answer)
        return None

    def _serve_global_name(self, req: SandboxRequest) -> Response | None:
        host = req.host
        if not host or host.endswith(".amazonaws.com") or host == "localhost" or _is_ip(host):
            return None
        client_ip = req.raw.headers.get(CLIENT_IP_HEADER) or \
            (req.raw.headers.get("X-Forwarded-For") or "").split(",")[0].strip() or None
        routed = self.global_answer(host, client_ip)
        if routed is None:
            return None
        headers = {"x-multiregion-answer": routed.answer, "x-multiregion-client-region": routed.client_region}
        try:
            from multiregion.sandbox.apigateway import ApiDataPlane

            plane = self.sandbox.extension(ApiDataPlane)
        except (ImportError, LookupError):
            return json_response({"message": f"{host} resolves to {routed.answer} for a client in "
                                             f"{routed.client_region}, but this sandbox has no API data plane to "
                                             "serve it"}, 502, "application/json", headers)
        endpoint = plane.endpoint_host(routed.answer)
        served = plane.serve(req, endpoint) if endpoint else None
        if served is None:
            return json_response({"message": f"{host} resolves to {routed.answer} for a client in "
                                             f"{routed.client_region}, and nothing in the sandbox answers there"},
                                 502, "application/json", headers)
        served.headers.update(headers)
        return served


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False
