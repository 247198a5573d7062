"""Stage `certificates`: one DNS-validated ACM certificate for `domain.name` in every region.

ACM certificates are regional and a regional API Gateway domain needs one from its own region. The
certificate of a previous run is found again by domain and ownership tag. A request carries an
IdempotencyToken derived from stack, region and domain, so a run that stopped between the request and
the tagging gets the same certificate back when run again (tokens hold for an hour).

The validation CNAME depends only on domain and account, so the regions share one record: it is written
once per run (every region's node plans it, the executor makes the call once), and only when the zone
does not already hold it. Before the record, a tag on the zone records that this stack wrote it, so
`down` (the hosted-zone stage) removes it once no certificate needs it, even after an interruption.

ACM looks the validation record up through the public DNS, so a zone its parent does not delegate to
Route 53's name servers (a zone `up` has just created, with `domain.create_zone: true`) can never validate:
ACM would keep the certificate PENDING_VALIDATION for 72 hours and then time it out. Before waiting, the
stage asks the parent zone which name servers it delegates to, and stops with the ones to set at the
registrar instead of waiting. On a local endpoint (the sandbox, LocalStack; also `endpoint: aws` with
AWS_ENDPOINT_URL on this machine) it does not ask: their zones exist only inside them, no public parent
delegates to them, and their ACM validates from the zone itself.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from multiregion.config import Config
from multiregion.engine import TAG_STACK, Env, Inputs, NodePlan, Reader, Stage, StepError
from multiregion.executor import BuiltinContext, builtin
from multiregion.lookups import certificates as certs
from multiregion.lookups import dns, zones
from multiregion.names import ROUTE53_REGION, fqdn
from multiregion.plan import GONE, Builtin, Call, Change, Retry, Wait

RECORD_TTL = 300
# A token answered with a deleted or failed certificate (it holds for an hour) leads to the next token,
# derived from that certificate's ARN: still deterministic, so a retry follows the same chain.
MAX_TOKENS = 5
# ACM keeps trying DNS validation for 72 hours; Terraform's provider waits 75 minutes. Less than that
# gives up on a certificate that would still be issued.
ISSUE_TIMEOUT = 75 * 60.0
# ACM takes a while to notice that a deleted custom domain no longer uses the certificate.
STILL_IN_USE = Retry(("ResourceInUseException",), "ACM still sees it in use by the deleted domain", budget=600.0)


def idempotency_token(service: str, region: str, domain: str, previous_arn: str = "") -> str:
    """ACM's IdempotencyToken for this stack, region and domain: 32 word characters."""
    return hashlib.sha256(f"{service}|{region}|{domain}|{previous_arn}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CertificateSnapshot:
    certificate: dict[str, Any] | None  # DescribeCertificate of the certificate in use (ISSUED or pending)
    records_in_zone: bool = False
    zone_tags: dict[str, str] = field(default_factory=dict)
    all_arns: tuple[tuple[str, str], ...] = ()  # (arn, status) of every stack certificate, for `down`
    delegation: zones.Delegation | None = None  # asked only while a certificate waits for validation


@dataclass(frozen=True)
class CertificateStatus:
    arn: str | None
    status: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class CertificatesStage(Stage[CertificateSnapshot]):
    name = "certificates"
    help = "One ACM certificate for domain.name per region, validated through a DNS record in the hosted zone."
    scope = "region"
    depends_on = ("hosted-zone",)

    def read(self, aws: Reader, region: str) -> CertificateSnapshot:
        summary = certs.preferred(certs.stack_certificates(aws, region))
        described = certs.describe_certificate(aws, region, summary["CertificateArn"]) if summary else None
        zone = zones.find_hosted_zone(aws) if described else None
        if zone is None or described is None:
            return CertificateSnapshot(described)
        records = certs.validation_records(described) or []
        present = bool(records) and all(self._in_zone(aws, zone["Id"], r) for r in records)
        delegation = None
        if described["Status"] == certs.PENDING and checks_delegation(aws.config) and asks_the_dns(aws.clients):
            delegation = zones.check_delegation(zone["Name"], zones.delegation_set(zone))
        return CertificateSnapshot(described, present, zones.zone_tags(aws, zone["Id"]), delegation=delegation)

    @staticmethod
    def _in_zone(aws: Reader, zone_id: str, record: dict[str, str]) -> bool:
        rrset = zones.record_set(aws, zone_id, record["Name"], record["Type"])
        return rrset is not None and [fqdn(v["Value"]) for v in rrset.get("ResourceRecords", [])] == \
            [fqdn(record["Value"])]

    def read_down(self, aws: Reader, region: str) -> CertificateSnapshot:
        mine = certs.stack_certificates(aws, region)
        return CertificateSnapshot(None, all_arns=tuple((c["CertificateArn"], str(c.get("Status"))) for c in mine))

    # ------------------------------------------------------------------------------------------- diff

    def diff(self, env: Env, region: str, snapshot: CertificateSnapshot, inputs: Inputs) -> NodePlan:
        domain = env.config.domain.name
        zone_id = inputs.get("hosted-zone", "global", "zone_id")
        cert = snapshot.certificate
        if cert is None:
            request = Builtin("certificates.request", region,
                              {"domain": domain, "service": env.config.service, "tags": env.tags(region)},
                              outputs={"certificate_arn": "arn"})
            arn = self.ref(region, "certificate_arn", "the certificate requested above")
            change = self.change(region, "create", f"certificate {domain}",
                                 f"ACM, DNS validation through zone {env.config.domain.hosted_zone} (one CNAME "
                                 "shared by every region)",
                                 request, *self._validate(env, region, arn, zone_id, published=False),
                                 *self._check_delegation(env, region, zone_id), self._wait_issued(env, region, arn))
            return NodePlan(changes=(change,), outputs={"certificate_arn": arn})
        arn = cert["CertificateArn"]
        warnings: tuple[str, ...] = ()
        if snapshot.delegation is not None and snapshot.delegation.verdict == zones.UNDELEGATED:
            raise zones.undelegated_error(self.name, region, snapshot.delegation)
        if snapshot.delegation is not None and snapshot.delegation.verdict == zones.UNKNOWN:
            warnings = (f"[{region}] {snapshot.delegation.detail}; waiting for ACM all the same",)
        changes: list[Change] = []
        records = certs.validation_records(cert)
        tagged = snapshot.zone_tags.get(zones.validation_tag(env.config)) is not None
        if records is None or not snapshot.records_in_zone or not tagged:
            if records is not None and snapshot.records_in_zone:
                why = "record that this stack wrote it (a tag on the zone), so `down` can remove it"
            else:
                why = "ACM renews with it" if cert["Status"] == certs.ISSUED else f"certificate {arn} waits for it"
            changes.append(self.change(region, "create", f"validation record {domain}", why,
                                       *self._validate(env, region, arn, zone_id, published=records is not None,
                                                       records=records)))
        waits = () if cert["Status"] == certs.ISSUED else (self._wait_issued(env, region, arn),)
        return NodePlan(changes=tuple(changes), waits=waits, outputs={"certificate_arn": arn}, warnings=warnings)

    @staticmethod
    def _check_delegation(env: Env, region: str, zone_id: Any) -> tuple[Builtin, ...]:
        """Before the wait for a new certificate: is the zone (maybe created moments ago) delegated?"""
        if not checks_delegation(env.config):
            return ()
        return (Builtin("certificates.check-delegation", region, {"zone_id": zone_id}),)

    def _validate(self, env: Env, region: str, arn: Any, zone_id: Any, published: bool,
                  records: list[dict[str, str]] | None = None) -> tuple[Any, ...]:
        """Tag the zone, then UPSERT the validation record, once per run for every region."""
        ops: list[Any] = []
        name: Any
        value: Any
        if published and records:
            name, value = records[0]["Name"], records[0]["Value"]
        else:
            name = self.ref(region, "validation_name", "the validation record ACM publishes")
            value = self.ref(region, "validation_value", "the validation record's value")
            ops.append(Wait(f"ACM to publish the validation record of {env.config.domain.name}", "acm", region,
                            "describe_certificate", {"CertificateArn": arn},
                            "Certificate.DomainValidationOptions[0].ResourceRecord && 'published' || 'not yet'",
                            ("published",), gone=("ResourceNotFoundException",), timeout=600.0,
                            outputs={"validation_name": "Certificate.DomainValidationOptions[0].ResourceRecord.Name",
                                     "validation_value":
                                         "Certificate.DomainValidationOptions[0].ResourceRecord.Value"}))
        zone = zone_id
        ops.append(Call("route53", ROUTE53_REGION, "change_tags_for_resource",
                        {"ResourceType": "hostedzone", "ResourceId": zone,
                         "AddTags": [{"Key": zones.validation_tag(env.config), "Value": name}]},
                        once=f"validation-tag:{env.config.domain.name}"))
        ops.append(Call("route53", ROUTE53_REGION, "change_resource_record_sets", {
            "HostedZoneId": zone,
            "ChangeBatch": {"Comment": f"ACM validation for {env.config.domain.name} "
                                       f"(multiregion {env.config.service})",
                            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                                "Name": name, "Type": "CNAME", "TTL": RECORD_TTL,
                                "ResourceRecords": [{"Value": value}]}}]}},
            once=f"validation-record:{env.config.domain.name}"))
        return tuple(ops)

    @staticmethod
    def _wait_issued(env: Env, region: str, arn: Any) -> Wait:
        return Wait(f"certificate {env.config.domain.name} ISSUED (DNS validation)", "acm", region,
                    "describe_certificate", {"CertificateArn": arn}, "Certificate.Status", (certs.ISSUED,),
                    failed=(*certs.FAILED_STATES, GONE), gone=("ResourceNotFoundException",),
                    reason="Certificate.FailureReason", timeout=ISSUE_TIMEOUT, duration="acm_validation",
                    hint="DNS validation needs the zone delegated from the registrar (check its NS records) and "
                         "CAA records that allow Amazon; run `up` again to keep waiting or to request a new one")

    # ------------------------------------------------------------------------------------------- down

    def destroy(self, env: Env, region: str, snapshot: CertificateSnapshot) -> NodePlan:
        return NodePlan(changes=tuple(
            self.change(region, "delete", f"certificate {arn}", f"{status}, down",
                        Call("acm", region, "delete_certificate", {"CertificateArn": arn}, retry=(STILL_IN_USE,),
                             done_if=("ResourceNotFoundException",)))
            for arn, status in snapshot.all_arns))

    def status(self, aws: Reader, region: str) -> CertificateStatus:
        mine = certs.stack_certificates(aws, region)
        cert = certs.preferred(mine) or (mine[-1] if mine else None)
        return CertificateStatus(cert["CertificateArn"] if cert else None, cert["Status"] if cert else None)


def checks_delegation(config: Config) -> bool:
    """Only on AWS: a local endpoint's zones are delegated by no public parent (see the module docstring)."""
    return config.endpoint == "aws"


def asks_the_dns(clients: Any) -> bool:
    """Whether the public DNS can say anything about this stack's zone: not when AWS_ENDPOINT_URL sends the
    calls to this machine (LocalStack, a sandbox), whose zones exist only there, unless
    MULTIREGION_DNS_RESOLVER names the DNS to ask (how the tests drive this path on 127.0.0.1)."""
    return not getattr(clients, "local", False) or bool(os.environ.get(dns.RESOLVER_ENV, "").strip())


@builtin("certificates.check-delegation")
def check_delegation(ctx: BuiltinContext, region: str, zone_id: str) -> dict[str, Any]:
    """Stop before the certificate wait when the zone is not delegated to its Route 53 name servers."""
    if not asks_the_dns(ctx.clients):
        return {}
    found = ctx.clients("route53", ROUTE53_REGION).get_hosted_zone(Id=zone_id)
    zone = {**found["HostedZone"], "DelegationSet": found.get("DelegationSet", {})}
    delegation = zones.check_delegation(zone["Name"], zones.delegation_set(zone))
    if delegation.verdict == zones.UNDELEGATED:
        raise zones.undelegated_error("certificates", region, delegation)
    if delegation.verdict == zones.UNKNOWN:
        ctx.info(f"[{region}] {delegation.detail}; waiting for ACM all the same")
    return {}


@builtin("certificates.request")
def request_certificate(ctx: BuiltinContext, region: str, domain: str, service: str,
                        tags: dict[str, str]) -> dict[str, Any]:
    """RequestCertificate with the stack's idempotency token; the certificate tagged as the stack's.

    The token answers a repeated request (a retry after a crash) with the certificate it first requested,
    within an hour; if that certificate was deleted or failed since, the next token of the chain is used."""
    acm = ctx.clients("acm", region)
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    previous = ""
    for _ in range(MAX_TOKENS):
        arn = str(acm.request_certificate(DomainName=domain, ValidationMethod="DNS", Tags=tag_list,
                                          IdempotencyToken=idempotency_token(service, region, domain, previous))
                  ["CertificateArn"])
        described = _describe_new(ctx, acm, arn)
        if described is not None and described["Status"] in certs.USABLE:
            listed = acm.list_tags_for_certificate(CertificateArn=arn).get("Tags", [])
            found = {t["Key"]: t.get("Value") for t in listed}
            if found.get(TAG_STACK) != tags.get(TAG_STACK):
                # The token answered with a certificate requested by a run that stopped before tagging.
                acm.add_tags_to_certificate(CertificateArn=arn, Tags=tag_list)
            return {"arn": arn}
        previous = arn
    raise StepError("certificates", region, f"certificate {domain}",
                    f"ACM keeps answering with unusable certificates (last: {previous})",
                    "wait an hour for the idempotency tokens to expire, then run `up` again")


def _describe_new(ctx: BuiltinContext, acm: Any, arn: str, tries: int = 5) -> dict[str, Any] | None:
    """Right after RequestCertificate ACM may not find the certificate yet (eventual consistency): a few
    tries before "not found" is taken to mean the token answered with a deleted certificate."""
    for attempt in range(tries):
        try:
            return dict(acm.describe_certificate(CertificateArn=arn)["Certificate"])
        except acm.exceptions.ResourceNotFoundException:
            if attempt == tries - 1:
                return None
            ctx.sleep(1.0)
    return None

