"""The stack's configuration: one YAML file, validated into frozen objects before anything runs.

Every problem is reported as a `ConfigError` naming the YAML path, the reason and a hint. Validation makes
no AWS call: it must be safe to run on a machine without credentials.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multiregion.regions import REGIONS

DEFAULT_CONFIG = "config.yaml"
CONFIG_ENV = "MULTIREGION_CONFIG"

ROUTING_MODES = ("traffic-policy", "latency-records")
HEALTH_CHECK_INTERVALS = (10, 30)
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_STAGE_RE = re.compile(r"^[A-Za-z0-9_]{1,128}$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


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


@dataclass(frozen=True)
class TableConfig:
    name: str
    hash_key: str = "id"


@dataclass(frozen=True)
class FunctionsConfig:
    memory: int = 256
    timeout: int = 10


@dataclass(frozen=True)
class ApiConfig:
    stage: str = "prod"


@dataclass(frozen=True)
class DomainConfig:
    name: str
    hosted_zone: str
    create_zone: bool = False


@dataclass(frozen=True)
class HealthCheckConfig:
    interval: int = 30
    failure_threshold: int = 3


@dataclass(frozen=True)
class RoutingConfig:
    mode: str = "traffic-policy"
    ttl: int = 60


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
    source: str | None = None

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
        raise ConfigError(
            "(file)", f"no configuration file at {p}", f"pass --config PATH or set {CONFIG_ENV}"
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}", source=str(p)) from None
    try:
        return parse_config(data, source=str(p))
    except ConfigError as exc:
        exc.source = str(p)
        raise


def parse_config(data: Any, source: str | None = None) -> Config:
    top = _Mapping(data, "(top level)")
    top.only("service", "regions", "endpoint", "table", "functions", "api", "domain", "health_check",
             "routing")

    service = top.string("service", required=True)
    if not _NAME_RE.match(service):
        raise ConfigError("service", f"{service!r} is not a valid service name",
                          "use 2-32 lowercase letters, digits and dashes, starting with a letter")

    regions = _regions(top.get("regions", required=True))
    endpoint = _endpoint(top.string("endpoint", default="aws"))

    table_m = top.mapping("table")
    table_m.only("name", "hash_key")
    table = TableConfig(
        name=table_m.string("table.name", key="name", default=service),
        hash_key=table_m.string("table.hash_key", key="hash_key", default="id"),
    )
    if not _TABLE_RE.match(table.name):
        raise ConfigError("table.name", f"{table.name!r} is not a valid DynamoDB table name",
                          "use 3-255 characters from A-Z a-z 0-9 _ - .")

    fn_m = top.mapping("functions")
    fn_m.only("memory", "timeout")
    functions = FunctionsConfig(
        memory=fn_m.integer("functions.memory", "memory", 256, 128, 10240),
        timeout=fn_m.integer("functions.timeout", "timeout", 10, 1, 29),
    )

    api_m = top.mapping("api")
    api_m.only("stage")
    api = ApiConfig(stage=api_m.string("api.stage", key="stage", default="prod"))
    if not _STAGE_RE.match(api.stage):
        raise ConfigError("api.stage", f"{api.stage!r} is not a valid API Gateway stage name",
                          "use letters, digits and underscores")

    domain = _domain(top.mapping("domain", required=True))

    hc_m = top.mapping("health_check")
    hc_m.only("interval", "failure_threshold")
    interval = hc_m.integer("health_check.interval", "interval", 30)
    if interval not in HEALTH_CHECK_INTERVALS:
        raise ConfigError("health_check.interval", f"{interval} is not a Route 53 request interval",
                          "Route 53 checks every 10 or 30 seconds")
    health_check = HealthCheckConfig(
        interval=interval,
        failure_threshold=hc_m.integer("health_check.failure_threshold", "failure_threshold", 3, 1, 10),
    )

    rt_m = top.mapping("routing")
    rt_m.only("mode", "ttl")
    mode = rt_m.string("routing.mode", key="mode", default="traffic-policy")
    if mode not in ROUTING_MODES:
        raise ConfigError("routing.mode", f"unknown routing mode {mode!r}",
                          f"use one of: {', '.join(ROUTING_MODES)}")
    routing = RoutingConfig(mode=mode, ttl=rt_m.integer("routing.ttl", "ttl", 60, 0, 2147483647))

    return Config(service=service, regions=regions, endpoint=endpoint, table=table, functions=functions,
                  api=api, domain=domain, health_check=health_check, routing=routing, source=source)


def _regions(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError("regions", "must be a non-empty list of AWS region codes",
                          "for example: regions: [eu-west-1, us-east-1]")
    seen: list[str] = []
    for i, region in enumerate(value):
        if not isinstance(region, str) or region not in REGIONS:
            raise ConfigError(f"regions[{i}]", f"unknown region {region!r}",
                              f"known regions: {', '.join(sorted(REGIONS))}")
        if region in seen:
            raise ConfigError(f"regions[{i}]", f"region {region!r} is listed twice",
                              "list each region once; the first one is the primary")
        seen.append(region)
    return tuple(seen)


def _endpoint(value: str) -> str:
    if value in ("aws", "sandbox"):
        return value
    if re.match(r"^https?://[^\s/]+(:\d+)?/?$", value):
        return value.rstrip("/")
    raise ConfigError("endpoint", f"{value!r} is not an endpoint",
                      "use 'aws', 'sandbox', or an http(s):// URL such as http://127.0.0.1:4566")


def _domain(m: _Mapping) -> DomainConfig:
    m.only("name", "hosted_zone", "create_zone")
    name = _dns_name(m.string("domain.name", key="name", required=True), "domain.name")
    zone = m.string("domain.hosted_zone", key="hosted_zone", required=True)
    create = m.boolean("domain.create_zone", "create_zone", False)
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


class _Mapping:
    """A YAML mapping being validated; remembers its path so every error can name it."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"must be a mapping, not {type(data).__name__}",
                              "see config.yaml in the project for an example")
        self.data, self.path = data, path

    def _sub(self, key: str) -> str:
        return key if self.path == "(top level)" else f"{self.path}.{key}"

    def only(self, *keys: str) -> None:
        for key in self.data:
            if key not in keys:
                raise ConfigError(self._sub(str(key)), "unknown key",
                                  f"known keys here: {', '.join(keys)}")

    def get(self, key: str, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError(self._sub(key), "is required", "see config.yaml for an example")
            return None
        return self.data[key]

    def mapping(self, key: str, required: bool = False) -> _Mapping:
        return _Mapping(self.get(key, required), self._sub(key))

    def string(self, path: str, key: str | None = None, default: str | None = None,
               required: bool = False) -> str:
        value = self.get(key or path, required)
        if value is None:
            return default  # type: ignore[return-value]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(path, f"must be a non-empty string, not {value!r}")
        return value.strip()

    def integer(self, path: str, key: str, default: int, low: int | None = None,
                high: int | None = None) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"must be a whole number, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(path, f"{value} is out of range", f"use a value from {low} to {high}")
        return value

    def boolean(self, path: str, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, not {value!r}")
        return value
