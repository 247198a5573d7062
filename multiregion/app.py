"""The app the stack runs: its functions and routes, as the stages deploy them.

Without an `app` section in the config this is the built-in item API (the article's demo): `POST /item`
and `GET /item/{id}`. Every stack also gets the tool's own health function (`GET /health`), which Route 53's
health checks probe and `failover-test` flips; it is never the user's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from multiregion import packaging
from multiregion.config import Config

HEALTH = "health"
HEALTH_STATUS = "200"
DEFAULT_RUNTIME = "python3.12"
TABLE_ACCESS = ("read", "write", "none")


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
    route: Route
    table_access: str  # read | write | none
    runtime: str = DEFAULT_RUNTIME
    memory: int = 256
    timeout: int = 10
    environment: tuple[tuple[str, str], ...] = ()
    source: Path = field(default=packaging.HANDLERS_DIR)

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]


def functions(config: Config) -> tuple[Function, ...]:
    """The stack's functions, in a fixed order (the user's routes, then health)."""
    memory, timeout = config.functions.memory, config.functions.timeout
    common = _table_environment(config)
    builtin = (
        Function("put", "put_item.handler", Route("POST", "/item"), "write", memory=memory, timeout=timeout,
                 environment=common),
        Function("get", "get_item.handler", Route("GET", "/item/{id}"), "read", memory=memory, timeout=timeout,
                 environment=common),
    )
    health = Function(HEALTH, "health.handler", Route("GET", "/health"), "none", memory=memory, timeout=timeout,
                      environment=(*common, ("STATUS", HEALTH_STATUS)))
    return (*builtin, health)


def _table_environment(config: Config) -> tuple[tuple[str, str], ...]:
    env = [("TABLE_NAME", config.table.name)]
    # The API's key field is always `id`; HASH_KEY only when the table's key attribute is named otherwise.
    if config.table.hash_key != "id":
        env.append(("HASH_KEY", config.table.hash_key))
    return tuple(env)


def routes(config: Config) -> tuple[tuple[Route, str], ...]:
    """(route, component) for every route of the API, health included."""
    return tuple((f.route, f.component) for f in functions(config))


@dataclass(frozen=True)
class Package:
    """A function's deployable zip, built once per run before anything is read."""

    component: str
    zip: bytes = field(repr=False)
    sha256: str  # what Lambda reports as CodeSha256

    @property
    def short(self) -> str:
        return self.sha256[:8]


def build_packages(config: Config) -> dict[str, Package]:
    packages = {}
    for function in functions(config):
        data = packaging.build_zip(function.component)
        packages[function.component] = Package(function.component, data, packaging.code_sha256(data))
    return packages
