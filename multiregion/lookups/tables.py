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


def consistency(table: dict[str, Any] | None) -> str:
    """The global table's MultiRegionConsistency: STRONG or EVENTUAL (DescribeTable omits it for a table
    that never was an MRSC table, which is EVENTUAL)."""
    return str((table or {}).get("MultiRegionConsistency") or "EVENTUAL")


def witnesses(table: dict[str, Any] | None) -> dict[str, str]:
    """Region -> WitnessStatus of the table's witnesses (DescribeTable's GlobalTableWitnesses)."""
    return {w["RegionName"]: str(w.get("WitnessStatus", "ACTIVE")) for w in (table or {}).get("GlobalTableWitnesses")
            or []}


def wait_active(env: Env, region: str) -> Wait:
    """The wait for the table to accept its next update (DynamoDB takes one at a time)."""
    return Wait(f"table {env.config.table.name} ACTIVE", "dynamodb", region, "describe_table",
                {"TableName": env.config.table.name}, "Table.TableStatus", ("ACTIVE",))


# ------------------------------------------------------------------------------------ drill isolation

REPLICATION_SERVICE = "replication.dynamodb.amazonaws.com"
# The Sid of the resource-policy statement a drill's `isolate` fault adds to one replica: it denies
# DynamoDB's replication service (as AWS FIS's global-table-pause-replication does), so nothing replicates
# to or from that replica. It carries an expiry (aws:CurrentTime), so AWS lifts it even if the drill is
# killed; `up` removes it at once (a replica left unable to replicate for 20 hours becomes a single-region
# table).
ISOLATION_SID = "MultiregionDrillIsolation"


def resource_policy(aws: Reader, region: str, arn: str) -> dict[str, Any] | None:
    """The table's resource policy document (and its revision), or None when it has none."""
    client = aws.client("dynamodb", region)
    answer = absent_as_none(lambda: client.get_resource_policy(ResourceArn=arn), "PolicyNotFoundException",
                            "ResourceNotFoundException")
    if not answer or not answer.get("Policy"):
        return None
    import json

    return {"document": json.loads(answer["Policy"]), "revision": answer.get("RevisionId")}


def isolation_statement(table_arn: str, until: str) -> dict[str, Any]:
    return {"Sid": ISOLATION_SID, "Effect": "Deny", "Principal": {"Service": REPLICATION_SERVICE},
            "Action": "dynamodb:*", "Resource": table_arn,
            "Condition": {"DateLessThan": {"aws:CurrentTime": until}}}


def without_isolation(document: dict[str, Any]) -> dict[str, Any] | None:
    """The policy without the drill's statement; None when nothing else is left in it."""
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    kept = [s for s in statements if s.get("Sid") != ISOLATION_SID]
    return {**document, "Statement": kept} if kept else None


def is_isolated(document: dict[str, Any] | None) -> bool:
    if not document:
        return False
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    return any(s.get("Sid") == ISOLATION_SID for s in statements)
