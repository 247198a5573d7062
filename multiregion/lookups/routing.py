"""The global name's routing: the stack's traffic policy and policy records, and Route 53's answers."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from multiregion.aws import absent_as_none, error_code
from multiregion.config import Config
from multiregion.engine import Reader
from multiregion.lookups import apis, zones
from multiregion.names import ROUTE53_REGION, dns_name, policy_name, record_name, short_zone_id
from multiregion.regions import REGIONS, client_ip

if TYPE_CHECKING:
    from multiregion.drill.traffic import Response

POLICY_TYPE = "CNAME"  # there is no API Gateway endpoint type in traffic policies: a value endpoint
ALIAS_TYPE = "A"
Identify = Callable[[str], "str | None"]  # an answered address -> the configured region it is, or None
HEALTH_PATH = "/health"  # the health function's route, on every stack's API (the tool's own function)
_EXECUTE_API_RE = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")


def route53(aws: Reader) -> Any:
    return aws.client("route53", ROUTE53_REGION)


def find_policy(aws: Reader) -> dict[str, Any] | None:
    """The stack's traffic policy summary (found by its name), or None."""
    name = policy_name(aws.config)
    kwargs: dict[str, Any] = {}
    while True:
        page = route53(aws).list_traffic_policies(**kwargs)
        for summary in page.get("TrafficPolicySummaries", []):
            if summary["Name"] == name:
                return dict(summary)
        if not page.get("IsTruncated"):
            return None
        kwargs = {"TrafficPolicyIdMarker": page["TrafficPolicyIdMarker"]}


def policy_document(aws: Reader, policy_id: str, version: int) -> dict[str, Any]:
    found = route53(aws).get_traffic_policy(Id=policy_id, Version=version)
    return dict(json.loads(found["TrafficPolicy"]["Document"]))


def policy_versions(aws: Reader, policy_id: str) -> list[int]:
    versions: list[int] = []
    kwargs: dict[str, Any] = {"Id": policy_id}
    while True:
        page = route53(aws).list_traffic_policy_versions(**kwargs)
        versions += [int(v["Version"]) for v in page.get("TrafficPolicies", [])]
        if not page.get("IsTruncated"):
            return versions
        kwargs["TrafficPolicyVersionMarker"] = page["TrafficPolicyVersionMarker"]


def zone_instances(aws: Reader, zone_id: str) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HostedZoneId": short_zone_id(zone_id)}
    while True:
        try:
            page = route53(aws).list_traffic_policy_instances_by_hosted_zone(**kwargs)
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


def get_instance(aws: Reader, instance_id: str) -> dict[str, Any] | None:
    client = route53(aws)
    answer = absent_as_none(lambda: client.get_traffic_policy_instance(Id=instance_id), "NoSuchTrafficPolicyInstance")
    return dict(answer["TrafficPolicyInstance"]) if answer else None


def is_latency_record(record: dict[str, Any]) -> bool:
    """One of our per-region latency records (SetIdentifier = Region = a region code), not a policy's."""
    sid = record.get("SetIdentifier")
    return sid in REGIONS and record.get("Region") == sid and not record.get("TrafficPolicyInstanceId")


def document_checks(document: dict[str, Any]) -> set[str]:
    """The health check ids a policy document references, in any rule."""
    return {entry["HealthCheck"] for rule in document.get("Rules", {}).values()
            for entry in rule.get("Regions", []) if entry.get("HealthCheck")}


# ------------------------------------------------------------------------------------------ DNS answers


def serving_region(aws: Reader, answer: str | None) -> str | None:
    """The configured region whose regional domain name `answer` is (or whose API host it names)."""
    if not answer:
        return None
    name = dns_name(answer)
    for region in aws.config.regions:
        domain = apis.regional_domain(aws, region)
        if domain and dns_name(domain[0]) == name:
            return region
    match = _EXECUTE_API_RE.search(name)
    return match.group(1) if match and match.group(1) in aws.config.regions else None


def dns_answer(aws: Reader, client_region: str, ip: str | None = None, zone_id: str | None = None,
               identify: Identify | None = None) -> tuple[str | None, str | None]:
    """What the global name answers for a client in `client_region`, and which configured region that is.

    TestDNSAnswer is asked with both `ResolverIP` and `EDNS0ClientSubnetIP` in the client's region: AWS uses
    the client subnet only "if the resolver that you specified for resolverip supports EDNS0", and without
    a resolver answers as one in us-east-1. An alias record is answered with addresses, which `identify`
    maps to a region (by default a new `endpoint_regions(aws)`: the endpoint at that address is asked)."""
    config: Config = aws.config
    if zone_id is None:
        zone = zones.find_hosted_zone(aws)
        if zone is None:
            return None, None
        zone_id = str(zone["Id"])
    record_type = POLICY_TYPE if config.routing.mode == "traffic-policy" else ALIAS_TYPE
    address = ip or client_ip(client_region)
    answer = route53(aws).test_dns_answer(
        HostedZoneId=short_zone_id(zone_id), RecordName=record_name(config), RecordType=record_type,
        ResolverIP=resolver_ip(client_region, address), EDNS0ClientSubnetIP=address, EDNS0ClientSubnetMask="24")
    data = [d for d in answer.get("RecordData", []) if d]
    if not data:
        return None, None
    first = dns_name(data[0])
    if _is_ip(first):
        # An alias record is answered with the target's addresses: ask whose they are.
        return first, (identify or endpoint_regions(aws))(first)
    return first, serving_region(aws, first)


def resolver_ip(client_region: str, client: str) -> str:
    """A resolver address in the client's region (the network's second address: not the client's own)."""
    import ipaddress as ip_module

    from multiregion.regions import REGIONS as KNOWN

    if client_region in KNOWN:
        return str(ip_module.ip_network(KNOWN[client_region].client_subnet).network_address + 2)
    return client


# ------------------------------------------------------------------------------- whose address is it


class EndpointRegions:
    """Which configured region an address from an alias answer belongs to, asked of the endpoint itself.

    Route 53 answers an alias to a regional API Gateway domain with that endpoint's current addresses,
    which rotate and are shared by every API of the region, so no name or local lookup maps them back
    reliably. A client connecting there, with the global name as TLS server name and Host, reaches the
    stack's regional custom domain of that region, whose health route says which region it is. A hit is
    kept (an address of one region's API Gateway does not move to another region); a miss (no answer, a
    5xx while the region is down, a body without a region) is not, and is asked again the next time."""

    def __init__(self, regions: tuple[str, ...], send: Callable[[str], Response],
                 fallback: Identify | None = None):
        self.regions, self.send, self.fallback = regions, send, fallback
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, address: str) -> str | None:
        with self._lock:
            if address in self._known:
                return self._known[address]
        region = region_in(self.send(address))
        if region not in self.regions and self.fallback is not None:
            region = self.fallback(address)
        if region not in self.regions:
            return None
        with self._lock:
            self._known[address] = str(region)
        return str(region)


def region_in(response: Response) -> str | None:
    """The region a health answer names in its body (the health function's own answer, 200 or 404). The
    sandbox's x-multiregion-region header is not read: AWS sends nothing like it, so an endpoint whose
    function is down names no region there either."""
    body = response.body if isinstance(response.body, dict) else {}
    return body.get("region") if isinstance(body.get("region"), str) else None


def endpoint_regions(aws: Reader) -> EndpointRegions:
    """An EndpointRegions for the stack: HTTPS to the address with the global name (AWS), or, on a local
    endpoint, HTTP to it with the global name as Host and the address as X-Multiregion-Connect-To (the
    sandbox's way of saying which address the client connected to)."""
    from multiregion.drill.transport import HttpsTransport, SandboxTransport

    config = aws.config
    local = getattr(aws.clients, "local_url", None)  # the sandbox's URL, also through AWS_ENDPOINT_URL
    transport = SandboxTransport(local, config.domain.name) if local else HttpsTransport(config.domain.name)

    def send(address: str) -> Response:
        return transport.send(address, "GET", HEALTH_PATH, None)

    # Off a local endpoint, this machine's own lookup of the regional domain names may still know an
    # address the endpoint cannot name (its region down): a last resort, tried only after a miss.
    fallback = None if local else (lambda address: region_of_address(aws, address))
    return EndpointRegions(config.regions, send, fallback)


def region_of_address(aws: Reader, address: str) -> str | None:
    """The configured region whose regional domain name resolves, here, to `address`."""
    for region in aws.config.regions:
        domain = apis.regional_domain(aws, region)
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
