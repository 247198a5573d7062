"""The item API's handlers, called in-process with proxy events (payload 1.0) against a table on the sandbox."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from multiregion import packaging
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
    for var in ("STATUS", "HASH_KEY", "DEEP_CHECK", "TABLE_CONSISTENCY", "CORS_ORIGINS"):
        monkeypatch.delenv(var, raising=False)
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


@pytest.mark.parametrize("fields", [{"region": "mars-1"}, {"written_at": "never"}, {"served_by": "x"},
                                    {"region": "mars-1", "written_at": "never", "served_by": "x"}],
                         ids=["region", "written_at", "served_by", "all three"])
def test_server_fields_sent_by_a_client_are_refused(table: Any, fields: dict[str, str]) -> None:
    response = post({"id": "forged", **fields})
    assert response["statusCode"] == 400
    error = body(response)
    assert error["error"] == "ReservedField"
    assert all(name in error["message"] for name in fields) and "set by the API" in error["message"]
    assert items_in(table) == []


def test_the_table_key_attribute_is_reserved_when_it_is_not_id(sandbox: Sandbox, aws: Any, table: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASH_KEY", "pk")
    response = post({"id": "k1", "pk": "other"})
    assert response["statusCode"] == 400 and body(response)["error"] == "ReservedField"
    assert "pk" in body(response)["message"]


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
    ("id with a slash", {"id": "a/b"}, 400, "InvalidId"),
    ("id of a lone surrogate", '{"id": "\\ud800"}', 400, "InvalidId"),
    ("lone surrogate in a value", '{"id": "s", "v": ["ok", "x\\udfff"]}', 400, "InvalidItem"),
    ("lone surrogate in a name", '{"id": "s", "m": {"\\ud83d": 1}}', 400, "InvalidItem"),
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


def test_a_slash_in_an_id_is_refused_because_it_could_never_be_read(table: Any) -> None:
    error = body(post({"id": "orders/42"}))
    assert "'/'" in error["message"] and "never be read back" in error["message"]


def test_a_lone_surrogate_is_named_in_the_refusal(table: Any) -> None:
    error = body(post('{"id": "ok", "name": "a\\ud800"}'))
    assert error["message"] == ("item.name: character 1 is a lone UTF-16 surrogate (\\ud800), not Unicode "
                                "text; DynamoDB stores UTF-8")
    assert body(post('{"id": "ok", "m": {"a\\udc00": 1}}'))["message"].startswith(
        'item.m: attribute name "a\\udc00": character 1 is a lone UTF-16 surrogate')
    assert body(get("\ud800"))["error"] == "InvalidId"


def test_a_dynamodb_typed_id_is_reported_as_an_object(table: Any) -> None:
    message = body(post({"id": {"S": "a"}}))["message"]
    assert message.startswith("id must be a string, not an object")
    assert '{"S": "a"}' in message and "number" not in message


def test_surrogate_pairs_are_text_and_are_stored(table: Any) -> None:
    assert post('{"id": "emoji", "v": "\\ud83d\\ude00"}')["statusCode"] == 201
    assert body(get("emoji"))["v"] == "\U0001F600"


# ------------------------------------------------------------------------------------------ content type


def post_as(content_type: str | None, payload: Any, header_name: str = "Content-Type") -> dict[str, Any]:
    request = event("POST", "/item", payload, resource="/item")
    request["headers"] = None if content_type is None else {header_name: content_type}
    return put_item.handler(request, None)


@pytest.mark.parametrize(("content_type", "header_name"), [
    ("application/json", "Content-Type"),
    ("application/json; charset=utf-8", "Content-Type"),
    ("Application/JSON;charset=UTF-8", "content-type"),
    ("application/vnd.api+json", "CONTENT-TYPE"),
    ("application/merge-patch+json", "Content-Type"),
    (None, "Content-Type"),
    ("", "Content-Type"),
])
def test_json_bodies_are_accepted_as_json_or_undeclared(table: Any, content_type: str | None,
                                                        header_name: str) -> None:
    response = post_as(content_type, {"id": "typed"}, header_name)
    assert response["statusCode"] == 201, response
    assert body(get("typed"))["id"] == "typed"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml",
                                          "application/json; charset=utf-16", "text/json"])
def test_other_content_types_are_refused_with_415(table: Any, content_type: str) -> None:
    response = post_as(content_type, {"id": "typed"})
    assert response["statusCode"] == 415
    error = body(response)
    assert error["error"] == "UnsupportedMediaType"
    assert "Content-Type: application/json" in error["message"]
    assert items_in(table) == []


# ------------------------------------------------------------------------------- conflicts, errors, logs


class FailingDynamoDB:
    """A client whose every call raises `exc`."""

    def __init__(self, exc: Exception):
        self.exc = exc
        self.calls: list[str] = []

    def put_item(self, **kwargs: Any) -> Any:
        self.calls.append("PutItem")
        raise self.exc

    def get_item(self, **kwargs: Any) -> Any:
        self.calls.append("GetItem")
        raise self.exc


def client_error(code: str, message: str, operation: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_a_replicated_write_conflict_answers_409_retry(table: Any) -> None:
    common.use_client(FailingDynamoDB(client_error(
        "ReplicatedWriteConflictException", "One or more items are being modified in another Region", "PutItem")))
    response = post({"id": "contested"})
    assert response["statusCode"] == 409
    assert response["headers"]["Retry-After"] == "1"
    error = body(response)
    assert error["error"] == "WriteConflict" and error["retry"] is True and "retry" in error["message"]


def test_a_table_that_does_not_answer_gives_503_retry_naming_the_region(table: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    common.use_client(FailingDynamoDB(client_error("InternalServerError", "Internal server error", "PutItem")))
    response = post({"id": "cut-off"})
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "1"
    error = body(response)
    assert error["error"] == "TableUnavailable" and error["retry"] is True and error["region"] == "eu-west-2"


def test_access_denied_is_the_strong_tables_refusal_only(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    denied = client_error("AccessDeniedException", "replication not authorized", "PutItem")
    common.use_client(FailingDynamoDB(denied))
    assert post({"id": "a"})["statusCode"] == 500  # an eventual table: a permissions bug, not an isolation
    monkeypatch.setenv("TABLE_CONSISTENCY", "strong")
    common.use_client(FailingDynamoDB(denied))
    response = post({"id": "b"})
    assert response["statusCode"] == 503 and body(response)["error"] == "TableUnavailable"


def test_other_dynamodb_errors_are_not_taken_for_conflicts(table: Any) -> None:
    common.use_client(FailingDynamoDB(client_error("ValidationException", "bad", "PutItem")))
    response = post({"id": "invalid"})
    assert response["statusCode"] == 500 and body(response)["error"] == "InternalError"


class Context:
    aws_request_id = "lambda-req-1"


def test_an_unexpected_exception_answers_a_json_500_with_the_request_id(table: Any,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    common.use_client(FailingDynamoDB(RuntimeError("disk on fire")))
    request = event("GET", "/item/x", resource="/item/{id}", path_parameters={"id": "x"})
    request["requestContext"]["requestId"] = "gw-req-9"
    response = get_item.handler(request, Context())
    assert response["statusCode"] == 500
    assert body(response) == {"error": "InternalError", "request_id": "gw-req-9",
                              "message": "the request failed inside the API; the function's log has the "
                                         "details under this request_id"}
    assert "disk on fire" not in response["body"]  # the log has it, the client does not
    (line,) = capsys.readouterr().out.splitlines()
    logged = json.loads(line)
    assert logged["level"] == "ERROR" and logged["status"] == 500
    assert (logged["request_id"], logged["aws_request_id"]) == ("gw-req-9", "lambda-req-1")
    assert logged["error_type"] == "RuntimeError" and logged["error_message"] == "disk on fire"
    assert "Traceback" in logged["stack"]  # the whole traceback inside the one line


def test_each_request_logs_one_json_line(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    post({"id": "logged"})
    post({"id": ""})
    get("logged")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["route"], x["method"], x["status"]) for x in lines] == [
        ("POST /item", "POST", 201), ("POST /item", "POST", 400), ("GET /item/{id}", "GET", 200)]
    assert all(x["region"] == REGION and x["level"] == "INFO" for x in lines)
    assert all(isinstance(x["latency_ms"], float) and x["latency_ms"] >= 0 for x in lines)
    assert lines[1]["error"] == "InvalidId" and "error" not in lines[0]


def test_api_handler_wraps_an_apps_own_handler(capsys: pytest.CaptureFixture[str]) -> None:
    @common.api_handler
    def fetch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if event["pathParameters"]["id"] == "boom":
            raise KeyError("boom")
        return common.respond(200, {"ok": True})

    request = {"httpMethod": "GET", "path": "/orders/1", "resource": "/orders/{id}",
               "pathParameters": {"id": "1"}, "requestContext": {"requestId": "r1"}}
    assert fetch(request)["statusCode"] == 200
    request["pathParameters"]["id"] = "boom"
    assert body(fetch(request, Context()))["error"] == "InternalError"
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["route"] == "GET /orders/{id}" and first["status"] == 200
    assert second["error_type"] == "KeyError" and second["status"] == 500
    assert fetch.__name__ == "fetch"


def test_deployed_put_answers_500_json_not_502_when_the_table_is_missing(sandbox: Sandbox, aws: Any) -> None:
    """The put function's zip on the sandbox's Lambda: an error inside the handler is its own JSON 500,
    and the log carries the request's JSON line."""
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = aws("iam").create_role(RoleName="fn", AssumeRolePolicyDocument=policy)["Role"]["Arn"]
    lam = aws("lambda", REGION)
    lam.create_function(FunctionName="put", Runtime="python3.12", Role=role, Handler="put_item.handler",
                        Code={"ZipFile": packaging.build_zip("put")},
                        Environment={"Variables": {"TABLE_NAME": "no-such-table"}})
    request = event("POST", "/item", {"id": "x"}, resource="/item")
    request["requestContext"]["requestId"] = "gw-1"
    resp = lam.invoke(FunctionName="put", Payload=json.dumps(request), LogType="Tail")
    assert "FunctionError" not in resp
    answer = json.loads(resp["Payload"].read())
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["request_id"] == "gw-1"
    logs = base64.b64decode(resp["LogResult"]).decode()
    logged = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert logged and logged[-1]["error_type"] == "ResourceNotFoundException"


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


def health_answer() -> tuple[int, dict[str, Any]]:
    response = health.handler(event("GET", "/health", resource="/health"), None)
    assert response["headers"]["Cache-Control"] == "no-store"
    return response["statusCode"], body(response)


def test_deep_check_reads_the_table(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_CHECK", "1")
    assert health_answer() == (200, {"region": REGION, "status": 200, "healthy": True})
    assert items_in(table) == []  # the probe reads a key that is never written, and writes nothing


def test_the_deep_check_of_a_strong_table_reads_strongly(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A strong table's region cut off from the others refuses strong reads: the check must make one to see it.
    reads: list[dict[str, Any]] = []

    class Recording:
        def get_item(self, **kwargs: Any) -> dict[str, Any]:
            reads.append(kwargs)
            return {}

    monkeypatch.setattr(common, "dynamodb", lambda purpose="api": Recording())
    monkeypatch.setenv("DEEP_CHECK", "1")
    assert health_answer()[0] == 200
    monkeypatch.setenv("TABLE_CONSISTENCY", "strong")
    assert health_answer()[0] == 200
    assert [r["ConsistentRead"] for r in reads] == [False, True]


def test_deep_check_answers_503_with_the_reason_when_the_table_is_missing(
        table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_CHECK", "1")
    monkeypatch.setenv("TABLE_NAME", "gone")
    status, answer = health_answer()
    assert status == 503 and answer["healthy"] is False and answer["status"] == 503
    assert answer["reason"].startswith(f"table gone in {REGION}: ResourceNotFoundException")


def test_deep_check_answers_503_when_dynamodb_cannot_be_reached(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DEEP_CHECK", "1")
    common.reset_client()
    status, answer = health_answer()
    assert status == 503 and "EndpointConnectionError" in answer["reason"]


def test_the_failover_switch_keeps_priority_over_the_deep_check(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = FailingDynamoDB(client_error("ResourceNotFoundException", "gone", "GetItem"))
    common.use_client(probe, "health")
    monkeypatch.setenv("DEEP_CHECK", "1")
    monkeypatch.setenv("STATUS", "404")
    assert health_answer() == (404, {"region": REGION, "status": 404, "healthy": False})
    assert probe.calls == []  # the switch is obeyed without touching the table
    monkeypatch.setenv("STATUS", "200")
    assert health_answer()[0] == 503 and probe.calls == ["GetItem"]


def test_without_deep_check_the_table_is_not_read(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = FailingDynamoDB(client_error("ResourceNotFoundException", "gone", "GetItem"))
    common.use_client(probe, "health")
    for value in ("0", "", "false"):
        monkeypatch.setenv("DEEP_CHECK", value)
        assert health_answer()[0] == 200
    assert probe.calls == []
    monkeypatch.setenv("DEEP_CHECK", "sometimes")
    response = health.handler(event("GET", "/health", resource="/health"), None)
    assert response["statusCode"] == 500 and body(response)["error"] == "InvalidConfiguration"


def test_answers_to_an_allowed_origin_carry_it_and_others_get_nothing(table: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example.com,https://admin.example.com")
    request = event("POST", "/item", {"id": "cors"})
    request["headers"]["Origin"] = "https://app.example.com"
    answer = put_item.handler(request)
    assert answer["statusCode"] == 201
    assert answer["headers"]["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert answer["headers"]["Vary"] == "Origin"
    request["headers"]["Origin"] = "https://evil.example.com"
    assert "Access-Control-Allow-Origin" not in put_item.handler(request)["headers"]
    monkeypatch.setenv("CORS_ORIGINS", "*")
    request["headers"]["Origin"] = "https://anyone.example.com"
    assert put_item.handler(request)["headers"]["Access-Control-Allow-Origin"] == "*"
    monkeypatch.delenv("CORS_ORIGINS")
    assert "Access-Control-Allow-Origin" not in put_item.handler(request)["headers"]
