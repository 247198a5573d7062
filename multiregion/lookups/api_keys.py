"""The stack's API key and usage plan (api.auth: api-key), found by name and the stack's tag."""

from __future__ import annotations

from typing import Any

from multiregion.engine import TAG_STACK, Reader


def is_ours(service: str, item: dict[str, Any]) -> bool:
    return item.get("name") == service and (item.get("tags") or {}).get(TAG_STACK) == service


def stack_keys(aws: Reader, region: str) -> list[dict[str, Any]]:
    """The region's API keys the stack made, with their values."""
    client = aws.client("apigateway", region)
    service = aws.config.service
    return [k for page in client.get_paginator("get_api_keys").paginate(nameQuery=service, includeValues=True)
            for k in page.get("items", []) if is_ours(service, k)]


def stack_usage_plans(aws: Reader, region: str) -> list[dict[str, Any]]:
    client = aws.client("apigateway", region)
    return [p for page in client.get_paginator("get_usage_plans").paginate()
            for p in page.get("items", []) if is_ours(aws.config.service, p)]


def plan_key_ids(aws: Reader, region: str, plan_id: str) -> tuple[str, ...]:
    pages = aws.client("apigateway", region).get_paginator("get_usage_plan_keys").paginate(usagePlanId=plan_id)
    return tuple(k["id"] for page in pages for k in page.get("items", []))


def key_value(aws: Reader, region: str) -> str | None:
    """The value clients send as x-api-key (the same in every region), or None without a key."""
    values = [k["value"] for k in stack_keys(aws, region) if k.get("value")]
    return values[0] if values else None
