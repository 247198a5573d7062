"""Lambda function states and IAM role propagation as AWS reports and enforces them, on top of moto.

moto reports every function `State: Active`, `LastUpdateStatus: Successful` the moment it is written. On
AWS (Lambda developer guide, "Lambda function states", https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html,
and the CreateFunction / UpdateFunctionConfiguration API reference):

- CreateFunction answers `State: Pending` (StateReason "The function is being created.", StateReasonCode
  `Creating`), and the function stays Pending until Lambda has provisioned it, then turns Active. While it
  is Pending, Invoke, UpdateFunctionCode, UpdateFunctionConfiguration and PublishVersion fail.
- UpdateFunctionCode and UpdateFunctionConfiguration answer `LastUpdateStatus: InProgress`, and it stays
  so until the update is done, then `Successful`. Meanwhile the State stays Active, invocations still run
  the previous code and configuration, and UpdateFunctionCode, UpdateFunctionConfiguration and
  PublishVersion fail. Lambda's own answers give the reason "The function is being created." and the code
  `Creating` for an update too (seen in published CLI output; botocore's enum of LastUpdateStatusReasonCode
  lacks it, and botocore does not validate answers).
- The guide lists no other operation as failing meanwhile, so AddPermission, RemovePermission,
  PutFunctionConcurrency and TagResource go through (not checked against AWS beyond the guide).
- A role created moments ago cannot be assumed by Lambda until IAM has propagated it: CreateFunction, and
  UpdateFunctionConfiguration naming such a role, fail with InvalidParameterValueException "The role
  defined for the function cannot be assumed by Lambda."

The refusals are ResourceConflictException (409). The Pending message is the one the developer guide quotes
("Troubleshoot invocation issues in Lambda"); the update one is what Lambda sends, as countless tool logs
show it: "The operation cannot be performed at this time. An update is in progress for resource: <arn>".

How long each lasts is `sandbox.duration("lambda_pending" | "lambda_update" | "iam_role_assumable")`, and the
states are always reported (the fast timing profile makes them 0 s); the refusals under `SandboxOptions.strict`
(the default: the stages wait and retry as AWS needs them to). Only $LATEST is followed: a published
version is reported as moto has it. While Pending, `LastUpdateStatus` is left as moto reports it (AWS's value
then is not documented). ListFunctions leaves the state fields out, as AWS's does (ListFunctions reference).
"""

from __future__ import annotations

import base64
import json
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Any
from urllib.parse import parse_qs, unquote

from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import Extension, Forwarded, SandboxRequest, json_response
from multiregion.sandbox.lambda_runtime import FunctionSpec, InvokeError, LambdaRuntime

CREATING_REASON = "The function is being created."
CREATING = "Creating"
PENDING_MESSAGE = ("The operation cannot be performed at this time. The function is currently in the following "
                   "state: Pending")
ROLE_MESSAGE = "The role defined for the function cannot be assumed by Lambda."
# What GetFunction reports and ListFunctions does not (ListFunctions API reference).
STATE_FIELDS = ("State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason",
                "LastUpdateStatusReasonCode", "RuntimeVersionConfig")

_FUNCTIONS = re.compile(r"^/2015-03-31/functions/?$")
_FUNCTION = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)(?P<sub>/configuration|/code|/versions)?/?$")
_OPERATIONS = {("GET", ""): "GetFunction", ("GET", "/configuration"): "GetFunctionConfiguration",
               ("PUT", "/configuration"): "UpdateFunctionConfiguration", ("PUT", "/code"): "UpdateFunctionCode",
               ("POST", "/versions"): "PublishVersion"}


def update_in_progress_message(function_arn: str) -> str:
    return f"The operation cannot be performed at this time. An update is in progress for resource: {function_arn}"


def lambda_error(code: str, message: str, status: int) -> Response:
    # Lambda's REST-JSON errors: the code in x-amzn-ErrorType, {"Type", "message"} in the body.
    return json_response({"Type": "User", "message": message}, status=status, content_type="application/json",
                         headers={"x-amzn-ErrorType": code})


@dataclass
class Progress:
    """When a function's asynchronous steps started (clock seconds), and what runs while it updates."""

    created: float
    updated: float | None = None
    previous: FunctionSpec | None = None


class FunctionStates(Extension):
    # Wall-clock seconds, the clock moto dates a role's creation with; tests drive it.
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self._progress: weakref.WeakKeyDictionary[moto_compat.Function, Progress] = weakref.WeakKeyDictionary()
        # moto's roles -> when CreateRole returned, on this extension's clock.
        self._roles: weakref.WeakKeyDictionary[moto_compat.Role, float] = weakref.WeakKeyDictionary()

    def reset(self) -> None:
        self._progress = weakref.WeakKeyDictionary()
        self._roles = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ routing

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service == "iam" and req.method == "POST":
            return self._create_role(req)
        if req.service != "lambda":
            return None
        region = req.region or ""
        if _FUNCTIONS.match(req.path):
            if req.method == "POST":
                return self._create(req, region)
            if req.method == "GET":
                return self._list(req)
            return None
        match = _FUNCTION.match(req.path)
        operation = match and _OPERATIONS.get((req.method, match.group("sub") or ""))
        if not match or not operation:
            return None
        function = unquote(match.group("function"))
        qualifier = req.raw.args.get("Qualifier")
        if operation in ("GetFunction", "GetFunctionConfiguration"):
            return self._get(req, region, function, qualifier, nested=operation == "GetFunction")
        if operation == "PublishVersion":
            return self._publish(req, region, function)
        return self._update(req, region, function, qualifier, code=operation == "UpdateFunctionCode")

    # ------------------------------------------------------------------ operations

    def _create_role(self, req: SandboxRequest) -> Response | None:
        """Notes when a role was created, on the same clock as the functions' states."""
        form = parse_qs(req.body.decode(errors="replace"))
        if form.get("Action") != ["CreateRole"] or not form.get("RoleName"):
            return None
        with self.sandbox.lock:
            resp = self.forward(req)
            if resp.status == 200:
                self._roles[moto_compat.role(form["RoleName"][0])] = self.clock()
        return resp.response()

    def _create(self, req: SandboxRequest, region: str) -> Response:
        with self.sandbox.lock:
            if self.sandbox.options.strict:
                refusal = self._role_refusal(req.json().get("Role"))
                if refusal is not None:
                    return refusal
            resp = self.forward(req)
            if resp.status != 201:
                return resp.response()
            body = resp.json()
            fn = self._latest(region, str(body.get("FunctionArn", "")), None)
            if fn is None:
                return self._answer(resp, body)
            progress = self._progress[fn] = Progress(created=self.clock())
        # AWS's answer to CreateFunction is always Pending, however short provisioning turns out to be.
        return self._answer(resp, self._view(body, progress, pending=True))

    def _get(self, req: SandboxRequest, region: str, function: str, qualifier: str | None,
             nested: bool) -> Response:
        with self.sandbox.lock:
            resp = self.forward(req)
            progress = self._progress_of(region, function, qualifier) if resp.status == 200 else None
        if resp.status != 200:
            return resp.response()
        body = resp.json()
        if progress is not None:
            self._view(body.get("Configuration", {}) if nested else body, progress)
        return self._answer(resp, body)

    def _update(self, req: SandboxRequest, region: str, function: str, qualifier: str | None,
                code: bool) -> Response | None:
        body = req.json()
        with self.sandbox.lock:
            fn = self._latest(region, function, qualifier)
            if fn is None:
                return None  # unknown, or a published version: moto answers as AWS would
            progress = self._progress.setdefault(fn, Progress(created=float("-inf")))
            if self.sandbox.options.strict:
                refusal = self._conflict(fn, progress) or (None if code or "Role" not in body
                                                           else self._role_refusal(body["Role"]))
                if refusal is not None:
                    return refusal
            # Calls keep running what was there before the first of the updates in progress.
            previous = progress.previous if self._updating(progress) else self._runtime().spec_of(fn, region)
            resp = self.forward(req)
            if resp.status != 200 or (code and body.get("DryRun")):
                return resp.response()
            progress.updated, progress.previous = self.clock(), previous
        return self._answer(resp, self._view(resp.json(), progress, updating=True))

    def _publish(self, req: SandboxRequest, region: str, function: str) -> Response | None:
        if not self.sandbox.options.strict:
            return None
        with self.sandbox.lock:
            fn = self._latest(region, function, None)
            progress = None if fn is None else self._progress.get(fn)
            refusal = None if progress is None else self._conflict(fn, progress)
            if refusal is not None:
                return refusal
            resp = self.forward(req)
        return self._answer(resp, resp.json()) if resp.status == 201 else resp.response()

    def _list(self, req: SandboxRequest) -> Response:
        resp = self.forward(req)
        if resp.status != 200:
            return resp.response()
        body = resp.json()
        for config in body.get("Functions") or []:
            for name in STATE_FIELDS:
                config.pop(name, None)
        # moto ignores MaxItems and Marker and lists everything at once: page as Lambda does, the marker
        # naming the next page's first function (opaque to clients).
        functions = body.get("Functions") or []
        try:
            size = int(req.raw.args.get("MaxItems", "50"))
        except ValueError:
            size = 0
        if not 1 <= size <= 10000:
            return lambda_error("InvalidParameterValueException", "MaxItems must be between 1 and 10000", 400)
        start = 0
        marker = req.raw.args.get("Marker")
        if marker:
            names = [f.get("FunctionName") for f in functions]
            wanted = _unmark(marker)
            if wanted not in names:
                return lambda_error("InvalidParameterValueException", f"Invalid marker: {marker}", 400)
            start = names.index(wanted)
        page = functions[start:start + size]
        body["Functions"] = page
        body.pop("NextMarker", None)
        if start + size < len(functions):
            body["NextMarker"] = _mark(str(functions[start + size].get("FunctionName")))
        return self._answer(resp, body)

    # ------------------------------------------------------------------ what the runtime asks

    def for_invocation(self, fn: moto_compat.Function, spec: FunctionSpec) -> FunctionSpec:
        """What a call of `fn` runs (the caller holds sandbox.lock); InvokeError while it is Pending (strict)."""
        progress = self._progress.get(fn)
        if progress is None:
            return spec
        if self._pending(progress) and self.sandbox.options.strict:
            raise InvokeError("ResourceConflictException", PENDING_MESSAGE, 409, {"Type": "User"})
        if self._updating(progress) and progress.previous is not None:
            return progress.previous
        return spec

    # ------------------------------------------------------------------ states

    def _pending(self, progress: Progress) -> bool:
        return self.clock() < progress.created + self.sandbox.duration("lambda_pending")

    def _updating(self, progress: Progress) -> bool:
        return progress.updated is not None and self.clock() < progress.updated + self.sandbox.duration(
            "lambda_update")

    def _view(self, config: dict[str, Any], progress: Progress, pending: bool = False,
              updating: bool = False) -> dict[str, Any]:
        """`config` (a FunctionConfiguration) with the states as AWS reports them now."""
        if pending or self._pending(progress):
            config.update({"State": "Pending", "StateReason": CREATING_REASON, "StateReasonCode": CREATING})
        if updating or self._updating(progress):
            config.update({"LastUpdateStatus": "InProgress", "LastUpdateStatusReason": CREATING_REASON,
                           "LastUpdateStatusReasonCode": CREATING})
        return config

    def _conflict(self, fn: Any, progress: Progress) -> Response | None:
        if self._pending(progress):
            return lambda_error("ResourceConflictException", PENDING_MESSAGE, 409)
        if self._updating(progress):
            return lambda_error("ResourceConflictException", update_in_progress_message(_unqualified(fn)), 409)
        return None

    def _role_refusal(self, role_arn: Any) -> Response | None:
        """Lambda's refusal of a role IAM has not propagated yet (a missing role is moto's to refuse)."""
        if not isinstance(role_arn, str):
            return None
        role = moto_compat.role_by_arn(role_arn)
        if role is None:
            return None
        created = self._roles.get(role)
        if created is None:  # not created through the sandbox's endpoint: moto's date (naive UTC) tells
            created = role.create_date.replace(tzinfo=timezone.utc).timestamp()
        if self.clock() < created + self.sandbox.duration("iam_role_assumable"):
            return lambda_error("InvalidParameterValueException", ROLE_MESSAGE, 400)
        return None

    # ------------------------------------------------------------------ helpers

    def _latest(self, region: str, function: str, qualifier: str | None) -> moto_compat.Function | None:
        """moto's $LATEST function named by `function` (and `qualifier`), or None (unknown, or a version)."""
        try:
            fn = moto_compat.function(region, function, qualifier)
        except moto_compat.ClientError:
            return None
        return fn if str(fn.version) == "$LATEST" else None

    def _progress_of(self, region: str, function: str, qualifier: str | None) -> Progress | None:
        fn = self._latest(region, function, qualifier)
        return None if fn is None else self._progress.get(fn)

    def _runtime(self) -> LambdaRuntime:
        return self.sandbox.extension(LambdaRuntime)

    @staticmethod
    def _answer(resp: Forwarded, body: dict[str, Any]) -> Response:
        # moto writes absent members as null; AWS (and botocore's serializers) leave them out.
        return resp.response(json.dumps(_without_nulls(body)).encode())


def _mark(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _unmark(marker: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _unqualified(fn: moto_compat.Function) -> str:
    return str(fn.function_arn).removesuffix(":$LATEST")
