"""ACM certificates that are issued the way AWS issues them: after DNS validation, not after a timer.

moto issues a requested certificate after `MOTO_ACM_VALIDATION_WAIT` seconds (read once, at import) and
never looks at DNS. Here each DNS-validated certificate stays PENDING_VALIDATION until its validation
CNAME exists in a public hosted zone of the sandbox, then turns ISSUED `duration("acm_validation")`
seconds later (or FAILED, for the ARNs listed in the `acm_fail` fault). The outcome is final, as on AWS.

Also as on AWS: the validation record is derived from the account and the domain only, so it is the same
in every region; a repeated `IdempotencyToken` (same region, within an hour) returns the certificate it
first requested, whatever the tags; `GetCertificate` refuses a certificate that is not issued; and a
certificate used by an API Gateway custom domain cannot be deleted.

What `DescribeCertificate` and `ListCertificates` report follows ACM, not moto: `InUseBy` (`InUse`) names
the custom domains that use the certificate; an issued certificate is signed SHA256WITHRSA and valid for
395 days (moto signs SHA512 for 365 days); it is ELIGIBLE for managed renewal while in use; and
`ListCertificates` pages with MaxItems and NextToken (moto returns everything at once).
`GetCertificate` still hands out moto's own PEM, whose signature and validity are moto's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import ACCOUNT_ID, Extension, SandboxRequest, aws_json_error, json_response

TOKEN_LIFETIME = 3600.0  # seconds an IdempotencyToken stays bound to its certificate
_TOKEN_RE = re.compile(r"^\w{1,32}$")
_JSON_11 = "application/x-amz-json-1.1"
PENDING, ISSUED, FAILED = "PENDING_VALIDATION", "ISSUED", "FAILED"
# Fields AWS only reports once a certificate is issued.
_ISSUED_ONLY = ("IssuedAt", "NotBefore", "NotAfter", "Serial")
# "Each certificate is valid for 13 months (395 days)" (ACM User Guide, public certificates). A published
# DescribeCertificate of an ACM certificate shows NotBefore at midnight UTC of the day of issue and NotAfter at
# 23:59:59 of the 395th day after it; the sandbox does the same.
VALIDITY_DAYS = 395
_DAY = 86_400
# ACM signs with SHA-256 (its certificates read "sha256WithRSAEncryption"). The ECDSA names are by analogy
# with the RSA one, not checked against an issued EC certificate.
SIGNATURE_ALGORITHMS = {"RSA": "SHA256WITHRSA", "EC_prime256v1": "SHA256WITHECDSA",
                        "EC_secp384r1": "SHA384WITHECDSA", "EC_secp521r1": "SHA512WITHECDSA"}
MAX_ITEMS = 1000  # ListCertificates' MaxItems, per the API model


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
        paging = {key: body.pop(key, None) for key in ("MaxItems", "NextToken", "SortBy", "SortOrder")}
        resp = self.forward(_with_body(req, body))  # moto would filter on its own idea of the status
        if resp.status != 200:
            return resp.response()
        summaries = []
        with self.sandbox.lock:
            for summary in resp.json().get("CertificateSummaryList", []):
                self._decorate_summary(summary)
                if not wanted or summary.get("Status") in wanted:
                    summaries.append(summary)
        try:
            page, token = _page(summaries, paging)
        except ValueError as exc:
            return aws_json_error(*exc.args)
        return json_response({"CertificateSummaryList": page, **({"NextToken": token} if token else {})},
                             content_type=_JSON_11)

    def _decorate_summary(self, summary: dict[str, Any]) -> None:
        arn = summary.get("CertificateArn", "")
        in_use = bool(self._domains_using(_region_of(arn), arn))
        summary["InUse"] = in_use
        request = self.requests.get(arn)
        if request is None:
            return
        self._settle(request)
        status = summary["Status"] = self._status(request)
        summary["SubjectAlternativeNameSummaries"] = list(request.names)
        summary["HasAdditionalSubjectAlternativeNames"] = False
        summary["RenewalEligibility"] = _renewal_eligibility(status, in_use)
        if status == ISSUED:
            summary.update(_validity(request.issued_at or time.time()), IssuedAt=request.issued_at)
        else:
            for key in _ISSUED_ONLY:
                summary.pop(key, None)

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
                return moto_compat.certificate_status(region, arn)
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
        wanted = validation_record(domain)
        name, value = _norm(wanted["Name"]), _norm(wanted["Value"])
        for zone in moto_compat.hosted_zones():
            if zone.private_zone or not (name == _norm(zone.name) or name.endswith("." + _norm(zone.name))):
                continue
            for rrset in zone.rrsets:
                if rrset.type == "CNAME" and _norm(rrset.name) == name and \
                        any(_norm(str(v)) == value for v in rrset.records or []):
                    return True
        return False

    def _decorate(self, cert: dict[str, Any]) -> None:
        arn = cert.get("CertificateArn", "")
        # "A list of ARNs for the AWS resources that are using the certificate". For an API Gateway custom
        # domain the sandbox lists the domain's own ARN (its domainNameArn). Not checked: no AWS page found says
        # exactly what ACM lists for a regional custom domain (one user report shows a load balancer that API
        # Gateway owns), so a stage should not rely on the exact value, only on the list being non-empty.
        cert["InUseBy"] = self._domains_using(_region_of(arn), arn)
        request = self.requests.get(arn)
        if request is None:
            return
        self._settle(request)
        status = self._status(request)
        cert["Status"] = status
        cert["SignatureAlgorithm"] = _signature_algorithm(str(cert.get("KeyAlgorithm", "RSA_2048")))
        # "A certificate is eligible for renewal if it is associated with another AWS service" (ACM managed
        # renewal); one nothing uses is not renewed.
        cert["RenewalEligibility"] = _renewal_eligibility(status, bool(cert["InUseBy"]))
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
            cert.update(_validity(request.issued_at or time.time()))
        else:
            for key in _ISSUED_ONLY:
                cert.pop(key, None)
        if status == FAILED:
            cert["FailureReason"] = request.failure_reason

    # ------------------------------------------------------------------ moto's models

    @staticmethod
    def _exists(region: str, arn: str) -> bool:
        return moto_compat.certificate_status(region, arn) is not None

    @staticmethod
    def _domains_using(region: str, arn: str) -> list[str]:
        """The ARNs of the API Gateway custom domains using the certificate (hold sandbox.lock)."""
        from multiregion.sandbox.apigateway_domains import domain_arn

        if not region:
            return []
        domains = moto_compat.domain_names(region).values()
        return [domain_arn(region, d.domain_name) for d in domains
                if arn in (d.regional_certificate_arn, d.certificate_arn)]


def _region_of(arn: str) -> str:
    """The region of an ACM ARN (arn:aws:acm:REGION:account:certificate/id)."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 else ""


def _signature_algorithm(key_algorithm: str) -> str:
    return SIGNATURE_ALGORITHMS.get("RSA" if key_algorithm.startswith("RSA") else key_algorithm, "SHA256WITHRSA")


def _renewal_eligibility(status: str, in_use: bool) -> str:
    return "ELIGIBLE" if status == ISSUED and in_use else "INELIGIBLE"


def _validity(issued_at: float) -> dict[str, float]:
    not_before = float(int(issued_at) // _DAY * _DAY)
    return {"NotBefore": not_before, "NotAfter": not_before + (VALIDITY_DAYS + 1) * _DAY - 1}


def _page(summaries: list[dict[str, Any]], paging: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ListCertificates, oldest first (newest first with SortOrder DESCENDING), and the next token.

    The token names the next page's first certificate by its creation time and ARN, so a certificate deleted
    between two pages never sends the listing back to the start. Raises ValueError(code, message)."""
    max_items = paging.get("MaxItems")
    if max_items is not None and (not isinstance(max_items, int) or not 1 <= max_items <= MAX_ITEMS):
        raise ValueError("ValidationException", f"1 validation error detected: Value '{max_items}' at 'maxItems' "
                                                f"failed to satisfy constraint: Member must have value between 1 "
                                                f"and {MAX_ITEMS}")
    descending = paging.get("SortOrder") == "DESCENDING"
    ordered = sorted(summaries, key=_sort_key, reverse=descending)
    if paging.get("NextToken"):
        start = _token_key(str(paging["NextToken"]))
        ordered = [s for s in ordered if (_sort_key(s) <= start if descending else _sort_key(s) >= start)]
    limit = max_items or len(ordered) or 1
    rest = ordered[limit:]
    return ordered[:limit], _token(rest[0]) if rest else None


def _sort_key(summary: dict[str, Any]) -> tuple[float, str]:
    return float(summary.get("CreatedAt") or 0), str(summary.get("CertificateArn", ""))


def _token(summary: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(_sort_key(summary))).encode()).decode()


def _token_key(token: str) -> tuple[float, str]:
    try:
        created, arn = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(created), str(arn)
    except (ValueError, TypeError, binascii.Error):
        # Not checked against AWS: which error ACM gives for a token it never issued.
        raise ValueError("InvalidArgsException", "The NextToken is not valid") from None


def _with_body(req: SandboxRequest, body: dict[str, Any]) -> SandboxRequest:
    """The same request with another JSON body, for moto to answer."""
    data = json.dumps(body).encode()
    environ = dict(req.raw.environ)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ["wsgi.input"] = io.BytesIO(data)
    return SandboxRequest.from_environ(environ)
