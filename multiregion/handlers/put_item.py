"""POST /item: store the item with the region that wrote it and when; answer 201 with what was stored.

Global tables 2019.11.21 keep no `aws:rep:*` attributes, so the item carries its writer in `region` and
its write time in `written_at`; a reader in another region sees where and when it was written. A client
that sends those fields itself is refused (400 ReservedField), so what is stored never looks forged.
"""

from __future__ import annotations

from typing import Any

if __package__:
    from . import common
else:  # at the root of the deployed zip
    import common  # type: ignore[import-not-found,no-redef]

RESOURCE, METHOD = "/item", "POST"


@common.api_handler
def handler(event: common.Event, context: Any = None) -> common.Response:
    return common.serve(event, RESOURCE, METHOD, put)


def put(event: common.Event) -> common.Response:
    common.check_json_content_type(event)
    item = common.parse_object(common.body_bytes(event))
    item_id = common.check_writable_id(item.get("id"))
    common.check_client_fields(item)
    item[common.REGION_FIELD] = common.region()
    item[common.WRITTEN_AT_FIELD] = common.now_iso()
    item = common.storable(item)
    stored = dict(item)
    key = common.hash_key()
    if key != "id":
        stored[key] = stored.pop("id")
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    common.dynamodb().put_item(TableName=common.table_name(),
                               Item={k: serializer.serialize(v) for k, v in stored.items()})
    return common.respond(201, item, {"Location": f"/item/{item_id}"})
