"""Addresses of AWS endpoints in the sandbox: alias answers as Route 53 gives them (alias_answers="addresses"),
and requests that connect to an answered address (X-Multiregion-Connect-To), served by the endpoint owning it."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from multiregion.regions import REGIONS, client_ip, region_of_ip
from multiregion.sandbox import addresses
from multiregion.sandbox.addresses import endpoint_addresses, endpoint_at
from multiregion.sandbox.apigateway import ApiDataPlane
from multiregion.sandbox.route53_dns import DnsAnswers
from multiregion.sandbox.server import Sandbox, SandboxOptions
from tests.test_sandbox_apigateway import issued_certificate
from tests.test_sandbox_route53_dns import get, region_apis  # noqa: F401 (a fixture)

NAME = "api.example.com"
REGIONAL = {"eu-west-1": "d-abcdefghij.execute-api.eu-west-1.amazonaws.com",
            "us-east-1": "d-klmnopqrst.execute-api.us-east-1.amazonaws.com"}


# ---------------------------------------------------------------------------------------------- the mapping


def test_an_endpoint_has_two_stable_addresses_that_no_client_has() -> None:
    eu = endpoint_addresses(REGIONAL["eu-west-1"])
    assert eu == endpoint_addresses(REGIONAL["eu-west-1"].upper() + ".")  # a DNS name: case and dot do not count
    assert len(eu) == 2 and len(set(eu)) == 2
    assert eu != endpoint_addresses(REGIONAL["us-east-1"])
    for address in eu:
        assert ipaddress.ip_address(address) in ipaddress.ip_network("198.18.0.0/15")
        assert region_of_ip(address) is None  # never taken for a client of some region
    v6 = endpoint_addresses(REGIONAL["eu-west-1"], 6)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("2001:db8::/32") for a in v6)


def test_an_address_maps_back_to_the_endpoint_that_owns_it(monkeypatch: pytest.MonkeyPatch) -> None:
    names = list(REGIONAL.values())
    for name in names:
        for version in (4, 6):
            for address in endpoint_addresses(name, version):
                assert endpoint_at(address, names) == name
    assert endpoint_at("198.18.0.1", []) is None
    assert endpoint_at("not an address", names) is None
    # Two endpoints sharing an address (possible, if unlikely): no guess.
    monkeypatch.setattr(addresses, "endpoint_addresses", lambda name, version=4: ["198.18.0.9"])
    assert endpoint_at("198.18.0.9", names) is None


# ---------------------------------------------------------------------------------------------- answers


@pytest.fixture
def answers_addresses(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setattr(sandbox.options, "alias_answers", "addresses")
    return sandbox


def alias_records(aws: Any, zone: str, targets: dict[str, str], rtype: str = "A") -> None:
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": NAME, "Type": rtype, "SetIdentifier": region, "Region": region,
        "AliasTarget": {"HostedZoneId": REGIONS[region].apigw_zone_id, "DNSName": target,
                        "EvaluateTargetHealth": False}}} for region, target in targets.items()]
    aws("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


def zone_of(aws: Any) -> str:
    return str(aws("route53").create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"])


def answer(aws: Any, zone: str, region: str, rtype: str = "A") -> list[str]:
    got = aws("route53").test_dns_answer(HostedZoneId=zone, RecordName=NAME, RecordType=rtype,
                                         EDNS0ClientSubnetIP=client_ip(region))
    return list(got["RecordData"])


def test_alias_records_answer_addresses_as_route53_by_default_or_names(aws: Any, sandbox: Sandbox,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    zone = zone_of(aws)
    alias_records(aws, zone, REGIONAL)
    assert sandbox.options.alias_answers == SandboxOptions().alias_answers == "addresses"
    for region in REGIONAL:
        assert answer(aws, zone, region) == endpoint_addresses(REGIONAL[region])
    monkeypatch.setattr(sandbox.options, "alias_answers", "names")
    assert answer(aws, zone, "eu-west-1") == [REGIONAL["eu-west-1"]]


def test_alias_aaaa_records_answer_ipv6(aws: Any, answers_addresses: Sandbox) -> None:
    zone = zone_of(aws)
    alias_records(aws, zone, REGIONAL, rtype="AAAA")
    assert answer(aws, zone, "us-east-1", "AAAA") == endpoint_addresses(REGIONAL["us-east-1"], 6)


def test_an_alias_to_a_name_of_the_zone_answers_that_name_s_records(aws: Any, answers_addresses: Sandbox) -> None:
    zone = zone_of(aws)
    aws("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.example.com", "Type": "A", "TTL": 60,
                                                   "ResourceRecords": [{"Value": "192.0.2.10"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": NAME, "Type": "A", "AliasTarget": {
            "HostedZoneId": zone.split("/")[-1], "DNSName": "www.example.com", "EvaluateTargetHealth": False}}}]})
    assert answer(aws, zone, "eu-west-1") == ["192.0.2.10"]


def test_an_alias_endpoint_of_a_traffic_policy_answers_addresses(aws: Any, answers_addresses: Sandbox) -> None:
    zone = zone_of(aws)
    lb = "my-lb-1.eu-west-1.elb.amazonaws.com"
    doc = {"AWSPolicyFormatVersion": "2015-10-01", "RecordType": "A", "StartEndpoint": "lb",
           "Endpoints": {"lb": {"Type": "elastic-load-balancer", "Value": lb}}}
    r53 = aws("route53")
    policy = r53.create_traffic_policy(Name="lb", Document=json.dumps(doc))["TrafficPolicy"]
    r53.create_traffic_policy_instance(HostedZoneId=zone, Name=NAME, TTL=60, TrafficPolicyId=policy["Id"],
                                       TrafficPolicyVersion=1)
    assert answer(aws, zone, "eu-west-1") == endpoint_addresses(lb)


def test_the_option_is_checked() -> None:
    with pytest.raises(ValueError, match="alias_answers"):
        SandboxOptions(alias_answers="ips")


# ---------------------------------------------------------------------------------------------- connecting


@dataclass
class Domains:
    zone: str
    regional: dict[str, str]  # region -> regional domain name of NAME there


@pytest.fixture
def domains(aws: Any, region_apis: dict[str, str]) -> Iterator[Domains]:  # noqa: F811
    """NAME as a regional custom domain in eu-west-1 and us-east-1, mapped to each region's API."""
    regional = {}
    for region, host in region_apis.items():
        apigw = aws("apigateway", region)
        apigw.create_domain_name(domainName=NAME, regionalCertificateArn=issued_certificate(aws, region, NAME),
                                 endpointConfiguration={"types": ["REGIONAL"]})
        apigw.create_base_path_mapping(domainName=NAME, restApiId=host.split(".")[0], stage="prod")
        regional[region] = apigw.get_domain_name(domainName=NAME)["regionalDomainName"]
    zone = next(z["Id"] for z in aws("route53").list_hosted_zones()["HostedZones"] if z["Name"] == "example.com.")
    yield Domains(zone, regional)


def served_region(sandbox: Sandbox, headers: dict[str, str]) -> tuple[int, str | None]:
    status, got, body = get(sandbox, "/health", {"Host": NAME, **headers})
    if status != 200:
        return status, None
    assert got["x-multiregion-region"] == json.loads(body)["region"]
    return status, json.loads(body)["region"]


def test_a_request_to_an_address_is_served_by_the_endpoint_owning_it(sandbox: Sandbox, domains: Domains) -> None:
    for region, regional in domains.regional.items():
        for address in endpoint_addresses(regional):
            # Whatever the client's own location says: the client connected there.
            assert served_region(sandbox, {"X-Multiregion-Connect-To": address,
                                           "X-Multiregion-Client-IP": client_ip("ap-southeast-2")}) == (200, region)
    assert sandbox.extension(ApiDataPlane).endpoint_host(endpoint_addresses(domains.regional["eu-west-1"])[1]) == \
        domains.regional["eu-west-1"]


def test_a_request_to_a_cached_regional_name_is_served_there(sandbox: Sandbox, domains: Domains) -> None:
    for region, regional in domains.regional.items():
        assert served_region(sandbox, {"X-Multiregion-Connect-To": regional}) == (200, region)


def test_an_address_nobody_owns_fails_like_a_connection(sandbox: Sandbox, domains: Domains) -> None:
    status, headers, _ = get(sandbox, "/health", {"Host": NAME, "X-Multiregion-Connect-To": "198.18.0.1"})
    assert status == 502 and "no endpoint at 198.18.0.1" in headers["x-multiregion-error"]
    status, _, _ = get(sandbox, "/health", {"Host": NAME, "X-Multiregion-Connect-To":
                                            "d-nothing000.execute-api.eu-west-1.amazonaws.com"})
    assert status == 403  # every name under execute-api resolves; API Gateway refuses the unknown one


def test_the_global_name_is_served_through_answered_addresses(aws: Any, answers_addresses: Sandbox,
                                                               domains: Domains) -> None:
    alias_records(aws, domains.zone, domains.regional)
    dns = answers_addresses.extension(DnsAnswers)
    for region in domains.regional:
        decision = dns.global_answer(NAME, client_ip(region))
        assert decision is not None and decision.answer in endpoint_addresses(domains.regional[region])
        assert served_region(answers_addresses, {"X-Multiregion-Client-IP": client_ip(region)}) == (200, region)
