"""Shared fixtures: one in-process sandbox per test worker on a random 127.0.0.1 port, reset per test."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner, Result

from multiregion.cli import main
from multiregion.sandbox.server import Sandbox, SandboxOptions

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def wait_for(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until `check` returns something truthy, and return it; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's ~/.multiregion or a sandbox they run, and never real AWS credentials.
    monkeypatch.setenv("MULTIREGION_HOME", str(tmp_path / "home"))
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "MULTIREGION_CONFIG", "AWS_ENDPOINT_URL", "MULTIREGION_DNS_RESOLVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    # Strict, as SandboxOptions is by default: AWS's refusals and pending states, which the stages must handle.
    sb = Sandbox(SandboxOptions(time_scale=10.0, acm_validation_delay=0.3, strict=True), port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A running sandbox with no resources and no faults, on a PacedClock: real time, plus every wait a
    throttled test client was told (see `aws`)."""
    sandbox_server.reset()
    monkeypatch.setattr(sandbox_server, "clock", PacedClock(sandbox_server.clock))
    return sandbox_server


@pytest.fixture
def aws(sandbox: Sandbox) -> Callable[[str, str], Any]:
    """Plain boto3 clients on the sandbox: aws("dynamodb", "eu-west-1"). Throttled (API Gateway's control
    plane quotas: CreateDeployment 1 per 5 s, CreateDomainName 1 per 30 s), a client waits as told on the
    sandbox's clock instead of in real time, so a test keeps to the quotas without waiting them out."""

    def client(service: str, region: str = "us-east-1") -> Any:
        made = boto3.client(service, region_name=region, endpoint_url=sandbox.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
        return pace_on_the_sandbox_clock(sandbox, made)

    return client


def demo_config() -> dict[str, Any]:
    return yaml.safe_load(DEMO_CONFIG.read_text())


def converged_stack(sandbox: Sandbox, directory: Path, cfg: dict[str, Any] | None = None) -> Cli:
    """The sandbox emptied, then one stack converged by `up` (the demo config unless `cfg`), its config
    written in `directory`: the shared stack of a test module (module-scoped fixtures call this)."""
    sandbox.reset()
    cfg = demo_config() if cfg is None else cfg
    cfg["endpoint"] = sandbox.url
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = Cli(path)
    code, doc = cli.json("up")
    assert code == 0, doc
    return cli


def clear_faults(sandbox: Sandbox) -> None:
    with sandbox.faults_lock:
        for name in sandbox.faults:
            sandbox.faults[name] = []


@pytest.fixture
def write_config(tmp_path: Path, sandbox: Sandbox) -> Callable[..., Path]:
    """Write the demo config pointed at the test sandbox, with top-level or dotted overrides."""

    def write(data: dict[str, Any] | None = None, **overrides: Any) -> Path:
        cfg = demo_config() if data is None else data
        cfg["endpoint"] = sandbox.url
        for key, value in overrides.items():
            node = cfg
            *parents, leaf = key.split("__")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert_schema_accepts_what_the_validator_accepts(path)
        return path

    return write


@functools.cache
def _schema_validator() -> Any:
    from jsonschema import Draft202012Validator

    from multiregion.config import json_schema

    return Draft202012Validator(json_schema())


def schema_errors(data: Any) -> list[str]:
    """What `multiregion schema` finds wrong with a config (empty: an editor would accept it)."""
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
            for e in _schema_validator().iter_errors(data)]


def assert_schema_accepts_what_the_validator_accepts(path: Path) -> None:
    """Every config a test writes through `write_config` that the validator accepts, the JSON Schema accepts
    too: what editors are told is never stricter than the tool (tests/test_cli_conventions.py checks the
    other way round on the bad configs)."""
    from multiregion.config import ConfigError, load_config

    try:
        load_config(path)
    except ConfigError:
        return
    errors = schema_errors(yaml.safe_load(path.read_text()))
    assert not errors, f"the validator accepts {path} but the JSON Schema refuses it: {errors}"


class Cli:
    def __init__(self, config: Path | None):
        self.config = config

    def __call__(self, *args: str, config: Path | None = None) -> Result:
        cfg = config or self.config
        argv = (["--config", str(cfg)] if cfg else []) + list(args)
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    def json(self, *args: str, config: Path | None = None) -> tuple[int, dict[str, Any]]:
        result = self(*args, "--json", config=config)
        try:
            return result.exit_code, json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"not JSON (exit {result.exit_code}):\n{result.output}") from None


@pytest.fixture
def cli(write_config: Callable[..., Path]) -> Cli:
    """The CLI against the test sandbox with the demo config; cli.config can be replaced."""
    return Cli(write_config())


# ------------------------------------------------------------------------------ crashes and AWS refusals


class SimulatedCrash(BaseException):
    """The process dying at a chosen point: nothing after it runs (not an Exception, so no handler in the
    engine takes it for a failed step)."""


class Crasher:
    """Makes the executor die right after (or before) the first operation `when` matches; every later
    operation of the run dies too, as it would with the process gone."""

    def __init__(self, when: Callable[[Any], bool], after: bool = True):
        self.when, self.after = when, after
        self.crashed = False
        self.seen: list[Any] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Crasher:
        from multiregion.executor import Executor

        real = Executor.run
        crasher = self

        def run(self: Executor, node: str, op: Any) -> dict[str, Any]:
            if crasher.crashed:
                raise SimulatedCrash("the process is gone")
            hit = crasher.when(op)
            if hit and not crasher.after:
                crasher.crashed = True
                raise SimulatedCrash(f"crashed before {op.describe()}")
            answer = real(self, node, op)
            crasher.seen.append(op)
            if hit:
                crasher.crashed = True
                raise SimulatedCrash(f"crashed after {op.describe()}")
            return answer

        monkeypatch.setattr(Executor, "run", run)
        return self


def is_call(method: str, **params: Any) -> Callable[[Any], bool]:
    """A predicate on operations: a Call of that boto3 method whose parameters include these values."""
    from multiregion.plan import Call

    def match(op: Any) -> bool:
        return isinstance(op, Call) and op.method == method and all(op.params.get(k) == v for k, v in params.items())

    return match


def refuse(monkeypatch: pytest.MonkeyPatch, service: str, operation: str, code: str, message: str = "refused",
           times: int = 1, when: Callable[[dict[str, Any]], bool] = lambda params: True) -> list[dict[str, Any]]:
    """Every client the tool makes answers `operation` with an AWS error `code`, `times` times (for the
    calls whose parameters `when` accepts); the refused calls' parameters are returned as they happen."""
    from botocore.awsrequest import AWSResponse

    from multiregion.aws import ClientProvider

    refused: list[dict[str, Any]] = []
    real = ClientProvider.client

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)

    def refuser(context: dict[str, Any], **_: Any) -> Any:
        params = context.get("api_params", {})
        if len(refused) >= times or not when(params):
            return None
        refused.append(params)
        response = AWSResponse("https://sandbox", 400, {}, None)  # type: ignore[arg-type]
        return response, {"Error": {"Code": code, "Message": message},
                          "ResponseMetadata": {"HTTPStatusCode": 400}}

    def client(self: ClientProvider, svc: str, region: str) -> Any:
        made = real(self, svc, region)
        if svc == service and not getattr(made, f"_refuses_{operation}", False):
            name = made.meta.service_model.service_id.hyphenize()
            made.meta.events.register(f"before-parameter-build.{name}.{operation}", remember)
            made.meta.events.register(f"before-call.{name}.{operation}", refuser)
            setattr(made, f"_refuses_{operation}", True)
        return made

    monkeypatch.setattr(ClientProvider, "client", client)
    return refused


class PacedClock:
    """The sandbox's clock moved on by what a throttled caller is told to wait (Retry-After): a test keeps to
    API Gateway's quotas, as a client that waits does, without waiting for them in real time."""

    MAX_WAITS = 10

    def __init__(self, real: Callable[[], float]):
        self.real, self.offset = real, 0.0
        self.waits = 0  # how often a caller was told to wait

    def __call__(self) -> float:
        return self.real() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def wait_as_told(self, parsed: dict[str, Any]) -> bool:
        """Move on by the answer's Retry-After if it is a throttle; whether it was one."""
        if parsed.get("Error", {}).get("Code") != "TooManyRequestsException":
            return False
        self.advance(float(parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after", "1")))
        self.waits += 1
        return True

    def paced(self, call: Callable[[], Any]) -> Any:
        """The call's answer, after as many waits as the throttle asks for."""
        from botocore.exceptions import ClientError

        for _ in range(self.MAX_WAITS):
            try:
                return call()
            except ClientError as exc:
                if not self.wait_as_told(exc.response):  # type: ignore[arg-type]
                    raise
        raise AssertionError(f"still throttled after {self.MAX_WAITS} waits")

    def pace(self, client: Any) -> Any:
        """A boto3 client that, throttled, waits as told on this clock and tries again (botocore's own
        retries would sleep in real time, and give up before a 30 s quota has passed)."""

        if getattr(client, "paced_on_the_sandbox_clock", False):
            return client  # it waits on the sandbox's clock already, which is this one while a test paces
        return _retry_at_once_on(client, lambda: self)


class DrivenClock(PacedClock):
    """A monotonic clock that moves only when a test says so (or, paced, as a throttled caller is told), for
    the sandbox's pending states and token buckets."""

    def __init__(self, start: float | None = None) -> None:
        at = time.monotonic() if start is None else start
        super().__init__(lambda: at)


def pace_on_the_sandbox_clock(sandbox: Sandbox, client: Any) -> Any:
    """A boto3 client that, throttled, waits as told on whatever PacedClock (or DrivenClock) the sandbox
    runs on at that moment, and tries again at once; on another clock, botocore's own retries decide."""
    _retry_at_once_on(client, lambda: sandbox.clock)
    client.paced_on_the_sandbox_clock = True
    return client


def _retry_at_once_on(client: Any, clock_now: Callable[[], Any]) -> Any:
    """Register on `client`: a throttled call moves `clock_now()` on by what it was told to wait, if that is a
    PacedClock, and is tried again at once (at most MAX_WAITS times); otherwise botocore's retries decide."""

    def retry_now(response: Any, attempts: int, **_: Any) -> float | None:
        clock = clock_now()
        if response is None or not isinstance(clock, PacedClock) or attempts > clock.MAX_WAITS:
            return None
        return 0.0 if clock.wait_as_told(response[1]) else None

    client.meta.events.register_first("needs-retry", retry_now)
    return client


@pytest.fixture
def paced(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> PacedClock:
    """The sandbox on a PacedClock: real time, plus every wait a throttled client was told."""
    clock = PacedClock(sandbox.clock)
    monkeypatch.setattr(sandbox, "clock", clock)
    return clock


@pytest.fixture
def clock(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    """The sandbox on a driven clock (pending states, throttles); real time again after the test."""
    driven = DrivenClock(sandbox.clock())  # from the sandbox's time now: a clock never runs backwards
    monkeypatch.setattr(sandbox, "clock", driven)
    return driven


@pytest.fixture
def strict(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox with SandboxOptions.strict on: AWS's refusals and pending states."""
    monkeypatch.setattr(sandbox.options, "strict", True)
    return sandbox


@pytest.fixture
def lenient(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox with SandboxOptions.strict off, for a test of what it does without AWS's refusals."""
    monkeypatch.setattr(sandbox.options, "strict", False)
    return sandbox


@pytest.fixture
def aws_timing(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox in the `aws` timing profile at time scale 1, so durations are AWS's own seconds (use with
    `clock`, which makes them pass at once)."""
    monkeypatch.setattr(sandbox.options, "timing", "aws")
    monkeypatch.setattr(sandbox.options, "time_scale", 1.0)
    return sandbox
