"""The stack's DynamoDB table and its replicas."""

from __future__ import annotations

from typing import Any

from multiregion.aws import absent_as_none
from multiregion.engine import Env, Reader
from multiregion.plan import Wait


def describe_table(aws: Reader, region: str) -> dict[str, Any] | None:
    """DescribeTable's `Table`, or None when the region has no table of that name."""
    client = aws.client("dynamodb", region)
    answer = absent_as_none(lambda: client.describe_table(TableName=aws.config.table.name),
                            "ResourceNotFoundException")
    return dict(answer["Table"]) if answer else None


def table_tags(aws: Reader, region: str, arn: str) -> dict[str, str]:
    client = aws.client("dynamodb", region)
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = client.list_tags_of_resource(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]


def holds_items(aws: Reader, region: str) -> bool:
    page = aws.client("dynamodb", region).scan(TableName=aws.config.table.name, Limit=1, Select="COUNT")
    return bool(page.get("Count")) or "LastEvaluatedKey" in page


def replica_statuses(table: dict[str, Any] | None) -> dict[str, str]:
    """Region -> ReplicaStatus of the table's replicas (the regions DescribeTable lists)."""
    if table is None:
        return {}
    return {r["RegionName"]: str(r.get("ReplicaStatus", "ACTIVE")) for r in table.get("Replicas", [])}


def wait_active(env: Env, region: str) -> Wait:
    """The wait for the table to accept its next update (DynamoDB takes one at a time)."""
    return Wait(f"table {env.config.table.name} ACTIVE", "dynamodb", region, "describe_table",
                {"TableName": env.config.table.name}, "Table.TableStatus", ("ACTIVE",))
