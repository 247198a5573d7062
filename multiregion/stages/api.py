"""Stage `api`: a REGIONAL REST API per region in front of that region's functions.

API Gateway does not refuse a second API of the same name, so the API is found again by name and by the
stack's tag, and a duplicate (two runs racing, or a crash between CreateRestApi and the next read) is
never made worse: the oldest is used and the others are reported. Each function allows invocations from
this API's route only (AddPermission with a deterministic statement id and a SourceArn per route).

A stage serves the deployment it points to, not the API as edited since: the deployment's description
records a fingerprint of the routes, and a new deployment is made only when the fingerprint differs or a
route had to be repaired.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from multiregion.aws import absent_as_none, error_code
from multiregion.config import Config
from multiregion.engine import TAG_STACK, Change, Context, Stage, StepError
from multiregion.stages.functions import caller_identity, function_arn, function_name, get_function

PRINCIPAL = "apigateway.amazonaws.com"
INVOKE = "lambda:InvokeFunction"
AUTHORIZATION = "NONE"
PROXY = "AWS_PROXY"


@dataclass(frozen=True)
class Route:
    component: str  # the function behind it
    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def arn_path(self) -> str:
        """The route as it appears in an execute-api ARN: path parameters become wildcards."""
        return "/".join("*" if part.startswith("{") else part for part in self.path.split("/"))


ROUTES = (Route("put", "POST", "/item"), Route("get", "GET", "/item/{id}"), Route("health", "GET", "/health"))


# ------------------------------------------------------------------------------------- shared helpers


def invoke_url(config: Config, region: str, api_id: str) -> str:
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{config.api.stage}"


def find_rest_apis(ctx: Context, region: str) -> list[dict[str, Any]]:
    """Every REST API of the stack in the region (name and tag match), oldest first."""
    client = ctx.clients("apigateway", region)
    apis = [api for page in client.get_paginator("get_rest_apis").paginate(PaginationConfig={"PageSize": 500})
            for api in page.get("items", [])
            if api.get("name") == ctx.config.service and (api.get("tags") or {}).get(TAG_STACK) == ctx.config.service]
    return sorted(apis, key=lambda api: (_timestamp(api.get("createdDate")), api["id"]))


def _timestamp(value: Any) -> float:
    """createdDate as seconds: boto3 parses it to a datetime, some endpoints send epoch numbers."""
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value) if isinstance(value, (int, float)) else 0.0


def find_rest_api(ctx: Context, region: str) -> dict[str, Any] | None:
    """The stack's REST API in the region (its `id`, `name`, ...), or None. With duplicates, the oldest."""
    apis = find_rest_apis(ctx, region)
    if len(apis) > 1:
        ids = tuple(api["id"] for api in apis)
        # Say it once per run, however many stages look the API up.
        ctx.memo(("api", "duplicates", region, ids), lambda: ctx.reporter.warn(
            f"[{region}] {len(apis)} REST APIs named {ctx.config.service} carry this stack's tag "
            f"({', '.join(ids)}); using the oldest, {ids[0]}. Delete the others once nothing uses them."))
    return apis[0] if apis else None


def integration_uri(ctx: Context, region: str, component: str) -> str:
    _, partition = caller_identity(ctx)
    return (f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/"
            f"{function_arn(ctx, region, component)}/invocations")


def source_arn(ctx: Context, region: str, api_id: str, route: Route) -> str:
    """Invocations from this API's route, in any stage."""
    account, partition = caller_identity(ctx)
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/*/{route.method}{route.arn_path}"


def statement_id(ctx: Context, api_id: str) -> str:
    return f"{statement_prefix(ctx)}{api_id}"


def statement_prefix(ctx: Context) -> str:
    return f"{ctx.config.service}-apigw-"


def policy_statements(ctx: Context, region: str, name: str) -> list[dict[str, Any]]:
    """The function's resource policy statements; [] when it has no policy (or does not exist yet)."""
    try:
        policy = ctx.clients("lambda", region).get_policy(FunctionName=name)["Policy"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise
    statements = json.loads(policy).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def fingerprint(ctx: Context, region: str) -> str:
    """What a deployment of this API must serve, in 16 hex digits."""
    routes = sorted((r.method, r.path, AUTHORIZATION, PROXY, "POST", integration_uri(ctx, region, r.component))
                    for r in ROUTES)
    return hashlib.sha256(json.dumps(routes).encode()).hexdigest()[:16]


def deployment_description(ctx: Context, region: str) -> str:
    return f"multiregion {ctx.config.service} routes {fingerprint(ctx, region)}"


# ----------------------------------------------------------------------------------------------- stage


class ApiStage(Stage):
    name = "api"
    help = "A regional REST API per region: POST /item, GET /item/{id}, GET /health, proxy to the functions."
    scope = "region"
    depends_on = ("functions",)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._created: dict[str, str] = {}  # region -> id of the API this run created

    def client(self, region: str) -> Any:
        return self.ctx.clients("apigateway", region)

    def _api_id(self, region: str, known: str | None) -> str:
        api_id = known or self._created.get(region)
        if api_id is None:
            raise StepError(self.name, region, f"rest api {self.config.service}", "the API was not created",
                            "run `up` again")
        return api_id

    # ------------------------------------------------------------------ plan

    def plan(self, region: str) -> list[Change]:
        api = find_rest_api(self.ctx, region)
        changes: list[Change] = []
        api_id = api["id"] if api else None
        if api is None:
            changes.append(self.change(region, "create", f"rest api {self.config.service}",
                                       f"REGIONAL, {', '.join(r.key for r in ROUTES)}",
                                       lambda: self._create_api(region)))
            resources: dict[str, dict[str, Any]] = {}
        else:
            changes += self._plan_endpoint(region, api)
            resources = self._resources(region, api["id"])
            changes += self._plan_extras(region, api["id"], resources)
        route_changes = [c for r in ROUTES if (c := self._plan_route(region, api_id, resources, r))]
        changes += route_changes
        changes += self._plan_permissions(region, api_id)
        deployment = self._plan_deployment(region, api_id, bool(route_changes))
        if deployment is not None:
            changes.append(deployment)
        return changes

    def _plan_endpoint(self, region: str, api: dict[str, Any]) -> list[Change]:
        types = (api.get("endpointConfiguration") or {}).get("types") or []
        if types == ["REGIONAL"]:
            return []

        def make_regional() -> None:
            self.client(region).update_rest_api(restApiId=api["id"], patchOperations=[
                {"op": "replace", "path": f"/endpointConfiguration/types/{types[0]}", "value": "REGIONAL"}])

        return [self.change(region, "update", f"rest api {api['id']}", f"endpoint {'/'.join(types)} -> REGIONAL",
                            make_regional)]

    def _resources(self, region: str, api_id: str) -> dict[str, dict[str, Any]]:
        """path -> resource, with its methods and their integrations embedded."""
        pages = self.client(region).get_paginator("get_resources").paginate(
            restApiId=api_id, embed=["methods"], PaginationConfig={"PageSize": 500})
        return {res["path"]: res for page in pages for res in page.get("items", [])}

    def _plan_extras(self, region: str, api_id: str, resources: dict[str, dict[str, Any]]) -> list[Change]:
        """Routes someone added to the stack's API: removed, so the API serves exactly the item API."""
        wanted_paths = {"/"} | {prefix for r in ROUTES for prefix in _prefixes(r.path)}
        wanted_methods = {r.key for r in ROUTES}
        changes = []
        for path, resource in sorted(resources.items()):
            if path not in wanted_paths:
                parent = path.rsplit("/", 1)[0] or "/"
                if parent in wanted_paths:  # deleting a resource deletes everything below it
                    changes.append(self.change(region, "delete", f"resource {path}", "drift: not an item API route",
                                               lambda rid=resource["id"]: self.client(region).delete_resource(
                                                   restApiId=api_id, resourceId=rid)))
                continue
            for method in sorted(resource.get("resourceMethods") or {}):
                if f"{method} {path}" not in wanted_methods:
                    changes.append(self.change(region, "delete", f"route {method} {path}",
                                               "drift: not an item API route",
                                               lambda rid=resource["id"], m=method: self.client(region).delete_method(
                                                   restApiId=api_id, resourceId=rid, httpMethod=m)))
        return changes

    def _plan_route(self, region: str, api_id: str | None, resources: dict[str, dict[str, Any]],
                    route: Route) -> Change | None:
        target = function_name(self.ctx, route.component)
        reason = self._route_difference(region, resources, route)
        if reason is None:
            return None
        action = "create" if reason.startswith("missing") else "update"
        return self.change(region, action, f"route {route.key}", f"{reason}; {PROXY} -> {target}",
                           lambda: self._ensure_route(region, self._api_id(region, api_id), route))

    def _route_difference(self, region: str, resources: dict[str, dict[str, Any]], route: Route) -> str | None:
        method = ((resources.get(route.path) or {}).get("resourceMethods") or {}).get(route.method)
        if method is None:
            return "missing"
        if method.get("authorizationType") != AUTHORIZATION or method.get("apiKeyRequired"):
            return f"authorization {method.get('authorizationType')} -> {AUTHORIZATION}"
        integration = method.get("methodIntegration") or {}
        if not integration:
            return "no integration"
        wanted = (PROXY, "POST", integration_uri(self.ctx, region, route.component))
        current = (integration.get("type"), integration.get("httpMethod"), integration.get("uri"))
        if current != wanted:
            return f"integration {current[0]} {current[2]} differs"
        return None

    def _plan_permissions(self, region: str, api_id: str | None) -> list[Change]:
        changes = []
        for route in ROUTES:
            name = function_name(self.ctx, route.component)
            statements = policy_statements(self.ctx, region, name)
            sid = statement_id(self.ctx, api_id) if api_id else None
            for statement in statements:
                other = statement.get("Sid", "")
                if other.startswith(statement_prefix(self.ctx)) and other != sid:
                    changes.append(self.change(region, "delete", f"permission {name}/{other}",
                                               "granted to an API that is not the stack's current one",
                                               lambda n=name, s=other: self._remove_permission(region, n, s)))
            current = next((s for s in statements if sid and s.get("Sid") == sid), None)
            if current is not None and api_id and self._permission_matches(current, region, api_id, route):
                continue
            action = "create" if current is None else "update"
            changes.append(self.change(region, action, f"permission {name}",
                                       f"{PRINCIPAL} may invoke it from {route.key} of this API only",
                                       lambda r=route, c=current is not None: self._ensure_permission(
                                           region, self._api_id(region, api_id), r, replace=c)))
        return changes

    def _permission_matches(self, statement: dict[str, Any], region: str, api_id: str, route: Route) -> bool:
        principal = statement.get("Principal")
        service = principal.get("Service") if isinstance(principal, dict) else principal
        condition = (statement.get("Condition") or {}).get("ArnLike") or {}
        return (statement.get("Effect") == "Allow" and service == PRINCIPAL and statement.get("Action") == INVOKE
                and condition == {"AWS:SourceArn": source_arn(self.ctx, region, api_id, route)})

    def _plan_deployment(self, region: str, api_id: str | None, routes_changed: bool) -> Change | None:
        stage = self.config.api.stage
        current = self._stage(region, api_id) if api_id else None
        if current is None:
            reason, action = "first deployment", "create"
        elif routes_changed:
            reason, action = "routes changed", "update"
        else:
            described = self._deployment_description(region, api_id, current.get("deploymentId"))
            if described == deployment_description(self.ctx, region):
                return None
            reason, action = f"deployment {current.get('deploymentId')} serves other routes", "update"
        return self.change(region, action, f"stage {stage}", reason,
                           lambda: self._deploy(region, self._api_id(region, api_id)))

    def _stage(self, region: str, api_id: str | None) -> dict[str, Any] | None:
        return absent_as_none(lambda: self.client(region).get_stage(restApiId=api_id, stageName=self.config.api.stage),
                              "NotFoundException")

    def _deployment_description(self, region: str, api_id: str | None, deployment_id: str | None) -> str | None:
        if not deployment_id:
            return None
        deployment = absent_as_none(lambda: self.client(region).get_deployment(restApiId=api_id,
                                                                                deploymentId=deployment_id),
                                    "NotFoundException")
        return deployment.get("description") if deployment else None

    # ------------------------------------------------------------------ apply

    def _create_api(self, region: str) -> None:
        api = self.client(region).create_rest_api(
            name=self.config.service, description=f"multiregion {self.config.service}: the item API",
            endpointConfiguration={"types": ["REGIONAL"]}, tags=self.ctx.tags(region))
        self._created[region] = api["id"]

    def _ensure_route(self, region: str, api_id: str, route: Route) -> None:
        client = self.client(region)
        resources = self._resources(region, api_id)
        resource_id = self._ensure_path(region, api_id, resources, route.path)
        method = ((resources.get(route.path) or {}).get("resourceMethods") or {}).get(route.method)
        if method is not None and (method.get("authorizationType") != AUTHORIZATION or method.get("apiKeyRequired")):
            client.delete_method(restApiId=api_id, resourceId=resource_id, httpMethod=route.method)
            method = None
        if method is None:
            client.put_method(restApiId=api_id, resourceId=resource_id, httpMethod=route.method,
                              authorizationType=AUTHORIZATION, apiKeyRequired=False)
        # PutIntegration replaces whatever integration the method had.
        client.put_integration(restApiId=api_id, resourceId=resource_id, httpMethod=route.method, type=PROXY,
                               integrationHttpMethod="POST", uri=integration_uri(self.ctx, region, route.component))

    def _ensure_path(self, region: str, api_id: str, resources: dict[str, dict[str, Any]], path: str) -> str:
        parent = resources["/"]["id"]
        for prefix in _prefixes(path):
            if prefix not in resources:
                resources[prefix] = self.client(region).create_resource(
                    restApiId=api_id, parentId=parent, pathPart=prefix.rsplit("/", 1)[1])
            parent = resources[prefix]["id"]
        return str(parent)

    def _ensure_permission(self, region: str, api_id: str, route: Route, replace: bool) -> None:
        name, sid = function_name(self.ctx, route.component), statement_id(self.ctx, api_id)
        if replace:
            self._remove_permission(region, name, sid)
        self.ctx.clients("lambda", region).add_permission(
            FunctionName=name, StatementId=sid, Action=INVOKE, Principal=PRINCIPAL,
            SourceArn=source_arn(self.ctx, region, api_id, route))

    def _remove_permission(self, region: str, name: str, sid: str) -> None:
        self.ctx.clients("lambda", region).remove_permission(FunctionName=name, StatementId=sid)

    def _deploy(self, region: str, api_id: str) -> None:
        self.client(region).create_deployment(restApiId=api_id, stageName=self.config.api.stage,
                                              description=deployment_description(self.ctx, region))

    # ------------------------------------------------------------------ down

    def destroy(self, region: str) -> list[Change]:
        changes = []
        for route in ROUTES:
            name = function_name(self.ctx, route.component)
            if get_function(self.ctx, region, name) is None:
                continue
            for statement in policy_statements(self.ctx, region, name):
                sid = statement.get("Sid", "")
                if sid.startswith(statement_prefix(self.ctx)):
                    changes.append(self.change(region, "delete", f"permission {name}/{sid}", "down",
                                               lambda n=name, s=sid: self._remove_permission(region, n, s)))
        for api in find_rest_apis(self.ctx, region):
            changes.append(self.change(region, "delete", f"rest api {api['id']}", "down",
                                       lambda i=api["id"]: self.client(region).delete_rest_api(restApiId=i)))
        return changes

    # ------------------------------------------------------------------ status

    def status(self, region: str) -> dict[str, Any]:
        api = find_rest_api(self.ctx, region)
        if api is None:
            return {"api_id": None, "invoke_url": None}
        stage = self._stage(region, api["id"])
        return {"api_id": api["id"], "invoke_url": invoke_url(self.config, region, api["id"]),
                "stage": self.config.api.stage, "deployment": stage.get("deploymentId") if stage else None}


def _prefixes(path: str) -> list[str]:
    """"/item/{id}" -> ["/item", "/item/{id}"]."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
