"""Strong global tables (multi-Region strong consistency) in the sandbox: made, refused, read, written, cut off,
dissolved, as AWS does (the rules and their sources: multiregion/sandbox/mrsc.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from multiregion.sandbox import mrsc
from multiregion.sandbox.dynamodb import GlobalTables
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


@pytest.fixture
def no_background_replication(sandbox: Sandbox) -> Iterator[GlobalTables]:
    """The replicator's background passes stopped, so whatever reaches another region got there in the request."""
    ext = sandbox.extension(GlobalTables)
    ext.stop()
    yield ext
    ext.start()


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


def http_status(call: Callable[[], Any]) -> int:
    with pytest.raises(ClientError) as err:
        call()
    return int(err.value.response["ResponseMetadata"]["HTTPStatusCode"])


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


# ---------------------------------------------------------------------------------------------- written, read


def test_a_write_is_in_every_replica_when_it_is_acknowledged(ddb: Clients,
                                                             no_background_replication: GlobalTables) -> None:
    strong(ddb, witness=False)
    put(ddb(EAST), "k", "one")
    # Read at once, without any background replication: each replica holds the acknowledged value (eventually
    # consistent reads first: they are served from the region's own copy, as the write left it).
    assert [value(ddb(r), "k", consistent) for consistent in (False, True) for r in (OHIO, OREGON)] == ["one"] * 4
    ddb(OHIO).update_item(TableName="t", Key={"id": {"S": "k"}}, UpdateExpression="SET v = :v",
                          ConditionExpression="v = :old",  # evaluated on the latest value, written elsewhere
                          ExpressionAttributeValues={":v": {"S": "two"}, ":old": {"S": "one"}})
    assert value(ddb(EAST), "k") == "two" and value(ddb(OREGON), "k", consistent=False) == "two"
    ddb(OREGON).batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {"id": {"S": "b"}, "v": {"S": "b"}}}},
                                                     {"DeleteRequest": {"Key": {"id": {"S": "k"}}}}]})
    assert value(ddb(EAST), "b") == "b" and value(ddb(OHIO), "k") is None
    scanned = ddb(OHIO).scan(TableName="t", ConsistentRead=True)["Items"]
    queried = ddb(EAST).query(TableName="t", KeyConditionExpression="id = :b",
                              ExpressionAttributeValues={":b": {"S": "b"}})["Items"]
    assert [i["id"]["S"] for i in scanned] == ["b"] and [i["id"]["S"] for i in queried] == ["b"]


def test_an_eventual_write_still_waits_for_the_replicator(ddb: Clients,
                                                         no_background_replication: GlobalTables) -> None:
    ddb(EAST).create_table(TableName="t", **KEY)
    ddb(EAST).update_table(TableName="t", ReplicaUpdates=[replica(OHIO)])
    wait_for(lambda: status(ddb(EAST)) == "ACTIVE")
    put(ddb(EAST), "k", "one")
    assert value(ddb(OHIO), "k") is None  # eventual: asynchronous, as before
    no_background_replication.replicate_once()
    assert value(ddb(OHIO), "k") == "one"


def test_a_write_from_another_region_to_an_item_in_flight_is_a_replicated_write_conflict(
        ddb: Clients, sandbox: Sandbox, clock: Any) -> None:
    strong(ddb, witness=False, clock=clock)
    window = sandbox.scaled(mrsc.write_window(EAST, {OHIO, OREGON}))
    assert window > 0
    put(ddb(EAST), "k", "from east")
    conflict = ("ReplicatedWriteConflictException", mrsc.CONFLICT)
    assert error_of(lambda: put(ddb(OHIO), "k", "from ohio")) == conflict
    assert http_status(lambda: put(ddb(OHIO), "k", "from ohio")) == 400
    assert error_of(lambda: ddb(OREGON).delete_item(TableName="t", Key={"id": {"S": "k"}})) == conflict
    put(ddb(OHIO), "other", "x")  # another item is not being modified
    put(ddb(EAST), "k", "east again")  # us-east-1 may write the item again: the write in flight is its own
    assert value(ddb(OHIO), "k") == "east again"  # the refused writes changed nothing
    clock.advance(window * 0.9)
    assert error_of(lambda: put(ddb(OHIO), "k", "from ohio"))[0] == "ReplicatedWriteConflictException"
    clock.advance(window * 0.1)  # the last write from us-east-1 has reached its nearest member
    put(ddb(OHIO), "k", "from ohio")
    assert value(ddb(EAST), "k") == "from ohio"


def test_a_conflicting_batch_write_is_refused_whole(ddb: Clients, clock: Any) -> None:
    strong(ddb, clock=clock)
    put(ddb(EAST), "k", "from east")
    items = [{"PutRequest": {"Item": {"id": {"S": key}, "v": {"S": "batch"}}}} for key in ("fresh", "k")]
    assert error_of(lambda: ddb(OHIO).batch_write_item(RequestItems={"t": items}))[0] \
        == "ReplicatedWriteConflictException"
    assert value(ddb(EAST), "fresh") is None


# ---------------------------------------------------------------------------------------------- cut off


def test_a_cut_off_region_refuses_writes_and_strong_reads_while_the_others_serve(ddb: Clients,
                                                                                sandbox: Sandbox) -> None:
    strong(ddb, witness=False)
    put(ddb(EAST), "k", "before")
    sandbox.faults["replication_paused"] = [OREGON]
    internal = ("InternalServerError", mrsc.INTERNAL)
    assert error_of(lambda: put(ddb(OREGON), "k", "from oregon")) == internal
    assert http_status(lambda: put(ddb(OREGON), "k", "from oregon")) == 500
    assert error_of(lambda: value(ddb(OREGON), "k")) == internal
    assert error_of(lambda: ddb(OREGON).scan(TableName="t", ConsistentRead=True)) == internal
    # The other two regions keep a majority: they write and read strongly.
    put(ddb(EAST), "k", "during")
    assert value(ddb(OHIO), "k") == "during"
    # An eventually consistent read is served from the cut-off region's own copy, which lags behind.
    assert value(ddb(OREGON), "k", consistent=False) == "before"
    sandbox.faults["replication_paused"] = []
    assert value(ddb(OREGON), "k") == "during"  # caught up before it answers
    put(ddb(OREGON), "k", "after")
    assert value(ddb(EAST), "k") == "after"


def test_a_replica_whose_policy_denies_replication_answers_access_denied(ddb: Clients) -> None:
    # Developer guide, global tables security: for MRSC, denying the replication role "will result in an
    # AccessDeniedException for write and strongly consistent read operations".
    strong(ddb, witness=False)
    put(ddb(EAST), "k", "before")
    arn = ddb(OREGON).describe_table(TableName="t")["Table"]["TableArn"]
    deny = {"Version": "2012-10-17", "Statement": [{
        "Sid": "Isolate", "Effect": "Deny", "Principal": {"Service": "replication.dynamodb.amazonaws.com"},
        "Action": "dynamodb:*", "Resource": arn}]}
    ddb(OREGON).put_resource_policy(ResourceArn=arn, Policy=json.dumps(deny))
    assert error_of(lambda: put(ddb(OREGON), "k", "from oregon"))[0] == "AccessDeniedException"
    assert error_of(lambda: value(ddb(OREGON), "k"))[0] == "AccessDeniedException"
    put(ddb(EAST), "k", "during")  # the other two still write
    assert value(ddb(OHIO), "k") == "during"
    ddb(OREGON).delete_resource_policy(ResourceArn=arn)
    assert value(ddb(OREGON), "k") == "during"


def test_a_write_needs_a_second_member_replica_or_witness(ddb: Clients, sandbox: Sandbox) -> None:
    strong(ddb)
    sandbox.faults["replication_paused"] = [OREGON]  # the witness alone: the other replica acknowledges
    put(ddb(EAST), "k", "one")
    assert value(ddb(OHIO), "k") == "one"
    sandbox.faults["replication_paused"] = [OHIO]  # the other replica alone: the witness acknowledges
    put(ddb(EAST), "k", "two")
    sandbox.faults["replication_paused"] = [OHIO, OREGON]  # both: no second region can hold the write
    assert error_of(lambda: put(ddb(EAST), "k", "three"))[0] == "InternalServerError"
    assert error_of(lambda: value(ddb(EAST), "k"))[0] == "InternalServerError"
    assert value(ddb(EAST), "k", consistent=False) == "two"
    sandbox.faults["replication_paused"] = []
    assert value(ddb(OHIO), "k") == "two"


# ---------------------------------------------------------------------------------------------- on the wire


def test_the_strong_answers_are_what_aws_writes(sandbox: Sandbox, clock: Any) -> None:
    recorder = Recorder()

    def client(region: str) -> Any:
        return recorder.attach(boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.url,
                                            aws_access_key_id="testing", aws_secret_access_key="testing",
                                            config=Config(retries={"total_max_attempts": 1})))

    east, ohio = client(EAST), client(OHIO)
    east.create_table(TableName="t", **KEY)
    east.update_table(TableName="t", MultiRegionConsistency="STRONG", ReplicaUpdates=[replica(OHIO)],
                      GlobalTableWitnessUpdates=[{"Create": {"RegionName": OREGON}}])
    clock.advance(1.0)
    east.describe_table(TableName="t")
    error_of(lambda: east.update_table(TableName="t", ReplicaUpdates=[replica("eu-west-1")]))
    put(east, "k", "v")
    error_of(lambda: put(ohio, "k", "w"))  # ReplicatedWriteConflictException
    sandbox.faults["replication_paused"] = [OHIO]
    error_of(lambda: put(ohio, "j", "w"))  # InternalServerError
    sandbox.faults["replication_paused"] = []
    east.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": OHIO}}],
                      GlobalTableWitnessUpdates=[{"Delete": {"RegionName": OREGON}}])
    seen = {op: [raw.status for _, raw in calls] for (_, op), calls in recorder.calls.items()}
    assert seen["PutItem"] == [200, 400, 500] and 400 in seen["UpdateTable"]
    found = [f"{op} (HTTP {raw.status}): {problem}" for (_, op), calls in recorder.calls.items()
             for model, raw in calls for problem in wire.problems(model, raw)]
    assert not found, "\n".join(found)
