"""A bounded soak of the global table: writers in three regions on the same ids, through boto3's PutItem.

It checks what replication must never do under load: lose or repeat a stream record (every write is read
once and delivered once to each other replica, applied or superseded by a newer write), leave a request
hanging (every call answers within its timeout), or end with replicas that differ (same items, same
versions everywhere). Meanwhile replication into one region is paused and resumed over and over (writes are
held, then delivered late) and DescribeTable is called in every region. It runs for about WRITE_SECONDS plus
the time replication needs to settle.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

from multiregion.sandbox.dynamodb import GlobalTables
from multiregion.sandbox.server import Sandbox
from tests.conftest import wait_for
from tests.test_sandbox_dynamodb import KEY

REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-1")
WRITERS_PER_REGION = 3
IDS = [f"item-{i}" for i in range(25)]
WRITE_SECONDS = 10.0
CALL_TIMEOUT = 10.0  # seconds a single PutItem may take before it counts as stuck


def client(sandbox: Sandbox, region: str) -> Any:
    return boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(connect_timeout=CALL_TIMEOUT, read_timeout=CALL_TIMEOUT,
                                      retries={"total_max_attempts": 1}, max_pool_connections=WRITERS_PER_REGION))


def global_table(sandbox: Sandbox) -> None:
    primary = client(sandbox, REGIONS[0])
    primary.create_table(TableName="t", **KEY)
    wait_for(lambda: primary.describe_table(TableName="t")["Table"]["TableStatus"] == "ACTIVE")
    for region in REGIONS[1:]:  # one replica per UpdateTable, as AWS takes them
        primary.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": region}}])
        wait_for(lambda: primary.describe_table(TableName="t")["Table"]["TableStatus"] == "ACTIVE")


class Writers:
    """Threads writing `v` = "<writer>:<n>" to random ids until the deadline; they count what happened."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.counts: Counter[str] = Counter()
        self.slowest = 0.0
        self._lock = threading.Lock()

    def run(self) -> None:
        deadline = time.monotonic() + WRITE_SECONDS
        threads = [threading.Thread(target=self._write, args=(region, f"{region}/{n}", deadline), daemon=True)
                   for region in REGIONS for n in range(WRITERS_PER_REGION)]
        threads += [threading.Thread(target=self._pause_and_resume, args=(REGIONS[1], deadline), daemon=True),
                    threading.Thread(target=self._describe, args=(deadline,), daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WRITE_SECONDS + 2 * CALL_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a writer is stuck"

    def _write(self, region: str, writer: str, deadline: float) -> None:
        ddb, rng, n = client(self.sandbox, region), random.Random(writer), 0
        while time.monotonic() < deadline:
            n += 1
            item = {"id": {"S": rng.choice(IDS)}, "v": {"S": f"{writer}:{n}"}}
            started = time.monotonic()
            try:
                ddb.put_item(TableName="t", Item=item)
                outcome = "writes"
            except Exception as exc:  # counted and reported: a timeout or an error is a finding
                outcome = f"error {type(exc).__name__}"
            took = time.monotonic() - started
            with self._lock:
                self.counts["requests"] += 1
                self.counts[outcome] += 1
                self.slowest = max(self.slowest, took)


    def _pause_and_resume(self, region: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            with self.sandbox.faults_lock:
                paused = self.sandbox.faults["replication_paused"]
                self.sandbox.faults["replication_paused"] = [] if paused else [region]
            with self._lock:
                self.counts["pauses"] += not paused
            time.sleep(0.4)  # the rhythm of the fault, not a wait for a condition
        with self.sandbox.faults_lock:
            self.sandbox.faults["replication_paused"] = []

    def _describe(self, deadline: float) -> None:
        clients = [client(self.sandbox, region) for region in REGIONS]
        while time.monotonic() < deadline:
            for ddb in clients:
                assert ddb.describe_table(TableName="t")["Table"]["GlobalTableVersion"] == "2019.11.21"
                with self._lock:
                    self.counts["describes"] += 1


def table_items(sandbox: Sandbox, region: str) -> dict[str, str]:
    ddb = client(sandbox, region)
    items: dict[str, str] = {}
    for page in ddb.get_paginator("scan").paginate(TableName="t", ConsistentRead=True):
        items.update({i["id"]["S"]: i["v"]["S"] for i in page["Items"]})
    return items


def test_replication_under_concurrent_writes_to_the_same_ids(sandbox: Sandbox, strict: Sandbox) -> None:
    global_table(sandbox)
    replicator = sandbox.extension(GlobalTables)
    replicator.stats.clear()
    writers = Writers(sandbox)
    started = time.monotonic()
    writers.run()
    writes = writers.counts["writes"]
    rate = writes / (time.monotonic() - started)

    def settled() -> bool:
        with sandbox.lock:
            return replicator.stats["read"] >= writes and not any(replicator.backlog.values())

    wait_for(settled, timeout=20.0)
    final = {region: table_items(sandbox, region) for region in REGIONS}
    stats = dict(replicator.stats)
    print(f"\nsoak: {writers.counts['requests']} requests, {writes} writes ({rate:.0f}/s) from "
          f"{len(REGIONS) * WRITERS_PER_REGION} writers on {len(IDS)} ids, slowest call {writers.slowest:.3f}s, "
          f"{writers.counts['describes']} DescribeTable, replication into {REGIONS[1]} paused "
          f"{writers.counts['pauses']} times; replicator {stats}; regions identical: "
          f"{len({tuple(sorted(f.items())) for f in final.values()}) == 1}")

    assert writers.counts["requests"] == writes, dict(writers.counts)  # no error, no timeout
    assert writers.counts["describes"] > 0 and writers.counts["pauses"] > 5
    assert writers.slowest < CALL_TIMEOUT
    assert rate >= 100  # a few hundred writes per second was the point; fewer would not be a soak
    # Every local write read exactly once, and delivered exactly once to each of the other replicas.
    assert stats["read"] == writes
    assert stats["applied"] + stats["superseded"] == writes * (len(REGIONS) - 1)
    # Every region ends with the same items and the same versions, each one a value a writer wrote.
    assert final[REGIONS[0]] == final[REGIONS[1]] == final[REGIONS[2]]
    assert set(final[REGIONS[0]]) == set(IDS)
    assert all(value.split("/")[0] in REGIONS for value in final[REGIONS[0]].values())
