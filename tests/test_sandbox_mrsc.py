"""Strong global tables (multi-Region strong consistency) in the sandbox: made, refused, read, written, cut off,
dissolved, as AWS does (the rules and their sources: multiregion/sandbox/mrsc.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from multiregion.sandbox import mrsc
from multiregion.sandbox.server import Sandbox
from tests import wire
from tests.conftest import wait_for
from tests.test_sandbox_dynamodb import KEY
from tests.test_sandbox_wire import Recorder

EAST, OHIO, OREGON = "us-east-1", "us-east-2", "us-west-2"  # the US Region set

Clients = Callable[[str], Any]


@pytest.fixture
def ddb(sandbox: Sandbox) -> Clients:
    """DynamoDB clients that make each call once: an error is the sandbox's answer, not a retry's."""
    made: dict[str, Any] = {}

    def client(region: str) -> Any:
        if region not in made:
            made[region] = boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.url,
                                        aws_access_key_id="testing", aws_secret_access_key="testing",
                                        config=Config(retries={"total_max_attempts": 1}))
        return made[region]

    return client


def strong(ddb: Clients, witness: bool = True, clock: Any = None) -> None:
    """Table t in us-east-1 made strong: a replica in us-east-2 and a witness in us-west-2, or three replicas
    (on a driven `clock`, moved past the replicas' creation)."""
    ddb(EAST).create_table(TableName="t", **KEY)
    if witness:
        ddb(EAST).update_table(TableName="t", MultiRegionConsistency="STRONG",
                               ReplicaUpdates=[{"Create": {"RegionName": OHIO}}],
                               GlobalTableWitnessUpdates=[{"Create": {"RegionName": OREGON}}])
    else:
        ddb(EAST).update_table(TableName="t", MultiRegionConsistency="STRONG",
                               ReplicaUpdates=[{"Create": {"RegionName": OHIO}}, {"Create": {"RegionName": OREGON}}])
    if clock is not None:
        clock.advance(1.0)  # replica_active in the fast profile: 0.5 s
    wait_for(lambda: status(ddb(EAST)) == "ACTIVE")


def status(client: Any) -> str:
    return client.describe_table(TableName="t")["Table"]["TableStatus"]


def describe(client: Any) -> dict[str, Any]:
    return client.describe_table(TableName="t")["Table"]


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def put(client: Any, key: str, value: str) -> Any:
    return client.put_item(TableName="t", Item={"id": {"S": key}, "v": {"S": value}})


def value(client: Any, key: str, consistent: bool = True) -> str | None:
    item = client.get_item(TableName="t", Key={"id": {"S": key}}, ConsistentRead=consistent).get("Item")
    return item["v"]["S"] if item else None


# ---------------------------------------------------------------------------------------------- made


def test_a_replica_and_a_witness_make_a_strong_global_table_in_one_request(ddb: Clients) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    answer = ddb(EAST).update_table(TableName="t", MultiRegionConsistency="STRONG",
                                    ReplicaUpdates=[{"Create": {"RegionName": OHIO}}],
                                    GlobalTableWitnessUpdates=[{"Create": {"RegionName": OREGON}}])["TableDescription"]
    assert answer["MultiRegionConsistency"] == "STRONG" and answer["GlobalTableVersion"] == "2019.11.21"
    assert answer["Replicas"] == [{"RegionName": OHIO, "ReplicaStatus": "CREATING"}]
    assert answer["GlobalTableWitnesses"] == [{"RegionName": OREGON, "WitnessStatus": "CREATING"}]
    assert answer["TableStatus"] == "UPDATING"
    wait_for(lambda: status(ddb(EAST)) == "ACTIVE")
    for region, other in ((EAST, OHIO), (OHIO, EAST)):  # every replica's view, each listing the other
        table = describe(ddb(region))
        assert table["MultiRegionConsistency"] == "STRONG"
        assert table["Replicas"] == [{"RegionName": other, "ReplicaStatus": "ACTIVE"}]
        assert table["GlobalTableWitnesses"] == [{"RegionName": OREGON, "WitnessStatus": "ACTIVE"}]
    # A witness keeps replicated change data, not a table.
    assert error_of(lambda: describe(ddb(OREGON)))[0] == "ResourceNotFoundException"


def test_three_replicas_make_a_strong_global_table_without_a_witness(ddb: Clients) -> None:
    strong(ddb, witness=False)
    table = describe(ddb(OREGON))
    assert table["MultiRegionConsistency"] == "STRONG" and "GlobalTableWitnesses" not in table
    assert {r["RegionName"] for r in table["Replicas"]} == {EAST, OHIO}


def test_an_eventual_global_table_shows_no_consistency_mode(ddb: Clients) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    ddb(EAST).update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": OHIO}}])
    wait_for(lambda: status(ddb(EAST)) == "ACTIVE")
    # AWS does not echo the default EVENTUAL: the member is absent, as on a single-region table.
    for region in (EAST, OHIO):
        table = describe(ddb(region))
        assert table["GlobalTableVersion"] == "2019.11.21"
        assert "MultiRegionConsistency" not in table and "GlobalTableWitnesses" not in table


def test_the_strong_group_is_creating_for_its_duration_then_active(ddb: Clients, strict: Sandbox, clock: Any,
                                                                   aws_timing: Sandbox) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    clock.advance(7.0)  # table_active
    ddb(EAST).update_table(TableName="t", MultiRegionConsistency="STRONG",
                           ReplicaUpdates=[{"Create": {"RegionName": OHIO}}],
                           GlobalTableWitnessUpdates=[{"Create": {"RegionName": OREGON}}])
    clock.advance(179.0)  # replica_active: 180 AWS seconds at time scale 1
    table = describe(ddb(EAST))
    assert table["TableStatus"] == "UPDATING" and table["GlobalTableWitnesses"][0]["WitnessStatus"] == "CREATING"
    clock.advance(1.0)
    table = describe(ddb(EAST))
    assert table["TableStatus"] == "ACTIVE" and table["GlobalTableWitnesses"][0]["WitnessStatus"] == "ACTIVE"


# ---------------------------------------------------------------------------------------------- refused


def replica(region: str) -> dict[str, Any]:
    return {"Create": {"RegionName": region}}


REFUSED_CREATIONS = {
    "one replica and nothing else": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica(OHIO)]}, mrsc.UNSUPPORTED_COUNT),
    "a witness plus three replicas": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica(OHIO), replica(OREGON)],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": "eu-west-1"}}]}, mrsc.UNSUPPORTED_COUNT),
    "regions of two region sets": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica("eu-west-1")],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OREGON}}]},
        "Unsupported Region(s) specified for global tables with MultiRegionConsistency set to STRONG: [eu-west-1]."),
    "a region of no region set": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica("us-west-1")],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OREGON}}]},
        "Unsupported Region(s) specified for global tables with MultiRegionConsistency set to STRONG: [us-west-1]."),
    "two witnesses": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica(OHIO)],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OREGON}}, {"Create": {"RegionName": OREGON}}]},
        mrsc.too_many_witnesses(2)),
    "a witness without STRONG": (
        {"ReplicaUpdates": [replica(OHIO)], "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OREGON}}]},
        mrsc.WITNESS_NEEDS_STRONG),
    "a witness with EVENTUAL": (
        {"MultiRegionConsistency": "EVENTUAL", "ReplicaUpdates": [replica(OHIO)],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OREGON}}]}, mrsc.WITNESS_NEEDS_STRONG),
    "a witness where a replica goes": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica(OHIO)],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OHIO}}]}, mrsc.SAME_TARGET),
    "a witness in the table's own region": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica(OHIO)],
         "GlobalTableWitnessUpdates": [{"Create": {"RegionName": EAST}}]}, mrsc.WITNESS_LOCAL),
    "a witness and no replica": (
        {"MultiRegionConsistency": "STRONG", "GlobalTableWitnessUpdates": [{"Create": {"RegionName": OREGON}}]},
        mrsc.NOTHING_TO_UPDATE),
    "another change in the same request": (
        {"MultiRegionConsistency": "STRONG", "ReplicaUpdates": [replica(OHIO), replica(OREGON)],
         "DeletionProtectionEnabled": True}, mrsc.OTHER_FIELDS),
}


@pytest.mark.parametrize(("request_", "message"), list(REFUSED_CREATIONS.values()), ids=list(REFUSED_CREATIONS))
def test_aws_refuses_a_strong_global_table_of_the_wrong_shape(ddb: Clients, request_: dict[str, Any],
                                                              message: str) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    assert error_of(lambda: ddb(EAST).update_table(TableName="t", **request_)) == ("ValidationException", message)
    # Refused whole: no replica was made, the table is still a single-region table.
    table = describe(ddb(EAST))
    assert "Replicas" not in table and "MultiRegionConsistency" not in table
    assert ddb(OHIO).list_tables()["TableNames"] == []


def test_a_table_that_holds_items_cannot_become_strong(ddb: Clients) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    put(ddb(EAST), "k", "already here")
    assert error_of(lambda: ddb(EAST).update_table(TableName="t", MultiRegionConsistency="STRONG",
                                                   ReplicaUpdates=[replica(OHIO), replica(OREGON)])) == (
        "ValidationException", mrsc.NOT_EMPTY)
    assert ddb(OHIO).list_tables()["TableNames"] == []


def test_an_eventual_global_table_cannot_become_strong(ddb: Clients) -> None:
    irl, ldn = ddb("eu-west-1"), ddb("eu-west-2")
    irl.create_table(TableName="t", **KEY)
    irl.update_table(TableName="t", ReplicaUpdates=[replica("eu-west-2")])
    wait_for(lambda: status(irl) == "ACTIVE")
    assert error_of(lambda: irl.update_table(TableName="t", MultiRegionConsistency="STRONG",
                                             ReplicaUpdates=[replica("eu-west-3")],
                                             GlobalTableWitnessUpdates=[{"Create": {"RegionName": "eu-central-1"}}])) \
        == ("ValidationException", mrsc.EXISTING)
    # Counting comes first, as AWS answered a one-replica STRONG request on an eventual global table.
    assert error_of(lambda: irl.update_table(TableName="t", MultiRegionConsistency="STRONG",
                                             ReplicaUpdates=[replica("eu-west-3")])) \
        == ("ValidationException", mrsc.UNSUPPORTED_COUNT)
    assert "MultiRegionConsistency" not in describe(ldn)
    assert ddb("eu-west-3").list_tables()["TableNames"] == []


def test_nothing_joins_a_strong_global_table_later(ddb: Clients) -> None:
    strong(ddb)
    east = ddb(EAST)
    assert error_of(lambda: east.update_table(TableName="t", ReplicaUpdates=[replica("eu-west-1")])) \
        == ("ValidationException", mrsc.CANNOT_ADD)
    assert error_of(lambda: east.update_table(TableName="t", MultiRegionConsistency="STRONG",
                                              ReplicaUpdates=[replica("eu-west-1")])) \
        == ("ValidationException", mrsc.UNSUPPORTED_COUNT)
    assert error_of(lambda: east.update_table(TableName="t", MultiRegionConsistency="EVENTUAL",
                                              ReplicaUpdates=[replica("eu-west-1")])) \
        == ("ValidationException", mrsc.EXISTING)
    assert error_of(lambda: east.update_table(TableName="t", MultiRegionConsistency="STRONG",
                                              ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}])) \
        == ("ValidationException", mrsc.ONLY_CREATES)
    assert ddb("eu-west-1").list_tables()["TableNames"] == []
    assert {r["RegionName"] for r in describe(east)["Replicas"]} == {OHIO}


# ---------------------------------------------------------------------------------------------- dissolved


def test_a_replica_and_its_witness_are_deleted_together_then_the_table(ddb: Clients) -> None:
    strong(ddb)
    east = ddb(EAST)
    assert error_of(lambda: east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}])) \
        == ("ValidationException", mrsc.WITNESSES_LEFT)
    assert error_of(lambda: east.update_table(TableName="t", GlobalTableWitnessUpdates=[
        {"Delete": {"RegionName": OREGON}}])) == ("ValidationException", mrsc.NOTHING_TO_UPDATE)
    assert error_of(lambda: east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}],
                                              GlobalTableWitnessUpdates=[{"Delete": {"RegionName": "eu-west-1"}}])) \
        == ("ValidationException", mrsc.not_witnesses(["eu-west-1"]))
    for region in (EAST, OHIO):  # no member goes alone
        assert error_of(lambda r=region: ddb(r).delete_table(TableName="t")) == (  # type: ignore[misc]
            "ValidationException", mrsc.ONLY_ONE_DELETE)
    assert describe(ddb(OHIO))["MultiRegionConsistency"] == "STRONG"

    east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}],
                      GlobalTableWitnessUpdates=[{"Delete": {"RegionName": OREGON}}])
    table = describe(east)  # a single-region table again
    assert not {"Replicas", "GlobalTableWitnesses", "MultiRegionConsistency", "GlobalTableVersion"} & set(table)
    assert ddb(OHIO).list_tables()["TableNames"] == []
    east.delete_table(TableName="t")
    assert east.list_tables()["TableNames"] == []


def test_three_replicas_are_deleted_together(ddb: Clients) -> None:
    strong(ddb, witness=False)
    east = ddb(EAST)
    assert error_of(lambda: east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}])) \
        == ("ValidationException", mrsc.ONLY_ONE_DELETE)
    east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}},
                                                     {"Delete": {"RegionName": OREGON}}])
    assert "Replicas" not in describe(east)
    assert ddb(OHIO).list_tables()["TableNames"] == [] and ddb(OREGON).list_tables()["TableNames"] == []


def test_under_strict_the_replica_and_witness_are_deleting_for_their_duration(ddb: Clients, strict: Sandbox,
                                                                            clock: Any, aws_timing: Sandbox) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    clock.advance(7.0)
    ddb(EAST).update_table(TableName="t", MultiRegionConsistency="STRONG", ReplicaUpdates=[replica(OHIO)],
                           GlobalTableWitnessUpdates=[{"Create": {"RegionName": OREGON}}])
    clock.advance(180.0)
    ddb(EAST).update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}],
                           GlobalTableWitnessUpdates=[{"Delete": {"RegionName": OREGON}}])
    table = describe(ddb(EAST))
    assert table["TableStatus"] == "UPDATING"
    assert table["Replicas"] == [{"RegionName": OHIO, "ReplicaStatus": "DELETING"}]
    assert table["GlobalTableWitnesses"] == [{"RegionName": OREGON, "WitnessStatus": "DELETING"}]
    assert error_of(lambda: ddb(EAST).delete_table(TableName="t"))[0] == "ValidationException"
    clock.advance(120.0)  # replica_deleted
    table = describe(ddb(EAST))
    assert table["TableStatus"] == "ACTIVE" and "GlobalTableWitnesses" not in table and "Replicas" not in table
    ddb(EAST).delete_table(TableName="t")


# ---------------------------------------------------------------------------------------------- on the wire


def test_the_strong_answers_are_what_aws_writes(sandbox: Sandbox, clock: Any) -> None:
    recorder = Recorder()

    def client(region: str) -> Any:
        return recorder.attach(boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.url,
                                            aws_access_key_id="testing", aws_secret_access_key="testing",
                                            config=Config(retries={"total_max_attempts": 1})))

    east = client(EAST)
    east.create_table(TableName="t", **KEY)
    east.update_table(TableName="t", MultiRegionConsistency="STRONG", ReplicaUpdates=[replica(OHIO)],
                      GlobalTableWitnessUpdates=[{"Create": {"RegionName": OREGON}}])
    clock.advance(1.0)
    east.describe_table(TableName="t")
    error_of(lambda: east.update_table(TableName="t", ReplicaUpdates=[replica("eu-west-1")]))
    east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}],
                      GlobalTableWitnessUpdates=[{"Delete": {"RegionName": OREGON}}])
    seen = {op: [raw.status for _, raw in calls] for (_, op), calls in recorder.calls.items()}
    assert 400 in seen["UpdateTable"]
    found = [f"{op} (HTTP {raw.status}): {problem}" for (_, op), calls in recorder.calls.items()
             for model, raw in calls for problem in wire.problems(model, raw)]
    assert not found, "\n".join(found)
