"""The REST API data plane: deployed APIs and regional custom domains answer HTTP requests.

moto stores REST APIs but cannot invoke a deployed one in server mode. Here a request is routed by its
Host header, as API Gateway routes it by name:

- `{apiId}.execute-api.{region}.amazonaws.com` with path `/{stage}/...`: that region's API and stage;
- a custom domain's `regionalDomainName` (`d-xxxx.execute-api.{region}.amazonaws.com`, as GetDomainName
  reports it), standing for a client that resolved the custom domain to that region: the domain's base
  path mappings pick the API and stage (base path `(none)` maps the whole path, `v1` maps `/v1/...`), and
  the path carries no stage.

Then as API Gateway does: the stage serves the resource tree of its deployment (a snapshot taken at
CreateDeployment, so an undeployed change is not live), literal path segments win over `{param}`, which
wins over `{proxy+}`; the method or ANY; its API key check and the throttles (usage plan, then stage
method settings: sandbox/apigateway_usage.py); then the integration. `AWS_PROXY` builds the payload 1.0
event, checks the function's resource policy (lambda:AddPermission for apigateway.amazonaws.com and this
API), and runs the function in the sandbox's Lambda runtime; `MOCK` answers from the method's templates and
integration responses (sandbox/apigateway_mock.py). Answers follow AWS: unknown stage or mapping 403
Forbidden, unknown path or method 403 Missing Authentication Token, no valid API key 403 Forbidden, an
empty token bucket 429 Too Many Requests, Lambda refusing the call (throttled, no permission) 500, a
function error, timeout or malformed proxy response 502, all with `{"message": ...}`. Every answer carries
`x-multiregion-region`, the region that served it, and failures a short `x-multiregion-error` saying why
(what API Gateway's execution log would say).

Reaching a region's API from a shell, with the sandbox on its default port:

    curl -H 'Host: {apiId}.execute-api.eu-west-1.amazonaws.com' http://127.0.0.1:4599/prod/health
    curl -H 'Host: d-abc123.execute-api.us-east-1.amazonaws.com' -X POST -d '{"id": "1"}' \\
        http://127.0.0.1:4599/item

A client that connects to an address rather than to a name (as a client does on AWS: it resolves the
global name, connects to the answered address on 443 and sends the global name as SNI and Host) sends its
request to the sandbox with `Host: <global name>` and `X-Multiregion-Connect-To: <address>`. The request is
then served by the endpoint that owns the address (`sandbox/addresses.py` maps addresses to regional domain
names), whatever Route 53 would answer now. The header may name the endpoint itself
(`d-xxxx.execute-api.{region}.amazonaws.com`, what a CNAME answer gives, or an execute-api host), for a
client that cached an answer. An address or name nothing in the sandbox owns is a 502: on AWS the
connection would fail.

    curl -H 'Host: api.example.com' -H 'X-Multiregion-Connect-To: 198.18.7.42' http://127.0.0.1:4599/prod/health

Other extensions (Route 53's global name, health check probes) call `ApiDataPlane.serve` or `.call`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from multiregion.sandbox import apigateway_mock as mock
from multiregion.sandbox import apigateway_usage as usage
from multiregion.sandbox import moto_compat
from multiregion.sandbox.addresses import endpoint_at, is_address
from multiregion.sandbox.app import ACCOUNT_ID, Extension, SandboxRequest
from multiregion.sandbox.lambda_runtime import InvokeError, LambdaRuntime

HOST_RE = re.compile(r"^(?P<prefix>[a-z0-9-]+)\.execute-api\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com$")
_LAMBDA_URI = re.compile(r"^arn:aws[\w-]*:apigateway:[\w-]+:lambda:path/2015-03-31/functions/"
                         r"(?P<arn>arn:aws[\w-]*:lambda:(?P<region>[\w-]+):\d+:function:[^/]+)/invocations$")
_DEPLOYMENTS = re.compile(r"^/restapis/(?P<api>[^/]+)/deployments/?$")
_STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_.:/?#&=,-]+)\}")
_DEPLOYMENT_MEMBERS = ("id", "description", "createdDate", "apiSummary")
REGION_HEADER = "x-multiregion-region"
ERROR_HEADER = "x-multiregion-error"
CONNECT_TO_HEADER = "X-Multiregion-Connect-To"


# ---------------------------------------------------------------------- the deployed resource tree


@dataclass(frozen=True)
class Integration:
    type: str
    uri: str
    http_method: str | None
    credentials: str | None
    mock: mock.MockConfig | None = None  # a MOCK integration's templates and responses


@dataclass(frozen=True)
class Method:
    http_method: str
    resource_id: str
    resource_path: str
    integration: Integration | None
    api_key_required: bool = False


@dataclass
class Node:
    """A resource: its methods and its children, split the way API Gateway matches them."""

    path: str
    resource_id: str
    methods: dict[str, Method] = field(default_factory=dict)
    literal: dict[str, Node] = field(default_factory=dict)
    param: tuple[str, Node] | None = None
    greedy: tuple[str, Node] | None = None

    def candidates(self, segments: list[str], params: dict[str, str]) -> Iterator[tuple[Node, dict[str, str]]]:
        """Resources matching the path, most specific first."""
        if not segments:
            yield self, params
            return
        head, rest = segments[0], segments[1:]
        if head in self.literal:
            yield from self.literal[head].candidates(rest, params)
        if self.param is not None:
            name, child = self.param
            yield from child.candidates(rest, {**params, name: head})
        if self.greedy is not None:
            name, child = self.greedy
            yield child, {**params, name: "/".join(segments)}


def resource_tree(api: moto_compat.RestApi) -> Node:
    """A copy of a moto RestAPI's resources and methods (call under sandbox.lock)."""
    children: dict[str, list[moto_compat.Resource]] = {}
    for res in api.resources.values():
        if res.parent_id:
            children.setdefault(res.parent_id, []).append(res)

    def build(res: moto_compat.Resource, path: str) -> Node:
        node = Node(path=path, resource_id=res.id)
        for verb, method in res.resource_methods.items():
            node.methods[verb.upper()] = Method(verb.upper(), res.id, path, _integration(method),
                                                bool(method.api_key_required))
        for child in children.get(res.id, []):
            part = child.path_part
            sub = build(child, f"{path.rstrip('/')}/{part}")
            if part.startswith("{") and part.endswith("+}"):
                node.greedy = (part[1:-2], sub)
            elif part.startswith("{") and part.endswith("}"):
                node.param = (part[1:-1], sub)
            else:
                node.literal[part] = sub
        return node

    return build(api.resources[api.root_resource_id], "/")


def _integration(method: moto_compat.Method) -> Integration | None:
    integ = method.method_integration
    if integ is None:
        return None
    kind = integ.integration_type or ""
    return Integration(kind, integ.uri or "", integ.http_method, integ.credentials,
                       _mock_config(method, integ) if kind == "MOCK" else None)


def _mock_config(method: moto_compat.Method, integ: moto_compat.Integration) -> mock.MockConfig:
    responses = tuple(mock.IntegrationResponse(str(r.status_code), r.selection_pattern or None,
                                               dict(r.response_parameters or {}), dict(r.response_templates or {}))
                      for r in (integ.integration_responses or {}).values())
    declared = {str(status): frozenset(r.response_parameters or {}) for status, r in method.method_responses.items()}
    return mock.MockConfig(dict(integ.request_templates or {}), integ.passthrough_behaviour or "WHEN_NO_MATCH",
                           responses, declared)


@dataclass
class Target:
    """What a request resolved to before its method is matched."""

    region: str
    api_id: str
    stage: str
    stage_variables: dict[str, str]
    tree: Node
    segments: list[str]  # the path below the stage (or the base path)
    event_path: str
    context_path: str
    domain_name: str
    binary_media_types: list[str]
    api_key_source: str = "HEADER"
    method_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # live: not part of a deployment


@dataclass(frozen=True)
class Admitted:
    """A request past the API key check and the throttles: the key that metered it, if any."""

    key_id: str | None = None
    key_value: str | None = None


# ---------------------------------------------------------------------- responses


def gateway_error(status: int, message: str, error_type: str, region: str | None, why: str = "") -> Response:
    headers = {"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())}
    if region:
        headers[REGION_HEADER] = region
    if why:
        headers[ERROR_HEADER] = why
    return Response(json.dumps({"message": message}), status=status, content_type="application/json",
                    headers=headers)


def forbidden(region: str | None, why: str = "") -> Response:
    return gateway_error(403, "Forbidden", "ForbiddenException", region, why)


def missing_token(region: str) -> Response:
    return gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException", region)


def internal_error(status: int, region: str, why: str) -> Response:
    return gateway_error(status, "Internal server error", "InternalServerErrorException", region, why)


def throttled(region: str, why: str) -> Response:
    # The gateway response THROTTLED; its x-amzn-ErrorType is not given on an AWS page.
    return gateway_error(429, "Too Many Requests", "TooManyRequestsException", region, why)


class MalformedProxyResponse(ValueError):
    pass


# ---------------------------------------------------------------------- the extension


class ApiDataPlane(Extension):
    """Answers requests for execute-api hosts and regional domain names; see the module docstring."""

    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        # (region, api id, deployment id) -> the resource tree that deployment froze
        self.deployments: dict[tuple[str, str, str], Node] = {}
        self.throttle = usage.RequestThrottle()

    def reset(self) -> None:
        self.deployments.clear()
        self.throttle.reset()

    def handle(self, req: SandboxRequest) -> Response | None:
        if req.service == "apigateway" and req.method == "POST":
            if req.path.rstrip("/") == "/restapis":
                return self._create_rest_api(req)
            match = _DEPLOYMENTS.match(req.path)
            if match:
                return self._create_deployment(req, match.group("api"))
            return None
        connect_to = req.raw.headers.get(CONNECT_TO_HEADER) if req.service is None else None
        if connect_to:
            return self._connected(req, connect_to.strip())
        host_match = HOST_RE.match(req.host)
        if host_match is None:
            return None
        # Every name under execute-api resolves on AWS; API Gateway itself refuses the unknown ones.
        return self.serve(req, req.host) or forbidden(host_match.group("region"), f"no API or domain {req.host}")

    def serve(self, req: SandboxRequest, host: str) -> Response | None:
        """Serve `req` as if its Host were `host` (an execute-api host or a regional domain name).

        None when `host` is neither an API nor a custom domain of that region in this sandbox. Never call it
        holding `sandbox.lock`: the function it runs calls back into the sandbox from another thread.
        """
        host = host.split(":")[0].lower()
        match = HOST_RE.match(host)
        if match is None:
            return None
        region = match.group("region")
        with self.sandbox.lock:
            resolved = self._resolve(match.group("prefix"), region, host, req.path)
        if resolved is None or isinstance(resolved, Response):
            return resolved
        return self._dispatch(req, resolved)

    def endpoint_host(self, target: str) -> str | None:
        """The execute-api host `target` names: itself when it is one, the endpoint owning it when it is an
        address the sandbox gave (see sandbox/addresses.py), else None."""
        target = target.strip().rstrip(".").lower()
        if HOST_RE.match(target):
            return target
        if not is_address(target):
            return None
        with self.sandbox.lock:
            names = self._endpoint_names()
        return endpoint_at(target, names)

    def _endpoint_names(self) -> list[str]:
        """Every regional domain name and execute-api host in the sandbox (hold sandbox.lock)."""
        names: list[str] = []
        for region in moto_compat.apigateway_regions():
            names += [d.regional_domain_name for d in moto_compat.domain_names(region).values()
                      if d.regional_domain_name]
            names += [f"{api_id}.execute-api.{region}.amazonaws.com" for api_id in moto_compat.rest_apis(region)]
        return names

    def _connected(self, req: SandboxRequest, connect_to: str) -> Response:
        """A request whose client connected to `connect_to` (an address or an endpoint's name): served by that
        endpoint, not by what DNS answers for its Host."""
        host = self.endpoint_host(connect_to)
        name = HOST_RE.match(host or "")
        if host is None or name is None:
            return gateway_error(502, f"Nothing in the sandbox answers at {connect_to}", "ConnectionFailure",
                                 None, f"no endpoint at {connect_to}")
        # As for a request sent to that name: every name under execute-api resolves, API Gateway refuses it.
        return self.serve(req, host) or forbidden(name.group("region"), f"no API or domain {host}")

    def call(self, host: str, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None,
             body: bytes = b"", query: str = "", source_ip: str = "127.0.0.1") -> Response | None:
        """Serve a request built here (a health check probe, a resolved client), as `serve` does."""
        all_headers = Headers({"User-Agent": "multiregion-sandbox", **(headers or {})})
        environ = EnvironBuilder(method=method, path=path, base_url=f"https://{host}", query_string=query,
                                 data=body, headers=all_headers, environ_base={"REMOTE_ADDR": source_ip}).get_environ()
        return self.serve(SandboxRequest.from_environ(environ), host)

    # ------------------------------------------------------------------ control plane: deployments

    def _create_rest_api(self, req: SandboxRequest) -> Response | None:
        """moto drops CreateRestApi's binaryMediaTypes, which decide how bodies cross the proxy integration."""
        try:
            types = req.json().get("binaryMediaTypes")
        except (ValueError, AttributeError):
            return None  # an OpenAPI import or a malformed body: moto answers it
        if not types:
            return None
        with self.sandbox.lock:
            resp = self.forward(req)
            if resp.status not in (200, 201):
                return resp.response()
            data = resp.json()
            moto_compat.set_binary_media_types(req.region or "", data["id"], list(types))
        data["binaryMediaTypes"] = list(types)
        # moto answers 200 with nulls for what is unset; API Gateway answers 201 and leaves them out.
        return Response(json.dumps(_without_nulls(data)), status=201, content_type="application/json")

    def _create_deployment(self, req: SandboxRequest, api_id: str) -> Response:
        region = req.region or ""
        # Forward and snapshot under one lock hold: the snapshot is exactly what this deployment saw.
        with self.sandbox.lock:
            resp = self.forward(req)
            if resp.status not in (200, 201):
                return resp.response()
            data = resp.json()
            api = moto_compat.rest_apis(region).get(api_id)
            if data.get("id") and api is not None:
                self.deployments[(region, api_id, data["id"])] = resource_tree(api)
        # A Deployment as API Gateway writes it: moto adds the stage's name and nulls for what is unset.
        deployment = {k: v for k, v in _without_nulls(data).items() if k in _DEPLOYMENT_MEMBERS}
        return Response(json.dumps(deployment), status=201, content_type="application/json")

    # ------------------------------------------------------------------ routing (under sandbox.lock)

    def _resolve(self, prefix: str, region: str, host: str, path: str) -> Target | Response | None:
        apis = moto_compat.rest_apis(region)
        segments = [s for s in path.split("/") if s]
        api = apis.get(prefix)
        if api is not None:
            if api.disableExecuteApiEndpoint:
                return forbidden(region, "the execute-api endpoint of this API is disabled")
            if not segments or segments[0] not in api.stages:
                return forbidden(region, f"no stage {segments[0] if segments else '(none)'} in API {api.id}")
            rest = segments[1:]
            return self._target(region, api, api.stages[segments[0]], rest, "/" + "/".join(rest), path, host)
        domain = next((d for d in moto_compat.domain_names(region).values() if d.regional_domain_name == host), None)
        if domain is None:
            return None
        mappings = moto_compat.base_path_mappings(region, domain.domain_name)
        if segments and segments[0] != "(none)" and segments[0] in mappings:
            mapping, rest = mappings[segments[0]], segments[1:]
        elif "(none)" in mappings:
            mapping, rest = mappings["(none)"], segments
        else:
            return forbidden(region, f"no base path mapping of {domain.domain_name} matches {path}")
        api = apis.get(mapping.rest_api_id)
        if api is None:
            return forbidden(region, f"the mapped API {mapping.rest_api_id} does not exist")
        stage_name = mapping.stage
        if stage_name is None:  # a mapping without a stage takes it from the path
            stage_name, rest = (rest[0], rest[1:]) if rest else ("", rest)
        if stage_name not in api.stages:
            return forbidden(region, f"no stage {stage_name or '(none)'} in API {api.id}")
        return self._target(region, api, api.stages[stage_name], rest, path, path, domain.domain_name)

    def _target(self, region: str, api: moto_compat.RestApi, stage: moto_compat.Stage, rest: list[str],
                event_path: str, context_path: str, domain_name: str) -> Target:
        tree = self.deployments.get((region, api.id, stage.deployment_id or ""))
        if tree is None:  # a deployment this sandbox did not see being made: serve the live tree
            tree = resource_tree(api)
        return Target(region=region, api_id=api.id, stage=stage.name or "", stage_variables=dict(stage.variables or {}),
                      tree=tree, segments=rest, event_path=event_path, context_path=context_path,
                      domain_name=domain_name, binary_media_types=list(api.binaryMediaTypes or []),
                      api_key_source=(api.api_key_source or "HEADER").upper(),
                      method_settings={k: dict(v) for k, v in (stage.method_settings or {}).items()})

    # ------------------------------------------------------------------ integration

    def _dispatch(self, req: SandboxRequest, target: Target) -> Response:
        verb = req.method.upper()
        for node, params in target.tree.candidates(target.segments, {}):
            method = node.methods.get(verb) or node.methods.get("ANY")
            if method is not None:
                admitted = self._admit(req, target, method)
                if isinstance(admitted, Response):
                    return admitted
                return self._integrate(req, target, method, params, admitted)
        return missing_token(target.region)

    # ------------------------------------------------------------------ API keys and throttling

    def _admit(self, req: SandboxRequest, target: Target, method: Method) -> Admitted | Response:
        """The API key check, then the throttles (see sandbox/apigateway_usage.py)."""
        metered: usage.MeteredKey | None = None
        value: str | None = None
        if method.api_key_required:
            found = self._metered_key(req, target)
            if isinstance(found, Response):
                return found
            metered, value = found
        why = self.throttle.take(self._demands(target, method, metered),
                                 usage.request_cost(req.raw.headers.get("User-Agent", ""),
                                                    self.sandbox.options.time_scale), self.sandbox.now())
        if why is not None:
            return throttled(target.region, why)
        return Admitted(metered.key_id if metered else None, value)

    def _metered_key(self, req: SandboxRequest, target: Target) -> tuple[usage.MeteredKey, str] | Response:
        route = f"{method_name(req)} of {target.api_id}/{target.stage}"
        if target.api_key_source != "HEADER":
            return forbidden(target.region, f"{route} takes its API key from a Lambda authorizer (apiKeySource "
                                            f"{target.api_key_source}), which the sandbox does not model")
        value = req.raw.headers.get(usage.API_KEY_HEADER, "").strip()
        if not value:
            return forbidden(target.region, f"{route} requires an API key and the request has no x-api-key header")
        with self.sandbox.lock:
            found = usage.metered_key(target.region, target.api_id, target.stage, value)
        if isinstance(found, str):
            return forbidden(target.region, found)
        return found, value

    @staticmethod
    def _demands(target: Target, method: Method, metered: usage.MeteredKey | None) -> list[usage.Demand]:
        where = (f"RestApi {target.api_id}, Stage {target.stage}, Resource {method.resource_id}, "
                 f"HttpMethod {method.http_method}")
        demands = []
        if metered is not None:
            if metered.plan_limit is not None:
                demands.append(usage.Demand(("plan", target.region, metered.plan_id, metered.key_id),
                                            metered.plan_limit, f"Key throttle limit exceeded for Usage Plan ID "
                                                                f"{metered.plan_id}, {where}. "
                                                                f"{metered.plan_limit.describe()}"))
            wanted = usage.method_key(method.resource_path, method.http_method)
            if wanted in metered.method_limits:
                limit = metered.method_limits[wanted]
                demands.append(usage.Demand(("plan-method", target.region, metered.plan_id, metered.key_id,
                                             target.api_id, target.stage, wanted), limit,
                                            f"Key method throttle limit exceeded for Usage Plan ID "
                                            f"{metered.plan_id}, {where}. {limit.describe()}"))
        stage = usage.stage_limit(target.method_settings, method.resource_path, method.http_method)
        if stage is not None:
            demands.append(usage.Demand(("stage", target.region, target.api_id, target.stage, method.resource_id,
                                         method.http_method), stage,
                                        f"Method throttle limit exceeded for {where}. {stage.describe()}"))
        return demands

    # ------------------------------------------------------------------ integrations

    def _integrate(self, req: SandboxRequest, target: Target, method: Method, params: dict[str, str],
                   admitted: Admitted) -> Response:
        region = target.region
        integ = method.integration
        if integ is None:
            return internal_error(500, region, "No integration defined for method")
        if integ.type == "MOCK" and integ.mock is not None:
            return self._mock(req, target, method, params, integ.mock, admitted)
        if integ.type != "AWS_PROXY":
            return internal_error(500, region, f"the sandbox serves AWS_PROXY and MOCK integrations, not {integ.type}")
        uri = _STAGE_VARIABLE.sub(lambda m: target.stage_variables.get(m.group(1), ""), integ.uri)
        match = _LAMBDA_URI.match(uri)
        if match is None:
            return internal_error(500, region, f"not a Lambda invocation URI: {uri}")
        if (integ.http_method or "").upper() != "POST":
            # Lambda's Invoke API is a POST; API Gateway fails any other integration method.
            return internal_error(500, region, "Execution failed due to configuration error: a Lambda "
                                               "integration must use integrationHttpMethod POST")
        runtime = self.sandbox.extension(LambdaRuntime)
        try:
            spec = runtime.function(match.group("arn"), match.group("region"))
            if integ.credentials is None and not self._permitted(match.group("arn"), match.group("region"),
                                                                 target, method, req):
                return internal_error(500, region, "Execution failed due to configuration error: Invalid "
                                                   "permissions on Lambda function")
            event = self._event(req, target, method, params, admitted)
            result = runtime.run(spec, json.dumps(event).encode())
        except InvokeError as exc:
            return internal_error(500, region, f"Lambda refused the call: {exc.code}: {exc.message}")
        if result.function_error:
            _log(target, req, f"Lambda execution failed with status 200 due to customer function error: "
                              f"{result.payload[:300].decode(errors='replace')}")
            return internal_error(502, region, "Lambda execution failed due to customer function error")
        try:
            resp = self._proxy_response(result.payload, req, target)
        except MalformedProxyResponse as exc:
            _log(target, req, f"Execution failed due to configuration error: Malformed Lambda proxy response: {exc}")
            return internal_error(502, region, f"Malformed Lambda proxy response: {exc}")
        resp.headers["x-amzn-RequestId"] = event["requestContext"]["requestId"]
        resp.headers["x-amz-apigw-id"] = event["requestContext"]["extendedRequestId"]
        resp.headers["X-Amzn-Trace-Id"] = _trace_id()
        resp.headers[REGION_HEADER] = region
        return resp

    def _permitted(self, function_arn: str, function_region: str, target: Target, method: Method,
                   req: SandboxRequest) -> bool:
        """Does the function's resource policy let this API invoke it (lambda:AddPermission)?"""
        base = f"arn:aws:execute-api:{target.region}:{ACCOUNT_ID}:{target.api_id}/{target.stage}"
        actual_path = "/".join(target.segments)
        sources = {f"{base}/{verb}/{path}" for verb in {req.method.upper(), method.http_method}
                   for path in {method.resource_path.lstrip("/"), actual_path}}
        with self.sandbox.lock:
            try:
                fn = moto_compat.function(function_region, function_arn)
            except moto_compat.ClientError:
                return False  # deleted since the call was resolved
            statements = moto_compat.policy_statements(fn)
        wanted = function_arn.removesuffix(":$LATEST")
        return any(_allows(s, wanted, sources) for s in statements)

    def _mock(self, req: SandboxRequest, target: Target, method: Method, params: dict[str, str],
              config: mock.MockConfig, admitted: Admitted) -> Response:
        """A MOCK integration: API Gateway answers from the method's templates, no backend runs."""
        context = self._request_context(req, target, method, admitted)
        request = mock.MockRequest(
            body=req.body, content_type=req.raw.headers.get("Content-Type", ""),
            accept=req.raw.headers.get("Accept", ""), path=params, querystring={k: req.raw.args.getlist(k)[-1]
                                                                                for k in req.raw.args},
            headers=dict(req.raw.headers.items()), context=context, stage_variables=target.stage_variables)
        try:
            answer = mock.respond(config, request)
        except mock.TemplateError as exc:
            return internal_error(500, target.region, f"mapping template: {exc}")
        except mock.MockFailure as failure:
            _log(target, req, failure.why)
            return gateway_error(failure.status, failure.message, failure.error_type, target.region, failure.why)
        resp = Response(answer.body, status=answer.status, headers=answer.headers, content_type=answer.content_type)
        resp.headers["x-amzn-RequestId"] = context["requestId"]
        resp.headers["x-amz-apigw-id"] = context["extendedRequestId"]
        resp.headers[REGION_HEADER] = target.region
        return resp

    def _request_context(self, req: SandboxRequest, target: Target, method: Method,
                         admitted: Admitted) -> dict[str, Any]:
        """`requestContext` of the proxy event, which is also `$context` of mapping templates."""
        now = time.time()
        identity = {"cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
                    "sourceIp": req.raw.remote_addr or "127.0.0.1", "principalOrgId": None, "accessKey": None,
                    "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
                    "userAgent": req.raw.headers.get("User-Agent"), "user": None}
        if admitted.key_id is not None:  # API Gateway names the key that metered the request
            identity.update(apiKey=admitted.key_value, apiKeyId=admitted.key_id)
        return {
            "resourceId": method.resource_id,
            "resourcePath": method.resource_path,
            "httpMethod": req.method.upper(),
            "extendedRequestId": secrets.token_urlsafe(12)[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": target.context_path,
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": target.stage,
            "domainPrefix": target.domain_name.split(".")[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": identity,
            "domainName": target.domain_name,
            "apiId": target.api_id,
        }

    def _event(self, req: SandboxRequest, target: Target, method: Method, params: dict[str, str],
               admitted: Admitted) -> dict[str, Any]:
        headers = Headers(req.raw.headers)
        source_ip = req.raw.remote_addr or "127.0.0.1"
        forwarded = headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
        headers.setdefault("X-Forwarded-Port", "443")
        headers.setdefault("X-Forwarded-Proto", "https")
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in headers.items():
            single[name] = value  # the last value wins, as in API Gateway's `headers`
            multi.setdefault(name, []).append(value)
        args = req.raw.args
        query_multi = {k: args.getlist(k) for k in args} or None
        body, is_b64 = _request_body(req.body, headers.get("Content-Type", ""), target.binary_media_types)
        return {
            "resource": method.resource_path,
            "path": target.event_path,
            "httpMethod": req.method.upper(),
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} if query_multi else None,
            "multiValueQueryStringParameters": query_multi,
            "pathParameters": params or None,
            "stageVariables": target.stage_variables or None,
            "requestContext": self._request_context(req, target, method, admitted),
            "body": body,
            "isBase64Encoded": is_b64,
        }

    def _proxy_response(self, payload: bytes, req: SandboxRequest, target: Target) -> Response:
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise MalformedProxyResponse(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise MalformedProxyResponse(f"a JSON {type(data).__name__}, not an object")
        status = data.get("statusCode")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise MalformedProxyResponse(f"invalid statusCode {status!r}")
        headers = Headers()
        single = data.get("headers") or {}
        multi = data.get("multiValueHeaders") or {}
        if not isinstance(single, dict) or not isinstance(multi, dict):
            raise MalformedProxyResponse("headers and multiValueHeaders must be objects")
        for name, values in multi.items():
            if not isinstance(values, list):
                raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] is not a list")
            for value in values:
                headers.add(name, _header_value(name, value))
        for name, value in single.items():
            if name not in headers:  # multiValueHeaders win where both give a header
                headers.add(name, _header_value(name, value))
        body = data.get("body")
        if body is not None and not isinstance(body, str):
            raise MalformedProxyResponse(f"body must be a string, not {type(body).__name__}")
        raw = (body or "").encode()
        if data.get("isBase64Encoded") is True and _accepts_binary(req, target.binary_media_types):
            try:
                raw = base64.b64decode(body or "", validate=True)
            except binascii.Error:
                raise MalformedProxyResponse("isBase64Encoded but the body is not base64") from None
        headers.setdefault("Content-Type", "application/json")
        return Response(raw, status=status, headers=headers)


# ---------------------------------------------------------------------- helpers


def _without_nulls(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise MalformedProxyResponse(f"header {name!r} has a non-scalar value")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _media_matches(media_type: str, patterns: list[str]) -> bool:
    media_type = media_type.split(";")[0].strip().lower()
    for pattern in patterns:
        pattern = pattern.replace("~1", "/").lower()  # "~1" is how PatchOperations escape "/"
        if re.fullmatch(re.escape(pattern).replace(r"\*", "[^/]*"), media_type):
            return True
    return False


def _request_body(body: bytes, content_type: str, binary_types: list[str]) -> tuple[str | None, bool]:
    if not body:
        return None, False
    if binary_types and _media_matches(content_type, binary_types):
        return base64.b64encode(body).decode(), True
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:  # bytes that are not text travel base64-encoded
        return base64.b64encode(body).decode(), True


def _accepts_binary(req: SandboxRequest, binary_types: list[str]) -> bool:
    """API Gateway decodes a base64 proxy body only when the client Accepts one of the binary media types."""
    accept = req.raw.headers.get("Accept", "")
    return bool(binary_types) and any(_media_matches(a, binary_types) for a in accept.split(",") if a.strip())


def _like(pattern: str, value: str) -> bool:
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value) is not None


def _allows(statement: dict[str, Any], function_arn: str, sources: set[str]) -> bool:
    """An Allow statement for apigateway.amazonaws.com whose conditions accept one of the source ARNs."""
    if statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal")
    services = principal.get("Service") if isinstance(principal, dict) else principal
    services = services if isinstance(services, list) else [services]
    if not {"apigateway.amazonaws.com", "*"} & set(services):
        return False
    actions = statement.get("Action")
    actions = actions if isinstance(actions, list) else [actions]
    if not {"lambda:InvokeFunction", "lambda:*", "*"} & set(actions):
        return False
    resource = statement.get("Resource")
    if resource and resource.removesuffix(":$LATEST") != function_arn:
        return False
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, expected in pairs.items():
            if not _condition_holds(operator, key.lower(), expected, sources):
                return False
    return True


def _condition_holds(operator: str, key: str, expected: Any, sources: set[str]) -> bool:
    values = expected if isinstance(expected, list) else [expected]
    if key == "aws:sourceaccount":
        return ACCOUNT_ID in values
    if key != "aws:sourcearn":
        return True  # conditions on other keys are not modelled
    if operator in ("ArnLike", "StringLike"):
        return any(_like(v, s) for v in values for s in sources)
    if operator in ("ArnEquals", "StringEquals"):
        return bool(set(values) & sources)
    return True


def method_name(req: SandboxRequest) -> str:
    return f"{req.method.upper()} {req.path}"


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _log(target: Target, req: SandboxRequest, message: str) -> None:
    print(f"sandbox apigateway {target.region} {target.api_id}/{target.stage} {req.method} {req.path}: {message}",
          file=sys.stderr, flush=True)
