"""Stage `tables`: the table in the primary region, ready to become a 2019.11.21 global table.

Only the primary gets a table: replicas are added by `global-table`, and AWS refuses a replica in a region
that already holds a table of that name, so creating it everywhere (as the original article did) breaks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from multiregion.engine import TAG_STACK, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups.tables import describe_table, holds_items, replica_statuses, table_tags, wait_active
from multiregion.plan import GONE, Call, Wait

STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class TableSnapshot:
    table: dict[str, Any] | None
    tags: dict[str, str] = field(default_factory=dict)
    holds_items: bool = False  # read for `down` only


@dataclass(frozen=True)
class TableStatus:
    name: str
    status: str | None
    version: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"table": asdict(self) if self.status else None}


class TablesStage(Stage[TableSnapshot]):
    name = "tables"
    help = "The table in the primary region: key schema, on-demand billing, stream, ownership tags."
    scope = "primary"

    def read(self, aws: Reader, region: str) -> TableSnapshot:
        table = describe_table(aws, region)
        tags = table_tags(aws, region, table["TableArn"]) if table else {}
        return TableSnapshot(table, tags)

    def read_down(self, aws: Reader, region: str) -> TableSnapshot:
        snapshot = self.read(aws, region)
        if snapshot.table is None:
            return snapshot
        return TableSnapshot(snapshot.table, snapshot.tags, holds_items(aws, region))

    def diff(self, env: Env, region: str, snapshot: TableSnapshot, inputs: Inputs) -> NodePlan:
        config, table = env.config, snapshot.table
        name = config.table.name
        resource = f"table {name}"
        if table is None:
            create = Call("dynamodb", region, "create_table", {
                "TableName": name,
                "AttributeDefinitions": [{"AttributeName": config.table.hash_key, "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": config.table.hash_key, "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": STREAM,
                "Tags": [{"Key": k, "Value": v} for k, v in env.tags(region).items()],
            })
            return NodePlan(changes=(self.change(
                region, "create", resource,
                f"hash key {config.table.hash_key}, PAY_PER_REQUEST, stream NEW_AND_OLD_IMAGES",
                create, wait_active(env, region).expecting("table_active")),))
        self._check_owned(env, region, snapshot)
        changes = []
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if billing != "PAY_PER_REQUEST":
            changes.append(self.change(region, "update", resource, f"billing {billing} -> PAY_PER_REQUEST",
                                       Call("dynamodb", region, "update_table",
                                            {"TableName": name, "BillingMode": "PAY_PER_REQUEST"}),
                                       wait_active(env, region)))
        stream = table.get("StreamSpecification") or {}
        if not stream.get("StreamEnabled"):
            changes.append(self.change(region, "update", resource, "stream off -> NEW_AND_OLD_IMAGES",
                                       Call("dynamodb", region, "update_table",
                                            {"TableName": name, "StreamSpecification": STREAM}),
                                       wait_active(env, region)))
        elif stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise Conflict(self.name, region, resource,
                           f"its stream is {stream.get('StreamViewType')}, global tables need NEW_AND_OLD_IMAGES",
                           "a stream's view type cannot be changed in place; disable the stream first")
        waits = () if changes or table.get("TableStatus") == ACTIVE else (self._settle(env, region, table),)
        return NodePlan(changes=tuple(changes), waits=waits)

    @staticmethod
    def _settle(env: Env, region: str, table: dict[str, Any]) -> Wait:
        """A table still settling (a run stopped right after creating it): CREATING lasts what creation does;
        AWS gives no figure for an update."""
        wait = wait_active(env, region)
        return wait.expecting("table_active") if table.get("TableStatus") == "CREATING" else wait

    def _check_owned(self, env: Env, region: str, snapshot: TableSnapshot) -> None:
        table = snapshot.table or {}
        resource = f"table {env.config.table.name}"
        keys = {k["AttributeName"]: k["KeyType"] for k in table.get("KeySchema", [])}
        wanted = {env.config.table.hash_key: "HASH"}
        if keys != wanted:
            raise Conflict(self.name, region, resource,
                           f"exists with key schema {keys}, the config asks for {wanted}",
                           "the table is left untouched; choose another table.name or fix table.hash_key")
        if snapshot.tags.get(TAG_STACK) != env.config.service:
            raise Conflict(self.name, region, resource,
                           f"exists but is not tagged {TAG_STACK}={env.config.service}",
                           "it is left untouched; to adopt it, add that tag to the table")

    def destroy(self, env: Env, region: str, snapshot: TableSnapshot) -> NodePlan:
        table, name = snapshot.table, env.config.table.name
        if table is None:
            return NodePlan()
        if snapshot.tags.get(TAG_STACK) != env.config.service:
            return NodePlan(warnings=(f"[{region}] table {name} is not this stack's; left alone",))
        others = [r for r in replica_statuses(table) if r != region]
        if others:
            return NodePlan(warnings=(f"[{region}] table {name} still has replicas in {', '.join(others)}; "
                                      "it is kept",))
        if snapshot.holds_items and not env.delete_data:
            return NodePlan(warnings=(f"[{region}] table {name} holds items; it is kept "
                                      "(pass --delete-data to delete it)",))
        gone = Wait(f"table {name} deleted", "dynamodb", region, "describe_table", {"TableName": name},
                    "Table.TableStatus", (GONE,), gone=("ResourceNotFoundException",))
        delete = Call("dynamodb", region, "delete_table", {"TableName": name}, done_if=("ResourceNotFoundException",))
        return NodePlan(changes=(self.change(region, "delete", f"table {name}", "down", delete, gone),))

    def status(self, aws: Reader, region: str) -> TableStatus:
        table = describe_table(aws, region)
        return TableStatus(aws.config.table.name, table.get("TableStatus") if table else None,
                           table.get("GlobalTableVersion") if table else None)
