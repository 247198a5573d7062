"""One provider of boto3 clients for every stage: per service and region, standard retries, one endpoint.

The provider also counts the API calls it makes, read and write, so `up` can tell (and tests can check)
that a converged stack was left alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

# Local endpoints (the sandbox, LocalStack) get fixed dummy credentials so that real ones never leave
# the machine toward a server that is not AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

T = TypeVar("T")

_READ_PREFIXES = ("Describe", "Get", "List", "Test", "Query", "Scan", "BatchGet", "Head")


def is_write(operation: str) -> bool:
    return not operation.startswith(_READ_PREFIXES)


class ClientProvider:
    def __init__(self, endpoint_url: str | None = None, max_attempts: int = 8, profile: str | None = None):
        """`endpoint_url` for the sandbox or LocalStack (with dummy credentials); else AWS, where boto3 itself
        honours AWS_PROFILE (or `profile`), AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, as the AWS CLI."""
        self.endpoint_url = endpoint_url
        kwargs: dict[str, Any] = dict(LOCAL_CREDENTIALS) if endpoint_url else {}
        if profile and not endpoint_url:
            kwargs["profile_name"] = profile
        self._session = boto3.session.Session(**kwargs)
        self._config = BotoConfig(retries={"mode": "standard", "max_attempts": max_attempts},
                                  connect_timeout=5, read_timeout=60)
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, service: str, region: str) -> Any:
        return self.client(service, region)

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:  # boto3 sessions are not thread-safe; the clients they make are
            if key not in self._clients:
                client = self._session.client(service, region_name=region, endpoint_url=self.endpoint_url,
                                              config=self._config)
                client.meta.events.register("before-call", self._count)
                self._clients[key] = client
            return self._clients[key]

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
