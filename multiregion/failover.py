"""`multiregion failover-test`: a measured drill of a regional failure, under continuous traffic.

preflight -> baseline -> inject -> (detect -> reroute -> verify -> replicate | isolated) -> restore -> settle.

While the drill runs, a synthetic client in each configured region (or those given) resolves the global
name as Route 53 answers that client, keeps the answer for the record's TTL as a resolver does, and
sends a steady mix of writes and reads to the endpoint it resolved; two of them also write the same few
items at once (conflicts). Every request and every DNS answer is recorded. Afterwards the records give
what users felt and what was lost: availability, client-visible and DNS-level RTO (and what the TTL
added), latency before, during and after, RPO (acknowledged writes missing or stale in some region,
during an isolation and once replication settled), conflicts, replication lag; budgets turn them into
pass/fail for CI (JUnit) and a self-contained HTML report shows them.

Faults:
- `health`: the health function answers 404 (STATUS=404), the switch the original article flips;
- `outage`: reserved concurrency 0 on the region's functions, a real outage of its API;
- `isolate`: the region's replica stops replicating in both directions while its API keeps answering: a
  statement in the replica's resource policy denies DynamoDB's replication service (what AWS FIS's
  global-table-pause-replication does), with an expiry, so AWS lifts it even if the drill is killed; the
  next `up` (or `failover-test --restore-only`) lifts it at once.

Whatever happens after the injection (a failed check, a timeout, Ctrl-C), the injection is undone and
the region is waited for until healthy and serving again. The exit code is 0 only when every check held
and every budget was met.
"""

from __future__ import annotations

import contextlib
import functools
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from multiregion import names
from multiregion.drill.budgets import Budgets
from multiregion.drill.measures import acked_writes, conflicts, replication_lag, rpo
from multiregion.drill.records import Request
from multiregion.drill.report import DrillReport, build_report
from multiregion.drill.traffic import (
    TOKEN_FIELD,
    Answer,
    CachingResolver,
    ConflictWriter,
    DnsWatcher,
    Ids,
    ItemRoutes,
    Response,
    SyntheticClient,
    Traffic,
    Transport,
)
from multiregion.drill.transport import HttpsTransport, SandboxTransport
from multiregion.engine import Context, Runner, Stage
from multiregion.lookups.api_keys import key_value
from multiregion.lookups.functions import wait_updated
from multiregion.lookups.health_checks import CheckerVerdicts
from multiregion.lookups.routing import HEALTH_PATH, EndpointRegions, dns_answer
from multiregion.lookups.tables import isolation_statement, resource_policy, without_isolation
from multiregion.lookups.zones import find_hosted_zone
from multiregion.plan import encode_json
from multiregion.regions import REGIONS, client_ip, distance_km, region_of_ip

FAULTS = ("health", "outage", "isolate")
WARM_UP_REQUESTS = 2  # steady requests each client has answered before the fault
MODES = FAULTS  # `--mode`, the first releases' name of `--fault`
TEST_ITEM_PREFIX = "multiregion-failover-test"
DRILL_PREFIX = "multiregion-drill"
CONFLICT_IDS = 3


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
    drill: DrillReport | None = None

    @property
    def passed(self) -> bool:
        budgets_ok = self.drill is None or all(b.ok for b in self.drill.budgets)
        return self.failed_step is None and self.restored and all(s.ok for s in self.timeline) and budgets_ok

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("drill")
        data["passed"] = self.passed
        data["fault"] = self.mode
        data["timeline"] = [asdict(s) for s in self.timeline]
        data["drill"] = self.drill.to_dict() if self.drill is not None else None
        return data


# ----------------------------------------------------------------------------------------- interfaces


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
    clients: tuple[str, ...] = ()  # regions of the synthetic clients (default: every configured region)
    rate: float = 4.0  # requests per second per client
    budgets: Budgets = field(default_factory=Budgets)
    keep_items: bool = False
    hold: float | None = None  # isolate: seconds (AWS time) the isolation lasts before restore
    traffic: bool = True


class AppRoutes:
    """The routes the drill writes and reads through (config `drill`, default the item API's)."""

    def __init__(self, write: tuple[str, str], read: tuple[str, str], body: dict[str, Any], id_field: str):
        self.write_route, self.read_route, self.body, self.id_field = write, read, body, id_field

    def write(self, item_id: str, token: str) -> tuple[str, str, dict[str, Any] | None]:
        return self.write_route[0], self.write_route[1], {**self.body, self.id_field: item_id, TOKEN_FIELD: token}

    def read(self, item_id: str) -> tuple[str, str]:
        path = self.read_route[1]
        start, end = path.index("{"), path.index("}")
        return self.read_route[0], path[:start] + urllib.parse.quote(item_id, safe="") + path[end + 1:]

    def served_region(self, response: Response) -> str | None:
        return ItemRoutes().served_region(response)


# ------------------------------------------------------------------------------------------ the test


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
        self._verdicts: dict[str, CheckerVerdicts] = {}
        self._zone: str | None = None
        self._written_at = 0.0
        self.sandbox_url = sandbox.url if sandbox else None
        self.time_scale = sandbox.time_scale if sandbox else 1.0
        drill = self.config.drill
        self.routes = AppRoutes(drill.write, drill.read, dict(drill.body), drill.id_field)
        self.traffic: Traffic | None = None
        self.ids = Ids(f"{DRILL_PREFIX}-{uuid.uuid4().hex[:6]}")
        self._lags: list[float] = []
        self._rpo_isolation: Any = None
        self._rpo_final: Any = None
        self._conflicts: Any = None
        self._started = datetime.now(timezone.utc)

    # ---------------------------------------------------------------- AWS's view

    def healthy(self, region: str) -> bool:
        """Route 53's verdict on the region's check, by its own rule: each checker changes its view only
        after FailureThreshold consecutive results, and the endpoint is healthy while more than 18% of the
        checkers say so (tracked across polls: one poll per checker interval is enough)."""
        if region not in self._check_ids:
            from multiregion.lookups.health_checks import active_check

            check = active_check(self.reader, region)
            if check is None:
                return False
            self._check_ids[region] = str(check["Id"])
            self._verdicts[region] = CheckerVerdicts(self.config.health_check.failure_threshold)
        observations = self.reader.client("route53", names.ROUTE53_REGION).get_health_check_status(
            HealthCheckId=self._check_ids[region])["HealthCheckObservations"]
        return bool(self._verdicts[region].update(observations))

    def _zone_id(self) -> str | None:
        # Looked up once: DNS answers are polled many times a second.
        if self._zone is None:
            zone = find_hosted_zone(self.reader)
            self._zone = str(zone["Id"]) if zone else None
        return self._zone

    def answer_for(self, client_region: str, ip: str | None = None) -> tuple[str | None, str | None]:
        """Route 53's answer for a client (the endpoint's name or address, the region it is)."""
        return dns_answer(self.reader, client_region, ip, zone_id=self._zone_id(), identify=self.identify)

    def answer(self) -> tuple[str | None, str | None]:
        return self.answer_for(self.report.client_region or self.config.primary, self.report.client_ip)

    def serving_region(self) -> str | None:
        return self.answer()[1]

    @functools.cached_property
    def identify(self) -> EndpointRegions:
        """The region of an endpoint Route 53 answered by address, asked of the endpoint itself (its health
        route names its region), as a client connecting there reaches it. Hits are kept; a miss is asked
        again next time."""
        return EndpointRegions(self.config.regions, lambda endpoint: self.transport(self.config.primary).send(
            endpoint, "GET", HEALTH_PATH, None))

    def transport(self, client_region: str) -> Transport:
        if self.sandbox_url:
            return SandboxTransport(self.sandbox_url, self.config.domain.name, client_ip=client_ip(client_region),
                                    headers=self._api_headers)
        return HttpsTransport(self.config.domain.name, headers=self._api_headers)

    @functools.cached_property
    def _api_headers(self) -> dict[str, str]:
        """With `api.auth: api-key` every route but health wants the key (the same value in every region)."""
        if self.config.api.auth != "api-key":
            return {}
        value = key_value(self.reader, self.config.primary)
        return {"x-api-key": value} if value else {}

    def _health_check(self, region: str, want_healthy: bool) -> tuple[bool, str]:
        healthy = self.healthy(region)
        return healthy == want_healthy, "healthy" if healthy else "unhealthy"

    # ---------------------------------------------------------------- running

    def run(self) -> Report:
        steps: list[tuple[str, Callable[[], str]]] = [("preflight", self.preflight), ("baseline", self.baseline),
                                                      ("inject", self.inject)]
        if self.opts.mode == "isolate":
            steps += [("isolated", self.isolated)]
        else:
            steps += [("detect", self.detect), ("reroute", self.reroute), ("verify", self.verify),
                      ("replicate", self.replicate)]
            if self.opts.traffic:
                steps.append(("observe", self.observe))
        try:
            for name, fn in steps:
                self._step(name, fn)
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
            if self.traffic is not None:
                with contextlib.suppress(CheckFailed, KeyboardInterrupt):
                    self._step("settle", self.settle)
                self._finish_drill()
            if not self.opts.keep_items:
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

    def _poll(self, what: str, region: str, check: Callable[[], tuple[bool, str]], timeout: float | None = None
              ) -> str:
        """Poll `check` (done, status) until done, showing progress; a failed check after the timeout."""
        limit = self.opts.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self.ctx.reporter.waiting(what, region) as progress:
            while True:
                done, status = check()
                progress.update(status)
                if done:
                    return status
                if time.monotonic() > deadline:
                    raise CheckFailed(f"gave up waiting for {what} after {limit:g} s (last status: {status})")
                self.ctx.sleep(self._poll_interval())

    def _poll_interval(self) -> float:
        return max(0.05, min(1.0, self.config.health_check.interval / self.time_scale / 10))

    def _event(self, name: str, detail: str = "") -> None:
        if self.traffic is not None:
            self.traffic.event(name, detail)

    # ---------------------------------------------------------------- steps

    def preflight(self) -> str:
        regions = self.config.regions
        if len(regions) < 2:
            raise CheckFailed("a failover needs at least two regions in the config")
        if self.opts.region and self.opts.region not in regions:
            raise CheckFailed(f"--region {self.opts.region} is not one of the stack's regions: {', '.join(regions)}")
        unknown = [c for c in self.opts.clients if c not in REGIONS]
        if unknown:
            raise CheckFailed(f"unknown client region(s): {', '.join(unknown)}")
        if not self.config.drill.write[0]:
            raise CheckFailed("the app has no POST /item and GET /item/{id}: name the routes the drill writes and "
                              "reads in the config's drill section (drill: {write: 'POST /orders', read: "
                              "'GET /orders/{id}'})")
        result = Runner(self.ctx, self.stages, "plan").run()
        if result.errors:
            raise CheckFailed(f"cannot read the stack: {result.errors[0].message}")
        if result.changes:
            listed = "; ".join(f"{c.stage} {c.region} {c.action} {c.resource}" for c in result.changes[:5])
            raise CheckFailed(f"the stack is not converged ({len(result.changes)} change(s): {listed}); "
                              "run `multiregion up` first")
        unhealthy = [r for r in regions if not self._eventually_healthy(r)]
        if unhealthy:
            raise CheckFailed(f"health check not healthy in {', '.join(unhealthy)}; nothing was touched")
        return "stack converged, every region healthy"

    def _eventually_healthy(self, region: str) -> bool:
        # A checker's view needs FailureThreshold results to form: give a young check a few intervals.
        deadline = time.monotonic() + self.config.health_check.interval * 2 / self.time_scale + 1
        while not self.healthy(region):
            if time.monotonic() > deadline:
                return False
            self.ctx.sleep(self._poll_interval())
        return True

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
        if item.get("region") not in (None, r.served_before):
            raise CheckFailed(f"the write was served by {item.get('region')}, Route 53 answers {r.served_before}")
        self._read_item(item["id"], expect_region=r.served_before)
        r.failed_region = self.opts.region or r.served_before
        if self.opts.mode != "isolate" and r.failed_region != r.served_before:
            raise CheckFailed(f"the client in {r.client_region} is served by {r.served_before}, not "
                              f"{r.failed_region}: failing {r.failed_region} would move nothing; pick the client "
                              f"with --client-region {r.failed_region}")
        self._measure_lag()
        clients = ""
        if self.opts.traffic:
            self.traffic = self._start_traffic()
            clients = f"; traffic from {len(self.traffic.clients)} client(s) at {self.opts.rate:g}/s each"
            clients += self._warm_up(self.traffic)
        return f"client in {r.client_region} served by {r.served_before}{clients}"

    def _warm_up(self, traffic: Traffic, answered: int = WARM_UP_REQUESTS, since: float | None = None) -> str:
        """Traffic runs a little before the fault (and after the restore), so that 'before' and 'after' have
        figures to compare with: until every client has had `answered` steady requests answered (sent after
        `since`, on the traffic's clock), or a few seconds passed."""
        def warm() -> tuple[bool, str]:
            counts = {c.name: sum(1 for q in c.requests() if q.kind != "conflict" and q.status > 0
                                  and (since is None or q.t >= since))
                      for c in traffic.clients}
            cold = sorted(n for n, k in counts.items() if k < answered)
            return not cold, f"waiting for {', '.join(cold)}" if cold else "warm"

        limit = max(3.0, 2 * answered / self.opts.rate)
        started = time.monotonic()
        while not warm()[0] and time.monotonic() - started < limit:
            self.ctx.sleep(min(0.1, 1 / self.opts.rate))
        before = [q for q in traffic.requests() if q.kind != "conflict"]
        ok = sum(1 for q in before if q.ok)
        return f"; {ok}/{len(before)} request(s) answered 2xx before the fault"

    def _measure_lag(self, samples: int = 3) -> None:
        """Replication lag, sampled: items written in the primary's table, seen in each other region."""
        table, key = self.config.table.name, self.config.table.hash_key
        source = self.ctx.clients("dynamodb", self.config.primary)
        for i in range(samples):
            item_id = f"{TEST_ITEM_PREFIX}-lag-{uuid.uuid4().hex[:8]}"
            self._items[item_id] = self.config.primary
            source.put_item(TableName=table, Item={key: {"S": item_id}, "probe": {"N": str(i)}})
            written = time.monotonic()
            for region in self.config.regions[1:]:
                target = self.ctx.clients("dynamodb", region)

                def arrived(target: Any = target, item_id: str = item_id) -> tuple[bool, str]:
                    found = "Item" in target.get_item(TableName=table, Key={key: {"S": item_id}}, ConsistentRead=True)
                    return found, "replicated" if found else "not yet"

                self._poll(f"a probe item to replicate into {region}", region, arrived,
                           timeout=min(self.opts.timeout, 60))
                self._lags.append(time.monotonic() - written)

    def _start_traffic(self) -> Traffic:
        ttl = self.config.routing.ttl / self.time_scale
        regions = list(dict.fromkeys(self.opts.clients or self.config.regions))

        def resolve(region: str) -> Callable[[], Answer]:
            def ask() -> Answer:
                endpoint, served = self.answer_for(region)
                return Answer(endpoint, served, ttl)
            return ask

        clients = [SyntheticClient(region, region, CachingResolver(resolve(region)), self.transport(region),
                                   self.opts.rate, ids=self.ids, routes=self.routes) for region in regions]
        writer = None
        if len({c.region for c in clients}) >= 2:
            writer = ConflictWriter(clients[:2], self.ids.conflict_ids(CONFLICT_IDS), rounds=3,
                                    interval=max(0.2, 2.0 / self.opts.rate))
        watcher = DnsWatcher({region: resolve(region) for region in regions},
                             interval=max(0.1, self.config.health_check.interval / self.time_scale / 4))
        return Traffic(clients, writer, watcher).start()

    def inject(self) -> str:
        failed = self.report.failed_region or ""
        others = [x for x in self.config.regions if x != failed]
        if self.opts.mode != "isolate" and not any(self.healthy(x) for x in others):
            raise CheckFailed(f"refusing to fail {failed}: it is the last healthy region")
        self._event("inject", f"{self.opts.mode} of {failed}")
        if self.opts.mode == "isolate":
            return self._isolate(failed)
        lam = self.ctx.clients("lambda", failed)
        if self.opts.mode == "health":
            name = self.config.name("health")
            env = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
            # Registered before the write: an interrupted write or wait is still undone.
            self._undo.append(lambda: self._set_env(failed, name, env))
            self._set_env(failed, name, {**env, "STATUS": "404"})
            return f"{name} in {failed}: STATUS={env.get('STATUS', '(unset)')} -> 404"
        from multiregion import app

        functions = [self.config.name(f.component) for f in app.functions(self.config)]
        for name in functions:
            before = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
            self._undo.append(functools.partial(self._set_concurrency, failed, name, before))
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        return f"reserved concurrency 0 on the {len(functions)} functions in {failed}"

    def _isolate(self, region: str) -> str:
        arn = names.table_arn(self.config, *self.ctx.caller_identity(), region)
        current = resource_policy(self.reader, region, arn)
        document = (current or {}).get("document") or {"Version": "2012-10-17", "Statement": []}
        hold = self._hold_seconds()
        # AWS lifts the statement by itself after the drill's longest possible run (the drill itself lifts it
        # at restore): an isolation never outlives the drill by much, even if it is killed.
        until = (datetime.now(timezone.utc) + timedelta(seconds=hold + self.opts.timeout * 4 + 300)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        statements = document.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        isolated = {**document, "Statement": [*statements, isolation_statement(arn, until)]}
        ddb = self.ctx.clients("dynamodb", region)
        self._undo.append(lambda: self._lift_isolation(region, arn))
        ddb.put_resource_policy(ResourceArn=arn, Policy=encode_json(isolated))
        return f"replica {self.config.table.name} in {region} stops replicating both ways (until {until} at most)"

    def _lift_isolation(self, region: str, arn: str) -> None:
        current = resource_policy(self.reader, region, arn)
        if current is None:
            return
        rest = without_isolation(current["document"])
        ddb = self.ctx.clients("dynamodb", region)
        if rest is None:
            ddb.delete_resource_policy(ResourceArn=arn)
        else:
            ddb.put_resource_policy(ResourceArn=arn, Policy=encode_json(rest))

    def _hold_seconds(self) -> float:
        """How long an isolation lasts (sandbox seconds): by default three health check intervals."""
        aws_seconds = self.opts.hold if self.opts.hold is not None else self.config.health_check.interval * 3
        return aws_seconds / self.time_scale

    def _set_env(self, region: str, name: str, variables: dict[str, str]) -> None:
        lam = self.ctx.clients("lambda", region)
        # Lambda refuses a second update while one is in progress: wait for it, then write, then wait.
        self.executor.wait(wait_updated(name, region))
        self._retry_conflict(lambda: lam.update_function_configuration(FunctionName=name,
                                                                       Environment={"Variables": variables}))
        self.executor.wait(wait_updated(name, region))

    def _retry_conflict(self, call: Callable[[], Any], attempts: int = 30) -> Any:
        from botocore.exceptions import ClientError

        from multiregion.aws import error_code

        for attempt in range(attempts):
            try:
                return call()
            except ClientError as exc:
                if error_code(exc) != "ResourceConflictException" or attempt == attempts - 1:
                    raise
                self.ctx.sleep(min(2.0, 0.1 * (attempt + 1)))
        return None

    def _set_concurrency(self, region: str, name: str, value: int | None) -> None:
        lam = self.ctx.clients("lambda", region)
        if value is None:
            self._retry_conflict(lambda: lam.delete_function_concurrency(FunctionName=name))
        else:
            self._retry_conflict(lambda: lam.put_function_concurrency(FunctionName=name,
                                                                      ReservedConcurrentExecutions=value))

    def detect(self) -> str:
        failed = self.report.failed_region or ""
        hc = self.config.health_check
        started = time.monotonic()
        self._poll("Route 53 to see the region unhealthy", failed, lambda: self._health_check(failed, False))
        r = self.report
        r.detection_seconds = round(time.monotonic() - started, 2)
        r.detection_bound_seconds = round(hc.interval * (hc.failure_threshold + 1) / self.time_scale, 2)
        self._event("detected", f"{failed} unhealthy")
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
        self._event("rerouted", f"client answered {self.report.served_after}")
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
        if item.get("region") not in (None, after) or item.get("region") == self.report.failed_region:
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
        self._lags.append(self.report.replication_lag_seconds)
        return f"replicated into {failed} in {self.report.replication_lag_seconds}s"

    def observe(self) -> str:
        """The fault holds until every client that was served by the failed region is served elsewhere (its
        resolver's cached answer expired, it asked again and was answered another region), or for at most
        the record's TTL and three health check intervals: what users would feel, measured to its end."""
        assert self.traffic is not None
        failed, run = self.report.failed_region or "", 3
        ttl = self.config.routing.ttl / self.time_scale
        limit = ttl + 3 * self.config.health_check.interval / self.time_scale + 1
        affected = {c.name for c in self.traffic.clients if self.report.served_before and
                    any(q.answered_region == failed for q in c.requests())}
        started = time.monotonic()

        def moved(name: str) -> bool:
            client = next(c for c in self.traffic.clients if c.name == name)  # type: ignore[union-attr]
            recent = [q for q in client.requests() if q.kind != "conflict"][-run:]
            return len(recent) == run and all(q.ok and q.served_region not in (None, failed) for q in recent)

        def everyone() -> tuple[bool, str]:
            left = sorted(n for n in affected if not moved(n))
            if not left or time.monotonic() - started > limit:
                return True, f"still on {failed}: {', '.join(left)}" if left else "all moved"
            return False, f"still on {failed}: {', '.join(left)}"

        status = self._poll(f"the clients of {failed} to be served elsewhere", failed, everyone, timeout=limit + 5)
        seconds = time.monotonic() - started
        if status == "all moved":
            return f"every client of {failed} ({len(affected)}) served elsewhere after {seconds:.2f}s more"
        return f"{status} after {seconds:.2f}s (the TTL and three intervals): the budgets judge it"

    def isolated(self) -> str:
        """The isolation holds: writes keep being acknowledged in every region (its API still answers), and
        what the isolated region wrote is missing elsewhere (the RPO an outage now would cost)."""
        failed = self.report.failed_region or ""
        if self.config.table.strong:
            return self._isolated_strong(failed)
        item = self._write_item("isolated", region=failed)
        self.ctx.sleep(self._hold_seconds())
        others = [r for r in self.config.regions if r != failed]
        missing = [r for r in others if not self._present(r, item["id"])]
        self._measure_isolation_rpo(others)
        if not missing:
            raise CheckFailed(f"the write acknowledged in isolated {failed} reached {', '.join(others)}: "
                              "replication was not stopped")
        lost = f"; {self._rpo_isolation.lost} acknowledged write(s) not yet elsewhere" if self._rpo_isolation else ""
        self._verify_item = item
        return f"{failed} keeps answering; its writes do not reach {', '.join(missing)}{lost}"

    def _isolated_strong(self, failed: str) -> str:
        """A strongly consistent table's region cut off from the others cannot make a write durable in a
        second region, so it refuses it (and strong reads) instead of acknowledging what it cannot
        replicate, while the other regions keep acknowledging: nothing acknowledged is at risk."""
        self.ctx.sleep(self._hold_seconds())
        others = [r for r in self.config.regions if r != failed]
        item_id, response = self._try_write("isolated", failed)
        if 200 <= response.status < 300:
            raise CheckFailed(f"the strongly consistent table acknowledged write {item_id} in {failed} while it was "
                              "cut off from the other regions")
        item = self._write_item("isolated", region=others[0])
        missing = [r for r in others[1:] if not self._present(r, item["id"])]
        if missing:
            raise CheckFailed(f"write {item['id']} acknowledged in {others[0]} is not yet in {', '.join(missing)}: "
                              "a strongly consistent read there should see it")
        self._measure_isolation_rpo(others)
        refused = self._refused_writes(failed)
        at_risk = self._rpo_isolation.lost if self._rpo_isolation else 0
        return (f"{failed} refuses writes while cut off ({response.status}; {refused} refused from the traffic); "
                f"{', '.join(others)} keep acknowledging; {at_risk} acknowledged write(s) at risk")

    def _measure_isolation_rpo(self, others: Sequence[str]) -> None:
        """The acknowledged writes the other regions lack: what losing the isolated region now would cost."""
        if self.traffic is not None:
            acked = acked_writes(self.traffic.requests())
            self._rpo_isolation = rpo(acked, self._final_state(acked, regions=others), others)

    def _refused_writes(self, region: str) -> int:
        if self.traffic is None:
            return 0
        return sum(1 for r in self.traffic.requests() if r.kind == "write" and r.status > 0 and not r.ok
                   and (r.served_region or r.answered_region) == region)

    def _try_write(self, label: str, region: str) -> tuple[str, Response]:
        """One write to the region's endpoint, whatever it answers (the id is removed afterwards either way)."""
        item_id = f"{TEST_ITEM_PREFIX}-{label}-{uuid.uuid4().hex[:8]}"
        self._items[item_id] = region
        method, path, body = self.routes.write(item_id, uuid.uuid4().hex)
        return item_id, self._send(method, path, body, region)

    def _present(self, region: str, item_id: str) -> bool:
        key = {self.config.table.hash_key: {"S": item_id}}
        found = self.ctx.clients("dynamodb", region).get_item(TableName=self.config.table.name, Key=key,
                                                              ConsistentRead=True)
        return "Item" in found

    def restore(self) -> str:
        errors = []
        self._event("restore", "undoing the fault")
        while self._undo:  # every undo is tried, whatever the others do
            try:
                self._undo.pop()()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            raise CheckFailed("could not undo everything: " + "; ".join(errors))
        failed = self.report.failed_region or ""
        if self.opts.mode != "isolate":
            self._poll("the region to be healthy again", failed, lambda: self._health_check(failed, True))
            before = self.report.served_before

            def back() -> tuple[bool, str]:
                region = self.serving_region()
                return region == before, f"answer: {region}"

            if before:
                self._poll(f"the client to be answered {before} again", self.report.client_region or "", back)
            self.report.served_after_restore = self.serving_region()
        self.report.restored = True
        self._event("restored", f"{failed} back")
        where = f", client answered {self.report.served_after_restore}" if self.report.served_after_restore else ""
        return f"{failed} {'healthy' if self.opts.mode != 'isolate' else 'replicating again'}{where}"

    def settle(self) -> str:
        """Traffic stops; every region must end up holding each item's last acknowledged write."""
        assert self.traffic is not None
        restored = next((e.t for e in self.traffic.events() if e.name == "restored"), None)
        if restored is not None:  # 'after' gets figures too: a few requests past the restore
            self._warm_up(self.traffic, since=restored)
        self.traffic.stop()
        acked = acked_writes(self.traffic.requests())
        deadline = time.monotonic() + min(self.opts.timeout, max(10.0, 60 / self.time_scale))
        while True:
            final = self._final_state(acked)
            self._rpo_final = rpo(acked, final, self.config.regions)
            if self._rpo_final.lost == 0 or time.monotonic() > deadline:
                break
            self.ctx.sleep(self._poll_interval())
        self._conflicts = conflicts([r for r in self.traffic.requests() if r.kind == "conflict"],
                                    self._final_state(self.traffic.requests(), conflict=True), self.config.regions)
        if self._rpo_final.lost:
            lost = self._rpo_final
            shown = ", ".join(f"{i} (missing from {', '.join(lost.missing_from[i])})" for i in lost.item_ids[:10])
            more = f" and {lost.lost - 10} more" if lost.lost > 10 else ""
            raise CheckFailed(f"{lost.lost} acknowledged write(s) never reached every region: {shown}{more}")
        return f"replication settled: {len(acked)} acknowledged write(s), none lost"

    def _final_state(self, requests: Sequence[Request], conflict: bool = False,
                     regions: Sequence[str] | None = None) -> dict[str, dict[str, str | None]]:
        """Each region's drill token per item id, read from its table (the last write it holds)."""
        ids = sorted({r.item_id for r in requests if r.item_id and (r.kind == "conflict") == conflict})
        table, key = self.config.table.name, self.config.table.hash_key
        final: dict[str, dict[str, str | None]] = {}
        for region in self.config.regions if regions is None else regions:
            client = self.ctx.clients("dynamodb", region)
            found: dict[str, str | None] = {i: None for i in ids}
            for chunk in _chunks(ids, 100):
                pending: dict[str, Any] = {table: {"Keys": [{key: {"S": i}} for i in chunk], "ConsistentRead": True}}
                while pending:
                    answer = client.batch_get_item(RequestItems=pending)
                    for item in answer.get("Responses", {}).get(table, []):
                        found[item[key]["S"]] = (item.get(TOKEN_FIELD) or {}).get("S")
                    pending = answer.get("UnprocessedKeys") or {}
            final[region] = found
        return final

    def _finish_drill(self) -> None:
        assert self.traffic is not None
        self.traffic.stop()
        r = self.report
        fault = {"health": f"health check failure of {r.failed_region} (STATUS=404)",
                 "outage": f"outage of {r.failed_region} (reserved concurrency 0)",
                 "isolate": f"isolation of {r.failed_region}'s replica (replication stopped both ways)"}[self.opts.mode]
        notes = self.traffic.failures()
        if not self.sandbox_url:
            notes.append("on AWS each DNS lookup is a TestDNSAnswer call (Route 53's rate limit applies)")
        r.drill = build_report(
            stack=self.config.service, regions=self.config.regions, fault=fault, requests=self.traffic.requests(),
            resolutions=self.traffic.resolutions(), events=self.traffic.events(), budgets=self.opts.budgets,
            steps=[(s.step, s.ok, s.seconds, s.detail) for s in r.timeline],
            client_regions={c.name: c.region for c in self.traffic.clients}, failed_region=r.failed_region,
            rpo_isolation=self._rpo_isolation, rpo_final=self._rpo_final, conflicts=self._conflicts,
            lag=replication_lag(self._lags) if self._lags else None, started_at=self._started, notes=notes,
            consistency=self.config.table.consistency)

    # ---------------------------------------------------------------- items

    def _write_item(self, label: str, region: str | None = None) -> dict[str, Any]:
        """One write through the global name (as the test's client), or, with `region`, to that region's
        endpoint."""
        item_id = f"{TEST_ITEM_PREFIX}-{label}-{uuid.uuid4().hex[:8]}"
        self._items[item_id] = region or self.config.primary
        method, path, body = self.routes.write(item_id, uuid.uuid4().hex)
        response = self._send(method, path, body, region)
        self._written_at = time.monotonic()
        if not 200 <= response.status < 300:
            raise CheckFailed(f"{method} {path} through {self.config.domain.name} answered {response.status}: "
                              f"{response.body}")
        answer = response.body if isinstance(response.body, dict) else {}
        served = self.routes.served_region(response)
        if served in self.config.regions:
            self._items[item_id] = served
        return {**answer, "id": item_id, "region": served}

    def _read_item(self, item_id: str, expect_region: str | None) -> dict[str, Any]:
        method, path = self.routes.read(item_id)
        response = self._send(method, path, None)
        if response.status != 200:
            raise CheckFailed(f"{method} {path} through {self.config.domain.name} answered {response.status}: "
                              f"{response.body}")
        served = self.routes.served_region(response)
        if expect_region and served not in (None, expect_region):
            raise CheckFailed(f"the read was served by {served}, expected {expect_region}")
        return response.body if isinstance(response.body, dict) else {}

    def _send(self, method: str, path: str, body: dict[str, Any] | None, region: str | None = None) -> Response:
        """To the endpoint Route 53 answers the test's client (or the region's own regional domain)."""
        client_region = self.report.client_region or self.config.primary
        endpoint = regional_endpoint(self.reader, region) if region is not None else self.answer()[0]
        if endpoint is None:
            raise CheckFailed(f"no endpoint to send {method} {path} to")
        return self.transport(client_region).send(endpoint, method, path, body)

    def _cleanup_items(self) -> None:
        """Test and drill items are removed where they were written: the delete is newer than the write
        everywhere, so it wins wherever the write replicates, even late."""
        table, key = self.config.table.name, self.config.table.hash_key
        for item_id, region in self._items.items():
            self._delete(region, table, key, item_id)
        if self.traffic is not None:
            for item_id in self.ids.issued():
                for region in self.config.regions:
                    self._delete(region, table, key, item_id)

    def _delete(self, region: str, table: str, key: str, item_id: str) -> None:
        try:
            self.ctx.clients("dynamodb", region).delete_item(TableName=table, Key={key: {"S": item_id}})
        except Exception as exc:  # cleanup must not hide the result; say what is left behind
            self.ctx.reporter.warn(f"could not remove test item {item_id}: {exc}")


def regional_endpoint(aws: Any, region: str) -> str | None:
    from multiregion.lookups.apis import regional_domain

    domain = regional_domain(aws, region)
    return domain[0] if domain else None


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]

