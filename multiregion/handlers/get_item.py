"""GET /item/{id}: the item and the region that served the read (`served_by`); 404 when absent."""

from __future__ import annotations

from typing import Any

if __package__:
    from . import common
else:  # at the root of the deployed zip
    import common  # type: ignore[import-not-found,no-redef]

RESOURCE, METHOD = "/item/{id}", "GET"


@common.api_handler
def handler(event: common.Event, context: Any = None) -> common.Response:
    return common.serve(event, RESOURCE, METHOD, get)


def get(event: common.Event) -> common.Response:
    item_id = common.check_id((event.get("pathParameters") or {}).get("id") or _id_from_path(event))
    key = common.hash_key()
    # Strongly consistent within the region: a client that just wrote here reads its own write.
    found = common.dynamodb().get_item(TableName=common.table_name(), Key={key: {"S": item_id}},
                                       ConsistentRead=True).get("Item")
    if found is None:
        return common.error(404, "NotFound", f"no item with id {item_id!r}")
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    item = {k: deserializer.deserialize(v) for k, v in found.items()}
    if key != "id":
        item["id"] = item.pop(key)
    item[common.SERVED_BY_FIELD] = common.region()
    return common.respond(200, item)


def _id_from_path(event: common.Event) -> str | None:
    from urllib.parse import unquote

    path = str(event.get("path") or "").rstrip("/")
    prefix = "/item/"
    return unquote(path[len(prefix):]) if path.startswith(prefix) else None
