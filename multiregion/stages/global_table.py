"""Stage `global-table`: one replica per configured region, through `UpdateTable(ReplicaUpdates)`.

A table accepts one update at a time, so replicas are added one after another from the primary, each
waited for until ACTIVE. Replicas of regions no longer configured are removed only with `--prune`.
"""

from __future__ import annotations

from typing import Any

from multiregion.engine import GLOBAL, Change, Conflict, Stage
from multiregion.stages.tables import describe_table, holds_items

ACTIVE = "ACTIVE"
FAILED = ("CREATION_FAILED", "REGION_DISABLED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS")


class GlobalTableStage(Stage):
    name = "global-table"
    help = "One replica of the table in every configured region (global tables version 2019.11.21)."
    scope = "global"
    depends_on = ("tables",)

    @property
    def table(self) -> str:
        return self.config.table.name

    def _replicas(self) -> dict[str, str]:
        table = describe_table(self.ctx, self.config.primary)
        if table is None:
            return {}
        return {r["RegionName"]: r.get("ReplicaStatus", ACTIVE) for r in table.get("Replicas", [])}

    def plan(self, region: str = GLOBAL) -> list[Change]:
        primary = self.config.primary
        replicas = self._replicas()
        changes = []
        for target in self.config.regions:
            if target == primary or target in replicas:
                continue
            if describe_table(self.ctx, target) is not None:
                raise Conflict(self.name, target, f"table {self.table}",
                               "a table of that name already exists there, so it cannot become a replica",
                               "delete or rename that table, or remove the region from the config")
            changes.append(self.change(target, "create", f"replica {self.table}",
                                       f"replica of {primary}", lambda t=target: self._create(t)))
        extra = [r for r in replicas if r not in self.config.regions]
        for target in extra:
            if self.ctx.prune:
                changes.append(self.change(target, "delete", f"replica {self.table}",
                                           "region removed from the config (--prune)",
                                           lambda t=target: self._delete(t)))
            else:
                self.ctx.reporter.warn(f"[{target}] replica {self.table} is not in the config; kept "
                                       "(run `up --prune` to remove it)")
        return changes

    def _update(self, update: dict[str, Any]) -> None:
        self.ctx.clients("dynamodb", self.config.primary).update_table(
            TableName=self.table, ReplicaUpdates=[update])

    def _create(self, target: str) -> None:
        self._update({"Create": {"RegionName": target}})
        self._wait_replicas({target})

    def _delete(self, target: str) -> None:
        self._wait_table_active()
        self._update({"Delete": {"RegionName": target}})

        def gone() -> tuple[bool, str]:
            status = self._replicas().get(target)
            return status is None, status or "deleted"

        self.ctx.wait_until(f"replica {self.table} removed", target, gone)
        self._wait_table_active()

    def _wait_table_active(self) -> None:
        def active() -> tuple[bool, str]:
            table = describe_table(self.ctx, self.config.primary)
            status = table["TableStatus"] if table else "MISSING"
            return status == ACTIVE, status

        self.ctx.wait_until(f"table {self.table} ACTIVE", self.config.primary, active)

    def _wait_replicas(self, targets: set[str]) -> None:
        for target in sorted(targets):
            def ready(target: str = target) -> tuple[bool, str]:
                status = self._replicas().get(target, "MISSING")
                if status in FAILED:
                    raise Conflict(self.name, target, f"replica {self.table}", f"replica is {status}",
                                   "see the DynamoDB console for the reason; run `up` again to retry")
                return status == ACTIVE, status

            self.ctx.wait_until(f"replica {self.table} ACTIVE", target, ready)
        self._wait_table_active()

    def settle(self, region: str = GLOBAL) -> None:
        self._wait_replicas(set(self.config.regions) - {self.config.primary})

    def destroy(self, region: str = GLOBAL) -> list[Change]:
        primary = self.config.primary
        if describe_table(self.ctx, primary) is None:
            return []
        if holds_items(self.ctx, primary) and not self.ctx.delete_data:
            self.ctx.reporter.warn(f"table {self.table} holds items; its replicas are kept "
                                   "(pass --delete-data to delete them)")
            return []
        return [self.change(target, "delete", f"replica {self.table}", "down",
                            lambda t=target: self._delete(t))
                for target in self._replicas() if target != primary]

    def status(self, region: str = GLOBAL) -> dict[str, Any]:
        return {"replicas": self._replicas()}
