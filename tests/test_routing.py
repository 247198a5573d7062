"""The global name end to end: `up` on a fresh sandbox in both routing modes, failover and fail-open, reruns,
interval changes, mode switches and `down`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from multiregion.aws import ClientProvider
from multiregion.config import load_config
from multiregion.drill.traffic import Response
from multiregion.engine import GLOBAL, TAG_REGION, TAG_STACK, Context, Env, Inputs, Reader
from multiregion.lookups.apis import regional_domain
from multiregion.lookups.health_checks import TAG_NAME, TAG_RETIRED, health_status
from multiregion.lookups.routing import EndpointRegions, dns_answer, document_checks, endpoint_regions, find_policy
from multiregion.regions import client_ip
from multiregion.sandbox.addresses import endpoint_addresses
from multiregion.sandbox.server import Sandbox
from multiregion.stages import routing as routing_module
from multiregion.stages.routing import RoutingSnapshot, RoutingStage
from tests.conftest import Cli, refuse, wait_for

REGIONS = ("eu-west-1", "us-east-1")
NAME = "api.multiregion-demo.example.com"
LATENCY = {"routing__mode": "latency-records"}
# Once the whole stack is up, a change of checks or routing mode touches only these two stages.
MINE = ("--only", "health-checks", "--only", "routing")


# ---------------------------------------------------------------------------------------------- helpers


def context(config_path: Path, sandbox: Sandbox) -> Reader:
    return Context(config=load_config(config_path), clients=ClientProvider(sandbox.url), poll_interval=0.05).reader()



def up(cli: Cli, *only: str) -> dict[str, Any]:
    code, doc = cli.json("up", *only)
    assert code == 0, json.dumps(doc.get("errors"), indent=2)
    return doc


def zone_id(aws: Any) -> str:
    zones = aws("route53").list_hosted_zones_by_name(DNSName="multiregion-demo.example.com.")["HostedZones"]
    return str(zones[0]["Id"].rsplit("/", 1)[-1])


def records(aws: Any) -> list[dict[str, Any]]:
    found = aws("route53").list_resource_record_sets(HostedZoneId=zone_id(aws), StartRecordName=NAME)
    return [r for r in found["ResourceRecordSets"] if r["Name"].rstrip(".") == NAME]


def instances(aws: Any) -> list[dict[str, Any]]:
    return aws("route53").list_traffic_policy_instances_by_hosted_zone(
        HostedZoneId=zone_id(aws))["TrafficPolicyInstances"]


def checks_by_region(aws: Any) -> dict[str, list[str]]:
    r53 = aws("route53")
    out: dict[str, list[str]] = {}
    for check in r53.list_health_checks()["HealthChecks"]:
        tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check["Id"])["ResourceTagSet"]["Tags"]
        tag = {t["Key"]: t["Value"] for t in tags}
        if tag.get(TAG_STACK) == "items":
            out.setdefault(tag[TAG_REGION], []).append(check["Id"])
    return out


def assert_one_check_per_region(aws: Any) -> dict[str, str]:
    by_region = checks_by_region(aws)
    assert {r: len(ids) for r, ids in by_region.items()} == {r: 1 for r in REGIONS}, by_region
    return {r: ids[0] for r, ids in by_region.items()}


def regional_names(ctx: Reader) -> dict[str, str]:
    names = {}
    for region in REGIONS:
        domain = regional_domain(ctx, region)
        assert domain is not None
        names[region] = domain[0].rstrip(".")
    return names


def detection_time(ctx: Reader, sandbox: Sandbox) -> float:
    """Route 53 needs `threshold` failed probes `interval` apart, plus one interval for the last to land."""
    hc = ctx.config.health_check
    return sandbox.scaled(hc.interval * (hc.failure_threshold + 1)) + 2.0


def wait_healthy(ctx: Reader, region: str, healthy: bool, timeout: float) -> dict[str, Any]:
    return wait_for(lambda: (s := health_status(ctx, region))["healthy"] is healthy and s, timeout)


def set_health_status(aws: Any, region: str, status: str) -> None:
    """The failover switch: STATUS in the health function's environment, merged (Lambda replaces the map)."""
    lam = aws("lambda", region)
    env = lam.get_function_configuration(FunctionName="items-health").get("Environment", {}).get("Variables", {})
    lam.update_function_configuration(FunctionName="items-health", Environment={"Variables": {**env, "STATUS": status}})
    lam.get_waiter("function_updated_v2").wait(FunctionName="items-health",
                                               WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})


def get_through_global_name(sandbox: Sandbox, client_region: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """GET /health through the global name, as a client in `client_region`: status, headers, body."""
    request = urllib.request.Request(f"{sandbox.url}/health", headers={
        "Host": NAME, "X-Multiregion-Client-IP": client_ip(client_region)})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read() or b"{}")


def answers_of(name: str) -> set[str]:
    """What Route 53 may answer for the regional domain `name`: the name (a policy record's CNAME), or its
    addresses (an alias A record, answered as Route 53 does)."""
    return {name, *endpoint_addresses(name)}


def assert_each_client_served_by_its_region(ctx: Reader, sandbox: Sandbox) -> None:
    names = regional_names(ctx)
    for region in REGIONS:
        answer, served_by = wait_for(lambda r=region: (a := dns_answer(ctx, r))[1] == r and a, timeout=5)
        assert answer in answers_of(names[region]) and served_by == region
        status, headers, body = get_through_global_name(sandbox, region)
        assert status == 200, (headers, body)
        assert headers["x-multiregion-answer"].rstrip(".") in answers_of(names[region]) and body["region"] == region


# ------------------------------------------------------------------------------------------ traffic policy


def test_traffic_policy_end_to_end(cli: Cli, write_config: Callable[..., Path], aws: Any, sandbox: Sandbox,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # `plan` on a fresh account shows what the policy record costs, before anything exists.
    code, plan = cli.json("plan")
    assert code == 0, plan["errors"]
    routing = [c for c in plan["changes"] if c["stage"] == "routing"]
    assert [(c["action"], c["resource"], c.get("cost")) for c in routing] == [
        ("create", "traffic policy items-latency", None),
        ("create", f"policy record {NAME}", "$50.00/month")]
    # The policy record, two HTTPS health checks at 10 s ($2.50 each) and the new zone ($0.50).
    assert plan["monthly_cost_added_usd"] == 55.5
    assert aws("route53").list_traffic_policies()["TrafficPolicySummaries"] == []

    # A crash between creating the policy and its policy record: the next `up` finishes the job.
    with monkeypatch.context() as patch:
        refuse(patch, "route53", "CreateTrafficPolicyInstance", "ServiceUnavailable", "connection lost")
        code, doc = cli.json("up")
    assert code == 1 and doc["errors"][0]["stage"] == "routing"
    assert len(aws("route53").list_traffic_policies()["TrafficPolicySummaries"]) == 1 and instances(aws) == []
    doc = up(cli)
    assert [(c["action"], c["resource"]) for c in doc["changes"]] == [("create", f"policy record {NAME}")]

    ctx = context(cli.config, sandbox)
    checks = assert_one_check_per_region(aws)
    for region in REGIONS:
        wait_healthy(ctx, region, True, timeout=5)
    names = regional_names(ctx)
    policy = find_policy(ctx)
    assert policy is not None and policy["Type"] == "CNAME" and policy["LatestVersion"] == 1
    document = json.loads(aws("route53").get_traffic_policy(Id=policy["Id"], Version=1)["TrafficPolicy"]["Document"])
    assert document == {
        "AWSPolicyFormatVersion": "2015-10-01", "RecordType": "CNAME", "StartRule": "by-latency",
        "Endpoints": {f"ep-{r}": {"Type": "value", "Value": names[r]} for r in REGIONS},
        "Rules": {"by-latency": {"RuleType": "latency", "Regions": [
            {"Region": r, "EndpointReference": f"ep-{r}", "EvaluateTargetHealth": True, "HealthCheck": checks[r]}
            for r in REGIONS]}}}
    [instance] = instances(aws)
    assert instance["Name"].rstrip(".") == NAME and instance["State"] == "Applied" and instance["TTL"] == 60
    assert instance["TrafficPolicyVersion"] == 1
    assert_each_client_served_by_its_region(ctx, sandbox)
    routing_status = doc["outputs"]["global"]["routing"]
    assert routing_status["answers"] == {r: {"answer": names[r], "served_by": r} for r in REGIONS}
    health = doc["outputs"]["regions"]["eu-west-1"]["health-checks"]
    assert health["check_id"] == checks["eu-west-1"] and health["healthy"] is True and health["since"]

    # Converged: nothing planned, and the next `up` makes no write call.
    code, plan = cli.json("plan")
    assert code == 0 and plan["changes"] == []
    again = up(cli)
    assert again["changes"] == [] and again["api_calls"]["writes"] == {}

    # A new interval: new checks, a new policy version on them, the old checks deleted.
    cli = Cli(write_config(health_check__interval=30))
    doc = up(cli, *MINE)
    assert {(c["stage"], c["action"]) for c in doc["changes"]} == {
        ("health-checks", "replace"), ("routing", "update"), ("routing", "delete")}
    new = assert_one_check_per_region(aws)
    assert set(new.values()).isdisjoint(checks.values())
    policy = find_policy(ctx)
    assert policy is not None and policy["LatestVersion"] == 2
    [instance] = instances(aws)
    assert instance["TrafficPolicyVersion"] == 2
    in_use = aws("route53").get_traffic_policy(Id=policy["Id"], Version=2)
    assert document_checks(json.loads(in_use["TrafficPolicy"]["Document"])) == set(new.values())
    for check_id in new.values():
        config = aws("route53").get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"]
        assert config["RequestInterval"] == 30
    assert cli.json("plan", *MINE)[1]["changes"] == []
    assert_each_client_served_by_its_region(ctx, sandbox)

    # Versions pile up (1,000 at most): past the threshold, the unused old ones go.
    monkeypatch.setattr(routing_module, "PRUNE_AT", 3)
    monkeypatch.setattr(routing_module, "KEEP_RECENT", 1)
    for _ in range(3):
        aws("route53").create_traffic_policy_version(Id=policy["Id"], Document=in_use["TrafficPolicy"]["Document"])
    doc = up(cli, *MINE)
    assert [(c["action"], c["reason"].split(" (")[0]) for c in doc["changes"]] == [
        ("update", "policy version 2 -> 5"), ("delete", "unused old versions")]
    versions = aws("route53").list_traffic_policy_versions(Id=policy["Id"])["TrafficPolicies"]
    assert [v["Version"] for v in versions] == [5] and instances(aws)[0]["TrafficPolicyVersion"] == 5
    assert cli.json("plan", *MINE)[1]["changes"] == []


def test_failing_region_is_routed_around_and_all_failing_fails_open(cli: Cli, aws: Any, sandbox: Sandbox) -> None:
    up(cli)
    ctx = context(cli.config, sandbox)
    names = regional_names(ctx)
    detect = detection_time(ctx, sandbox)
    for region in REGIONS:
        wait_healthy(ctx, region, True, timeout=5)

    set_health_status(aws, "eu-west-1", "404")
    wait_healthy(ctx, "eu-west-1", False, timeout=detect)
    assert health_status(ctx, "us-east-1")["healthy"] is True
    assert wait_for(lambda: dns_answer(ctx, "eu-west-1")[1] == "us-east-1", timeout=2)
    assert dns_answer(ctx, "eu-west-1")[0] == names["us-east-1"]
    assert dns_answer(ctx, "us-east-1")[1] == "us-east-1"
    status, headers, body = get_through_global_name(sandbox, "eu-west-1")
    assert status == 200 and body["region"] == "us-east-1"
    assert headers["x-multiregion-answer"].rstrip(".") == names["us-east-1"]

    set_health_status(aws, "us-east-1", "404")
    wait_healthy(ctx, "us-east-1", False, timeout=detect)
    # Every region failing: Route 53 answers as if all were healthy, so each client gets its nearest.
    for region in REGIONS:
        assert wait_for(lambda r=region: dns_answer(ctx, r)[1] == r, timeout=2)

    set_health_status(aws, "eu-west-1", "200")
    wait_healthy(ctx, "eu-west-1", True, timeout=detect)
    assert wait_for(lambda: dns_answer(ctx, "us-east-1")[1] == "eu-west-1", timeout=2)


# --------------------------------------------------------------------------------------- latency records


def test_latency_records_route_each_client_to_its_region_and_fail_over(
        write_config: Callable[..., Path], aws: Any, sandbox: Sandbox) -> None:
    cli = Cli(write_config(**LATENCY))
    doc = up(cli)
    ctx = context(cli.config, sandbox)
    checks = assert_one_check_per_region(aws)
    for region in REGIONS:
        wait_healthy(ctx, region, True, timeout=5)
    names = regional_names(ctx)
    found = {r["SetIdentifier"]: r for r in records(aws)}
    assert sorted(found) == sorted(REGIONS)
    for region in REGIONS:
        record = found[region]
        assert record["Type"] == "A" and record["Region"] == region and record["HealthCheckId"] == checks[region]
        alias = record["AliasTarget"]
        assert alias["DNSName"].rstrip(".") == names[region] and alias["EvaluateTargetHealth"] is True
        assert alias["HostedZoneId"] == regional_domain(ctx, region)[1]  # type: ignore[index]
    assert not [c for c in doc["changes"] if c.get("cost") == "$50.00/month"]
    assert instances(aws) == [] and find_policy(ctx) is None
    assert_each_client_served_by_its_region(ctx, sandbox)
    code, again = cli.json("up")
    assert code == 0 and again["changes"] == [] and again["api_calls"]["writes"] == {}

    set_health_status(aws, "eu-west-1", "404")
    wait_healthy(ctx, "eu-west-1", False, timeout=detection_time(ctx, sandbox))
    assert wait_for(lambda: dns_answer(ctx, "eu-west-1")[1] == "us-east-1", timeout=2)


def test_mode_switches_converge_and_down_then_up_works_again(
        write_config: Callable[..., Path], aws: Any, sandbox: Sandbox) -> None:
    # write_config always writes the same file: each Cli is made right before it is used.
    policy_cli = Cli(write_config())
    up(policy_cli)
    ctx = context(policy_cli.config, sandbox)
    references = {c["CallerReference"] for c in aws("route53").list_health_checks()["HealthChecks"]}

    records_cli = Cli(write_config(**LATENCY))
    doc = up(records_cli, *MINE)
    switched = [(c["action"], c["resource"]) for c in doc["changes"] if c["stage"] == "routing"]
    assert switched[0] == ("delete", f"policy record {NAME}")  # before the A records can take the name
    assert switched[-1] == ("delete", "traffic policy items-latency")
    assert instances(aws) == [] and find_policy(ctx) is None
    assert sorted(r["SetIdentifier"] for r in records(aws)) == sorted(REGIONS)
    assert records_cli.json("plan", *MINE)[1]["changes"] == []

    policy_cli = Cli(write_config())
    doc = up(policy_cli, *MINE)
    switched = [(c["action"], c["resource"]) for c in doc["changes"] if c["stage"] == "routing"]
    assert switched == [("create", "traffic policy items-latency"), ("delete", f"latency records {NAME}"),
                        ("create", f"policy record {NAME}")]
    assert [r["Type"] for r in records(aws)] == ["CNAME"] and len(instances(aws)) == 1
    assert policy_cli.json("plan", *MINE)[1]["changes"] == []
    assert_each_client_served_by_its_region(ctx, sandbox)

    # `down` removes the policy record, the policy and the checks.
    code, doc = policy_cli.json("down", "--yes", "--delete-data")
    assert code == 0, doc["errors"]
    assert aws("route53").list_health_checks()["HealthChecks"] == []
    assert aws("route53").list_traffic_policies()["TrafficPolicySummaries"] == []
    assert aws("route53").list_traffic_policy_instances()["TrafficPolicyInstances"] == []

    # `up` builds it all again; the new checks need new CallerReferences (a deleted check's reference
    # cannot be used again).
    records_cli = Cli(write_config(**LATENCY))
    up(records_cli)
    checks = aws("route53").list_health_checks()["HealthChecks"]
    assert references.isdisjoint(c["CallerReference"] for c in checks)
    assert_one_check_per_region(aws)
    assert_each_client_served_by_its_region(context(records_cli.config, sandbox), sandbox)

    code, doc = records_cli.json("down", "--yes", "--delete-data")
    assert code == 0, doc["errors"]
    assert aws("route53").list_health_checks()["HealthChecks"] == []
    # The zone was the stack's and is deleted only once it holds nothing else: the latency records are gone.
    assert aws("route53").list_hosted_zones_by_name(DNSName="multiregion-demo.example.com.")["HostedZones"] == []


def test_retired_check_still_referenced_elsewhere_is_left_for_the_next_run(write_config: Callable[..., Path]) -> None:
    # A planner test on a hand-built snapshot: no AWS. Two retired checks; another record of the zone (not
    # the stack's global name) still uses one of them, so only the other is deleted.
    env = Env(load_config(write_config()))
    retired = tuple({"Id": i, "Tags": {TAG_STACK: "items", TAG_RETIRED: "true", TAG_NAME: "items-eu-west-1"}}
                    for i in ("referenced", "free"))
    snapshot = RoutingSnapshot("Z1", retired=retired, external_refs=frozenset({"referenced"}))
    outputs = {("hosted-zone", GLOBAL): {"zone_id": "Z1"}}
    for region in REGIONS:
        outputs[("domains", region)] = {"regional_domain_name": f"d-{region}.example", "regional_zone_id": "ZR"}
        outputs[("health-checks", region)] = {"check_id": f"check-{region}"}
    plan = RoutingStage().diff(env, GLOBAL, snapshot, Inputs(outputs))
    deletes = [c for c in plan.changes if c.resource.startswith("health check")]
    assert [c.resource for c in deletes] == ["health check free"]
    assert [(op.method, op.params) for op in deletes[0].operations] == [
        ("delete_health_check", {"HealthCheckId": "free"})]
    assert len(plan.warnings) == 1 and "referenced" in plan.warnings[0] and "next run" in plan.warnings[0]


def test_a_region_dropped_from_the_config_loses_its_check_with_prune_and_down(
        write_config: Callable[..., Path], aws: Any, sandbox: Sandbox) -> None:
    three = Cli(write_config(regions=[*REGIONS, "eu-central-1"]))
    up(three)
    assert set(checks_by_region(aws)) == {*REGIONS, "eu-central-1"}
    two = Cli(write_config(regions=list(REGIONS)))
    # Without --prune the dropped region's check is kept (and said so); routing already leaves it out.
    up(two, *MINE)
    assert set(checks_by_region(aws)) == {*REGIONS, "eu-central-1"}
    policy = find_policy(context(two.config, sandbox))
    latest = aws("route53").get_traffic_policy(Id=policy["Id"], Version=policy["LatestVersion"])["TrafficPolicy"]
    assert document_checks(json.loads(latest["Document"])) == set(assert_checks(aws, REGIONS))
    # With --prune it is retired, routing re-points, then it is deleted: one check per configured region.
    code, doc = two.json("up", "--prune", *MINE)
    assert code == 0, doc
    assert ("eu-central-1", "update") in {(c["region"], c["action"]) for c in doc["changes"]}
    assert_one_check_per_region(aws)
    assert two.json("plan", *MINE)[1]["changes"] == []
    # down also reaches checks of regions dropped since they were created.
    up(three, *MINE)
    code, doc = two.json("down", "--yes", "--delete-data")
    assert code == 0, doc
    assert checks_by_region(aws) == {}


def assert_checks(aws: Any, regions: tuple[str, ...]) -> list[str]:
    by_region = checks_by_region(aws)
    return [by_region[r][0] for r in regions]


# ------------------------------------------------------------------------------------ answers by address


def test_status_names_the_region_behind_each_alias_address(write_config: Callable[..., Path], aws: Any,
                                                           sandbox: Sandbox) -> None:
    """Route 53 answers an alias A record with addresses (the sandbox too, by default): `status` asks the
    endpoint at the address which region it is, and asks again after a miss."""
    cli = Cli(write_config(**LATENCY))
    up(cli)
    ctx = context(cli.config, sandbox)
    names = regional_names(ctx)
    code, status = cli.json("status")
    assert code == 0
    for region in REGIONS:
        seen = status["global"]["routing"]["answers"][region]
        assert seen["answer"] in endpoint_addresses(names[region]) and seen["served_by"] == region

    # The eu-west-1 endpoint down (its health route answers 500, without a region): a miss, not remembered.
    address = endpoint_addresses(names["eu-west-1"])[0]
    identify = endpoint_regions(ctx)
    lam = aws("lambda", "eu-west-1")
    lam.put_function_concurrency(FunctionName="items-health", ReservedConcurrentExecutions=0)
    assert identify(address) is None
    lam.delete_function_concurrency(FunctionName="items-health")
    assert identify(address) == "eu-west-1"


def response(status: int, body: Any) -> Response:
    return Response(status, {}, body, 1.0)


def test_endpoint_regions_keep_hits_and_ask_again_after_a_miss() -> None:
    answers = [response(0, "ConnectionRefusedError"), response(500, {"message": "Internal server error"}),
               response(200, {"region": "ap-south-1"}), response(200, {"region": "eu-west-1", "status": 200})]
    asked: list[str] = []

    def send(address: str) -> Response:
        asked.append(address)
        return answers.pop(0)

    identify = EndpointRegions(REGIONS, send)
    assert [identify("198.18.0.7") for _ in range(3)] == [None, None, None]  # no answer, a 5xx, not our region
    assert identify("198.18.0.7") == "eu-west-1"
    assert identify("198.18.0.7") == "eu-west-1" and len(asked) == 4  # the hit is kept: not asked again


def test_endpoint_regions_fall_back_only_after_a_miss() -> None:
    fallback: list[str] = []

    def lookup(address: str) -> str | None:
        fallback.append(address)
        return "us-east-1"

    identify = EndpointRegions(REGIONS, lambda a: response(200, {"region": "eu-west-1"}), lookup)
    assert identify("198.18.0.8") == "eu-west-1" and fallback == []
    identify = EndpointRegions(REGIONS, lambda a: response(502, "Bad Gateway"), lookup)
    assert identify("198.18.0.9") == "us-east-1" and fallback == ["198.18.0.9"]


def test_dns_answer_asks_as_a_resolver_in_the_client_s_region() -> None:
    """TestDNSAnswer uses the client subnet only "if the resolver that you specified for resolverip supports
    EDNS0", and without a ResolverIP answers as a us-east-1 resolver: both are sent, in the client's region."""
    import boto3
    from botocore.stub import Stubber

    from multiregion.config import parse_config
    from multiregion.regions import region_of_ip
    from tests.conftest import demo_config

    route53 = boto3.client("route53", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    config = parse_config({**demo_config(), "routing": {"mode": "traffic-policy", "ttl": 60}})
    reader = Reader(Env(config), lambda service, region: route53)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []
    route53.meta.events.register("provide-client-params.route-53.TestDNSAnswer",
                                 lambda params, **_: sent.append(dict(params)))
    with Stubber(route53) as stub:
        stub.add_response("test_dns_answer", {"Nameserver": "ns", "RecordName": NAME, "RecordType": "CNAME",
                                              "RecordData": [], "ResponseCode": "NOERROR", "Protocol": "UDP"})
        assert dns_answer(reader, "ap-south-1", zone_id="/hostedzone/Z1") == (None, None)
    [params] = sent
    assert params["HostedZoneId"] == "Z1" and params["RecordType"] == "CNAME"
    assert region_of_ip(params["EDNS0ClientSubnetIP"]) == "ap-south-1" == region_of_ip(params["ResolverIP"])
    assert params["ResolverIP"] != params["EDNS0ClientSubnetIP"] and params["EDNS0ClientSubnetMask"] == "24"
