"""Every deterministic name and ARN of the stack, in one place: AWS is the state, names find it again.

Pure functions of the config (and the account for ARNs): stages, lookups, `status` and the drill all
derive names here, so the same resource is never spelled two ways.
"""

from __future__ import annotations

from typing import Any

from multiregion.config import Config
from multiregion.plan import concat

ROUTE53_REGION = "us-east-1"  # Route 53 and IAM are global; their API is reached through us-east-1
EMPTY_BASE_PATH = "(none)"  # how API Gateway names the empty base path, in answers and in URIs


def dns_name(name: str | None) -> str:
    """A DNS name without the trailing dot, lower case."""
    return (name or "").strip().rstrip(".").lower()


def fqdn(name: str) -> str:
    """A DNS name as Route 53 returns it: lower case, with the trailing dot."""
    return dns_name(name) + "."


def short_zone_id(zone_id: str) -> str:
    return zone_id.rsplit("/", 1)[-1]


def is_zone_id(value: str) -> bool:
    # The config only accepts dotted DNS names or ids, so a value without a dot is an id.
    return "." not in value.rstrip(".")


# --------------------------------------------------------------------------------------------- resources


def function_name(config: Config, component: str) -> str:
    return config.name(component)


def function_arn(config: Config, account: str, partition: str, region: str, component: str) -> str:
    return f"arn:{partition}:lambda:{region}:{account}:function:{function_name(config, component)}"


ROLE_PATH = "/multiregion/"
ROLE_NAME_MAX = 64


def role_name(config: Config, component: str, region: str) -> str:
    """One execution role per function and region (`{service}-{component}-{region}`): each may touch only
    its own region's table. IAM role names hold at most 64 characters; a longer one keeps its start and
    gets a digest of the whole."""
    import hashlib

    full = f"{config.service}-{component}-{region}"
    if len(full) <= ROLE_NAME_MAX:
        return full
    return f"{full[:ROLE_NAME_MAX - 9]}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"


def legacy_role_name(config: Config) -> str:
    """The one stack-wide role of earlier releases, retired once no function uses it."""
    return config.name("lambda")


def role_arn(config: Config, account: str, partition: str, component: str, region: str) -> str:
    return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name(config, component, region)}"


def table_arn(config: Config, account: str, partition: str, region: str) -> str:
    return f"arn:{partition}:dynamodb:{region}:{account}:table/{config.table.name}"


def log_group(config: Config, component: str) -> str:
    return f"/aws/lambda/{function_name(config, component)}"


def log_group_arn(config: Config, account: str, partition: str, region: str, component: str) -> str:
    return f"arn:{partition}:logs:{region}:{account}:log-group:{log_group(config, component)}"


def api_host(api_id: str, region: str) -> str:
    return f"{api_id}.execute-api.{region}.amazonaws.com"


def invoke_url(config: Config, region: str, api_id: str) -> str:
    return f"https://{api_host(api_id, region)}/{config.api.stage}"


def integration_uri(account: str, partition: str, region: str, function: str) -> str:
    return (f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/"
            f"arn:{partition}:lambda:{region}:{account}:function:{function}/invocations")


def arn_path(path: str) -> str:
    """A route's path as it appears in an execute-api ARN: path parameters become wildcards."""
    return "/".join("*" if part.startswith("{") else part for part in path.split("/"))


def route_source_arn(account: str, partition: str, region: str, api_id: Any, method: str, path: str) -> Any:
    """Invocations from one route of one API, in any stage (a Concat while the API id is a Ref)."""
    return concat(f"arn:{partition}:execute-api:{region}:{account}:", api_id, f"/*/{method}{arn_path(path)}")


def permission_prefix(config: Config) -> str:
    return f"{config.service}-apigw-"


def permission_id(config: Config, api_id: Any) -> Any:
    return concat(permission_prefix(config), api_id)


def policy_name(config: Config) -> str:
    return config.name("latency")


def record_name(config: Config) -> str:
    return dns_name(config.domain.name)


def health_check_name(config: Config, region: str) -> str:
    return config.name(region)


def certificate_resource(config: Config) -> str:
    return f"certificate {config.domain.name}"
