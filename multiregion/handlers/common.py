"""What the item API's handlers share: proxy events in and out, validation, and the DynamoDB client.

Runs inside Lambda (Python 3.12 runtime) from the zip's root, so only the standard library and boto3.

Limits the API documents and enforces (each violation answers 4xx with `{"error", "message"}`, and
nothing is written):
- a body is JSON: `Content-Type` is `application/json`, an `application/*+json` type, or absent (a
  client that sends none still gets JSON parsed); any other type, form encoding and `text/plain`
  included, answers 415 UnsupportedMediaType asking for `Content-Type: application/json`, and so does a
  charset other than UTF-8 (JSON on the wire is UTF-8, RFC 8259);
- the request body is at most MAX_BODY_BYTES (64 KiB) once base64-decoded, and must be a JSON object;
- `id` is a non-empty string of at most MAX_ID_CHARS (256) characters, not only whitespace, without `/`
  (`GET /item/{id}` takes one path segment: API Gateway answers 403 for `/item/a/b`, so such an item
  could never be read back);
- the fields the API sets itself (`region`, `written_at`, `served_by`, and the table's key attribute when
  it is not `id`) are refused, not silently overwritten;
- strings are valid Unicode: JSON's `\\ud800` escapes can spell a lone UTF-16 surrogate, which has no
  UTF-8 form, and DynamoDB stores UTF-8;
- numbers must fit DynamoDB: finite, at most 38 significant digits, magnitude 1E-130 to 9.99E+125;
- attribute names are non-empty; values nest at most MAX_DEPTH (32) levels, as in DynamoDB.

Other answers: 409 WriteConflict (`"retry": true`, `Retry-After: 1`) when DynamoDB refuses a write with
ReplicatedWriteConflictException (a global table in multi-Region strong consistency, the item being
written in another region at the same moment); 503 TableUnavailable (`"retry": true`, `Retry-After: 1`)
when DynamoDB answers InternalServerError or ServiceUnavailable after botocore's retries, or, for a strongly
consistent table, AccessDeniedException (a strong table whose region is cut off from the others, or whose
replication a resource policy denies, refuses writes and strong reads that way: another region can serve
the request); 500 InternalError with the request's id for any exception a handler did not
expect, instead of API Gateway's bare 502.

Every request handled through `api_handler` writes one JSON line to stdout (CloudWatch Logs on Lambda):
request ids, route, method, status, latency, region, and the error's code or exception type. An app of
its own can use `api_handler` as a decorator on its handlers for the same logs and the same 500 answer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import sys
import time
import traceback
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
SERVER_FIELDS = {REGION_FIELD: "the region that wrote the item", WRITTEN_AT_FIELD: "when it was written",
                 SERVED_BY_FIELD: "the region that serves a read"}
JSON_CHARSETS = ("utf-8", "utf8", "us-ascii")
WRITE_CONFLICT = "ReplicatedWriteConflictException"
# DynamoDB's server-side failures (HTTP 500/503), left after botocore's own retries: in a strongly consistent
# table, what a region cut off from the others answers to writes and strongly consistent reads.
TABLE_UNAVAILABLE = ("InternalServerError", "ServiceUnavailable")

Event = dict[str, Any]
Response = dict[str, Any]
Handler = Callable[[Event, Any], Response]

_clients: dict[str, Any] = {}


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


def strong_table() -> bool:
    """Whether the table is a strongly consistent (MRSC) global table (TABLE_CONSISTENCY=strong)."""
    return os.environ.get("TABLE_CONSISTENCY", "eventual") == "strong"


# Per purpose, botocore settings: (connect timeout s, read timeout s, attempts in all).
# The API's calls: the function has a few seconds, and API Gateway gives up after 29. The health check's:
# Route 53 counts a check failed unless it answers within 2 s of connecting, so one quick attempt.
CLIENT_SETTINGS = {"api": (2, 5, 3), "health": (1, 1, 1)}


def dynamodb(purpose: str = "api") -> Any:
    """One client per purpose and execution environment. boto3 reads AWS_REGION and AWS_ENDPOINT_URL."""
    if purpose not in _clients:
        import boto3
        from botocore.config import Config

        connect, read, attempts = CLIENT_SETTINGS[purpose]
        _clients[purpose] = boto3.client("dynamodb", config=Config(
            retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=connect, read_timeout=read))
    return _clients[purpose]


def use_client(client: Any, purpose: str = "api") -> None:
    """Use `client` instead of a boto3 client (tests inject a fake DynamoDB this way)."""
    _clients[purpose] = client


def reset_client() -> None:
    """Forget the clients (tests change the environment between calls)."""
    _clients.clear()


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
    """Answer one route: 404 for another resource, 405 for another method, JSON errors for bad input, 409
    for a write another region made at the same moment."""
    if resource_of(event) != resource:
        return error(404, "NotFound", f"no route {event.get('httpMethod', '')} {event.get('path', '')}".strip())
    if str(event.get("httpMethod", "")).upper() != method:
        return error(405, "MethodNotAllowed", f"{resource} accepts {method} only", {"Allow": method})
    try:
        return handle(event)
    except BadRequest as exc:
        return error(exc.status, exc.error, exc.message)
    except Exception as exc:
        code = aws_error_code(exc)
        if code == WRITE_CONFLICT:
            # botocore's standard retry mode already retried it (the model marks it retryable): the client
            # may try again, the item was not written.
            return respond(409, {"error": "WriteConflict", "retry": True,
                                 "message": "the item is being written in another region at the same moment; "
                                            "nothing was written, retry the request"}, {"Retry-After": "1"})
        if code in TABLE_UNAVAILABLE or (code == "AccessDeniedException" and strong_table()):
            # A strong table's replica cut off by a policy that denies replication answers AccessDenied
            # to writes and strong reads (DynamoDB developer guide, global tables security).
            return respond(503, {"error": "TableUnavailable", "retry": True, "region": region(),
                                 "message": f"the table did not answer in {region()} ({code}); nothing was "
                                            "written, retry the request (another region can serve it)"},
                           {"Retry-After": "1"})
        raise


def aws_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (without importing botocore), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None


# ------------------------------------------------------------------------------- logs and the 500 answer


def api_handler(handler: Handler) -> Handler:
    """Wrap a proxy-integration handler: one JSON log line per request on stdout, and a JSON 500 in the
    API's error shape for an exception it did not expect, instead of API Gateway's bare 502."""

    @functools.wraps(handler)
    def wrapped(event: Event, context: Any = None) -> Response:
        started = time.monotonic()
        try:
            response = handler(event, context)
        except Exception as exc:
            response = respond(500, {"error": "InternalError", "request_id": request_id(event, context),
                                     "message": "the request failed inside the API; the function's log has "
                                                "the details under this request_id"})
            log_request(event, context, response, started, exc)
            return with_cors(event, response)
        log_request(event, context, response, started)
        return with_cors(event, response)

    return wrapped


def with_cors(event: Event, response: Response) -> Response:
    """The allowed origin on an answer to a browser's request (CORS_ORIGINS, set from `api.cors`): API
    Gateway answers the preflight itself (a MOCK integration), but a proxy integration's answer carries only
    the headers the function sets (API Gateway developer guide, CORS for REST APIs)."""
    allowed = [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()]
    headers = {str(k).lower(): v for k, v in ((event.get("headers") or {}) if isinstance(event, dict) else {}).items()}
    origin = headers.get("origin")
    if not allowed or not origin or not isinstance(response, dict):
        return response
    if "*" in allowed:
        value = "*"
    elif origin in allowed:
        value = origin
    else:
        return response  # not an allowed origin: the browser refuses the answer, as it should
    extra = {"Access-Control-Allow-Origin": value, **({"Vary": "Origin"} if value != "*" else {})}
    return {**response, "headers": {**(response.get("headers") or {}), **extra}}


def request_id(event: Event, context: Any) -> str:
    """API Gateway's id of the request (the client gets it as x-amzn-RequestId), else Lambda's."""
    from_gateway = (event.get("requestContext") or {}).get("requestId") if isinstance(event, dict) else None
    return str(from_gateway or getattr(context, "aws_request_id", "") or "")


def log_request(event: Event, context: Any, response: Response, started: float,
                exc: BaseException | None = None) -> None:
    event = event if isinstance(event, dict) else {}
    method = str(event.get("httpMethod") or "")
    status = response.get("statusCode") if isinstance(response, dict) else None
    line: dict[str, Any] = {
        "level": "ERROR" if exc is not None else "INFO",
        "request_id": request_id(event, context),
        "aws_request_id": getattr(context, "aws_request_id", None),
        "route": f"{method} {resource_of(event) or event.get('path') or ''}".strip(),
        "method": method,
        "path": event.get("path"),
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000, 2),
        "region": region(),
    }
    if exc is not None:
        line.update(error_type=type(exc).__name__, error_message=str(exc),
                    stack="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    elif isinstance(status, int) and status >= 400:
        line["error"] = _error_code(response)
    # One line per request: a multi-line traceback would become several CloudWatch events.
    sys.stdout.write(json.dumps(line, default=str) + "\n")
    sys.stdout.flush()


def _error_code(response: Response) -> Any:
    try:
        return json.loads(response.get("body") or "{}").get("error")
    except (ValueError, AttributeError):
        return None


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


def header(event: Event, name: str) -> str | None:
    """A request header, by name in any case: API Gateway passes header names as the client sent them."""
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if str(key).lower() == wanted:
            return None if value is None else str(value)
    return None


def check_json_content_type(event: Event) -> None:
    """415 unless the body is declared JSON (or not declared at all): see the module docstring."""
    declared = (header(event, "Content-Type") or "").strip()
    if not declared:
        return
    media_type, *parameters = (part.strip() for part in declared.split(";"))
    media_type = media_type.lower()
    is_json = media_type == "application/json" or (media_type.startswith("application/")
                                                    and media_type.endswith("+json"))
    if not is_json:
        raise BadRequest(415, "UnsupportedMediaType", f"the body is sent as {media_type!r}; send JSON with "
                                                      "the header Content-Type: application/json")
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in JSON_CHARSETS:
            raise BadRequest(415, "UnsupportedMediaType", f"charset {charset!r}: JSON is sent as UTF-8 "
                                                          "(Content-Type: application/json; charset=utf-8)")


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
    if isinstance(value, dict):
        return "an object"
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
        hint = ""
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N", "B"):
            hint = ' (send the value itself, e.g. "id": "a", not DynamoDB\'s typed form {"S": "a"})'
        raise BadRequest(400, "InvalidId", f"id must be a string, not {_json_type(value)}{hint}")
    if not value.strip():
        raise BadRequest(400, "InvalidId", "id must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(400, "InvalidId", f"id is longer than {MAX_ID_CHARS} characters")
    check_text(value, "id", "InvalidId")
    return value


def check_writable_id(value: Any) -> str:
    """An id a client may write: also one that `GET /item/{id}` can read back."""
    item_id = check_id(value)
    if "/" in item_id:
        raise BadRequest(400, "InvalidId", "id must not contain '/': GET /item/{id} takes one path segment, "
                                           "so an item with such an id could never be read back")
    return item_id


def check_client_fields(item: dict[str, Any]) -> None:
    """Refuse the fields the API sets itself instead of overwriting what the client sent."""
    reserved = dict(SERVER_FIELDS)
    if hash_key() != "id":
        reserved[hash_key()] = "the table's key attribute, taken from id"
    sent = [name for name in reserved if name in item]
    if sent:
        why = "; ".join(f"{name} is {reserved[name]}" for name in sent)
        raise BadRequest(400, "ReservedField", f"{', '.join(sent)} {'is' if len(sent) == 1 else 'are'} set by "
                                               f"the API, not by the client ({why}): remove "
                                               f"{'it' if len(sent) == 1 else 'them'} from the request")


def check_text(value: str, where: str, code: str = "InvalidItem") -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise BadRequest(400, code, f"{where}: character {exc.start} is a lone UTF-16 surrogate "
                                    f"(\\u{ord(bad):04x}), not Unicode text; DynamoDB stores UTF-8") from None
    return value


def storable(value: Any, where: str = "item", depth: int = 0) -> Any:
    """The value as DynamoDB will take it, or BadRequest for what DynamoDB would refuse, so that a bad
    request is a 400 before anything is written, not a 500 after."""
    if depth > MAX_DEPTH:
        raise BadRequest(400, "InvalidItem", f"{where}: values nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, Decimal):
        return _storable_number(value, where)
    if isinstance(value, str):
        return check_text(value, where)
    if isinstance(value, dict):
        if "" in value:
            raise BadRequest(400, "InvalidItem", f"{where}: attribute names must not be empty")
        for key in value:
            check_text(key, f"{where}: attribute name \"{key.encode('utf-8', 'backslashreplace').decode()}\"")
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
