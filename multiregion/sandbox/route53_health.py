"""Route 53 health checks that really probe, and CreateHealthCheck's idempotency as on AWS.

moto stores health checks but never probes them (`GetHealthCheckStatus` is canned). Here a prober thread
probes every HTTP, HTTPS, HTTP_STR_MATCH, HTTPS_STR_MATCH and TCP check, as Route 53 does (Route 53 Developer
Guide, "How Amazon Route 53 determines whether a health check is healthy", and the API reference):

* From the check's `Regions`, or when it has none from every checker region: "If you don't specify any
  regions, Route 53 health checkers automatically performs checks from all of the regions that are listed
  under Valid Values" (HealthCheckConfig.Regions; the eight of CHECKER_REGIONS).
* CHECKERS_PER_REGION checkers in each checker region, each with its own address. AWS documents no count;
  two follows from what it does document: each checker region has two ROUTE53_HEALTHCHECKS ranges in AWS's
  ip-ranges.json (CHECKER_IPS takes one address in each), and "If you choose an interval of 30 seconds ...
  On average, your endpoint will receive a health check request about every two seconds" (Developer Guide,
  "Values that you specify when you create or update health checks"), about 15 checkers for 8 regions.
* Each checker on its own schedule, staggered within the interval ("Route 53 health checkers in different
  data centers don't coordinate with one another"): the next probe starts `RequestInterval / time_scale`
  seconds after the previous answer ("The number of seconds between the time that each Route 53 health
  checker gets a response from your endpoint and the time that it sends the next health check request").
  A new check's checkers start after `duration("health_check_first_verdict")`. The probe limits are NOT
  scaled: the TCP connection must open within 4 s and a 2xx/3xx status must arrive within 2 s of
  connecting (the STR_MATCH search string within the first 5,120 bytes of the body, read within the same
  2 s), because those are what a slow API fails on AWS.
* Each checker keeps its own status: it turns unhealthy after `FailureThreshold` consecutive failures and
  healthy again after as many consecutive successes ("The number of consecutive health checks that an
  endpoint must pass or fail for Route 53 to change the current status of the endpoint from unhealthy to
  healthy or vice versa"). The endpoint is healthy when MORE than 18% of its checkers report healthy
  (`endpoint_healthy`): that thresholded verdict is what routing (TestDNSAnswer, the global name) uses.
* `GetHealthCheckStatus` lists one observation per checker that has probed: its address, region, and its
  last result as a status text with the time of that probe ("Success: HTTP Status Code 200, OK",
  "Failure: ..."). AWS describes the StatusReport as "the status of the health check endpoint as reported
  by one of the Amazon Route 53 health checkers" and CheckedTime as "The date and time that the health
  checker performed the health check": a probe's own result, not the checker's thresholded view.
* `Inverted` inverts. A `Disabled` check is healthy without probing (and, as AWS suggests to stop traffic
  to a disabled check, `Inverted` still inverts that). A CALCULATED check is healthy when at least
  `HealthThreshold` of its children are. Other types (CLOUDWATCH_METRIC, RECOVERY_CONTROL) stay healthy.
* A new check starts healthy, and so do its checkers (AWS reports a new check healthy until enough
  observations say otherwise); `health(id)` also gives the time of the last status change.

Where a probe goes: a check with a loopback `IPAddress` is probed at that address and `Port` (a test
server). Every other check is served by the sandbox itself: the prober connects to the sandbox's own
127.0.0.1 port and sends `FullyQualifiedDomainName` (or the IP address) as the Host header, so the API
data plane answers for `{apiId}.execute-api.{region}.amazonaws.com` exactly as it does for clients. There
is no TLS locally: HTTPS checks are probed over plain HTTP, and no traffic ever leaves 127.0.0.1.

The fault `health_check_frozen` (a list of health check ids, or "*") stops probing those checks, so their
status stays as it was. Probes never run while `sandbox.lock` is held.
"""

from __future__ import annotations

import http.client
import ipaddress
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import BackgroundLoop, Extension, SandboxRequest
from multiregion.sandbox.route53 import (
    LOCATION,
    Members,
    Route53Error,
    dispatch,
    moto_get,
    parse_xml,
    route,
    text,
    xml_response,
)

CHECKER_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-southeast-2",
                   "ap-northeast-1", "sa-east-1")
DEFAULT_CHECKERS = CHECKER_REGIONS
CHECKERS_PER_REGION = 2
# One address inside each of the region's two published ROUTE53_HEALTHCHECKS ranges: one per checker.
CHECKER_IPS = {
    "us-east-1": ("107.23.255.11", "54.243.31.203"), "us-west-1": ("54.183.255.139", "54.241.32.75"),
    "us-west-2": ("54.244.52.203", "54.245.168.11"), "eu-west-1": ("54.228.16.11", "176.34.159.203"),
    "ap-southeast-1": ("54.251.31.139", "54.255.254.203"), "ap-southeast-2": ("54.252.79.139", "54.252.254.203"),
    "ap-northeast-1": ("54.248.220.11", "54.250.253.203"), "sa-east-1": ("177.71.207.139", "54.232.40.75"),
}
PROBED_TYPES = frozenset({"HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP"})
CONNECT_TIMEOUT = 4.0
RESPONSE_TIMEOUT = 2.0
SEARCH_BYTES = 5120
HEALTHY_SHARE = 0.18
TICK = 0.05
USER_AGENT = "Amazon-Route53-Health-Check-Service (ref {id}; report http://amzn.to/1vsZADi)"
TIMED_OUT = ("Failure: Connection timed out. The endpoint or the internet connection is down, or requests are "
             "being blocked by your firewall.")
REFUSED = ("Failure: Connection refused. The endpoint or the internet connection is down, or requests are being "
           "blocked by your firewall.")


def endpoint_healthy(checkers: Sequence[bool]) -> bool:
    """Route 53's rule: an endpoint is healthy when more than 18% of its checkers report it healthy."""
    return not checkers or sum(checkers) > HEALTHY_SHARE * len(checkers)


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class CheckSpec:
    """What the prober needs of one of moto's health checks, copied while holding sandbox.lock."""

    id: str
    type: str
    ip: str | None = None
    port: int = 80
    fqdn: str | None = None
    path: str = "/"
    search: str | None = None
    interval: int = 30
    threshold: int = 3
    inverted: bool = False
    disabled: bool = False
    regions: tuple[str, ...] = DEFAULT_CHECKERS
    children: tuple[str, ...] = ()
    health_threshold: int = 0

    @classmethod
    def of(cls, hc: moto_compat.HealthCheck) -> CheckSpec:
        return cls(id=hc.id, type=hc.type_ or "", ip=hc.ip_address, port=int(hc.port or 80), fqdn=hc.fqdn,
                   path=hc.resource_path or "/", search=hc.search_string, interval=int(hc.request_interval or 30),
                   threshold=int(hc.failure_threshold or 3), inverted=_flag(hc.inverted),
                   disabled=_flag(hc.disabled), regions=tuple(hc.regions or DEFAULT_CHECKERS),
                   children=tuple(hc.children or ()), health_threshold=int(hc.health_threshold or 0))


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


@dataclass(frozen=True)
class Observation:
    ok: bool
    status: str
    checked: datetime


@dataclass
class Checker:
    """One simulated Route 53 health checker: its own address, schedule, streak and status."""

    region: str
    next_due: float
    ip: str = "0.0.0.0"
    healthy: bool = True
    streak: int = 0  # consecutive observations that disagree with the current status
    in_flight: bool = False
    last: Observation | None = None

    def record(self, ok: bool, threshold: int) -> None:
        if ok == self.healthy:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= threshold:
            self.healthy, self.streak = ok, 0


@dataclass
class CheckState:
    spec: CheckSpec
    checkers: dict[str, Checker]
    healthy: bool = True
    since: float = field(default_factory=time.time)


def checker_ips(region: str) -> tuple[str, ...]:
    return CHECKER_IPS.get(region, ("0.0.0.0",) * CHECKERS_PER_REGION)[:CHECKERS_PER_REGION]


def new_checkers(spec: CheckSpec, start: float, keep: dict[str, Checker] | None = None) -> dict[str, Checker]:
    """Checkers for the spec's regions, keyed by address, each starting at its own offset within the interval
    from `start`; the checkers of regions in `keep` stay as they are."""
    keep = keep or {}
    slots = [(region, ip) for region in spec.regions for ip in checker_ips(region)]
    out: dict[str, Checker] = {}
    for i, (region, ip) in enumerate(slots):
        out[ip] = keep.get(ip) or Checker(region, start + i / len(slots) * spec.interval, ip=ip)
    return out


# ---------------------------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    host_header: str


def probe_target(spec: CheckSpec, sandbox_host: str, sandbox_port: int) -> Target:
    """Where a probe connects, and the Host header it sends (see the module docstring)."""
    default_port = 443 if spec.type.startswith("HTTPS") else 80
    name = spec.fqdn or spec.ip or ""
    header = name if spec.port == default_port else f"{name}:{spec.port}"
    if spec.ip and _loopback(spec.ip):
        return Target(spec.ip, spec.port, header)
    return Target(sandbox_host, sandbox_port, header)


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def probe(spec: CheckSpec, target: Target) -> Observation:
    """One health checker request, judged as Route 53 judges it."""
    conn = http.client.HTTPConnection(target.host, target.port, timeout=CONNECT_TIMEOUT)
    try:
        try:
            conn.connect()
        except TimeoutError:
            return _observed(False, TIMED_OUT)
        except OSError:
            return _observed(False, REFUSED)
        if spec.type == "TCP":
            return _observed(True, "Success: TCP connection established.")
        return _http_probe(spec, target, conn, time.monotonic())
    finally:
        conn.close()


def _http_probe(spec: CheckSpec, target: Target, conn: http.client.HTTPConnection, connected: float) -> Observation:
    deadline = connected + RESPONSE_TIMEOUT
    try:
        assert conn.sock is not None
        conn.sock.settimeout(RESPONSE_TIMEOUT)
        conn.putrequest("GET", spec.path or "/", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        conn.putheader("User-Agent", USER_AGENT.format(id=spec.id))
        conn.endheaders()
        resp = conn.getresponse()
        if time.monotonic() > deadline:
            return _observed(False, TIMED_OUT)
        status = f"HTTP Status Code {resp.status}, {_phrase(resp.status, resp.reason)}"
        if not 200 <= resp.status < 400:
            return _observed(False, f"Failure: {status}")
        if spec.search is not None and spec.type.endswith("STR_MATCH"):
            body = resp.read(SEARCH_BYTES)  # the socket keeps its 2 s timeout per read
            if time.monotonic() > deadline:
                return _observed(False, TIMED_OUT)
            if spec.search.encode() not in body:
                return _observed(False, f"Failure: {status}. The search string \"{spec.search}\" was not found "
                                        f"in the first {SEARCH_BYTES} bytes of the response body.")
        return _observed(True, f"Success: {status}")
    except TimeoutError:
        return _observed(False, TIMED_OUT)
    except (OSError, http.client.HTTPException) as exc:
        return _observed(False, f"Failure: The endpoint did not send a valid HTTP response ({type(exc).__name__}).")


def _phrase(code: int, reason: str) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return reason or "Unknown"


def _observed(ok: bool, status: str) -> Observation:
    return Observation(ok, status, datetime.now(timezone.utc))


# ---------------------------------------------------------------------------------------------- extension


@dataclass
class Reference:
    """A CallerReference Route 53 has seen: the check it created and the settings it was created with."""

    health_check_id: str
    settings: dict[str, Any]
    deleted: bool = False


class HealthChecks(Extension):
    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.states: dict[str, CheckState] = {}
        self.references: dict[str, Reference] = {}  # guarded by sandbox.lock, as moto's backend
        self._lock = threading.Lock()  # guards states; never held while taking sandbox.lock
        self._loop = BackgroundLoop("sandbox-prober", self.tick, lambda: TICK)
        self._pool: ThreadPoolExecutor | None = None
        self.routes = [
            route("POST", "/healthcheck", self._create),
            route("GET", "/healthcheck", self._list),
            route("POST", "/healthcheck/([^/]+)", self._update),
            route("DELETE", "/healthcheck/([^/]+)", self._delete),
            route("GET", "/healthcheck/([^/]+)/status", self._status),
        ]

    # ------------------------------------------------------------------ Python API

    def health(self, check_id: str) -> tuple[bool, float]:
        """Whether the check is healthy now, and since when (epoch seconds). KeyError for unknown ids."""
        with self._lock:
            state = self.states[check_id]
            return state.healthy, state.since

    def observations(self, check_id: str) -> list[dict[str, Any]]:
        """The latest observation of every checker that has probed, as GetHealthCheckStatus lists them."""
        with self._lock:
            state = self.states.get(check_id)
            checkers = list(state.checkers.values()) if state else []
        return [{"IPAddress": c.ip, "Region": c.region,
                 "StatusReport": {"Status": c.last.status, "CheckedTime": c.last.checked}}
                for c in checkers if c.last is not None]

    # ------------------------------------------------------------------ requests

    def handle(self, req: SandboxRequest) -> Response | None:
        return dispatch(req, self.routes)

    def _create(self, req: SandboxRequest) -> Response:
        root = parse_xml(req.body)
        reference = text(root, "CallerReference", required=True) or ""
        config = root.find("HealthCheckConfig")
        if config is None:
            raise Route53Error("InvalidInput", "HealthCheckConfig is required")
        settings = normalized_settings(config)
        validate_settings(settings)
        with self.sandbox.lock:
            known = self.references.get(reference)
            if known is not None:
                if known.deleted or moto_compat.health_check(known.health_check_id) is None:
                    raise Route53Error("HealthCheckAlreadyExists", f"The caller reference {reference!r} belonged to "
                                       "a health check that was deleted; a caller reference cannot be reused.", 409)
                if known.settings != settings:
                    raise Route53Error("HealthCheckAlreadyExists", f"A health check with the caller reference "
                                       f"{reference!r} already exists with other settings.", 409)
                return self._created(req, known.health_check_id)
            answer = self.forward(req)
            if answer.status != 201:
                return answer.response()
            check_id = parse_xml(answer.body).findtext("HealthCheck/Id") or ""
            hc = moto_compat.health_check(check_id)
            assert hc is not None, "moto answered 201 for a check it does not hold"
            if config.find("Port") is None and "Port" in settings:
                moto_compat.set_health_check_port(hc, int(settings["Port"]))  # AWS's default for the type
            self.references[reference] = Reference(check_id, settings)
            spec = CheckSpec.of(hc)
        self._track(spec)
        return self._created(req, check_id)

    def _created(self, req: SandboxRequest, check_id: str) -> Response:
        check = moto_get(self, req, f"/2013-04-01/healthcheck/{check_id}").find("HealthCheck")
        return xml_response("CreateHealthCheckResponse", {"HealthCheck": check}, status=201,
                            headers={"Location": f"{LOCATION}/healthcheck/{check_id}"})

    def _list(self, req: SandboxRequest) -> Response:
        answer = self.forward(req)
        if answer.status != 200:
            return answer.response()
        checks = parse_xml(answer.body).findall("HealthChecks/HealthCheck")
        try:
            max_items = int(req.raw.args.get("maxitems") or 100)
        except ValueError:
            raise Route53Error("InvalidInput", "maxitems must be a number") from None
        marker = req.raw.args.get("marker")
        ids = [c.findtext("Id") or "" for c in checks]
        with self.sandbox.lock:
            start = self._page_start(ids, marker)
        page = checks[start:start + max_items]
        truncated = start + max_items < len(checks)
        return xml_response("ListHealthChecksResponse", {
            "HealthChecks": Members("HealthCheck", page), "Marker": marker or "", "IsTruncated": truncated,
            "NextMarker": ids[start + max_items] if truncated else None, "MaxItems": max_items})

    def _page_start(self, ids: list[str], marker: str | None) -> int:
        """Where a page starting at `marker` starts. A check deleted between two pages keeps its place in the
        order of creation; a marker that never was a check is refused (not checked against AWS), since reading
        it as "from the start" hands a paging client the first page again. Holds sandbox.lock."""
        if not marker:
            return 0
        if marker in ids:
            return ids.index(marker)
        created = [ref.health_check_id for ref in self.references.values()]
        if marker not in created:
            raise Route53Error("InvalidInput", f"marker {marker!r} is not the id of a health check")
        later = set(created[created.index(marker) + 1:])
        return next((i for i, check_id in enumerate(ids) if check_id in later), len(ids))

    def _update(self, req: SandboxRequest, check_id: str) -> Response:
        """moto's update, with what it misses: settings left out of the request stay as they were (moto
        clears Regions and ChildHealthChecks), ResetElements, HealthCheckVersion checked and incremented."""
        root = parse_xml(req.body)
        with self.sandbox.lock:
            hc = moto_compat.health_check(check_id)
            if hc is None:
                raise Route53Error("NoSuchHealthCheck", f"A health check with id {check_id} does not exist.", 404)
            version = text(root, "HealthCheckVersion")
            if version is not None and version != str(hc.health_check_version):
                raise Route53Error("HealthCheckVersionMismatch", f"The value of HealthCheckVersion in the request "
                                   f"({version}) doesn't match the health check's ({hc.health_check_version}).", 409)
            regions, children = hc.regions, hc.children
            answer = self.forward(req)
            if answer.status != 200:
                return answer.response()
            moto_compat.keep_health_check_lists(hc, regions if root.find("Regions") is None else hc.regions,
                                                children if root.find("ChildHealthChecks") is None else hc.children)
            resets = {(el.text or "").strip() for el in root.findall("ResetElements/ResettableElementName")}
            for element in RESETTABLE:
                if element in resets:
                    moto_compat.reset_health_check_element(hc, element)
            moto_compat.bump_health_check_version(hc)
            spec = CheckSpec.of(hc)
        self._track(spec)
        check = moto_get(self, req, f"/2013-04-01/healthcheck/{check_id}").find("HealthCheck")
        return xml_response("UpdateHealthCheckResponse", {"HealthCheck": check})

    def _delete(self, req: SandboxRequest, check_id: str) -> Response:
        with self.sandbox.lock:
            if moto_compat.health_check(check_id) is None:
                raise Route53Error("NoSuchHealthCheck", f"A health check with id {check_id} does not exist.", 404)
            answer = self.forward(req)
            if answer.status == 200:
                for ref in self.references.values():
                    if ref.health_check_id == check_id:
                        ref.deleted = True
        if answer.status != 200:
            return answer.response()
        with self._lock:
            self.states.pop(check_id, None)
        # moto answers with an empty body; Route 53 sends the (empty) response element.
        return xml_response("DeleteHealthCheckResponse", {})

    def _status(self, req: SandboxRequest, check_id: str) -> Response:
        with self.sandbox.lock:
            hc = moto_compat.health_check(check_id)
            spec = CheckSpec.of(hc) if hc is not None else None
        if spec is None:
            return self.forward(req).response()  # moto's NoSuchHealthCheck
        self._track(spec)
        return xml_response("GetHealthCheckStatusResponse", {
            "HealthCheckObservations": Members("HealthCheckObservation", self.observations(check_id))})

    # ------------------------------------------------------------------ prober

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sandbox-probe")
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def reset(self) -> None:
        self.references.clear()
        with self._lock:
            self.states.clear()

    def tick(self) -> int:
        """Follow moto's checks, start every due probe and re-evaluate. Returns the probes started."""
        with self.sandbox.lock:
            specs = {hc.id: CheckSpec.of(hc) for hc in moto_compat.health_checks()}
        now = time.monotonic()
        jobs: list[tuple[CheckSpec, str]] = []  # (check, checker address)
        with self._lock:
            for check_id in set(self.states) - set(specs):
                del self.states[check_id]
            for spec in specs.values():
                state = self._follow(spec, now)
                if self._frozen(spec.id) or spec.disabled or spec.type not in PROBED_TYPES:
                    continue
                for checker in state.checkers.values():
                    if not checker.in_flight and now >= checker.next_due:
                        checker.in_flight = True
                        jobs.append((state.spec, checker.ip))
            for state in self.states.values():
                self._evaluate(state)
        for spec, ip in jobs:
            if self._pool is not None and not self._loop.stopping.is_set():
                self._pool.submit(self._probe_job, spec, ip)
        return len(jobs)

    def _track(self, spec: CheckSpec) -> None:
        with self._lock:
            self._follow(spec, time.monotonic())

    def _follow(self, spec: CheckSpec, now: float) -> CheckState:
        """The state of a check, created or brought up to date with moto's settings. Holds self._lock."""
        state = self.states.get(spec.id)
        if state is None:
            start = now + self.sandbox.duration("health_check_first_verdict")
            state = self.states[spec.id] = CheckState(spec, new_checkers(self._scaled(spec), start))
        elif state.spec != spec:
            if state.spec.regions != spec.regions:
                state.checkers = new_checkers(self._scaled(spec), now, keep=state.checkers)
            state.spec = spec
        return state

    def _scaled(self, spec: CheckSpec) -> CheckSpec:
        return replace(spec, interval=self.sandbox.scaled(spec.interval))  # type: ignore[arg-type]

    def _frozen(self, check_id: str) -> bool:
        frozen = self.sandbox.fault("health_check_frozen")
        return frozen == "*" or "*" in frozen or check_id in frozen

    def _probe_job(self, spec: CheckSpec, ip: str) -> None:
        try:
            observation = probe(spec, probe_target(spec, self.sandbox.host, self.sandbox.port))
        except Exception as exc:  # a prober bug must not leave the checker in flight forever
            observation = _observed(False, f"Failure: the sandbox's prober failed: {type(exc).__name__}: {exc}")
        with self._lock:
            state = self.states.get(spec.id)
            checker = state.checkers.get(ip) if state else None
            if state is None or checker is None:
                return
            checker.in_flight = False
            checker.next_due = time.monotonic() + self.sandbox.scaled(state.spec.interval)
            if self._frozen(spec.id):
                return  # frozen while the probe ran: the check stays as it was
            checker.last = observation
            checker.record(observation.ok, state.spec.threshold)
            self._evaluate(state)

    def _evaluate(self, state: CheckState) -> None:
        """Recompute the endpoint status from the checkers (or children). Holds self._lock."""
        spec = state.spec
        if spec.disabled or spec.type not in PROBED_TYPES | {"CALCULATED"}:
            raw = True
        elif spec.type == "CALCULATED":
            healthy_children = sum(1 for c in spec.children if c in self.states and self.states[c].healthy)
            raw = healthy_children >= spec.health_threshold
        else:
            raw = endpoint_healthy([c.healthy for c in state.checkers.values()])
        healthy = raw != spec.inverted
        if healthy != state.healthy:
            state.healthy, state.since = healthy, time.time()


# ---------------------------------------------------------------------------------------------- settings

# UpdateHealthCheck's ResetElements, and the attribute of moto's model each one clears.
RESETTABLE = tuple(moto_compat.RESETTABLE_HEALTH_CHECK_ELEMENTS)
_DEFAULTS = {"RequestInterval": "30", "FailureThreshold": "3", "Inverted": "false", "Disabled": "false",
             "MeasureLatency": "false"}
_LISTS = {"Regions": "Region", "ChildHealthChecks": "ChildHealthCheck"}


def normalized_settings(config: Any) -> dict[str, Any]:
    """A HealthCheckConfig as comparable settings: AWS's defaults filled in, lists in a fixed order."""
    given: dict[str, Any] = {}
    for el in config:
        if el.tag in _LISTS:
            given[el.tag] = sorted((c.text or "").strip() for c in el)
        elif len(el):
            given[el.tag] = {c.tag: (c.text or "").strip() for c in el}
        else:
            given[el.tag] = (el.text or "").strip()
    settings = {**_DEFAULTS, **given}
    kind = settings.get("Type", "")
    if "Port" not in given and kind in PROBED_TYPES - {"TCP"}:
        settings["Port"] = "443" if kind.startswith("HTTPS") else "80"
    for key in ("Inverted", "Disabled", "MeasureLatency", "EnableSNI"):
        if key in settings:
            settings[key] = str(settings[key]).lower()
    return settings


def validate_settings(settings: dict[str, Any]) -> None:
    """The checks AWS makes that moto does not, for the settings the tool uses."""
    kind = settings.get("Type")
    if not kind:
        raise Route53Error("InvalidInput", "HealthCheckConfig.Type is required")
    if settings["RequestInterval"] not in ("10", "30") and kind in PROBED_TYPES:
        raise Route53Error("InvalidInput", f"Invalid parameter: RequestInterval must be 10 or 30, not "
                                           f"{settings['RequestInterval']}")
    if not settings["FailureThreshold"].isdigit() or not 1 <= int(settings["FailureThreshold"]) <= 10:
        raise Route53Error("InvalidInput", f"Invalid parameter: FailureThreshold must be between 1 and 10, not "
                                           f"{settings['FailureThreshold']}")
    regions = settings.get("Regions")
    if regions is not None:
        unknown = sorted(set(regions) - set(CHECKER_REGIONS))
        if unknown:
            raise Route53Error("InvalidInput", f"Invalid parameter: unknown health checker regions {unknown}")
        if len(set(regions)) < 3:
            raise Route53Error("InvalidInput", "Invalid parameter: Regions must list at least 3 health checker "
                                               "regions")
    if kind in PROBED_TYPES and not settings.get("IPAddress") and not settings.get("FullyQualifiedDomainName"):
        raise Route53Error("InvalidInput", "Invalid parameter: specify IPAddress, FullyQualifiedDomainName or both")
    if kind.endswith("STR_MATCH") and not settings.get("SearchString"):
        raise Route53Error("InvalidInput", f"Invalid parameter: a {kind} health check needs a SearchString")
