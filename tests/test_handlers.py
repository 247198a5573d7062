"""The item API's handlers, called in-process with proxy events (payload 1.0) against a table on the sandbox."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from multiregion.handlers import common, get_item, health, put_item
from multiregion.sandbox.server import Sandbox

REGION = "eu-west-1"
TABLE = "handler-items"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture
def table(sandbox: Sandbox, aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An empty table on the sandbox, and the environment Lambda would give the functions."""
    client = aws("dynamodb", REGION)
    client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.delenv("STATUS", raising=False)
    monkeypatch.delenv("HASH_KEY", raising=False)
    common.reset_client()
    yield client
    common.reset_client()


def event(method: str, path: str, body: Any = None, *, resource: str | None = None,
          path_parameters: dict[str, str] | None = None, base64_body: bool = False) -> dict[str, Any]:
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    if isinstance(body, bytes):
        body = body.decode()
    if base64_body and body is not None:
        body = base64.b64encode(body.encode()).decode()
    return {"httpMethod": method, "path": path, "resource": resource, "pathParameters": path_parameters,
            "queryStringParameters": None, "headers": {"Content-Type": "application/json"}, "body": body,
            "isBase64Encoded": base64_body, "requestContext": {"stage": "prod"}}


def post(body: Any, **kwargs: Any) -> dict[str, Any]:
    return put_item.handler(event("POST", "/item", body, resource="/item", **kwargs), None)


def get(item_id: str) -> dict[str, Any]:
    return get_item.handler(event("GET", f"/item/{item_id}", resource="/item/{id}",
                                  path_parameters={"id": item_id}), None)


def body(response: dict[str, Any]) -> Any:
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def items_in(table: Any) -> list[dict[str, Any]]:
    return table.scan(TableName=TABLE)["Items"]


# --------------------------------------------------------------------------------------------- happy path


def test_post_then_get_round_trips(table: Any) -> None:
    created = post({"id": "a-1", "name": "first", "price": 12.50, "count": 3, "tags": ["x", "y"],
                    "meta": {"ok": True, "none": None}})
    assert created["statusCode"] == 201
    stored = body(created)
    assert stored["id"] == "a-1" and stored["name"] == "first" and stored["region"] == REGION
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stored["written_at"])
    assert created["headers"]["Location"] == "/item/a-1"

    raw = table.get_item(TableName=TABLE, Key={"id": {"S": "a-1"}})["Item"]
    assert raw["region"] == {"S": REGION}
    assert raw["price"] == {"N": "12.5"} and raw["count"] == {"N": "3"}
    assert raw["meta"] == {"M": {"ok": {"BOOL": True}, "none": {"NULL": True}}}

    read = get("a-1")
    assert read["statusCode"] == 200
    item = body(read)
    assert item["served_by"] == REGION
    assert {k: v for k, v in item.items() if k != "served_by"} == stored


def test_large_precise_numbers_survive_the_round_trip(table: Any) -> None:
    digits = "1234567890123456789012345678.0123456789"  # 38 significant digits: beyond a float
    assert post(f'{{"id": "precise", "n": {digits}}}')["statusCode"] == 201
    assert json.loads(get("precise")["body"], parse_float=str)["n"] == digits


def test_trailing_zeros_beyond_38_digits_are_stored(table: Any) -> None:
    written_out = "1" + "0" * 38  # 39 digits, one significant: DynamoDB takes it, boto3 would round it
    assert post(f'{{"id": "zeros", "n": {written_out}}}')["statusCode"] == 201
    assert json.loads(get("zeros")["body"], parse_float=Decimal)["n"] == 10**38


def test_base64_bodies_are_decoded_first(table: Any) -> None:
    response = post({"id": "b64", "name": "encoded"}, base64_body=True)
    assert response["statusCode"] == 201, response
    assert body(get("b64"))["name"] == "encoded"


def test_server_fields_cannot_be_forged(table: Any) -> None:
    stored = body(post({"id": "forged", "region": "mars-1", "written_at": "never", "served_by": "x"}))
    assert stored["region"] == REGION and stored["written_at"] != "never" and "served_by" not in stored


def test_get_of_an_absent_item_is_404(table: Any) -> None:
    response = get("nobody")
    assert response["statusCode"] == 404
    assert body(response)["error"] == "NotFound"


def test_get_takes_the_id_from_the_path_when_no_path_parameters(table: Any) -> None:
    post({"id": "with space"})
    response = get_item.handler(event("GET", "/item/with%20space"), None)
    assert response["statusCode"] == 200 and body(response)["id"] == "with space"


def test_table_key_other_than_id(sandbox: Sandbox, aws: Any, table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws("dynamodb", REGION).create_table(
        TableName="keyed", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    monkeypatch.setenv("TABLE_NAME", "keyed")
    monkeypatch.setenv("HASH_KEY", "pk")
    assert post({"id": "k1", "v": 1})["statusCode"] == 201
    assert "pk" in aws("dynamodb", REGION).get_item(TableName="keyed", Key={"pk": {"S": "k1"}})["Item"]
    assert body(get("k1"))["id"] == "k1"


# ------------------------------------------------------------------------------------------- bad requests


BAD_POSTS = [
    ("not json", "{nope", 400, "InvalidJSON"),
    ("json array", [1, 2], 400, "InvalidItem"),
    ("json string", '"id"', 400, "InvalidItem"),
    ("json null", "null", 400, "InvalidItem"),
    ("empty body", "", 400, "InvalidBody"),
    ("missing id", {"name": "x"}, 400, "InvalidId"),
    ("empty id", {"id": ""}, 400, "InvalidId"),
    ("blank id", {"id": "   "}, 400, "InvalidId"),
    ("null id", {"id": None}, 400, "InvalidId"),
    ("numeric id", {"id": 42}, 400, "InvalidId"),
    ("object id", {"id": {"a": 1}}, 400, "InvalidId"),
    ("id too long", {"id": "x" * (common.MAX_ID_CHARS + 1)}, 400, "InvalidId"),
    ("NaN", '{"id": "n", "v": NaN}', 400, "InvalidJSON"),
    ("Infinity", '{"id": "n", "v": [Infinity]}', 400, "InvalidJSON"),
    ("-Infinity", '{"id": "n", "v": {"w": -Infinity}}', 400, "InvalidJSON"),
    ("too many digits", '{"id": "n", "v": 1.234567890123456789012345678901234567891}', 400, "InvalidItem"),
    ("too large a number", '{"id": "n", "v": 1e126}', 400, "InvalidItem"),
    ("too small a number", '{"id": "n", "v": 1e-131}', 400, "InvalidItem"),
    ("empty attribute name", {"id": "n", "m": {"": 1}}, 400, "InvalidItem"),
    ("too deep", '{"id": "n", "v": ' + "[" * 40 + "]" * 40 + "}", 400, "InvalidItem"),
    ("deeper than the parser", '{"id": "n", "v": ' + "[" * 20000 + "]" * 20000 + "}", 400, "InvalidItem"),
    ("over the size limit", {"id": "big", "blob": "x" * common.MAX_BODY_BYTES}, 413, "PayloadTooLarge"),
    ("not utf-8", None, 400, "InvalidJSON"),
]


@pytest.mark.parametrize(("case", "payload", "status", "code"), BAD_POSTS, ids=[c[0] for c in BAD_POSTS])
def test_bad_posts_are_refused_and_write_nothing(table: Any, case: str, payload: Any, status: int,
                                                 code: str) -> None:
    if case == "not utf-8":
        request = event("POST", "/item", resource="/item")
        request["body"], request["isBase64Encoded"] = base64.b64encode(b'{"id": "\xff"}').decode(), True
        response = put_item.handler(request, None)
    else:
        response = post(payload)
    assert response["statusCode"] == status, response
    error = body(response)
    assert error["error"] == code and error["message"]
    assert items_in(table) == []


def test_bad_base64_and_oversized_base64_are_refused(table: Any) -> None:
    request = event("POST", "/item", resource="/item")
    request["body"], request["isBase64Encoded"] = "%%%not base64%%%", True
    response = put_item.handler(request, None)
    assert response["statusCode"] == 400 and body(response)["error"] == "InvalidBody"
    big = json.dumps({"id": "big", "blob": "x" * common.MAX_BODY_BYTES})
    response = post(big, base64_body=True)
    assert response["statusCode"] == 413
    assert items_in(table) == []


def test_a_body_at_the_limit_is_accepted(table: Any) -> None:
    prefix = '{"id": "edge", "blob": "'
    payload = prefix + "x" * (common.MAX_BODY_BYTES - len(prefix) - 2) + '"}'
    assert len(payload.encode()) == common.MAX_BODY_BYTES
    assert post(payload)["statusCode"] == 201


def test_bad_get_ids(table: Any) -> None:
    for path_parameters in ({"id": " "}, {"id": "x" * (common.MAX_ID_CHARS + 1)}):
        response = get_item.handler(event("GET", "/item/x", resource="/item/{id}",
                                          path_parameters=path_parameters), None)
        assert response["statusCode"] == 400 and body(response)["error"] == "InvalidId"


@pytest.mark.parametrize(("handler", "method", "path", "status"), [
    (put_item.handler, "GET", "/item", 405),
    (put_item.handler, "PUT", "/item", 405),
    (get_item.handler, "DELETE", "/item/x", 405),
    (health.handler, "POST", "/health", 405),
    (put_item.handler, "POST", "/nowhere", 404),
    (get_item.handler, "GET", "/item/a/b", 404),
    (health.handler, "GET", "/", 404),
])
def test_unknown_routes_and_methods(table: Any, handler: Handler, method: str, path: str, status: int) -> None:
    response = handler(event(method, path, {"id": "route"}), None)
    assert response["statusCode"] == status
    assert body(response)["error"] == ("MethodNotAllowed" if status == 405 else "NotFound")
    if status == 405:
        assert response["headers"]["Allow"] in ("GET", "POST")
    assert items_in(table) == []


# ------------------------------------------------------------------------------------------------ health


def test_health_answers_the_configured_status(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    request = event("GET", "/health", resource="/health")
    response = health.handler(request, None)
    assert response["statusCode"] == 200
    assert body(response) == {"region": REGION, "status": 200, "healthy": True}
    assert response["headers"]["Cache-Control"] == "no-store"

    monkeypatch.setenv("STATUS", "404")
    response = health.handler(request, None)
    assert response["statusCode"] == 404 and body(response)["healthy"] is False

    monkeypatch.setenv("STATUS", "teapot")
    response = health.handler(request, None)
    assert response["statusCode"] == 500 and body(response)["error"] == "InvalidConfiguration"


def test_one_client_per_execution_environment(table: Any) -> None:
    post({"id": "one"})
    first = common.dynamodb()
    get("one")
    assert common.dynamodb() is first
