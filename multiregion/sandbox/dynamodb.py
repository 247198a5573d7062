"""DynamoDB global tables (version 2019.11.21) on top of moto's single-region tables.

moto accepts `UpdateTable(ReplicaUpdates=...)` and ignores it. Here a replica group is kept per table
name: `Create` makes the replica table in the target region with the source's schema and copies the
existing items (AWS backfills too), `Delete` removes it, `DescribeTable` reports `GlobalTableVersion` and
the other regions' `Replicas`, and a replicator thread reads every replica's stream and applies each write
to the other replicas: asynchronously, last writer wins per item, deletes included. Writes applied by the
replicator are marked so they are never sent back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox.app import ACCOUNT_ID, BackgroundLoop, Extension, SandboxRequest, aws_json_error

VERSION = "2019.11.21"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
_ORIGIN = "_multiregion_origin"  # attribute set on stream records the replicator wrote


def backend(region: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT_ID][region]


@dataclass
class ReplicaGroup:
    name: str
    # region -> (status, monotonic time at which a CREATING replica becomes ACTIVE)
    replicas: dict[str, tuple[str, float]] = field(default_factory=dict)

    def status(self, region: str) -> str:
        status, ready_at = self.replicas[region]
        if status == "CREATING" and time.monotonic() >= ready_at:
            self.replicas[region] = ("ACTIVE", 0.0)
            return "ACTIVE"
        return status


class GlobalTables(Extension):
    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.groups: dict[str, ReplicaGroup] = {}
        # (table, region) -> the stream shard being read, and the index of its next record
        self.offsets: dict[tuple[str, str], tuple[Any, int]] = {}
        # (table, region, key) -> (time, writing region) of the newest write applied to that item there
        self.last_write: dict[tuple[str, str, str], tuple[float, str]] = {}
        # (table, target region) -> writes not yet applied there (the target's replication is paused)
        self.backlog: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        self._loop = BackgroundLoop("sandbox-replicator", self.replicate_once,
                                    lambda: self.sandbox.options.replication_interval)

    # ------------------------------------------------------------------ requests

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service != "dynamodb" or not req.target or req.target.startswith("DynamoDBStreams"):
            return None
        op = req.operation
        if op == "UpdateTable" and "ReplicaUpdates" in req.json():
            return self._update_replicas(req)
        if op == "DescribeTable":
            return self._describe(req)
        if op == "DeleteTable":
            resp = self.forward(req)
            if resp.status == 200:
                self._left_group(req.json().get("TableName", ""), req.region or "")
            return resp.response()
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
        with self.sandbox.lock:
            group = self.groups.get(table.get("TableName", ""))
            if group is None or region not in group.replicas:
                return
            statuses = {r: group.status(r) for r in group.replicas}
        table["GlobalTableVersion"] = VERSION
        # As on AWS, a region's description lists the other replicas.
        table["Replicas"] = [{"RegionName": r, "ReplicaStatus": s} for r, s in sorted(statuses.items())
                             if r != region]
        if any(s != "ACTIVE" for s in statuses.values()):
            table["TableStatus"] = "UPDATING"

    def _update_replicas(self, req: SandboxRequest) -> Response:
        body = dict(req.json())
        name, region = body.get("TableName", ""), req.region or ""
        updates = body.pop("ReplicaUpdates") or []
        with self.sandbox.lock:
            source = backend(region).tables.get(name)
            if source is None:
                return aws_json_error("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                                      f"Requested resource not found: Table: {name} not found")
            group = self.groups.get(name)
            if group is not None and any(group.status(r) != "ACTIVE" for r in group.replicas):
                return aws_json_error("com.amazonaws.dynamodb.v20120810#ResourceInUseException",
                                      f"Attempt to change a resource which is still in use: Table is being "
                                      f"updated: {name}")
            for update in updates:
                error = self._apply_update(name, region, source, update)
                if error is not None:
                    return error
            data = backend(region).describe_table(name)
        self._decorate(data["Table"], region)
        return wire_response({"TableDescription": data["Table"]})

    def _apply_update(self, name: str, region: str, source: Any, update: dict[str, Any]) -> Response | None:
        validation = "com.amazonaws.dynamodb.v20120810#ValidationException"
        if "Create" in update:
            target = update["Create"].get("RegionName", "")
            if target == region:
                return aws_json_error(validation, f"Cannot add replica in the source region {region}")
            group = self.groups.setdefault(name, ReplicaGroup(name, {region: ("ACTIVE", 0.0)}))
            if target in group.replicas:
                return aws_json_error(validation, f"Failed to create a replica of table {name} in region "
                                                  f"{target}: replica already exists")
            stream = source.stream_specification or {}
            if stream.get("StreamEnabled") and stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
                return aws_json_error(validation, "Table must have DynamoDB Streams enabled with "
                                                  "StreamViewType set to NEW_AND_OLD_IMAGES to add replicas")
            if name in backend(target).tables:
                return aws_json_error(validation, f"Failed to create a the new replica of table with name: "
                                                  f"'{name}' because one or more replicas already existed "
                                                  "as tables.")
            self._create_replica(name, source, region, target)
            group.replicas[target] = ("CREATING", time.monotonic() + self.sandbox.duration("replica_active"))
            return None
        if "Delete" in update:
            target = update["Delete"].get("RegionName", "")
            group = self.groups.get(name)
            if group is None or target not in group.replicas or target == region:
                return aws_json_error(validation, f"Cannot delete replica {target} of table {name}: "
                                                  "no such replica")
            backend(target).delete_table(name)
            self._left_group(name, target)
            return None
        return aws_json_error(validation, "ReplicaUpdates supports Create and Delete here")

    def _create_replica(self, name: str, source: Any, source_region: str, target: str) -> None:
        if not source.stream_specification or not source.stream_specification.get("StreamEnabled"):
            source.set_stream_specification(STREAM)  # AWS turns the stream on when a replica is added
        desc = backend(source_region).describe_table(name)["Table"]
        gsis = [{k: v for k, v in g.items() if k in ("IndexName", "KeySchema", "Projection")}
                for g in desc.get("GlobalSecondaryIndexes", [])]
        replica = backend(target).create_table(
            name, schema=desc["KeySchema"], throughput=None, attr=desc["AttributeDefinitions"],
            global_indexes=gsis or None, indexes=None, streams=STREAM, billing_mode="PAY_PER_REQUEST",
            sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None)
        for item in list(source.all_items()):
            attrs = item.to_json()["Attributes"]
            _write_replicated(replica, source_region, lambda a=attrs: backend(target).put_item(name, a))
        # The backfill carried everything written so far: replication starts from here on both sides.
        self.offsets.setdefault((name, source_region), (source.stream_shard, len(source.stream_shard.items)))
        self.offsets[(name, target)] = (replica.stream_shard, len(replica.stream_shard.items))

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

    def replicate_once(self) -> int:
        """One pass over every replica's new stream records. Returns the number of writes applied."""
        applied = 0
        with self.sandbox.lock:
            paused = set(self.sandbox.fault("replication_paused"))
            for group in list(self.groups.values()):
                records = []
                for region in list(group.replicas):
                    table = backend(region).tables.get(group.name)
                    if table is None or table.stream_shard is None:
                        continue
                    records += [(region, rec) for rec in self._new_records(group.name, region, table)]
                # First learn every region's own writes, then apply in time order, so last writer wins.
                for region, rec in records:
                    if not getattr(rec, _ORIGIN, None):
                        slot = (group.name, region, _key(rec))
                        self.last_write[slot] = max(self.last_write.get(slot, _NEVER), _version(rec, region))
                outgoing = [(r, rec) for r, rec in records if not getattr(rec, _ORIGIN, None)]
                for target in group.replicas:
                    held = self.backlog.setdefault((group.name, target), [])
                    held += [(r, rec) for r, rec in outgoing if r != target]
                    if target in paused:
                        continue  # held, as AWS holds writes for a replica it cannot reach
                    for region, rec in sorted(held, key=lambda item: _version(item[1], item[0])):
                        applied += self._apply(group.name, region, target, rec)
                    held.clear()
        return applied

    def _new_records(self, name: str, region: str, table: Any) -> list[Any]:
        shard = table.stream_shard
        known, start = self.offsets.get((name, region), (None, 0))
        if known is not shard or start > len(shard.items):
            start = 0  # a new stream (the table was recreated): read it from its beginning
        self.offsets[(name, region)] = (shard, len(shard.items))
        return shard.items[start:]

    def _apply(self, name: str, source: str, target: str, rec: Any) -> int:
        slot, version = (name, target, _key(rec)), _version(rec, source)
        if self.last_write.get(slot, _NEVER) > version:
            return 0  # the target holds a newer write; it replicates the other way
        table = backend(target).tables.get(name)
        if table is None:
            return 0
        data = rec.record["dynamodb"]
        if rec.record["eventName"] == "REMOVE":
            _write_replicated(table, source, lambda: backend(target).delete_item(name, data["Keys"]))
        else:
            _write_replicated(table, source, lambda: backend(target).put_item(name, data["NewImage"]))
        self.last_write[slot] = version
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


def _write_replicated(table: Any, origin: str, write: Callable[[], Any]) -> None:
    """Make a write that came from `origin`, and mark the stream record it added, so it is never sent back.
    A write that changed nothing (a delete of an item that was not there) adds no record: nothing is marked."""
    before = len(table.stream_shard.items) if table.stream_shard is not None else 0
    write()
    if table.stream_shard is not None and len(table.stream_shard.items) > before:
        setattr(table.stream_shard.items[-1], _ORIGIN, origin)


_NEVER = (0.0, "")


def _version(rec: Any, region: str) -> tuple[float, str]:
    """Last writer wins per item: by write time, ties broken by region so every replica agrees."""
    return _timestamp(rec), region


def _key(rec: Any) -> str:
    keys = rec.record["dynamodb"]["Keys"]
    return repr(sorted((k, sorted(v.items())) for k, v in keys.items()))


def _timestamp(rec: Any) -> float:
    value = rec.record["dynamodb"]["ApproximateCreationDateTime"]
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
