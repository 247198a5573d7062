"""Stage `tables`: the table in the primary region, ready to become a 2019.11.21 global table.

Only the primary gets a table: replicas are added by `global-table`, and AWS refuses a replica in a region
that already holds a table of that name, so creating it everywhere (as the original article did) breaks.
"""

from __future__ import annotations

from typing import Any

from multiregion.aws import absent_as_none
from multiregion.engine import TAG_STACK, Change, Conflict, Stage

STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def describe_table(ctx: Any, region: str) -> dict[str, Any] | None:
    answer = absent_as_none(lambda: ctx.clients("dynamodb", region).describe_table(TableName=ctx.config.table.name),
                            "ResourceNotFoundException")
    return answer["Table"] if answer else None


def table_tags(ctx: Any, region: str, arn: str) -> dict[str, str]:
    tags = ctx.clients("dynamodb", region).list_tags_of_resource(ResourceArn=arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def holds_items(ctx: Any, region: str) -> bool:
    page = ctx.clients("dynamodb", region).scan(TableName=ctx.config.table.name, Limit=1, Select="COUNT")
    return bool(page.get("Count")) or "LastEvaluatedKey" in page


class TablesStage(Stage):
    name = "tables"
    help = "The table in the primary region: key schema, on-demand billing, stream, ownership tags."
    scope = "primary"

    @property
    def table(self) -> str:
        return self.config.table.name

    def plan(self, region: str) -> list[Change]:
        table = describe_table(self.ctx, region)
        if table is None:
            return [self.change(region, "create", f"table {self.table}",
                                f"hash key {self.config.table.hash_key}, PAY_PER_REQUEST, stream "
                                "NEW_AND_OLD_IMAGES", lambda: self._create(region))]
        self._check_owned(region, table)
        changes = []
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if billing != "PAY_PER_REQUEST":
            changes.append(self.change(region, "update", f"table {self.table}",
                                       f"billing {billing} -> PAY_PER_REQUEST",
                                       lambda: self._update(region, BillingMode="PAY_PER_REQUEST")))
        stream = table.get("StreamSpecification") or {}
        if not stream.get("StreamEnabled"):
            changes.append(self.change(region, "update", f"table {self.table}",
                                       "stream off -> NEW_AND_OLD_IMAGES",
                                       lambda: self._update(region, StreamSpecification=STREAM)))
        elif stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise Conflict(self.name, region, f"table {self.table}",
                           f"its stream is {stream.get('StreamViewType')}, global tables need NEW_AND_OLD_IMAGES",
                           "a stream's view type cannot be changed in place; disable the stream first")
        return changes

    def _check_owned(self, region: str, table: dict[str, Any]) -> None:
        keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        wanted = {self.config.table.hash_key: "HASH"}
        if keys != wanted:
            raise Conflict(self.name, region, f"table {self.table}",
                           f"exists with key schema {keys}, the config asks for {wanted}",
                           "the table is left untouched; choose another table.name or fix table.hash_key")
        tags = table_tags(self.ctx, region, table["TableArn"])
        if tags.get(TAG_STACK) != self.config.service:
            raise Conflict(self.name, region, f"table {self.table}",
                           f"exists but is not tagged {TAG_STACK}={self.config.service}",
                           "it is left untouched; to adopt it, add that tag to the table")

    def _create(self, region: str) -> None:
        self.ctx.clients("dynamodb", region).create_table(
            TableName=self.table,
            AttributeDefinitions=[{"AttributeName": self.config.table.hash_key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": self.config.table.hash_key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=STREAM,
            Tags=[{"Key": k, "Value": v} for k, v in self.ctx.tags(region).items()],
        )

    def _update(self, region: str, **kwargs: Any) -> None:
        self.ctx.clients("dynamodb", region).update_table(TableName=self.table, **kwargs)

    def settle(self, region: str) -> None:
        def active() -> tuple[bool, str]:
            table = describe_table(self.ctx, region)
            status = table["TableStatus"] if table else "MISSING"
            return status == "ACTIVE", status

        self.ctx.wait_until(f"table {self.table} ACTIVE", region, active)

    def destroy(self, region: str) -> list[Change]:
        table = describe_table(self.ctx, region)
        if table is None:
            return []
        tags = table_tags(self.ctx, region, table["TableArn"])
        if tags.get(TAG_STACK) != self.config.service:
            self.ctx.reporter.warn(f"[{region}] table {self.table} is not this stack's; left alone")
            return []
        others = [r["RegionName"] for r in table.get("Replicas", []) if r["RegionName"] != region]
        if others:
            self.ctx.reporter.warn(f"[{region}] table {self.table} still has replicas in "
                                   f"{', '.join(others)}; it is kept")
            return []
        if holds_items(self.ctx, region) and not self.ctx.delete_data:
            self.ctx.reporter.warn(f"[{region}] table {self.table} holds items; it is kept "
                                   "(pass --delete-data to delete it)")
            return []
        return [self.change(region, "delete", f"table {self.table}", "down",
                            lambda: self._delete(region))]

    def _delete(self, region: str) -> None:
        self.ctx.clients("dynamodb", region).delete_table(TableName=self.table)

        def gone() -> tuple[bool, str]:
            table = describe_table(self.ctx, region)
            return table is None, table["TableStatus"] if table else "deleted"

        self.ctx.wait_until(f"table {self.table} deleted", region, gone)

    def status(self, region: str) -> dict[str, Any]:
        table = describe_table(self.ctx, region)
        if table is None:
            return {"table": None}
        return {"table": {"name": self.table, "status": table["TableStatus"],
                          "version": table.get("GlobalTableVersion")}}
