"""Figures for multiregion on the embedded sandbox, as AWS would show them.

    python benchmarks/bench.py [--timing aws|fast] [--regions 2,4,8] [--time-scale 10] [--no-drill]

For each number of regions N, on a sandbox emptied first: the plan of a fresh stack (its time, and the
estimate of up's wall time on AWS: the longest chain of AWS's waits through the plan's graph), a fresh `up`
(its wall time as `up --json` reports it, from taking the lease to the last node, against that critical
path in sandbox seconds: the estimate divided by the time scale; and the whole command's), a converged
`up` (write calls, read calls per region) and a converged `plan`; then T(N)/T(2), beside the same ratio
of the critical paths (AWS adds replicas one at a time, so the chain grows with N: see
stages/global_table.py). On a 2-region stack: a `failover-test --fault outage` and `--fault isolate`
(availability, client-visible RTO, RPO, the drill's requests per second) and the requests per second the
sandbox sustains through the global name.

The sandbox runs in its own process (as AWS is not in the client's process), with the `aws` timing profile
and `--strict` by default: AWS's typical durations divided by the time scale, and AWS's refusals and
pending states. The account's lease table is made before each fresh `up`: an account's first run waits
for it once (a table creation), which is not the stack's work. Everything is on 127.0.0.1; the figures are
printed, nothing is asserted (timing goals live here, not in the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multiregion.aws import ClientProvider  # noqa: E402
from multiregion.cli import main  # noqa: E402
from multiregion.lease import Held, Leases  # noqa: E402
from multiregion.regions import client_ip  # noqa: E402
from multiregion.sandbox import control  # noqa: E402

# The first N of these are the stack's regions (the first is the primary).
REGION_ORDER = ("eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1", "eu-central-1", "ap-northeast-1",
                "sa-east-1", "ca-central-1", "eu-west-2", "ap-south-1", "us-east-2", "ap-southeast-2")
GOAL_RATIO = 1.15  # up's wall time against the critical path
GOAL_SCALING = 1.3  # T(8)/T(2), against the same ratio of the critical paths


@dataclass
class Run:
    regions: int
    estimate: dict[str, Any]
    plan_fresh: float
    up_fresh: float  # the run's own wall time (`up --json` "seconds": the lease, then every node)
    up_command: float  # the whole command, with the JSON document's status reads and the CLI's start
    up_ok: bool
    changes: int
    converged_writes: int
    converged_reads: int
    up_converged: float
    plan_converged: float
    time_scale: float

    @property
    def critical_path(self) -> float:
        """The estimate in sandbox seconds: AWS seconds compressed by the time scale."""
        return float(self.estimate["seconds"]) / self.time_scale

    @property
    def ratio(self) -> float:
        return self.up_fresh / self.critical_path if self.critical_path else float("nan")


def cli(config: Path, *args: str) -> tuple[float, int, dict[str, Any]]:
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["--config", str(config), *args, "--json"], catch_exceptions=False)
    seconds = time.perf_counter() - started
    try:
        return seconds, result.exit_code, json.loads(result.stdout)
    except ValueError:
        raise SystemExit(f"`{' '.join(args)}` did not answer JSON (exit {result.exit_code}):\n{result.output}") \
            from None


def post(url: str, data: Any = None) -> Any:
    body = json.dumps(data if data is not None else {}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def write_config(workdir: Path, url: str, regions: tuple[str, ...]) -> Path:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(endpoint=url, regions=list(regions))
    path = workdir / f"config-{len(regions)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def make_lease_table(url: str, config: dict[str, Any]) -> None:
    with Held(Leases(ClientProvider(url), config["regions"][0], config["service"]), "benchmark"):
        pass


def measure(url: str, workdir: Path, n: int, time_scale: float) -> Run:
    post(f"{url}/_sandbox/reset")
    regions = REGION_ORDER[:n]
    path = write_config(workdir, url, regions)
    make_lease_table(url, yaml.safe_load(path.read_text()))
    plan_fresh, _, plan = cli(path, "plan")
    up_command, code, up = cli(path, "up")
    up_converged, _, again = cli(path, "up")
    plan_converged, _, _ = cli(path, "plan")
    return Run(n, plan["estimate"], plan_fresh, float(up["seconds"]), up_command, code == 0 and up["ok"],
               len(up["changes"]),
               sum(again["api_calls"]["writes"].values()), int(again["api_calls"]["reads"]), up_converged,
               plan_converged, time_scale)


def print_run(run: Run, aws_timing: bool) -> None:
    critical = f"{run.critical_path:7.1f} s  {run.ratio:5.2f}" if aws_timing else "      -      -"
    print(f"  {run.regions:>3}  {run.up_fresh:7.1f} s  {run.up_command:7.1f} s  {critical}  {run.converged_writes:>6}  "
          f"{run.converged_reads / run.regions:>8.1f}  {run.plan_fresh:6.2f} s  {run.plan_converged:6.2f} s  "
          f"{run.up_converged:6.2f} s  {'ok' if run.up_ok else 'FAILED'} ({run.changes} changes)", flush=True)
    if aws_timing:
        path = " -> ".join(step["node"] for step in run.estimate["critical_path"])
        print(f"       on AWS: {run.estimate['text']} ({run.estimate['seconds']:g} s: {path})", flush=True)


def print_scaling(runs: list[Run], aws_timing: bool) -> None:
    base = runs[0]
    print()
    for run in runs[1:]:
        line = f"  T({run.regions})/T({base.regions}) = {run.up_fresh / base.up_fresh:.2f}"
        if aws_timing:
            chain = run.critical_path / base.critical_path
            line += (f"; the critical paths' own ratio {chain:.2f} (replicas one at a time, see "
                     f"stages/global_table.py): {run.up_fresh / base.up_fresh / chain:.2f} of it")
        print(line)
    if aws_timing:
        worst = max(runs, key=lambda r: r.ratio)
        scaled = [r.up_fresh / base.up_fresh / (r.critical_path / base.critical_path) for r in runs[1:]]
        print(f"  goals: up / critical path <= {GOAL_RATIO} for every N: "
              f"{'met' if worst.ratio <= GOAL_RATIO else 'NOT met'} (worst {worst.ratio:.2f} at N={worst.regions}); "
              f"T(N)/T({base.regions}) against the critical paths' ratio <= {GOAL_SCALING}: "
              f"{'met' if all(s <= GOAL_SCALING for s in scaled) else 'NOT met'}"
              + (f" (worst {max(scaled):.2f})" if scaled else ""))
    print("  converged up: write calls " + ", ".join(f"N={r.regions}: {r.converged_writes}" for r in runs)
          + "; read calls per region " + ", ".join(f"N={r.regions}: {r.converged_reads / r.regions:.1f}"
                                                   for r in runs))


# ----------------------------------------------------------------------------------------------- drills


def drill(path: Path, fault: str, time_scale: float) -> None:
    seconds, code, report = cli(path, "failover-test", "--fault", fault)
    data = report.get("drill") or {}
    overall = data.get("overall") or {}
    availability = overall.get("availability") or {}
    requests = int(availability.get("requests") or 0)
    duration = float(data.get("duration_seconds") or seconds)
    rto = overall.get("client_rto")
    rpo = data.get("rpo_final") or {}
    held = data.get("rpo_isolation") or {}
    rto_text = f"{rto:.2f} s ({rto * time_scale:.0f} s on AWS)" if isinstance(rto, (int, float)) else \
        str(overall.get("client_rto_note") or "-")
    lost = f"{rpo.get('lost')} of {rpo.get('checked')} writes lost" if rpo else "-"
    isolated = f", {held.get('lost')} writes not replicated while isolated" if held else ""
    print(f"  --fault {fault:<8} {'passed' if report.get('passed') else 'FAILED'} (exit {code}) in {seconds:5.1f} s: "
          f"availability {availability.get('percent', 0) or 0:.1f}% of {requests} requests, client RTO {rto_text}, "
          f"RPO {lost}{isolated}; drill traffic {requests / duration if duration else 0:.1f} requests/s",
          flush=True)


def sustained(url: str, host: str, region: str, clients: int, seconds: float) -> None:
    """Concurrent clients writing and reading through the global name (Route 53's answer for a client in
    `region`), as fast as the sandbox answers."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    headers = {"Host": host, "X-Multiregion-Client-IP": client_ip(region)}

    def one(method: str, path: str, body: bytes | None) -> None:
        req = urllib.request.Request(f"{url}{path}", data=body, method=method,
                                     headers={**headers, **({"Content-Type": "application/json"} if body else {})})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        with lock:
            latencies.append(time.perf_counter() - started)
            if status >= 300:
                errors[status] = errors.get(status, 0) + 1

    def client(index: int) -> None:
        i = 0
        while time.monotonic() < stop:
            item = f"load-{index}-{i}"
            one("POST", "/item", json.dumps({"id": item, "name": "x"}).encode())
            one("GET", f"/item/{item}", None)
            i += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else 0.0
    p50 = statistics.median(ordered) if ordered else 0.0
    print(f"  {clients} clients, POST /item + GET /item/{{id}} through {host} for {seconds:g} s: "
          f"{len(latencies) / elapsed:.0f} requests/s, p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"errors {errors or 'none'}", flush=True)


# ------------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timing", choices=control.TIMING_PROFILES, default="aws")
    parser.add_argument("--regions", default="2,4,8", help="numbers of regions, comma-separated (first is the base)")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--no-strict", dest="strict", action="store_false",
                        help="without AWS's refusals and pending states")
    parser.add_argument("--no-drill", dest="drill", action="store_false", help="skip the failover drills")
    parser.add_argument("--load-clients", type=int, default=8)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    args = parser.parse_args()
    args.counts = [int(n) for n in args.regions.split(",")]
    if not args.counts or min(args.counts) < 1 or max(args.counts) > len(REGION_ORDER):
        parser.error(f"--regions: numbers between 1 and {len(REGION_ORDER)}")
    return args


def main_bench() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="multiregion-bench-"))
    # A sandbox of our own, found through a home of our own: never the user's, which keeps running.
    os.environ[control.HOME_ENV] = str(workdir / "home")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    info = control.start(port=0, time_scale=args.time_scale, timing=args.timing, strict=args.strict)
    aws_timing = args.timing == "aws"
    try:
        print(f"multiregion benchmark: timing {args.timing}{', strict' if args.strict else ''}, time scale "
              f"{args.time_scale:g} (AWS seconds / {args.time_scale:g} = sandbox seconds), sandbox {info.url} "
              f"(pid {info.pid}), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print("  the account's lease table is made before each fresh up (an account's first run waits for it once)")
        print("\n    N  fresh up   command    critical  ratio  writes  reads/N  plan new   plan conv  up conv"
              "    (ratio: fresh up / critical; writes, reads/N: converged up)")
        runs = []
        for n in args.counts:
            runs.append(measure(info.url, workdir, n, args.time_scale))
            print_run(runs[-1], aws_timing)
        print_scaling(runs, aws_timing)
        if args.drill:
            print("\n  drills on 2 regions (times in sandbox seconds; x time scale for AWS):")
            post(f"{info.url}/_sandbox/reset")
            path = write_config(workdir, info.url, REGION_ORDER[:2])
            _, code, up = cli(path, "up")
            if code != 0:
                raise SystemExit(f"up for the drills failed: {up.get('errors')}")
            for fault in ("outage", "isolate"):
                drill(path, fault, args.time_scale)
            host = yaml.safe_load(path.read_text())["domain"]["name"]
            sustained(info.url, host, REGION_ORDER[0], args.load_clients, args.load_seconds)
        print(f"\n  load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work on the machine "
              "slows the sandbox and the CLI alike)")
    finally:
        control.stop()


if __name__ == "__main__":
    main_bench()
