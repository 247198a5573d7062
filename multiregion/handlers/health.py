"""GET /health: answers with the status code in the `STATUS` environment variable (default 200).

This is the switch a failover rehearsal flips: `STATUS=404` makes Route 53's health check on this region
fail while the rest of the API keeps working.

With `DEEP_CHECK=1` a healthy `STATUS` is also checked against the table: a `GetItem` of a key that need
not exist (finding nothing is a success) proves this region's table answers, and any refusal or timeout
answers 503 with the reason. An unhealthy `STATUS` keeps priority: the rehearsal's switch is obeyed
without touching the table. The check needs `dynamodb:GetItem` on the table for the health function.
"""

from __future__ import annotations

import os
from typing import Any

if __package__:
    from . import common
else:  # at the root of the deployed zip
    import common  # type: ignore[import-not-found,no-redef]

RESOURCE, METHOD = "/health", "GET"
DEEP_CHECK_ON, DEEP_CHECK_OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
# A key the item API never writes: its ids cannot contain '/'.
PROBE_KEY = "multiregion/health-check"
# Health answers must never be cached: a cached 200 would hide the failure being rehearsed.
NO_STORE = {"Cache-Control": "no-store"}


@common.api_handler
def handler(event: common.Event, context: Any = None) -> common.Response:
    return common.serve(event, RESOURCE, METHOD, health)


def health(event: common.Event) -> common.Response:
    raw = os.environ.get("STATUS", "200").strip() or "200"
    if not raw.isdigit() or not 100 <= int(raw) <= 599:
        return common.error(500, "InvalidConfiguration", f"STATUS={raw!r} is not an HTTP status code")
    deep = os.environ.get("DEEP_CHECK", "").strip().lower()
    if deep not in DEEP_CHECK_ON + DEEP_CHECK_OFF:
        return common.error(500, "InvalidConfiguration", f"DEEP_CHECK={deep!r}: 1 or 0 is expected")
    status = int(raw)
    if status < 400 and deep in DEEP_CHECK_ON:
        problem = table_problem()
        if problem is not None:
            return common.respond(503, {"region": common.region(), "status": 503, "healthy": False,
                                        "reason": problem}, NO_STORE)
    return common.respond(status, {"region": common.region(), "status": status, "healthy": status < 400},
                          NO_STORE)


def table_problem() -> str | None:
    """Why this region's table does not answer a read, or None when it does."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        table = common.table_name()
    except KeyError:
        return "TABLE_NAME is not set: there is no table to check"
    try:
        # Eventually consistent: half the read cost of a strong read, for a check that runs every few
        # seconds from every Route 53 checker; it still needs the regional table endpoint to answer. A
        # strongly consistent table reads strongly: a region cut off from the others refuses such reads (as
        # it refuses writes), so its check fails and Route 53 routes its clients to a region that can write.
        common.dynamodb("health").get_item(TableName=table, Key={common.hash_key(): {"S": PROBE_KEY}},
                                           ConsistentRead=common.strong_table())
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        return f"table {table} in {common.region()}: {error.get('Code')}: {error.get('Message')}"
    except BotoCoreError as exc:
        return f"table {table} in {common.region()}: {type(exc).__name__}: {exc}"
    return None
