"""One provider of boto3 clients for every stage: per service and region, standard retries, one endpoint.

The provider also counts the API calls it makes, read and write, so `up` can tell (and tests can check)
that a converged stack was left alone.

The AWS CLI's conventions hold, as botocore implements them: `AWS_PROFILE` (or `profile`), the credentials
chain, `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>` (which wins) when no endpoint is
configured. Route 53 and IAM have one API per partition, not per region: their clients take their region
from `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1 (in the `aws` partition botocore sends them to
the global endpoint whatever the region; the region chooses the partition, e.g. cn-north-1 for China).
STS answers in every region: its client takes `AWS_REGION`/`AWS_DEFAULT_REGION` when set, else the region
asked (the primary). A region may have its own profile and role (`aws:` in the config, for a stack that
spans accounts): its clients sign with that profile's credentials, or with the role's, assumed through STS
and renewed before they expire; Route 53 and IAM use the primary region's.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.exceptions import ClientError

# Local endpoints (the sandbox, LocalStack) get fixed dummy credentials so that real ones never leave
# the machine toward a server that is not AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# One API per partition: the region of their clients only picks the partition (see the module's docstring).
GLOBAL_SERVICES = ("route53", "iam")
GLOBAL_DEFAULT_REGION = "us-east-1"
# AssumeRole's default session lasts an hour; renew a quarter of an hour early (a run may wait that long
# for a certificate).
ROLE_SESSION_SECONDS = 3600

T = TypeVar("T")

_READ_PREFIXES = ("Describe", "Get", "List", "Test", "Query", "Scan", "BatchGet", "Head")


def is_write(operation: str) -> bool:
    return not operation.startswith(_READ_PREFIXES)


def env_region() -> str | None:
    """The region the AWS CLI would use: AWS_REGION, else AWS_DEFAULT_REGION (botocore reads the latter)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def is_loopback_url(url: str | None) -> bool:
    host = urlsplit(url).hostname if url else None
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """How to sign a region's calls: an AWS CLI profile, and a role to assume with it (either optional)."""

    profile: str | None = None
    role_arn: str | None = None


class _AssumedRole(CredentialProvider):  # type: ignore[misc]  # botocore is untyped
    """The role's temporary credentials, fetched with STS and renewed by botocore before they expire."""

    METHOD = "multiregion-assume-role"
    CANONICAL_NAME = "multiregion-assume-role"

    def __init__(self, fetch: Callable[[], dict[str, str]]):
        self._fetch = fetch

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(self._fetch(), self._fetch, self.METHOD)


# AWS's codes for a call the credentials may not make (as opposed to credentials it does not accept).
ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


POOL_CONNECTIONS = 50  # botocore's default is 10; 8 regions' nodes share the Route 53 client


class ClientProvider:
    def __init__(self, endpoint_url: str | None = None, max_attempts: int = 8, profile: str | None = None,
                 access: Mapping[str, Access] | None = None, home_region: str | None = None):
        """`endpoint_url` for the sandbox or LocalStack (with dummy credentials, profiles ignored); else AWS.
        `access`: a profile and/or role per region (see the module's docstring); `home_region` (the primary)
        is the one whose access Route 53 and IAM use."""
        self.endpoint_url = endpoint_url
        self.profile, self.home_region = profile, home_region
        self.access = dict(access or {})
        # A node per stage and region runs at once, and the global services' clients are shared by every
        # region's nodes: a pool large enough that none waits for a connection, or throws one away.
        self._config = BotoConfig(retries={"mode": "standard", "max_attempts": max_attempts},
                                  connect_timeout=5, read_timeout=60, max_pool_connections=POOL_CONNECTIONS)
        self._sessions: dict[Access, boto3.session.Session] = {}
        self._session = self._session_for(Access(profile))  # an unknown profile is refused here, at once
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    @property
    def local(self) -> bool:
        """Whether the calls stay on this machine: a configured endpoint, or AWS_ENDPOINT_URL on loopback."""
        return self.endpoint_url is not None or is_loopback_url(os.environ.get("AWS_ENDPOINT_URL"))

    @property
    def local_url(self) -> str | None:
        """The URL of the endpoint on this machine the calls go to, if they do (see `local`)."""
        if self.endpoint_url is not None:
            return self.endpoint_url
        url = os.environ.get("AWS_ENDPOINT_URL")
        return url if is_loopback_url(url) else None

    def __call__(self, service: str, region: str) -> Any:
        return self.client(service, region)

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:  # boto3 sessions are not thread-safe; the clients they make are
            if key not in self._clients:
                session = self._session_for(self.access_for(service, region))
                client = session.client(service, region_name=self.endpoint_region(service, region),
                                        endpoint_url=self.endpoint_url, config=self._config)
                client.meta.events.register("before-call", self._count)
                client.meta.events.register("before-parameter-build", _remember_params)
                client.meta.events.register("after-call", _name_refused_action)
                self._clients[key] = client
            return self._clients[key]

    def access_for(self, service: str, region: str) -> Access:
        """The profile and role that sign a call: the region's own (`aws:` in the config), else --profile."""
        where = self.home_region if service in GLOBAL_SERVICES and self.home_region else region
        own = self.access.get(where)
        if own is None:
            return Access(self.profile)
        return Access(own.profile or self.profile, own.role_arn)

    @staticmethod
    def endpoint_region(service: str, region: str) -> str:
        """The region a client is made for: the one asked, but see the module's docstring for global APIs."""
        if service in GLOBAL_SERVICES:
            return env_region() or GLOBAL_DEFAULT_REGION
        if service == "sts":
            return env_region() or region
        return region

    def _session_for(self, access: Access) -> boto3.session.Session:
        if access not in self._sessions:
            self._sessions[access] = self._new_session(access)
        return self._sessions[access]

    def _new_session(self, access: Access) -> boto3.session.Session:
        local = self.endpoint_url is not None
        kwargs: dict[str, Any] = dict(LOCAL_CREDENTIALS) if local else {}
        if access.profile and not local:
            kwargs["profile_name"] = access.profile
        base = boto3.session.Session(**kwargs)
        if not access.role_arn:
            return base
        core = botocore.session.Session(profile=None if local else access.profile)
        role_arn = access.role_arn
        core.get_component("credential_provider").insert_before(
            "env", _AssumedRole(lambda: self._assume(base, role_arn)))
        return boto3.session.Session(botocore_session=core)

    def _assume(self, base: boto3.session.Session, role_arn: str) -> dict[str, str]:
        """The role's credentials, with the source credentials of `base` (its profile, or the chain)."""
        sts = base.client("sts", region_name=env_region() or self.home_region or GLOBAL_DEFAULT_REGION,
                          endpoint_url=self.endpoint_url, config=self._config)
        answer = sts.assume_role(RoleArn=role_arn, RoleSessionName=f"multiregion-{uuid.uuid4().hex[:16]}",
                                 DurationSeconds=ROLE_SESSION_SECONDS)["Credentials"]
        expires = answer["Expiration"]
        if not isinstance(expires, datetime):  # botocore parses it; keep a string from elsewhere as it is
            expires = datetime.now(timezone.utc) + timedelta(seconds=ROLE_SESSION_SECONDS)
        return {"access_key": answer["AccessKeyId"], "secret_key": answer["SecretAccessKey"],
                "token": answer["SessionToken"], "expiry_time": expires.isoformat()}

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1

    @property
    def writes(self) -> dict[str, int]:
        with self._lock:
            return {op: n for op, n in sorted(self.calls.items()) if is_write(op)}

    @property
    def reads(self) -> int:
        with self._lock:
            return sum(n for op, n in self.calls.items() if not is_write(op))


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["multiregion_params"] = dict(params)


def _name_refused_action(parsed: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
    """An AccessDenied names the IAM action and the resource that were refused, when AWS's message does not
    (AWS's own usually says "is not authorized to perform: ACTION on resource: ARN"; some services less)."""
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict) or error.get("Code") not in ACCESS_DENIED:
        return
    action = iam_action(model.service_model.service_name, model)
    message = str(error.get("Message") or "")
    if action.lower() in message.lower():
        return
    resource = _resource_of(context.get("multiregion_params") or {})
    error["Message"] = f"{message} (the IAM action {action}{f' on {resource}' if resource else ''} was refused)" \
        .lstrip()


def iam_action(service: str, model: Any) -> str:
    """The IAM action a call needs: from the deploy role's table (multiregion.iam_policy), else AWS's rule
    that an action is named `{prefix}:{Operation}` (API Gateway's are the HTTP verbs of its REST calls)."""
    from multiregion.iam_policy import BY_OPERATION

    known = BY_OPERATION.get((service, model.name))
    if known is not None and known.actions:
        return known.actions[0]
    if service == "apigateway":
        return f"apigateway:{model.http.get('method', 'GET')}"
    return f"{model.service_model.signing_name or service}:{model.name}"


def _resource_of(params: Mapping[str, Any]) -> str:
    """The call's resource, as named in its parameters (the first name, id or ARN among them)."""
    for key, value in params.items():
        if isinstance(value, str) and key.lower().endswith(("name", "id", "arn")):
            return f"{key}={value}"
    return ""


def absent_as_none(call: Callable[[], T], *codes: str) -> T | None:
    """The call's answer, or None when AWS answers one of `codes` (its way of saying "no such thing")."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    return str(exc)
