"""Stage `domains`: the custom domain `domain.name` in every region, mapped to that region's API stage.

A REGIONAL custom domain may carry the same name in several regions, which is what latency routing
needs: each region answers for the global name with its own certificate. The domain gives the routing
stage its target (`regionalDomainName`, `regionalHostedZoneId`, see `regional_domain`). A domain of that
name that neither carries the stack's tag nor uses one of the stack's certificates belongs to someone
else and is left alone.
"""

from __future__ import annotations

from typing import Any

from multiregion.aws import absent_as_none
from multiregion.engine import TAG_STACK, Change, Conflict, Context, Stage, StepError
from multiregion.stages.api import find_rest_api
from multiregion.stages.certificates import ISSUED, current_certificate, stack_certificates

STAGE = "domains"
SECURITY_POLICY = "TLS_1_2"
EMPTY_BASE_PATH = "(none)"  # how API Gateway names the empty base path, in answers and in URIs


def get_domain(ctx: Context, region: str) -> dict[str, Any] | None:
    answer = absent_as_none(lambda: ctx.clients("apigateway", region).get_domain_name(
        domainName=ctx.config.domain.name), "NotFoundException")
    return dict(answer) if answer else None


def regional_domain(ctx: Context, region: str) -> tuple[str, str] | None:
    """(regionalDomainName, regionalHostedZoneId) of domain.name in the region, or None if not there yet."""
    domain = get_domain(ctx, region)
    if domain is None or not domain.get("regionalDomainName") or not domain.get("regionalHostedZoneId"):
        return None
    return domain["regionalDomainName"], domain["regionalHostedZoneId"]


def base_path_mappings(ctx: Context, region: str) -> dict[str, dict[str, Any]]:
    """The domain's mappings by base path ("(none)" for the empty one)."""
    client = ctx.clients("apigateway", region)
    pages = client.get_paginator("get_base_path_mappings").paginate(domainName=ctx.config.domain.name)
    return {m.get("basePath") or EMPTY_BASE_PATH: m for page in pages for m in page.get("items", [])}


class DomainsStage(Stage):
    name = STAGE
    help = "A regional custom domain for domain.name per region, with its certificate, mapped to the API stage."
    scope = "region"
    depends_on = ("api", "certificates")

    @property
    def domain(self) -> str:
        return self.config.domain.name

    def apigateway(self, region: str) -> Any:
        return self.ctx.clients("apigateway", region)

    # ------------------------------------------------------------------ what the domain should use

    def _certificate(self, region: str) -> str:
        cert = current_certificate(self.ctx, region)
        if cert is None or cert["Status"] != ISSUED:
            state = "none" if cert is None else f"{cert['CertificateArn']} is {cert['Status']}"
            raise StepError(self.name, region, f"domain {self.domain}", f"no ISSUED certificate ({state})",
                            "run `multiregion up`: the certificates stage comes first")
        return str(cert["CertificateArn"])

    def _api_id(self, region: str) -> str:
        api = find_rest_api(self.ctx, region)
        if api is None:
            raise StepError(self.name, region, f"domain {self.domain}", f"no REST API {self.config.service}",
                            "run `multiregion up`: the api stage comes first")
        return str(api["id"])

    # ------------------------------------------------------------------ plan

    def plan(self, region: str) -> list[Change]:
        cert = current_certificate(self.ctx, region)
        api = find_rest_api(self.ctx, region)
        cert_text = cert["CertificateArn"] if cert else "the certificate of stage certificates"
        target_text = f"{api['id'] if api else 'the API'}/{self.config.api.stage}"
        domain = get_domain(self.ctx, region)
        if domain is None:
            return [self.change(region, "create", f"domain {self.domain}",
                                f"REGIONAL, {SECURITY_POLICY}, certificate {cert_text}",
                                lambda: self._create(region)),
                    self.change(region, "create", f"base path mapping {self.domain}/", f"-> {target_text}",
                                lambda: self._map(region, None))]
        changes = self._domain_changes(region, domain, cert["CertificateArn"] if cert else None)
        mapping = base_path_mappings(self.ctx, region).get(EMPTY_BASE_PATH)
        wanted = (api["id"] if api else None, self.config.api.stage)
        if mapping is None:
            changes.append(self.change(region, "create", f"base path mapping {self.domain}/", f"-> {target_text}",
                                       lambda: self._map(region, None)))
        elif (mapping.get("restApiId"), mapping.get("stage")) != wanted:
            current = f"{mapping.get('restApiId')}/{mapping.get('stage')}"
            changes.append(self.change(region, "update", f"base path mapping {self.domain}/",
                                       f"{current} -> {target_text}", lambda: self._map(region, mapping)))
        return changes

    def _domain_changes(self, region: str, domain: dict[str, Any], cert_arn: str | None) -> list[Change]:
        types = (domain.get("endpointConfiguration") or {}).get("types") or []
        if "REGIONAL" not in types:
            raise Conflict(self.name, region, f"domain {self.domain}",
                           f"exists as a {'/'.join(types) or 'EDGE'} custom domain, not REGIONAL",
                           "it is left untouched; delete it or choose another domain.name")
        current = domain.get("regionalCertificateArn")
        ours = {c["CertificateArn"] for c in stack_certificates(self.ctx, region)}
        if current not in ours and (domain.get("tags") or {}).get(TAG_STACK) != self.config.service:
            raise Conflict(self.name, region, f"domain {self.domain}",
                           f"exists with certificate {current}, which is not this stack's",
                           "it is left untouched; delete that domain or choose another domain.name")
        changes = []
        if cert_arn is not None and current != cert_arn:
            changes.append(self.change(region, "update", f"domain {self.domain}",
                                       f"certificate {current} -> {cert_arn}",
                                       lambda: self._patch(region, "/regionalCertificateArn",
                                                           self._certificate(region))))
        policy = domain.get("securityPolicy")
        if policy != SECURITY_POLICY:
            changes.append(self.change(region, "update", f"domain {self.domain}",
                                       f"security policy {policy} -> {SECURITY_POLICY}",
                                       lambda: self._patch(region, "/securityPolicy", SECURITY_POLICY)))
        return changes

    # ------------------------------------------------------------------ apply

    def _create(self, region: str) -> None:
        self.apigateway(region).create_domain_name(
            domainName=self.domain, regionalCertificateArn=self._certificate(region),
            endpointConfiguration={"types": ["REGIONAL"]}, securityPolicy=SECURITY_POLICY,
            tags=self.ctx.tags(region))

    def _patch(self, region: str, path: str, value: str) -> None:
        self.apigateway(region).update_domain_name(
            domainName=self.domain, patchOperations=[{"op": "replace", "path": path, "value": value}])

    def _map(self, region: str, existing: dict[str, Any] | None) -> None:
        api_id, stage = self._api_id(region), self.config.api.stage
        if existing is None:
            self.apigateway(region).create_base_path_mapping(domainName=self.domain, restApiId=api_id, stage=stage)
            return
        self.apigateway(region).update_base_path_mapping(
            domainName=self.domain, basePath=EMPTY_BASE_PATH,
            patchOperations=[{"op": "replace", "path": "/restapiId", "value": api_id},
                             {"op": "replace", "path": "/stage", "value": stage}])

    def settle(self, region: str) -> None:
        def available() -> tuple[bool, str]:
            domain = get_domain(self.ctx, region)
            status = domain.get("domainNameStatus", "AVAILABLE") if domain else "MISSING"
            return status == "AVAILABLE", status

        self.ctx.wait_until(f"domain {self.domain} AVAILABLE", region, available)

    # ------------------------------------------------------------------ down and status

    def destroy(self, region: str) -> list[Change]:
        domain = get_domain(self.ctx, region)
        if domain is None:
            return []
        ours = {c["CertificateArn"] for c in stack_certificates(self.ctx, region)}
        if domain.get("regionalCertificateArn") not in ours and \
                (domain.get("tags") or {}).get(TAG_STACK) != self.config.service:
            self.ctx.reporter.warn(f"[{region}] domain {self.domain} is not this stack's; left alone")
            return []
        changes = [self.change(region, "delete",
                               f"base path mapping {self.domain}/{'' if path == EMPTY_BASE_PATH else path}",
                               f"-> {m.get('restApiId')}/{m.get('stage')}",
                               lambda path=path: self.apigateway(region).delete_base_path_mapping(
                                   domainName=self.domain, basePath=path))
                   for path, m in base_path_mappings(self.ctx, region).items()]
        return changes + [self.change(region, "delete", f"domain {self.domain}", domain.get("regionalDomainName", ""),
                                      lambda: self.apigateway(region).delete_domain_name(domainName=self.domain))]

    def status(self, region: str) -> dict[str, Any]:
        domain = get_domain(self.ctx, region)
        if domain is None:
            return {"domain": None}
        mapping = base_path_mappings(self.ctx, region).get(EMPTY_BASE_PATH)
        return {"domain": self.domain,
                "regional_domain_name": domain.get("regionalDomainName"),
                "regional_hosted_zone_id": domain.get("regionalHostedZoneId"),
                "certificate_arn": domain.get("regionalCertificateArn"),
                "security_policy": domain.get("securityPolicy"),
                "mapping": f"{mapping.get('restApiId')}/{mapping.get('stage')}" if mapping else None}
