"""What the sandbox adds to moto's DynamoDB: replicas through UpdateTable and stream replication."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from multiregion.sandbox import moto_compat
from multiregion.sandbox.dynamodb import GlobalTables
from multiregion.sandbox.server import Sandbox
from tests.conftest import wait_for

KEY = {"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
       "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST",
       "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}


@pytest.fixture
def pair(aws: Any) -> tuple[Any, Any]:
    eu, us = aws("dynamodb", "eu-west-1"), aws("dynamodb", "us-east-1")
    eu.create_table(TableName="t", **KEY)
    eu.put_item(TableName="t", Item={"id": {"S": "before"}})
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    wait_for(lambda: eu.describe_table(TableName="t")["Table"]["TableStatus"] == "ACTIVE")
    return eu, us


def get(client: Any, key: str) -> Any:
    return client.get_item(TableName="t", Key={"id": {"S": key}}).get("Item")


def test_replica_has_same_schema_and_existing_items(pair: tuple[Any, Any]) -> None:
    eu, us = pair
    replica = us.describe_table(TableName="t")["Table"]
    assert replica["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert replica["GlobalTableVersion"] == "2019.11.21"
    assert replica["Replicas"] == [{"RegionName": "eu-west-1", "ReplicaStatus": "ACTIVE"}]
    assert get(us, "before") is not None


def test_replica_is_creating_before_active(aws: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    desc = eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    assert desc["TableDescription"]["Replicas"] == [{"RegionName": "us-east-1", "ReplicaStatus": "CREATING"}]
    assert desc["TableDescription"]["TableStatus"] == "UPDATING"


def test_writes_and_deletes_replicate_both_ways(pair: tuple[Any, Any]) -> None:
    eu, us = pair
    us.put_item(TableName="t", Item={"id": {"S": "k"}, "v": {"S": "us"}})
    assert wait_for(lambda: get(eu, "k"))["v"] == {"S": "us"}
    eu.delete_item(TableName="t", Key={"id": {"S": "k"}})
    wait_for(lambda: get(us, "k") is None)


def test_last_writer_wins_and_nothing_echoes(pair: tuple[Any, Any], sandbox: Sandbox) -> None:
    eu, us = pair
    ext = next(e for e in sandbox.app.extensions if type(e).__name__ == "GlobalTables")
    with sandbox.lock:  # both writes land before the replicator sees either: a true conflict
        moto_compat.put_item("eu-west-1", "t", {"id": {"S": "c"}, "v": {"S": "first"}})
        moto_compat.put_item("us-east-1", "t", {"id": {"S": "c"}, "v": {"S": "second"}})
    wait_for(lambda: get(eu, "c")["v"] == {"S": "second"})
    assert get(us, "c")["v"] == {"S": "second"}
    # No echo: once settled, further passes apply nothing.
    ext.replicate_once()
    assert ext.replicate_once() == 0


def test_replica_where_table_exists_fails(aws: Any) -> None:
    eu, us = aws("dynamodb", "eu-west-1"), aws("dynamodb", "us-east-1")
    eu.create_table(TableName="t", **KEY)
    us.create_table(TableName="t", **KEY)
    with pytest.raises(ClientError) as err:
        eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "already existed as tables" in err.value.response["Error"]["Message"]


def test_delete_replica(pair: tuple[Any, Any]) -> None:
    eu, us = pair
    eu.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": "us-east-1"}}])
    assert us.list_tables()["TableNames"] == []
    assert "Replicas" not in eu.describe_table(TableName="t")["Table"]


def test_paused_replication_fault(pair: tuple[Any, Any], sandbox: Sandbox) -> None:
    eu, us = pair
    sandbox.faults["replication_paused"] = ["us-east-1"]
    eu.put_item(TableName="t", Item={"id": {"S": "held"}})
    us.put_item(TableName="t", Item={"id": {"S": "out"}})
    wait_for(lambda: get(eu, "out"))
    assert get(us, "held") is None


def test_a_replicated_delete_never_hides_a_local_write(pair: tuple[Any, Any], sandbox: Sandbox) -> None:
    eu, us = pair
    with sandbox.lock:
        # An item that reached eu-west-1 only (marked as a replicated write there, so it stays put)...
        moto_compat.put_item("eu-west-1", "t", {"id": {"S": "ghost"}})
        table = moto_compat.dynamodb_table("eu-west-1", "t")
        assert table is not None
        shard = moto_compat.stream_shard(table)
        assert shard is not None
        moto_compat.mark_replicated(moto_compat.shard_records(shard)[-1], "elsewhere")
        # ...is deleted there, and then us-east-1 writes something else, in the same replication pass.
        moto_compat.delete_item("eu-west-1", "t", {"id": {"S": "ghost"}})
        moto_compat.put_item("us-east-1", "t", {"id": {"S": "local"}})
    assert wait_for(lambda: get(eu, "local"))


def test_simultaneous_writes_converge_to_one_value(pair: tuple[Any, Any], sandbox: Sandbox) -> None:
    import datetime

    frozen = datetime.datetime(2026, 1, 1)  # naive, as moto keeps its times
    eu, us = pair
    with sandbox.lock, moto_compat.dynamodb_clock(frozen):
        moto_compat.put_item("eu-west-1", "t", {"id": {"S": "tie"}, "v": {"S": "eu"}})
        moto_compat.put_item("us-east-1", "t", {"id": {"S": "tie"}, "v": {"S": "us"}})
    wait_for(lambda: get(eu, "tie")["v"] == get(us, "tie")["v"])
    # Same time: the region breaks the tie, the same way everywhere.
    assert get(eu, "tie")["v"] == {"S": "us"}


def test_paused_replication_holds_writes_until_it_resumes(pair: tuple[Any, Any], sandbox: Sandbox) -> None:
    eu, us = pair
    sandbox.faults["replication_paused"] = ["us-east-1"]
    eu.put_item(TableName="t", Item={"id": {"S": "late"}})
    eu.put_item(TableName="t", Item={"id": {"S": "late"}, "v": {"S": "second"}})
    ext = next(e for e in sandbox.app.extensions if type(e).__name__ == "GlobalTables")
    ext.replicate_once()
    assert get(us, "late") is None
    sandbox.faults["replication_paused"] = []
    assert wait_for(lambda: get(us, "late"))["v"] == {"S": "second"}


def test_update_table_sends_the_creation_time_as_epoch_seconds(aws: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    raw: list[bytes] = []
    eu.meta.events.register("after-call.dynamodb.UpdateTable", lambda http_response, **_: raw.append(
        http_response.content))
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    sent = json.loads(raw[0])["TableDescription"]["CreationDateTime"]
    # A number, as DynamoDB's JSON protocol writes timestamps (the Go SDK refuses a string), and the same
    # instant DescribeTable reports.
    assert isinstance(sent, (int, float)) and not isinstance(sent, bool)
    described = eu.describe_table(TableName="t")["Table"]["CreationDateTime"].timestamp()
    assert abs(sent - described) < 0.01


# ---------------------------------------------------------------------------------------------- AWS's rules


def error_of(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def status(client: Any) -> str:
    return client.describe_table(TableName="t")["Table"]["TableStatus"]


def replicas(client: Any) -> dict[str, str]:
    table = client.describe_table(TableName="t")["Table"]
    return {r["RegionName"]: r["ReplicaStatus"] for r in table.get("Replicas", [])}


def test_an_eventual_table_takes_one_replica_action_per_request_as_aws_does(aws: Any, clock: Any,
                                                                          aws_timing: Sandbox) -> None:
    eu, us, ap = aws("dynamodb", "eu-west-1"), aws("dynamodb", "us-east-1"), aws("dynamodb", "ap-southeast-1")
    eu.create_table(TableName="t", **KEY)
    clock.advance(7.0)  # table_active, under strict
    for two in ([{"Create": {"RegionName": "us-east-1"}}, {"Create": {"RegionName": "ap-southeast-1"}}],
                [{"Create": {"RegionName": "us-east-1"}}, {"Delete": {"RegionName": "ap-southeast-1"}}]):
        code, message = error_of(lambda two=two: eu.update_table(TableName="t", ReplicaUpdates=two))
        assert code == "ValidationException"
        assert message == "Update table operation with more than one create or delete replica actions not allowed"
    assert us.list_tables()["TableNames"] == [] and ap.list_tables()["TableNames"] == []
    unchecked = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=aws_timing.url,
                             config=Config(parameter_validation=False))  # botocore itself refuses an empty list
    assert error_of(lambda: unchecked.update_table(TableName="t", ReplicaUpdates=[])) == (
        "ValidationException", "There are no actions specified in the Replica Update Action of the request.")
    # two identical actions are one (AWS de-duplicates them)
    desc = eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}] * 2)
    assert [(r["RegionName"], r["ReplicaStatus"]) for r in desc["TableDescription"]["Replicas"]] == [
        ("us-east-1", "CREATING")]
    assert status(us) == "CREATING" and status(eu) == "UPDATING"
    clock.advance(179.0)  # replica_active: 180 AWS seconds at time scale 1
    assert replicas(eu) == {"us-east-1": "CREATING"}
    clock.advance(1.0)
    assert replicas(eu) == {"us-east-1": "ACTIVE"} and status(eu) == "ACTIVE"
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "ap-southeast-1"}}])  # the next one
    assert replicas(eu) == {"us-east-1": "ACTIVE", "ap-southeast-1": "CREATING"}


def test_a_refused_replica_update_changes_nothing(aws: Any) -> None:
    eu, us, ap = aws("dynamodb", "eu-west-1"), aws("dynamodb", "us-east-1"), aws("dynamodb", "ap-southeast-1")
    eu.create_table(TableName="t", **KEY)
    ap.create_table(TableName="t", **KEY)  # a table of that name where a replica should go
    code, message = error_of(lambda: eu.update_table(TableName="t", ReplicaUpdates=[
        {"Create": {"RegionName": "ap-southeast-1"}}]))
    assert code == "ValidationException" and "already existed as tables" in message
    assert us.list_tables()["TableNames"] == [] and "Replicas" not in eu.describe_table(TableName="t")["Table"]


def test_replica_updates_naming_the_local_region_are_refused_as_aws_refuses_them(aws: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    assert error_of(lambda: eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])) \
        == ("ValidationException", "Cannot add, delete, or update the local region through ReplicaUpdates. Use "
                                   "CreateTable, DeleteTable, or UpdateTable as required.")


def test_a_second_table_update_is_refused_while_a_replica_is_created(aws: Any, strict: Sandbox) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    in_use = ("ResourceInUseException", "Attempt to change a resource which is still in use: Table is being "
                                        "updated: t")
    assert error_of(lambda: eu.update_table(TableName="t", ReplicaUpdates=[
        {"Create": {"RegionName": "ap-southeast-1"}}])) == in_use
    # Under strict, any other update and a delete wait too, as the API reference says of UPDATING.
    assert error_of(lambda: eu.update_table(TableName="t", DeletionProtectionEnabled=False)) == in_use
    assert error_of(lambda: eu.delete_table(TableName="t")) == in_use
    wait_for(lambda: status(eu) == "ACTIVE")
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "ap-southeast-1"}}])


def test_a_new_table_is_creating_for_its_duration_and_cannot_be_changed(aws: Any, strict: Sandbox, clock: Any,
                                                                        aws_timing: Sandbox) -> None:
    eu = aws("dynamodb", "eu-west-1")
    assert eu.create_table(TableName="t", **KEY)["TableDescription"]["TableStatus"] == "CREATING"
    in_use = ("ResourceInUseException", "Attempt to change a resource which is still in use: Table is being "
                                        "created: t")
    assert error_of(lambda: eu.update_table(TableName="t", ReplicaUpdates=[
        {"Create": {"RegionName": "us-east-1"}}])) == in_use
    assert error_of(lambda: eu.delete_table(TableName="t")) == in_use
    clock.advance(6.9)  # table_active: 7 AWS seconds
    assert status(eu) == "CREATING"
    clock.advance(0.1)
    assert status(eu) == "ACTIVE"
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])


def test_without_strict_a_new_table_is_active_at_once(aws: Any, lenient: Sandbox, clock: Any,
                                                      aws_timing: Sandbox) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    assert status(eu) == "ACTIVE"


def test_a_deleted_replica_is_deleting_for_its_duration(pair: tuple[Any, Any], strict: Sandbox, clock: Any,
                                                        aws_timing: Sandbox) -> None:
    eu, us = pair
    eu.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": "us-east-1"}}])
    assert replicas(eu) == {"us-east-1": "DELETING"} and status(eu) == "UPDATING"
    assert status(us) == "DELETING"
    clock.advance(119.0)  # replica_deleted: 120 AWS seconds
    assert us.list_tables()["TableNames"] == ["t"]
    clock.advance(1.0)
    assert "Replicas" not in eu.describe_table(TableName="t")["Table"] and status(eu) == "ACTIVE"
    assert us.list_tables()["TableNames"] == []


def test_a_replica_whose_writes_are_not_replicated_cannot_be_deleted(pair: tuple[Any, Any], strict: Sandbox) -> None:
    eu, us = pair
    ext = strict.extension(GlobalTables)
    strict.faults["replication_paused"] = ["eu-west-1"]
    us.put_item(TableName="t", Item={"id": {"S": "only-in-us"}})
    wait_for(lambda: ext.backlog.get(("t", "eu-west-1")))  # read, and held for eu-west-1
    refusal = ("ValidationException", "The last active replica of table: 't'  in region: 'us-east-1' cannot be "
                                      "deleted until all writes are replicated.")
    assert error_of(lambda: eu.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": "us-east-1"}}])) \
        == refusal
    assert error_of(lambda: us.delete_table(TableName="t")) == refusal
    strict.faults["replication_paused"] = []
    wait_for(lambda: get(eu, "only-in-us"))
    us.delete_table(TableName="t")
    assert "Replicas" not in eu.describe_table(TableName="t")["Table"]


def test_without_strict_a_replica_goes_even_with_writes_held(pair: tuple[Any, Any], lenient: Sandbox) -> None:
    eu, us = pair
    sandbox = lenient
    sandbox.faults["replication_paused"] = ["eu-west-1"]
    us.put_item(TableName="t", Item={"id": {"S": "lost"}})
    eu.update_table(TableName="t", ReplicaUpdates=[{"Delete": {"RegionName": "us-east-1"}}])
    assert us.list_tables()["TableNames"] == []


def test_a_replica_added_while_writes_are_held_for_its_source_gets_them_in_order(pair: tuple[Any, Any], aws: Any,
                                                                                 sandbox: Sandbox) -> None:
    eu, us = pair
    ext = sandbox.extension(GlobalTables)
    sandbox.faults["replication_paused"] = ["eu-west-1"]
    us.put_item(TableName="t", Item={"id": {"S": "k"}, "v": {"S": "older, from us"}})
    us.put_item(TableName="t", Item={"id": {"S": "only-us"}})
    wait_for(lambda: len(ext.backlog.get(("t", "eu-west-1"), [])) == 2)  # held for eu-west-1
    eu.put_item(TableName="t", Item={"id": {"S": "k"}, "v": {"S": "newer, from eu"}})
    wait_for(lambda: get(us, "k")["v"] == {"S": "newer, from eu"})
    # A new replica is a copy of eu-west-1, which has not seen what us-east-1 wrote yet.
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "ap-southeast-1"}}])
    ap = aws("dynamodb", "ap-southeast-1")
    wait_for(lambda: get(ap, "only-us"))  # the held write reached the new replica...
    assert get(ap, "k")["v"] == {"S": "newer, from eu"}  # ...and the older one did not win over the copy
    sandbox.faults["replication_paused"] = []
    wait_for(lambda: get(eu, "only-us"))
    assert get(eu, "k")["v"] == {"S": "newer, from eu"}
