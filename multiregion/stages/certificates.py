"""Stage `certificates`: one DNS-validated ACM certificate for `domain.name` in every region.

ACM certificates are regional and a regional API Gateway domain needs one from its own region. The
certificate of a previous run is found again by domain and ownership tag. A request carries an
IdempotencyToken derived from stack, region and domain, so a run that stopped between the request and
the tagging gets the same certificate back when run again (tokens hold for an hour). The validation CNAME
depends only on domain and account, so the regions share one record: it is written once per run, and only
when the zone does not already hold it. `down` leaves it in the zone until no certificate of any region
needs it (the hosted-zone stage removes it after every region's certificate is gone).
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import absent_as_none, error_code
from multiregion.engine import TAG_STACK, Change, Context, Stage, StepError
from multiregion.regions import REGIONS
from multiregion.stages.zone import existing_hosted_zone_id, fqdn, hosted_zone_id, record_sets, short_id

STAGE = "certificates"
ISSUED, PENDING = "ISSUED", "PENDING_VALIDATION"
USABLE = (ISSUED, PENDING)
FAILED_STATES = ("FAILED", "VALIDATION_TIMED_OUT", "REVOKED")
VALIDATION_SUFFIX = ".acm-validations.aws."
RECORD_TTL = 300
# A token answered with a deleted or failed certificate (it holds for an hour) leads to the next token,
# derived from that certificate's ARN: still deterministic, so a retry follows the same chain.
_MAX_TOKENS = 5


def idempotency_token(ctx: Context, region: str, previous_arn: str = "") -> str:
    """ACM's IdempotencyToken for this stack, region and domain: 32 word characters."""
    seed = f"{ctx.config.service}|{region}|{ctx.config.domain.name}|{previous_arn}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _names(summary: dict[str, Any]) -> set[str]:
    names = {summary.get("DomainName", ""), *summary.get("SubjectAlternativeNameSummaries", [])}
    return {n.lower() for n in names if n}


def domain_certificates(ctx: Context, region: str, statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Summaries of the region's certificates that cover domain.name, whoever owns them."""
    acm = ctx.clients("acm", region)
    kwargs: dict[str, Any] = {"CertificateStatuses": list(statuses)} if statuses else {}
    domain = ctx.config.domain.name.lower()
    return [c for page in acm.get_paginator("list_certificates").paginate(**kwargs)
            for c in page.get("CertificateSummaryList", []) if domain in _names(c)]


def certificate_tags(ctx: Context, region: str, arn: str) -> dict[str, str]:
    tags = ctx.clients("acm", region).list_tags_for_certificate(CertificateArn=arn).get("Tags", [])
    return {t["Key"]: t.get("Value", "") for t in tags}


def stack_certificates(ctx: Context, region: str) -> list[dict[str, Any]]:
    """Summaries of this stack's certificates for domain.name in the region, in any status."""
    return [c for c in domain_certificates(ctx, region)
            if certificate_tags(ctx, region, c["CertificateArn"]).get(TAG_STACK) == ctx.config.service]


def _preferred(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [c for c in summaries if c.get("Status") in USABLE]
    # An issued certificate first, then the newest request.
    usable.sort(key=lambda c: (c["Status"] == ISSUED, str(c.get("CreatedAt", ""))), reverse=True)
    return usable[0] if usable else None


def current_certificate(ctx: Context, region: str) -> dict[str, Any] | None:
    """The summary of the certificate the stack uses in the region (ISSUED or PENDING_VALIDATION)."""
    return _preferred(stack_certificates(ctx, region))


def certificate_arn(ctx: Context, region: str) -> str | None:
    cert = current_certificate(ctx, region)
    return cert["CertificateArn"] if cert else None


def describe_certificate(ctx: Context, region: str, arn: str) -> dict[str, Any] | None:
    answer = absent_as_none(lambda: ctx.clients("acm", region).describe_certificate(CertificateArn=arn),
                            "ResourceNotFoundException")
    return answer["Certificate"] if answer else None


def validation_records(cert: dict[str, Any]) -> list[dict[str, str]] | None:
    """The DNS validation records of a certificate; None while ACM has not published all of them yet."""
    options = cert.get("DomainValidationOptions") or []
    records = [o.get("ResourceRecord") for o in options]
    if not options or any(r is None for r in records):
        return None
    unique = {(fqdn(r["Name"]), r["Type"], fqdn(r["Value"])): r for r in records if r}
    return list(unique.values())


def record_in_zone(ctx: Context, zone_id: str, record: dict[str, str]) -> bool:
    page = ctx.clients("route53", ctx.config.primary).list_resource_record_sets(
        HostedZoneId=short_id(zone_id), StartRecordName=record["Name"], StartRecordType=record["Type"],
        MaxItems="1")
    for rrset in page.get("ResourceRecordSets", [])[:1]:
        if fqdn(rrset["Name"]) == fqdn(record["Name"]) and rrset["Type"] == record["Type"]:
            return [fqdn(v["Value"]) for v in rrset.get("ResourceRecords", [])] == [fqdn(record["Value"])]
    return False


def ensure_validation_record(ctx: Context, zone_id: str, record: dict[str, str]) -> bool:
    """UPSERT the record unless the zone already holds it. True when it was written."""
    if record_in_zone(ctx, zone_id, record):
        return False
    ctx.clients("route53", ctx.config.primary).change_resource_record_sets(
        HostedZoneId=short_id(zone_id),
        ChangeBatch={"Comment": f"ACM validation for {ctx.config.domain.name} (multiregion {ctx.config.service})",
                     "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                         "Name": record["Name"], "Type": record["Type"], "TTL": RECORD_TTL,
                         "ResourceRecords": [{"Value": record["Value"]}]}}]})
    return True


def _is_validation_record(rrset: dict[str, Any], domain: str) -> bool:
    name = fqdn(rrset["Name"])
    label, _, rest = name.partition(".")
    values = [fqdn(v["Value"]) for v in rrset.get("ResourceRecords", [])]
    return (rrset["Type"] == "CNAME" and label.startswith("_") and rest == domain and bool(values)
            and all(v.endswith(VALIDATION_SUFFIX) for v in values))


def released_records(ctx: Context) -> set[tuple[str, tuple[str, ...]]]:
    """(name, values) of the validation records of the certificates this run's `down` deletes."""
    return ctx.memo((STAGE, "released-records"), set)  # type: ignore[no-any-return]


def unused_validation_records(ctx: Context, zone_id: str) -> list[dict[str, Any]]:
    """The zone's ACM validation records for domain.name, if no certificate (this stack's or not) still
    needs one: pending certificates to be validated, issued ones to be renewed. Certificates of the same
    name and account share the record in every region (a CloudFront certificate in us-east-1, say), so
    every known region is asked, not only the configured ones."""
    domain = fqdn(ctx.config.domain.name)
    # Only records our own certificates used: another account's certificate for the same name has a
    # record of its own in this zone, and its renewal depends on it.
    ours = released_records(ctx)
    records = [rr for rr in record_sets(ctx, zone_id) if _is_validation_record(rr, domain)
               and (fqdn(rr["Name"]), tuple(fqdn(v["Value"]) for v in rr["ResourceRecords"])) in ours]
    if not records:
        return []
    needing, unknown = [], []
    for region in [*ctx.config.regions, *(r for r in REGIONS if r not in ctx.config.regions)]:
        try:
            needing += [f"{region} {c['CertificateArn']}" for c in domain_certificates(ctx, region, USABLE)]
        except ClientError as exc:
            if region in ctx.config.regions:
                raise
            unknown.append(f"{region} ({error_code(exc)})")  # e.g. a region an SCP denies
    if needing or unknown:
        why = f"certificates still use it ({', '.join(needing)})" if needing else \
            f"some regions could not be checked: {', '.join(unknown)}"
        ctx.reporter.warn(f"the validation record of {ctx.config.domain.name} is kept: {why}")
        return []
    return records


class CertificatesStage(Stage):
    name = STAGE
    help = "One ACM certificate for domain.name per region, validated through a DNS record in the hosted zone."
    scope = "region"
    depends_on = ("hosted-zone",)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._requested: dict[str, str] = {}  # region -> ARN requested by this run

    @property
    def domain(self) -> str:
        return self.config.domain.name

    def acm(self, region: str) -> Any:
        return self.ctx.clients("acm", region)

    # ------------------------------------------------------------------ plan and apply

    def plan(self, region: str) -> list[Change]:
        cert = current_certificate(self.ctx, region)
        if cert is None:
            return [self.change(region, "create", f"certificate {self.domain}",
                                f"ACM, DNS validation through zone {self.config.domain.hosted_zone} (one CNAME "
                                "shared by every region)", lambda: self._request(region))]
        arn = cert["CertificateArn"]
        described = describe_certificate(self.ctx, region, arn)
        if described is None:  # deleted between listing and describing; the next run requests another
            raise StepError(self.name, region, f"certificate {arn}", "disappeared while being read",
                            "run the same command again")
        records = validation_records(described)
        zone_id = existing_hosted_zone_id(self.ctx)
        if records is not None and zone_id is not None and all(record_in_zone(self.ctx, zone_id, r)
                                                                for r in records):
            return []
        why = ("ACM renews with it" if described["Status"] == ISSUED
               else f"certificate {arn} waits for it")
        return [self.change(region, "create", f"validation record {self.domain}", why,
                            lambda: self._validate(region, arn))]

    def _request(self, region: str) -> None:
        arn = self._request_certificate(region)
        self._requested[region] = arn
        if certificate_tags(self.ctx, region, arn).get(TAG_STACK) != self.config.service:
            # The token answered with a certificate requested by a run that stopped before tagging.
            self.acm(region).add_tags_to_certificate(CertificateArn=arn, Tags=self._tag_list(region))
        self._validate(region, arn)

    def _tag_list(self, region: str) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.ctx.tags(region).items()]

    def _request_certificate(self, region: str) -> str:
        previous = ""
        for _ in range(_MAX_TOKENS):
            arn = self.acm(region).request_certificate(
                DomainName=self.domain, ValidationMethod="DNS", Tags=self._tag_list(region),
                IdempotencyToken=idempotency_token(self.ctx, region, previous))["CertificateArn"]
            described = self._describe_new(region, arn)
            if described is not None and described["Status"] in USABLE:
                return arn
            previous = arn
        raise StepError(self.name, region, f"certificate {self.domain}",
                        f"ACM keeps answering with unusable certificates (last: {previous})",
                        "wait an hour for the idempotency tokens to expire, then run `up` again")

    def _describe_new(self, region: str, arn: str, tries: int = 5) -> dict[str, Any] | None:
        """Right after RequestCertificate ACM may not find the certificate yet (eventual consistency): a few
        tries before "not found" is taken to mean the token answered with a deleted certificate."""
        for attempt in range(tries):
            described = describe_certificate(self.ctx, region, arn)
            if described is not None or attempt == tries - 1:
                return described
            self.ctx.sleep(self.ctx.poll_interval)
        return None

    def _validate(self, region: str, arn: str) -> None:
        records = self._published_records(region, arn)
        zone_id = hosted_zone_id(self.ctx)
        for record in records:
            key = ("acm-validation-record", zone_id, fqdn(record["Name"]), fqdn(record["Value"]))
            # Every region's node gets here with the same record: the first one writes it, once.
            self.ctx.memo(key, lambda record=record: ensure_validation_record(self.ctx, zone_id, record))

    def _published_records(self, region: str, arn: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []

        def published() -> tuple[bool, str]:
            cert = describe_certificate(self.ctx, region, arn)
            if cert is None:
                raise StepError(self.name, region, f"certificate {arn}", "was deleted while being validated",
                                "run `up` again to request a new one")
            records = validation_records(cert)
            found[:] = records or []
            return records is not None, "published" if records else "not published yet"

        self.ctx.wait_until(f"ACM to publish the validation record of {self.domain}", region, published)
        return found

    # ------------------------------------------------------------------ settle

    def settle(self, region: str) -> None:
        arn = self._requested.get(region) or self._settling_arn(region)

        def issued() -> tuple[bool, str]:
            cert = describe_certificate(self.ctx, region, arn)
            if cert is None:
                raise StepError(self.name, region, f"certificate {arn}", "was deleted while being validated",
                                "run `up` again to request a new one")
            status = cert["Status"]
            if status in FAILED_STATES:
                reason = f" ({cert['FailureReason']})" if cert.get("FailureReason") else ""
                raise StepError(self.name, region, f"certificate {arn}", f"certificate is {status}{reason}",
                                "check the domain's CAA records and the validation CNAME in the zone; the "
                                "next `up` requests a new certificate")
            return status == ISSUED, status

        try:
            self.ctx.wait_until(f"certificate {self.domain} ISSUED (DNS validation; minutes on AWS)", region,
                                issued)
        except TimeoutError as exc:
            raise StepError(self.name, region, f"certificate {arn}", str(exc),
                            "DNS validation needs the zone delegated from the registrar (check its NS "
                            "records); run `up` again to keep waiting") from None

    def _settling_arn(self, region: str) -> str:
        cert = current_certificate(self.ctx, region)
        if cert is not None:
            return str(cert["CertificateArn"])
        raise StepError(self.name, region, f"certificate {self.domain}", "no usable certificate of this stack",
                        "run `up` again to request one")

    # ------------------------------------------------------------------ down and status

    def destroy(self, region: str) -> list[Change]:
        certificates = stack_certificates(self.ctx, region)
        for c in certificates:  # remembered before deleting: afterwards ACM no longer tells
            described = describe_certificate(self.ctx, region, c["CertificateArn"])
            for record in validation_records(described or {}) or []:
                released_records(self.ctx).add((fqdn(record["Name"]), (fqdn(record["Value"]),)))
        return [self.change(region, "delete", f"certificate {c['CertificateArn']}", f"{c['Status']}, down",
                            lambda arn=c["CertificateArn"]: self._delete(region, arn)) for c in certificates]

    def _delete(self, region: str, arn: str) -> None:
        def deleted() -> tuple[bool, str]:
            try:
                self.acm(region).delete_certificate(CertificateArn=arn)
            except Exception as exc:
                # ACM takes a while to notice that a deleted custom domain no longer uses the certificate.
                if error_code(exc) == "ResourceInUseException":
                    return False, "still in use"
                if error_code(exc) == "ResourceNotFoundException":
                    return True, "already gone"
                raise
            return True, "deleted"

        self.ctx.wait_until(f"certificate {arn} to be released and deleted", region, deleted)

    def status(self, region: str) -> dict[str, Any]:
        mine = stack_certificates(self.ctx, region)
        cert = _preferred(mine) or (mine[-1] if mine else None)
        if cert is None:
            return {"arn": None, "status": None}
        return {"arn": cert["CertificateArn"], "status": cert["Status"]}
