"""Stage `api`: a REGIONAL REST API per region in front of that region's functions.

The API is found again by name and by the stack's tag; duplicates (two runs racing, or a crash between
CreateRestApi and the next read) are never made worse: the oldest is used and the others are reported.
Each function allows invocations from its own route of this API only (AddPermission with a deterministic
statement id and a SourceArn per route).

A stage serves the deployment it points to, not the API as edited since: the deployment's description
records a fingerprint of the routes, and a new deployment is made only when the fingerprint differs or a
route had to be repaired.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from multiregion import app, names
from multiregion.engine import Env, Inputs, NodePlan, Reader, Stage
from multiregion.lookups import apis
from multiregion.lookups.functions import get_function, policy_statements
from multiregion.plan import Call, Change, Retry, is_known

PRINCIPAL = "apigateway.amazonaws.com"
INVOKE = "lambda:InvokeFunction"
AUTHORIZATION = "NONE"
PROXY = "AWS_PROXY"
# AddPermission and RemovePermission are refused while the function is being updated.
FUNCTION_BUSY = Retry(("ResourceConflictException",), "the function is being updated", budget=300.0)


@dataclass(frozen=True)
class ApiSnapshot:
    api: dict[str, Any] | None
    duplicates: tuple[str, ...] = ()  # ids of the stack's other APIs of that name, oldest first after `api`
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage: dict[str, Any] | None = None
    deployed: str | None = None  # description of the deployment the stage serves
    statements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # component -> policy statements
    existing_functions: tuple[str, ...] = ()  # components whose function exists (for `down`)


@dataclass(frozen=True)
class ApiStatus:
    api_id: str | None
    invoke_url: str | None
    stage: str | None = None
    deployment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def fingerprint(env: Env, region: str) -> str:
    """What a deployment of this API must serve, in 16 hex digits."""
    # Without API keys or CORS the text is what earlier releases hashed, so their deployments stay current.
    routes: list[Any] = sorted(
        (route.method, route.path, AUTHORIZATION + (" api-key" if needs_api_key(env, component) else ""), PROXY,
         "POST", _uri(env, region, component)) for route, component in app.routes(env.config))
    routes += [("OPTIONS", path, "MOCK", sorted(preflight_headers(env, path).items())) for path in cors_paths(env)]
    return hashlib.sha256(json.dumps(routes).encode()).hexdigest()[:16]


def deployment_description(env: Env, region: str) -> str:
    return f"multiregion {env.config.service} routes {fingerprint(env, region)}"


def _uri(env: Env, region: str, component: str) -> str:
    return names.integration_uri(env.account, env.partition, region, names.function_name(env.config, component))


def needs_api_key(env: Env, component: str) -> bool:
    """With `api.auth: api-key` every route asks for the key, except health: Route 53's checkers cannot send one."""
    return env.config.api.auth == "api-key" and component != app.HEALTH


def cors_paths(env: Env) -> list[str]:
    """The paths that answer browsers' preflights: every route's, health's excepted."""
    if not env.config.api.cors_origins:
        return []
    return sorted({route.path for route, component in app.routes(env.config) if component != app.HEALTH})


def preflight_headers(env: Env, path: str) -> dict[str, str]:
    methods = sorted({route.method for route, _ in app.routes(env.config) if route.path == path} | {"OPTIONS"})
    if "ANY" in methods:
        methods = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    allowed = "Content-Type,X-Api-Key,Authorization"
    origin = env.config.api.cors_origins[0]
    return {"method.response.header.Access-Control-Allow-Origin": f"'{origin}'",
            "method.response.header.Access-Control-Allow-Methods": f"'{','.join(methods)}'",
            "method.response.header.Access-Control-Allow-Headers": f"'{allowed}'"}


def _prefixes(path: str) -> list[str]:
    """"/item/{id}" -> ["/item", "/item/{id}"]."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


class ApiStage(Stage[ApiSnapshot]):
    name = "api"
    help = "A regional REST API per region: the app's routes and GET /health, proxy to the functions."
    scope = "region"
    depends_on = ("functions",)

    def read(self, aws: Reader, region: str) -> ApiSnapshot:
        found = apis.find_rest_apis(aws, region)
        api = found[0] if found else None
        statements = {component: policy_statements(aws, region, names.function_name(aws.config, component))
                      for _, component in app.routes(aws.config)}
        if api is None:
            return ApiSnapshot(None, statements=statements)
        stage = apis.get_stage(aws, region, api["id"])
        deployed = apis.deployment_description(aws, region, api["id"], stage.get("deploymentId") if stage else None)
        return ApiSnapshot(api, tuple(a["id"] for a in found[1:]), apis.resources(aws, region, api["id"]), stage,
                           deployed, statements)

    def read_down(self, aws: Reader, region: str) -> ApiSnapshot:
        snapshot = self.read(aws, region)
        existing = tuple(c for _, c in app.routes(aws.config)
                         if get_function(aws, region, names.function_name(aws.config, c)) is not None)
        return ApiSnapshot(snapshot.api, snapshot.duplicates, snapshot.resources, snapshot.stage, snapshot.deployed,
                           snapshot.statements, existing)

    # ------------------------------------------------------------------------------------------- diff

    def diff(self, env: Env, region: str, snapshot: ApiSnapshot, inputs: Inputs) -> NodePlan:
        service = env.config.service
        changes: list[Change] = []
        warnings = []
        if snapshot.duplicates and snapshot.api is not None:
            warnings.append(apis.duplicates_warning(service, region, [snapshot.api["id"], *snapshot.duplicates]))
        api_id: Any
        if snapshot.api is None:
            api_id = self.ref(region, "api_id", "the REST API created above")
            root = self.ref(region, "root_id", "its root resource")
            create = Call("apigateway", region, "create_rest_api", {
                "name": service, "description": f"multiregion {service}: the item API",
                "endpointConfiguration": {"types": ["REGIONAL"]}, "tags": env.tags(region)},
                outputs={"api_id": "id", "root_id": "rootResourceId"})
            keys = ", ".join(route.key for route, _ in app.routes(env.config))
            changes.append(self.change(region, "create", f"rest api {service}", f"REGIONAL, {keys}", create))
            paths: dict[str, Any] = {"/": root}
            resources: dict[str, dict[str, Any]] = {}
        else:
            api_id = snapshot.api["id"]
            changes += self._plan_endpoint(region, snapshot.api)
            resources = snapshot.resources
            paths = {path: res["id"] for path, res in resources.items()}
            changes += self._plan_extras(env, region, api_id, resources)
        route_changes = [c for route, component in app.routes(env.config)
                         if (c := self._plan_route(env, region, api_id, resources, paths, route, component))]
        route_changes += [c for path in cors_paths(env) if (c := self._plan_preflight(env, region, api_id, resources,
                                                                                          paths, path))]
        changes += route_changes
        changes += self._plan_permissions(env, region, api_id, snapshot.statements)
        deployment = self._plan_deployment(env, region, api_id, snapshot, bool(route_changes))
        if deployment is not None:
            changes.append(deployment)
        throttle = self._plan_throttle(env, region, api_id, snapshot.stage)
        if throttle is not None:
            changes.append(throttle)
        return NodePlan(changes=tuple(changes), outputs={"api_id": api_id}, warnings=tuple(warnings))

    # ---------------------------------------------------------------------------- stage throttling, CORS

    def _plan_throttle(self, env: Env, region: str, api_id: Any, stage: dict[str, Any] | None) -> Change | None:
        throttle = env.config.api.throttle
        if throttle is None:
            return None
        current = ((stage or {}).get("methodSettings") or {}).get("*/*") or {}
        have = (current.get("throttlingRateLimit"), current.get("throttlingBurstLimit"))
        if stage is not None and have == (float(throttle.rate), throttle.burst):
            return None
        patch = [{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(throttle.rate)},
                 {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(throttle.burst)}]
        shown = f"{have[0]:g}/s, burst {have[1]}" if have[0] is not None else "account default"
        return self.change(region, "update", f"stage {env.config.api.stage} throttling",
                           f"{shown} -> {throttle.rate}/s, burst {throttle.burst}",
                           Call("apigateway", region, "update_stage",
                                {"restApiId": api_id, "stageName": env.config.api.stage, "patchOperations": patch}))

    def _plan_preflight(self, env: Env, region: str, api_id: Any, resources: dict[str, dict[str, Any]],
                        paths: dict[str, Any], path: str) -> Change | None:
        """An OPTIONS method answered by API Gateway itself (a MOCK integration), so browsers' preflights get
        the CORS headers; the functions add the allowed origin to their own answers."""
        wanted = preflight_headers(env, path)
        method = ((resources.get(path) or {}).get("resourceMethods") or {}).get("OPTIONS")
        integration = (method or {}).get("methodIntegration") or {}
        responses = integration.get("integrationResponses") or {}
        if integration.get("type") == "MOCK" and (responses.get("200") or {}).get("responseParameters") == wanted:
            return None
        ops = self._ensure_path(region, api_id, paths, path)
        target = {"restApiId": api_id, "resourceId": paths[path], "httpMethod": "OPTIONS"}
        if method is not None:
            ops.append(Call("apigateway", region, "delete_method", target, done_if=("NotFoundException",)))
        ops += [Call("apigateway", region, "put_method", {**target, "authorizationType": "NONE",
                                                          "apiKeyRequired": False}),
                Call("apigateway", region, "put_method_response", {
                    **target, "statusCode": "200", "responseParameters": {k: False for k in wanted}}),
                Call("apigateway", region, "put_integration", {
                    **target, "type": "MOCK", "requestTemplates": {"application/json": '{"statusCode": 200}'}}),
                Call("apigateway", region, "put_integration_response", {
                    **target, "statusCode": "200", "responseParameters": wanted})]
        return self.change(region, "create" if method is None else "update", f"route OPTIONS {path}",
                           f"CORS preflight for {', '.join(env.config.api.cors_origins)}", *ops)

    def _plan_endpoint(self, region: str, api: dict[str, Any]) -> list[Change]:
        types = (api.get("endpointConfiguration") or {}).get("types") or []
        if types == ["REGIONAL"]:
            return []
        patch = [{"op": "replace", "path": f"/endpointConfiguration/types/{types[0] if types else 'EDGE'}",
                  "value": "REGIONAL"}]
        return [self.change(region, "update", f"rest api {api['id']}", f"endpoint {'/'.join(types)} -> REGIONAL",
                            Call("apigateway", region, "update_rest_api",
                                 {"restApiId": api["id"], "patchOperations": patch}))]

    def _plan_extras(self, env: Env, region: str, api_id: str, resources: dict[str, dict[str, Any]]) -> list[Change]:
        """Routes someone added to the stack's API: removed, so the API serves exactly the app's routes."""
        routes = app.routes(env.config)
        wanted_paths = {"/"} | {prefix for route, _ in routes for prefix in _prefixes(route.path)}
        wanted_methods = {route.key for route, _ in routes} | {f"OPTIONS {p}" for p in cors_paths(env)}
        changes = []
        for path, resource in sorted(resources.items()):
            if path not in wanted_paths:
                parent = path.rsplit("/", 1)[0] or "/"
                if parent in wanted_paths:  # deleting a resource deletes everything below it
                    changes.append(self.change(region, "delete", f"resource {path}", "drift: not a route of the app",
                                               Call("apigateway", region, "delete_resource",
                                                    {"restApiId": api_id, "resourceId": resource["id"]},
                                                    done_if=("NotFoundException",))))
                continue
            for method in sorted(resource.get("resourceMethods") or {}):
                if f"{method} {path}" not in wanted_methods:
                    changes.append(self.change(region, "delete", f"route {method} {path}",
                                               "drift: not a route of the app",
                                               Call("apigateway", region, "delete_method",
                                                    {"restApiId": api_id, "resourceId": resource["id"],
                                                     "httpMethod": method}, done_if=("NotFoundException",))))
        return changes

    def _plan_route(self, env: Env, region: str, api_id: Any, resources: dict[str, dict[str, Any]],
                    paths: dict[str, Any], route: app.Route, component: str) -> Change | None:
        method = ((resources.get(route.path) or {}).get("resourceMethods") or {}).get(route.method)
        uri = _uri(env, region, component)
        key_required = needs_api_key(env, component)
        reason = self._route_difference(method, uri, key_required)
        if reason is None:
            return None
        ops = self._ensure_path(region, api_id, paths, route.path)
        resource_id = paths[route.path]
        target = {"restApiId": api_id, "resourceId": resource_id, "httpMethod": route.method}
        if method is not None and reason.startswith("authorization"):
            ops.append(Call("apigateway", region, "delete_method", target, done_if=("NotFoundException",)))
            method = None
        if method is None:
            ops.append(Call("apigateway", region, "put_method",
                            {**target, "authorizationType": AUTHORIZATION, "apiKeyRequired": key_required}))
        # PutIntegration replaces whatever integration the method had.
        ops.append(Call("apigateway", region, "put_integration",
                        {**target, "type": PROXY, "integrationHttpMethod": "POST", "uri": uri}))
        action = "create" if reason == "missing" else "update"
        target_name = names.function_name(env.config, component)
        return self.change(region, action, f"route {route.key}", f"{reason}; {PROXY} -> {target_name}", *ops)

    def _ensure_path(self, region: str, api_id: Any, paths: dict[str, Any], path: str) -> list[Any]:
        """CreateResource for each missing part of `path` (ids of parts created above travel as Refs)."""
        ops: list[Any] = []
        for prefix in _prefixes(path):
            if prefix not in paths:
                parent = paths[prefix.rsplit("/", 1)[0] or "/"]
                output = f"resource {prefix}"
                ops.append(Call("apigateway", region, "create_resource",
                                {"restApiId": api_id, "parentId": parent, "pathPart": prefix.rsplit("/", 1)[1]},
                                outputs={output: "id"}))
                paths[prefix] = self.ref(region, output, f"the resource {prefix} created above")
        return ops

    @staticmethod
    def _route_difference(method: dict[str, Any] | None, uri: str, key_required: bool = False) -> str | None:
        if method is None:
            return "missing"
        if method.get("authorizationType") != AUTHORIZATION or bool(method.get("apiKeyRequired")) != key_required:
            wanted = f"{AUTHORIZATION}{', API key' if key_required else ''}"
            have = f"{method.get('authorizationType')}{', API key' if method.get('apiKeyRequired') else ''}"
            return f"authorization {have} -> {wanted}"
        integration = method.get("methodIntegration") or {}
        if not integration:
            return "no integration"
        current = (integration.get("type"), integration.get("httpMethod"), integration.get("uri"))
        if current != (PROXY, "POST", uri):
            return f"integration {current[0]} {current[2]} differs"
        return None

    def _plan_permissions(self, env: Env, region: str, api_id: Any,
                          statements: dict[str, list[dict[str, Any]]]) -> list[Change]:
        config = env.config
        changes = []
        prefix = names.permission_prefix(config)
        sid = names.permission_id(config, api_id)
        for route, component in app.routes(config):
            name = names.function_name(config, component)
            current = None
            for statement in statements.get(component, []):
                other = str(statement.get("Sid", ""))
                if other.startswith(prefix) and other != sid:
                    changes.append(self.change(region, "delete", f"permission {name}/{other}",
                                               "granted to an API that is not the stack's current one",
                                               self._remove(region, name, other)))
                elif other == sid:
                    current = statement
            source = names.route_source_arn(env.account, env.partition, region, api_id, route.method, route.path)
            if current is not None and self._permission_matches(current, source):
                continue
            ops = [self._remove(region, name, sid)] if current is not None else []
            ops.append(Call("lambda", region, "add_permission", {
                "FunctionName": name, "StatementId": sid, "Action": INVOKE, "Principal": PRINCIPAL,
                "SourceArn": source}, retry=(FUNCTION_BUSY,)))
            changes.append(self.change(region, "create" if current is None else "update", f"permission {name}",
                                       f"{PRINCIPAL} may invoke it from {route.key} of this API only", *ops))
        return changes

    @staticmethod
    def _remove(region: str, name: str, sid: Any) -> Call:
        return Call("lambda", region, "remove_permission", {"FunctionName": name, "StatementId": sid},
                    retry=(FUNCTION_BUSY,), done_if=("ResourceNotFoundException",))

    @staticmethod
    def _permission_matches(statement: dict[str, Any], source: Any) -> bool:
        principal = statement.get("Principal")
        service = principal.get("Service") if isinstance(principal, dict) else principal
        condition = (statement.get("Condition") or {}).get("ArnLike") or {}
        return (is_known(source) and statement.get("Effect") == "Allow" and service == PRINCIPAL
                and statement.get("Action") == INVOKE and condition == {"AWS:SourceArn": source})

    def _plan_deployment(self, env: Env, region: str, api_id: Any, snapshot: ApiSnapshot,
                         routes_changed: bool) -> Change | None:
        if snapshot.stage is None:
            reason, action = "first deployment", "create"
        elif routes_changed:
            reason, action = "routes changed", "update"
        elif snapshot.deployed == deployment_description(env, region):
            return None
        else:
            reason, action = f"deployment {snapshot.stage.get('deploymentId')} serves other routes", "update"
        return self.change(region, action, f"stage {env.config.api.stage}", reason,
                           Call("apigateway", region, "create_deployment",
                                {"restApiId": api_id, "stageName": env.config.api.stage,
                                 "description": deployment_description(env, region)}))

    # ------------------------------------------------------------------------------------------- down

    def destroy(self, env: Env, region: str, snapshot: ApiSnapshot) -> NodePlan:
        config = env.config
        changes = []
        prefix = names.permission_prefix(config)
        for component in snapshot.existing_functions:
            name = names.function_name(config, component)
            for statement in snapshot.statements.get(component, []):
                sid = str(statement.get("Sid", ""))
                if sid.startswith(prefix):
                    changes.append(self.change(region, "delete", f"permission {name}/{sid}", "down",
                                               self._remove(region, name, sid)))
        for api_id in ([snapshot.api["id"]] if snapshot.api else []) + list(snapshot.duplicates):
            changes.append(self.change(region, "delete", f"rest api {api_id}", "down",
                                       Call("apigateway", region, "delete_rest_api", {"restApiId": api_id},
                                            done_if=("NotFoundException",))))
        return NodePlan(changes=tuple(changes))

    def status(self, aws: Reader, region: str) -> ApiStatus:
        api = apis.find_rest_api(aws, region)
        if api is None:
            return ApiStatus(None, None)
        stage = apis.get_stage(aws, region, api["id"])
        return ApiStatus(api["id"], names.invoke_url(aws.config, region, api["id"]), aws.config.api.stage,
                         stage.get("deploymentId") if stage else None)

