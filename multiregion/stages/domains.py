"""Stage `domains`: the custom domain `domain.name` in every region, mapped to that region's API stage.

A REGIONAL custom domain may carry the same name in several regions, which is what latency routing
needs: each region answers for the global name with its own certificate. The domain gives the routing
stage its target (`regionalDomainName`, `regionalHostedZoneId`). A domain of that name that neither
carries the stack's tag nor uses one of the stack's certificates belongs to someone else and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiregion.engine import TAG_STACK, Conflict, Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups import apis
from multiregion.lookups import certificates as certs
from multiregion.names import EMPTY_BASE_PATH
from multiregion.plan import GONE, Call, Change, Wait

SECURITY_POLICY = "TLS_1_2"


@dataclass(frozen=True)
class DomainSnapshot:
    domain: dict[str, Any] | None
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    stack_certificates: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainStatus:
    domain: str | None
    regional_domain_name: str | None = None
    regional_hosted_zone_id: str | None = None
    certificate_arn: str | None = None
    security_policy: str | None = None
    mapping: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self)) if self.domain else {"domain": None}


def wait_available(domain: str, region: str) -> Wait:
    return Wait(f"domain {domain} AVAILABLE", "apigateway", region, "get_domain_name", {"domainName": domain},
                "domainNameStatus || 'AVAILABLE'", ("AVAILABLE",), failed=(GONE,), gone=("NotFoundException",),
                reason="domainNameStatusMessage", duration="domain_available")


class DomainsStage(Stage[DomainSnapshot]):
    name = "domains"
    help = "A regional custom domain for domain.name per region, with its certificate, mapped to the API stage."
    scope = "region"
    depends_on = ("api", "certificates")

    def read(self, aws: Reader, region: str) -> DomainSnapshot:
        domain = apis.get_domain(aws, region)
        if domain is None:
            return DomainSnapshot(None)
        return DomainSnapshot(domain, apis.base_path_mappings(aws, region),
                              tuple(c["CertificateArn"] for c in certs.stack_certificates(aws, region)))

    def _owned(self, env: Env, snapshot: DomainSnapshot) -> bool:
        domain = snapshot.domain or {}
        return domain.get("regionalCertificateArn") in snapshot.stack_certificates or \
            (domain.get("tags") or {}).get(TAG_STACK) == env.config.service

    def diff(self, env: Env, region: str, snapshot: DomainSnapshot, inputs: Inputs) -> NodePlan:
        name, stage = env.config.domain.name, env.config.api.stage
        api_id = inputs.get("api", region, "api_id")
        cert_arn = inputs.get("certificates", region, "certificate_arn")
        target = f"{api_id}/{stage}"
        mapping_create = Call("apigateway", region, "create_base_path_mapping",
                              {"domainName": name, "restApiId": api_id, "stage": stage})
        domain = snapshot.domain
        if domain is None:
            create = Call("apigateway", region, "create_domain_name", {
                "domainName": name, "regionalCertificateArn": cert_arn,
                "endpointConfiguration": {"types": ["REGIONAL"]}, "securityPolicy": SECURITY_POLICY,
                "tags": env.tags(region)},
                outputs={"regional_domain_name": "regionalDomainName", "regional_zone_id": "regionalHostedZoneId"})
            created = (self.change(region, "create", f"domain {name}",
                                   f"REGIONAL, {SECURITY_POLICY}, certificate {cert_arn}", create,
                                   wait_available(name, region)),
                       self.change(region, "create", f"base path mapping {name}/", f"-> {target}", mapping_create))
            return NodePlan(changes=created, outputs={
                "regional_domain_name": self.ref(region, "regional_domain_name", "the regional domain created above"),
                "regional_zone_id": self.ref(region, "regional_zone_id", "the regional domain's hosted zone id")})
        types = (domain.get("endpointConfiguration") or {}).get("types") or []
        if "REGIONAL" not in types:
            raise Conflict(self.name, region, f"domain {name}",
                           f"exists as a {'/'.join(types) or 'EDGE'} custom domain, not REGIONAL",
                           "it is left untouched; delete it or choose another domain.name")
        if not self._owned(env, snapshot):
            raise Conflict(self.name, region, f"domain {name}",
                           f"exists with certificate {domain.get('regionalCertificateArn')}, which is not this stack's",
                           "it is left untouched; delete that domain or choose another domain.name")
        changes: list[Change] = []
        current = domain.get("regionalCertificateArn")
        if current != cert_arn:
            changes.append(self._patch(region, name, "/regionalCertificateArn", cert_arn,
                                       f"certificate {current} -> {cert_arn}"))
        policy = domain.get("securityPolicy")
        if policy != SECURITY_POLICY:
            changes.append(self._patch(region, name, "/securityPolicy", SECURITY_POLICY,
                                       f"security policy {policy} -> {SECURITY_POLICY}"))
        mapping = snapshot.mappings.get(EMPTY_BASE_PATH)
        if mapping is None:
            changes.append(self.change(region, "create", f"base path mapping {name}/", f"-> {target}", mapping_create))
        elif (mapping.get("restApiId"), mapping.get("stage")) != (api_id, stage):
            patch = [{"op": "replace", "path": "/restapiId", "value": api_id},
                     {"op": "replace", "path": "/stage", "value": stage}]
            changes.append(self.change(region, "update", f"base path mapping {name}/",
                                       f"{mapping.get('restApiId')}/{mapping.get('stage')} -> {target}",
                                       Call("apigateway", region, "update_base_path_mapping",
                                            {"domainName": name, "basePath": EMPTY_BASE_PATH,
                                             "patchOperations": patch})))
        status = domain.get("domainNameStatus", "AVAILABLE")
        waits = (wait_available(name, region),) if status != "AVAILABLE" and not changes else ()
        return NodePlan(changes=tuple(changes), waits=waits, outputs={
            "regional_domain_name": domain.get("regionalDomainName"),
            "regional_zone_id": domain.get("regionalHostedZoneId")})

    def _patch(self, region: str, name: str, path: str, value: Any, reason: str) -> Change:
        return self.change(region, "update", f"domain {name}", reason,
                           Call("apigateway", region, "update_domain_name",
                                {"domainName": name, "patchOperations": [{"op": "replace", "path": path,
                                                                          "value": value}]}),
                           wait_available(name, region))

    def destroy(self, env: Env, region: str, snapshot: DomainSnapshot) -> NodePlan:
        domain, name = snapshot.domain, env.config.domain.name
        if domain is None:
            return NodePlan()
        if not self._owned(env, snapshot):
            return NodePlan(warnings=(f"[{region}] domain {name} is not this stack's; left alone",))
        changes = [self.change(region, "delete", f"base path mapping {name}/{'' if path == EMPTY_BASE_PATH else path}",
                               f"-> {m.get('restApiId')}/{m.get('stage')}",
                               Call("apigateway", region, "delete_base_path_mapping",
                                    {"domainName": name, "basePath": path}, done_if=("NotFoundException",)))
                   for path, m in snapshot.mappings.items()]
        changes.append(self.change(region, "delete", f"domain {name}", str(domain.get("regionalDomainName", "")),
                                   Call("apigateway", region, "delete_domain_name", {"domainName": name},
                                        done_if=("NotFoundException",))))
        return NodePlan(changes=tuple(changes))

    def status(self, aws: Reader, region: str) -> DomainStatus:
        domain = apis.get_domain(aws, region)
        if domain is None:
            return DomainStatus(None)
        mapping = apis.base_path_mappings(aws, region).get(EMPTY_BASE_PATH)
        return DomainStatus(aws.config.domain.name, domain.get("regionalDomainName"),
                            domain.get("regionalHostedZoneId"), domain.get("regionalCertificateArn"),
                            domain.get("securityPolicy"),
                            f"{mapping.get('restApiId')}/{mapping.get('stage')}" if mapping else None)
