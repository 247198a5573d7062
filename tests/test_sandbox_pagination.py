"""Every list the sandbox's layer answers, paged one item at a time: each item exactly once, and an end.

A client that pages until the next marker is empty, or until IsTruncated is false, or through boto3's
paginators or the AWS CLI, must see every item once and stop. Each loop here is bounded and fails when the
listing does not end. The lists come from tests/test_sandbox_wire.OPERATIONS: a list operation added there
must be added here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest

from multiregion.sandbox.server import Sandbox
from tests.conftest import PacedClock, wait_for
from tests.test_sandbox_lambda import create_role, zip_of
from tests.test_sandbox_route53_policies import latency_document
from tests.test_sandbox_wire import OPERATIONS, make_client

MAX_PAGES = 50  # far more than any listing here needs: reaching it means the listing does not end
ZONE = "pages.example.com"
REGION = "eu-west-1"
COUNT = 3
PAGING_INPUTS = {"MaxItems", "limit", "Limit", "MaxResults"}


@dataclass
class World:
    """At least COUNT items in every list the layer answers."""

    certificates: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    mappings: list[str] = field(default_factory=list)
    health_checks: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    zone_instances: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    zone_id: str = ""


def _build(sandbox: Sandbox, clock: PacedClock) -> World:
    world = World()
    r53, acm = make_client(sandbox, "route53", "us-east-1"), make_client(sandbox, "acm", REGION)
    apigw = make_client(sandbox, "apigateway", REGION)
    world.zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference="pages")["HostedZone"]["Id"].split("/")[-1]
    other_zone = r53.create_hosted_zone(Name=f"other.{ZONE}", CallerReference="pages-other")["HostedZone"]["Id"]

    world.certificates = [acm.request_certificate(DomainName=f"c{i}.{ZONE}", ValidationMethod="DNS")[
        "CertificateArn"] for i in range(COUNT)]
    # One certificate issued through its validation record, for the custom domains.
    record = wait_for(lambda: acm.describe_certificate(CertificateArn=world.certificates[0])["Certificate"][
        "DomainValidationOptions"][0].get("ResourceRecord"))
    r53.change_resource_record_sets(HostedZoneId=world.zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {"Name": record["Name"], "Type": "CNAME", "TTL": 300,
                              "ResourceRecords": [{"Value": record["Value"]}]}}]})
    wait_for(lambda: acm.describe_certificate(CertificateArn=world.certificates[0])["Certificate"]["Status"]
             == "ISSUED", 10)
    world.domains = [f"d{i}.{ZONE}" for i in range(COUNT)]
    for name in world.domains:  # one every 30 s (API Gateway's quota): the clock moves on as told
        clock.paced(lambda n=name: apigw.create_domain_name(  # type: ignore[misc]
            domainName=n, regionalCertificateArn=world.certificates[0], endpointConfiguration={"types": ["REGIONAL"]}))
    api = apigw.create_rest_api(name="pages", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    apigw.create_deployment(restApiId=api, stageName="prod")
    world.mappings = [f"v{i}" for i in range(COUNT)]
    for base_path in world.mappings:
        apigw.create_base_path_mapping(domainName=world.domains[0], restApiId=api, stage="prod", basePath=base_path)

    world.health_checks = [r53.create_health_check(CallerReference=f"pages-{i}", HealthCheckConfig={
        "Type": "TCP", "IPAddress": "127.0.0.1", "Port": 9, "RequestInterval": 30, "FailureThreshold": 3,
        "Disabled": True})["HealthCheck"]["Id"] for i in range(COUNT)]

    document = json.dumps(latency_document({"eu-west-1": "d-eu.execute-api.eu-west-1.amazonaws.com"}))
    world.policies = [r53.create_traffic_policy(Name=f"pages-{i}", Document=document)["TrafficPolicy"]["Id"]
                      for i in range(COUNT)]
    for _ in range(COUNT - 1):
        r53.create_traffic_policy_version(Id=world.policies[0], Document=document)
    world.versions = list(range(1, COUNT + 1))
    for i in range(COUNT):
        world.zone_instances.append(r53.create_traffic_policy_instance(
            HostedZoneId=world.zone_id, Name=f"i{i}.{ZONE}", TTL=60, TrafficPolicyId=world.policies[0],
            TrafficPolicyVersion=1)["TrafficPolicyInstance"]["Id"])
    elsewhere = r53.create_traffic_policy_instance(HostedZoneId=other_zone, Name=f"x.other.{ZONE}", TTL=60,
                                                   TrafficPolicyId=world.policies[0], TrafficPolicyVersion=1)
    world.instances = [*world.zone_instances, elsewhere["TrafficPolicyInstance"]["Id"]]

    lam = make_client(sandbox, "lambda", REGION)
    role = create_role(lambda service, region="us-east-1": make_client(sandbox, service, region))
    world.functions = [lam.create_function(FunctionName=f"pages-{i}", Runtime="python3.12", Role=role,
                                           Handler="app.handler", Code={"ZipFile": zip_of({"app.py": "x = 1\n"})})[
        "FunctionName"] for i in range(COUNT)]
    return world


@pytest.fixture(scope="module")
def world(sandbox_server: Sandbox) -> Iterator[World]:
    sandbox_server.reset()
    clock = PacedClock(sandbox_server.clock)
    with mock.patch.object(sandbox_server, "clock", clock):
        yield _build(sandbox_server, clock)
    sandbox_server.reset()


# ---------------------------------------------------------------------------------------------- paging


@dataclass(frozen=True)
class Listing:
    """How to page one list operation one item at a time, and what it must list."""

    service: str
    region: str
    method: str
    items: str  # the output member holding the page's items
    item_id: Callable[[dict[str, Any]], Any]
    expected: Callable[[World], list[Any]]
    fixed: Callable[[World], dict[str, Any]]  # the request parameters of every page
    page_size: dict[str, Any]  # the parameter asking for one item
    next_page: dict[str, str]  # output member -> request parameter naming the next page
    truncation: str | None = None  # the member saying whether another page follows (Route 53's IsTruncated)


INSTANCE_MARKERS = {m: m for m in ("HostedZoneIdMarker", "TrafficPolicyInstanceNameMarker",
                                   "TrafficPolicyInstanceTypeMarker")}
LISTINGS: dict[str, Listing] = {
    "ListCertificates": Listing("acm", REGION, "list_certificates", "CertificateSummaryList",
                                lambda i: i["CertificateArn"], lambda w: w.certificates, lambda w: {},
                                {"MaxItems": 1}, {"NextToken": "NextToken"}),
    "GetDomainNames": Listing("apigateway", REGION, "get_domain_names", "items", lambda i: i["domainName"],
                              lambda w: w.domains, lambda w: {}, {"limit": 1}, {"position": "position"}),
    "GetBasePathMappings": Listing("apigateway", REGION, "get_base_path_mappings", "items",
                                   lambda i: i["basePath"], lambda w: w.mappings,
                                   lambda w: {"domainName": w.domains[0]}, {"limit": 1}, {"position": "position"}),
    "ListFunctions": Listing("lambda", REGION, "list_functions", "Functions", lambda i: i["FunctionName"],
                             lambda w: w.functions, lambda w: {}, {"MaxItems": 1}, {"NextMarker": "Marker"}),
    "ListHealthChecks": Listing("route53", "us-east-1", "list_health_checks", "HealthChecks", lambda i: i["Id"],
                                lambda w: w.health_checks, lambda w: {}, {"MaxItems": "1"},
                                {"NextMarker": "Marker"}, "IsTruncated"),
    "ListTrafficPolicies": Listing("route53", "us-east-1", "list_traffic_policies", "TrafficPolicySummaries",
                                   lambda i: i["Id"], lambda w: w.policies, lambda w: {}, {"MaxItems": "1"},
                                   {"TrafficPolicyIdMarker": "TrafficPolicyIdMarker"}, "IsTruncated"),
    "ListTrafficPolicyVersions": Listing("route53", "us-east-1", "list_traffic_policy_versions", "TrafficPolicies",
                                         lambda i: i["Version"], lambda w: w.versions,
                                         lambda w: {"Id": w.policies[0]}, {"MaxItems": "1"},
                                         {"TrafficPolicyVersionMarker": "TrafficPolicyVersionMarker"}, "IsTruncated"),
    "ListTrafficPolicyInstances": Listing("route53", "us-east-1", "list_traffic_policy_instances",
                                          "TrafficPolicyInstances", lambda i: i["Id"], lambda w: w.instances,
                                          lambda w: {}, {"MaxItems": "1"}, INSTANCE_MARKERS, "IsTruncated"),
    "ListTrafficPolicyInstancesByHostedZone": Listing(
        "route53", "us-east-1", "list_traffic_policy_instances_by_hosted_zone", "TrafficPolicyInstances",
        lambda i: i["Id"], lambda w: w.zone_instances, lambda w: {"HostedZoneId": w.zone_id}, {"MaxItems": "1"},
        {m: m for m in list(INSTANCE_MARKERS)[1:]}, "IsTruncated"),
    "ListTrafficPolicyInstancesByPolicy": Listing(
        "route53", "us-east-1", "list_traffic_policy_instances_by_policy", "TrafficPolicyInstances",
        lambda i: i["Id"], lambda w: w.instances,
        lambda w: {"TrafficPolicyId": w.policies[0], "TrafficPolicyVersion": 1}, {"MaxItems": "1"},
        INSTANCE_MARKERS, "IsTruncated"),
}


def page_through(call: Callable[..., dict[str, Any]], listing: Listing, fixed: dict[str, Any],
                 until_marker_empty: bool = False) -> list[Any]:
    """Every item, one page at a time, the way a client pages: while the answer says more follows (or, with
    `until_marker_empty`, while it names a next page at all)."""
    seen: list[Any] = []
    args: dict[str, Any] = {}
    for _ in range(MAX_PAGES):
        page = call(**fixed, **listing.page_size, **args)
        assert len(page[listing.items]) <= 1, "a page of one item holds more"
        seen += [listing.item_id(i) for i in page[listing.items]]
        args = {param: page[member] for member, param in listing.next_page.items() if page.get(member)}
        more = bool(args) if until_marker_empty or listing.truncation is None else page[listing.truncation]
        if not more:
            return seen
        assert args, "the answer says more follows but names no next page"
    raise AssertionError(f"{listing.method} did not end within {MAX_PAGES} pages of one item")


@pytest.mark.parametrize("operation", sorted(LISTINGS))
def test_one_item_at_a_time_lists_each_item_once_and_ends(world: World, sandbox_server: Sandbox,
                                                          operation: str) -> None:
    listing = LISTINGS[operation]
    client = make_client(sandbox_server, listing.service, listing.region)
    expected = listing.expected(world)
    assert len(expected) >= COUNT
    seen = page_through(getattr(client, listing.method), listing, listing.fixed(world))
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    if listing.truncation:
        # A client that ignores IsTruncated and pages until the marker is empty stops too (this looped).
        assert sorted(page_through(getattr(client, listing.method), listing, listing.fixed(world),
                                   until_marker_empty=True)) == sorted(expected)


@pytest.mark.parametrize("operation", sorted(op for op in LISTINGS if op in {"ListCertificates", "GetDomainNames",
                                                                          "GetBasePathMappings", "ListHealthChecks"}))
def test_boto3_paginators_list_each_item_once(world: World, sandbox_server: Sandbox, operation: str) -> None:
    listing = LISTINGS[operation]
    client = make_client(sandbox_server, listing.service, listing.region)
    pages = client.get_paginator(listing.method).paginate(**listing.fixed(world), PaginationConfig={"PageSize": 1})
    seen = []
    for count, page in enumerate(pages):
        assert count < MAX_PAGES, "the paginator did not end"
        seen += [listing.item_id(i) for i in page[listing.items]]
    assert sorted(seen) == sorted(listing.expected(world))


def test_every_list_the_layer_answers_is_paged_here() -> None:
    session = boto3.session.Session()
    lists = set()
    for service, operations in OPERATIONS.items():
        model = session.client(service, region_name="us-east-1").meta.service_model
        for name in operations:
            inputs = model.operation_model(name).input_shape
            if inputs is not None and PAGING_INPUTS & set(inputs.members):
                lists.add(name)
    assert lists == set(LISTINGS)


# ---------------------------------------------------------------------------------------------- the AWS CLI


def aws_cli(sandbox: Sandbox, tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    result = subprocess.run([str(Path(sys.executable).with_name("aws")), *args, "--endpoint-url", sandbox.url,
                             "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_aws_cli_lists_health_checks_a_page_at_a_time(world: World, sandbox_server: Sandbox,
                                                          tmp_path: Path) -> None:
    # The CLI pages by itself (botocore's paginator, one item a request) until the last page.
    listed = aws_cli(sandbox_server, tmp_path, "route53", "list-health-checks", "--page-size", "1")
    ids = [c["Id"] for c in listed["HealthChecks"]]
    assert sorted(ids) == sorted(world.health_checks) and len(ids) == len(set(ids))


@pytest.mark.parametrize(("command", "items", "marker_options"), [
    ("list-traffic-policies", "TrafficPolicySummaries", {"TrafficPolicyIdMarker": "--traffic-policy-id-marker"}),
    ("list-traffic-policy-instances", "TrafficPolicyInstances", {
        "HostedZoneIdMarker": "--hosted-zone-id-marker",
        "TrafficPolicyInstanceNameMarker": "--traffic-policy-instance-name-marker",
        "TrafficPolicyInstanceTypeMarker": "--traffic-policy-instance-type-marker"}),
])
def test_the_aws_cli_pages_traffic_policies_and_instances(world: World, sandbox_server: Sandbox, tmp_path: Path,
                                                          command: str, items: str,
                                                          marker_options: dict[str, str]) -> None:
    # botocore has no paginator for these (the CLI refuses --page-size for them): a script pages with
    # --max-items 1 and the markers of the previous answer, until an answer names no next page.
    seen: list[str] = []
    markers: list[str] = []
    for _ in range(MAX_PAGES):
        page = aws_cli(sandbox_server, tmp_path, "route53", command, "--max-items", "1", *markers)
        seen += [item["Id"] for item in page[items]]
        markers = [arg for member, option in marker_options.items() if page.get(member)
                   for arg in (option, page[member])]
        if not markers:
            break
        assert page["IsTruncated"], "a page that is the last names a next page"
    else:
        raise AssertionError(f"aws route53 {command} did not end")
    expected = world.policies if command == "list-traffic-policies" else world.instances
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
