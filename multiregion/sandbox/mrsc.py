"""DynamoDB multi-Region strong consistency (MRSC): AWS's rules as data and pure checks, for GlobalTables.

What the sandbox models, and where each rule comes from:

* The mode is fixed when the global table is made: `UpdateTable(MultiRegionConsistency=STRONG)` "is only valid
  when you create a global table by specifying one or more Create actions in the ReplicaUpdates action list"
  (API reference, UpdateTable). Exactly three Regions: "A MRSC global table can be configured with either three
  replicas, or with two replicas and one witness", the witness "in a different Region than the replicas and
  within the same Region set" (API reference, CreateGlobalTableWitnessGroupMemberAction, whose Region sets are
  REGION_SETS below); "The witness must be added when creating the MRSC global table" (GlobalTableWitnessGroupUpdate);
  "You can create or delete only one witness per UpdateTable operation" (UpdateTable). The table must be empty
  (Developer Guide, "Managing MRSC global tables"; the AWS SDK code examples say the same).
* Teardown: "You cannot delete a single witness from a MRSC global table - you must delete both a replica and
  the witness together. The deletion of both a witness and replica converts the remaining replica to a
  single-Region DynamoDB table" (API reference, DeleteGlobalTableWitnessGroupMemberAction).
* DescribeTable gives `MultiRegionConsistency` and `GlobalTableWitnesses` (API reference, TableDescription).
* Data plane (Developer Guide, "How DynamoDB global tables work", consistency modes; read here only through
  extracts): a write to an MRSC replica is replicated synchronously to at least one other Region before it is
  acknowledged; a strongly consistent read in any replica returns the latest version; an eventually consistent
  read may miss recent changes; a write to an item being modified by a request in another Region fails with
  ReplicatedWriteConflictException, which may be retried (its model is retryable).

The refusals' wording is AWS's as AWS answered these requests in October 2026 (the ack-api-quirks DynamoDB lab,
findings DDB-TABLE-201, 202, 257, 258, 259, 260 and 261; timing.py cites the same lab). Messages that lab did
not record are marked where they are defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion.regions import STRONG_REGION_SETS, distance_km, strong_region_set

STRONG, EVENTUAL = "STRONG", "EVENTUAL"
MEMBERS = 3  # regions of an MRSC global table: replicas plus witness

# The Region sets (regions.py, from the API reference). The ack-api-quirks lab saw AWS accept a eu-west-1 replica
# with a us-east-2 witness in 2026 (an AWS announcement of cross-continent configurations is said to be behind
# it); the sandbox keeps to the documented sets until the reference says otherwise.
REGION_SETS = STRONG_REGION_SETS

UNSUPPORTED_COUNT = "Unsupported replica count for global tables with MultiRegionConsistency set to STRONG."
WITNESS_NEEDS_STRONG = ("MultiRegionConsistency must be set as STRONG when GlobalTableWitnessUpdates parameter is "
                        "present.")
SAME_TARGET = "Cannot target multiple regions with the same action"  # AWS's answer to a witness in a replica's region
WITNESS_LOCAL = ("Cannot add a witness in the same region as an existing replica when creating a global table "
                 "with MultiRegionConsistency set to STRONG.")
ONLY_CREATES = "Only Replica Create actions are supported when MultiRegionConsistency parameter is provided."
EXISTING = "MultiRegionConsistency parameter is unsupported on existing global table"
CANNOT_ADD = "Cannot add replicas to a global table with strong MultiRegionConsistency"
ONLY_ONE_DELETE = ("Deletion of only one table replica is not supported for global tables with "
                   "MultiRegionConsistency set to STRONG.")
WITNESSES_LEFT = "Update table delete operation does not include all witnesses."
OTHER_FIELDS = "Requests that modify replicas or witnesses must not also modify other fields"
# AWS counts neither MultiRegionConsistency nor GlobalTableWitnessUpdates alone as a change to make.
NOTHING_TO_UPDATE = ("At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
                     "GlobalSecondaryIndexUpdates, SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, "
                     "ReplicaTransitRoleArn, MultiRegionConsistency, DeletionProtectionEnabled, OnDemandThroughput, "
                     "WarmThroughput or TableClass is required")
# AWS refuses a table that holds items (see the module docstring); its wording could not be checked.
NOT_EMPTY = ("Cannot create a global table with MultiRegionConsistency set to STRONG from a table that "
             "contains items.")
# The model's description of ReplicatedWriteConflictException; AWS's wording on the wire could not be checked.
CONFLICT = ("The request was rejected because one or more items in the request are being modified by a request in "
            "another Region.")
# The sandbox's wording for a replica whose resource policy denies the replication role (AWS answers
# AccessDeniedException then; its message could not be checked).
REPLICATION_DENIED = ("The replica cannot replicate: its resource-based policy denies DynamoDB's replication "
                      "service (REPLICATION_NOT_AUTHORIZED)")
# What DynamoDB writes for its HTTP 500 InternalServerError (as the lab above recorded it).
INTERNAL = "Internal server error"

# Request members that are part of a replica or witness change, not "other fields".
_GROUP_MEMBERS = frozenset({"TableName", "ReplicaUpdates", "GlobalTableWitnessUpdates", "MultiRegionConsistency"})

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})

# A write in flight between Regions: the round trip to the nearest other member, estimated from the distance
# at the speed of light in fibre (about 200 km per ms) times ROUTE_FACTOR for real routes (an estimate: AWS says
# only that MRSC write latency grows with the round trip to the nearest Region of the global table).
FIBRE_KM_PER_SECOND = 200_000.0
ROUTE_FACTOR = 2.0


def unsupported_regions(regions: list[str]) -> str:
    # AWS's answer to a Region outside every set; for Regions of two sets the wording could not be checked.
    return ("Unsupported Region(s) specified for global tables with MultiRegionConsistency set to STRONG: "
            f"[{', '.join(regions)}].")


def not_witnesses(regions: list[str]) -> str:
    # The lab recorded only the end of this message; its beginning here is the sandbox's.
    return ("Update table delete operation failed because one or more witnesses were not part of the global "
            f"table. Please retry the request without these witnesses: [{', '.join(regions)}].")


def too_many_witnesses(count: int) -> str:
    # AWS renders the list's Java objects in the message; the sandbox names how many there were instead.
    return (f"1 validation error detected: Value '[{count} GlobalTableWitnessGroupUpdate]' at "
            "'globalTableWitnessUpdates' failed to satisfy constraint: Member must have length less than or "
            "equal to 1")


def region_set(region: str) -> str | None:
    return strong_region_set(region)


@dataclass(frozen=True)
class Request:
    """The replica and witness part of an UpdateTable request."""

    consistency: str | None
    replica_updates: tuple[dict[str, Any], ...]
    witness_updates: tuple[dict[str, Any], ...]
    has_replica_updates: bool
    other_fields: tuple[str, ...]

    @classmethod
    def of(cls, body: dict[str, Any]) -> Request:
        return cls(consistency=body.get("MultiRegionConsistency"),
                   replica_updates=tuple(body.get("ReplicaUpdates") or ()),
                   witness_updates=tuple(body.get("GlobalTableWitnessUpdates") or ()),
                   has_replica_updates="ReplicaUpdates" in body,
                   other_fields=tuple(sorted(set(body) - _GROUP_MEMBERS)))

    @property
    def changes_members(self) -> bool:
        return self.has_replica_updates or bool(self.witness_updates)

    def replicas(self, action: str) -> list[str]:
        return _regions(self.replica_updates, action)

    def witnesses(self, action: str) -> list[str]:
        return _regions(self.witness_updates, action)

    def only_creates(self) -> bool:
        return all("Create" in u for u in self.replica_updates) and not self.witnesses("Delete")


def _regions(updates: tuple[dict[str, Any], ...], action: str) -> list[str]:
    return [str((u.get(action) or {}).get("RegionName", "")) for u in updates if action in u]


@dataclass(frozen=True)
class Membership:
    """A table's global table as a check sees it: where the request is sent, and who belongs to the group."""

    region: str
    replicas: frozenset[str] = frozenset()  # every replica's region, the request's own included; empty: none
    witnesses: frozenset[str] = frozenset()
    strong: bool = False


def shape_error(req: Request) -> str | None:
    """Refusals that depend on the request alone."""
    if len(req.witness_updates) > 1:
        return too_many_witnesses(len(req.witness_updates))
    if req.changes_members and req.other_fields:
        return OTHER_FIELDS
    if not req.has_replica_updates:
        return NOTHING_TO_UPDATE
    return None


def creation_error(req: Request, group: Membership) -> str | None:
    """Refusals of a request that would make a strong global table of a table that is not one (yet)."""
    if req.consistency != STRONG:
        return WITNESS_NEEDS_STRONG if req.witness_updates else None
    if not req.only_creates():
        return ONLY_CREATES
    targets = [*req.replicas("Create"), *req.witnesses("Create")]
    if 1 + len(targets) != MEMBERS:
        return UNSUPPORTED_COUNT
    if len(set(targets)) != len(targets):
        return SAME_TARGET
    if group.region in req.witnesses("Create"):
        return WITNESS_LOCAL
    unknown = [r for r in dict.fromkeys([group.region, *targets]) if region_set(r) is None]
    if unknown:
        return unsupported_regions(unknown)
    foreign = [r for r in targets if region_set(r) != region_set(group.region)]
    if foreign:
        return unsupported_regions(foreign)
    if group.replicas:
        return EXISTING  # an eventual global table stays eventual
    return None


def change_error(req: Request, group: Membership) -> str | None:
    """Refusals of a change to a strong global table: nothing joins it, and it is dissolved whole."""
    if req.consistency is not None:
        if not req.only_creates():
            return ONLY_CREATES
        if req.consistency == STRONG and 1 + len(req.replicas("Create")) + len(req.witnesses("Create")) != MEMBERS:
            return UNSUPPORTED_COUNT
        return EXISTING
    if req.replicas("Create"):
        return CANNOT_ADD
    if req.witnesses("Create"):
        return WITNESS_NEEDS_STRONG
    if set(req.replicas("Delete")) != group.replicas - {group.region}:
        return ONLY_ONE_DELETE
    strangers = [w for w in req.witnesses("Delete") if w not in group.witnesses]
    if strangers:
        return not_witnesses(strangers)
    if set(req.witnesses("Delete")) != group.witnesses:
        return WITNESSES_LEFT
    return None


# ---------------------------------------------------------------------------------------------- data plane


def table_name(value: str) -> str:
    """A TableName member, which may also be the table's ARN."""
    return value.rsplit("table/", 1)[1] if value.startswith("arn:") and "table/" in value else value


def tables_of(op: str, body: dict[str, Any]) -> list[str]:
    if op in ("BatchWriteItem", "BatchGetItem"):
        items = body.get("RequestItems")
        return [table_name(str(t)) for t in items] if isinstance(items, dict) else []
    return [table_name(str(body.get("TableName", "")))]


def written_keys(op: str, body: dict[str, Any], table: str, key_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The primary keys a write request touches in `table`."""
    if op == "BatchWriteItem":
        requests = (body.get("RequestItems") or {}).get(table) or []
        found = [r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key") for r in requests
                 if isinstance(r, dict)]
    else:
        found = [body.get("Item") if op == "PutItem" else body.get("Key")]
    return [{k: v for k, v in item.items() if k in key_names} for item in found if isinstance(item, dict)]


def strongly_read(op: str, body: dict[str, Any]) -> list[str]:
    """The tables a read request reads with ConsistentRead."""
    if op == "BatchGetItem":
        items = body.get("RequestItems")
        return [table_name(str(t)) for t, spec in items.items() if isinstance(spec, dict)
                and spec.get("ConsistentRead")] if isinstance(items, dict) else []
    return tables_of(op, body) if body.get("ConsistentRead") else []


def round_trip(a: str, b: str) -> float:
    """AWS seconds for a request from region a to b and back (see ROUTE_FACTOR)."""
    return 2 * distance_km(a, b) / FIBRE_KM_PER_SECOND * ROUTE_FACTOR


def write_window(region: str, others: set[str]) -> float:
    """AWS seconds a strong write from `region` is in flight: until the nearest other member has it."""
    return min((round_trip(region, other) for other in others), default=0.0)


@dataclass
class InFlight:
    """Strong writes still on their way between Regions, per (table, item key): (writing region, until when)."""

    writes: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)

    def conflicts(self, slots: list[tuple[str, str]], region: str, now: float) -> bool:
        """Whether another Region is modifying one of these items: AWS then refuses the write."""
        for slot in [s for s, (_, until) in self.writes.items() if until <= now]:
            del self.writes[slot]
        return any(slot in self.writes and self.writes[slot][0] != region for slot in slots)

    def hold(self, slots: list[tuple[str, str]], region: str, until: float) -> None:
        for slot in slots:
            self.writes[slot] = (region, until)

    def clear(self) -> None:
        self.writes.clear()
