"""The sandbox's own answers on the wire: every operation its layer answers, checked strictly against botocore's
output shape (tests/wire.py), below boto3's lenient parser.

OPERATIONS lists what the layer answers or rewrites (everything else passes to moto untouched). A sweep
sends every operation of the services the sandbox serves through the extensions alone and fails when one
claims an operation the list lacks, or the list names one nobody claims: a new answer must be added here,
and so gets checked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import OperationModel, Shape
from werkzeug.test import EnvironBuilder

from multiregion.regions import client_ip
from multiregion.sandbox.apigateway_throttle import ControlPlaneThrottle
from multiregion.sandbox.app import ACCOUNT_ID, Forwarded, SandboxRequest
from multiregion.sandbox.server import Sandbox
from tests import wire
from tests.conftest import PacedClock, wait_for
from tests.test_sandbox_lambda import create_role, zip_of
from tests.test_sandbox_route53_policies import latency_document

# What the sandbox's layer answers itself, or answers by rewriting moto's answer, per botocore service name.
OPERATIONS: dict[str, frozenset[str]] = {
    "dynamodb": frozenset({"CreateTable", "UpdateTable", "DescribeTable", "DeleteTable"}),
    "acm": frozenset({"RequestCertificate", "DescribeCertificate", "ListCertificates", "GetCertificate",
                      "DeleteCertificate"}),
    "apigateway": frozenset({"CreateRestApi", "CreateDeployment", "CreateDomainName", "GetDomainName",
                             "GetDomainNames", "UpdateDomainName", "DeleteDomainName", "GetBasePathMappings"}),
    "lambda": frozenset({"Invoke", "CreateFunction", "GetFunction", "GetFunctionConfiguration", "ListFunctions",
                         "PublishVersion"}),
    "route53": frozenset({
        "CreateHostedZone", "DeleteHostedZone", "ChangeResourceRecordSets", "GetChange", "TestDNSAnswer",
        "CreateHealthCheck", "ListHealthChecks", "UpdateHealthCheck", "DeleteHealthCheck", "GetHealthCheckStatus",
        "CreateTrafficPolicy", "ListTrafficPolicies", "CreateTrafficPolicyVersion", "ListTrafficPolicyVersions",
        "GetTrafficPolicy", "UpdateTrafficPolicyComment", "DeleteTrafficPolicy", "CreateTrafficPolicyInstance",
        "GetTrafficPolicyInstance", "UpdateTrafficPolicyInstance", "DeleteTrafficPolicyInstance",
        "ListTrafficPolicyInstances", "ListTrafficPolicyInstancesByHostedZone", "ListTrafficPolicyInstancesByPolicy",
        "GetTrafficPolicyInstanceCount"}),
}
# Answered by moto and only watched by the layer (passed through byte for byte): CreateRole is noted so
# that Lambda can refuse a role that has not propagated yet.
OBSERVED: frozenset[tuple[str, str]] = frozenset({("iam", "CreateRole")})
# Services the sweep sends through the extensions: the ones above, and others the tool and its functions
# call, which must all pass to moto.
SWEPT = (*OPERATIONS, "dynamodbstreams", "iam", "sts", "resourcegroupstaggingapi", "apigatewayv2")

ZONE = "wire.example.com"
DOMAIN = f"api.{ZONE}"
REGIONS = ("us-east-1", "eu-west-1")
FUNCTION = """
import json
import os


def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"statusCode": 200, "body": json.dumps({"region": os.environ["AWS_REGION"]})}
"""


# ---------------------------------------------------------------------------------------------- capture


@dataclass
class Recorder:
    """Every raw answer a client received, by (service, operation), captured before botocore parsed it."""

    calls: dict[tuple[str, str], list[tuple[OperationModel, wire.RawResponse]]] = field(default_factory=dict)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("after-call", self._after_call)
        return client

    def _after_call(self, http_response: Any, model: OperationModel, **_: Any) -> None:
        raw = wire.RawResponse(model.name, http_response.status_code, dict(http_response.headers),
                               http_response.content)
        key = (model.service_model.service_name, model.name)
        self.calls.setdefault(key, []).append((model, raw))


def make_client(sandbox: Sandbox, service: str, region: str, recorder: Recorder | None = None,
                **config: Any) -> Any:
    client = boto3.client(service, region_name=region, endpoint_url=sandbox.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing",
                          config=Config(retries={"total_max_attempts": 1}, **config))
    return recorder.attach(client) if recorder else client


def refused(call: Callable[[], Any], code: str) -> None:
    """Make a call the layer refuses, so that its error answer is on record (and is the refusal meant)."""
    with pytest.raises(ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == code


# ---------------------------------------------------------------------------------------------- the world


class Driver:
    """Drives every listed operation against the sandbox, successes and the refusals the layer makes."""

    def __init__(self, sandbox: Sandbox, recorder: Recorder, clock: PacedClock):
        self.sandbox, self.recorder, self.clock = sandbox, recorder, clock
        self._clients: dict[tuple[str, str], Any] = {}
        self.zone_id = ""
        self.certificates: dict[str, str] = {}
        self.apis: dict[str, str] = {}
        self.regional_domains: dict[str, str] = {}
        self.checks: list[str] = []
        self.role = ""

    def c(self, service: str, region: str = "us-east-1") -> Any:
        if (service, region) not in self._clients:
            self._clients[(service, region)] = make_client(self.sandbox, service, region, self.recorder)
        return self._clients[(service, region)]

    def run(self) -> None:
        self.hosted_zone()
        for region in REGIONS:
            self.certificate(region)
        for region in REGIONS:
            self.function_and_api(region)
            self.custom_domain(region)
        self.global_table()
        self.health_checks()
        self.traffic_policies()
        self.dns_answers()
        self.teardown()

    # ------------------------------------------------------------------ Route 53 zone, ACM

    def hosted_zone(self) -> None:
        r53 = self.c("route53")
        self.zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference="wire-zone")["HostedZone"]["Id"]
        refused(lambda: r53.create_hosted_zone(Name=ZONE, CallerReference="wire-zone"), "HostedZoneAlreadyExists")

    def certificate(self, region: str) -> None:
        acm = self.c("acm", region)
        arn = acm.request_certificate(DomainName=DOMAIN, ValidationMethod="DNS", IdempotencyToken="wire")[
            "CertificateArn"]
        acm.request_certificate(DomainName=DOMAIN, ValidationMethod="DNS", IdempotencyToken="wire")  # replayed
        acm.describe_certificate(CertificateArn=arn)  # before the record is published
        acm.list_certificates(CertificateStatuses=["PENDING_VALIDATION"])
        refused(lambda: acm.get_certificate(CertificateArn=arn), "RequestInProgressException")
        record = wait_for(lambda: acm.describe_certificate(CertificateArn=arn)["Certificate"][
            "DomainValidationOptions"][0].get("ResourceRecord"))
        self.c("route53").change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {"Name": record["Name"], "Type": "CNAME", "TTL": 300,
                                                      "ResourceRecords": [{"Value": record["Value"]}]}}]})
        wait_for(lambda: acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED", 10)
        acm.get_certificate(CertificateArn=arn)
        acm.list_certificates()
        spare = acm.request_certificate(DomainName=f"spare.{ZONE}", ValidationMethod="DNS")["CertificateArn"]
        page = acm.list_certificates(MaxItems=1)
        acm.list_certificates(MaxItems=1, NextToken=page["NextToken"])
        refused(lambda: acm.list_certificates(NextToken="not-a-token"), "InvalidArgsException")
        acm.delete_certificate(CertificateArn=spare)
        self.certificates[region] = arn

    # ------------------------------------------------------------------ Lambda, API Gateway

    def function_and_api(self, region: str) -> None:
        if not self.role:
            self.role = create_role(self.c)
        role = self.role
        fn = self.c("lambda", region).create_function(
            FunctionName="wire", Runtime="python3.12", Role=role, Handler="app.handler",
            Code={"ZipFile": zip_of({"app.py": FUNCTION})})["FunctionArn"]
        lam = self.c("lambda", region)
        lam.get_function(FunctionName="wire")
        lam.get_function_configuration(FunctionName="wire")
        lam.list_functions()
        lam.invoke(FunctionName="wire", Payload=b"{}", LogType="Tail")
        lam.invoke(FunctionName="wire", Payload=json.dumps({"fail": True}))
        lam.invoke(FunctionName="wire", InvocationType="Event", Payload=b"{}")
        lam.invoke(FunctionName="wire", InvocationType="DryRun")
        lam.publish_version(FunctionName="wire")
        refused(lambda: lam.invoke(FunctionName="nothing-here"), "ResourceNotFoundException")

        apigw = self.c("apigateway", region)
        api = apigw.create_rest_api(name="wire", endpointConfiguration={"types": ["REGIONAL"]},
                                    binaryMediaTypes=["image/png"])["id"]
        root = apigw.get_resources(restApiId=api)["items"][0]["id"]
        health = apigw.create_resource(restApiId=api, parentId=root, pathPart="health")["id"]
        apigw.put_method(restApiId=api, resourceId=health, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=api, resourceId=health, httpMethod="GET", type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{fn}/invocations")
        lam.add_permission(FunctionName="wire", StatementId="apigw", Action="lambda:InvokeFunction",
                           Principal="apigateway.amazonaws.com",
                           SourceArn=f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api}/*/GET/health")
        apigw.create_deployment(restApiId=api, stageName="prod")
        self.apis[region] = api

    def custom_domain(self, region: str) -> None:
        apigw = self.c("apigateway", region)
        created = self.clock.paced(lambda: apigw.create_domain_name(
            domainName=DOMAIN, regionalCertificateArn=self.certificates[region],
            endpointConfiguration={"types": ["REGIONAL"]}, securityPolicy="TLS_1_2"))
        self.regional_domains[region] = created["regionalDomainName"]
        # CreateDomainName is one every 30 s per account and region: the second one is throttled first.
        refused(lambda: apigw.create_domain_name(domainName=DOMAIN, regionalCertificateArn=self.certificates[region],
                                                 endpointConfiguration={"types": ["REGIONAL"]}),
                "TooManyRequestsException")
        refused(lambda: self.clock.paced(lambda: apigw.create_domain_name(
            domainName=DOMAIN, regionalCertificateArn=self.certificates[region],
            endpointConfiguration={"types": ["REGIONAL"]})), "ConflictException")
        apigw.get_base_path_mappings(domainName=DOMAIN)  # none yet
        apigw.create_base_path_mapping(domainName=DOMAIN, restApiId=self.apis[region], stage="prod")
        apigw.get_base_path_mappings(domainName=DOMAIN)
        apigw.get_domain_name(domainName=DOMAIN)
        apigw.get_domain_names()
        apigw.get_domain_names(limit=1)
        refused(lambda: apigw.get_base_path_mappings(domainName=f"none.{ZONE}"), "NotFoundException")
        apigw.update_domain_name(domainName=DOMAIN, patchOperations=[
            {"op": "replace", "path": "/securityPolicy", "value": "TLS_1_2"}])
        acm = self.c("acm", region)
        acm.describe_certificate(CertificateArn=self.certificates[region])  # in use by the domain
        acm.list_certificates()
        refused(lambda: acm.delete_certificate(CertificateArn=self.certificates[region]), "ResourceInUseException")

    # ------------------------------------------------------------------ DynamoDB global table

    def global_table(self) -> None:
        ddb = self.c("dynamodb", REGIONS[0])
        ddb.create_table(TableName="wire", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        ddb.update_table(TableName="wire", ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
        refused(lambda: ddb.update_table(TableName="wire", ReplicaUpdates=[{"Create": {"RegionName": "us-west-2"}}]),
                "ResourceInUseException")
        ddb.describe_table(TableName="wire")
        wait_for(lambda: ddb.describe_table(TableName="wire")["Table"]["TableStatus"] == "ACTIVE", 10)
        self.c("dynamodb", REGIONS[1]).describe_table(TableName="wire")
        ddb.update_table(TableName="wire", ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}])
        refused(lambda: ddb.update_table(TableName="nothing", ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}]),
                "ResourceNotFoundException")
        ddb.delete_table(TableName="wire")

    # ------------------------------------------------------------------ Route 53 health checks, policies

    def health_checks(self) -> None:
        r53 = self.c("route53")
        for region in REGIONS:
            config = {"Type": "HTTPS", "FullyQualifiedDomainName": f"{self.apis[region]}.execute-api.{region}."
                      "amazonaws.com", "Port": 443, "ResourcePath": "/prod/health", "RequestInterval": 30,
                      "FailureThreshold": 3, "EnableSNI": True, "Regions": ["us-east-1", "eu-west-1", "us-west-2"]}
            check = r53.create_health_check(CallerReference=f"wire-{region}", HealthCheckConfig=config)
            r53.create_health_check(CallerReference=f"wire-{region}", HealthCheckConfig=config)  # the same check
            other = {**config, "FailureThreshold": 1}
            refused(lambda r=region, o=other: r53.create_health_check(  # type: ignore[misc]
                CallerReference=f"wire-{r}", HealthCheckConfig=o), "HealthCheckAlreadyExists")
            self.checks.append(check["HealthCheck"]["Id"])
        spare = r53.create_health_check(CallerReference="wire-spare", HealthCheckConfig={
            "Type": "TCP", "IPAddress": "127.0.0.1", "Port": 9, "RequestInterval": 30, "FailureThreshold": 3,
            "Disabled": True})["HealthCheck"]["Id"]
        page = r53.list_health_checks(MaxItems="1")
        while page["IsTruncated"]:
            page = r53.list_health_checks(MaxItems="1", Marker=page["NextMarker"])
        r53.list_health_checks()
        r53.update_health_check(HealthCheckId=spare, FailureThreshold=2)
        r53.get_health_check_status(HealthCheckId=self.checks[0])
        r53.delete_health_check(HealthCheckId=spare)
        refused(lambda: r53.delete_health_check(HealthCheckId=spare), "NoSuchHealthCheck")

    def traffic_policies(self) -> None:
        r53 = self.c("route53")
        checks = dict(zip(REGIONS, self.checks, strict=True))
        document = json.dumps(latency_document(self.regional_domains, checks))
        policies = [r53.create_traffic_policy(Name=f"wire-{i}", Document=document, Comment="wire")["TrafficPolicy"]
                    for i in range(3)]
        refused(lambda: r53.create_traffic_policy(Name="wire-0", Document=document), "TrafficPolicyAlreadyExists")
        first = policies[0]["Id"]
        r53.create_traffic_policy_version(Id=first, Document=document, Comment="second")
        r53.create_traffic_policy_version(Id=first, Document=document)
        self._pages(lambda **kw: r53.list_traffic_policies(MaxItems="1", **kw), "TrafficPolicyIdMarker")
        self._pages(lambda **kw: r53.list_traffic_policy_versions(Id=first, MaxItems="1", **kw),
                    "TrafficPolicyVersionMarker")
        r53.list_traffic_policies()
        r53.get_traffic_policy(Id=first, Version=2)
        r53.update_traffic_policy_comment(Id=first, Version=2, Comment="renamed")
        instances = [r53.create_traffic_policy_instance(HostedZoneId=self.zone_id, Name=f"{name}.{ZONE}", TTL=60,
                                                        TrafficPolicyId=first, TrafficPolicyVersion=1)[
            "TrafficPolicyInstance"]["Id"] for name in ("a", "b", "c")]
        refused(lambda: r53.update_traffic_policy_instance(Id=instances[0], TTL=30, TrafficPolicyId=first,
                                                           TrafficPolicyVersion=2), "PriorRequestNotComplete")
        for inst in instances:
            wait_for(lambda i=inst: r53.get_traffic_policy_instance(Id=i)["TrafficPolicyInstance"]["State"]
                     == "Applied", 10)
        instance_markers = ("HostedZoneIdMarker", "TrafficPolicyInstanceNameMarker", "TrafficPolicyInstanceTypeMarker")
        self._pages(lambda **kw: r53.list_traffic_policy_instances(MaxItems="1", **kw), *instance_markers)
        self._pages(lambda **kw: r53.list_traffic_policy_instances_by_hosted_zone(
            HostedZoneId=self.zone_id, MaxItems="1", **kw), *instance_markers[1:])
        self._pages(lambda **kw: r53.list_traffic_policy_instances_by_policy(
            TrafficPolicyId=first, TrafficPolicyVersion=1, MaxItems="1", **kw), *instance_markers)
        r53.get_traffic_policy_instance_count()
        r53.update_traffic_policy_instance(Id=instances[0], TTL=30, TrafficPolicyId=first, TrafficPolicyVersion=2)
        refused(lambda: r53.delete_traffic_policy(Id=first, Version=1), "TrafficPolicyInUse")
        # The policy record of "c" deleted by hand (Route 53 keeps the instance), then the instance.
        r53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [{
            "Action": "DELETE", "ResourceRecordSet": {"Name": f"c.{ZONE}", "Type": "CNAME",
                                                      "TrafficPolicyInstanceId": instances[2]}}]})
        refused(lambda: r53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [{
            "Action": "CREATE", "ResourceRecordSet": {"Name": f"a.{ZONE}", "Type": "CNAME", "TTL": 60,
                                                      "ResourceRecords": [{"Value": "x.example.org"}]}}]}),
                "InvalidChangeBatch")
        r53.delete_traffic_policy_instance(Id=instances[2])
        r53.delete_traffic_policy(Id=policies[2]["Id"], Version=1)

    def _pages(self, call: Callable[..., Any], *markers: str) -> None:
        page = call()
        for _ in range(20):
            if not page["IsTruncated"]:
                return
            page = call(**{m: page[m] for m in markers if m in page})
        raise AssertionError("the listing did not end")

    def dns_answers(self) -> None:
        r53 = self.c("route53")
        # A change's progress (PENDING, then INSYNC), and a zone deleted again.
        change = r53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {"Name": f"sync.{ZONE}", "Type": "TXT", "TTL": 60,
                                                      "ResourceRecords": [{"Value": '"x"'}]}}]})["ChangeInfo"]
        r53.get_change(Id=change["Id"])
        spare = r53.create_hosted_zone(Name=f"spare.{ZONE}", CallerReference="wire-spare")["HostedZone"]["Id"]
        r53.delete_hosted_zone(Id=spare)
        r53.test_dns_answer(HostedZoneId=self.zone_id, RecordName=f"a.{ZONE}", RecordType="CNAME",
                            EDNS0ClientSubnetIP=client_ip("eu-west-1"), EDNS0ClientSubnetMask="24")
        zones = {"us-east-1": "Z1UJRXOUMOOFQ8", "eu-west-1": "ZLY8HYME6SFDD"}
        r53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [{
            "Action": "CREATE", "ResourceRecordSet": {
                "Name": f"alias.{ZONE}", "Type": "A", "SetIdentifier": region, "Region": region,
                "AliasTarget": {"HostedZoneId": zones[region], "DNSName": self.regional_domains[region],
                                "EvaluateTargetHealth": False}}} for region in REGIONS]})
        for mode in ("names", "addresses"):
            with mock.patch.object(self.sandbox.options, "alias_answers", mode):
                r53.test_dns_answer(HostedZoneId=self.zone_id, RecordName=f"alias.{ZONE}", RecordType="A",
                                    EDNS0ClientSubnetIP=client_ip("us-east-1"))
        r53.test_dns_answer(HostedZoneId=self.zone_id, RecordName=f"nothing.{ZONE}", RecordType="A")
        refused(lambda: r53.test_dns_answer(HostedZoneId="ZNOSUCHZONE", RecordName=DOMAIN, RecordType="A"),
                "NoSuchHostedZone")

    def teardown(self) -> None:
        for region in REGIONS:
            apigw = self.c("apigateway", region)
            self.clock.paced(lambda a=apigw: a.delete_domain_name(domainName=DOMAIN))  # type: ignore[misc]
            self.c("acm", region).describe_certificate(CertificateArn=self.certificates[region])  # no longer in use
            refused(lambda a=apigw: self.clock.paced(  # type: ignore[misc]
                lambda: a.delete_domain_name(domainName=DOMAIN)), "NotFoundException")


@pytest.fixture(scope="module")
def recorded(sandbox_server: Sandbox) -> Iterator[Recorder]:
    sandbox_server.reset()
    recorder = Recorder()
    clock = PacedClock(sandbox_server.clock)
    with mock.patch.object(sandbox_server, "clock", clock):
        Driver(sandbox_server, recorder, clock).run()
    yield recorder
    sandbox_server.reset()


# ---------------------------------------------------------------------------------------------- the tests


LISTED = sorted((service, op) for service, ops in OPERATIONS.items() for op in ops)


@pytest.mark.parametrize(("service", "operation"), LISTED, ids=[f"{s}.{o}" for s, o in LISTED])
def test_the_raw_answer_is_what_aws_writes(recorded: Recorder, service: str, operation: str) -> None:
    calls = recorded.calls.get((service, operation), [])
    assert calls, f"the scenario never called {service} {operation}"
    found = {f"#{i} (HTTP {raw.status}) {p}" for i, (model, raw) in enumerate(calls) for p in wire.problems(model, raw)}
    assert not found, "\n".join(sorted(found))


def test_every_operation_the_layer_answers_is_listed(sandbox: Sandbox) -> None:
    world = _sweep_world(sandbox)
    claimed = _claimed_operations(sandbox, world)
    listed = {(s, o) for s, ops in OPERATIONS.items() for o in ops}
    unlisted = claimed - listed - OBSERVED
    assert not unlisted, f"answered by the sandbox's layer but not checked here: {sorted(unlisted)}"
    assert not listed - claimed, f"listed but answered by moto alone: {sorted(listed - claimed)}"


# ---------------------------------------------------------------------------------------------- the validator


def _model(service: str, operation: str) -> OperationModel:
    return boto3.session.Session().client(service, region_name="us-east-1").meta.service_model.operation_model(
        operation)


def test_the_validator_refuses_a_timestamp_written_as_text() -> None:
    # What UpdateTable(ReplicaUpdates) answered: moto's datetime through str().
    body = json.dumps({"TableDescription": {"TableName": "t", "CreationDateTime": "2026-12-01 08:34:05.015856"}})
    found = wire.problems(_model("dynamodb", "UpdateTable"), wire.RawResponse("UpdateTable", 200, {}, body.encode()))
    assert found == ["TableDescription.CreationDateTime: timestamp must be epoch seconds as a number, found a string "
                     "'2026-12-01 08:34:05.015856'"]
    ok = json.dumps({"TableDescription": {"TableName": "t", "CreationDateTime": 1796113245.015}})
    assert wire.problems(_model("dynamodb", "UpdateTable"), wire.RawResponse("UpdateTable", 200, {}, ok.encode())) == []
    millis = json.dumps({"TableDescription": {"CreationDateTime": 1796113245015}})
    assert "milliseconds" in wire.problems(_model("dynamodb", "UpdateTable"),
                                           wire.RawResponse("UpdateTable", 200, {}, millis.encode()))[0]


def _policies_page(truncated: bool, marker: str | None) -> bytes:
    marker_xml = f"<TrafficPolicyIdMarker>{marker}</TrafficPolicyIdMarker>" if marker is not None else ""
    return (f'<ListTrafficPoliciesResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<TrafficPolicySummaries><TrafficPolicySummary><Id>p1</Id><Name>n</Name><Type>CNAME</Type>"
            f"<LatestVersion>1</LatestVersion><TrafficPolicyCount>1</TrafficPolicyCount></TrafficPolicySummary>"
            f"</TrafficPolicySummaries><IsTruncated>{str(truncated).lower()}</IsTruncated>{marker_xml}"
            f"<MaxItems>1</MaxItems></ListTrafficPoliciesResponse>").encode()


def test_the_validator_refuses_a_next_marker_on_the_last_page() -> None:
    model = _model("route53", "ListTrafficPolicies")

    def check(body: bytes) -> list[str]:
        return wire.problems(model, wire.RawResponse("ListTrafficPolicies", 200, {}, body))

    # What ListTrafficPolicies answered: the last id as the marker of a page that is the last one.
    assert check(_policies_page(False, "p1")) == [
        "TrafficPolicyIdMarker: names a next page although IsTruncated is false"]
    assert check(_policies_page(False, None)) == []
    assert check(_policies_page(True, "p2")) == []
    assert check(_policies_page(True, None)) == ["TrafficPolicyIdMarker: required member is missing",
                                                 "<body>: IsTruncated is true but no next-page marker is given"]


def test_the_validator_checks_members_types_nesting_and_the_root() -> None:
    model = _model("route53", "GetTrafficPolicyInstanceCount")

    def check(body: str) -> list[str]:
        return wire.problems(model, wire.RawResponse("GetTrafficPolicyInstanceCount", 200, {}, body.encode()))

    ns = 'xmlns="https://route53.amazonaws.com/doc/2013-04-01/"'
    assert check(f"<GetTrafficPolicyInstanceCountResponse {ns}><TrafficPolicyInstanceCount>2"
                 "</TrafficPolicyInstanceCount></GetTrafficPolicyInstanceCountResponse>") == []
    assert check(f"<GetTrafficPolicyInstanceCountResponse {ns}><TrafficPolicyInstanceCount>two"
                 "</TrafficPolicyInstanceCount><Extra/></GetTrafficPolicyInstanceCountResponse>") == [
        "Extra: not a member of GetTrafficPolicyInstanceCountResponse",
        "TrafficPolicyInstanceCount: 'two' is not an integer"]
    assert check("<CountResponse><TrafficPolicyInstanceCount>2</TrafficPolicyInstanceCount></CountResponse>") == [
        "<body>: root namespace (none), expected https://route53.amazonaws.com/doc/2013-04-01/",
        "<body>: root element <CountResponse>, expected <GetTrafficPolicyInstanceCountResponse>"]
    acm = _model("acm", "DescribeCertificate")
    body = {"Certificate": {"CertificateArn": 1, "InUseBy": "arn", "Status": "DONE", "CreatedAt": "2026-01-01",
                            "Options": {"Export": "DISABLED", "Color": "red"}, "Serial": None}}
    found = wire.problems(acm, wire.RawResponse("DescribeCertificate", 200, {}, json.dumps(body).encode()))
    assert found == ["Certificate.CertificateArn: expected a string, found an integer 1",
                     "Certificate.InUseBy: expected a list, found a string",
                     f"Certificate.Status: 'DONE' is not one of {list(_shape(acm, 'Status').enum)}",
                     "Certificate.CreatedAt: timestamp must be epoch seconds as a number, found a string '2026-01-01'",
                     "Certificate.Options.Color: not a member of CertificateOptions",
                     "Certificate.Serial: null (botocore never serializes null)"]
    errors = wire.problems(acm, wire.RawResponse("DescribeCertificate", 400, {}, b'{"message": "no"}'))
    assert errors == ["<error>: no error code in x-amzn-ErrorType or __type"]


def _shape(operation: OperationModel, member: str) -> Shape:
    return operation.output_shape.members["Certificate"].members[member]


# ---------------------------------------------------------------------------------------------- the sweep


@dataclass
class SweepWorld:
    """What makes the layer's conditional answers answer: a pending certificate, a domain without mappings."""

    pending_certificate: str
    domain: str


def _sweep_world(sandbox: Sandbox) -> SweepWorld:
    r53 = make_client(sandbox, "route53", "us-east-1")
    acm = make_client(sandbox, "acm", "us-east-1")
    zone = r53.create_hosted_zone(Name=ZONE, CallerReference="sweep")["HostedZone"]["Id"]
    issued = acm.request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")["CertificateArn"]
    record = wait_for(lambda: acm.describe_certificate(CertificateArn=issued)["Certificate"][
        "DomainValidationOptions"][0].get("ResourceRecord"))
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {"Name": record["Name"], "Type": "CNAME", "TTL": 300,
                              "ResourceRecords": [{"Value": record["Value"]}]}}]})
    wait_for(lambda: acm.describe_certificate(CertificateArn=issued)["Certificate"]["Status"] == "ISSUED", 10)
    make_client(sandbox, "apigateway", "us-east-1").create_domain_name(
        domainName=DOMAIN, regionalCertificateArn=issued, endpointConfiguration={"types": ["REGIONAL"]})
    pending = acm.request_certificate(DomainName=f"pending.{ZONE}", ValidationMethod="DNS")["CertificateArn"]
    return SweepWorld(pending, DOMAIN)


class _Sent(Exception):
    def __init__(self, request: Any):
        self.request = request


def _claimed_operations(sandbox: Sandbox, world: SweepWorld) -> set[tuple[str, str]]:
    """Every (service, operation) that some extension answers or hands to moto itself (to rewrite the answer)."""
    overrides = {"CertificateArn": world.pending_certificate, "domainName": world.domain}
    claimed: set[tuple[str, str]] = set()
    for service in SWEPT:
        client = make_client(sandbox, service, "us-east-1", parameter_validation=False)

        def stop(request: Any, **_: Any) -> None:
            raise _Sent(request)

        client.meta.events.register_first("before-send", stop)
        model = client.meta.service_model
        for name in model.operation_names:
            operation = model.operation_model(name)
            params = _dummy(operation.input_shape, overrides) if operation.input_shape is not None else {}
            try:
                getattr(client, xform_name(name))(**params)
            except _Sent as sent:
                if _claims(sandbox, sent.request):
                    claimed.add((service, name))
    return claimed


def _claims(sandbox: Sandbox, request: Any) -> bool:
    url = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    environ = EnvironBuilder(method=request.method, path=url.path, query_string=url.query, headers=headers,
                             data=body if isinstance(body, bytes) else str(body).encode(),
                             base_url=sandbox.url).get_environ()
    req = SandboxRequest.from_environ(environ)
    forwarded: list[SandboxRequest] = []

    def no_moto(forwarded_req: SandboxRequest) -> Forwarded:
        forwarded.append(forwarded_req)
        return Forwarded(500, [("Content-Type", "application/json")], b"{}")

    with mock.patch.object(sandbox.app, "forward", no_moto):
        for ext in sandbox.app.extensions:
            if isinstance(ext, ControlPlaneThrottle):
                # It answers any API Gateway call of a caller faster than AWS's quotas (the Driver records
                # such an answer), not an operation of its own.
                continue
            try:
                answered = ext.handle(req)
            except Exception:  # an extension that reads the request and fails on dummy values claimed it
                return True
            if answered is not None or forwarded:
                return True
    return False


def _dummy(shape: Shape, overrides: dict[str, Any], depth: int = 0) -> Any:
    """A value for every member: the layer's conditions on the request (a member present) are all met."""
    kind = shape.type_name
    if kind == "structure":
        if depth > 5:
            return {}
        return {name: overrides[name] if name in overrides else _dummy(member, overrides, depth + 1)
                for name, member in shape.members.items()}
    if kind == "list":
        return [] if depth > 5 else [_dummy(shape.member, overrides, depth + 1)]
    if kind == "map":
        return {"k": _dummy(shape.value, overrides, depth + 1)}
    return {"string": (shape.enum[0] if getattr(shape, "enum", None) else "x"), "integer": 1, "long": 1,
            "boolean": True, "float": 1.0, "double": 1.0, "blob": b"{}",
            "timestamp": datetime(2026, 1, 1, tzinfo=timezone.utc), "document": {}}.get(kind, "x")


def test_sweep_requests_reach_the_extensions_as_clients_send_them(sandbox: Sandbox) -> None:
    # The sweep builds requests with botocore and hands them to the extensions: a known answer comes back.
    world = SweepWorld(pending_certificate=f"arn:aws:acm:us-east-1:{ACCOUNT_ID}:certificate/{uuid.uuid4()}",
                       domain="none.example.com")
    claimed = _claimed_operations(sandbox, world)
    assert ("route53", "TestDNSAnswer") in claimed and ("iam", "GetRole") not in claimed
