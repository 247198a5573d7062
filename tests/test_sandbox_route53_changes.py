"""Route 53 change status in the sandbox: PENDING then INSYNC (under strict), and policy instances that take
their time to be Applied."""

from __future__ import annotations

import json
from typing import Any

import pytest

from multiregion.sandbox.server import Sandbox
from tests.conftest import DrivenClock
from tests.test_sandbox_route53 import error_of
from tests.test_sandbox_route53_policies import HOSTS, create_policy, latency_document


@pytest.fixture
def r53(aws: Any) -> Any:
    return aws("route53")


def upsert(r53: Any, zone_id: str, name: str = "www.example.com") -> dict[str, Any]:
    return r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {"Name": name, "Type": "CNAME", "TTL": 60,
                                                  "ResourceRecords": [{"Value": "elsewhere.example.org"}]}}]})[
        "ChangeInfo"]


def new_zone(r53: Any) -> tuple[str, dict[str, Any]]:
    created = r53.create_hosted_zone(Name="example.com", CallerReference="changes")
    return created["HostedZone"]["Id"].split("/")[-1], created["ChangeInfo"]


def test_a_record_change_is_pending_until_it_has_propagated(r53: Any, strict: Sandbox, clock: DrivenClock,
                                                            aws_timing: Sandbox) -> None:
    zone_id, _ = new_zone(r53)
    info = upsert(r53, zone_id)
    assert info["Status"] == "PENDING"
    assert r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "PENDING"
    clock.advance(59.0)  # route53_insync: 60 AWS seconds
    assert r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "PENDING"
    clock.advance(1.0)
    got = r53.get_change(Id=info["Id"])["ChangeInfo"]
    assert got["Status"] == "INSYNC" and got["Id"] == info["Id"] and got["SubmittedAt"] == info["SubmittedAt"]
    # The record itself is there from the start, as on AWS.
    names = [r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]]
    assert "www.example.com." in names


def test_every_change_has_its_own_id(r53: Any, strict: Sandbox, clock: DrivenClock, aws_timing: Sandbox) -> None:
    zone_id, zone_change = new_zone(r53)
    first = upsert(r53, zone_id, "a.example.com")
    clock.advance(30.0)
    second = upsert(r53, zone_id, "b.example.com")
    assert len({zone_change["Id"], first["Id"], second["Id"]}) == 3
    clock.advance(30.0)
    assert r53.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    assert r53.get_change(Id=second["Id"])["ChangeInfo"]["Status"] == "PENDING"


def test_hosted_zone_changes_are_pending_too(r53: Any, strict: Sandbox, clock: DrivenClock) -> None:
    zone_id, info = new_zone(r53)
    assert info["Status"] == "PENDING"
    deleted = r53.delete_hosted_zone(Id=zone_id)["ChangeInfo"]
    assert deleted["Status"] == "PENDING" and deleted["Id"] != info["Id"]
    clock.advance(0.0)  # the fast profile: 0 s, INSYNC at the first look
    assert r53.get_change(Id=deleted["Id"])["ChangeInfo"]["Status"] == "INSYNC"


def test_an_unknown_change_is_refused(r53: Any, strict: Sandbox) -> None:
    assert error_of(lambda: r53.get_change(Id="C0000000000000")) == ("NoSuchChange", 404)


def test_without_strict_changes_are_in_sync_at_once(r53: Any, lenient: Sandbox) -> None:
    zone_id, _ = new_zone(r53)
    info = upsert(r53, zone_id)
    assert info["Status"] == "INSYNC"
    assert r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "INSYNC"


def test_a_policy_instance_is_applied_after_its_duration(r53: Any, clock: DrivenClock, aws_timing: Sandbox) -> None:
    zone_id, _ = new_zone(r53)
    policy = create_policy(r53, doc=latency_document(HOSTS))
    created = r53.create_traffic_policy_instance(HostedZoneId=zone_id, Name="api.example.com", TTL=60,
                                                 TrafficPolicyId=policy["Id"], TrafficPolicyVersion=1)
    instance_id = created["TrafficPolicyInstance"]["Id"]

    def state() -> str:
        return r53.get_traffic_policy_instance(Id=instance_id)["TrafficPolicyInstance"]["State"]

    clock.advance(59.0)  # policy_instance_applied: 60 AWS seconds
    assert state() == "Creating"
    clock.advance(1.0)
    assert state() == "Applied"
    version = r53.create_traffic_policy_version(Id=policy["Id"], Document=json.dumps(latency_document(
        {"eu-west-1": HOSTS["eu-west-1"]})))["TrafficPolicy"]["Version"]
    r53.update_traffic_policy_instance(Id=instance_id, TTL=60, TrafficPolicyId=policy["Id"],
                                       TrafficPolicyVersion=version)
    assert state() == "Updating"
    clock.advance(60.0)
    assert state() == "Applied"
