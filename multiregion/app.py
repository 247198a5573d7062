"""The app the stack runs: its functions and routes, as the stages deploy them.

With an `app` section in the config these are the team's own handlers, one Lambda function per handler
(a handler may serve several routes). Without one it is the built-in item API (the article's demo), as a
built-in app through the same mechanism: `POST /item` and `GET /item/{id}`. Every stack also gets the
tool's own health function (`GET /health`), which Route 53's health checks probe and `failover-test`
flips; it is never the user's code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from multiregion import packaging
from multiregion.config import Config

HEALTH = "health"
HEALTH_STATUS = "200"
DEFAULT_RUNTIME = "python3.12"
VENDOR_ENV = "MULTIREGION_BUILD_DIR"  # where vendored dependencies are cached (default: $MULTIREGION_HOME/build)


@dataclass(frozen=True)
class Route:
    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Function:
    """One Lambda function of the stack, the same in every region."""

    component: str  # the function is named `{service}-{component}`
    handler: str  # module.function
    routes: tuple[Route, ...]
    table_access: str  # read | write | none
    runtime: str = DEFAULT_RUNTIME
    architecture: str = "x86_64"
    memory: int = 256
    timeout: int = 10
    environment: tuple[tuple[str, str], ...] = ()
    source: Path = field(default=packaging.HANDLERS_DIR)
    include: tuple[str, ...] = ()
    requirements: Path | None = None
    log_retention_days: int = 30

    @property
    def module(self) -> str:
        return packaging.split_handler(self.handler)[0]

    @property
    def route(self) -> Route:
        return self.routes[0]


def functions(config: Config) -> tuple[Function, ...]:
    """The stack's functions, in a fixed order (the app's, then health)."""
    common = _table_environment(config)
    if config.app is None:
        memory, timeout = config.functions.memory, config.functions.timeout
        cors = _cors_environment(config)
        own: tuple[Function, ...] = (
            Function("put", "put_item.handler", (Route("POST", "/item"),), "write", memory=memory, timeout=timeout,
                     environment=(*common, *cors)),
            Function("get", "get_item.handler", (Route("GET", "/item/{id}"),), "read", memory=memory,
                     timeout=timeout, environment=(*common, *cors)),
        )
        runtime, architecture, retention = DEFAULT_RUNTIME, "x86_64", 30
    else:
        app = config.app
        by_component: dict[str, list[Route]] = {}
        first: dict[str, tuple[str, str]] = {}
        for route in app.routes:
            by_component.setdefault(route.name, []).append(Route(route.method, route.path))
            first.setdefault(route.name, (route.handler, route.table))
        own = tuple(Function(component, first[component][0], tuple(routes), first[component][1],
                             runtime=app.runtime, architecture=app.architecture, memory=app.memory,
                             timeout=app.timeout, environment=(*common, *app.environment), source=app.source,
                             include=app.include, requirements=app.requirements,
                             log_retention_days=app.log_retention_days)
                    for component, routes in by_component.items())
        memory, timeout = app.memory, app.timeout
        runtime, architecture, retention = app.runtime, app.architecture, app.log_retention_days
    health_env = (*common, ("STATUS", HEALTH_STATUS), *((("DEEP_CHECK", "1"),) if config.health_check.deep else ()))
    health = Function(HEALTH, "health.handler", (Route("GET", "/health"),), "read" if config.health_check.deep
                      else "none", runtime=runtime, architecture=architecture, memory=memory, timeout=timeout,
                      environment=health_env, log_retention_days=retention)
    return (*own, health)


def _table_environment(config: Config) -> tuple[tuple[str, str], ...]:
    env = [("TABLE_NAME", config.table.name)]
    # The API's key field is always `id`; HASH_KEY only when the table's key attribute is named otherwise.
    if config.table.hash_key != "id":
        env.append(("HASH_KEY", config.table.hash_key))
    # Only for a strong table, so that an eventual stack's functions stay as they were.
    if config.table.strong:
        env.append(("TABLE_CONSISTENCY", "strong"))
    return tuple(env)


def _cors_environment(config: Config) -> tuple[tuple[str, str], ...]:
    return (("CORS_ORIGINS", ",".join(config.api.cors_origins)),) if config.api.cors_origins else ()


def routes(config: Config) -> tuple[tuple[Route, str], ...]:
    """(route, component) for every route of the API, health included."""
    return tuple((route, f.component) for f in functions(config) for route in f.routes)


@dataclass(frozen=True)
class Package:
    """A function's deployable zip, built once per run before anything is read."""

    component: str
    zip: bytes = field(repr=False)
    sha256: str  # what Lambda reports as CodeSha256
    files: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return self.sha256[:8]


def build_dir() -> Path:
    home = Path(os.environ.get("MULTIREGION_HOME") or Path.home() / ".multiregion")
    return Path(os.environ.get(VENDOR_ENV) or home / "build")


def build_packages(config: Config) -> dict[str, Package]:
    """Every function's zip: the handler's module and what it imports from the source, the app's includes,
    and its vendored requirements (installed once per requirements file, runtime and architecture).
    PackagingError when something cannot be packaged as Lambda would take it."""
    vendored: dict[tuple[Path, str, str], Path] = {}
    packages = {}
    for function in functions(config):
        site = None
        if function.requirements is not None:
            key = (function.requirements, function.runtime, function.architecture)
            if key not in vendored:
                vendored[key] = packaging.vendor(function.requirements, function.runtime, function.architecture,
                                                 build_dir() / "vendor")
            site = vendored[key]
        files = packaging.function_files(function.source, function.module, function.include, site)
        data = packaging.function_zip(config.name(function.component), files)
        packages[function.component] = Package(function.component, data, packaging.code_sha256(data),
                                               tuple(sorted(files)))
    return packages
