"""GET /health: answers with the status code in the `STATUS` environment variable (default 200).

This is the switch a failover rehearsal flips: `STATUS=404` makes Route 53's health check on this region
fail while the rest of the API keeps working.
"""

from __future__ import annotations

import os
from typing import Any

if __package__:
    from . import common
else:  # at the root of the deployed zip
    import common  # type: ignore[no-redef]

RESOURCE, METHOD = "/health", "GET"


def handler(event: common.Event, context: Any = None) -> common.Response:
    return common.serve(event, RESOURCE, METHOD, health)


def health(event: common.Event) -> common.Response:
    raw = os.environ.get("STATUS", "200").strip() or "200"
    if not raw.isdigit() or not 100 <= int(raw) <= 599:
        return common.error(500, "InvalidConfiguration", f"STATUS={raw!r} is not an HTTP status code")
    status = int(raw)
    # Health answers must never be cached: a cached 200 would hide the failure being rehearsed.
    return common.respond(status, {"region": common.region(), "status": status, "healthy": status < 400},
                          {"Cache-Control": "no-store"})
