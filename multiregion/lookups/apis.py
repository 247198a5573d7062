"""The stack's REST APIs, their resources and stages, and the regional custom domains in front of them."""

from __future__ import annotations

from typing import Any

from multiregion.aws import absent_as_none
from multiregion.engine import TAG_STACK, Reader
from multiregion.names import EMPTY_BASE_PATH


def find_rest_apis(aws: Reader, region: str) -> list[dict[str, Any]]:
    """Every REST API of the stack in the region (name and tag match), oldest first.

    API Gateway does not refuse a second API of the same name, so two racing runs or a crash between
    CreateRestApi and the next read can leave duplicates: the oldest is the stack's, the others are
    reported."""
    service = aws.config.service
    client = aws.client("apigateway", region)
    apis = [api for page in client.get_paginator("get_rest_apis").paginate(PaginationConfig={"PageSize": 500})
            for api in page.get("items", [])
            if api.get("name") == service and (api.get("tags") or {}).get(TAG_STACK) == service]
    return sorted(apis, key=lambda api: (_timestamp(api.get("createdDate")), api["id"]))


def _timestamp(value: Any) -> float:
    """createdDate as seconds: boto3 parses it to a datetime, some endpoints send epoch numbers."""
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value) if isinstance(value, (int, float)) else 0.0


def find_rest_api(aws: Reader, region: str) -> dict[str, Any] | None:
    apis = find_rest_apis(aws, region)
    return apis[0] if apis else None


def duplicates_warning(service: str, region: str, ids: list[str]) -> str:
    return (f"[{region}] {len(ids)} REST APIs named {service} carry this stack's tag ({', '.join(ids)}); "
            f"using the oldest, {ids[0]}. Delete the others once nothing uses them.")


def resources(aws: Reader, region: str, api_id: str) -> dict[str, dict[str, Any]]:
    """path -> resource, with its methods and their integrations embedded."""
    pages = aws.client("apigateway", region).get_paginator("get_resources").paginate(
        restApiId=api_id, embed=["methods"], PaginationConfig={"PageSize": 500})
    return {res["path"]: res for page in pages for res in page.get("items", [])}


def get_stage(aws: Reader, region: str, api_id: str) -> dict[str, Any] | None:
    client = aws.client("apigateway", region)
    answer = absent_as_none(lambda: client.get_stage(restApiId=api_id, stageName=aws.config.api.stage),
                            "NotFoundException")
    return dict(answer) if answer else None


def deployment_description(aws: Reader, region: str, api_id: str, deployment_id: str | None) -> str | None:
    if not deployment_id:
        return None
    client = aws.client("apigateway", region)
    answer = absent_as_none(lambda: client.get_deployment(restApiId=api_id, deploymentId=deployment_id),
                            "NotFoundException")
    return str(answer.get("description") or "") if answer else None


def get_domain(aws: Reader, region: str) -> dict[str, Any] | None:
    client = aws.client("apigateway", region)
    answer = absent_as_none(lambda: client.get_domain_name(domainName=aws.config.domain.name), "NotFoundException")
    return dict(answer) if answer else None


def regional_domain(aws: Reader, region: str) -> tuple[str, str] | None:
    """(regionalDomainName, regionalHostedZoneId) of domain.name in the region, or None if not there yet."""
    domain = get_domain(aws, region)
    if domain is None or not domain.get("regionalDomainName") or not domain.get("regionalHostedZoneId"):
        return None
    return str(domain["regionalDomainName"]), str(domain["regionalHostedZoneId"])


def base_path_mappings(aws: Reader, region: str) -> dict[str, dict[str, Any]]:
    """The domain's mappings by base path ("(none)" for the empty one)."""
    client = aws.client("apigateway", region)
    pages = client.get_paginator("get_base_path_mappings").paginate(domainName=aws.config.domain.name)
    return {m.get("basePath") or EMPTY_BASE_PATH: m for page in pages for m in page.get("items", [])}
