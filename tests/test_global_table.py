"""The replicated table end to end: `up` on a fresh sandbox, idempotent reruns, three regions, down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from multiregion.engine import TAG_STACK
from multiregion.sandbox.server import Sandbox
from tests.conftest import Cli, wait_for

TABLE_STAGES = ("--only", "tables", "--only", "global-table")



def test_up_creates_a_replicated_table(cli: Cli, aws: Any) -> None:
    code, doc = cli.json("up", *TABLE_STAGES)
    assert code == 0, doc
    eu, us = aws("dynamodb", "eu-west-1"), aws("dynamodb", "us-east-1")
    table = eu.describe_table(TableName="items")["Table"]
    assert table["GlobalTableVersion"] == "2019.11.21"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["id"]
    assert table["Replicas"] == [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"}]
    tags = eu.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert {"Key": TAG_STACK, "Value": "items"} in tags

    eu.put_item(TableName="items", Item={"id": {"S": "from-eu"}, "name": {"S": "one"}})
    item = wait_for(lambda: us.get_item(TableName="items", Key={"id": {"S": "from-eu"}}).get("Item"))
    assert item["name"] == {"S": "one"}


def test_rerun_plans_nothing_and_writes_nothing(cli: Cli) -> None:
    assert cli.json("up", *TABLE_STAGES)[0] == 0
    code, plan = cli.json("plan", *TABLE_STAGES)
    assert code == 0 and plan["changes"] == []
    code, again = cli.json("up", *TABLE_STAGES)
    assert code == 0 and again["changes"] == []
    assert again["api_calls"]["writes"] == {}


def test_plan_lists_changes_without_making_them(cli: Cli, aws: Any) -> None:
    code, plan = cli.json("plan", *TABLE_STAGES)
    assert code == 0
    assert {(c["stage"], c["region"], c["action"]) for c in plan["changes"]} == {
        ("tables", "eu-west-1", "create"), ("global-table", "us-east-1", "create")}
    assert set(plan["changes"][0]) >= {"stage", "region", "action", "resource", "reason"}
    assert aws("dynamodb", "eu-west-1").list_tables()["TableNames"] == []


def test_three_regions_converge(write_config: Callable[..., Path], aws: Any) -> None:
    cli = Cli(write_config(regions=["eu-west-1", "us-east-1", "ap-southeast-2"]))
    code, doc = cli.json("up", *TABLE_STAGES)
    assert code == 0, doc
    replicas = {r["RegionName"] for r in
                aws("dynamodb", "eu-west-1").describe_table(TableName="items")["Table"]["Replicas"]}
    assert replicas == {"us-east-1", "ap-southeast-2"}
    aws("dynamodb", "ap-southeast-2").put_item(TableName="items", Item={"id": {"S": "syd"}})
    for region in ("eu-west-1", "us-east-1"):
        wait_for(lambda r=region: aws("dynamodb", r).get_item(TableName="items",
                                                              Key={"id": {"S": "syd"}}).get("Item"))
    assert cli.json("plan", *TABLE_STAGES)[1]["changes"] == []


def test_existing_table_with_other_key_schema_is_a_conflict(cli: Cli, aws: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="items", BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    code, doc = cli.json("up", *TABLE_STAGES)
    assert code == 1
    assert doc["errors"][0]["stage"] == "tables" and "key schema" in doc["errors"][0]["error"]
    assert doc["skipped"] == [{"stage": "global-table", "region": "global"}]
    assert eu.describe_table(TableName="items")["Table"]["KeySchema"][0]["AttributeName"] == "pk"
    assert "Replicas" not in eu.describe_table(TableName="items")["Table"]


def test_untagged_table_is_not_adopted(cli: Cli, aws: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="items", BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    code, doc = cli.json("up", *TABLE_STAGES)
    assert code == 1 and "not tagged" in doc["errors"][0]["error"]


def test_table_in_replica_region_blocks_replica(cli: Cli, aws: Any) -> None:
    aws("dynamodb", "us-east-1").create_table(
        TableName="items", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    code, doc = cli.json("up", *TABLE_STAGES)
    assert code == 1
    assert doc["errors"][0]["region"] == "us-east-1" and "already exists" in doc["errors"][0]["error"]


def test_removed_region_is_pruned_only_when_asked(write_config: Callable[..., Path], aws: Any) -> None:
    three = Cli(write_config(regions=["eu-west-1", "us-east-1", "ap-southeast-2"]))
    assert three.json("up", *TABLE_STAGES)[0] == 0
    two = Cli(write_config(regions=["eu-west-1", "us-east-1"]))
    code, doc = two.json("up", *TABLE_STAGES)
    assert code == 0 and doc["changes"] == []
    assert "items" in aws("dynamodb", "ap-southeast-2").list_tables()["TableNames"]
    code, doc = two.json("up", "--prune", *TABLE_STAGES)
    assert code == 0
    assert [(c["region"], c["action"]) for c in doc["changes"]] == [("ap-southeast-2", "delete")]
    assert aws("dynamodb", "ap-southeast-2").list_tables()["TableNames"] == []


def test_down_keeps_data_unless_asked(cli: Cli, aws: Any) -> None:
    assert cli.json("up", *TABLE_STAGES)[0] == 0
    aws("dynamodb", "eu-west-1").put_item(TableName="items", Item={"id": {"S": "keep-me"}})
    code, doc = cli.json("down", "--yes")
    assert code == 0
    assert "items" in aws("dynamodb", "eu-west-1").list_tables()["TableNames"]
    assert "items" in aws("dynamodb", "us-east-1").list_tables()["TableNames"]
    code, doc = cli.json("down", "--yes", "--delete-data")
    assert code == 0, doc
    for region in ("eu-west-1", "us-east-1"):  # the account's lease table is no stack's to delete
        assert aws("dynamodb", region).list_tables()["TableNames"] in ([], ["multiregion-leases"])


def test_down_then_up_again(cli: Cli, aws: Any) -> None:
    assert cli.json("up", *TABLE_STAGES)[0] == 0
    assert cli.json("down", "--yes", "--delete-data")[0] == 0
    code, doc = cli.json("up", *TABLE_STAGES)
    assert code == 0 and len(doc["changes"]) == 2


def test_down_needs_confirmation_when_not_at_a_terminal(cli: Cli) -> None:
    result = cli("down")
    assert result.exit_code == 2 and "--yes" in result.output


def test_text_output_names_stage_region_and_resource(cli: Cli, aws: Any) -> None:
    aws("dynamodb", "eu-west-1").create_table(
        TableName="items", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    result = cli("up", *TABLE_STAGES)
    assert result.exit_code == 1
    assert "[tables eu-west-1] table items: exists with key schema" in result.output
    assert "hint:" in result.output


def test_down_waits_for_a_replica_s_writes_to_reach_the_others(cli: Cli, aws: Any, sandbox: Sandbox,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS refuses to remove a replica whose writes have not reached every other one ("cannot be deleted
    until all writes are replicated"), and the strict sandbox too: `down` tries again until they have."""
    import threading

    from multiregion.sandbox import dynamodb

    assert sandbox.strict
    assert cli.json("up", *TABLE_STAGES)[0] == 0
    with sandbox.faults_lock:
        sandbox.faults["replication_paused"] = ["eu-west-1"]  # us-east-1's writes are held on their way there
    aws("dynamodb", "us-east-1").put_item(TableName="items", Item={"id": {"S": "in-flight"}})
    refused = threading.Event()
    real = dynamodb.last_replica_error

    def refusal(*args: Any) -> Any:
        refused.set()
        return real(*args)

    monkeypatch.setattr(dynamodb, "last_replica_error", refusal)

    def resume_once_refused() -> None:
        refused.wait(60)
        with sandbox.faults_lock:
            sandbox.faults["replication_paused"] = []

    resumer = threading.Thread(target=resume_once_refused, daemon=True)
    resumer.start()
    try:
        result = cli("down", "--yes", "--delete-data")
    finally:
        refused.set()
        resumer.join(5)
    assert result.exit_code == 0, result.output
    assert "writes not yet replicated" in result.output  # refused first, then retried
    assert aws("dynamodb", "us-east-1").list_tables()["TableNames"] in ([], ["multiregion-leases"])
