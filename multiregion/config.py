"""The stack's configuration: one YAML file, validated into frozen objects before anything runs.

The file's shape is described once, as data (`MODEL`, a tree of `Spec`s): the same description validates
a file (every problem a `ConfigError` naming the YAML path, the reason and a hint) and is printed as a
JSON Schema (`multiregion schema`) for editors, so the two cannot drift. Checks that look at several
values at once (the domain inside its zone, a handler inside the app's source) follow the structural
ones. Validation makes no AWS call: it must be safe on a machine without credentials. It reads the app's
source files (to check that each handler exists) but never runs them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multiregion.regions import REGIONS, STRONG_REGION_SETS, strong_region_set

DEFAULT_CONFIG = "config.yaml"
CONFIG_ENV = "MULTIREGION_CONFIG"

ROUTING_MODES = ("traffic-policy", "latency-records")
CONSISTENCY_MODES = ("eventual", "strong")
STRONG_MEMBERS = 3  # MRSC: three replicas, or two replicas and a witness (DynamoDB API reference, UpdateTable)
HEALTH_CHECK_INTERVALS = (10, 30)
RUNTIMES = ("python3.12", "python3.13", "python3.14")
OLD_RUNTIMES = ("python3.8", "python3.9", "python3.10", "python3.11")
ARCHITECTURES = ("x86_64", "arm64")
TABLE_ACCESS = ("read", "write", "none")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
AUTH_MODES = ("none", "api-key")
# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)
# Lambda sets these itself; a function may not (reserved environment variables, Lambda developer guide).
RESERVED_ENV = re.compile(r"^(AWS_.*|LAMBDA_.*|_HANDLER|_X_AMZN_TRACE_ID|TZ|LANG|PATH|LD_LIBRARY_PATH|PYTHONPATH)$")
# Set by the tool for every function.
TOOL_ENV = ("TABLE_NAME", "HASH_KEY", "TABLE_CONSISTENCY", "STATUS", "DEEP_CHECK", "CORS_ORIGINS")

_NAME_RE = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
_TABLE_RE = r"^[A-Za-z0-9_.-]{3,255}$"
_STAGE_RE = r"^[A-Za-z0-9_]{1,128}$"
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ATTRIBUTE_RE = r"^[A-Za-z0-9_.-]+$"
_ENDPOINT_RE = re.compile(r"^https?://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:(?P<port>[^/]*))?/?$")
# What `_endpoint` accepts, as one pattern for the JSON Schema (the validator checks in code, to say which part
# is wrong): a port is 1 to 65535.
_PORT_PATTERN = r"0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_ENDPOINT_PATTERN = rf"^(aws|sandbox|https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:{_PORT_PATTERN})?/?)$"
# What `_dns_name` accepts (any case, an optional final dot), and a zone id, for the JSON Schema.
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = rf"(?=.{{1,253}}\.?$)(?:{_DNS_LABEL}\.)+(?![0-9]+\.?$){_DNS_LABEL}\.?"
_DNS_NAME_PATTERN = rf"^{_DNS_NAME}$"
_ZONE_PATTERN = rf"^((/hostedzone/)?[A-Z0-9]{{5,32}}|{_DNS_NAME})$"
_ROLE_ARN_RE = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$"
_PATH_PART_RE = re.compile(r"^([A-Za-z0-9._~-]+|\{[A-Za-z_][A-Za-z0-9_]*\}|\{proxy\+\})$")
_COMPONENT_RE = re.compile(r"^[a-z][a-z0-9-]{0,24}$")


class ConfigError(Exception):
    """A configuration problem: where it is, what is wrong, and what to do about it."""

    def __init__(self, path: str, reason: str, hint: str = "", source: str | None = None):
        self.path, self.reason, self.hint, self.source = path, reason, hint, source
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = f"{self.source}: " if self.source else ""
        text = f"{where}{self.path}: {self.reason}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class Spec:
    """One node of the config file's shape: a value's kind, its limits, its default and its help."""

    kind: str  # string | integer | boolean | list | mapping (fixed keys) | map (any key -> values) | any
    help: str = ""
    default: Any = None
    required: bool = False
    low: int | None = None
    high: int | None = None
    choices: tuple[Any, ...] = ()
    choice_reason: str = ""  # "unknown routing mode": the reason given for a value outside `choices`
    pattern: str | None = None
    pattern_reason: str = ""
    schema_pattern: str | None = None  # the JSON Schema's pattern for a value the validator checks in code
    hint: str = ""
    max_bytes: int | None = None
    items: Spec | None = None
    fields: Mapping[str, Spec] = field(default_factory=dict)
    values: Spec | None = None
    unique: bool = False
    non_empty: bool = False
    one_or_many: bool = False  # a list that may be written as a single value


def string(help: str, **kw: Any) -> Spec:
    return Spec("string", help, **kw)


def integer(help: str, **kw: Any) -> Spec:
    return Spec("integer", help, **kw)


def boolean(help: str, default: bool = False) -> Spec:
    return Spec("boolean", help, default=default)


def section(help: str, fields: Mapping[str, Spec], required: bool = False) -> Spec:
    return Spec("mapping", help, fields=fields, required=required)


ROUTE = section("One route of the API and the handler behind it.", {
    "method": string("HTTP method.", required=True, choices=HTTP_METHODS, choice_reason="unknown HTTP method"),
    "path": string("Resource path, e.g. /orders or /orders/{id}.", required=True),
    "handler": string("module.function in the app's source, e.g. orders.create.", required=True),
    "table": string("What the function may do on the table, in its own region only.", default="none",
                    choices=TABLE_ACCESS, choice_reason="unknown table access",
                    hint="read = GetItem/Query, write = PutItem/UpdateItem/DeleteItem, none = no table access"),
    "name": string("The function's name after `{service}-` (default: from the handler).",
                   pattern=_COMPONENT_RE.pattern, pattern_reason="is not a function name",
                   hint="use 1-25 lowercase letters, digits and dashes, starting with a letter"),
})

MODEL = section("A multiregion stack.", {
    "service": string("Prefix of every resource name; the stack's identity.", required=True,
                      pattern=_NAME_RE, pattern_reason="is not a valid service name",
                      hint="use 2-32 lowercase letters, digits and dashes, starting with a letter"),
    "regions": Spec("list", "AWS regions; the first one is the primary. One region may be written as a plain "
                    "string (regions: us-east-1 is a list of one).", required=True, non_empty=True,
                    unique=True, one_or_many=True,
                    items=string("An AWS region code.", choices=tuple(REGIONS), choice_reason="unknown region")),
    "endpoint": string("aws (default), sandbox, or an http(s):// URL such as LocalStack's.", default="aws",
                       schema_pattern=_ENDPOINT_PATTERN),
    "aws": Spec("map", "Per region: the AWS CLI profile and/or the IAM role (assumed with STS) that sign that "
                "region's calls, for a stack that spans accounts. Route 53 and IAM use the primary region's.",
                values=section("How one region's calls are signed.", {
                    "profile": string("An AWS CLI profile (default: --profile, AWS_PROFILE, the credentials chain)."),
                    "role_arn": string("An IAM role to assume with the profile's credentials.", pattern=_ROLE_ARN_RE,
                                       pattern_reason="is not an IAM role ARN",
                                       hint="write it as arn:aws:iam::123456789012:role/NAME"),
                })),
    "table": section("The DynamoDB global table.", {
        "name": string("Table name (default: the service).", pattern=_TABLE_RE,
                       pattern_reason="is not a valid DynamoDB table name",
                       hint="use 3-255 characters from A-Z a-z 0-9 _ - ."),
        "hash_key": string("The partition key attribute (a string).", default="id", pattern=_ATTRIBUTE_RE,
                           pattern_reason="is not a DynamoDB attribute name", max_bytes=255,
                           hint="use letters, digits, _ - . (at most 255 bytes)"),
        "consistency": string("eventual (default): each region acknowledges its own writes, replication follows "
                              "(RPO > 0 when a region fails); strong: a write is acknowledged once a second "
                              "region holds it (RPO 0; three regions of one Region set; fixed at creation).",
                              default="eventual", choices=CONSISTENCY_MODES, choice_reason="unknown consistency",
                              hint="eventual or strong"),
        "witness": string("strong only: a third region that stores the replication log but serves no traffic "
                          "(with two regions in `regions`).", choices=tuple(REGIONS), choice_reason="unknown region"),
    }),
    "functions": section("Settings of the built-in item API's functions (see app for your own).", {
        "memory": integer("Memory in MB.", default=256, low=128, high=10240),
        "timeout": integer("Timeout in seconds (API Gateway waits at most 29).", default=10, low=1, high=29),
    }),
    "app": section("Your own code: one Lambda function per route (without it, the built-in item API).", {
        "source": string("Directory of Python modules, relative to this file.", required=True),
        "requirements": string("requirements.txt vendored into each zip (wheels for Lambda only)."),
        "runtime": string("Lambda Python runtime.", default="python3.12", choices=RUNTIMES,
                          choice_reason="is not a supported Lambda runtime"),
        "architecture": string("Lambda architecture.", default="x86_64", choices=ARCHITECTURES,
                               choice_reason="is not a Lambda architecture"),
        "routes": Spec("list", "The API's routes.", required=True, non_empty=True, items=ROUTE),
        "include": Spec("list", "Extra files (globs) put into every function's zip.", items=string("A glob.")),
        "environment": Spec("map", "Environment variables of every function.", values=string("A value.")),
        "memory": integer("Memory in MB.", default=256, low=128, high=10240),
        "timeout": integer("Timeout in seconds (API Gateway waits at most 29).", default=10, low=1, high=29),
        "log_retention_days": integer("Retention of each function's log group.", default=30,
                                      choices=LOG_RETENTION_DAYS, choice_reason="is not a CloudWatch Logs retention"),
    }),
    "api": section("The regional REST API of every region.", {
        "stage": string("Stage name.", default="prod", pattern=_STAGE_RE,
                        pattern_reason="is not a valid API Gateway stage name",
                        hint="use letters, digits and underscores"),
        "throttle": section("Stage throttling (requests per second, and burst).", {
            "rate": integer("Steady requests per second.", required=True, low=1, high=10000),
            "burst": integer("Burst size.", required=True, low=1, high=5000),
        }),
        "auth": string("none, or api-key (a usage plan and one key, shown by `status`).", default="none",
                       choices=AUTH_MODES, choice_reason="unknown auth mode"),
        "cors": section("Cross-origin requests from browsers.", {
            "origins": Spec("list", "Allowed origins, e.g. https://app.example.com, or *.", required=True,
                            non_empty=True, items=string("An origin.")),
        }),
    }),
    "domain": section("The one global DNS name.", {
        "name": string("The global name, e.g. api.example.com.", required=True, schema_pattern=_DNS_NAME_PATTERN),
        "hosted_zone": string("The public hosted zone holding it: a DNS name or a zone id.", required=True,
                              schema_pattern=_ZONE_PATTERN),
        "create_zone": boolean("Create the zone if it is missing (delegate it from the registrar then)."),
    }, required=True),
    "health_check": section("The Route 53 health check of every region.", {
        "interval": integer("Seconds between checks: 10 or 30.", default=30, choices=HEALTH_CHECK_INTERVALS,
                            choice_reason="is not a Route 53 request interval",
                            hint="Route 53 checks every 10 or 30 seconds"),
        "failure_threshold": integer("Consecutive failures before a checker calls it unhealthy.", default=3,
                                     low=1, high=10),
        "deep": boolean("The health function also reads the table (a region whose table fails is unhealthy)."),
    }),
    "routing": section("How the global name picks a region.", {
        "mode": string("traffic-policy ($50 a month per policy record) or latency-records.",
                       default="traffic-policy", choices=ROUTING_MODES, choice_reason="unknown routing mode"),
        "ttl": integer("TTL of the answers, in seconds.", default=60, low=0, high=2147483647),
    }),
    "drill": section("What failover-test writes and reads (default: the built-in item API's routes).", {
        "write": string("The route that writes, e.g. 'POST /orders'.", required=True),
        "read": string("The route that reads one item, e.g. 'GET /orders/{id}'.", required=True),
        "body": Spec("map", "Extra fields of each write's JSON body.", values=Spec("any")),
        "id_field": string("The body field holding the item's id.", default="id"),
    }),
})


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", int: "a number", float: "a number", list: "a list", dict: "a mapping",
            type(None): "empty"}.get(type(value), type(value).__name__)


def _sub(path: str, key: str) -> str:
    return key if path == "(top level)" else f"{path}.{key}"


def check(spec: Spec, value: Any, path: str) -> Any:
    """The value validated against `spec`, defaults filled in for mappings; ConfigError otherwise."""
    if spec.kind == "mapping":
        return _check_mapping(spec, value, path)
    if spec.kind == "list":
        return _check_list(spec, value, path)
    if spec.kind == "map":
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be a mapping, not {_type_name(value)}")
        return {str(k): check(spec.values or Spec("any"), v, f"{path}.{k}") for k, v in value.items()}
    if spec.kind == "string":
        return _check_string(spec, value, path)
    if spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"must be a whole number, not {value!r}", spec.hint)
        _check_choice(spec, value, path)
        if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
            raise ConfigError(path, f"{value} is out of range", f"use a value from {spec.low} to {spec.high}")
        return value
    if spec.kind == "boolean":
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, not {value!r}")
        return value
    return value


def _check_mapping(spec: Spec, value: Any, path: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(path, f"must be a mapping, not {_type_name(value)}",
                          "see config.yaml in the project for an example")
    for key in value:
        if key not in spec.fields:
            raise ConfigError(_sub(path, str(key)), "unknown key", f"known keys here: {', '.join(spec.fields)}")
    out: dict[str, Any] = {}
    for key, sub in spec.fields.items():
        present = value.get(key)
        if present is None:
            if sub.required:
                raise ConfigError(_sub(path, key), "is required", "see config.yaml for an example")
            out[key] = _check_mapping(sub, {}, _sub(path, key)) if sub.kind == "mapping" and not \
                any(f.required for f in sub.fields.values()) and key not in OPTIONAL_SECTIONS else sub.default
            continue
        out[key] = check(sub, present, _sub(path, key))
    return out


# Sections whose absence means "not used" (None), not "all defaults".
OPTIONAL_SECTIONS = ("app", "throttle", "cors", "drill")


def _check_list(spec: Spec, value: Any, path: str) -> list[Any]:
    if spec.one_or_many and isinstance(value, str):
        value = [value]  # `regions: us-east-1` is a list of one
    if not isinstance(value, list) or (spec.non_empty and not value):
        what = "a non-empty list" if spec.non_empty else "a list"
        raise ConfigError(path, f"must be {what}", "for example: regions: [eu-west-1, us-east-1]"
                          if path == "regions" else "write a YAML list: [a, b] or one '- item' per line")
    items = [check(spec.items or Spec("any"), item, f"{path}[{i}]") for i, item in enumerate(value)]
    if spec.unique:
        for i, item in enumerate(items):
            if item in items[:i]:
                raise ConfigError(f"{path}[{i}]", f"{item!r} is listed twice",
                                  "list each region once; the first one is the primary")
    return items


def _check_string(spec: Spec, value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        if spec.choices:
            raise ConfigError(path, f"{spec.choice_reason or 'unknown value'} {value!r}",
                              f"use one of: {', '.join(map(str, spec.choices))}")
        raise ConfigError(path, f"must be a non-empty string, not {value!r}", spec.hint)
    text = value.strip()
    _check_choice(spec, text, path)
    if spec.pattern and not re.match(spec.pattern, text):
        raise ConfigError(path, f"{text!r} {spec.pattern_reason or 'is not valid here'}", spec.hint)
    if spec.max_bytes is not None and len(text.encode("utf-8")) > spec.max_bytes:
        raise ConfigError(path, f"is {len(text.encode('utf-8'))} bytes long, more than {spec.max_bytes}",
                          spec.hint)
    return text


def _check_choice(spec: Spec, value: Any, path: str) -> None:
    if spec.choices and value not in spec.choices:
        reason = spec.choice_reason or "unknown value"
        shown = ", ".join(map(str, spec.choices)) if len(spec.choices) <= 25 else \
            f"{', '.join(map(str, spec.choices[:25]))}, ..."
        if path.startswith("regions"):
            shown = ", ".join(sorted(map(str, spec.choices)))
        prefix = f"{reason} {value!r}" if reason.startswith("unknown") else f"{value!r} {reason}"
        if spec.kind == "integer" and not reason.startswith("unknown"):
            prefix = f"{value} {reason}"
        hint = spec.hint or f"use one of: {shown}"
        if value in OLD_RUNTIMES:
            hint = f"{value} is older than the runtimes AWS keeps current (python3.9 is deprecated since " \
                   f"2025-12-15): use one of {', '.join(RUNTIMES)}"
        raise ConfigError(path, prefix, hint if not path.startswith("regions") else f"known regions: {shown}")


def json_schema() -> dict[str, Any]:
    """The config file's JSON Schema (draft 2020-12), from the same model that validates it."""
    schema = _schema_of(MODEL)
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": "https://multiregion.dev/schema/config.json", "title": "multiregion config.yaml"})
    return schema


def _schema_of(spec: Spec) -> dict[str, Any]:
    out: dict[str, Any] = {"description": spec.help} if spec.help else {}
    if spec.kind == "mapping":
        out.update(type="object", additionalProperties=False,
                   properties={k: _schema_of(v) for k, v in spec.fields.items()})
        required = [k for k, v in spec.fields.items() if v.required]
        if required:
            out["required"] = required
    elif spec.kind == "list":
        items = _schema_of(spec.items or Spec("any"))
        array: dict[str, Any] = {"type": "array", "items": items}
        if spec.non_empty:
            array["minItems"] = 1
        if spec.unique:
            array["uniqueItems"] = True
        if spec.one_or_many:
            out["oneOf"] = [array, items]
        else:
            out.update(array)
    elif spec.kind == "map":
        out.update(type="object", additionalProperties=_schema_of(spec.values or Spec("any")))
    elif spec.kind == "string":
        out["type"] = "string"
        if spec.choices:
            out["enum"] = list(spec.choices)
        if spec.pattern or spec.schema_pattern:
            out["pattern"] = spec.pattern or spec.schema_pattern
        out["minLength"] = 1
        if spec.max_bytes is not None:
            # JSON Schema counts characters, not bytes: exact for ASCII-only patterns, looser otherwise.
            out["maxLength"] = spec.max_bytes
    elif spec.kind == "integer":
        out["type"] = "integer"
        if spec.choices:
            out["enum"] = list(spec.choices)
        if spec.low is not None:
            out["minimum"] = spec.low
        if spec.high is not None:
            out["maximum"] = spec.high
    elif spec.kind == "boolean":
        out["type"] = "boolean"
    if spec.default is not None and spec.kind not in ("mapping", "list"):
        out["default"] = spec.default
    return out


# ------------------------------------------------------------------------------------------ the objects


@dataclass(frozen=True)
class TableConfig:
    name: str
    hash_key: str = "id"
    consistency: str = "eventual"
    witness: str | None = None

    @property
    def strong(self) -> bool:
        return self.consistency == "strong"


@dataclass(frozen=True)
class FunctionsConfig:
    memory: int = 256
    timeout: int = 10


@dataclass(frozen=True)
class ThrottleConfig:
    rate: int
    burst: int


@dataclass(frozen=True)
class ApiConfig:
    stage: str = "prod"
    throttle: ThrottleConfig | None = None
    auth: str = "none"
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainConfig:
    name: str
    hosted_zone: str
    create_zone: bool = False


@dataclass(frozen=True)
class HealthCheckConfig:
    interval: int = 30
    failure_threshold: int = 3
    deep: bool = False


@dataclass(frozen=True)
class RoutingConfig:
    mode: str = "traffic-policy"
    ttl: int = 60


@dataclass(frozen=True)
class RouteConfig:
    method: str
    path: str
    handler: str
    table: str = "none"
    name: str = ""  # the function's component name

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class AppConfig:
    source: Path
    routes: tuple[RouteConfig, ...]
    requirements: Path | None = None
    runtime: str = "python3.12"
    architecture: str = "x86_64"
    include: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    memory: int = 256
    timeout: int = 10
    log_retention_days: int = 30


@dataclass(frozen=True)
class RegionAccess:
    """`aws.<region>`: how that region's calls are signed."""

    profile: str | None = None
    role_arn: str | None = None


@dataclass(frozen=True)
class DrillConfig:
    write: tuple[str, str] = ("POST", "/item")
    read: tuple[str, str] = ("GET", "/item/{id}")
    body: tuple[tuple[str, Any], ...] = ()
    id_field: str = "id"


@dataclass(frozen=True)
class Config:
    service: str
    regions: tuple[str, ...]
    table: TableConfig
    domain: DomainConfig
    endpoint: str = "aws"
    functions: FunctionsConfig = field(default_factory=FunctionsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    app: AppConfig | None = None
    drill: DrillConfig = field(default_factory=DrillConfig)
    source: str | None = None
    access: tuple[tuple[str, RegionAccess], ...] = ()  # `aws:` in the file, per region

    @property
    def primary(self) -> str:
        return self.regions[0]

    @property
    def uses_sandbox(self) -> bool:
        return self.endpoint == "sandbox"

    def name(self, component: str) -> str:
        """The deterministic name of one of the stack's resources: `{service}-{component}`."""
        return f"{self.service}-{component}"


# ---------------------------------------------------------------------------------------------- loading


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("(file)", f"no configuration file at {p}", f"pass --config PATH or set {CONFIG_ENV}")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"line {line}", f"not UTF-8 text (byte 0x{p.read_bytes()[exc.start]:02x} at offset "
                          f"{exc.start})", "save the file as UTF-8", source=str(p)) from None
    except OSError as exc:
        raise ConfigError("(file)", f"cannot read {p}: {exc.strerror}", source=str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}", source=str(p)) from None
    try:
        return parse_config(data, source=str(p), base_dir=p.resolve().parent)
    except ConfigError as exc:
        exc.source = str(p)
        raise


def parse_config(data: Any, source: str | None = None, base_dir: Path | None = None) -> Config:
    raw = check(MODEL, data, "(top level)")
    service = raw["service"]
    table, functions, api_raw = raw["table"], raw["functions"], raw["api"]
    throttle = api_raw["throttle"]
    cors = api_raw["cors"]
    api = ApiConfig(stage=api_raw["stage"], auth=api_raw["auth"],
                    throttle=ThrottleConfig(throttle["rate"], throttle["burst"]) if throttle else None,
                    cors_origins=tuple(cors["origins"]) if cors else ())
    if api.throttle and api.throttle.burst < 1:
        raise ConfigError("api.throttle.burst", "must be at least 1")
    hc = raw["health_check"]
    app = _app(raw["app"], base_dir or Path.cwd()) if raw["app"] else None
    routing = raw["routing"]
    config = Config(
        service=service, regions=tuple(raw["regions"]), endpoint=_endpoint(raw["endpoint"]),
        table=TableConfig(name=table["name"] or service, hash_key=table["hash_key"],
                          consistency=table["consistency"], witness=table["witness"]),
        functions=FunctionsConfig(functions["memory"], functions["timeout"]), api=api,
        domain=_domain(raw["domain"]),
        health_check=HealthCheckConfig(hc["interval"], hc["failure_threshold"], hc["deep"]),
        routing=RoutingConfig(routing["mode"], routing["ttl"]), app=app,
        drill=_drill(raw["drill"], app), source=source, access=_access(raw["aws"], tuple(raw["regions"])))
    if not re.match(_TABLE_RE, config.table.name):
        raise ConfigError("table.name", f"{config.table.name!r} is not a valid DynamoDB table name",
                          "use 3-255 characters from A-Z a-z 0-9 _ - .")
    _check_consistency(config)
    return config


def _check_consistency(config: Config) -> None:
    """AWS's rules for a strongly consistent (MRSC) global table, checked before any call (see regions.py
    for the Region sets and FACTS.md): three members in one Region set, a witness only beside two replicas."""
    table, regions = config.table, config.regions
    if table.witness is not None and not table.strong:
        raise ConfigError("table.witness", "a witness belongs to a strongly consistent table only",
                          "set table.consistency: strong, or remove table.witness")
    if not table.strong:
        return
    if table.witness in regions:
        raise ConfigError("table.witness", f"{table.witness} is also in `regions`",
                          "the witness is a third region that serves no traffic: pick one not in `regions`")
    members = [*regions, *([table.witness] if table.witness else [])]
    if len(members) != STRONG_MEMBERS:
        have = f"{len(regions)} region(s)" + (" and a witness" if table.witness else "")
        raise ConfigError("table.consistency", f"strong consistency needs exactly three regions; the config has "
                          f"{have}", "list three regions, or two regions and table.witness (a third region "
                          "that only stores the replication log)")
    sets = {r: strong_region_set(r) for r in members}
    outside = [r for r, s in sets.items() if s is None]
    if outside:
        offered = "; ".join(f"{k}: {', '.join(v)}" for k, v in STRONG_REGION_SETS.items())
        raise ConfigError("table.consistency", f"DynamoDB offers strong consistency only inside a Region set; "
                          f"{', '.join(outside)} is in none", f"use three regions of one set ({offered})")
    if len(set(sets.values())) > 1:
        by_set = ", ".join(f"{r} ({s})" for r, s in sets.items())
        raise ConfigError("table.consistency", f"the regions span two Region sets: {by_set}",
                          "strong consistency keeps all three inside one set (US, EU or AP)")


def _access(raw: dict[str, Any] | None, regions: tuple[str, ...]) -> tuple[tuple[str, RegionAccess], ...]:
    out = []
    for region, entry in (raw or {}).items():
        if region not in regions:
            raise ConfigError(f"aws.{region}", "is not one of the configured regions",
                              f"configured: {', '.join(regions)}")
        if not entry["profile"] and not entry["role_arn"]:
            raise ConfigError(f"aws.{region}", "names neither a profile nor a role_arn", "give one, or remove it")
        out.append((region, RegionAccess(entry["profile"], entry["role_arn"])))
    return tuple(out)


def _endpoint(value: str) -> str:
    if value in ("aws", "sandbox"):
        return value
    match = _ENDPOINT_RE.match(value)
    if match:
        port = match.group("port")
        if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError("endpoint", f"{value!r} has no valid port ({port!r})",
                              "a port is a number from 1 to 65535, e.g. http://127.0.0.1:4566")
        return value.rstrip("/")
    raise ConfigError("endpoint", f"{value!r} is not an endpoint",
                      "use 'aws', 'sandbox', or an http(s):// URL such as http://127.0.0.1:4566")


def _domain(raw: dict[str, Any]) -> DomainConfig:
    name = _dns_name(raw["name"], "domain.name")
    zone, create = raw["hosted_zone"], raw["create_zone"]
    if not _is_zone_id(zone):
        zone = _dns_name(zone, "domain.hosted_zone")
        if not (name == zone or name.endswith("." + zone)):
            raise ConfigError("domain.name", f"{name!r} is outside the hosted zone {zone!r}",
                              f"use a name that ends in .{zone}, or change domain.hosted_zone")
        if name == zone:
            raise ConfigError("domain.name", f"{name!r} is the zone apex",
                              f"the global name needs a label inside {zone}, e.g. api.{zone}")
    elif create:
        raise ConfigError("domain.create_zone", "a zone can only be created from a name, not an id",
                          "set domain.hosted_zone to the zone's DNS name")
    return DomainConfig(name=name, hosted_zone=zone, create_zone=create)


def _is_zone_id(value: str) -> bool:
    # Route 53 zone ids are upper-case letters and digits (AWS's start with Z); a zone name has dots.
    return bool(re.match(r"^(/hostedzone/)?[A-Z0-9]{5,32}$", value))


def _dns_name(value: str, path: str) -> str:
    name = value.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise ConfigError(path, f"{value!r} is not a valid DNS name",
                          "use dot-separated labels of letters, digits and dashes, e.g. api.example.com")
    if labels[-1].isdigit():
        raise ConfigError(path, f"{value!r} looks like an IP address, not a DNS name",
                          "use a DNS name such as api.example.com")
    return name


# --------------------------------------------------------------------------------------------------- app


def component_of(handler: str) -> str:
    """The function name part a handler gives by default: `orders.create` -> `orders-create`, and a
    function named `handler` goes by its module (`put_item.handler` -> `put-item`)."""
    module, _, func = handler.replace("/", ".").rpartition(".")
    parts = module.split(".") + ([] if func == "handler" else [func])
    name = "-".join(parts).replace("_", "-").lower()
    name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")
    return name[:25].rstrip("-") or "fn"


def _app(raw: dict[str, Any], base: Path) -> AppConfig:
    from multiregion.packaging import PackagingError, check_handler

    source = (base / raw["source"]).resolve()
    if not source.is_dir():
        raise ConfigError("app.source", f"no directory {source}", "point app.source at your handlers' directory, "
                          "relative to the config file")
    requirements = None
    if raw["requirements"]:
        requirements = (base / raw["requirements"]).resolve()
        if not requirements.is_file():
            raise ConfigError("app.requirements", f"no file {requirements}", "remove the key, or create the file")
    routes: list[RouteConfig] = []
    seen: dict[tuple[str, str], int] = {}
    handlers: dict[str, tuple[str, str]] = {}  # component -> (handler, table access)
    for i, route in enumerate(raw["routes"]):
        where = f"app.routes[{i}]"
        path = _route_path(route["path"], f"{where}.path")
        key = (route["method"], path)
        if key in seen or ("ANY", path) in seen or (route["method"] == "ANY" and any(p == path for _, p in seen)):
            raise ConfigError(f"{where}.path", f"{route['method']} {path} is declared twice",
                              "give each method and path one route")
        seen[key] = i
        try:
            check_handler(source, route["handler"])
        except PackagingError as exc:
            raise ConfigError(f"{where}.handler", str(exc), "fix the handler string or the module") from None
        component = route["name"] or component_of(route["handler"])
        if component == "health":
            raise ConfigError(f"{where}.name" if route["name"] else f"{where}.handler",
                              "the function name 'health' is the tool's own health function",
                              "name this route's function otherwise (app.routes[].name)")
        earlier = handlers.get(component)
        if earlier is not None and earlier[0] != route["handler"]:
            raise ConfigError(f"{where}.handler", f"two handlers share the function name {component!r} "
                              f"({earlier[0]}, {route['handler']})", "set app.routes[].name for one of them")
        if earlier is not None and earlier[1] != route["table"]:
            raise ConfigError(f"{where}.table", f"{route['handler']} is declared with table access {earlier[1]} "
                              f"and {route['table']}", "one function has one access level: use the same on both")
        handlers[component] = (route["handler"], route["table"])
        routes.append(RouteConfig(route["method"], path, route["handler"], route["table"], component))
    environment = []
    for key, value in (raw["environment"] or {}).items():
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", key) or RESERVED_ENV.match(key) or key in TOOL_ENV:
            raise ConfigError(f"app.environment.{key}", "is reserved or not a valid variable name",
                              f"Lambda sets AWS_*, LAMBDA_* and others itself; the tool sets {', '.join(TOOL_ENV)}")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"app.environment.{key}", "must be a string, number or boolean")
        environment.append((key, str(value).lower() if isinstance(value, bool) else str(value)))
    return AppConfig(source=source, routes=tuple(routes), requirements=requirements, runtime=raw["runtime"],
                     architecture=raw["architecture"], include=tuple(raw["include"] or ()),
                     environment=tuple(environment), memory=raw["memory"], timeout=raw["timeout"],
                     log_retention_days=raw["log_retention_days"])


def _route_path(value: str, where: str) -> str:
    parts = value.strip().split("/")
    if not value.startswith("/") or value != "/" and any(not p for p in parts[1:]):
        raise ConfigError(where, f"{value!r} is not a resource path", "write it as /orders or /orders/{id}")
    names = [p for p in parts[1:] if p]
    for i, part in enumerate(names):
        if not _PATH_PART_RE.match(part) or (part == "{proxy+}" and i != len(names) - 1):
            raise ConfigError(where, f"{value!r}: {part!r} is not a path segment API Gateway takes",
                              "use letters, digits and . _ ~ -, a {parameter}, or a final {proxy+}")
    if names[:1] == ["health"] and len(names) == 1:
        raise ConfigError(where, "/health is the tool's own health route", "use another path")
    return "/" + "/".join(names)


def _drill(raw: dict[str, Any] | None, app: AppConfig | None) -> DrillConfig:
    if raw is None:
        if app is not None and not ({("POST", "/item"), ("GET", "/item/{id}")} <= {(r.method, r.path)
                                                                                    for r in app.routes}):
            # Without a drill section the test uses the item API's routes, which this app lacks: said when the
            # drill runs, so that `up` works with any app.
            return DrillConfig(write=("", ""), read=("", ""))
        return DrillConfig()
    routes = {(r.method, r.path) for r in app.routes} if app else {("POST", "/item"), ("GET", "/item/{id}")}

    def route(key: str) -> tuple[str, str]:
        method, _, path = str(raw[key]).strip().partition(" ")
        found = (method.upper(), path.strip())
        if found not in routes:
            known = ", ".join(f"{m} {p}" for m, p in sorted(routes))
            raise ConfigError(f"drill.{key}", f"{raw[key]!r} is not a route of the app", f"routes: {known}")
        return found

    write, read = route("write"), route("read")
    if "{" not in read[1]:
        raise ConfigError("drill.read", f"{read[0]} {read[1]} has no path parameter for the item's id",
                          "use a route such as 'GET /orders/{id}'")
    body = tuple((str(k), v) for k, v in (raw["body"] or {}).items())
    return DrillConfig(write=write, read=read, body=body, id_field=raw["id_field"])

