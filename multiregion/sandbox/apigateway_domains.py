"""API Gateway custom domain names as AWS reports and checks them, on top of moto's.

moto answers every domain with `regionalHostedZoneId` Z2FDTNDATAQYW2 (CloudFront's zone), which would make
an alias record in the routing stage point at the wrong place; here a REGIONAL domain reports its region's
API Gateway zone. Also as on AWS: a REGIONAL domain needs an ISSUED certificate of its own region; a name
is created once per region (a second create is a ConflictException); `UpdateDomainName` exists; deleting a
domain deletes its base path mappings; and a domain without mappings lists none (moto fails with a 500).
`GetDomainNames` and `GetBasePathMappings` page with `limit` and `position` (moto ignores both) and list the
members API Gateway's model has (moto adds its own `domain_name` to mappings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from werkzeug.wrappers import Response

from multiregion.regions import REGIONS
from multiregion.sandbox import moto_compat
from multiregion.sandbox.acm import CertificateValidation
from multiregion.sandbox.app import Extension, Forwarded, SandboxRequest, json_response

_PATCHABLE = moto_compat.DOMAIN_PATCH_ATTRIBUTES
_SECURITY_POLICIES = ("TLS_1_0", "TLS_1_2")
DEFAULT_LIMIT, MAX_LIMIT = 25, 500  # GetDomainNames and GetBasePathMappings: "default 25, maximum 500"
T = TypeVar("T")


def apigateway_error(code: str, message: str, status: int) -> Response:
    return json_response({"message": message}, status=status, content_type="application/json",
                         headers={"x-amzn-ErrorType": code})


def endpoint_types(domain: dict[str, Any]) -> list[str]:
    return list((domain.get("endpointConfiguration") or {}).get("types") or ["EDGE"])


def aws_form(domain: dict[str, Any], region: str) -> dict[str, Any]:
    """A domain as AWS describes it: the regional or the edge half, with the right hosted zone id."""
    domain.setdefault("domainNameArn", domain_arn(region, domain.get("domainName", "")))
    if "REGIONAL" in endpoint_types(domain):
        zone_id = REGIONS[region].apigw_zone_id if region in REGIONS else None
        if zone_id:
            domain["regionalHostedZoneId"] = zone_id
        domain.pop("distributionDomainName", None)
        domain.pop("distributionHostedZoneId", None)
    else:
        domain.pop("regionalDomainName", None)
        domain.pop("regionalHostedZoneId", None)
    return domain


def domain_arn(region: str, name: str) -> str:
    """A custom domain's ARN as API Gateway writes it (`domainNameArn`): no account, the resource's path."""
    return f"arn:aws:apigateway:{region}::/domainnames/{name}"


class PageError(ValueError):
    pass


def page_of(items: list[T], key: Callable[[T], str], limit_arg: str | None,
            position: str | None) -> tuple[list[T], str | None]:
    """One page of `items` in the order of `key`, from `position` on, and the position of the next page.

    The position is the key of the next page's first item: an item deleted between two pages then moves the
    next page to the item after it, never back to the start. (API Gateway's positions are opaque tokens; what
    it does with one it never gave is not documented, the sandbox reads it as a key.)"""
    try:
        limit = int(limit_arg) if limit_arg else DEFAULT_LIMIT
    except ValueError:
        raise PageError(f"limit must be a number, not {limit_arg!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise PageError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    ordered = sorted(items, key=key)
    if position:
        ordered = [i for i in ordered if key(i) >= position]
    rest = ordered[limit:]
    return ordered[:limit], key(rest[0]) if rest else None


class RegionalDomains(Extension):
    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service != "apigateway" or not req.path.startswith("/domainnames"):
            return None
        parts = [p for p in req.path.split("/") if p]
        region = req.region or ""
        if len(parts) == 1:
            if req.method == "POST":
                return self._create(req, region)
            if req.method == "GET":
                return self._list(req, region)
        elif len(parts) == 2:
            if req.method == "GET":
                return self._rewrite(self.forward(req), region)
            if req.method == "PATCH":
                return self._update(req, region, parts[1])
            if req.method == "DELETE":
                return self._delete(req, region, parts[1])
        elif len(parts) == 3 and parts[2] == "basepathmappings" and req.method == "GET":
            return self._mappings(req, region, parts[1])
        return None

    # ------------------------------------------------------------------ operations

    def _create(self, req: SandboxRequest, region: str) -> Response:
        body = req.json()
        name = body.get("domainName") or ""
        with self.sandbox.lock:
            if name in moto_compat.domain_names(region):
                return apigateway_error("ConflictException", "The domain name you provided already exists.", 409)
            if "REGIONAL" in endpoint_types(body):
                error = self._check_certificate(region, body.get("regionalCertificateArn"))
                if error is not None:
                    return error
            error = self._check_policy(body.get("securityPolicy"))
            if error is not None:
                return error
            return self._rewrite(self.forward(req), region)

    def _update(self, req: SandboxRequest, region: str, name: str) -> Response:
        operations = req.json().get("patchOperations") or []
        with self.sandbox.lock:
            domain = moto_compat.domain_names(region).get(name)
            if domain is None:
                return apigateway_error("NotFoundException", "Invalid domain name identifier specified", 404)
            for op in operations:
                path, value = op.get("path"), op.get("value")
                if op.get("op") != "replace" or path not in _PATCHABLE:
                    return apigateway_error("BadRequestException",
                                            f"Invalid patch operation specified: {op.get('op')} {path}", 400)
                error = (self._check_certificate(region, value) if path == "/regionalCertificateArn"
                         else self._check_policy(value) if path == "/securityPolicy" else None)
                if error is not None:
                    return error
            for op in operations:
                moto_compat.patch_domain(domain, op["path"], op.get("value"))
            data = moto_compat.domain_json(domain)
        return json_response(aws_form(data, region), content_type="application/json")

    def _delete(self, req: SandboxRequest, region: str, name: str) -> Response:
        with self.sandbox.lock:
            resp = self.forward(req)
            if resp.status < 300:
                # On AWS a domain's mappings go with it; moto would hand them to the next domain of that name.
                moto_compat.drop_base_path_mappings(region, name)
        return resp.response()

    def _list(self, req: SandboxRequest, region: str) -> Response:
        resp = self.forward(req)
        if resp.status >= 300:
            return resp.response()
        domains = [aws_form(d, region) for d in resp.json().get("item", [])]
        try:
            page, position = page_of(domains, lambda d: str(d.get("domainName", "")), req.raw.args.get("limit"),
                                     req.raw.args.get("position"))
        except PageError as exc:
            return apigateway_error("BadRequestException", str(exc), 400)
        return json_response(_listing(page, position), content_type="application/json")

    def _mappings(self, req: SandboxRequest, region: str, name: str) -> Response:
        with self.sandbox.lock:
            if name not in moto_compat.domain_names(region):
                return apigateway_error("NotFoundException", "Invalid domain name identifier specified", 404)
            mappings = [{"basePath": m.base_path, "restApiId": m.rest_api_id, "stage": m.stage}
                        for m in moto_compat.base_path_mappings(region, name).values()]
        items = [{k: v for k, v in m.items() if v is not None} for m in mappings]
        try:
            page, position = page_of(items, lambda m: str(m["basePath"]), req.raw.args.get("limit"),
                                     req.raw.args.get("position"))
        except PageError as exc:
            return apigateway_error("BadRequestException", str(exc), 400)
        return json_response(_listing(page, position), content_type="application/json")

    # ------------------------------------------------------------------ checks and rewriting

    def _check_certificate(self, region: str, arn: str | None) -> Response | None:
        if not arn:
            return apigateway_error("BadRequestException",
                                    "A regional certificate is required for a REGIONAL domain name", 400)
        status = self.sandbox.extension(CertificateValidation).status(region, arn)
        if status is None:
            return apigateway_error("BadRequestException",
                                    f"Invalid certificate ARN: {arn}. Certificate must be in '{region}'.", 400)
        if status != "ISSUED":
            return apigateway_error("BadRequestException",
                                    f"Certificate {arn} is {status}; it must be ISSUED to be used.", 400)
        return None

    @staticmethod
    def _check_policy(policy: str | None) -> Response | None:
        if policy is None or policy in _SECURITY_POLICIES or policy.startswith("SecurityPolicy_"):
            return None
        return apigateway_error("BadRequestException", f"Invalid security policy: {policy}", 400)

    @staticmethod
    def _rewrite(resp: Forwarded, region: str) -> Response:
        if resp.status >= 300:
            return resp.response()
        return resp.response(json.dumps(aws_form(resp.json(), region)).encode())


def _listing(items: list[Any], position: str | None) -> dict[str, Any]:
    """A page as API Gateway writes it: `item`, and `position` only when another page follows."""
    return {"item": items, **({"position": position} if position else {})}
