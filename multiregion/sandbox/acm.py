"""ACM certificates that are issued the way AWS issues them: after DNS validation, not after a timer.

moto issues a requested certificate after `MOTO_ACM_VALIDATION_WAIT` seconds (read once, at import) and
never looks at DNS. Here each DNS-validated certificate stays PENDING_VALIDATION until its validation
CNAME exists in a public hosted zone of the sandbox, then turns ISSUED `duration("acm_validation")`
seconds later (or FAILED, for the ARNs listed in the `acm_fail` fault). The outcome is final, as on AWS.

Also as on AWS: the validation record is derived from the account and the domain only, so it is the same
in every region; a repeated `IdempotencyToken` (same region, within an hour) returns the certificate it
first requested, whatever the tags; `GetCertificate` refuses a certificate that is not issued; and a
certificate used by an API Gateway custom domain cannot be deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox.app import ACCOUNT_ID, Extension, SandboxRequest, aws_json_error, json_response

TOKEN_LIFETIME = 3600.0  # seconds an IdempotencyToken stays bound to its certificate
_TOKEN_RE = re.compile(r"^\w{1,32}$")
_JSON_11 = "application/x-amz-json-1.1"
PENDING, ISSUED, FAILED = "PENDING_VALIDATION", "ISSUED", "FAILED"
# Fields AWS only reports once a certificate is issued.
_ISSUED_ONLY = ("IssuedAt", "NotBefore", "NotAfter", "Serial")


def validation_record(domain: str, account: str = ACCOUNT_ID) -> dict[str, str]:
    """The DNS validation CNAME for one name: a function of account and domain, never of the region."""
    base = domain[2:] if domain.startswith("*.") else domain
    base = base.rstrip(".").lower()
    digest = hashlib.sha256(f"{account}:{base}".encode()).hexdigest()
    return {"Name": f"_{digest[:32]}.{base}.", "Type": "CNAME",
            "Value": f"_{digest[32:64]}.{digest[:10]}.acm-validations.aws."}


def _norm(name: str) -> str:
    return name.rstrip(".").lower() + "."


@dataclass
class Request:
    """What the sandbox knows about one requested certificate beyond moto's model."""

    arn: str
    region: str
    names: list[str]
    method: str
    requested_at: float  # monotonic
    record_seen_at: float | None = None
    outcome: str | None = None  # ISSUED or FAILED, once decided
    issued_at: float | None = None  # epoch seconds
    failure_reason: str | None = None


class CertificateValidation(Extension):
    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.requests: dict[str, Request] = {}
        # (region, token) -> (certificate ARN, epoch time at which the token expires)
        self.tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def reset(self) -> None:
        with self.sandbox.lock:
            self.requests.clear()
            self.tokens.clear()

    # ------------------------------------------------------------------ requests

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service != "acm" or not (req.target or "").startswith("CertificateManager."):
            return None
        op = req.operation
        if op == "RequestCertificate":
            return self._request(req)
        if op == "DescribeCertificate":
            return self._describe(req)
        if op == "ListCertificates":
            return self._list(req)
        if op == "GetCertificate":
            return self._get(req)
        if op == "DeleteCertificate":
            return self._delete(req)
        return None

    def _request(self, req: SandboxRequest) -> Response:
        body = dict(req.json())
        region = req.region or ""
        token = body.pop("IdempotencyToken", None)
        if token is not None and not _TOKEN_RE.match(str(token)):
            return aws_json_error("ValidationException",
                                  f"1 validation error detected: Value '{token}' at 'idempotencyToken' failed to "
                                  r"satisfy constraint: Member must satisfy regular expression pattern: \w+ "
                                  "and have length less than or equal to 32")
        with self.sandbox.lock:
            if token is not None:
                arn = self._arn_for_token(region, token)
                if arn is not None:
                    return json_response({"CertificateArn": arn}, content_type=_JSON_11)
            # moto keeps its own token table, which ignores deletions and compares tags: it never sees one.
            resp = self.forward(_with_body(req, body))
            if resp.status != 200:
                return resp.response()
            arn = resp.json()["CertificateArn"]
            if token is not None:
                self.tokens[(region, token)] = (arn, time.time() + TOKEN_LIFETIME)
            if not body.get("CertificateAuthorityArn"):  # private certificates are issued at once
                names = [body["DomainName"], *[n for n in body.get("SubjectAlternativeNames") or []
                                               if n != body["DomainName"]]]
                self.requests[arn] = Request(arn, region, names, body.get("ValidationMethod") or "EMAIL",
                                             time.monotonic())
        return resp.response()

    def _arn_for_token(self, region: str, token: str) -> str | None:
        bound = self.tokens.get((region, token))
        if bound is None:
            return None
        arn, expires = bound
        if time.time() > expires or not self._exists(region, arn):
            del self.tokens[(region, token)]
            return None
        return arn

    def _describe(self, req: SandboxRequest) -> Response:
        resp = self.forward(req)
        if resp.status != 200:
            return resp.response()
        data = resp.json()
        with self.sandbox.lock:
            self._decorate(data["Certificate"])
        return json_response(data, content_type=_JSON_11)

    def _list(self, req: SandboxRequest) -> Response:
        body = dict(req.json())
        wanted = body.pop("CertificateStatuses", None)
        resp = self.forward(_with_body(req, body))  # moto would filter on its own idea of the status
        if resp.status != 200:
            return resp.response()
        data = resp.json()
        summaries = []
        with self.sandbox.lock:
            for summary in data.get("CertificateSummaryList", []):
                request = self.requests.get(summary.get("CertificateArn", ""))
                if request is not None:
                    self._settle(request)
                    summary["Status"] = self._status(request)
                    if summary["Status"] != ISSUED:
                        for key in _ISSUED_ONLY:
                            summary.pop(key, None)
                if not wanted or summary.get("Status") in wanted:
                    summaries.append(summary)
        data["CertificateSummaryList"] = summaries
        return json_response(data, content_type=_JSON_11)

    def _get(self, req: SandboxRequest) -> Response | None:
        arn = req.json().get("CertificateArn", "")
        with self.sandbox.lock:
            request = self.requests.get(arn)
            if request is None or not self._exists(request.region, arn):
                return None
            self._settle(request)
            status = self._status(request)
        if status != ISSUED:
            return aws_json_error("RequestInProgressException",
                                  f"Certificate '{arn}' in account '{ACCOUNT_ID}' is still being processed "
                                  f"(status {status}).")
        return None

    def _delete(self, req: SandboxRequest) -> Response | None:
        arn = req.json().get("CertificateArn", "")
        with self.sandbox.lock:
            users = self._domains_using(req.region or "", arn)
            if users:
                return aws_json_error("ResourceInUseException",
                                      f"Certificate {arn} in account {ACCOUNT_ID} is in use by "
                                      f"{', '.join(users)}.")
            resp = self.forward(req)
            if resp.status == 200:
                self.requests.pop(arn, None)
        return resp.response()

    # ------------------------------------------------------------------ validation

    def status(self, region: str, arn: str) -> str | None:
        """A certificate's status as AWS would report it; None when the region holds no such certificate."""
        with self.sandbox.lock:
            if not self._exists(region, arn):
                return None
            request = self.requests.get(arn)
            if request is None:
                return str(_backend(region).get_certificate(arn).status)
            self._settle(request)
            return self._status(request)

    def _status(self, request: Request) -> str:
        return request.outcome or PENDING

    def _settle(self, request: Request) -> None:
        """Decide the outcome once the records have been in DNS for the validation delay."""
        if request.outcome is not None or request.method != "DNS":
            return
        now = time.monotonic()
        if request.record_seen_at is None:
            if not all(self._record_in_dns(name) for name in request.names):
                return
            request.record_seen_at = now
        if now - request.record_seen_at < self.sandbox.duration("acm_validation"):
            return
        failing = self.sandbox.fault("acm_fail")
        if "*" in failing or request.arn in failing:
            request.outcome, request.failure_reason = FAILED, "CAA_ERROR"
        else:
            request.outcome, request.issued_at = ISSUED, time.time()

    def _record_in_dns(self, domain: str) -> bool:
        from moto.route53.models import route53_backends

        wanted = validation_record(domain)
        name, value = _norm(wanted["Name"]), _norm(wanted["Value"])
        for zone in route53_backends[ACCOUNT_ID]["aws"].zones.values():
            if zone.private_zone or not (name == _norm(zone.name) or name.endswith("." + _norm(zone.name))):
                continue
            for rrset in zone.rrsets:
                if rrset.type == "CNAME" and _norm(rrset.name) == name and \
                        any(_norm(str(v)) == value for v in rrset.records or []):
                    return True
        return False

    def _decorate(self, cert: dict[str, Any]) -> None:
        request = self.requests.get(cert.get("CertificateArn", ""))
        if request is None:
            return
        self._settle(request)
        status = self._status(request)
        cert["Status"] = status
        validation = {ISSUED: "SUCCESS", FAILED: FAILED}.get(status, PENDING)
        # AWS needs a few seconds after the request to publish the record to create.
        published = time.monotonic() - request.requested_at >= self.sandbox.scaled(1.0)
        options = []
        for name in request.names:
            option: dict[str, Any] = {"DomainName": name, "ValidationDomain": name,
                                      "ValidationStatus": validation, "ValidationMethod": request.method}
            if request.method == "DNS" and published:
                option["ResourceRecord"] = validation_record(name)
            options.append(option)
        cert["DomainValidationOptions"] = options
        if status == ISSUED:
            cert["IssuedAt"] = request.issued_at
        else:
            for key in _ISSUED_ONLY:
                cert.pop(key, None)
        if status == FAILED:
            cert["FailureReason"] = request.failure_reason

    # ------------------------------------------------------------------ moto's models

    @staticmethod
    def _exists(region: str, arn: str) -> bool:
        from moto.acm.exceptions import CertificateNotFound

        try:
            _backend(region).get_certificate(arn)
        except CertificateNotFound:
            return False
        return True

    @staticmethod
    def _domains_using(region: str, arn: str) -> list[str]:
        from moto.apigateway.models import apigateway_backends

        domains = apigateway_backends[ACCOUNT_ID][region].domain_names.values()
        return [f"arn:aws:apigateway:{region}::/domainnames/{d.domain_name}" for d in domains
                if arn in (d.regional_certificate_arn, d.certificate_arn)]


def _backend(region: str) -> Any:
    from moto.acm.models import acm_backends

    return acm_backends[ACCOUNT_ID][region]


def _with_body(req: SandboxRequest, body: dict[str, Any]) -> SandboxRequest:
    """The same request with another JSON body, for moto to answer."""
    data = json.dumps(body).encode()
    environ = dict(req.raw.environ)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ["wsgi.input"] = io.BytesIO(data)
    return SandboxRequest.from_environ(environ)
