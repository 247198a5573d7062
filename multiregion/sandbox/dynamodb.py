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
  second `ReplicaUpdates` then is refused with ResourceInUseException. One UpdateTable may carry several
  Create actions: the reference puts no limit on ReplicaUpdates (unlike GlobalSecondaryIndexUpdates and
  GlobalTableWitnessUpdates, "only one ... per UpdateTable operation"), and MultiRegionConsistency is
  "only valid when you create a global table by specifying one or more Create actions in the
  ReplicaUpdates action list". They are all checked before any is made, and are created in parallel.
* under `SandboxOptions.strict`: a new table is CREATING for `duration("table_active")`; any UpdateTable
  and DeleteTable are refused while the table is CREATING or UPDATING; a deleted replica is DELETING for
  `duration("replica_deleted")`; and a replica (or its table) cannot be deleted while writes made there
  have not reached every other replica: AWS's ValidationException "The last active replica of table: ...
  cannot be deleted until all writes are replicated." (text as AWS returned it to the Terraform AWS
  provider's acceptance tests, hashicorp/terraform-provider-aws#30599; the two spaces are AWS's).

The replicator keeps what it has read but not yet applied in a per-target backlog and removes a write from
it only once applied, so a failing pass (or a paused target) loses nothing; `stats` counts what it did.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import BackgroundLoop, Extension, SandboxRequest, aws_json_error
from multiregion.sandbox.moto_compat import DynamoItem, DynamoTable, StreamRecord, StreamShard

VERSION = "2019.11.21"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
_ERR = "com.amazonaws.dynamodb.v20120810#"
VALIDATION, IN_USE, NOT_FOUND = _ERR + "ValidationException", _ERR + "ResourceInUseException", \
    _ERR + "ResourceNotFoundException"
CREATING, ACTIVE, DELETING, UPDATING = "CREATING", "ACTIVE", "DELETING", "UPDATING"
# AWS's answer to ReplicaUpdates naming the region the request is sent to (as AWS returned it, e.g.
# aws/aws-cli#4906 and aws/aws-cdk#6287).
LOCAL_REGION = ("Cannot add, delete, or update the local region through ReplicaUpdates. Use CreateTable, "
                "DeleteTable, or UpdateTable as required.")


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

    def status(self, region: str) -> str:
        return self.replicas[region].status

    def busy(self) -> bool:
        return any(r.status != ACTIVE for r in self.replicas.values())


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
        self._loop = BackgroundLoop("sandbox-replicator", self.replicate_once,
                                    lambda: self.sandbox.options.replication_interval)

    # ------------------------------------------------------------------ requests

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service != "dynamodb" or not req.target or req.target.startswith("DynamoDBStreams"):
            return None
        op = req.operation
        if op == "UpdateTable":
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
        table["GlobalTableVersion"] = VERSION
        # As on AWS, a region's description lists the other replicas.
        table["Replicas"] = [{"RegionName": r, "ReplicaStatus": s} for r, s in sorted(statuses.items())
                             if r != region]
        own = statuses[region]
        if own != ACTIVE:
            table["TableStatus"] = own  # the replica being made or removed here
        elif any(s != ACTIVE for s in statuses.values()):
            table["TableStatus"] = UPDATING

    def _delete_table(self, req: SandboxRequest) -> Response:
        name, region = req.json().get("TableName", ""), req.region or ""
        with self.sandbox.lock:
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
            for update in updates:
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
        seen: set[str] = set()
        for update in updates:
            action = "Create" if "Create" in update else "Delete" if "Delete" in update else None
            if action is None:
                return aws_json_error(VALIDATION, "ReplicaUpdates supports Create and Delete here")
            target = update[action].get("RegionName", "")
            if target == region:
                return aws_json_error(VALIDATION, LOCAL_REGION)
            if target in seen:
                # AWS's wording for a region named twice could not be checked; the refusal itself is certain.
                return aws_json_error(VALIDATION, f"ReplicaUpdates names region {target} more than once")
            seen.add(target)
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

    def replicate_once(self) -> int:
        """One pass over every replica's new stream records. Returns the number of writes applied."""
        applied = 0
        with self.sandbox.lock:
            self._settle()
            paused = set(self.sandbox.fault("replication_paused"))
            for group in list(self.groups.values()):
                applied += self._replicate_group(group, paused)
        return applied

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
        for target, replica in list(group.replicas.items()):
            if target in paused or replica.status == DELETING:
                continue  # held, as AWS holds writes for a replica it cannot reach (or is removing)
            applied += self._deliver(group.name, target)
        return applied

    def _deliver(self, name: str, target: str) -> int:
        """Apply the target's backlog in time order; a write leaves the backlog only once applied."""
        held = self.backlog.get((name, target), [])
        held.sort(key=lambda item: _version(item[1], item[0]))
        applied = done = 0
        try:
            for region, rec in held:
                applied += self._apply(name, region, target, rec)
                done += 1
        finally:
            del held[:done]
        return applied

    def _new_records(self, name: str, region: str, shard: StreamShard) -> list[StreamRecord]:
        items = moto_compat.shard_records(shard)
        known, start = self.offsets.get((name, region), (None, 0))
        if known is not shard or start > len(items):
            start = 0  # a new stream (the table was recreated): read it from its beginning
        self.offsets[(name, region)] = (shard, len(items))
        return items[start:]

    def _apply(self, name: str, source: str, target: str, rec: StreamRecord) -> int:
        slot, version = (name, target, _key(rec)), _version(rec, source)
        table = moto_compat.dynamodb_table(target, name)
        if table is None or self.last_write.get(slot, _NEVER) > version:
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


def _key_of(keys: dict[str, Any]) -> str:
    return repr(sorted((k, sorted(v.items())) for k, v in keys.items()))


def _timestamp(rec: StreamRecord) -> float:
    value = moto_compat.record_body(rec)["dynamodb"]["ApproximateCreationDateTime"]
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
