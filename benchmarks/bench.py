"""Figures for multiregion on the embedded sandbox: convergence time, idempotent reruns, the item API's
latency, replication lag, and the failover rehearsal's timings.

    python benchmarks/bench.py [--regions eu-west-1,us-east-1] [--requests 50] [--time-scale 10]

Everything runs on 127.0.0.1 against a sandbox started in this process. The figures are printed; nothing
is asserted (timing goals live here, not in the tests).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multiregion.cli import main  # noqa: E402
from multiregion.sandbox.server import Sandbox, SandboxOptions  # noqa: E402


def cli(config: Path, *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["--config", str(config), *args, "--json"], catch_exceptions=False)
    seconds = time.perf_counter() - started
    return seconds, json.loads(result.stdout)


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
            f"max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)})")


def http(url: str, host: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, float]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Host": host})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - started


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", default="eu-west-1,us-east-1")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--time-scale", type=float, default=10.0)
    args = parser.parse_args()
    regions = args.regions.split(",")

    sandbox = Sandbox(SandboxOptions(time_scale=args.time_scale), port=0).start()
    workdir = Path(tempfile.mkdtemp(prefix="multiregion-bench-"))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(endpoint=sandbox.url, regions=regions)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    rows: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<40} {value}", flush=True)

    print(f"multiregion benchmark: {len(regions)} regions ({', '.join(regions)}), sandbox time scale "
          f"{args.time_scale:g}, {sandbox.url}")
    seconds, doc = cli(path, "up")
    row("up, fresh sandbox", f"{seconds:6.2f} s   {len(doc['changes'])} changes, "
        f"{sum(doc['api_calls']['writes'].values())} write calls, ok={doc['ok']}")
    seconds, doc = cli(path, "up")
    row("up again, converged", f"{seconds:6.2f} s   {len(doc['changes'])} changes, "
        f"{sum(doc['api_calls']['writes'].values())} write calls, {doc['api_calls']['reads']} reads")
    seconds, doc = cli(path, "plan")
    row("plan, converged", f"{seconds:6.2f} s   {len(doc['changes'])} changes")

    _, status = cli(path, "status")
    url = sandbox.url
    for region in regions:
        invoke = status["regions"][region]["api"]["invoke_url"]
        host, stage = invoke.split("/")[2], invoke.split("/")[3]
        status_code, cold = http(f"{url}/{stage}/item", host, "POST", {"id": f"cold-{region}", "name": "x"})
        row(f"{region}: first POST /item (cold start)", f"{cold * 1000:7.1f} ms (HTTP {status_code})")
        posts, gets = [], []
        for i in range(args.requests):
            _, t = http(f"{url}/{stage}/item", host, "POST", {"id": f"bench-{region}-{i}", "name": "x"})
            posts.append(t)
            _, t = http(f"{url}/{stage}/item/bench-{region}-{i}", host)
            gets.append(t)
        row(f"{region}: POST /item (warm)", percentiles(posts))
        row(f"{region}: GET /item/{{id}} (warm)", percentiles(gets))

    src, dst = regions[0], regions[1 % len(regions)]
    put = boto3.client("dynamodb", region_name=src, endpoint_url=url, aws_access_key_id="x",
                       aws_secret_access_key="x")
    get = boto3.client("dynamodb", region_name=dst, endpoint_url=url, aws_access_key_id="x",
                       aws_secret_access_key="x")
    lags = []
    for i in range(args.requests):
        key = {"id": {"S": f"lag-{i}"}}
        put.put_item(TableName=config["table"]["name"], Item=key)
        started = time.perf_counter()
        while "Item" not in get.get_item(TableName=config["table"]["name"], Key=key):
            time.sleep(0.002)
        lags.append(time.perf_counter() - started)
    row(f"replication lag {src} -> {dst}", percentiles(lags))

    for mode in ("health", "outage"):
        seconds, report = cli(path, "failover-test", "--mode", mode)
        row(f"failover-test --mode {mode}", f"{seconds:6.2f} s   passed={report['passed']}, detection "
            f"{report['detection_seconds']} s (bound {report['detection_bound_seconds']} s), reroute "
            f"{report['reroute_seconds']} s, replication lag {report['replication_lag_seconds']} s")

    seconds, doc = cli(path, "down", "--yes", "--delete-data")
    row("down --delete-data", f"{seconds:6.2f} s   {len(doc['changes'])} changes, ok={doc['ok']}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row("peak memory of this process", f"{peak:7.1f} MiB (sandbox and CLI together; functions run apart)")
    sandbox.stop()


if __name__ == "__main__":
    main_bench()
