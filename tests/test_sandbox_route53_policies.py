"""Traffic policies, versions and instances in the sandbox, through boto3 and the AWS CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from multiregion.sandbox.route53_policies import MAX_DOCUMENT, POLICY_RECORD_VALUE
from multiregion.sandbox.server import Sandbox
from tests.conftest import wait_for
from tests.test_sandbox_route53 import error_of


def latency_document(endpoints: dict[str, str], checks: dict[str, str] | None = None,
                     record_type: str = "CNAME") -> dict[str, Any]:
    """A latency rule over value endpoints, one per region, as the routing stage writes it."""
    checks = checks or {}
    return {
        "AWSPolicyFormatVersion": "2015-10-01",
        "RecordType": record_type,
        "StartRule": "by-latency",
        "Endpoints": {f"ep-{r}": {"Type": "value", "Value": v} for r, v in endpoints.items()},
        "Rules": {"by-latency": {"RuleType": "latency", "Regions": [
            {"Region": r, "EndpointReference": f"ep-{r}", "EvaluateTargetHealth": True,
             **({"HealthCheck": checks[r]} if r in checks else {})} for r in endpoints]}},
    }


HOSTS = {"eu-west-1": "d-eu.execute-api.eu-west-1.amazonaws.com",
         "us-east-1": "d-us.execute-api.us-east-1.amazonaws.com"}


@pytest.fixture
def r53(aws: Any) -> Any:
    return aws("route53")


@pytest.fixture
def zone(r53: Any) -> str:
    return r53.create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"].split("/")[-1]


def create_policy(r53: Any, name: str = "items", doc: dict[str, Any] | None = None) -> dict[str, Any]:
    document = json.dumps(doc or latency_document(HOSTS))
    return r53.create_traffic_policy(Name=name, Document=document, Comment="first")["TrafficPolicy"]


def applied(r53: Any, instance_id: str) -> bool:
    return r53.get_traffic_policy_instance(Id=instance_id)["TrafficPolicyInstance"]["State"] == "Applied"


def test_policy_versions_and_listing(r53: Any) -> None:
    created = r53.create_traffic_policy(Name="items", Document=json.dumps(latency_document(HOSTS)))
    policy = created["TrafficPolicy"]
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["Location"].endswith(f"/trafficpolicy/{policy['Id']}/1")
    assert (policy["Version"], policy["Name"], policy["Type"]) == (1, "items", "CNAME")
    second = r53.create_traffic_policy_version(Id=policy["Id"], Document=json.dumps(latency_document(
        {"eu-west-1": HOSTS["eu-west-1"]})), Comment="eu only")["TrafficPolicy"]
    assert second["Version"] == 2
    got = r53.get_traffic_policy(Id=policy["Id"], Version=2)["TrafficPolicy"]
    assert json.loads(got["Document"])["Rules"]["by-latency"]["Regions"][0]["Region"] == "eu-west-1"
    assert got["Comment"] == "eu only"
    r53.update_traffic_policy_comment(Id=policy["Id"], Version=1, Comment="renamed")
    assert r53.get_traffic_policy(Id=policy["Id"], Version=1)["TrafficPolicy"]["Comment"] == "renamed"
    summaries = r53.list_traffic_policies()["TrafficPolicySummaries"]
    assert summaries == [{"Id": policy["Id"], "Name": "items", "Type": "CNAME", "LatestVersion": 2,
                          "TrafficPolicyCount": 2}]
    versions = r53.list_traffic_policy_versions(Id=policy["Id"])["TrafficPolicies"]
    assert [v["Version"] for v in versions] == [1, 2]
    assert error_of(lambda: create_policy(r53)) == ("TrafficPolicyAlreadyExists", 409)
    assert error_of(lambda: r53.get_traffic_policy(Id=policy["Id"], Version=3)) == ("NoSuchTrafficPolicy", 404)


def test_instance_lifecycle(r53: Any, zone: str) -> None:
    policy = create_policy(r53)
    created = r53.create_traffic_policy_instance(HostedZoneId=zone, Name="api.example.com", TTL=60,
                                                 TrafficPolicyId=policy["Id"], TrafficPolicyVersion=1)
    inst = created["TrafficPolicyInstance"]
    assert inst["State"] == "Creating" and inst["Name"] == "api.example.com." and inst["TrafficPolicyType"] == "CNAME"
    assert created["Location"].endswith("/trafficpolicyinstance/" + inst["Id"])
    wait_for(lambda: applied(r53, inst["Id"]))

    # The policy record is in the zone, the instance's.
    records = [r for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
               if r["Name"] == "api.example.com."]
    assert records == [{"Name": "api.example.com.", "Type": "CNAME", "TrafficPolicyInstanceId": inst["Id"],
                        "ResourceRecords": [{"Value": POLICY_RECORD_VALUE}]}]

    assert [i["Id"] for i in r53.list_traffic_policy_instances()["TrafficPolicyInstances"]] == [inst["Id"]]
    assert [i["Id"] for i in r53.list_traffic_policy_instances_by_hosted_zone(
        HostedZoneId=zone)["TrafficPolicyInstances"]] == [inst["Id"]]
    assert [i["Id"] for i in r53.list_traffic_policy_instances_by_policy(
        TrafficPolicyId=policy["Id"], TrafficPolicyVersion=1)["TrafficPolicyInstances"]] == [inst["Id"]]
    assert r53.get_traffic_policy_instance_count()["TrafficPolicyInstanceCount"] == 1

    # Move the instance to a new version; the old version is then free to delete, the new one is not.
    r53.create_traffic_policy_version(Id=policy["Id"], Document=json.dumps(latency_document(HOSTS)))
    updated = r53.update_traffic_policy_instance(Id=inst["Id"], TTL=30, TrafficPolicyId=policy["Id"],
                                                 TrafficPolicyVersion=2)["TrafficPolicyInstance"]
    assert (updated["TrafficPolicyVersion"], updated["TTL"], updated["State"]) == (2, 30, "Updating")
    wait_for(lambda: applied(r53, inst["Id"]))
    assert error_of(lambda: r53.delete_traffic_policy(Id=policy["Id"], Version=2)) == ("TrafficPolicyInUse", 400)
    r53.delete_traffic_policy(Id=policy["Id"], Version=1)
    assert [v["Version"] for v in r53.list_traffic_policy_versions(Id=policy["Id"])["TrafficPolicies"]] == [2]

    r53.delete_traffic_policy_instance(Id=inst["Id"])
    assert not [r for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
                if r["Name"] == "api.example.com."]
    r53.delete_traffic_policy(Id=policy["Id"], Version=2)
    assert r53.list_traffic_policies()["TrafficPolicySummaries"] == []
    # As on AWS, a deleted policy can still be read by id and version.
    assert r53.get_traffic_policy(Id=policy["Id"], Version=2)["TrafficPolicy"]["Name"] == "items"
    r53.delete_hosted_zone(Id=zone)


def test_instances_are_unique_per_zone_and_name_and_asynchronous(r53: Any, zone: str, sandbox: Sandbox) -> None:
    policy = create_policy(r53)
    kwargs = {"HostedZoneId": zone, "Name": "api.example.com", "TTL": 60, "TrafficPolicyId": policy["Id"],
              "TrafficPolicyVersion": 1}
    inst = r53.create_traffic_policy_instance(**kwargs)["TrafficPolicyInstance"]
    # Still Creating: a change now must wait, as on AWS (botocore retries this error; this client does not).
    once = boto3.client("route53", region_name="us-east-1", endpoint_url=sandbox.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))
    update = {"Id": inst["Id"], "TTL": 60, "TrafficPolicyId": policy["Id"], "TrafficPolicyVersion": 1}
    assert error_of(lambda: once.update_traffic_policy_instance(**update)) == ("PriorRequestNotComplete", 400)
    assert error_of(lambda: r53.create_traffic_policy_instance(**kwargs)) == ("TrafficPolicyInstanceAlreadyExists", 409)
    a_record = r53.create_traffic_policy(Name="a-record", Document=json.dumps(latency_document(
        {"eu-west-1": "192.0.2.1"}, record_type="A")))["TrafficPolicy"]
    wait_for(lambda: applied(r53, inst["Id"]))
    assert error_of(lambda: r53.update_traffic_policy_instance(
        Id=inst["Id"], TTL=60, TrafficPolicyId=a_record["Id"], TrafficPolicyVersion=1)) == ("ConflictingTypes", 400)
    assert error_of(lambda: r53.create_traffic_policy_instance(**{**kwargs, "HostedZoneId": "ZNOSUCHZONE"})) == \
        ("NoSuchHostedZone", 404)


def test_the_policy_record_is_the_instances(r53: Any, zone: str) -> None:
    policy = create_policy(r53)
    inst = r53.create_traffic_policy_instance(HostedZoneId=zone, Name="api.example.com", TTL=60,
                                              TrafficPolicyId=policy["Id"], TrafficPolicyVersion=1)
    inst_id = inst["TrafficPolicyInstance"]["Id"]
    upsert = {"Action": "UPSERT", "ResourceRecordSet": {"Name": "api.example.com", "Type": "CNAME", "TTL": 60,
                                                        "ResourceRecords": [{"Value": "elsewhere.example.org"}]}}
    assert error_of(lambda: r53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [upsert]}))[0] == "InvalidChangeBatch"
    # Deleting it by hand is allowed; the instance stays (and is still billed on AWS).
    other = {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.example.com", "Type": "A", "TTL": 60,
                                                       "ResourceRecords": [{"Value": "192.0.2.7"}]}}
    delete = {"Action": "DELETE", "ResourceRecordSet": {"Name": "api.example.com.", "Type": "CNAME",
                                                        "TrafficPolicyInstanceId": inst_id}}
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [delete, other]})
    names = {(r["Name"], r["Type"]) for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]}
    assert ("api.example.com.", "CNAME") not in names and ("www.example.com.", "A") in names
    assert r53.get_traffic_policy_instance(Id=inst_id)["TrafficPolicyInstance"]["Id"] == inst_id


BAD_DOCUMENTS = {
    "not json": "{not json",
    "format version": json.dumps({**latency_document(HOSTS), "AWSPolicyFormatVersion": "2012-10-17"}),
    "record type": json.dumps({**latency_document(HOSTS), "RecordType": "ALIAS"}),
    "no start": json.dumps({k: v for k, v in latency_document(HOSTS).items() if k != "StartRule"}),
    "dangling endpoint": json.dumps(latency_document(HOSTS) | {"Endpoints": {}}),
    "unknown rule type": json.dumps(latency_document(HOSTS) | {"Rules": {"by-latency": {"RuleType": "nearest"}}}),
    "unknown region": json.dumps(latency_document({"mars-north-1": "x.example.com"})),
    "missing health check": json.dumps(latency_document(HOSTS, {"eu-west-1": "no-such-check"})),
    "not an address": json.dumps(latency_document(HOSTS, record_type="A")),
    "rule loop": json.dumps({"AWSPolicyFormatVersion": "2015-10-01", "RecordType": "CNAME", "StartRule": "a",
                             "Endpoints": {}, "Rules": {
                                 "a": {"RuleType": "failover", "Primary": {"RuleReference": "b"},
                                       "Secondary": {"RuleReference": "b"}},
                                 "b": {"RuleType": "failover", "Primary": {"RuleReference": "a"},
                                       "Secondary": {"RuleReference": "a"}}}}),
}


@pytest.mark.parametrize("problem", sorted(BAD_DOCUMENTS))
def test_invalid_documents_are_refused(r53: Any, problem: str) -> None:
    with pytest.raises(Exception) as err:
        r53.create_traffic_policy(Name="bad", Document=BAD_DOCUMENTS[problem])
    error = err.value.response["Error"]  # type: ignore[attr-defined]
    assert error["Code"] == "InvalidTrafficPolicyDocument"
    assert error["Message"]


def test_oversized_documents_are_refused(r53: Any) -> None:
    doc = latency_document(HOSTS) | {"Padding": "x" * MAX_DOCUMENT}
    assert error_of(lambda: r53.create_traffic_policy(Name="big", Document=json.dumps(doc)))[0] == "InvalidInput"


def test_other_rule_types_are_accepted(r53: Any) -> None:
    doc = {"AWSPolicyFormatVersion": "2015-10-01", "RecordType": "A", "StartRule": "geo",
           "Endpoints": {"one": {"Type": "value", "Value": "192.0.2.1"}, "two": {"Type": "value", "Value": "192.0.2.2"},
                         "lb": {"Type": "elastic-load-balancer", "Value": "lb-1.eu-west-1.elb.amazonaws.com"}},
           "Rules": {
               "geo": {"RuleType": "geo", "Locations": [{"Country": "DE", "RuleReference": "weights"},
                                                         {"IsDefault": True, "RuleReference": "near"}]},
               "weights": {"RuleType": "weighted", "Items": [{"Weight": "10", "EndpointReference": "one"},
                                                             {"Weight": "20", "EndpointReference": "two"}]},
               "near": {"RuleType": "geoproximity", "GeoproximityLocations": [
                   {"Region": "eu-west-1", "Bias": "10", "EndpointReference": "lb"},
                   {"Latitude": "40.0", "Longitude": "-75.0", "RuleReference": "many"}]},
               "many": {"RuleType": "multivalue", "Items": [{"EndpointReference": "one"},
                                                            {"EndpointReference": "two"}]}}}
    assert create_policy(r53, "mixed", doc)["Type"] == "A"


def test_the_aws_cli_lists_policies(r53: Any, sandbox: Sandbox, tmp_path: Path) -> None:
    policy = create_policy(r53)
    aws_cli = Path(sys.executable).with_name("aws")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    result = subprocess.run([str(aws_cli), "route53", "list-traffic-policies", "--endpoint-url", sandbox.url,
                             "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["TrafficPolicySummaries"][0]["Id"] == policy["Id"]


def test_policy_pages_end_without_a_marker_and_resume_past_a_deleted_policy(r53: Any) -> None:
    ids = [create_policy(r53, f"p{i}")["Id"] for i in range(3)]
    last = r53.list_traffic_policies(MaxItems="3")
    # The last page names no next page: a client that pages until the marker is empty stops here.
    assert not last["IsTruncated"] and "TrafficPolicyIdMarker" not in last
    first = r53.list_traffic_policies(MaxItems="1")
    assert first["IsTruncated"] and first["TrafficPolicyIdMarker"] == ids[1]
    r53.delete_traffic_policy(Id=ids[1], Version=1)  # the policy the marker names, gone between two pages
    rest = r53.list_traffic_policies(MaxItems="1", TrafficPolicyIdMarker=first["TrafficPolicyIdMarker"])
    assert [s["Id"] for s in rest["TrafficPolicySummaries"]] == [ids[2]] and not rest["IsTruncated"]
    # A marker Route 53 never gave is refused, not read as "from the start" (which loops a paging client).
    assert error_of(lambda: r53.list_traffic_policies(TrafficPolicyIdMarker="no-such-policy")) == ("InvalidInput", 400)


def test_version_pages_end_without_a_marker(r53: Any) -> None:
    policy = create_policy(r53)
    r53.create_traffic_policy_version(Id=policy["Id"], Document=json.dumps(latency_document(HOSTS)))
    first = r53.list_traffic_policy_versions(Id=policy["Id"], MaxItems="1")
    assert first["IsTruncated"] and first["TrafficPolicyVersionMarker"] == "2"
    last = r53.list_traffic_policy_versions(Id=policy["Id"], MaxItems="1", TrafficPolicyVersionMarker="2")
    assert [v["Version"] for v in last["TrafficPolicies"]] == [2]
    assert not last["IsTruncated"] and "TrafficPolicyVersionMarker" not in last
