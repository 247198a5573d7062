"""The stack's ACM certificates for the global name, and their DNS validation records."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import absent_as_none, error_code
from multiregion.engine import TAG_STACK, Reader
from multiregion.names import fqdn
from multiregion.regions import REGIONS

ISSUED, PENDING = "ISSUED", "PENDING_VALIDATION"
USABLE = (ISSUED, PENDING)
FAILED_STATES = ("FAILED", "VALIDATION_TIMED_OUT", "REVOKED")


def _names(summary: dict[str, Any]) -> set[str]:
    names = {summary.get("DomainName", ""), *summary.get("SubjectAlternativeNameSummaries", [])}
    return {n.lower() for n in names if n}


def domain_certificates(aws: Reader, region: str, statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Summaries of the region's certificates that cover domain.name, whoever owns them."""
    acm = aws.client("acm", region)
    kwargs: dict[str, Any] = {"CertificateStatuses": list(statuses)} if statuses else {}
    domain = aws.config.domain.name.lower()
    return [c for page in acm.get_paginator("list_certificates").paginate(**kwargs)
            for c in page.get("CertificateSummaryList", []) if domain in _names(c)]


def certificate_tags(aws: Reader, region: str, arn: str) -> dict[str, str]:
    tags = aws.client("acm", region).list_tags_for_certificate(CertificateArn=arn).get("Tags", [])
    return {t["Key"]: t.get("Value", "") for t in tags}


def stack_certificates(aws: Reader, region: str) -> list[dict[str, Any]]:
    """Summaries of this stack's certificates for domain.name in the region, in any status."""
    return [c for c in domain_certificates(aws, region)
            if certificate_tags(aws, region, c["CertificateArn"]).get(TAG_STACK) == aws.config.service]


def preferred(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The certificate the stack uses: an issued one first, then the newest request."""
    usable = [c for c in summaries if c.get("Status") in USABLE]
    usable.sort(key=lambda c: (c["Status"] == ISSUED, str(c.get("CreatedAt", ""))), reverse=True)
    return usable[0] if usable else None


def describe_certificate(aws: Reader, region: str, arn: str) -> dict[str, Any] | None:
    client = aws.client("acm", region)
    answer = absent_as_none(lambda: client.describe_certificate(CertificateArn=arn), "ResourceNotFoundException")
    return dict(answer["Certificate"]) if answer else None


def validation_records(cert: dict[str, Any]) -> list[dict[str, str]] | None:
    """The DNS validation records of a certificate; None while ACM has not published all of them yet."""
    options = cert.get("DomainValidationOptions") or []
    records = [o.get("ResourceRecord") for o in options]
    if not options or any(r is None for r in records):
        return None
    unique = {(fqdn(r["Name"]), r["Type"], fqdn(r["Value"])): r for r in records if r}
    return list(unique.values())


def certificates_needing_validation(aws: Reader) -> tuple[list[str], list[str]]:
    """Certificates for domain.name that still need its validation record (pending ones to be validated,
    issued ones to be renewed), whoever owns them, in every known region; and the regions that could not be
    asked. The record is the same for every certificate of that name in the account (a CloudFront
    certificate in us-east-1, say), so every region is asked, not only the configured ones."""
    needing, unknown = [], []
    configured = aws.config.regions
    for region in [*configured, *(r for r in REGIONS if r not in configured)]:
        try:
            needing += [f"{region} {c['CertificateArn']}" for c in domain_certificates(aws, region, USABLE)]
        except ClientError as exc:
            if region in configured:
                raise
            unknown.append(f"{region} ({error_code(exc)})")  # e.g. a region an SCP denies
    return needing, unknown
