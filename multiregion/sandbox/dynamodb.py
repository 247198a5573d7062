"""DynamoDB global tables (version 2019.11.21) on top of moto's single-region tables.

moto accepts `UpdateTable(ReplicaUpdates=...)` and ignores it. Here a replica group is kept per table
name: `Create` makes the replica table in the target region with the source's schema and copies the
existing items (AWS backfills too), `Delete` removes it, `DescribeTable` reports `GlobalTableVersion` and
the other regions' `Replicas`, and a replicator thread reads every replica's stream and applies each write
to the other replicas: asynchronously, last writer wins per item, deletes included. Writes applied by the
replicator are marked so they are never sent back.

Table states and refusals, as the DynamoDB API reference describes them (UpdateTable: "UpdateTable is an
asynchronous operation; while it's executing, the table status changes from ACTIVE to UPDATING. While it's
UPDATING, you can't issue another UpdateTable request"; DeleteTable: "If a table is in CREATING or UPDATING
states, then DynamoDB returns a ResourceInUseException"):

* always: a new replica is CREATING for `duration("replica_active")` and the table UPDATING meanwhile; a
  second `ReplicaUpdates` then is refused with ResourceInUseException. An eventually consistent table
  takes one Create or Delete per UpdateTable: two are refused with ValidationException "Update table
  operation with more than one create or delete replica actions not allowed" (measured on AWS in the
  ack-api-quirks lab note DDB-TABLE-265, 2026-10-09; the API reference itself sets no limit), and two
  identical actions count as one, as AWS de-duplicates them. Several Creates in one request are how a
  strongly consistent table is made (below).
* under `SandboxOptions.strict`: a new table is CREATING for `duration("table_active")`; any UpdateTable
  and DeleteTable are refused while the table is CREATING or UPDATING; a deleted replica is DELETING for
  `duration("replica_deleted")`; and a replica (or its table) cannot be deleted while writes made there
  have not reached every other replica: AWS's ValidationException "The last active replica of table: ...
  cannot be deleted until all writes are replicated." (text as AWS returned it to the Terraform AWS
  provider's acceptance tests, hashicorp/terraform-provider-aws#30599; the two spaces are AWS's).

The replicator keeps what it has read but not yet applied in a per-target backlog and removes a write from
it only once applied, so a failing pass (or a paused target) loses nothing; `stats` counts what it did.

Strong global tables (multi-Region strong consistency; AWS's rules and their sources are in mrsc.py):

* `UpdateTable(MultiRegionConsistency="STRONG", ReplicaUpdates=[Create...], GlobalTableWitnessUpdates=[...])` on
  an empty table makes the group in one request: three regions of one Region set, replicas and at most one
  witness, CREATING for `duration("replica_active")`. The witness holds no table (its region's DescribeTable
  finds none); every replica's DescribeTable shows `MultiRegionConsistency: STRONG` and `GlobalTableWitnesses`.
  An eventual global table shows no `MultiRegionConsistency` at all, as AWS answers. Nothing joins a strong
  group later, and it is dissolved by one request deleting every other replica and the witness, after which
  the table is a single-region table again; DeleteTable of a member is refused until then.
* A write (PutItem, UpdateItem, DeleteItem, BatchWriteItem) is answered only after the replicator has applied
  it to every reachable replica, under the sandbox lock: so a second region holds it before the caller hears
  of it, and a read in any reachable replica, with or without ConsistentRead, sees the latest acknowledged
  value. A write and a strongly consistent read need their own region and one other member (replica or
  witness) reachable; the fault `replication_paused` cuts a region off. A cut-off region answers writes and
  strongly consistent reads with InternalServerError (HTTP 500), as an MRSC replica isolated by AWS FIS's
  pause-replication action answered in a 2026 regional-outage lab report (AWS's page on isolation could not be
  read here); its eventually consistent reads are served from its own, possibly stale, copy, and it catches
  up from its backlog once reachable again (before it serves a strong request, at the latest).
* A write to an item that a write from another region still has in flight (for the round trip to that
  region's nearest member, `mrsc.write_window`, time-scaled, on the sandbox clock) is refused with
  ReplicatedWriteConflictException (HTTP 400) and changes nothing.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat, mrsc
from multiregion.sandbox.app import BackgroundLoop, Extension, SandboxRequest, aws_json_error
from multiregion.sandbox.moto_compat import DynamoItem, DynamoTable, StreamRecord, StreamShard

VERSION = "2019.11.21"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
_ERR = "com.amazonaws.dynamodb.v20120810#"
VALIDATION, IN_USE, NOT_FOUND = _ERR + "ValidationException", _ERR + "ResourceInUseException", \
    _ERR + "ResourceNotFoundException"
CONFLICT, INTERNAL = _ERR + "ReplicatedWriteConflictException", _ERR + "InternalServerError"
ACCESS_DENIED = _ERR + "AccessDeniedException"
CREATING, ACTIVE, DELETING, UPDATING = "CREATING", "ACTIVE", "DELETING", "UPDATING"
# AWS's answer to two replica actions in one UpdateTable of an eventually consistent table (DDB-TABLE-265).
MORE_THAN_ONE_ACTION = "Update table operation with more than one create or delete replica actions not allowed"
NO_ACTIONS = "There are no actions specified in the Replica Update Action of the request."
# AWS's answer to ReplicaUpdates naming the region the request is sent to (as AWS returned it, e.g.
# aws/aws-cli#4906 and aws/aws-cdk#6287).
LOCAL_REGION = ("Cannot add, delete, or update the local region through ReplicaUpdates. Use CreateTable, "
                "DeleteTable, or UpdateTable as required.")


REPLICATION_SERVICE = "replication.dynamodb.amazonaws.com"


def denies_replication(region: str, name: str, now: datetime) -> bool:
    """Whether the table's resource policy (in `region`) denies DynamoDB's replication service, as a drill's
    isolation (or AWS FIS's global-table-pause-replication) does: then nothing replicates to or from that
    replica (AWS reports it REPLICATION_NOT_AUTHORIZED). A `DateLessThan aws:CurrentTime` condition limits
    the statement in time, as those statements are written to expire."""
    table = moto_compat.dynamodb_table(region, name)
    text = moto_compat.resource_policy(region, table) if table is not None else None
    if not text:
        return False
    statements = json.loads(text).get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = (statement.get("Principal") or {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") != "Deny" or REPLICATION_SERVICE not in services:
            continue
        until = ((statement.get("Condition") or {}).get("DateLessThan") or {}).get("aws:CurrentTime")
        if until is None or now < datetime.fromisoformat(str(until).replace("Z", "+00:00")):
            return True
    return False


def validation_error(message: str) -> Response:
    return aws_json_error(VALIDATION, message)


def last_replica_error(name: str, region: str) -> Response:
    return aws_json_error(VALIDATION, f"The last active replica of table: '{name}'  in region: '{region}' cannot "
                                      "be deleted until all writes are replicated.")


def in_use_error(name: str, doing: str) -> Response:
    return aws_json_error(IN_USE, f"Attempt to change a resource which is still in use: Table is being {doing}: {name}")


@dataclass
class Replica:
    status: str
    until: float = 0.0  # sandbox clock time at which CREATING or DELETING ends


@dataclass
class ReplicaGroup:
    name: str
    replicas: dict[str, Replica] = field(default_factory=dict)
    consistency: str = mrsc.EVENTUAL
    witnesses: dict[str, Replica] = field(default_factory=dict)  # strong groups only; a witness has no table

    @property
    def strong(self) -> bool:
        return self.consistency == mrsc.STRONG

    def status(self, region: str) -> str:
        return self.replicas[region].status

    def busy(self) -> bool:
        return any(r.status != ACTIVE for r in [*self.replicas.values(), *self.witnesses.values()])

    def members(self) -> set[str]:
        """The regions that can hold a strong write: replicas and witnesses not being removed."""
        return {r for r, m in [*self.replicas.items(), *self.witnesses.items()] if m.status != DELETING}

    def membership(self, region: str) -> mrsc.Membership:
        return mrsc.Membership(region, frozenset(self.replicas), frozenset(self.witnesses), self.strong)


class GlobalTables(Extension):
    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.groups: dict[str, ReplicaGroup] = {}
        # (table, region) -> the stream shard being read, and the index of its next record
        self.offsets: dict[tuple[str, str], tuple[StreamShard | None, int]] = {}
        # (table, region, key) -> (time, writing region) of the newest write applied to that item there
        self.last_write: dict[tuple[str, str, str], tuple[float, str]] = {}
        # (table, target region) -> writes read but not yet applied there (paused, or the pass failed)
        self.backlog: dict[tuple[str, str], list[tuple[str, StreamRecord]]] = {}
        # (region, table) -> sandbox clock time at which a new table leaves CREATING (strict only)
        self.creating: dict[tuple[str, str], float] = {}
        # read: local writes read from streams; applied / superseded: deliveries to a replica
        self.stats: Counter[str] = Counter()
        self.in_flight = mrsc.InFlight()  # strong writes on their way between regions
        self._loop = BackgroundLoop("sandbox-replicator", self.replicate_once,
                                    lambda: self.sandbox.options.replication_interval)

    # ------------------------------------------------------------------ requests

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service != "dynamodb" or not req.target or req.target.startswith("DynamoDBStreams"):
            return None
        op = req.operation or ""
        if op in mrsc.WRITES or op in mrsc.READS:
            return self._data_plane(req, op)
        if op == "UpdateTable":
            if self._strong_request(req):
                return self._update_strong(req)
            if "ReplicaUpdates" in req.json():
                return self._update_replicas(req)
            return self._refuse_in_use(req) if self.sandbox.strict else None
        if op == "DescribeTable":
            return self._describe(req)
        if op == "DeleteTable":
            return self._delete_table(req)
        if op == "CreateTable" and self.sandbox.strict:
            return self._create_table(req)
        return None

    def _create_table(self, req: SandboxRequest) -> Response:
        name, region = req.json().get("TableName", ""), req.region or ""
        with self.sandbox.lock:
            resp = self.forward(req)
            if resp.status != 200:
                return resp.response()
            self.creating[(region, name)] = self.sandbox.now() + self.sandbox.duration("table_active")
        data = resp.json()
        data.get("TableDescription", {})["TableStatus"] = CREATING
        return wire_response(data)

    def _refuse_in_use(self, req: SandboxRequest) -> Response | None:
        with self.sandbox.lock:
            return self._in_use(req.json().get("TableName", ""), req.region or "")

    def _in_use(self, name: str, region: str) -> Response | None:
        """AWS's refusal of a change to a table that is CREATING or UPDATING, or None. Holds sandbox.lock."""
        self._settle()
        if (region, name) in self.creating:
            return in_use_error(name, "created")
        group = self.groups.get(name)
        if group is not None and region in group.replicas and group.busy():
            return in_use_error(name, "updated")
        return None

    def _describe(self, req: SandboxRequest) -> Response:
        resp = self.forward(req)
        if resp.status != 200:
            return resp.response()
        data = resp.json()
        table = data.get("Table", {})
        self._decorate(table, req.region or "")
        return wire_response(data)

    def _decorate(self, table: dict[str, Any], region: str) -> None:
        name = table.get("TableName", "")
        with self.sandbox.lock:
            self._settle()
            if (region, name) in self.creating:
                table["TableStatus"] = CREATING
            group = self.groups.get(name)
            if group is None or region not in group.replicas:
                return
            statuses = {r: group.status(r) for r in group.replicas}
            witnesses = {r: w.status for r, w in group.witnesses.items()}
            strong = group.strong
        table["GlobalTableVersion"] = VERSION
        # As on AWS, a region's description lists the other replicas.
        table["Replicas"] = [{"RegionName": r, "ReplicaStatus": s} for r, s in sorted(statuses.items())
                             if r != region]
        if strong:  # an eventual global table has neither member (AWS does not echo its default EVENTUAL)
            table["MultiRegionConsistency"] = mrsc.STRONG
            if witnesses:
                table["GlobalTableWitnesses"] = [{"RegionName": r, "WitnessStatus": s}
                                                 for r, s in sorted(witnesses.items())]
        own = statuses[region]
        if own != ACTIVE:
            table["TableStatus"] = own  # the replica being made or removed here
        elif any(s != ACTIVE for s in [*statuses.values(), *witnesses.values()]):
            table["TableStatus"] = UPDATING

    def _delete_table(self, req: SandboxRequest) -> Response:
        name, region = req.json().get("TableName", ""), req.region or ""
        with self.sandbox.lock:
            group = self.groups.get(name)
            if group is not None and group.strong and region in group.replicas:
                return validation_error(mrsc.ONLY_ONE_DELETE)  # dissolve the group with UpdateTable first
            if self.sandbox.strict:
                refusal = self._in_use(name, region)
                if refusal is None and self._unreplicated(name, region):
                    refusal = last_replica_error(name, region)
                if refusal is not None:
                    return refusal
            resp = self.forward(req)
            if resp.status == 200:
                self.creating.pop((region, name), None)
                self._left_group(name, region)
        return resp.response()

    def _update_replicas(self, req: SandboxRequest) -> Response:
        body = dict(req.json())
        name, region = body.get("TableName", ""), req.region or ""
        updates = body.pop("ReplicaUpdates") or []
        with self.sandbox.lock:
            source = moto_compat.dynamodb_table(region, name)
            if source is None:
                return aws_json_error(NOT_FOUND, f"Requested resource not found: Table: {name} not found")
            refusal = self._in_use(name, region)  # CREATING is only ever recorded under strict
            if refusal is not None:
                return refusal
            error = self._check_updates(name, region, source, updates)
            if error is not None:
                return error
            ready_at = self.sandbox.now() + self.sandbox.duration("replica_active")
            for update in updates[:1]:  # one action (identical ones are one, as AWS de-duplicates them)
                if "Create" in update:
                    self._create_replica(name, source, region, update["Create"]["RegionName"], ready_at)
                else:
                    self._delete_replica(name, update["Delete"]["RegionName"])
            table = moto_compat.describe_table(region, name)
        self._decorate(table, region)
        return wire_response({"TableDescription": table})

    def _check_updates(self, name: str, region: str, source: DynamoTable,
                       updates: list[dict[str, Any]]) -> Response | None:
        """Every replica update checked before any is made, as AWS accepts or refuses a request whole."""
        group = self.groups.get(name)
        members = set(group.replicas) if group else {region}
        distinct = {json.dumps(update, sort_keys=True) for update in updates}
        if not distinct:
            return aws_json_error(VALIDATION, NO_ACTIONS)
        if len(distinct) > 1:
            return aws_json_error(VALIDATION, MORE_THAN_ONE_ACTION)
        for update in updates[:1]:
            action = "Create" if "Create" in update else "Delete" if "Delete" in update else None
            if action is None:
                return aws_json_error(VALIDATION, "ReplicaUpdates supports Create and Delete here")
            target = update[action].get("RegionName", "")
            if target == region:
                return aws_json_error(VALIDATION, LOCAL_REGION)
            error = (self._check_create(name, source, target, members) if action == "Create"
                     else self._check_delete(name, target, members))
            if error is not None:
                return error
        return None

    def _check_create(self, name: str, source: DynamoTable, target: str, members: set[str]) -> Response | None:
        if target in members:
            return aws_json_error(VALIDATION, f"Failed to create a replica of table {name} in region {target}: "
                                              "replica already exists")
        stream = moto_compat.stream_specification(source)
        if stream.get("StreamEnabled") and stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            return aws_json_error(VALIDATION, "Table must have DynamoDB Streams enabled with StreamViewType set to "
                                              "NEW_AND_OLD_IMAGES to add replicas")
        if moto_compat.dynamodb_table(target, name) is not None:
            return aws_json_error(VALIDATION, f"Failed to create a the new replica of table with name: '{name}' "
                                              "because one or more replicas already existed as tables.")
        return None

    def _check_delete(self, name: str, target: str, members: set[str]) -> Response | None:
        if target not in members:
            return aws_json_error(VALIDATION, f"Cannot delete replica {target} of table {name}: no such replica")
        if self.sandbox.strict and self._unreplicated(name, target):
            return last_replica_error(name, target)
        return None

    def _create_replica(self, name: str, source: DynamoTable, source_region: str, target: str,
                        ready_at: float) -> None:
        if not moto_compat.stream_specification(source).get("StreamEnabled"):
            moto_compat.enable_stream(source, STREAM)  # AWS turns the stream on when a replica is added
        desc = moto_compat.describe_table(source_region, name)
        gsis = [{k: v for k, v in g.items() if k in ("IndexName", "KeySchema", "Projection")}
                for g in desc.get("GlobalSecondaryIndexes", [])]
        replica = moto_compat.create_table(target, name, desc["KeySchema"], desc["AttributeDefinitions"],
                                           gsis or None, STREAM)
        for item in moto_compat.table_items(source):
            attrs = moto_compat.item_attributes(item)
            _write_replicated(replica, source_region, functools.partial(moto_compat.put_item, target, name, attrs))
            # The copy is the source's version of the item: an older write still on its way must not win.
            slot = _item_key(source, item)
            if (name, source_region, slot) in self.last_write:
                self.last_write[(name, target, slot)] = self.last_write[(name, source_region, slot)]
        # The backfill carried everything written so far: replication starts from here on both sides. Writes
        # still held for the source are not in it, so the new replica waits for them too.
        self.offsets.setdefault((name, source_region), _stream_end(source))
        self.offsets[(name, target)] = _stream_end(replica)
        self.backlog[(name, target)] = list(self.backlog.get((name, source_region), []))
        group = self.groups.setdefault(name, ReplicaGroup(name, {source_region: Replica(ACTIVE)}))
        group.replicas[target] = Replica(CREATING, ready_at)

    def _delete_replica(self, name: str, target: str) -> None:
        if self.sandbox.strict:
            self.groups[name].replicas[target] = Replica(DELETING, self.sandbox.now() +
                                                         self.sandbox.duration("replica_deleted"))
            return
        self._remove_replica(name, target)

    def _remove_replica(self, name: str, target: str) -> None:
        if moto_compat.dynamodb_table(target, name) is not None:
            moto_compat.delete_table(target, name)
        self._left_group(name, target)

    def _left_group(self, name: str, region: str) -> None:
        with self.sandbox.lock:
            group = self.groups.get(name)
            if group is None:
                return
            group.replicas.pop(region, None)
            self.offsets.pop((name, region), None)
            self.backlog.pop((name, region), None)
            if len(group.replicas) <= 1:
                del self.groups[name]
                for slot in [k for k in self.offsets if k[0] == name]:
                    del self.offsets[slot]
                for slot in [k for k in self.backlog if k[0] == name]:
                    del self.backlog[slot]

    def _settle(self) -> None:
        """Move every state whose time has come: tables and replicas to ACTIVE, deleted replicas out. Holds
        sandbox.lock."""
        now = self.sandbox.now()
        for slot in [k for k, until in self.creating.items() if now >= until]:
            del self.creating[slot]
        for group in list(self.groups.values()):
            for region, replica in list(group.replicas.items()):
                if replica.status == CREATING and now >= replica.until:
                    group.replicas[region] = Replica(ACTIVE)
                elif replica.status == DELETING and now >= replica.until:
                    self._remove_replica(group.name, region)
            for region, witness in list(group.witnesses.items()):
                if witness.status == CREATING and now >= witness.until:
                    group.witnesses[region] = Replica(ACTIVE)
                elif witness.status == DELETING and now >= witness.until:
                    del group.witnesses[region]

    def _unreplicated(self, name: str, region: str) -> bool:
        """Whether writes made in `region` have not reached every other replica yet. Holds sandbox.lock."""
        group = self.groups.get(name)
        if group is None or region not in group.replicas or len(group.replicas) < 2:
            return False
        table = moto_compat.dynamodb_table(region, name)
        current = None if table is None else moto_compat.stream_shard(table)
        if current is not None:
            shard, start = self.offsets.get((name, region), (None, 0))
            records = moto_compat.shard_records(current)
            unread = records[start:] if shard is current else records
            if any(moto_compat.replicated_from(rec) is None for rec in unread):
                return True
        staying = {r for r, replica in group.replicas.items() if r != region and replica.status != DELETING}
        return any(source == region for target in staying for source, _ in self.backlog.get((name, target), []))

    # ------------------------------------------------------------------ strong global tables: control plane

    def _strong_request(self, req: SandboxRequest) -> bool:
        """Whether an UpdateTable is one for the strong rules: it names a consistency mode or a witness, or it
        changes the replicas of a strong group. Everything else keeps the eventual path exactly."""
        body = req.json()
        request = mrsc.Request.of(body)
        if request.witness_updates:
            return True
        if "MultiRegionConsistency" in body:
            return request.has_replica_updates or not request.other_fields
        group = self.groups.get(body.get("TableName", ""))
        return request.has_replica_updates and group is not None and group.strong and req.region in group.replicas

    def _update_strong(self, req: SandboxRequest) -> Response:
        body = req.json()
        name, region = body.get("TableName", ""), req.region or ""
        request = mrsc.Request.of(body)
        with self.sandbox.lock:
            source = moto_compat.dynamodb_table(region, name)
            if source is None:
                return aws_json_error(NOT_FOUND, f"Requested resource not found: Table: {name} not found")
            group = self.groups.get(name)
            membership = group.membership(region) if group and region in group.replicas else mrsc.Membership(region)
            if not membership.strong and request.consistency != mrsc.STRONG and not request.witness_updates \
                    and request.has_replica_updates:
                return self._update_replicas(req)  # MultiRegionConsistency=EVENTUAL: today's eventual path
            if group is not None and region not in group.replicas:
                # A same-named table beside a global table (in its witness's region, say) is another table on
                # AWS; the sandbox keeps one global table per name and cannot make that one global as well.
                return validation_error(f"The sandbox already holds a global table named {name} in other regions")
            error = mrsc.shape_error(request)
            if error is not None:
                return validation_error(error)
            refusal = self._in_use(name, region)
            if refusal is not None:
                return refusal
            refusal = (self._check_strong_change(name, request, membership) if membership.strong
                       else self._check_strong_creation(name, source, request, membership))
            if refusal is not None:
                return refusal
            if membership.strong:
                self._dissolve(name, request)
            else:
                self._create_strong(name, source, region, request)
            data = {"Table": moto_compat.describe_table(region, name)}
        self._decorate(data["Table"], region)
        return wire_response({"TableDescription": data["Table"]})

    def _check_strong_creation(self, name: str, source: DynamoTable, request: mrsc.Request,
                               membership: mrsc.Membership) -> Response | None:
        if membership.region in request.replicas("Create"):
            return validation_error(LOCAL_REGION)
        error = mrsc.creation_error(request, membership)
        if error is not None:
            return validation_error(error)
        for target in request.replicas("Create"):
            refusal = self._check_create(name, source, target, {membership.region})
            if refusal is not None:
                return refusal
        return validation_error(mrsc.NOT_EMPTY) if moto_compat.holds_items(source) else None

    def _check_strong_change(self, name: str, request: mrsc.Request, membership: mrsc.Membership) -> Response | None:
        for update in request.replica_updates:
            action = "Create" if "Create" in update else "Delete" if "Delete" in update else None
            if action is None:
                return validation_error("ReplicaUpdates supports Create and Delete here")
            target = update[action].get("RegionName", "")
            if target == membership.region:
                return validation_error(LOCAL_REGION)
            if action == "Delete" and target not in membership.replicas:
                return validation_error(f"Cannot delete replica {target} of table {name}: no such replica")
        error = mrsc.change_error(request, membership)
        if error is not None:
            return validation_error(error)
        unreplicated = [t for t in request.replicas("Delete") if self.sandbox.strict and self._unreplicated(name, t)]
        return last_replica_error(name, unreplicated[0]) if unreplicated else None

    def _create_strong(self, name: str, source: DynamoTable, region: str, request: mrsc.Request) -> None:
        ready_at = self.sandbox.now() + self.sandbox.duration("replica_active")
        for target in request.replicas("Create"):
            self._create_replica(name, source, region, target, ready_at)
        group = self.groups[name]
        group.consistency = mrsc.STRONG
        for witness in request.witnesses("Create"):
            group.witnesses[witness] = Replica(CREATING, ready_at)

    def _dissolve(self, name: str, request: mrsc.Request) -> None:
        """Every other replica and the witness go together; the table stays, a single-region table again."""
        for target in request.replicas("Delete"):
            self._delete_replica(name, target)
        group = self.groups.get(name)  # gone already once its last other replica was removed
        if group is None:
            return
        gone_at = self.sandbox.now() + self.sandbox.duration("replica_deleted")
        for witness in request.witnesses("Delete"):
            if self.sandbox.strict:
                group.witnesses[witness] = Replica(DELETING, gone_at)
            else:
                group.witnesses.pop(witness, None)

    # ------------------------------------------------------------------ strong global tables: data plane

    def _strong_group(self, name: str, region: str) -> ReplicaGroup | None:
        group = self.groups.get(name)
        return group if group is not None and group.strong and region in group.replicas else None

    def _data_plane(self, req: SandboxRequest, op: str) -> Response | None:
        """Writes and strongly consistent reads of strong tables; everything else goes to moto untouched."""
        body, region = req.json(), req.region or ""
        if not self.groups or not isinstance(body, dict):
            return None
        names = mrsc.tables_of(op, body) if op in mrsc.WRITES else mrsc.strongly_read(op, body)
        if not any(self._strong_group(n, region) for n in names):
            return None
        with self.sandbox.lock:
            groups = [g for n in dict.fromkeys(names) if (g := self._strong_group(n, region)) is not None]
            if not groups:
                return None
            paused = self._cut_off(groups)
            if not all(self._reachable(g, region, paused) for g in groups):
                if any(denies_replication(region, g.name, datetime.now(timezone.utc)) for g in groups):
                    # DynamoDB developer guide, global tables security: for an MRSC table, denying the
                    # replication role's permissions "will result in an AccessDeniedException for write and
                    # strongly consistent read operations" (the message is the sandbox's own).
                    return aws_json_error(ACCESS_DENIED, mrsc.REPLICATION_DENIED)
                return aws_json_error(INTERNAL, mrsc.INTERNAL, 500)
            for group in groups:  # a region that was cut off catches up before it answers
                self._replicate_group(group, paused)
            if op in mrsc.READS:
                return self.forward(req).response()
            return self._strong_write(req, op, body, groups, paused)

    def _reachable(self, group: ReplicaGroup, region: str, paused: set[str]) -> bool:
        """A strong request needs its own region and a second member (replica or witness) it can reach."""
        return region not in paused and any(m not in paused for m in group.members() if m != region)

    def _strong_write(self, req: SandboxRequest, op: str, body: dict[str, Any], groups: list[ReplicaGroup],
                      paused: set[str]) -> Response:
        """Holds sandbox.lock. Refused while another region's write to one of its items is in flight; else made
        here and in every reachable replica before it is acknowledged."""
        region, now = req.region or "", self.sandbox.now()
        slots = [(g.name, _key_of(k)) for g in groups
                 for k in mrsc.written_keys(op, body, g.name, _key_names(region, g.name))]
        if self.in_flight.conflicts(slots, region, now):
            return aws_json_error(CONFLICT, mrsc.CONFLICT)
        resp = self.forward(req)
        if resp.status == 200:
            others = {m for g in groups for m in g.members() if m != region and m not in paused}
            self.in_flight.hold(slots, region, now + self.sandbox.scaled(mrsc.write_window(region, others)))
            for group in groups:
                self._replicate_group(group, paused)
        return resp.response()

    # ------------------------------------------------------------------ replication

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def reset(self) -> None:
        self.groups.clear()
        self.offsets.clear()
        self.last_write.clear()
        self.backlog.clear()
        self.creating.clear()
        self.stats.clear()
        self.in_flight.clear()

    def replicate_once(self) -> int:
        """One pass over every replica's new stream records. Returns the number of writes applied."""
        applied = 0
        with self.sandbox.lock:
            self._settle()
            for group in list(self.groups.values()):
                applied += self._replicate_group(group, self._cut_off([group]))
        return applied

    def _cut_off(self, groups: list[ReplicaGroup]) -> set[str]:
        """Regions the fault `replication_paused` names, and replicas whose resource policy denies the
        replication service (a drill's isolation)."""
        cut = set(self.sandbox.fault("replication_paused"))
        now = datetime.now(timezone.utc)
        for group in groups:
            cut |= {r for r in group.replicas if r not in cut and denies_replication(r, group.name, now)}
        return cut

    def _replicate_group(self, group: ReplicaGroup, paused: set[str]) -> int:
        records: list[tuple[str, StreamRecord]] = []
        for region in list(group.replicas):
            table = moto_compat.dynamodb_table(region, group.name)
            shard = None if table is None else moto_compat.stream_shard(table)
            if shard is None:
                continue
            records += [(region, rec) for rec in self._new_records(group.name, region, shard)]
        # First learn every region's own writes, then apply in time order, so last writer wins.
        outgoing = [(r, rec) for r, rec in records if moto_compat.replicated_from(rec) is None]
        self.stats["read"] += len(outgoing)
        for region, rec in outgoing:
            slot = (group.name, region, _key(rec))
            self.last_write[slot] = max(self.last_write.get(slot, _NEVER), _version(rec, region))
        for target in group.replicas:
            held = self.backlog.setdefault((group.name, target), [])
            held += [(r, rec) for r, rec in outgoing if r != target]
        applied = 0
        # An isolated replica (its policy denies replication) neither receives nor sends; a paused one only
        # receives nothing (its own writes still go out).
        isolated = {r for r in group.replicas if denies_replication(r, group.name, datetime.now(timezone.utc))}
        for target, replica in list(group.replicas.items()):
            if target in paused or replica.status == DELETING:
                continue  # held, as AWS holds writes for a replica it cannot reach (or is removing)
            applied += self._deliver(group.name, target, serialized=group.strong, held_sources=isolated)
        return applied

    def _deliver(self, name: str, target: str, serialized: bool = False, held_sources: Collection[str] = ()) -> int:
        """Apply the target's backlog in time order; a write leaves the backlog only once applied.

        A strong group's writes are `serialized`: each was replicated before the next was accepted, so the
        backlog is already in the order they were acknowledged, which is the order to keep (timestamps can tie)."""
        held = self.backlog.get((name, target), [])
        if not serialized:
            held.sort(key=lambda item: _version(item[1], item[0]))
        applied = 0
        kept: list[tuple[str, StreamRecord]] = []
        done = 0
        try:
            for region, rec in held:
                if region in held_sources:
                    kept.append((region, rec))  # from an isolated replica: it goes out once the isolation ends
                else:
                    applied += self._apply(name, region, target, rec, serialized)
                done += 1
        finally:
            held[:done] = kept
        return applied

    def _new_records(self, name: str, region: str, shard: StreamShard) -> list[StreamRecord]:
        items = moto_compat.shard_records(shard)
        known, start = self.offsets.get((name, region), (None, 0))
        if known is not shard or start > len(items):
            start = 0  # a new stream (the table was recreated): read it from its beginning
        self.offsets[(name, region)] = (shard, len(items))
        return items[start:]

    def _apply(self, name: str, source: str, target: str, rec: StreamRecord, serialized: bool = False) -> int:
        slot, version = (name, target, _key(rec)), _version(rec, source)
        table = moto_compat.dynamodb_table(target, name)
        if table is None or (not serialized and self.last_write.get(slot, _NEVER) > version):
            self.stats["superseded"] += 1
            return 0  # the target holds a newer write; it replicates the other way
        body = moto_compat.record_body(rec)
        data = body["dynamodb"]
        if body["eventName"] == "REMOVE":
            _write_replicated(table, source, lambda: moto_compat.delete_item(target, name, data["Keys"]))
        else:
            _write_replicated(table, source, lambda: moto_compat.put_item(target, name, data["NewImage"]))
        self.last_write[slot] = version
        self.stats["applied"] += 1
        return 1


def wire_response(data: Any) -> Response:
    """A DynamoDB answer as its JSON protocol writes it. moto's models hold datetimes, and DynamoDB sends
    timestamps as epoch seconds (a number); strict clients (the Go SDK) refuse any other form."""
    return Response(json.dumps(data, default=_epoch_seconds), content_type="application/x-amz-json-1.0")


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, datetime):
        # moto's datetimes are naive UTC; timestamp() would read a naive one as local time.
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    raise TypeError(f"{type(value).__name__} has no DynamoDB wire form")


def _stream_end(table: DynamoTable) -> tuple[StreamShard | None, int]:
    """The table's stream and the position after its last record: where reading it goes on."""
    shard = moto_compat.stream_shard(table)
    return shard, 0 if shard is None else len(moto_compat.shard_records(shard))


def _write_replicated(table: DynamoTable, origin: str, write: Callable[[], Any]) -> None:
    """Make a write that came from `origin`, and mark the stream record it added, so it is never sent back.
    A write that changed nothing (a delete of an item that was not there) adds no record: nothing is marked."""
    _, before = _stream_end(table)
    write()
    shard, after = _stream_end(table)
    if shard is not None and after > before:
        moto_compat.mark_replicated(moto_compat.shard_records(shard)[-1], origin)


_NEVER = (0.0, "")


def _version(rec: StreamRecord, region: str) -> tuple[float, str]:
    """Last writer wins per item: by write time, ties broken by region so every replica agrees."""
    return _timestamp(rec), region


def _key(rec: StreamRecord) -> str:
    return _key_of(moto_compat.record_body(rec)["dynamodb"]["Keys"])


def _item_key(table: DynamoTable, item: DynamoItem) -> str:
    """The key of one of moto's items, as `_key` gives it for a stream record of that item."""
    return _key_of(moto_compat.item_key(table, item))


def _key_names(region: str, name: str) -> tuple[str, ...]:
    table = moto_compat.dynamodb_table(region, name)
    return moto_compat.key_names(table) if table is not None else ()


def _key_of(keys: dict[str, Any]) -> str:
    return repr(sorted((k, sorted(v.items())) for k, v in keys.items()))


def _timestamp(rec: StreamRecord) -> float:
    value = moto_compat.record_body(rec)["dynamodb"]["ApproximateCreationDateTime"]
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
