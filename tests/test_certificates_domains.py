"""The hosted zone, the certificates and the regional custom domains, end to end on the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from multiregion.aws import ClientProvider
from multiregion.config import DomainConfig, parse_config
from multiregion.engine import GLOBAL, TAG_STACK, Context, Reader, StepError
from multiregion.executor import BuiltinContext
from multiregion.lookups.apis import regional_domain
from multiregion.lookups.zones import find_hosted_zone
from multiregion.regions import REGIONS
from multiregion.sandbox.server import Sandbox
from multiregion.stages import zone as zone_module
from multiregion.stages.certificates import idempotency_token
from tests.conftest import Cli, Crasher, PacedClock, SimulatedCrash, demo_config, is_call, refuse, wait_for

REGIONS_ = ("eu-west-1", "us-east-1")
DOMAIN = "api.multiregion-demo.example.com"
ZONE = "multiregion-demo.example.com"
# `--only domains` brings in what domains depend on: the zone, the certificates, the API and its functions.
MINE = ("--only", "domains")


# ------------------------------------------------------------------------------------------------ helpers


class ApiIds(dict[str, str]):
    """The stack's REST API ids per region, read when asked (the tests' `up` creates them)."""

    def __init__(self, aws: Any):
        super().__init__()
        self.aws = aws

    def __getitem__(self, region: str) -> str:
        return api_ids(self.aws)[region]


@pytest.fixture
def rest_apis(aws: Any) -> ApiIds:
    return ApiIds(aws)


def context(sandbox: Sandbox, hosted_zone: str | None = None) -> Context:
    """A context on the sandbox with the demo config, optionally naming the zone by an id.

    The id is set past config validation: the sandbox's zone ids do not all start with Z as AWS's do."""
    data = demo_config()
    data["endpoint"] = sandbox.url
    config = parse_config(data)
    if hosted_zone is not None:
        config = replace(config, domain=DomainConfig(name=DOMAIN, hosted_zone=hosted_zone))
    return Context(config=config, clients=ClientProvider(sandbox.url), poll_interval=0.02)


def reader(sandbox: Sandbox, hosted_zone: str | None = None) -> Reader:
    return context(sandbox, hosted_zone).reader()


def zone_id_of(sandbox: Sandbox, hosted_zone: str) -> str:
    zone = find_hosted_zone(reader(sandbox, hosted_zone))
    assert zone is not None
    return str(zone["Id"]).rsplit("/", 1)[-1]


def certs(aws: Any, region: str, statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    kwargs = {"CertificateStatuses": list(statuses)} if statuses else {}
    return [c for c in aws("acm", region).list_certificates(**kwargs)["CertificateSummaryList"]
            if c["DomainName"] == DOMAIN]


def zones(aws: Any) -> list[dict[str, Any]]:
    return [z for z in aws("route53").list_hosted_zones()["HostedZones"] if z["Name"] == ZONE + "."]


def validation_records(aws: Any, zone_id: str) -> list[dict[str, Any]]:
    records = aws("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [r for r in records if r["Type"] == "CNAME" and r["Name"].endswith(f".{DOMAIN}.")
            and r["ResourceRecords"][0]["Value"].endswith(".acm-validations.aws.")]


def domain_of(aws: Any, region: str) -> dict[str, Any] | None:
    names = aws("apigateway", region).get_domain_names()["items"]
    found = [d for d in names if d["domainName"] == DOMAIN]
    assert len(found) <= 1
    return found[0] if found else None


def assert_converged(aws: Any, apis: dict[str, str]) -> None:
    for region in REGIONS_:
        issued = certs(aws, region)
        assert [c["Status"] for c in issued] == ["ISSUED"], region
        arn = issued[0]["CertificateArn"]
        tags = aws("acm", region).list_tags_for_certificate(CertificateArn=arn)["Tags"]
        assert {"Key": TAG_STACK, "Value": "items"} in tags
        domain = domain_of(aws, region)
        assert domain is not None
        assert domain["regionalCertificateArn"] == arn
        assert domain["securityPolicy"] == "TLS_1_2"
        assert domain["endpointConfiguration"]["types"] == ["REGIONAL"]
        assert domain["regionalHostedZoneId"] == REGIONS[region].apigw_zone_id
        mappings = aws("apigateway", region).get_base_path_mappings(domainName=DOMAIN)["items"]
        assert [(m["basePath"], m["restApiId"], m["stage"]) for m in mappings] == [("(none)", apis[region], "prod")]
    [zone] = zones(aws)
    assert len(validation_records(aws, zone["Id"])) == 1


def api_ids(aws: Any) -> dict[str, str]:
    return {r: next(a["id"] for a in aws("apigateway", r).get_rest_apis()["items"] if a["name"] == "items")
            for r in REGIONS_}


# -------------------------------------------------------------------------------------------------- up


def test_up_with_every_stage_gives_each_region_a_certificate_and_a_domain(cli: Cli, aws: Any) -> None:
    code, doc = cli.json("up")
    assert code == 0, doc
    assert_converged(aws, api_ids(aws))
    outputs = doc["outputs"]
    for region in REGIONS_:
        domain = outputs["regions"][region]["domains"]
        assert domain["regional_hosted_zone_id"] == REGIONS[region].apigw_zone_id
        assert domain["regional_domain_name"] == domain_of(aws, region)["regionalDomainName"]
        assert outputs["regions"][region]["certificates"]["status"] == "ISSUED"
    zone = outputs["global"]["hosted-zone"]
    assert zone["created_by_stack"] is True and zone["name_servers"]

    code, again = cli.json("up")
    assert code == 0 and again["changes"] == [], again["changes"]
    assert again["api_calls"]["writes"] == {}


def test_plan_on_a_fresh_account_shows_zone_certificates_and_domains(cli: Cli, aws: Any,
                                                                   rest_apis: dict[str, str]) -> None:
    code, plan = cli.json("plan", *MINE)
    assert code == 0, plan
    planned = [(c["stage"], c["region"], c["action"], c["resource"]) for c in plan["changes"]
               if c["stage"] in ("hosted-zone", "certificates", "domains")]
    assert {c["stage"] for c in plan["changes"]} == {"roles", "functions", "api", "hosted-zone", "certificates",
                                                     "domains"}
    assert planned == [
        ("hosted-zone", GLOBAL, "create", f"hosted zone {ZONE}"),
        ("certificates", "eu-west-1", "create", f"certificate {DOMAIN}"),
        ("certificates", "us-east-1", "create", f"certificate {DOMAIN}"),
        ("domains", "eu-west-1", "create", f"domain {DOMAIN}"),
        ("domains", "eu-west-1", "create", f"base path mapping {DOMAIN}/"),
        ("domains", "us-east-1", "create", f"domain {DOMAIN}"),
        ("domains", "us-east-1", "create", f"base path mapping {DOMAIN}/"),
    ]
    mine = [c for c in plan["changes"] if c["stage"] in ("hosted-zone", "certificates", "domains")]
    assert mine[0]["cost"] == "$0.50/month"
    assert mine[4]["reason"] == "-> (the REST API created above in eu-west-1)/prod"
    assert zones(aws) == [] and certs(aws, "eu-west-1") == []


def test_up_on_own_stages_converges_and_rerun_writes_nothing(cli: Cli, aws: Any, sandbox: Sandbox,
                                                             rest_apis: dict[str, str]) -> None:
    ctx = reader(sandbox)
    assert regional_domain(ctx, "eu-west-1") is None
    code, doc = cli.json("up", *MINE)
    assert code == 0, doc
    assert_converged(aws, rest_apis)
    for region in REGIONS_:
        name, zone_id = regional_domain(ctx, region)  # type: ignore[misc]
        assert name == domain_of(aws, region)["regionalDomainName"] and name.endswith(f".{region}.amazonaws.com")
        assert zone_id == REGIONS[region].apigw_zone_id
    assert doc["api_calls"]["writes"]["ChangeResourceRecordSets"] == 1  # one validation record for all regions
    assert doc["api_calls"]["writes"]["RequestCertificate"] == 2
    code, again = cli.json("up", *MINE)
    assert code == 0 and again["changes"] == [] and again["api_calls"]["writes"] == {}
    code, plan = cli.json("plan", *MINE)
    assert code == 0 and plan["changes"] == []


# ------------------------------------------------------------------------------- interrupted runs, retries


def test_certificate_requested_by_an_interrupted_run_is_reused(cli: Cli, aws: Any, sandbox: Sandbox,
                                                               rest_apis: dict[str, str]) -> None:
    # A run that stopped right after RequestCertificate: untagged, no validation record.
    earlier = {region: aws("acm", region).request_certificate(
        DomainName=DOMAIN, ValidationMethod="DNS", IdempotencyToken=idempotency_token("items", region, DOMAIN))[
        "CertificateArn"] for region in REGIONS_}
    code, doc = cli.json("up", *MINE)
    assert code == 0, doc
    for region in REGIONS_:
        assert [c["CertificateArn"] for c in certs(aws, region)] == [earlier[region]]
    assert_converged(aws, rest_apis)


def test_run_that_stopped_before_validation_resumes(cli: Cli, aws: Any, rest_apis: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        # Dies right before the zone is tagged for the validation record (the record comes after).
        Crasher(is_call("change_tags_for_resource", ResourceType="hostedzone"), after=False).install(patch)
        with pytest.raises(SimulatedCrash):
            cli.json("up", *MINE)
    wait_for(lambda: all(len(certs(aws, r)) == 1 for r in REGIONS_))
    assert validation_records(aws, zones(aws)[0]["Id"]) == []

    code, plan = cli.json("plan", *MINE)
    assert [(c["stage"], c["resource"]) for c in plan["changes"] if c["stage"] == "certificates"] == [
        ("certificates", f"validation record {DOMAIN}")] * 2
    code, doc = cli.json("up", *MINE)
    assert code == 0, doc
    assert "RequestCertificate" not in doc["api_calls"]["writes"]
    assert_converged(aws, rest_apis)


def test_failed_validation_stops_up_naming_region_and_certificate(cli: Cli, aws: Any, sandbox: Sandbox,
                                                                  rest_apis: dict[str, str]) -> None:
    sandbox.faults["acm_fail"] = ["*"]
    code, doc = cli.json("up", *MINE)
    assert code == 1
    errors = {e["region"]: e for e in doc["errors"]}
    assert set(errors) == set(REGIONS_)
    for region, error in errors.items():
        [failed] = certs(aws, region)
        assert error["stage"] == "certificates" and failed["Status"] == "FAILED"
        assert failed["CertificateArn"] in error["error"] and "FAILED" in error["error"]
        assert "CAA_ERROR" in error["error"]
    assert {(s["stage"], s["region"]) for s in doc["skipped"]} == {("domains", r) for r in REGIONS_}
    assert all(domain_of(aws, r) is None for r in REGIONS_)

    # Once the cause is gone, the next run requests a new certificate (the token moved on) and converges.
    sandbox.faults["acm_fail"] = []
    code, doc = cli.json("up", *MINE)
    assert code == 0, doc
    for region in REGIONS_:
        assert sorted(c["Status"] for c in certs(aws, region)) == ["FAILED", "ISSUED"]
    assert domain_of(aws, "eu-west-1")["regionalCertificateArn"] == certs(aws, "eu-west-1", ("ISSUED",))[0][
        "CertificateArn"]


def test_failed_validation_exits_1_in_text_mode_too(cli: Cli, sandbox: Sandbox, rest_apis: dict[str, str]) -> None:
    sandbox.faults["acm_fail"] = ["*"]
    result = cli("up", "--only", "hosted-zone", "--only", "certificates")
    assert result.exit_code == 1
    assert "arn:aws:acm:eu-west-1:" in result.output and "arn:aws:acm:us-east-1:" in result.output


# ----------------------------------------------------------------------------------------- hosted zone


def test_demo_config_creates_its_zone() -> None:
    assert demo_config()["domain"]["create_zone"] is True


def test_missing_zone_without_create_zone_fails_naming_the_zone(write_config: Callable[..., Path],
                                                                aws: Any) -> None:
    cli = Cli(write_config(domain__create_zone=False))
    code, doc = cli.json("up", *MINE)
    assert code == 1
    [error] = doc["errors"]
    assert error["stage"] == "hosted-zone" and ZONE in error["error"]
    assert "create_zone" in error["hint"]
    assert zones(aws) == [] and certs(aws, "eu-west-1") == []
    result = cli("up", *MINE)
    assert result.exit_code == 1 and ZONE in result.output


def test_existing_zone_is_used_and_never_deleted(write_config: Callable[..., Path], aws: Any,
                                                 rest_apis: dict[str, str]) -> None:
    zone_id = aws("route53").create_hosted_zone(Name=ZONE, CallerReference="by-hand")["HostedZone"]["Id"]
    cli = Cli(write_config(domain__create_zone=False))
    code, doc = cli.json("up", *MINE)
    assert code == 0, doc
    assert [z["Id"] for z in zones(aws)] == [zone_id]
    assert doc["outputs"]["global"]["hosted-zone"]["created_by_stack"] is False
    code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    assert [z["Id"] for z in zones(aws)] == [zone_id]
    assert validation_records(aws, zone_id) == []


def test_two_zones_of_the_name_ask_for_the_id(cli: Cli, aws: Any, sandbox: Sandbox) -> None:
    ids = [aws("route53").create_hosted_zone(Name=ZONE, CallerReference=f"by-hand-{i}")["HostedZone"]["Id"]
           for i in range(2)]
    code, doc = cli.json("up", *MINE)
    assert code == 1
    [error] = doc["errors"]
    assert all(i.rsplit("/", 1)[-1] in error["error"] for i in ids) and "id" in error["hint"]
    assert len(zones(aws)) == 2

    # Named by id, bare or with /hostedzone/, the zone is found.
    for given in (ids[1], ids[1].rsplit("/", 1)[-1]):
        assert zone_id_of(sandbox, given) == ids[1].rsplit("/", 1)[-1]


def test_zone_given_by_id_must_contain_the_domain(sandbox: Sandbox, aws: Any,
                                                  write_config: Callable[..., Path]) -> None:
    other = aws("route53").create_hosted_zone(Name="elsewhere.example.org", CallerReference="x")["HostedZone"]["Id"]
    with pytest.raises(StepError) as err:
        find_hosted_zone(reader(sandbox, hosted_zone=other))
    assert "does not lie inside" in err.value.detail
    assert find_hosted_zone(reader(sandbox, hosted_zone="/hostedzone/ZNOSUCHZONE1")) is None
    cli = Cli(write_config(domain__hosted_zone="ZNOSUCHZONE1", domain__create_zone=False))
    code, doc = cli.json("up", "--only", "hosted-zone")
    assert code == 1 and "ZNOSUCHZONE1" in doc["errors"][0]["error"] and "no hosted zone" in doc["errors"][0]["error"]


def test_zone_created_but_not_tagged_is_adopted(cli: Cli, aws: Any, sandbox: Sandbox) -> None:
    reference = zone_module.reference_seed(context(sandbox).env()) + "0"
    zone_id = aws("route53").create_hosted_zone(Name=ZONE, CallerReference=reference)["HostedZone"]["Id"]
    code, doc = cli.json("up", "--only", "hosted-zone")
    assert code == 0, doc
    assert [(c["action"], c["reason"]) for c in doc["changes"]] == [("update", "tag it as this stack's")]
    tags = aws("route53").list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id.split("/")[-1])
    assert {"Key": TAG_STACK, "Value": "items"} in tags["ResourceTagSet"]["Tags"]
    assert [z["Id"] for z in zones(aws)] == [zone_id]


# ------------------------------------------------------------------------------------- domains: drift


def test_drifted_domain_and_mapping_are_repaired(cli: Cli, aws: Any, rest_apis: dict[str, str],
                                                paced: PacedClock) -> None:
    assert cli.json("up", *MINE)[0] == 0
    # Right after `up`'s own CreateDeployment (one every 5 s): the drift is made by a client that waits as told.
    apigw = paced.pace(aws("apigateway", "us-east-1"))
    apigw.create_deployment(restApiId=rest_apis["us-east-1"], stageName="other")
    apigw.update_domain_name(domainName=DOMAIN, patchOperations=[
        {"op": "replace", "path": "/securityPolicy", "value": "TLS_1_0"}])
    apigw.update_base_path_mapping(domainName=DOMAIN, basePath="(none)", patchOperations=[
        {"op": "replace", "path": "/stage", "value": "other"}])
    code, plan = cli.json("plan", *MINE)
    assert [(c["region"], c["action"], c["reason"]) for c in plan["changes"]] == [
        ("us-east-1", "update", "security policy TLS_1_0 -> TLS_1_2"),
        ("us-east-1", "update", f"{rest_apis['us-east-1']}/other -> {rest_apis['us-east-1']}/prod")]
    code, doc = cli.json("up", *MINE)
    assert code == 0 and len(doc["changes"]) == 2
    assert_converged(aws, rest_apis)


def test_domain_with_a_certificate_not_ours_is_a_conflict(cli: Cli, aws: Any, sandbox: Sandbox,
                                                          rest_apis: dict[str, str]) -> None:
    assert cli.json("up", "--only", "hosted-zone", "--only", "certificates")[0] == 0
    # Someone else's certificate for the same name, issued through the same record, and their domain.
    foreign = aws("acm", "eu-west-1").request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")["CertificateArn"]
    wait_for(lambda: aws("acm", "eu-west-1").describe_certificate(CertificateArn=foreign)["Certificate"]["Status"]
             == "ISSUED")
    aws("apigateway", "eu-west-1").create_domain_name(
        domainName=DOMAIN, regionalCertificateArn=foreign, endpointConfiguration={"types": ["REGIONAL"]})

    code, doc = cli.json("up", *MINE)
    assert code == 1
    [error] = doc["errors"]
    assert (error["stage"], error["region"]) == ("domains", "eu-west-1") and foreign in error["error"]
    assert domain_of(aws, "eu-west-1")["regionalCertificateArn"] == foreign
    assert domain_of(aws, "us-east-1") is not None  # the other region carries on

    code, doc = cli.json("down", "--yes")
    assert domain_of(aws, "eu-west-1") is not None  # not ours: down leaves it
    assert [c["CertificateArn"] for c in certs(aws, "eu-west-1")] == [foreign]


# ------------------------------------------------------------------------------------------------ down


def test_down_removes_mappings_domains_certificates_then_the_record(cli: Cli, aws: Any, monkeypatch: pytest.MonkeyPatch,
                                                                   rest_apis: dict[str, str]) -> None:
    assert cli.json("up", *MINE)[0] == 0
    left_at_record_deletion: list[int] = []

    def deleting_the_record(op: Any) -> bool:
        if is_call("change_resource_record_sets")(op) and \
                op.params["ChangeBatch"]["Changes"][0]["Action"] == "DELETE":
            left_at_record_deletion.append(sum(len(certs(aws, r)) for r in REGIONS_))
        return False

    Crasher(deleting_the_record).install(monkeypatch)
    code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    assert left_at_record_deletion == [0]  # the record goes last, after every region's certificate
    removed = [(c["stage"], c["region"], c["resource"].split(" ")[0]) for c in doc["changes"]
               if c["stage"] in ("hosted-zone", "certificates", "domains")]
    for region in REGIONS_:
        assert ("domains", region, "base") in removed and ("domains", region, "domain") in removed
        assert ("certificates", region, "certificate") in removed
        assert domain_of(aws, region) is None and certs(aws, region) == []
    assert ("hosted-zone", GLOBAL, "validation") in removed and ("hosted-zone", GLOBAL, "hosted") in removed
    assert zones(aws) == []
    code, again = cli.json("down", "--yes")
    assert code == 0 and again["changes"] == []


def test_down_keeps_the_record_while_a_certificate_still_needs_it(cli: Cli, aws: Any,
                                                                  rest_apis: dict[str, str]) -> None:
    assert cli.json("up", *MINE)[0] == 0
    # A certificate of the same name that is not the stack's, in a region the stack does not use: it
    # shares the record, so the record stays (and so does the zone that holds it).
    aws("acm", "ap-southeast-2").request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")
    code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    [zone] = zones(aws)
    assert len(validation_records(aws, zone["Id"])) == 1
    assert len(certs(aws, "ap-southeast-2")) == 1
    assert certs(aws, "eu-west-1") == certs(aws, "us-east-1") == []


def test_down_keeps_another_accounts_validation_record(cli: Cli, aws: Any, rest_apis: dict[str, str]) -> None:
    assert cli.json("up", *MINE)[0] == 0
    [zone] = zones(aws)
    # Another account validating the same name writes its own record, with a label of its own.
    foreign = {"Name": f"_0123456789abcdef.{DOMAIN}.", "Type": "CNAME", "TTL": 300,
               "ResourceRecords": [{"Value": "_fedcba9876543210.xyz.acm-validations.aws."}]}
    aws("route53").change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch={
        "Changes": [{"Action": "CREATE", "ResourceRecordSet": foreign}]})
    assert len(validation_records(aws, zone["Id"])) == 2
    code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    [left] = zones(aws)  # kept: it still holds a record that is not ours
    assert [r["Name"] for r in validation_records(aws, left["Id"])] == [foreign["Name"]]


def test_zone_creation_moves_past_a_caller_reference_already_used(sandbox: Sandbox) -> None:
    # After `down`, Route 53 refuses the reference of the deleted zone: the next one in the sequence is used.
    ctx = context(sandbox)
    seed = zone_module.reference_seed(ctx.env())
    route53 = ctx.clients("route53", "us-east-1")
    created = {"HostedZone": {"Id": "/hostedzone/ZNEW", "Name": f"{ZONE}.", "CallerReference": "x"},
               "ChangeInfo": {"Id": "c", "Status": "PENDING", "SubmittedAt": "2024-01-01T00:00:00Z"},
               "DelegationSet": {"NameServers": ["ns-1.example.net"]}, "Location": "https://route53/zone"}
    with Stubber(route53) as stub:
        stub.add_client_error("create_hosted_zone", "HostedZoneAlreadyExists", expected_params={
            "Name": f"{ZONE}.", "CallerReference": f"{seed}0", "HostedZoneConfig": ANY})
        stub.add_response("list_hosted_zones_by_name", {"HostedZones": [], "IsTruncated": False, "MaxItems": "1"})
        stub.add_response("create_hosted_zone", created, expected_params={
            "Name": f"{ZONE}.", "CallerReference": f"{seed}1", "HostedZoneConfig": ANY})
        stub.add_response("change_tags_for_resource", {}, expected_params={
            "ResourceType": "hostedzone", "ResourceId": "ZNEW", "AddTags": [{"Key": TAG_STACK, "Value": "items"}]})
        answer = zone_module.create_hosted_zone(BuiltinContext(ctx.clients, lambda s: None, lambda w: {}, print),
                                                "us-east-1", name=f"{ZONE}.", reference_seed=seed, comment="c",
                                                tags={TAG_STACK: "items"})
        stub.assert_no_pending_responses()
    assert answer == {"zone_id": "ZNEW"}


def test_a_certificate_not_found_right_after_its_request_is_not_requested_again(
        cli: Cli, aws: Any, monkeypatch: pytest.MonkeyPatch, rest_apis: dict[str, str]) -> None:
    # ACM does not know a brand-new certificate yet: the first Describe after each request says so.
    refused = refuse(monkeypatch, "acm", "DescribeCertificate", "ResourceNotFoundException", times=2)
    code, doc = cli.json("up", *MINE)
    assert code == 0, doc
    assert len(refused) == 2
    for region in REGIONS_:
        assert len(certs(aws, region)) == 1
