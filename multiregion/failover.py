"""`multiregion failover-test`: a measured rehearsal of a regional failure.

preflight -> baseline -> inject -> detect -> reroute -> verify -> replicate -> restore -> report.

Every step is timed. Whatever happens after the injection (a failed check, a timeout, Ctrl-C), the
injection is undone and the region is waited for until healthy and serving its clients again. The
report says which step failed and why; the exit code is 0 only when every check held.

Requests "through the global name" go to `https://{domain.name}` on AWS. On the sandbox they go to the
sandbox with that name as Host and the client's address in `X-Multiregion-Client-IP`, which the sandbox
routes exactly as Route 53 would answer that client.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import socket
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from multiregion.engine import Context, Runner, Stage
from multiregion.lookups.functions import wait_updated
from multiregion.lookups.health_checks import health_status
from multiregion.lookups.routing import dns_answer
from multiregion.lookups.zones import find_hosted_zone
from multiregion.regions import REGIONS, client_ip, distance_km, region_of_ip

MODES = ("health", "outage")
CLIENT_IP_HEADER = "X-Multiregion-Client-IP"
TEST_ITEM_PREFIX = "multiregion-failover-test"


class CheckFailed(Exception):
    """A step whose check did not hold; the message says what was expected and what was seen."""


@dataclass
class Step:
    step: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    failed_region: str | None = None
    client_region: str | None = None
    client_ip: str | None = None
    mode: str = "health"
    served_before: str | None = None
    served_after: str | None = None
    served_after_restore: str | None = None
    replication_lag_seconds: float | None = None
    detection_seconds: float | None = None
    detection_bound_seconds: float | None = None
    reroute_seconds: float | None = None
    restored: bool = False
    failed_step: str | None = None
    error: str | None = None
    timeline: list[Step] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failed_step is None and self.restored and all(s.ok for s in self.timeline)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["timeline"] = [asdict(s) for s in self.timeline]
        return data


# ------------------------------------------------------------------------------------- the global name


class GlobalName:
    """HTTP to the item API through the one global name, as a client at `ip` would reach it.

    On the sandbox the request goes to the sandbox with the global name as Host and the client's address in
    X-Multiregion-Client-IP. On AWS, this machine's own resolver would answer for where this machine is,
    not for the client, so the request goes to the endpoint Route 53 answers the client (`endpoint`), with
    the global name as TLS server name and Host, exactly as that client's connection would look."""

    def __init__(self, domain: str, sandbox_url: str | None, ip: str | None, timeout: float = 10.0,
                 endpoint: Callable[[], str | None] = lambda: None):
        self.domain, self.sandbox_url, self.ip, self.timeout = domain, sandbox_url, ip, timeout
        self.endpoint = endpoint

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Host": self.domain}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.sandbox_url:
            if self.ip:
                headers[CLIENT_IP_HEADER] = self.ip
            parsed = urllib.parse.urlsplit(self.sandbox_url)
            conn: http.client.HTTPConnection = http.client.HTTPConnection(
                parsed.hostname or "127.0.0.1", parsed.port, timeout=self.timeout)
        else:
            conn = _PinnedHTTPSConnection(self.endpoint() or self.domain, self.domain, self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, _json(resp.read())
        except (OSError, http.client.HTTPException) as exc:
            return 0, {"error": f"no answer: {exc}"}
        finally:
            conn.close()


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address` with `server_name` for SNI and certificate checks (curl's --connect-to)."""

    def __init__(self, address: str, server_name: str, timeout: float):
        super().__init__(address, 443, timeout=timeout, context=ssl.create_default_context())
        self.server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)  # type: ignore[attr-defined]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
        return data if isinstance(data, dict) else {"body": data}
    except ValueError:
        return {"body": raw[:200].decode(errors="replace")}


# ------------------------------------------------------------------------------------------ the test


@dataclass(frozen=True)
class SandboxLink:
    """How to reach a sandbox's data plane, given by the command layer when the endpoint is a sandbox."""

    url: str
    time_scale: float = 1.0


@dataclass
class Options:
    region: str | None = None
    client_region: str | None = None
    client_ip: str | None = None
    mode: str = "health"
    timeout: float = 600.0


class FailoverTest:
    def __init__(self, ctx: Context, stages: list[Stage[Any]], options: Options, sandbox: SandboxLink | None = None,
                 on_step: Callable[[Step], None] = lambda step: None):
        self.ctx, self.config, self.stages, self.opts = ctx, ctx.config, stages, options
        self.on_step = on_step
        self.reader = ctx.reader()
        self.executor = ctx.executor()
        self.report = Report(mode=options.mode)
        self._undo: list[Callable[[], None]] = []
        self._items: dict[str, str] = {}  # test item id -> region that wrote it
        self._verify_item: dict[str, Any] = {}
        self._check_ids: dict[str, str] = {}
        self._zone: str | None = None
        self._written_at = 0.0
        self.sandbox_url = sandbox.url if sandbox else None
        self.time_scale = sandbox.time_scale if sandbox else 1.0

    # The one place where health and DNS answers are read; the stages own how.
    def healthy(self, region: str) -> bool:
        # The check ids are looked up once: listing every check of the account on each poll would run
        # into Route 53's request rate limit.
        status = health_status(self.reader, region, self._check_ids.get(region))
        if status.get("check_id"):
            self._check_ids[region] = status["check_id"]
        return bool(status.get("healthy"))

    def answer(self) -> tuple[str | None, str | None]:
        """Route 53's answer for the client: (the endpoint's name, the region it is)."""
        return dns_answer(self.reader, self.report.client_region or self.config.primary, self.report.client_ip,
                          zone_id=self._zone_id())

    def _zone_id(self) -> str | None:
        # Looked up once: DNS answers are polled many times a second.
        if self._zone is None:
            zone = find_hosted_zone(self.reader)
            self._zone = str(zone["Id"]) if zone else None
        return self._zone

    def serving_region(self) -> str | None:
        return self.answer()[1]

    def _health_check(self, region: str, want_healthy: bool) -> tuple[bool, str]:
        healthy = self.healthy(region)
        return healthy == want_healthy, "healthy" if healthy else "unhealthy"

    # ---------------------------------------------------------------- running

    def run(self) -> Report:
        try:
            self._step("preflight", self.preflight)
            self._step("baseline", self.baseline)
            self._step("inject", self.inject)
            self._step("detect", self.detect)
            self._step("reroute", self.reroute)
            self._step("verify", self.verify)
            self._step("replicate", self.replicate)
        except CheckFailed:
            pass
        except KeyboardInterrupt:
            self.report.failed_step = self.report.failed_step or "interrupted"
            self.report.error = self.report.error or "interrupted (Ctrl-C)"
        finally:
            if self._undo:
                with contextlib.suppress(CheckFailed, KeyboardInterrupt):
                    self._step("restore", self.restore)
            else:
                self.report.restored = True
            self._cleanup_items()
        return self.report

    def _step(self, name: str, fn: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            detail = fn()
        except CheckFailed as exc:
            self._record(Step(name, False, time.monotonic() - started, str(exc)), str(exc))
            raise
        except KeyboardInterrupt:
            self._record(Step(name, False, time.monotonic() - started, "interrupted"), "interrupted (Ctrl-C)")
            raise
        except Exception as exc:  # an AWS error or a bug: still a failed step, still restored
            message = f"{type(exc).__name__}: {exc}"
            self._record(Step(name, False, time.monotonic() - started, message), message)
            raise CheckFailed(message) from exc
        step = Step(name, True, time.monotonic() - started, detail)
        self.report.timeline.append(step)
        self.on_step(step)

    def _record(self, step: Step, error: str) -> None:
        self.report.timeline.append(step)
        if self.report.failed_step is None:
            self.report.failed_step, self.report.error = step.step, error
        self.on_step(step)

    def _poll(self, what: str, region: str, check: Callable[[], tuple[bool, str]]) -> str:
        """Poll `check` (done, status) until done, showing progress; a failed check after the timeout."""
        deadline = time.monotonic() + self.opts.timeout
        with self.ctx.reporter.waiting(what, region) as progress:
            while True:
                done, status = check()
                progress.update(status)
                if done:
                    return status
                if time.monotonic() > deadline:
                    raise CheckFailed(f"gave up waiting for {what} after {self.opts.timeout:g} s "
                                      f"(last status: {status})")
                self.ctx.sleep(self._poll_interval())

    def _poll_interval(self) -> float:
        return max(0.05, min(1.0, self.config.health_check.interval / self.time_scale / 10))

    # ---------------------------------------------------------------- steps

    def preflight(self) -> str:
        regions = self.config.regions
        if len(regions) < 2:
            raise CheckFailed("a failover needs at least two regions in the config")
        if self.opts.region and self.opts.region not in regions:
            raise CheckFailed(f"--region {self.opts.region} is not one of the stack's regions: {', '.join(regions)}")
        result = Runner(self.ctx, self.stages, "plan").run()
        if result.errors:
            raise CheckFailed(f"cannot read the stack: {result.errors[0].message}")
        if result.changes:
            listed = "; ".join(f"{c.stage} {c.region} {c.action} {c.resource}" for c in result.changes[:5])
            raise CheckFailed(f"the stack is not converged ({len(result.changes)} change(s): {listed}); "
                              "run `multiregion up` first")
        unhealthy = [r for r in regions if not self.healthy(r)]
        if unhealthy:
            raise CheckFailed(f"health check not healthy in {', '.join(unhealthy)}; nothing was touched")
        return "stack converged, every region healthy"

    def baseline(self) -> str:
        r = self.report
        if self.opts.client_ip:
            r.client_ip = self.opts.client_ip
            r.client_region = region_of_ip(self.opts.client_ip)
        else:
            r.client_region = self.opts.client_region or self.config.primary
            r.client_ip = client_ip(r.client_region)
        r.served_before = self.serving_region()
        if r.served_before is None:
            raise CheckFailed(f"the global name {self.config.domain.name} answers no region of the stack")
        item = self._write_item("baseline")
        if item.get("region") != r.served_before:
            raise CheckFailed(f"the write was served by {item.get('region')}, Route 53 answers {r.served_before}")
        self._read_item(item["id"], expect_region=r.served_before)
        r.failed_region = self.opts.region or r.served_before
        if r.failed_region != r.served_before:
            raise CheckFailed(f"the client in {r.client_region} is served by {r.served_before}, not "
                              f"{r.failed_region}: failing {r.failed_region} would move nothing; pick the client "
                              f"with --client-region {r.failed_region}")
        return f"client in {r.client_region} served by {r.served_before}"

    def inject(self) -> str:
        failed = self.report.failed_region or ""
        others = [x for x in self.config.regions if x != failed]
        if not any(self.healthy(x) for x in others):
            raise CheckFailed(f"refusing to fail {failed}: it is the last healthy region")
        lam = self.ctx.clients("lambda", failed)
        if self.opts.mode == "health":
            name = self.config.name("health")
            env = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
            # Registered before the write: an interrupted write or wait is still undone.
            self._undo.append(lambda: self._set_env(failed, name, env))
            self._set_env(failed, name, {**env, "STATUS": "404"})
            return f"{name} in {failed}: STATUS={env.get('STATUS', '(unset)')} -> 404"
        for suffix in ("put", "get", "health"):
            name = self.config.name(suffix)
            before = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
            self._undo.append(functools.partial(self._set_concurrency, failed, name, before))
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        return f"reserved concurrency 0 on the item API's three functions in {failed}"

    def _set_env(self, region: str, name: str, variables: dict[str, str]) -> None:
        lam = self.ctx.clients("lambda", region)
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        self.executor.wait(wait_updated(name, region))

    def _set_concurrency(self, region: str, name: str, value: int | None) -> None:
        lam = self.ctx.clients("lambda", region)
        if value is None:
            lam.delete_function_concurrency(FunctionName=name)
        else:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=value)

    def detect(self) -> str:
        failed = self.report.failed_region or ""
        hc = self.config.health_check
        started = time.monotonic()
        self._poll("Route 53 to see the region unhealthy", failed, lambda: self._health_check(failed, False))
        r = self.report
        r.detection_seconds = round(time.monotonic() - started, 2)
        r.detection_bound_seconds = round(hc.interval * (hc.failure_threshold + 1) / self.time_scale, 2)
        return f"unhealthy after {r.detection_seconds}s (bound {r.detection_bound_seconds}s)"

    def reroute(self) -> str:
        failed = self.report.failed_region
        started = time.monotonic()

        def moved() -> tuple[bool, str]:
            region = self.serving_region()
            return region is not None and region != failed, f"answer: {region}"

        self._poll("Route 53 to answer another region", self.report.client_region or "", moved)
        self.report.reroute_seconds = round(time.monotonic() - started, 2)
        self.report.served_after = self.serving_region()
        expected = self._nearest_healthy(exclude=failed)
        if expected and self.report.served_after != expected:
            if self.sandbox_url:  # the sandbox routes by distance, so this is exact there
                raise CheckFailed(f"answered {self.report.served_after}, the nearest healthy region is {expected}")
            # AWS routes by measured latency, which distance only approximates.
            return f"client now answered {self.report.served_after} (nearest by distance: {expected})"
        return f"client now answered {self.report.served_after}"

    def _nearest_healthy(self, exclude: str | None) -> str | None:
        origin = self.report.client_region
        candidates = [x for x in self.config.regions if x != exclude]
        if origin not in REGIONS or not candidates:
            return None
        return min(candidates, key=lambda x: distance_km(origin, x))

    def verify(self) -> str:
        after = self.report.served_after
        item = self._write_item("after-failover")
        if item.get("region") != after or item.get("region") == self.report.failed_region:
            raise CheckFailed(f"the write landed in {item.get('region')}, expected {after}")
        self._read_item(item["id"], expect_region=after)
        self._verify_item = item
        return f"write and read through {self.config.domain.name} served by {after}"

    def replicate(self) -> str:
        failed = self.report.failed_region or ""
        item = self._verify_item
        table = self.ctx.clients("dynamodb", failed)
        key = {self.config.table.hash_key: {"S": item["id"]}}

        def present() -> tuple[bool, str]:
            found = "Item" in table.get_item(TableName=self.config.table.name, Key=key, ConsistentRead=True)
            return found, "replicated" if found else "not yet"

        self._poll(f"item {item['id']} to replicate into {failed}", failed, present)
        self.report.replication_lag_seconds = round(time.monotonic() - self._written_at, 3)
        return f"replicated into {failed} in {self.report.replication_lag_seconds}s"

    def restore(self) -> str:
        errors = []
        while self._undo:  # every undo is tried, whatever the others do
            try:
                self._undo.pop()()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            raise CheckFailed("could not undo everything: " + "; ".join(errors))
        failed = self.report.failed_region or ""
        self._poll("the region to be healthy again", failed, lambda: self._health_check(failed, True))
        before = self.report.served_before

        def back() -> tuple[bool, str]:
            region = self.serving_region()
            return region == before, f"answer: {region}"

        if before:
            self._poll(f"the client to be answered {before} again", self.report.client_region or "", back)
        self.report.served_after_restore = self.serving_region()
        self.report.restored = True
        return f"{failed} healthy, client answered {self.report.served_after_restore}"

    # ---------------------------------------------------------------- items

    def _client(self) -> GlobalName:
        return GlobalName(self.config.domain.name, self.sandbox_url, self.report.client_ip,
                          endpoint=lambda: self.answer()[0])

    def _write_item(self, label: str) -> dict[str, Any]:
        item_id = f"{TEST_ITEM_PREFIX}-{label}-{uuid.uuid4().hex[:8]}"
        self._items[item_id] = self.config.primary
        status, body = self._client().request("POST", "/item", {"id": item_id, "name": label})
        self._written_at = time.monotonic()
        if status != 201:
            raise CheckFailed(f"POST /item through {self.config.domain.name} answered {status}: {body}")
        if body.get("region") in self.config.regions:
            self._items[item_id] = body["region"]
        return body

    def _read_item(self, item_id: str, expect_region: str | None) -> dict[str, Any]:
        status, body = self._client().request("GET", f"/item/{item_id}")
        if status != 200:
            raise CheckFailed(f"GET /item/{item_id} through {self.config.domain.name} answered {status}: {body}")
        served = body.get("served_by")
        if expect_region and served != expect_region:
            raise CheckFailed(f"the read was served by {served}, expected {expect_region}")
        return body

    def _cleanup_items(self) -> None:
        """Test items are removed where they were written: the delete is newer than the write everywhere, so
        it wins wherever the write replicates, even late."""
        for item_id, region in self._items.items():
            try:
                self.ctx.clients("dynamodb", region).delete_item(
                    TableName=self.config.table.name, Key={self.config.table.hash_key: {"S": item_id}})
            except Exception as exc:  # cleanup must not hide the result; say what is left behind
                self.ctx.reporter.warn(f"could not remove test item {item_id}: {exc}")
