"""One guard per stack: a lease held in AWS, so that two runs never change the same stack at once.

AWS is the state and there is no state file, so the guard lives in AWS too: an item in a small DynamoDB
table of the account (`multiregion-leases`, in the stack's primary region, created on first use), written
with a conditional PutItem that succeeds only when no unexpired lease exists. `up`, `down` and
`failover-test` take it before their first write and give it back when they end; a run that was killed
leaves a lease that expires (after `ttl`: ten minutes, or MULTIREGION_LEASE_SECONDS) or is removed with
`multiregion force-unlock LEASE_ID`, as Terraform's `force-unlock` does. While a run holds it, a
background thread renews it, so a long wait (a certificate, a replica) keeps it.

It protects the stack from concurrent writers among multiregion runs (two CI pipelines, two engineers,
`up` during a `failover-test`). It cannot stop someone changing the resources by hand or with another tool.
Expiry compares this machine's clock with the writer's: clocks more than minutes apart weaken it.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import ClientProvider, error_code

TABLE = "multiregion-leases"
DEFAULT_TTL = 600.0
# How long a lease lasts unless renewed, in seconds: how soon a killed run's lease expires by itself. A run
# renews its lease every third of it, so a short one costs a write every few seconds.
TTL_ENV = "MULTIREGION_LEASE_SECONDS"
MIN_TTL = 3.0
TABLE_TAGS = [{"Key": "multiregion:purpose", "Value": "leases of every multiregion stack in the account"}]


class LeaseHeld(Exception):
    """Another run holds the stack's lease."""

    def __init__(self, lease: Lease):
        self.lease = lease
        super().__init__(
            f"stack {lease.stack!r} is locked by {lease.owner} running `{lease.command}` since "
            f"{lease.started_text} (lease {lease.lease_id}, expires {lease.expires_text})")

    @property
    def hint(self) -> str:
        return ("wait for it to finish (or pass --lock-timeout SECONDS to wait here); if that run is dead, "
                f"`multiregion force-unlock {self.lease.lease_id}` removes its lease")


@dataclass(frozen=True)
class Lease:
    stack: str
    lease_id: str
    owner: str
    command: str
    started_at: float
    expires_at: float

    @property
    def started_text(self) -> str:
        return _iso(self.started_at)

    @property
    def expires_text(self) -> str:
        return _iso(self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        return {"lease_id": self.lease_id, "owner": self.owner, "command": self.command,
                "started_at": self.started_text, "expires_at": self.expires_text}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        return cls(item["stack"]["S"], item["lease_id"]["S"], item["owner"]["S"], item["command"]["S"],
                   float(item["started_at"]["N"]), float(item["expires_at"]["N"]))


def lease_ttl() -> float:
    """The lease duration: MULTIREGION_LEASE_SECONDS, else ten minutes."""
    text = os.environ.get(TTL_ENV, "").strip()
    if not text:
        return DEFAULT_TTL
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{TTL_ENV}={text!r} is not a number of seconds") from None
    if not seconds >= MIN_TTL:  # also refuses NaN
        raise ValueError(f"{TTL_ENV}={text!r}: a lease lasts at least {MIN_TTL:g} seconds")
    return seconds


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def owner_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


class Leases:
    """The stack's lease in AWS: take it, renew it, give it back, read it, or break it."""

    def __init__(self, clients: ClientProvider, region: str, stack: str, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.clients, self.region, self.stack = clients, region, stack
        self.clock, self.sleep = clock, sleep

    @property
    def ddb(self) -> Any:
        return self.clients("dynamodb", self.region)

    def current(self) -> Lease | None:
        """The stack's unexpired lease, if any (no table yet: none)."""
        try:
            item = self.ddb.get_item(TableName=TABLE, Key={"stack": {"S": self.stack}}, ConsistentRead=True)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        found = item.get("Item")
        if not found:
            return None
        lease = Lease.from_item(found)
        return lease if lease.expires_at > self.clock() else None

    def acquire(self, command: str, ttl: float = DEFAULT_TTL, wait: float = 0.0,
                on_wait: Callable[[Lease], None] = lambda lease: None) -> Lease:
        """Take the lease, waiting up to `wait` seconds for another run's to end; LeaseHeld otherwise."""
        self._ensure_table()
        deadline = self.clock() + wait
        lease = Lease(self.stack, uuid.uuid4().hex[:12], owner_name(), command, self.clock(), self.clock() + ttl)
        while True:
            now = self.clock()
            lease = Lease(self.stack, lease.lease_id, lease.owner, command, now, now + ttl)
            try:
                self.ddb.put_item(TableName=TABLE, Item=self._item(lease),
                                  ConditionExpression="attribute_not_exists(#s) OR expires_at < :now",
                                  ExpressionAttributeNames={"#s": "stack"},
                                  ExpressionAttributeValues={":now": {"N": repr(now)}})
                return lease
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            holder = self.current()
            if holder is None:
                continue  # it expired or was released in between: try again at once
            if self.clock() >= deadline:
                raise LeaseHeld(holder)
            on_wait(holder)
            self.sleep(min(2.0, max(0.05, deadline - self.clock())))

    def renew(self, lease: Lease, ttl: float = DEFAULT_TTL) -> bool:
        """Push the lease's expiry forward; False when it is no longer ours (broken by force-unlock)."""
        try:
            self.ddb.update_item(TableName=TABLE, Key={"stack": {"S": self.stack}},
                                 UpdateExpression="SET expires_at = :e",
                                 ConditionExpression="lease_id = :id",
                                 ExpressionAttributeValues={":e": {"N": repr(self.clock() + ttl)},
                                                            ":id": {"S": lease.lease_id}})
            return True
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def release(self, lease: Lease) -> None:
        self.force_unlock(lease.lease_id)

    def force_unlock(self, lease_id: str) -> bool:
        """Delete the lease if it is the one named; False when no such lease is held."""
        try:
            self.ddb.delete_item(TableName=TABLE, Key={"stack": {"S": self.stack}},
                                 ConditionExpression="lease_id = :id",
                                 ExpressionAttributeValues={":id": {"S": lease_id}})
            return True
        except ClientError as exc:
            if error_code(exc) in ("ConditionalCheckFailedException", "ResourceNotFoundException"):
                return False
            raise

    def _item(self, lease: Lease) -> dict[str, Any]:
        return {"stack": {"S": lease.stack}, "lease_id": {"S": lease.lease_id}, "owner": {"S": lease.owner},
                "command": {"S": lease.command}, "started_at": {"N": repr(lease.started_at)},
                "expires_at": {"N": repr(lease.expires_at)}}

    def _ensure_table(self) -> None:
        try:
            status = self.ddb.describe_table(TableName=TABLE)["Table"]["TableStatus"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            try:
                self.ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST", Tags=TABLE_TAGS,
                                      AttributeDefinitions=[{"AttributeName": "stack", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "stack", "KeyType": "HASH"}])
            except ClientError as create_exc:
                if error_code(create_exc) != "ResourceInUseException":  # another run created it a moment ago
                    raise
            status = "CREATING"
        deadline = self.clock() + 120
        while status != "ACTIVE":
            if self.clock() > deadline:
                raise TimeoutError(f"the lease table {TABLE} did not become ACTIVE")
            self.sleep(0.2)
            status = self.ddb.describe_table(TableName=TABLE)["Table"]["TableStatus"]


class Held:
    """A lease taken for the length of a `with` block, renewed in the background, always given back."""

    def __init__(self, leases: Leases, command: str, ttl: float = DEFAULT_TTL, wait: float = 0.0,
                 on_wait: Callable[[Lease], None] = lambda lease: None, on_lost: Callable[[], None] = lambda: None):
        self.leases, self.command, self.ttl, self.wait = leases, command, ttl, wait
        self.on_wait, self.on_lost = on_wait, on_lost
        self.lease: Lease | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.lease = self.leases.acquire(self.command, self.ttl, self.wait, self.on_wait)
        self._thread = threading.Thread(target=self._renew, name="lease-renewal", daemon=True)
        self._thread.start()
        return self.lease

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            if self.lease is not None and not self.leases.renew(self.lease, self.ttl):
                self.on_lost()
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease is not None:
            self.leases.release(self.lease)
