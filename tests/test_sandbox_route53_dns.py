"""TestDNSAnswer and the global name: latency routing by client subnet, health, fail-open, and HTTP to the
global name served by the region the answer points to."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from multiregion.regions import client_ip
from multiregion.sandbox.addresses import endpoint_addresses
from multiregion.sandbox.app import ACCOUNT_ID
from multiregion.sandbox.route53_dns import DnsAnswers, PolicyEvaluator, client_region, nearest
from multiregion.sandbox.server import Sandbox
from tests.test_sandbox_lambda import create_role, deploy
from tests.test_sandbox_route53 import (
    LocalTarget,
    create_check,
    fast,  # noqa: F401 (a fixture)
    local_check,
    second_target,  # noqa: F401 (a fixture)
    target,  # noqa: F401 (a fixture)
    wait_health,
)
from tests.test_sandbox_route53_policies import latency_document

NAME = "api.example.com"
HOSTS = {"eu-west-1": "d-eu.execute-api.eu-west-1.amazonaws.com",
         "us-east-1": "d-us.execute-api.us-east-1.amazonaws.com"}


@dataclass
class Routed:
    zone: str
    checks: dict[str, str]
    targets: dict[str, LocalTarget]


def new_zone(aws: Any) -> str:
    return aws("route53").create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"]


def policy_record(aws: Any, zone: str, endpoints: dict[str, str], checks: dict[str, str]) -> None:
    r53 = aws("route53")
    policy = r53.create_traffic_policy(Name="items", Document=json.dumps(latency_document(endpoints, checks)))
    r53.create_traffic_policy_instance(HostedZoneId=zone, Name=NAME, TTL=60, TrafficPolicyVersion=1,
                                       TrafficPolicyId=policy["TrafficPolicy"]["Id"])


def latency_records(aws: Any, zone: str, endpoints: dict[str, str], checks: dict[str, str]) -> None:
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": NAME, "Type": "CNAME", "SetIdentifier": region, "Region": region, "TTL": 60,
        "ResourceRecords": [{"Value": host}], **({"HealthCheckId": checks[region]} if region in checks else {})}}
        for region, host in endpoints.items()]
    aws("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


@pytest.fixture(params=["traffic-policy", "latency-records"])
def routed(request: pytest.FixtureRequest, aws: Any, fast: Sandbox, target: LocalTarget,  # noqa: F811
           second_target: LocalTarget) -> Routed:  # noqa: F811
    targets = {"eu-west-1": target, "us-east-1": second_target}
    checks = {r: create_check(aws, r, local_check(t.port)) for r, t in targets.items()}
    zone = new_zone(aws)
    make = policy_record if request.param == "traffic-policy" else latency_records
    make(aws, zone, HOSTS, checks)
    return Routed(zone, checks, targets)


def ask(aws: Any, zone: str, region: str | None) -> list[str]:
    extra = {"EDNS0ClientSubnetIP": client_ip(region)} if region else {}
    answer = aws("route53").test_dns_answer(HostedZoneId=zone, RecordName=NAME, RecordType="CNAME", **extra)
    assert (answer["ResponseCode"], answer["Protocol"], answer["RecordType"]) == ("NOERROR", "UDP", "CNAME")
    assert answer["Nameserver"].startswith("ns-")
    return list(answer["RecordData"])


def test_latency_routing_follows_client_and_health(routed: Routed, aws: Any, sandbox: Sandbox) -> None:
    dns = sandbox.extension(DnsAnswers)
    eu, us = HOSTS["eu-west-1"], HOSTS["us-east-1"]
    assert ask(aws, routed.zone, "eu-west-1") == [eu]
    assert ask(aws, routed.zone, "us-east-1") == [us]
    assert ask(aws, routed.zone, "eu-central-1") == [eu]  # Frankfurt is nearer Dublin than Virginia
    assert ask(aws, routed.zone, None) == [us]  # no client subnet: a us-east-1 resolver
    assert dns.answer(routed.zone, NAME, "CNAME", "eu-west-1") == [eu]
    assert dns.answer(routed.zone, NAME, "CNAME", None) == [us]

    routed.targets["eu-west-1"].status = 404
    wait_health(sandbox, routed.checks["eu-west-1"], False)
    assert ask(aws, routed.zone, "eu-west-1") == [us]

    routed.targets["us-east-1"].status = 404
    wait_health(sandbox, routed.checks["us-east-1"], False)
    # Every candidate is down: Route 53 answers as if all were healthy, so the nearest again.
    assert ask(aws, routed.zone, "eu-west-1") == [eu]
    assert ask(aws, routed.zone, "us-east-1") == [us]

    routed.targets["eu-west-1"].status = 200
    wait_health(sandbox, routed.checks["eu-west-1"], True)
    assert ask(aws, routed.zone, "us-east-1") == [eu]


def test_the_subnet_mask_and_the_resolver_locate_the_client(routed: Routed, aws: Any) -> None:
    r53 = aws("route53")
    eu_client = client_ip("eu-west-1")
    answer = r53.test_dns_answer(HostedZoneId=routed.zone, RecordName=NAME, RecordType="CNAME",
                                 EDNS0ClientSubnetIP=eu_client, EDNS0ClientSubnetMask="8")
    assert answer["RecordData"] == [HOSTS["us-east-1"]]  # a /8 of the eu address is in no known subnet
    answer = r53.test_dns_answer(HostedZoneId=routed.zone, RecordName=NAME, RecordType="CNAME", ResolverIP=eu_client)
    assert answer["RecordData"] == [HOSTS["eu-west-1"]]


def test_plain_records_and_missing_names(aws: Any) -> None:
    r53 = aws("route53")
    zone = new_zone(aws)
    addresses = [{"Value": "192.0.2.1"}, {"Value": "192.0.2.2"}]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.example.com", "Type": "A", "TTL": 60,
                                                   "ResourceRecords": addresses}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "alias.example.com", "Type": "CNAME", "TTL": 60,
                                                   "ResourceRecords": [{"Value": "www.example.com"}]}}]})
    answer = r53.test_dns_answer(HostedZoneId=zone, RecordName="www.example.com", RecordType="A")
    assert (answer["RecordData"], answer["ResponseCode"]) == (["192.0.2.1", "192.0.2.2"], "NOERROR")
    answer = r53.test_dns_answer(HostedZoneId=zone, RecordName="alias.example.com", RecordType="A")
    assert answer["RecordData"] == ["www.example.com"]  # the name's CNAME answers other types
    answer = r53.test_dns_answer(HostedZoneId=zone, RecordName="nothing.example.com", RecordType="A")
    assert (answer["RecordData"], answer["ResponseCode"]) == ([], "NXDOMAIN")
    with pytest.raises(Exception) as err:
        r53.test_dns_answer(HostedZoneId="ZNOSUCHZONE", RecordName="www.example.com", RecordType="A")
    assert err.value.response["Error"]["Code"] == "NoSuchHostedZone"  # type: ignore[attr-defined]


def test_alias_latency_records_evaluate_target_health(aws: Any, fast: Sandbox,  # noqa: F811
                                                     target: LocalTarget) -> None:  # noqa: F811
    sandbox = fast
    r53 = aws("route53")
    zone = new_zone(aws)
    check = create_check(aws, "target", local_check(target.port))

    def record(name: str, kind: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {"Action": "CREATE", "ResourceRecordSet": {"Name": name, "Type": kind, **extra}}

    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        # eu-west-1 points at a name in this zone whose own record is health checked.
        record("eu.example.com", "A", {"TTL": 60, "HealthCheckId": check, "ResourceRecords": [{"Value": "192.0.2.1"}]}),
        record(NAME, "A", {"SetIdentifier": "eu", "Region": "eu-west-1", "AliasTarget": {
            "HostedZoneId": zone.split("/")[-1], "DNSName": "eu.example.com", "EvaluateTargetHealth": True}}),
        record(NAME, "A", {"SetIdentifier": "us", "Region": "us-east-1", "AliasTarget": {
            "HostedZoneId": "Z1UJRXOUMOOFQ8", "DNSName": HOSTS["us-east-1"], "EvaluateTargetHealth": True}})]})
    dns = sandbox.extension(DnsAnswers)
    # Alias answers are addresses, as Route 53 gives them: the zone's own name's record, or the endpoint's.
    assert dns.answer(zone, NAME, "A", "eu-west-1") == ["192.0.2.1"]
    target.status = 500
    wait_health(sandbox, check, False)
    assert dns.answer(zone, NAME, "A", "eu-west-1") == endpoint_addresses(HOSTS["us-east-1"])


# ---------------------------------------------------------------------------------------------- pure rules


def test_client_region_and_nearest() -> None:
    assert client_region(client_ip("ap-northeast-1")) == "ap-northeast-1"
    assert client_region("192.0.2.1") is None and client_region(None) is None
    options = [("eu-west-1", "eu", True), ("us-east-1", "us", True), ("ap-southeast-1", "ap", False)]
    assert nearest("eu-west-2", options) == ("eu", True)
    assert nearest("ap-southeast-1", options) == ("eu", True)  # the nearest healthy one
    assert nearest("ap-southeast-1", [(r, v, False) for r, v, _ in options]) == ("ap", False)  # fail open


def test_failover_rule() -> None:
    doc = {"AWSPolicyFormatVersion": "2015-10-01", "RecordType": "CNAME", "StartRule": "fo",
           "Endpoints": {"main": {"Type": "value", "Value": "main.example.org"},
                         "spare": {"Type": "value", "Value": "spare.example.org"}},
           "Rules": {"fo": {"RuleType": "failover",
                            "Primary": {"EndpointReference": "main", "HealthCheck": "hc-main"},
                            "Secondary": {"EndpointReference": "spare", "HealthCheck": "hc-spare"}}}}

    def answer(down: set[str]) -> list[str]:
        return PolicyEvaluator(doc, "us-east-1", lambda check: check not in down).start().values

    assert answer(set()) == ["main.example.org"]
    assert answer({"hc-main"}) == ["spare.example.org"]
    assert answer({"hc-main", "hc-spare"}) == ["main.example.org"]  # both down: the primary (fail open)


def test_nested_rules_pass_health_up() -> None:
    doc = {"AWSPolicyFormatVersion": "2015-10-01", "RecordType": "CNAME", "StartRule": "near",
           "Endpoints": {e: {"Type": "value", "Value": f"{e}.example.org"} for e in ("eu", "eu-spare", "us")},
           "Rules": {"near": {"RuleType": "latency", "Regions": [
               {"Region": "eu-west-1", "RuleReference": "eu-pair", "EvaluateTargetHealth": True},
               {"Region": "us-east-1", "EndpointReference": "us", "HealthCheck": "hc-us"}]},
               "eu-pair": {"RuleType": "failover", "Primary": {"EndpointReference": "eu", "HealthCheck": "hc-eu"},
                           "Secondary": {"EndpointReference": "eu-spare", "HealthCheck": "hc-eu-spare"}}}}

    def answer(down: set[str]) -> list[str]:
        return PolicyEvaluator(doc, "eu-west-1", lambda check: check not in down).start().values

    assert answer(set()) == ["eu.example.org"]
    assert answer({"hc-eu"}) == ["eu-spare.example.org"]
    assert answer({"hc-eu", "hc-eu-spare"}) == ["us.example.org"]


# ---------------------------------------------------------------------------------------------- the global name


def get(sandbox: Sandbox, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(sandbox.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_the_global_name_without_an_api_behind_it(routed: Routed, sandbox: Sandbox) -> None:
    dns = sandbox.extension(DnsAnswers)
    decision = dns.global_answer(NAME, client_ip("eu-west-1"))
    assert decision is not None and (decision.client_region, decision.answer) == ("eu-west-1", HOSTS["eu-west-1"])
    assert dns.global_answer("other.example.com", client_ip("eu-west-1")) is None
    status, headers, body = get(sandbox, "/prod/health", {"Host": NAME, "X-Forwarded-For": client_ip("us-east-1")})
    assert status == 502
    assert headers["x-multiregion-answer"] == HOSTS["us-east-1"]
    assert "nothing in the sandbox answers" in json.loads(body)["message"]


def test_the_global_name_without_a_data_plane(routed: Routed, sandbox: Sandbox,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from multiregion.sandbox.apigateway import ApiDataPlane

    found = sandbox.extension

    def without_data_plane(cls: type) -> Any:
        if cls is ApiDataPlane:
            raise LookupError("no ApiDataPlane extension in this sandbox")
        return found(cls)

    monkeypatch.setattr(sandbox, "extension", without_data_plane)
    status, headers, body = get(sandbox, "/prod/health",
                                {"Host": NAME, "X-Multiregion-Client-IP": client_ip("eu-west-1")})
    assert status == 502 and headers["x-multiregion-answer"] == HOSTS["eu-west-1"]
    assert "no API data plane" in json.loads(body)["message"]


@pytest.fixture
def region_apis(aws: Any) -> Iterator[dict[str, str]]:
    """A REST API per region whose GET /health says which region answered: {region: execute-api host}."""
    source = ("import os, json\n"
              "def handler(event, context):\n"
              "    return {'statusCode': 200, 'body': json.dumps({'region': os.environ['AWS_REGION']})}\n")
    role = create_role(aws)
    hosts = {}
    for region in ("eu-west-1", "us-east-1"):
        arn = deploy(aws, role, "health", source, region)
        apigw = aws("apigateway", region)
        api = apigw.create_rest_api(name="items", endpointConfiguration={"types": ["REGIONAL"]})["id"]
        root = apigw.get_resources(restApiId=api)["items"][0]["id"]
        health_id = apigw.create_resource(restApiId=api, parentId=root, pathPart="health")["id"]
        apigw.put_method(restApiId=api, resourceId=health_id, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=api, resourceId=health_id, httpMethod="GET", type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations")
        aws("lambda", region).add_permission(
            FunctionName="health", StatementId="apigw", Principal="apigateway.amazonaws.com",
            Action="lambda:InvokeFunction", SourceArn=f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api}/*/GET/health")
        apigw.create_deployment(restApiId=api, stageName="prod")
        hosts[region] = f"{api}.execute-api.{region}.amazonaws.com"
    yield hosts


def test_the_global_name_is_served_by_the_clients_region(aws: Any, sandbox: Sandbox,
                                                         region_apis: dict[str, str]) -> None:
    zone = new_zone(aws)
    policy_record(aws, zone, region_apis, {})
    for region in ("eu-west-1", "us-east-1"):
        client = {"Host": NAME, "X-Multiregion-Client-IP": client_ip(region)}
        status, headers, body = get(sandbox, "/prod/health", client)
        assert status == 200, body
        assert json.loads(body) == {"region": region}
        assert headers["x-multiregion-region"] == region
        assert headers["x-multiregion-answer"] == region_apis[region]


def test_sandbox_regions_lists_locations_and_client_subnets() -> None:
    from click.testing import CliRunner

    from multiregion.cli import main
    from multiregion.regions import REGIONS, region_of_ip

    result = CliRunner().invoke(main, ["sandbox", "regions", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["regions"]
    assert [r["region"] for r in rows] == list(REGIONS)
    for row in rows:
        assert region_of_ip(row["sample_client_ip"]) == row["region"]
        assert row["client_subnet"] == REGIONS[row["region"]].client_subnet
        assert set(row["location"]) == {"latitude", "longitude"}
    table = CliRunner().invoke(main, ["sandbox", "regions"])
    assert table.exit_code == 0 and "ap-southeast-2" in table.stdout and "13.236.0.0/14" in table.stdout
