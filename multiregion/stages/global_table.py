"""Stage `global-table`: one replica per configured region, through `UpdateTable(ReplicaUpdates)`.

Replicas are added one after another from the primary, each waited for until ACTIVE (and the table ACTIVE
again) before the next, because AWS allows nothing else for an eventually consistent (2019.11.21, MREC)
table:

* one replica action per request: UpdateTable with two `Create` actions is refused with ValidationException
  "Update table operation with more than one create or delete replica actions not allowed" (measured on AWS
  in an 'ack-api-quirks' lab note for the ACK DynamoDB controller, DDB-TABLE-265, verified 2026-10-09; the
  same message appears in hashicorp/terraform-provider-aws PR #47867's acceptance output, and Terraform has
  created replicas one per request since PR #13523, which closed #13132 "Creation fails with multiple
  replicas"). CloudFormation's AWS::DynamoDB::GlobalTable documents the same limit for updates ("you can
  only add or remove a single replica in each update"). The API reference sets no maximum on ReplicaUpdates
  and lets `MultiRegionConsistency` come with "one or more Create actions": several Creates in one request
  are how a strongly consistent (MRSC) table is made, not an eventual one;
* one table update at a time: "While it's UPDATING, you can't issue another UpdateTable request" (API
  reference, UpdateTable); the lab note saw ResourceInUseException for a second Create two seconds after the
  first.

So the replicas are a serial chain on `up`'s critical path: the table's creation, then one replica creation
per region after the first. Everything else overlaps with it (no stage depends on this one), and the
estimate of `up` counts the chain as it is. Replicas of regions no longer configured are removed only with
`--prune`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion import names
from multiregion.engine import GLOBAL, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups.tables import (
    describe_table,
    holds_items,
    is_isolated,
    replica_statuses,
    resource_policy,
    wait_active,
    without_isolation,
)
from multiregion.plan import Call, JsonText, Retry, Wait

ACTIVE = "ACTIVE"
FAILED = ("CREATION_FAILED", "REGION_DISABLED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS")
# Removing a replica can be refused until every write has reached it (FACTS: "The last active replica
# cannot be deleted until all writes are replicated"): it passes once replication caught up.
REPLICATION_PENDING = Retry(("ValidationException",), "writes not yet replicated", message="replicated",
                            budget=600.0)


@dataclass(frozen=True)
class GlobalTableSnapshot:
    primary: dict[str, Any] | None
    occupied: tuple[str, ...] = ()  # regions (not replicas) that already hold a table of that name
    holds_items: bool = False
    # region -> the replica's resource policy document, where it holds a drill's isolation statement
    isolated: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class GlobalTableStatus:
    replicas: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"replicas": dict(self.replicas)}


def replica_status_path(target: str) -> str:
    return f"Table.Replicas[?RegionName=='{target}'].ReplicaStatus | [0]"


class GlobalTableStage(Stage[GlobalTableSnapshot]):
    name = "global-table"
    help = "One replica of the table in every configured region (global tables version 2019.11.21)."
    scope = "global"
    depends_on = ("tables",)

    def read(self, aws: Reader, region: str) -> GlobalTableSnapshot:
        config = aws.config
        primary = describe_table(aws, config.primary)
        replicas = replica_statuses(primary)
        occupied = tuple(r for r in config.regions
                         if r != config.primary and r not in replicas and describe_table(aws, r) is not None)
        isolated: dict[str, dict[str, Any]] = {}
        if primary is not None:
            for region in [config.primary, *(r for r in replicas if r in config.regions)]:
                arn = names.table_arn(config, aws.env.account, aws.env.partition, region)
                policy = resource_policy(aws, region, arn)
                if policy is not None and is_isolated(policy["document"]):
                    isolated[region] = policy["document"]
        return GlobalTableSnapshot(primary, occupied, isolated=isolated)

    def read_down(self, aws: Reader, region: str) -> GlobalTableSnapshot:
        primary = describe_table(aws, aws.config.primary)
        return GlobalTableSnapshot(primary, (), primary is not None and holds_items(aws, aws.config.primary))

    def diff(self, env: Env, region: str, snapshot: GlobalTableSnapshot, inputs: Inputs) -> NodePlan:
        config = env.config
        name = config.table.name
        replicas = replica_statuses(snapshot.primary)
        for target in snapshot.occupied:
            raise Conflict(self.name, target, f"table {name}",
                           "a table of that name already exists there, so it cannot become a replica",
                           "delete or rename that table, or remove the region from the config")
        changes = [self.change(target, "create", f"replica {name}", f"replica of {config.primary}",
                               *self._create(env, target))
                   for target in config.regions if target != config.primary and target not in replicas]
        warnings = []
        for target in [r for r in replicas if r not in config.regions]:
            if env.prune:
                changes.append(self.change(target, "delete", f"replica {name}",
                                           "region removed from the config (--prune)", *self._delete(env, target)))
            else:
                warnings.append(f"[{target}] replica {name} is not in the config; kept "
                                "(run `up --prune` to remove it)")
        changes += [self._lift_isolation(env, target, document) for target, document in snapshot.isolated.items()]
        waits = [] if changes else [w for target, status in replicas.items()
                                    if target in config.regions and status != ACTIVE
                                    for w in self._settle(env, target)]
        return NodePlan(changes=tuple(changes), waits=tuple(waits), warnings=tuple(warnings))

    def _lift_isolation(self, env: Env, region: str, document: dict[str, Any]) -> Any:
        """A drill's isolation left behind (a killed `failover-test --fault isolate`): replication resumes."""
        arn = names.table_arn(env.config, env.account, env.partition, region)
        rest = without_isolation(document)
        op = Call("dynamodb", region, "delete_resource_policy", {"ResourceArn": arn},
                  done_if=("PolicyNotFoundException",)) if rest is None else \
            Call("dynamodb", region, "put_resource_policy", {"ResourceArn": arn, "Policy": JsonText(rest)})
        return self.change(region, "update", f"replica {env.config.table.name}",
                           "drift: a drill's isolation still stops replication -> lifted", op)

    def _update(self, env: Env, update: dict[str, Any], retry: tuple[Retry, ...] = ()) -> Call:
        return Call("dynamodb", env.config.primary, "update_table",
                    {"TableName": env.config.table.name, "ReplicaUpdates": [update]}, retry=retry)

    def _create(self, env: Env, target: str) -> tuple[Any, ...]:
        return (self._update(env, {"Create": {"RegionName": target}}), *self._settle(env, target))

    def _settle(self, env: Env, target: str) -> tuple[Wait, ...]:
        name = env.config.table.name
        replica = Wait(f"replica {name} in {target} ACTIVE", "dynamodb", env.config.primary, "describe_table",
                       {"TableName": name}, replica_status_path(target), (ACTIVE,), failed=FAILED,
                       hint="see the DynamoDB console for the reason; run `up` again to retry",
                       duration="replica_active")
        return replica, wait_active(env, env.config.primary)

    def _delete(self, env: Env, target: str) -> tuple[Any, ...]:
        name = env.config.table.name
        gone = Wait(f"replica {name} removed from {target}", "dynamodb", env.config.primary, "describe_table",
                    {"TableName": name}, f"length(Table.Replicas[?RegionName=='{target}'] || `[]`)", (0,),
                    duration="replica_deleted")
        return (wait_active(env, env.config.primary),
                self._update(env, {"Delete": {"RegionName": target}}, (REPLICATION_PENDING,)),
                gone, wait_active(env, env.config.primary))

    def destroy(self, env: Env, region: str, snapshot: GlobalTableSnapshot) -> NodePlan:
        if snapshot.primary is None:
            return NodePlan()
        name = env.config.table.name
        if snapshot.holds_items and not env.delete_data:
            return NodePlan(warnings=(f"table {name} holds items; its replicas are kept "
                                      "(pass --delete-data to delete them)",))
        return NodePlan(changes=tuple(self.change(target, "delete", f"replica {name}", "down",
                                                  *self._delete(env, target))
                                      for target in replica_statuses(snapshot.primary)
                                      if target != env.config.primary))

    def status(self, aws: Reader, region: str = GLOBAL) -> GlobalTableStatus:
        return GlobalTableStatus(replica_statuses(describe_table(aws, aws.config.primary)))
