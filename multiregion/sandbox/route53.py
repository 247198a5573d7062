"""Route 53 in the sandbox: what moto lacks, in AWS's REST-XML wire shapes so boto3 and the AWS CLI work as-is.

The pieces live in their own modules and are wired in together by `route53_extensions`:
  route53_health    health checks that really probe (interval, threshold, checker regions, the 18% rule),
                    `GetHealthCheckStatus` with real observations, `CreateHealthCheck` idempotency
  route53_policies  traffic policies, their versions and instances (policy records)
  route53_dns       `TestDNSAnswer` (latency, failover and the other routing policies, fail-open), and the
                    global name over HTTP: a request whose Host is a routed name is served by the region
                    the DNS answer points to

This module holds what they share (XML in and out, AWS-shaped errors), CreateHostedZone's
CallerReference rule, and change status (`RecordChanges`): every ChangeResourceRecordSets, CreateHostedZone
and DeleteHostedZone answer gets a change id of its own that GetChange knows (moto answers one fixed id,
always INSYNC). Under `SandboxOptions.strict` the change is PENDING, as AWS answers it, and GetChange says
INSYNC once `duration("route53_insync")` has passed (Route 53 API reference, GetChange: "PENDING indicates
that the changes in this request have not propagated to all Amazon Route 53 DNS servers"); an unknown id is
NoSuchChange (404).
"""

from __future__ import annotations

import io
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from multiregion.sandbox.app import Extension, SandboxRequest

if TYPE_CHECKING:
    from multiregion.sandbox.server import Sandbox

API = "/2013-04-01"
XMLNS = "https://route53.amazonaws.com/doc/2013-04-01/"
LOCATION = "https://route53.amazonaws.com" + API


class Route53Error(Exception):
    """An error Route 53 answers with: its code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def route53_extensions(sandbox: Sandbox) -> list[Extension]:
    """Every Route 53 extension, in the order they must see requests."""
    from multiregion.sandbox.route53_dns import DnsAnswers
    from multiregion.sandbox.route53_health import HealthChecks
    from multiregion.sandbox.route53_policies import TrafficPolicies

    return [RecordChanges(sandbox), HostedZoneReferences(sandbox), HealthChecks(sandbox), TrafficPolicies(sandbox),
            DnsAnswers(sandbox)]


@dataclass(frozen=True)
class ChangeRecord:
    id: str
    submitted_at: datetime
    insync_at: float  # sandbox clock


_CHANGE_ID_RE = re.compile(rb"<Id>/change/[^<]*</Id>")
_CHANGE_STATUS_RE = re.compile(rb"<Status>(PENDING|INSYNC)</Status>")
_CHANGE_SUBMITTED_RE = re.compile(rb"<SubmittedAt>[^<]*</SubmittedAt>")


class RecordChanges(Extension):
    """Change ids and their status (see the module docstring)."""

    def __init__(self, sandbox: Sandbox):
        super().__init__(sandbox)
        self.changes: dict[str, ChangeRecord] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.changes.clear()

    def handle(self, req: SandboxRequest) -> Response | None:
        return dispatch(req, [route("GET", "/change/([^/]+)", self._get)])

    def submitted(self, answer: Response) -> Response:
        """A successful answer carrying a ChangeInfo, with its change registered and its status set."""
        if answer.status_code >= 300:
            return answer
        body = answer.get_data()
        if not _CHANGE_ID_RE.search(body):
            return answer
        change_id = f"C{uuid.uuid4().hex[:13].upper()}"
        pending = self.sandbox.strict
        submitted = datetime.now(timezone.utc)
        with self._lock:
            self.changes[change_id] = ChangeRecord(change_id, submitted, self.sandbox.now() +
                                                   (self.sandbox.duration("route53_insync") if pending else 0.0))
        body = _CHANGE_ID_RE.sub(f"<Id>/change/{change_id}</Id>".encode(), body, count=1)
        body = _CHANGE_SUBMITTED_RE.sub(f"<SubmittedAt>{timestamp(submitted)}</SubmittedAt>".encode(), body, count=1)
        body = _CHANGE_STATUS_RE.sub(b"<Status>PENDING</Status>" if pending else b"<Status>INSYNC</Status>", body,
                                     count=1)
        answer.set_data(body)
        return answer

    def status(self, change_id: str) -> str | None:
        """PENDING or INSYNC for a change this sandbox answered, None for an unknown id."""
        with self._lock:
            change = self.changes.get(zone_id_of(change_id))
        if change is None:
            return None
        return "INSYNC" if self.sandbox.now() >= change.insync_at else "PENDING"

    def _get(self, req: SandboxRequest, change_id: str) -> Response:
        with self._lock:
            change = self.changes.get(zone_id_of(change_id))
        if change is None:
            if not self.sandbox.strict:
                return self.forward(req).response()  # moto: any id is INSYNC
            raise Route53Error("NoSuchChange", "A change with the specified change ID does not exist.", 404)
        return xml_response("GetChangeResponse", {"ChangeInfo": {
            "Id": f"/change/{change.id}", "Status": self.status(change.id), "SubmittedAt": change.submitted_at}})


class HostedZoneReferences(Extension):
    """`CreateHostedZone` with a CallerReference used before answers HostedZoneAlreadyExists, as on AWS
    (moto makes another zone of the same name each time, so a retried create would duplicate it)."""

    def __init__(self, sandbox: Sandbox):
        super().__init__(sandbox)
        self.references: set[str] = set()

    def reset(self) -> None:
        self.references.clear()

    def handle(self, req: SandboxRequest) -> Response | None:
        return dispatch(req, [route("POST", "/hostedzone", self._create),
                              route("DELETE", "/hostedzone/([^/]+)", self._delete)])

    def _create(self, req: SandboxRequest) -> Response:
        reference = text(parse_xml(req.body), "CallerReference", required=True) or ""
        with self.sandbox.lock:
            if reference in self.references:
                raise Route53Error("HostedZoneAlreadyExists", "The hosted zone you are trying to create already "
                                   f"exists. A hosted zone was already created with CallerReference {reference}.",
                                   409)
            answer = self.forward(req)
            if answer.status == 201:
                self.references.add(reference)
        return self.sandbox.extension(RecordChanges).submitted(answer.response())

    def _delete(self, req: SandboxRequest, zone_id: str) -> Response:
        return self.sandbox.extension(RecordChanges).submitted(self.forward(req).response())


def zone_id_of(value: str) -> str:
    """A hosted zone id as given (`Z123` or `/hostedzone/Z123`), bare."""
    return value.rsplit("/", 1)[-1]


def fqdn(name: str) -> str:
    """A DNS name as Route 53 stores it: lower case, with the trailing dot."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def is_route53(req: SandboxRequest) -> bool:
    return req.service == "route53" and req.path.startswith(API + "/")


# ---------------------------------------------------------------------------------------------- routing

Handler = Callable[..., Response | None]  # None: let the request through to moto
Route = tuple[str, "re.Pattern[str]", Handler]


def route(method: str, pattern: str, handler: Handler) -> Route:
    return method, re.compile("^" + API + pattern + "$"), handler


def dispatch(req: SandboxRequest, routes: Iterable[Route]) -> Response | None:
    """Answer a Route 53 request with the first matching route, or None to let it through."""
    if not is_route53(req):
        return None
    for method, pattern, handler in routes:
        match = pattern.match(req.path)
        if match and req.method == method:
            try:
                return handler(req, *match.groups())
            except Route53Error as err:
                return xml_error(err.code, err.message, err.status)
    return None


# ---------------------------------------------------------------------------------------------- XML in


def parse_xml(body: bytes) -> ET.Element:
    """A request body with namespaces dropped, so elements are found by their plain names."""
    try:
        root = ET.fromstring(body or b"<empty/>")
    except ET.ParseError as exc:
        raise Route53Error("InvalidInput", f"The XML document is not well formed: {exc}") from None
    return strip_namespaces(root)


def text(root: ET.Element, name: str, required: bool = False, strip: bool = True) -> str | None:
    el = root.find(name)
    value = None if el is None or el.text is None else el.text.strip() if strip else el.text
    if required and not (value or "").strip():
        raise Route53Error("InvalidInput", f"1 validation error detected: Value null at '{name}' failed to "
                                           "satisfy constraint: Member must not be null")
    return value


def integer(root: ET.Element, name: str, low: int, high: int) -> int:
    raw = text(root, name, required=True) or ""
    try:
        value = int(raw)
    except ValueError:
        raise Route53Error("InvalidInput", f"Invalid value for {name}: {raw!r} is not a number") from None
    if not low <= value <= high:
        raise Route53Error("InvalidInput", f"1 validation error detected: Value '{value}' at '{name}' failed to "
                                           f"satisfy constraint: Member must have value between {low} and {high}")
    return value


# ---------------------------------------------------------------------------------------------- XML out


class Members(list[Any]):
    """A list rendered as repeated child elements named `member` (AWS's list wrapping)."""

    def __init__(self, member: str, items: Iterable[Any]):
        super().__init__(items)
        self.member = member


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timestamp(value)
    return str(value)


def build(parent: ET.Element, tag: str, value: Any) -> None:
    """Append `value` under `parent` as `<tag>`: dicts become children in order, None is left out."""
    if value is None:
        return
    if isinstance(value, ET.Element):
        value.tag = tag
        parent.append(value)
        return
    el = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, child in value.items():
            build(el, key, child)
    elif isinstance(value, Members):
        for item in value:
            build(el, value.member, item)
    else:
        el.text = _text_of(value)


def xml_document(root: str, content: dict[str, Any]) -> bytes:
    el = ET.Element(root, xmlns=XMLNS)
    for key, value in content.items():
        build(el, key, value)
    body: bytes = ET.tostring(el, encoding="utf-8")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def xml_response(root: str, content: dict[str, Any], status: int = 200,
                 headers: dict[str, str] | None = None) -> Response:
    all_headers = {"x-amzn-RequestId": request_id(), **(headers or {})}
    return Response(xml_document(root, content), status=status, content_type="text/xml", headers=all_headers)


def xml_error(code: str, message: str, status: int = 400) -> Response:
    rid = request_id()
    body = xml_document("ErrorResponse", {"Error": {"Type": "Sender", "Code": code, "Message": message},
                                          "RequestId": rid})
    return Response(body, status=status, content_type="text/xml", headers={"x-amzn-RequestId": rid})


def request_id() -> str:
    return str(uuid.uuid4())


def timestamp(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def strip_namespaces(el: ET.Element) -> ET.Element:
    for child in el.iter():
        child.tag = child.tag.rsplit("}", 1)[-1]
    return el


def moto_get(ext: Extension, req: SandboxRequest, path: str) -> ET.Element:
    """moto's answer to a GET of `path`, signed as `req` was: to reuse moto's rendering of its own models."""
    environ = dict(req.raw.environ)
    environ.pop("werkzeug.request", None)  # werkzeug caches the parsed request in the environ
    environ.pop("CONTENT_TYPE", None)
    environ.update(REQUEST_METHOD="GET", PATH_INFO=path, RAW_URI=path, REQUEST_URI=path, QUERY_STRING="",
                   CONTENT_LENGTH="0")
    answer = ext.forward(SandboxRequest.from_environ(environ))
    if answer.status != 200:
        raise Route53Error("InternalFailure", f"reading {path} back from moto failed ({answer.status})", 500)
    return strip_namespaces(ET.fromstring(answer.body))


def with_body(req: SandboxRequest, body: bytes) -> SandboxRequest:
    """The same request with another body, to forward an edited request to moto."""
    environ = dict(req.raw.environ)
    environ.pop("werkzeug.request", None)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    return SandboxRequest.from_environ(environ)
