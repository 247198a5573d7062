"""What the item API's handlers share: proxy events in and out, validation, and the DynamoDB client.

Runs inside Lambda (Python 3.12 runtime) from the zip's root, so only the standard library and boto3.

Limits the API documents and enforces (each violation answers 4xx with `{"error", "message"}`, and
nothing is written):
- the request body is at most MAX_BODY_BYTES (64 KiB) once base64-decoded, and must be a JSON object;
- `id` is a non-empty string of at most MAX_ID_CHARS (256) characters, not only whitespace;
- numbers must fit DynamoDB: finite, at most 38 significant digits, magnitude 1E-130 to 9.99E+125;
- attribute names are non-empty; values nest at most MAX_DEPTH (32) levels, as in DynamoDB.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Context, Decimal
from typing import Any

MAX_BODY_BYTES = 64 * 1024
MAX_ID_CHARS = 256
MAX_DEPTH = 32
MAX_DIGITS = 38
MIN_EXPONENT, MAX_EXPONENT = -130, 125

# Fields the API sets itself: a client cannot choose them.
REGION_FIELD, WRITTEN_AT_FIELD, SERVED_BY_FIELD = "region", "written_at", "served_by"

Event = dict[str, Any]
Response = dict[str, Any]

_client: Any = None


class BadRequest(Exception):
    """A request the API refuses: its status code, an error code and a message for the client."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


# ------------------------------------------------------------------------------------------ environment


def region() -> str:
    return os.environ.get("AWS_REGION", "")


def table_name() -> str:
    return os.environ["TABLE_NAME"]


def hash_key() -> str:
    # The API's key field is always `id`; the table's key attribute may be named otherwise.
    return os.environ.get("HASH_KEY", "id")


def dynamodb() -> Any:
    """One client per execution environment. boto3 reads AWS_REGION and AWS_ENDPOINT_URL itself."""
    global _client
    if _client is None:
        import boto3
        from botocore.config import Config

        # Short timeouts: the function has a few seconds, and API Gateway gives up after 29.
        _client = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 3},
                                                         connect_timeout=2, read_timeout=5))
    return _client


def reset_client() -> None:
    """Forget the client (tests change the environment between calls)."""
    global _client
    _client = None


def now_iso() -> str:
    """The write timestamp: ISO 8601, UTC, milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------- routing


_ROUTE_PATTERNS = (("/item", re.compile(r"^/item/?$")), ("/item/{id}", re.compile(r"^/item/[^/]+/?$")),
                   ("/health", re.compile(r"^/health/?$")))


def resource_of(event: Event) -> str | None:
    """The API resource of the event: `resource` when API Gateway sent it, else matched from `path`."""
    resource = event.get("resource")
    if resource:
        return str(resource)
    path = str(event.get("path") or "")
    return next((name for name, pattern in _ROUTE_PATTERNS if pattern.match(path)), None)


def serve(event: Event, resource: str, method: str, handle: Callable[[Event], Response]) -> Response:
    """Answer one route: 404 for another resource, 405 for another method, JSON errors for bad input."""
    if resource_of(event) != resource:
        return error(404, "NotFound", f"no route {event.get('httpMethod', '')} {event.get('path', '')}".strip())
    if str(event.get("httpMethod", "")).upper() != method:
        return error(405, "MethodNotAllowed", f"{resource} accepts {method} only", {"Allow": method})
    try:
        return handle(event)
    except BadRequest as exc:
        return error(exc.status, exc.error, exc.message)


# ------------------------------------------------------------------------------------------- responses


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return {"statusCode": status,
            "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": to_json(body),
            "isBase64Encoded": False}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return respond(status, {"error": code, "message": message}, headers)


def to_json(value: Any) -> str:
    """JSON text for DynamoDB values: Decimals keep every digit (floats would round them)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        return to_json(sorted(value, key=str))
    if isinstance(value, (bytes, bytearray)) or hasattr(value, "value"):  # boto3's Binary wraps bytes
        raw = bytes(value.value if hasattr(value, "value") else value)
        return json.dumps(base64.b64encode(raw).decode("ascii"))
    return json.dumps(value)


# ------------------------------------------------------------------------------------------ validation


def body_bytes(event: Event) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest(400, "InvalidBody", "the request body is empty; send a JSON object")
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if event.get("isBase64Encoded"):
        if len(data) > (MAX_BODY_BYTES // 3 + 1) * 4 + 4:  # cheap refusal before decoding
            raise _too_large()
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(400, "InvalidBody", "the body is marked base64 but is not valid base64") from None
    if len(data) > MAX_BODY_BYTES:
        raise _too_large()
    return data


def _too_large() -> BadRequest:
    return BadRequest(413, "PayloadTooLarge", f"the body is over {MAX_BODY_BYTES} bytes")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number DynamoDB can store")


def parse_object(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest(400, "InvalidJSON", "the body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest(400, "InvalidItem", f"values nest deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(400, "InvalidJSON", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "InvalidItem", f"the body must be a JSON object, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"


def check_id(value: Any) -> str:
    if value is None:
        raise BadRequest(400, "InvalidId", "id is required")
    if not isinstance(value, str):
        raise BadRequest(400, "InvalidId", f"id must be a string, not {_json_type(value)}")
    if not value.strip():
        raise BadRequest(400, "InvalidId", "id must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(400, "InvalidId", f"id is longer than {MAX_ID_CHARS} characters")
    return value


def storable(value: Any, where: str = "item", depth: int = 0) -> Any:
    """The value as DynamoDB will take it, or BadRequest for what DynamoDB would refuse, so that a bad
    request is a 400 before anything is written, not a 500 after."""
    if depth > MAX_DEPTH:
        raise BadRequest(400, "InvalidItem", f"{where}: values nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, Decimal):
        return _storable_number(value, where)
    if isinstance(value, dict):
        if "" in value:
            raise BadRequest(400, "InvalidItem", f"{where}: attribute names must not be empty")
        return {key: storable(inner, f"{where}.{key}", depth + 1) for key, inner in value.items()}
    if isinstance(value, list):
        return [storable(inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(value)]
    return value


def _storable_number(value: Decimal, where: str) -> Decimal:
    if not value.is_finite():
        raise BadRequest(400, "InvalidItem", f"{where}: {value} is not a number DynamoDB can store")
    if value.is_zero():
        return value
    # Counted from the digits themselves: Decimal.normalize() would round to the context's 28 digits.
    coefficient = value.as_tuple().digits
    significant = "".join(map(str, coefficient)).rstrip("0")
    if len(significant) > MAX_DIGITS:
        raise BadRequest(400, "InvalidItem", f"{where}: more than {MAX_DIGITS} significant digits")
    if not MIN_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise BadRequest(400, "InvalidItem", f"{where}: magnitude out of DynamoDB's range 1E-130 to 9.99E+125")
    if len(coefficient) > MAX_DIGITS:
        # Trailing zeros past 38 digits (e.g. 10**38 written out) would make boto3's serializer round.
        return value.normalize(Context(prec=MAX_DIGITS))
    return value
