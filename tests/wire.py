"""A strict check of raw AWS responses against botocore's service models, for the sandbox's own answers.

boto3 parses leniently: a timestamp sent as a string, a member the model does not know, a number where a
string belongs all come through. The Go SDK (and so Terraform's AWS provider) refuses many of them. This
module checks a response body the way botocore's serializers would have written it:

* every member is one the output shape knows (by its wire name), every required member is there;
* types: string (and its enum), integer/long, float/double, boolean, blob (base64), timestamp, list, map,
  structure, nested as the model nests them; JSON `null` is never written;
* timestamps in the protocol's format: epoch-second numbers for json and rest-json bodies (DynamoDB,
  ACM, Lambda, API Gateway), ISO 8601 for rest-xml (Route 53), unless a member names its own format;
* rest-json: the body holds the members without a location, or is the payload member; header members
  parse as their type; rest-xml: the root element is the output shape, in the service's namespace, a
  list is a wrapper of `member` elements (or repeated elements when flattened), a scalar has no children;
* the HTTP status of a success is the operation's `responseCode` (200 unless the model says otherwise), or
  any 2xx where the status is itself an output member (Lambda's Invoke);
* an error is in the protocol's error envelope (`__type`/`x-amzn-ErrorType` for JSON, `ErrorResponse/
  Error/Code` for XML).

`problems(...)` returns what is wrong as readable strings (empty: the response is as AWS writes it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

import botocore.exceptions
import botocore.session
from botocore.model import OperationModel, Shape

# Epoch seconds between 2000 and 2100: a millisecond timestamp, or a date string, falls outside.
_EPOCH_RANGE = (946_684_800, 4_102_444_800)
_ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$")
_INTEGER = re.compile(r"^-?\d+$")
_DEFAULT_TIMESTAMP = {"json": "unixTimestamp", "rest-json": "unixTimestamp", "rest-xml": "iso8601",
                      "query": "iso8601", "ec2": "iso8601"}

# Route 53 lists that say with IsTruncated whether another page follows, and the members that name it.
# botocore's paginators give some; the API reference gives the others ("If IsTruncated is true,
# HostedZoneIdMarker is the ID of the hosted zone of the first traffic policy instance that Route 53 will
# return if you submit another request"). On the last page they are absent: "This element is present only if
# IsTruncated is true" (ListTrafficPolicyVersions), "If IsTruncated is false, the TrafficPolicyIdMarker element
# is omitted from the response" (ListTrafficPolicies), although the model marks those two required.
_INSTANCE_MARKERS = ("HostedZoneIdMarker", "TrafficPolicyInstanceNameMarker", "TrafficPolicyInstanceTypeMarker")
NEXT_PAGE: dict[str, tuple[str, ...]] = {
    "ListTrafficPolicies": ("TrafficPolicyIdMarker",),
    "ListTrafficPolicyVersions": ("TrafficPolicyVersionMarker",),
    "ListTrafficPolicyInstances": _INSTANCE_MARKERS,
    "ListTrafficPolicyInstancesByHostedZone": _INSTANCE_MARKERS[1:],
    "ListTrafficPolicyInstancesByPolicy": _INSTANCE_MARKERS,
}


@dataclass(frozen=True)
class RawResponse:
    """An HTTP answer as it came off the wire, before any SDK parsed it."""

    operation: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass
class _Check:
    protocol: str
    found: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.found.append(f"{path or '<body>'}: {message}")


def problems(operation: OperationModel, raw: RawResponse) -> list[str]:
    """Everything in `raw` that botocore's serializers for `operation` would not have written."""
    protocol = operation.metadata["protocol"]
    check = _Check(protocol)
    if raw.status >= 300:
        _check_error(check, raw)
        return check.found
    shape = operation.output_shape
    expected = operation.http.get("responseCode", 200)
    if _status_is_a_member(shape):
        if not 200 <= raw.status < 300:
            check.add("<status>", f"HTTP {raw.status} is not a success")
    elif raw.status != expected:
        check.add("<status>", f"HTTP {raw.status}, the model says {expected}")
    if protocol == "json":
        _check_json_body(check, shape, raw.body)
    elif protocol == "rest-json":
        _check_rest(check, shape, raw, _check_json_body)
    elif protocol == "rest-xml":
        _check_rest(check, shape, raw, lambda c, s, b: _check_xml_body(c, s, b, operation))
    else:
        check.add("<protocol>", f"{protocol} is not checked here")
    if protocol == "rest-xml":
        _check_next_page(check, operation, raw)
    return check.found


def _status_is_a_member(shape: Shape | None) -> bool:
    """Whether the status code is data (Lambda's Invoke: 200, 202 for Event, 204 for DryRun)."""
    return shape is not None and any(m.serialization.get("location") == "statusCode" for m in shape.members.values())


# ---------------------------------------------------------------------------------------------- envelopes


def _check_error(check: _Check, raw: RawResponse) -> None:
    if check.protocol in ("json", "rest-json"):
        try:
            data = json.loads(raw.body or b"{}")
        except ValueError:
            check.add("<error>", f"not JSON: {raw.body[:80]!r}")
            return
        code = raw.header("x-amzn-ErrorType") or (data.get("__type") if isinstance(data, dict) else None)
        if not isinstance(data, dict) or not isinstance(code, str) or not code:
            check.add("<error>", "no error code in x-amzn-ErrorType or __type")
        return
    try:
        root = _strip(ET.fromstring(raw.body))
    except ET.ParseError as exc:
        check.add("<error>", f"not XML: {exc}")
        return
    if root.tag != "ErrorResponse" or not (root.findtext("Error/Code") or "").strip():
        check.add("<error>", f"expected ErrorResponse/Error/Code, found <{root.tag}>")


def _check_rest(check: _Check, shape: Shape | None, raw: RawResponse, body_check: Any) -> None:
    if shape is None:
        return
    payload = shape.serialization.get("payload")
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        if location == "header":
            _check_header(check, name, member, raw.header(member.serialization.get("name", name)))
    if payload:
        member = shape.members[payload]
        if member.type_name in ("blob", "string"):
            return  # the raw body is the value
        body_check(check, member, raw.body)
        return
    body_check(check, _BodyShape(shape), raw.body)


def _check_header(check: _Check, name: str, shape: Shape, value: str | None) -> None:
    if value is None:
        return
    kind = shape.type_name
    if kind in ("integer", "long") and not _INTEGER.match(value.strip()):
        check.add(f"header {name}", f"{value!r} is not an integer")
    elif kind == "boolean" and value not in ("true", "false"):
        check.add(f"header {name}", f"{value!r} is not true or false")
    elif kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "rfc822")
        _check_timestamp_text(check, f"header {name}", value, fmt)
    elif kind == "string" and shape.enum and value not in shape.enum:
        check.add(f"header {name}", f"{value!r} is not one of {shape.enum}")


class _BodyShape:
    """A structure seen through its body members only (rest protocols put the others in headers)."""

    def __init__(self, shape: Shape):
        self.name = shape.name
        self.type_name = "structure"
        self.serialization = shape.serialization
        self.members = {n: m for n, m in shape.members.items() if not m.serialization.get("location")}
        self.required_members = [n for n in shape.required_members if n in self.members]
        self.enum: list[str] = []


def next_page_members(operation: OperationModel) -> tuple[str, ...]:
    """The members naming the next page of a list that tells with IsTruncated whether there is one."""
    if operation.name in NEXT_PAGE:
        return NEXT_PAGE[operation.name]
    paginator = _paginator(operation.service_model.service_name, operation.name)
    if paginator.get("more_results") != "IsTruncated":
        return ()
    token = paginator["output_token"]
    return tuple(token) if isinstance(token, list) else (token,)


@cache
def _paginator(service: str, operation: str) -> dict[str, Any]:
    try:
        return dict(botocore.session.get_session().get_paginator_model(service).get_paginator(operation))
    except (botocore.exceptions.UnknownServiceError, botocore.exceptions.DataNotFoundError, ValueError):
        return {}


def _check_next_page(check: _Check, operation: OperationModel, raw: RawResponse) -> None:
    """A last page names no next page (a client paging until the marker is empty would loop), and a page that
    is not the last names it."""
    members = next_page_members(operation)
    if not members:
        return
    try:
        root = _strip(ET.fromstring(raw.body))
    except ET.ParseError:
        return  # reported by the body check
    present = [m for m in members if root.find(m) is not None]
    if (root.findtext("IsTruncated") or "").strip() == "true":
        if not present:
            check.add("", "IsTruncated is true but no next-page marker is given")
        return
    for member in present:
        check.add(member, "names a next page although IsTruncated is false")
    check.found = [p for p in check.found if p not in {f"{m}: required member is missing" for m in members}]


# ---------------------------------------------------------------------------------------------- JSON


def _check_json_body(check: _Check, shape: Any, body: bytes) -> None:
    if shape is None or not shape.members:
        if body.strip() not in (b"", b"{}"):
            check.add("", f"the model has no output members, the body is {body[:80]!r}")
        return
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        check.add("", f"not JSON ({exc})")
        return
    _json_value(check, shape, data, "")


def _json_value(check: _Check, shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    if value is None:
        check.add(path, "null (botocore never serializes null)")
        return
    if kind == "structure":
        _json_structure(check, shape, value, path)
    elif kind == "list":
        if not isinstance(value, list):
            check.add(path, f"expected a list, found {_kind(value)}")
            return
        for i, item in enumerate(value):
            _json_value(check, shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            check.add(path, f"expected a map, found {_kind(value)}")
            return
        for key, item in value.items():
            _json_value(check, shape.key, key, f"{path}{{key}}")
            _json_value(check, shape.value, item, f"{path}[{key!r}]")
    elif kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", _DEFAULT_TIMESTAMP[check.protocol])
        if fmt == "unixTimestamp":
            _check_epoch(check, path, value)
        elif not isinstance(value, str):
            check.add(path, f"expected a {fmt} string, found {_kind(value)}")
        else:
            _check_timestamp_text(check, path, value, fmt)
    else:
        _json_scalar(check, shape, value, path)


def _json_structure(check: _Check, shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        check.add(path, f"expected a structure, found {_kind(value)}")
        return
    by_wire = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()}
    for key, item in value.items():
        if key not in by_wire:
            check.add(_join(path, key), f"not a member of {shape.name}")
            continue
        _json_value(check, by_wire[key][1], item, _join(path, key))
    wire_of = {n: m.serialization.get("name", n) for n, m in shape.members.items()}
    for name in shape.required_members:
        if wire_of[name] not in value:
            check.add(_join(path, wire_of[name]), "required member is missing")


def _json_scalar(check: _Check, shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            check.add(path, f"expected a string, found {_kind(value)} {value!r}")
        elif shape.enum and value not in shape.enum:
            check.add(path, f"{value!r} is not one of {list(shape.enum)}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            check.add(path, f"expected an integer, found {_kind(value)} {value!r}")
    elif kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            check.add(path, f"expected a number, found {_kind(value)} {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            check.add(path, f"expected a boolean, found {_kind(value)} {value!r}")
    elif kind == "blob":
        if not isinstance(value, str) or not _is_base64(value):
            check.add(path, f"expected base64 text, found {_kind(value)}")
    elif kind != "document":
        check.add(path, f"type {kind} is not checked here")


def _check_epoch(check: _Check, path: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        check.add(path, f"timestamp must be epoch seconds as a number, found {_kind(value)} {value!r}")
    elif not _EPOCH_RANGE[0] <= value <= _EPOCH_RANGE[1]:
        check.add(path, f"timestamp {value} is not epoch seconds of this century (milliseconds?)")


def _check_timestamp_text(check: _Check, path: str, value: str, fmt: str) -> None:
    if fmt == "iso8601" and not _ISO8601.match(value):
        check.add(path, f"{value!r} is not an ISO 8601 timestamp")
    elif fmt == "rfc822":
        try:
            parsedate_to_datetime(value)
        except (TypeError, ValueError):
            check.add(path, f"{value!r} is not an RFC 822 date")
    elif fmt == "unixTimestamp":
        try:
            float(value)
        except ValueError:
            check.add(path, f"{value!r} is not epoch seconds")


# ---------------------------------------------------------------------------------------------- XML


def _check_xml_body(check: _Check, shape: Any, body: bytes, operation: OperationModel) -> None:
    if shape is None:
        if body.strip():
            check.add("", "the model has no output, the body is not empty")
        return
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        check.add("", f"not XML ({exc})")
        return
    namespace = _xml_namespace(operation.service_model)
    tag_ns, _, tag = root.tag.rpartition("}")
    if namespace and tag_ns.lstrip("{") != namespace:
        check.add("", f"root namespace {tag_ns.lstrip('{') or '(none)'}, expected {namespace}")
    if tag != shape.name:
        check.add("", f"root element <{tag}>, expected <{shape.name}>")
    _xml_structure(check, shape, _strip(root), "")


def _xml_namespace(service: Any) -> str | None:
    """The service's XML namespace: the model gives it on request shapes (Route 53: on every POST body)."""
    for name in service.operation_names:
        shape = service.operation_model(name).input_shape
        uri = ((shape.serialization.get("xmlNamespace") or {}).get("uri") if shape is not None else None)
        if uri:
            return str(uri)
    return None


def _xml_value(check: _Check, shape: Any, el: ET.Element, path: str) -> None:
    kind = shape.type_name
    if kind == "structure":
        _xml_structure(check, shape, el, path)
    elif kind == "list":
        _xml_list(check, shape, list(el), path)
    elif kind == "map":
        _xml_map(check, shape, el, path)
    else:
        if len(el):
            check.add(path, f"a {kind} element with child elements")
            return
        _xml_scalar(check, shape, el.text or "", path)


def _xml_structure(check: _Check, shape: Any, el: ET.Element, path: str) -> None:
    if (el.text or "").strip():
        check.add(path, f"structure {shape.name} holds text {el.text.strip()[:40]!r}")
    by_wire: dict[str, tuple[str, Any]] = {}
    for name, member in shape.members.items():
        if member.serialization.get("location") or member.serialization.get("xmlAttribute"):
            continue
        flattened = member.type_name == "list" and member.serialization.get("flattened")
        wire = member.member.serialization.get("name", name) if flattened else member.serialization.get("name", name)
        by_wire[wire] = (name, member)
    seen: dict[str, list[ET.Element]] = {}
    for child in el:
        if child.tag not in by_wire:
            check.add(_join(path, child.tag), f"not a member of {shape.name}")
            continue
        seen.setdefault(child.tag, []).append(child)
    for wire, elements in seen.items():
        name, member = by_wire[wire]
        if member.type_name == "list" and member.serialization.get("flattened"):
            _xml_list(check, member, elements, _join(path, wire), flattened=True)
            continue
        if len(elements) > 1:
            check.add(_join(path, wire), f"appears {len(elements)} times")
        _xml_value(check, member, elements[0], _join(path, wire))
    for name in shape.required_members:
        wire = next((w for w, (n, _) in by_wire.items() if n == name), name)
        if wire not in seen:
            check.add(_join(path, wire), "required member is missing")


def _xml_list(check: _Check, shape: Any, items: list[ET.Element], path: str, flattened: bool = False) -> None:
    name = shape.member.serialization.get("name", "member")
    for i, item in enumerate(items):
        if not flattened and item.tag != name:
            check.add(f"{path}[{i}]", f"list entry <{item.tag}>, expected <{name}>")
            continue
        _xml_value(check, shape.member, item, f"{path}[{i}]")


def _xml_map(check: _Check, shape: Any, el: ET.Element, path: str) -> None:
    key_name = shape.key.serialization.get("name", "key")
    value_name = shape.value.serialization.get("name", "value")
    for i, entry in enumerate(el):
        if entry.tag != "entry" or entry.find(key_name) is None or entry.find(value_name) is None:
            check.add(f"{path}[{i}]", f"map entry <{entry.tag}> without <{key_name}> and <{value_name}>")
            continue
        _xml_value(check, shape.value, entry.find(value_name), f"{path}[{i}]")  # type: ignore[arg-type]


def _xml_scalar(check: _Check, shape: Any, text: str, path: str) -> None:
    kind = shape.type_name
    if kind == "string":
        if shape.enum and text not in shape.enum:
            check.add(path, f"{text!r} is not one of {list(shape.enum)}")
    elif kind in ("integer", "long"):
        if not _INTEGER.match(text.strip()):
            check.add(path, f"{text!r} is not an integer")
    elif kind in ("float", "double"):
        try:
            float(text)
        except ValueError:
            check.add(path, f"{text!r} is not a number")
    elif kind == "boolean":
        if text not in ("true", "false"):
            check.add(path, f"{text!r} is not true or false")
    elif kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", _DEFAULT_TIMESTAMP[check.protocol])
        _check_timestamp_text(check, path, text, fmt)
    elif kind == "blob":
        if not _is_base64(text):
            check.add(path, "not base64 text")
    else:
        check.add(path, f"type {kind} is not checked here")


# ---------------------------------------------------------------------------------------------- helpers


def _strip(root: ET.Element) -> ET.Element:
    for el in root.iter():
        el.tag = el.tag.rsplit("}", 1)[-1]
    return root


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
