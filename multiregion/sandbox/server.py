"""The sandbox server: moto in-process behind our WSGI layer, one endpoint for every service and region.

Sandbox's own endpoints live under `/_sandbox/`:
  GET  /_sandbox/health   who answers here (used to find a running sandbox)
  POST /_sandbox/reset    forget every resource (moto's reset plus the extensions' state)
  GET  /_sandbox/faults   the faults in force; POST merges a JSON object into them (see FAULTS)
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import Extension, SandboxApp, SandboxRequest, json_response

E = TypeVar("E", bound=Extension)

# Faults that tests and rehearsals can switch on through /_sandbox/faults, with their neutral values.
FAULTS: dict[str, Any] = {
    # regions whose replicas receive no replicated writes (their own writes still replicate out)
    "replication_paused": [],
    # certificate ARNs (or "*") that fail validation instead of being issued
    "acm_fail": [],
    # health check ids whose probes are ignored, so the check stays as it was
    "health_check_frozen": [],
}


ALIAS_ANSWERS = ("names", "addresses")


@dataclass
class SandboxOptions:
    # Route 53 intervals and similar waits are divided by this: 10 makes a 30 s interval 3 s.
    time_scale: float = 10.0
    # Seconds before a new replica becomes ACTIVE, and between replication passes.
    replica_create_delay: float = 0.5
    replication_interval: float = 0.05
    # Seconds after the validation record exists before ACM issues a certificate.
    acm_validation_delay: float = 1.0
    # Durations of AWS's asynchronous work: "fast" (fixed short delays) or "aws" (see timing.py).
    timing: str = "fast"
    # AWS's refusals and pending states that stages must cope with (updates in progress, throttles,
    # propagation delays); see the realism tests. Durations come from `timing` either way.
    # What it turns on: STRICT_BEHAVIOURS below.
    strict: bool = True
    # What TestDNSAnswer gives for an alias A/AAAA record to an AWS endpoint: "addresses" (as Route 53 does:
    # addresses, which the sandbox derives from the target name and serves through X-Multiregion-Connect-To;
    # see sandbox/addresses.py) or "names" (the alias target's DNS name, easier to read by hand).
    alias_answers: str = "addresses"

    def __post_init__(self) -> None:
        if self.alias_answers not in ALIAS_ANSWERS:
            raise ValueError(f"alias_answers must be one of {', '.join(ALIAS_ANSWERS)}, not {self.alias_answers!r}")


# What `SandboxOptions.strict` turns on; everything else the sandbox does is always on.
STRICT_BEHAVIOURS = (
    "DynamoDB: a new table is CREATING for duration('table_active'); UpdateTable and DeleteTable are refused "
    "(ResourceInUseException) while the table is CREATING or UPDATING, not only a second ReplicaUpdates",
    "DynamoDB: a deleted replica is DELETING for duration('replica_deleted') (table UPDATING) before it goes",
    "DynamoDB: deleting a replica or a replica's table while its writes are not replicated everywhere is "
    "refused with AWS's 'The last active replica ... cannot be deleted until all writes are replicated'",
    "Route 53: ChangeResourceRecordSets and CreateHostedZone answer PENDING; GetChange says INSYNC after "
    "duration('route53_insync'); an unknown change id is NoSuchChange",
    "API Gateway: control-plane throttling at the documented per-account rates (TooManyRequestsException)",
    "Lambda: a Pending function, or one whose update is InProgress, refuses updates, PublishVersion and (Pending) "
    "Invoke with ResourceConflictException; a role is not assumable by Lambda for duration('iam_role_assumable') "
    "after CreateRole (see lambda_states.py)",
)


@dataclass
class Sandbox:
    options: SandboxOptions = field(default_factory=SandboxOptions)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")
        from multiregion.sandbox import timing

        if self.options.timing not in timing.PROFILES:
            raise ValueError(f"unknown timing profile {self.options.timing!r}; known: {', '.join(timing.PROFILES)}")
        # The clock of AWS's asynchronous states (pending, throttles); a test may drive it.
        self.clock: Callable[[], float] = time.monotonic
        self.lock = threading.RLock()
        self.faults: dict[str, Any] = json.loads(json.dumps(FAULTS))
        self.faults_lock = threading.Lock()
        self.app = SandboxApp(self)
        self.app.extensions = [ControlEndpoints(self), *load_extensions(self)]
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> None:
        # One line per request would drown the log; errors still reach it.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(self.host, self.port, self.app, threaded=True)
        self.port = self._server.server_port

    def start(self) -> Sandbox:
        """Serve in a background thread (tests, benchmarks)."""
        if self._server is None:
            self.bind()
        self._start_extensions()
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        if self._server is None:
            self.bind()
        self._start_extensions()
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def _start_extensions(self) -> None:
        for ext in self.app.extensions:
            ext.start()

    def stop(self) -> None:
        # First no more requests, then the background work they could have started.
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread = None
        for ext in self.app.extensions:
            ext.stop()

    def reset(self) -> None:
        with self.lock:
            moto_compat.reset()
            for ext in self.app.extensions:
                if not ext.reset_outside_lock:
                    ext.reset()
            with self.faults_lock:
                self.faults = json.loads(json.dumps(FAULTS))
        for ext in self.app.extensions:
            if ext.reset_outside_lock:
                ext.reset()

    def extension(self, cls: type[E]) -> E:
        """The running instance of an extension class, for extensions that build on another."""
        for ext in self.app.extensions:
            if isinstance(ext, cls):
                return ext
        raise LookupError(f"no {cls.__name__} extension in this sandbox")

    def fault(self, name: str) -> Any:
        with self.faults_lock:
            return self.faults[name]

    def now(self) -> float:
        """Monotonic seconds on the sandbox's clock (see `clock`)."""
        return self.clock()

    @property
    def strict(self) -> bool:
        return self.options.strict

    def scaled(self, seconds: float) -> float:
        """An AWS duration in sandbox time."""
        return seconds / self.options.time_scale

    def duration(self, name: str) -> float:
        """How long AWS's asynchronous step `name` (see timing.DURATIONS) takes here, in sandbox seconds.

        In the fast profile, the options that name a delay themselves win (tests shorten them)."""
        from multiregion.sandbox import timing

        if self.options.timing == "fast":
            explicit = {"replica_active": self.options.replica_create_delay,
                        "acm_validation": self.options.acm_validation_delay}
            if name in explicit:
                return explicit[name]
        return timing.sandbox_seconds(name, self.options.timing, self.options.time_scale)


def load_extensions(sandbox: Sandbox) -> list[Extension]:
    from multiregion.sandbox.acm import CertificateValidation
    from multiregion.sandbox.apigateway import ApiDataPlane
    from multiregion.sandbox.apigateway_domains import RegionalDomains
    from multiregion.sandbox.apigateway_throttle import ControlPlaneThrottle
    from multiregion.sandbox.dynamodb import GlobalTables
    from multiregion.sandbox.lambda_runtime import LambdaRuntime
    from multiregion.sandbox.lambda_states import FunctionStates
    from multiregion.sandbox.route53 import route53_extensions

    # The throttle sees API Gateway's control plane before anything answers it, as AWS throttles first.
    return [GlobalTables(sandbox), CertificateValidation(sandbox), ControlPlaneThrottle(sandbox),
            RegionalDomains(sandbox), FunctionStates(sandbox), LambdaRuntime(sandbox), ApiDataPlane(sandbox),
            *route53_extensions(sandbox)]


class ControlEndpoints(Extension):
    def handle(self, req: SandboxRequest) -> Response | None:
        if req.path.rstrip("/") == "/moto-api/reset" and req.method == "POST":
            # moto's reset alone would leave our state (replicas, references, workers) behind.
            self.sandbox.reset()
            return json_response({"status": "ok"}, content_type="application/json")
        if not req.path.startswith("/_sandbox/"):
            return None
        name = req.path[len("/_sandbox/"):].rstrip("/")
        sb = self.sandbox
        if name == "health":
            return json_response({"sandbox": "multiregion", "pid": os.getpid(), "port": sb.port,
                                  "time_scale": sb.options.time_scale, "timing": sb.options.timing,
                                  "strict": sb.options.strict,
                                  "uptime": round(time.time() - sb.started_at, 1)},
                                 content_type="application/json")
        if name == "reset" and req.method == "POST":
            sb.reset()
            return json_response({"reset": True}, content_type="application/json")
        if name == "faults":
            if req.method == "POST":
                try:
                    update = req.json()
                except ValueError:
                    update = None
                if not isinstance(update, dict):
                    return json_response({"error": "body must be a JSON object"}, 400, "application/json")
                unknown = set(update) - set(FAULTS)
                if unknown:
                    return json_response({"error": f"unknown faults: {sorted(unknown)}",
                                          "known": sorted(FAULTS)}, 400, "application/json")
                wrong = sorted(k for k, v in update.items()
                               if not (isinstance(v, list) and all(isinstance(x, str) for x in v)))
                if wrong:
                    return json_response({"error": f"faults must be lists of strings: {wrong}"}, 400,
                                         "application/json")
                with sb.faults_lock:
                    sb.faults.update(update)
            with sb.faults_lock:
                return json_response(sb.faults, content_type="application/json")
        return json_response({"error": f"no sandbox endpoint {req.path}"}, 404, "application/json")
