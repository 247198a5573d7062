"""Stage `global-table`: one replica per configured region, through `UpdateTable(ReplicaUpdates)`.

Eventual consistency (the default): replicas are added one after another from the primary, each waited
for until ACTIVE (and the table ACTIVE
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

Strong consistency (`table.consistency: strong`, MRSC): AWS fixes the mode when the global table is made,
so the whole group comes in one UpdateTable (MultiRegionConsistency STRONG, every replica's Create and the
witness's) on an empty table, and leaves in one (every other replica's Delete and the witness's). A table
whose mode or members differ from the config is refused with a hint, never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion import names
from multiregion.engine import GLOBAL, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups.tables import (
    consistency,
    describe_table,
    holds_items,
    is_isolated,
    replica_statuses,
    resource_policy,
    wait_active,
    without_isolation,
    witnesses,
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
    consistency: str | None = None  # STRONG or EVENTUAL; None without a table
    witnesses: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"replicas": dict(self.replicas), "consistency": self.consistency, "witnesses": dict(self.witnesses)}


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
        # A strong global table can only be made of an empty table: read whether it is, before planning it.
        empty_needed = config.table.strong and primary is not None and not replicas and not witnesses(primary)
        items = empty_needed and holds_items(aws, config.primary)
        return GlobalTableSnapshot(primary, occupied, items, isolated=isolated)

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
        self._check_mode(env, snapshot)
        lifts = tuple(self._lift_isolation(env, target, document) for target, document in snapshot.isolated.items())
        if config.table.strong:
            strong = self._diff_strong(env, snapshot)
            return NodePlan(changes=strong.changes + lifts, waits=() if lifts else strong.waits)
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
        changes += lifts
        waits = [] if changes else [w for target, status in replicas.items()
                                    if target in config.regions and status != ACTIVE
                                    for w in self._settle(env, target)]
        return NodePlan(changes=tuple(changes), waits=tuple(waits), warnings=tuple(warnings))

    def _check_mode(self, env: Env, snapshot: GlobalTableSnapshot) -> None:
        """The mode is fixed when the global table is made (UpdateTable accepts MultiRegionConsistency only
        with the Create actions that make it): a table in the other mode is refused, never replaced."""
        table, config = snapshot.primary, env.config
        if table is None or (not replica_statuses(table) and not witnesses(table)):
            return  # not a global table yet: either mode can still be chosen
        current, wanted = consistency(table), "STRONG" if config.table.strong else "EVENTUAL"
        if current != wanted:
            raise Conflict(self.name, config.primary, f"table {config.table.name}",
                           f"the global table is {current}, the config asks for {wanted}; DynamoDB fixes the "
                           "mode when the global table is created",
                           f"set table.consistency: {current.lower()}, or move the data to a new table "
                           f"(another table.name) created {wanted.lower()}")

    def _diff_strong(self, env: Env, snapshot: GlobalTableSnapshot) -> NodePlan:
        config, table = env.config, snapshot.primary
        name, primary = config.table.name, config.primary
        replicas, witness = replica_statuses(table), witnesses(table)
        wanted = {r for r in config.regions if r != primary}
        wanted_witness = {config.table.witness} if config.table.witness else set()
        if replicas or witness:
            if set(replicas) != wanted or set(witness) != wanted_witness:
                have = ", ".join([*sorted(replicas), *(f"{w} (witness)" for w in sorted(witness))])
                raise Conflict(self.name, primary, f"table {name}",
                               f"the strong global table's other members are {have}; a strong global table "
                               "neither gains nor loses one member at a time",
                               "restore regions and table.witness to match, or `down --delete-data` and `up` "
                               "to make the group anew (its data goes with it)")
            settled = all(s == ACTIVE for s in [*replicas.values(), *witness.values()])
            waits = [] if settled else list(self._settle_strong(env))
            return NodePlan(waits=tuple(waits))
        if snapshot.holds_items:
            raise Conflict(self.name, primary, f"table {name}",
                           "DynamoDB makes a strongly consistent global table only of an empty table, and this one "
                           "holds items",
                           "empty the table first, or choose another table.name for the strong table")
        members = ", ".join([*sorted(wanted), *(f"witness {w}" for w in sorted(wanted_witness))])
        update: dict[str, Any] = {"TableName": name, "MultiRegionConsistency": "STRONG",
                                  "ReplicaUpdates": [{"Create": {"RegionName": r}} for r in sorted(wanted)]}
        if wanted_witness:
            update["GlobalTableWitnessUpdates"] = [{"Create": {"RegionName": w}} for w in sorted(wanted_witness)]
        change = self.change(primary, "create", f"global table {name} (strong)",
                             f"strong consistency with {members}, in one update",
                             Call("dynamodb", primary, "update_table", update), *self._settle_strong(env))
        return NodePlan(changes=(change,))

    def _settle_strong(self, env: Env) -> tuple[Wait, ...]:
        config = env.config
        name = config.table.name
        waits = [Wait(f"replica {name} in {target} ACTIVE", "dynamodb", config.primary, "describe_table",
                      {"TableName": name}, replica_status_path(target), (ACTIVE,), failed=FAILED,
                      hint="see the DynamoDB console for the reason; run `up` again to retry")
                 for target in config.regions if target != config.primary]
        if config.table.witness:
            waits.append(Wait(f"witness {name} in {config.table.witness} ACTIVE", "dynamodb", config.primary,
                              "describe_table", {"TableName": name},
                              f"Table.GlobalTableWitnesses[?RegionName=='{config.table.witness}'].WitnessStatus"
                              " | [0]", (ACTIVE,), failed=FAILED,
                              hint="see the DynamoDB console for the reason; run `up` again to retry"))
        return (*waits, wait_active(env, config.primary))

    def _destroy_strong(self, env: Env, table: dict[str, Any]) -> NodePlan:
        """AWS removes a strong group whole: every other replica and the witness in one update."""
        config = env.config
        name = config.table.name
        replicas, witness = sorted(replica_statuses(table)), sorted(witnesses(table))
        if not replicas and not witness:
            return NodePlan()
        update: dict[str, Any] = {"TableName": name, "ReplicaUpdates": [{"Delete": {"RegionName": r}}
                                                                         for r in replicas]}
        if witness:
            update["GlobalTableWitnessUpdates"] = [{"Delete": {"RegionName": w}} for w in witness]
        gone = [Wait(f"{what} of {name} removed", "dynamodb", config.primary, "describe_table", {"TableName": name},
                     f"length(Table.{member} || `[]`)", (0,))
                for what, member in (("replicas", "Replicas"), ("witness", "GlobalTableWitnesses"))]
        members = ", ".join([*replicas, *(f"witness {w}" for w in witness)])
        return NodePlan(changes=(self.change(config.primary, "delete", f"global table {name} (strong)",
                                             f"down: {members}, in one update",
                                             wait_active(env, config.primary),
                                             Call("dynamodb", config.primary, "update_table", update,
                                                  retry=(REPLICATION_PENDING,)),
                                             *gone, wait_active(env, config.primary)),))

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
        if consistency(snapshot.primary) == "STRONG":
            return self._destroy_strong(env, snapshot.primary)
        return NodePlan(changes=tuple(self.change(target, "delete", f"replica {name}", "down",
                                                  *self._delete(env, target))
                                      for target in replica_statuses(snapshot.primary)
                                      if target != env.config.primary))

    def status(self, aws: Reader, region: str = GLOBAL) -> GlobalTableStatus:
        table = describe_table(aws, aws.config.primary)
        return GlobalTableStatus(replica_statuses(table), consistency(table) if table else None, witnesses(table))
