"""The sandbox's ACM and API Gateway custom domains: validation through DNS, idempotency, AWS's zone ids."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from multiregion.regions import REGIONS
from multiregion.sandbox.server import Sandbox
from tests.conftest import PacedClock, wait_for

DOMAIN = "api.acm-test.example.com"
ZONE = "acm-test.example.com"



def request(aws: Any, region: str, domain: str = DOMAIN, **kwargs: Any) -> str:
    return str(aws("acm", region).request_certificate(DomainName=domain, ValidationMethod="DNS",
                                                      **kwargs)["CertificateArn"])


def describe(aws: Any, region: str, arn: str) -> dict[str, Any]:
    return dict(aws("acm", region).describe_certificate(CertificateArn=arn)["Certificate"])


def published_record(aws: Any, region: str, arn: str) -> dict[str, str]:
    options = wait_for(lambda: [o for o in describe(aws, region, arn)["DomainValidationOptions"]
                                if "ResourceRecord" in o])
    return dict(options[0]["ResourceRecord"])


def make_zone(aws: Any, name: str = ZONE) -> str:
    return str(aws("route53").create_hosted_zone(Name=name, CallerReference=f"test-{name}")["HostedZone"]["Id"])


def upsert(aws: Any, zone_id: str, record: dict[str, str]) -> None:
    aws("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {"Name": record["Name"], "Type": record["Type"], "TTL": 300,
                                                   "ResourceRecords": [{"Value": record["Value"]}]}}]})


def issued(aws: Any, region: str) -> str:
    """A certificate of DOMAIN, validated and ISSUED, in the region."""
    arn = request(aws, region)
    zones = aws("route53").list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"]
    zone_id = zones[0]["Id"] if zones else make_zone(aws)
    upsert(aws, zone_id, published_record(aws, region, arn))
    wait_for(lambda: describe(aws, region, arn)["Status"] == "ISSUED")
    return arn


def test_pending_until_the_record_exists_then_issued_after_the_delay(sandbox: Sandbox, aws: Any) -> None:
    acm = aws("acm", "eu-west-1")
    arn = request(aws, "eu-west-1")
    record = published_record(aws, "eu-west-1", arn)
    zone_id = make_zone(aws)
    time.sleep(sandbox.options.acm_validation_delay + 0.1)
    cert = describe(aws, "eu-west-1", arn)
    assert cert["Status"] == "PENDING_VALIDATION"  # however long it waits without the record
    assert cert["DomainValidationOptions"][0]["ValidationStatus"] == "PENDING_VALIDATION"
    assert "IssuedAt" not in cert
    assert acm.list_certificates(CertificateStatuses=["ISSUED"])["CertificateSummaryList"] == []
    with pytest.raises(ClientError) as err:
        acm.get_certificate(CertificateArn=arn)
    assert err.value.response["Error"]["Code"] == "RequestInProgressException"

    upsert(aws, zone_id, record)
    seen = time.monotonic()
    assert describe(aws, "eu-west-1", arn)["Status"] == "PENDING_VALIDATION"
    wait_for(lambda: describe(aws, "eu-west-1", arn)["Status"] == "ISSUED")
    assert time.monotonic() - seen >= sandbox.options.acm_validation_delay
    cert = describe(aws, "eu-west-1", arn)
    assert cert["DomainValidationOptions"][0]["ValidationStatus"] == "SUCCESS"
    assert cert["IssuedAt"] and cert["NotAfter"]
    listed = acm.list_certificates(CertificateStatuses=["ISSUED"])["CertificateSummaryList"]
    assert [c["CertificateArn"] for c in listed] == [arn]
    assert "BEGIN CERTIFICATE" in acm.get_certificate(CertificateArn=arn)["Certificate"]


def test_record_in_another_zone_or_with_another_value_does_not_validate(sandbox: Sandbox, aws: Any) -> None:
    arn = request(aws, "eu-west-1")
    record = published_record(aws, "eu-west-1", arn)
    zone_id = make_zone(aws)
    upsert(aws, make_zone(aws, "unrelated.example.org"), {**record, "Name": "_x.unrelated.example.org."})
    upsert(aws, zone_id, {**record, "Value": "_wrong.acm-validations.aws."})
    time.sleep(sandbox.options.acm_validation_delay + 0.1)
    assert describe(aws, "eu-west-1", arn)["Status"] == "PENDING_VALIDATION"


def test_validation_record_is_the_same_in_every_region_and_differs_per_domain(sandbox: Sandbox, aws: Any) -> None:
    records = {region: published_record(aws, region, request(aws, region))
               for region in ("eu-west-1", "us-east-1", "ap-southeast-2")}
    assert len({tuple(sorted(r.items())) for r in records.values()}) == 1
    record = records["eu-west-1"]
    assert record["Type"] == "CNAME"
    assert record["Name"].endswith(f".{DOMAIN}.") and record["Value"].endswith(".acm-validations.aws.")
    other = published_record(aws, "eu-west-1", request(aws, "eu-west-1", domain=f"www.{ZONE}"))
    assert other["Name"] != record["Name"] and other["Value"] != record["Value"]

    # One record validates the certificates of every region.
    upsert(aws, make_zone(aws), record)
    for region in records:
        arns = [c["CertificateArn"] for c in aws("acm", region).list_certificates()["CertificateSummaryList"]
                if c["DomainName"] == DOMAIN]
        wait_for(lambda r=region, a=arns[0]: describe(aws, r, a)["Status"] == "ISSUED")


def test_idempotency_token_returns_the_same_certificate(sandbox: Sandbox, aws: Any) -> None:
    first = request(aws, "eu-west-1", IdempotencyToken="tok1")
    tagged = request(aws, "eu-west-1", IdempotencyToken="tok1", Tags=[{"Key": "k", "Value": "v"}])
    assert tagged == first  # AWS does not compare tags; moto alone would have made a second one
    assert request(aws, "eu-west-1", IdempotencyToken="tok2") != first
    assert request(aws, "us-east-1", IdempotencyToken="tok1") != first
    assert len(aws("acm", "eu-west-1").list_certificates()["CertificateSummaryList"]) == 2

    aws("acm", "eu-west-1").delete_certificate(CertificateArn=first)
    again = request(aws, "eu-west-1", IdempotencyToken="tok1")
    assert again != first and describe(aws, "eu-west-1", again)["Status"] == "PENDING_VALIDATION"


def test_idempotency_token_must_be_word_characters(sandbox: Sandbox, aws: Any) -> None:
    with pytest.raises(ClientError) as err:
        request(aws, "eu-west-1", IdempotencyToken="not-a-token")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_acm_fail_fault_turns_certificates_failed(sandbox: Sandbox, aws: Any) -> None:
    doomed, fine = request(aws, "eu-west-1"), request(aws, "eu-west-1", domain=f"www.{ZONE}")
    sandbox.faults["acm_fail"] = [doomed]
    zone_id = make_zone(aws)
    upsert(aws, zone_id, published_record(aws, "eu-west-1", doomed))
    upsert(aws, zone_id, published_record(aws, "eu-west-1", fine))
    wait_for(lambda: describe(aws, "eu-west-1", doomed)["Status"] != "PENDING_VALIDATION")
    cert = describe(aws, "eu-west-1", doomed)
    assert cert["Status"] == "FAILED" and cert["FailureReason"] == "CAA_ERROR"
    assert cert["DomainValidationOptions"][0]["ValidationStatus"] == "FAILED"
    wait_for(lambda: describe(aws, "eu-west-1", fine)["Status"] == "ISSUED")
    sandbox.faults["acm_fail"] = []
    assert describe(aws, "eu-west-1", doomed)["Status"] == "FAILED"  # final, as on AWS

    sandbox.faults["acm_fail"] = ["*"]
    third = request(aws, "us-east-1")
    wait_for(lambda: describe(aws, "us-east-1", third)["Status"] == "FAILED")


def test_certificate_in_use_by_a_domain_cannot_be_deleted(sandbox: Sandbox, aws: Any) -> None:
    arn = issued(aws, "eu-west-1")
    apigw = aws("apigateway", "eu-west-1")
    apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=arn,
                             endpointConfiguration={"types": ["REGIONAL"]})
    with pytest.raises(ClientError) as err:
        aws("acm", "eu-west-1").delete_certificate(CertificateArn=arn)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    apigw.delete_domain_name(domainName=DOMAIN)
    aws("acm", "eu-west-1").delete_certificate(CertificateArn=arn)


def test_an_issued_certificate_reads_as_acm_issues_it_and_names_its_users(sandbox: Sandbox, aws: Any) -> None:
    arn = issued(aws, "eu-west-1")
    cert = describe(aws, "eu-west-1", arn)
    assert cert["SignatureAlgorithm"] == "SHA256WITHRSA"  # moto signs SHA512
    not_before, not_after = cert["NotBefore"].timestamp(), cert["NotAfter"].timestamp()
    # 395 days (ACM: "13 months"), from midnight UTC of the day of issue to the last second of the last day.
    assert not_before % 86_400 == 0 and not_before <= cert["IssuedAt"].timestamp() < not_before + 86_400
    assert not_after - not_before == 396 * 86_400 - 1
    assert (cert["InUseBy"], cert["RenewalEligibility"]) == ([], "INELIGIBLE")

    apigw = aws("apigateway", "eu-west-1")
    apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=arn,
                             endpointConfiguration={"types": ["REGIONAL"]})
    domain_arn = f"arn:aws:apigateway:eu-west-1::/domainnames/{DOMAIN}"
    assert apigw.get_domain_name(domainName=DOMAIN)["domainNameArn"] == domain_arn
    cert = describe(aws, "eu-west-1", arn)
    # In use: listed by the domain's ARN, and renewed by ACM (a certificate in use is eligible).
    assert (cert["InUseBy"], cert["RenewalEligibility"]) == ([domain_arn], "ELIGIBLE")
    summary = aws("acm", "eu-west-1").list_certificates()["CertificateSummaryList"][0]
    assert (summary["InUse"], summary["RenewalEligibility"]) == (True, "ELIGIBLE")
    assert summary["SubjectAlternativeNameSummaries"] == [DOMAIN]
    assert (summary["NotBefore"], summary["NotAfter"]) == (cert["NotBefore"], cert["NotAfter"])

    apigw.delete_domain_name(domainName=DOMAIN)
    cert = describe(aws, "eu-west-1", arn)
    assert (cert["InUseBy"], cert["RenewalEligibility"]) == ([], "INELIGIBLE")


def test_list_certificates_pages_with_max_items(sandbox: Sandbox, aws: Any) -> None:
    acm = aws("acm", "eu-west-1")
    arns = [request(aws, "eu-west-1", domain=f"n{i}.{ZONE}") for i in range(4)]
    seen = [c["CertificateArn"] for page in acm.get_paginator("list_certificates").paginate(PaginationConfig={
        "PageSize": 1}) for c in page["CertificateSummaryList"]]
    assert sorted(seen) == sorted(arns)
    first = acm.list_certificates(MaxItems=1)
    assert len(first["CertificateSummaryList"]) == 1 and first["NextToken"]
    everything = [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]]
    assert "NextToken" not in acm.list_certificates()
    newest_first = [c["CertificateArn"] for c in acm.list_certificates(SortBy="CREATED_AT",
                                                                       SortOrder="DESCENDING")["CertificateSummaryList"]]
    assert newest_first == everything[::-1]
    # The certificate the token names, deleted between two pages: the next page starts after it.
    acm.delete_certificate(CertificateArn=everything[1])
    rest = acm.list_certificates(MaxItems=1, NextToken=first["NextToken"])
    assert [c["CertificateArn"] for c in rest["CertificateSummaryList"]] == [everything[2]]
    with pytest.raises(ClientError) as err:
        acm.list_certificates(NextToken="not-a-token")
    assert err.value.response["Error"]["Code"] == "InvalidArgsException"


# ------------------------------------------------------------------------------ API Gateway domain names


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_regional_hosted_zone_id_is_the_region_s_own(sandbox: Sandbox, aws: Any, region: str) -> None:
    apigw = aws("apigateway", region)
    created = apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=issued(aws, region),
                                       endpointConfiguration={"types": ["REGIONAL"]}, securityPolicy="TLS_1_2")
    expected = REGIONS[region].apigw_zone_id
    assert created["regionalHostedZoneId"] == expected != "Z2FDTNDATAQYW2"
    assert re.fullmatch(rf"d-[a-z0-9]{{10}}\.execute-api\.{region}\.amazonaws\.com", created["regionalDomainName"])
    assert "distributionDomainName" not in created
    assert apigw.get_domain_name(domainName=DOMAIN)["regionalHostedZoneId"] == expected
    assert [d["regionalHostedZoneId"] for d in apigw.get_domain_names()["items"]] == [expected]


def test_same_domain_name_in_two_regions_each_with_its_own_zone(sandbox: Sandbox, aws: Any) -> None:
    answers = {}
    for region in ("us-east-1", "eu-west-1"):
        answers[region] = aws("apigateway", region).create_domain_name(
            domainName=DOMAIN, regionalCertificateArn=issued(aws, region),
            endpointConfiguration={"types": ["REGIONAL"]})
    assert answers["us-east-1"]["regionalHostedZoneId"] == "Z1UJRXOUMOOFQ8"
    assert answers["eu-west-1"]["regionalHostedZoneId"] == "ZLY8HYME6SFDD"
    assert answers["us-east-1"]["regionalDomainName"] != answers["eu-west-1"]["regionalDomainName"]


def test_create_domain_name_checks_the_certificate_and_the_name(sandbox: Sandbox, aws: Any, paced: PacedClock) -> None:
    # CreateDomainName is one every 30 s per account and region: the client waits as told between tries.
    apigw = paced.pace(aws("apigateway", "eu-west-1"))
    regional = {"types": ["REGIONAL"]}

    def code(**kwargs: Any) -> str:
        with pytest.raises(ClientError) as err:
            apigw.create_domain_name(domainName=DOMAIN, endpointConfiguration=regional, **kwargs)
        return str(err.value.response["Error"]["Code"])

    assert code(regionalCertificateArn=request(aws, "eu-west-1")) == "BadRequestException"  # pending
    assert code(regionalCertificateArn=issued(aws, "us-east-1")) == "BadRequestException"  # other region
    arn = issued(aws, "eu-west-1")
    assert code(regionalCertificateArn=arn, securityPolicy="TLS_9") == "BadRequestException"
    apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=arn, endpointConfiguration=regional)
    assert code(regionalCertificateArn=arn) == "ConflictException"
    assert paced.waits >= 4  # every call after the first waited for the quota


def test_update_domain_name_and_mappings_lifecycle(sandbox: Sandbox, aws: Any, paced: PacedClock) -> None:
    apigw = paced.pace(aws("apigateway", "eu-west-1"))  # within API Gateway's quotas
    first, second = issued(aws, "eu-west-1"), issued(aws, "eu-west-1")
    apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=first,
                             endpointConfiguration={"types": ["REGIONAL"]}, securityPolicy="TLS_1_0")
    assert apigw.get_base_path_mappings(domainName=DOMAIN)["items"] == []  # moto alone fails with a 500

    updated = apigw.update_domain_name(domainName=DOMAIN, patchOperations=[
        {"op": "replace", "path": "/regionalCertificateArn", "value": second},
        {"op": "replace", "path": "/securityPolicy", "value": "TLS_1_2"}])
    assert (updated["regionalCertificateArn"], updated["securityPolicy"]) == (second, "TLS_1_2")
    assert updated["regionalHostedZoneId"] == "ZLY8HYME6SFDD"
    assert apigw.get_domain_name(domainName=DOMAIN)["regionalCertificateArn"] == second
    with pytest.raises(ClientError) as err:
        apigw.update_domain_name(domainName=DOMAIN, patchOperations=[
            {"op": "replace", "path": "/regionalCertificateArn", "value": request(aws, "eu-west-1")}])
    assert err.value.response["Error"]["Code"] == "BadRequestException"

    api = apigw.create_rest_api(name="mapped", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    apigw.create_deployment(restApiId=api, stageName="prod")
    apigw.create_base_path_mapping(domainName=DOMAIN, restApiId=api, stage="prod")
    assert [m["basePath"] for m in apigw.get_base_path_mappings(domainName=DOMAIN)["items"]] == ["(none)"]

    # Deleting a domain deletes its mappings: a new domain of that name starts without any.
    apigw.delete_domain_name(domainName=DOMAIN)
    apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=second,
                             endpointConfiguration={"types": ["REGIONAL"]})
    assert apigw.get_base_path_mappings(domainName=DOMAIN)["items"] == []


def test_domain_names_and_mappings_page_with_limit_and_position(sandbox: Sandbox, aws: Any,
                                                                paced: PacedClock) -> None:
    apigw = paced.pace(aws("apigateway", "eu-west-1"))  # within API Gateway's quotas
    arn = issued(aws, "eu-west-1")
    names = [f"{n}.{ZONE}" for n in ("c", "a", "b")]
    for name in names:
        apigw.create_domain_name(domainName=name, regionalCertificateArn=arn,
                                 endpointConfiguration={"types": ["REGIONAL"]})
    first = apigw.get_domain_names(limit=1)
    assert [d["domainName"] for d in first["items"]] == [f"a.{ZONE}"] and first["position"]
    listed = [d["domainName"] for p in apigw.get_paginator("get_domain_names").paginate(
        PaginationConfig={"PageSize": 1}) for d in p["items"]]
    assert listed == sorted(names)
    assert "position" not in apigw.get_domain_names()

    api = apigw.create_rest_api(name="mapped", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    apigw.create_deployment(restApiId=api, stageName="prod")
    for base_path in ("v2", "v1", "v3"):
        apigw.create_base_path_mapping(domainName=names[0], restApiId=api, stage="prod", basePath=base_path)
    mappings = [m for p in apigw.get_paginator("get_base_path_mappings").paginate(
        domainName=names[0], PaginationConfig={"PageSize": 1}) for m in p["items"]]
    # The members API Gateway writes (moto adds its own domain_name).
    assert mappings == [{"basePath": f"v{i}", "restApiId": api, "stage": "prod"} for i in (1, 2, 3)]
    with pytest.raises(ClientError) as err:
        apigw.get_base_path_mappings(domainName=f"none.{ZONE}")
    assert err.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as err:
        apigw.get_domain_names(limit=501)
    assert err.value.response["Error"]["Code"] == "BadRequestException"


def test_create_deployment_and_rest_api_answer_201_without_nulls(sandbox: Sandbox, aws: Any) -> None:
    apigw = aws("apigateway", "eu-west-1")
    created = apigw.create_rest_api(name="bin", binaryMediaTypes=["image/png"])
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["binaryMediaTypes"] == ["image/png"] and "description" not in created
    root = apigw.get_resources(restApiId=created["id"])["items"][0]["id"]
    apigw.put_method(restApiId=created["id"], resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=created["id"], resourceId=root, httpMethod="GET", type="MOCK")
    deployment = apigw.create_deployment(restApiId=created["id"], stageName="prod")
    assert deployment["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert set(deployment) - {"ResponseMetadata"} <= {"id", "description", "createdDate", "apiSummary"}
