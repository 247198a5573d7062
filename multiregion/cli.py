"""The command layer: parse, build a context, call the core, render. Exit codes: 0 ok, 1 a failed step or
check, 2 a usage or configuration error."""

from __future__ import annotations

import functools
import ipaddress
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from multiregion import __version__
from multiregion.aws import ClientProvider
from multiregion.config import CONFIG_ENV, Config, ConfigError, config_path, load_config
from multiregion.engine import (
    GLOBAL,
    Context,
    GraphError,
    Reporter,
    Runner,
    RunResult,
    Stage,
    StepError,
    Unreachable,
    read_status,
    with_dependencies,
)
from multiregion.failover import MODES, FailoverTest, SandboxLink
from multiregion.failover import Options as FailoverOptions
from multiregion.plan import monthly_cost
from multiregion.regions import REGIONS
from multiregion.render import (
    RichReporter,
    changes_table,
    print_failover_report,
    print_run_summary,
    print_status,
    print_step,
)
from multiregion.sandbox import control
from multiregion.stages import STAGE_NAMES, STAGES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Session:
    """What one command run needs: the config, a console, the clients and the engine context."""

    def __init__(self, config: Config, as_json: bool):
        self.config, self.as_json = config, as_json
        # Progress goes to stderr when stdout carries the JSON document.
        self.console = Console(stderr=as_json, highlight=False)
        self.reporter = RichReporter(self.console, quiet=as_json)
        self.clients = connect(config, self.reporter)
        local = self.clients.endpoint_url is not None
        self.ctx = Context(config=config, clients=self.clients, reporter=self.reporter,
                           poll_interval=0.2 if local else 5.0)

    def stages(self, only: Iterable[str] = ()) -> list[Stage[Any]]:
        """The stages to run: all, or those named and every stage they depend on (as Terraform's -target)."""
        wanted = list(only)
        return with_dependencies(STAGES, wanted) if wanted else list(STAGES)

    def sandbox_link(self) -> SandboxLink | None:
        """How the failover test reaches the sandbox's data plane, when the endpoint is a sandbox."""
        url = self.clients.endpoint_url
        health = control.ping(url) if url else None
        return SandboxLink(url, float(health.get("time_scale", 1.0))) if url and health else None

    def emit(self, data: dict[str, Any]) -> None:
        click.echo(json.dumps(data, indent=2, default=str))


def connect(config: Config, reporter: Reporter) -> ClientProvider:
    if config.endpoint == "aws":
        return ClientProvider()
    if config.endpoint == "sandbox":
        info = control.running()
        if info is None:
            reporter.info("no sandbox is running; starting one (stop it with `multiregion sandbox stop`)")
            info = control.start()
            reporter.info(f"sandbox started at {info.url} (pid {info.pid})")
        return ClientProvider(info.url)
    return ClientProvider(config.endpoint)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into a message and an exit code; --debug shows the traceback instead."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        err = Console(stderr=True, highlight=False)
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            if debug:
                raise
            err.print(f"[red]config error[/red] {escape(exc.message)}", soft_wrap=True)
            sys.exit(EXIT_USAGE)
        except GraphError as exc:
            if debug:
                raise
            err.print(f"[red]error[/red] {escape(str(exc))}", soft_wrap=True)
            sys.exit(EXIT_USAGE)
        except Unreachable as exc:
            if debug:
                raise
            err.print(f"[red]error[/red] cannot read the stack: {escape(str(exc))}", soft_wrap=True)
            sys.exit(EXIT_FAILED)
        except (StepError, control.SandboxError) as exc:
            if debug:
                raise
            err.print(f"[red]error[/red] {escape(str(getattr(exc, 'message', exc)))}", soft_wrap=True)
            sys.exit(EXIT_FAILED)

    return wrapper


def session(as_json: bool = False) -> Session:
    ctx = click.get_current_context()
    root = ctx.find_root()
    config = load_config(config_path(root.params.get("config_file")))
    return Session(config, as_json)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_file", metavar="PATH", envvar=CONFIG_ENV,
              help=f"The stack's YAML file (default: config.yaml, or ${CONFIG_ENV}).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of short error messages.")
@click.version_option(__version__, prog_name="multiregion")
def main(config_file: str | None, debug: bool) -> None:
    """Run a serverless item API active-active in several AWS regions, and prove that failover works.

    \b
    multiregion up               converge every stage in every region (idempotent)
    multiregion plan             what `up` would change; nothing is touched
    multiregion status           what exists, per region
    multiregion down             remove what this stack owns
    multiregion sandbox start    a local multi-region AWS on 127.0.0.1 to try it all

    Every command reads config.yaml (or --config PATH). `endpoint: sandbox` in it runs everything against
    the embedded sandbox, starting one when none runs.
    """


# ---------------------------------------------------------------------------------------------- up/plan


def run_up(only: Iterable[str], as_json: bool, prune: bool) -> None:
    s = session(as_json)
    s.ctx.prune = prune
    started = time.monotonic()
    stages = s.stages(only)
    result = Runner(s.ctx, stages, "up").run()
    seconds = time.monotonic() - started
    if as_json:
        s.emit(run_document(result, s.clients, seconds) | {"outputs": collect_status(s, stages)})
    else:
        print_run_summary(s.console, result, "applied", seconds, s.clients.writes)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def run_document(result: RunResult, clients: ClientProvider, seconds: float, detail: bool = False) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "changes": [c.to_dict(detail) for c in result.changes],
        "errors": [e.to_dict() for e in result.errors],
        "skipped": [{"stage": n.stage, "region": n.region} for n in result.nodes if n.skipped],
        "api_calls": {"reads": clients.reads, "writes": clients.writes},
        "seconds": round(seconds, 2),
    }


@main.command()
@click.option("--only", "only", multiple=True, type=click.Choice(STAGE_NAMES), metavar="STAGE",
              help=f"Converge only these stages (repeatable), and the stages they depend on (read, and "
                   f"converged too if needed): {', '.join(STAGE_NAMES)}.")
@click.option("--prune", is_flag=True,
              help="Also remove the table replicas and health checks of regions no longer in the config.")
@json_option
@handle_errors
def up(only: tuple[str, ...], prune: bool, as_json: bool) -> None:
    """Converge every stage in every region, in parallel. Safe to run again: a converged stack is left
    alone (no write call), and a run that was interrupted resumes where it stopped."""
    run_up(only, as_json, prune)


@main.command()
@click.option("--only", "only", multiple=True, type=click.Choice(STAGE_NAMES), metavar="STAGE",
              help="Plan only these stages (repeatable), and the stages they depend on.")
@click.option("--detail", is_flag=True, help="With --json: each change's AWS operations and parameters.")
@json_option
@handle_errors
def plan(only: tuple[str, ...], detail: bool, as_json: bool) -> None:
    """Show what `up` would change, with any monthly cost it adds. Nothing is written.

    The plan walks the same graph as `up`: a value that AWS assigns during `up` (the id of an API still to
    be created) shows as a placeholder such as "(the REST API created above)"."""
    s = session(as_json)
    result = Runner(s.ctx, s.stages(only), "plan").run()
    cost = monthly_cost(result.changes)
    if as_json:
        s.emit({"changes": [c.to_dict(detail) for c in result.changes],
                "errors": [e.to_dict() for e in result.errors],
                "skipped": [{"stage": n.stage, "region": n.region} for n in result.nodes if n.skipped],
                "monthly_cost_added_usd": float(cost)})
    else:
        if result.changes:
            s.console.print(changes_table(result.changes, f"{len(result.changes)} change(s) planned"))
            if cost:
                s.console.print(f"These changes add about ${cost:.2f} a month (AWS list prices).")
        for error in result.errors:
            s.console.print(f"[red]error[/red] {escape(error.message)}", soft_wrap=True)
        skipped = [f"{n.stage}/{n.region}" for n in result.nodes if n.skipped]
        if skipped:
            s.console.print(f"[yellow]not planned after a failure:[/yellow] {', '.join(skipped)}")
        if not result.changes and result.ok:
            s.console.print("[green]No changes.[/green] Every stage is converged.")
        elif not result.ok:
            s.console.print("[red]The plan is incomplete[/red]: some stages could not be read (see above).")
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def add_stage_commands() -> None:
    for stage in STAGES:
        def command(as_json: bool, prune: bool, _name: str = stage.name) -> None:
            run_up([_name], as_json, prune)

        command.__doc__ = f"{stage.help}\n\nThe same idempotent step as inside `up` (`up --only {stage.name}`)."
        cmd = click.command(name=stage.name)(handle_errors(command))
        cmd = click.option("--prune", is_flag=True, hidden=stage.name not in ("global-table", "health-checks"),
                           help="Also remove what this stage keeps for regions no longer in the config.")(cmd)
        main.add_command(json_option(cmd))


add_stage_commands()


# ----------------------------------------------------------------------------------------------- status


def collect_status(s: Session, stages: list[Stage[Any]] | None = None) -> dict[str, Any]:
    """Every stage's status as one document: per region, and the global ones; read errors are listed
    (and shown in the stage's place), never hidden."""
    statuses, errors = read_status(s.ctx, stages or s.stages())
    out: dict[str, Any] = {"regions": {r: {} for r in s.config.regions}, "global": {}, "errors": []}
    for (name, region), status in statuses.items():
        target = out["global"] if region == GLOBAL else out["regions"].setdefault(region, {})
        target[name] = status.to_dict()
    for error in errors:
        target = out["global"] if error.region == GLOBAL else out["regions"].setdefault(error.region, {})
        target[error.stage] = {"error": error.detail}
        out["errors"].append(error.to_dict())
    return out


@main.command()
@json_option
@handle_errors
def status(as_json: bool) -> None:
    """Show what exists of the stack, per region and for the global name. Exit 1 when a part of the
    stack could not be read."""
    s = session(as_json)
    data = collect_status(s)
    if as_json:
        s.emit(data)
    else:
        print_status(s.console, data, s.config.regions, s.config.primary)
    sys.exit(EXIT_FAILED if data["errors"] else EXIT_OK)


# ------------------------------------------------------------------------------------------------- down


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--delete-data", is_flag=True, help="Also delete the table and replicas when they hold items.")
@json_option
@handle_errors
def down(yes: bool, delete_data: bool, as_json: bool) -> None:
    """Remove every resource this stack owns, in every region, dependents first. Resources that are not
    tagged as this stack's are never touched; a table that holds items is kept unless --delete-data."""
    s = session(as_json)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("down needs confirmation: pass --yes when not at a terminal")
        click.confirm(f"Remove stack {s.config.service!r} from {', '.join(s.config.regions)}?", abort=True)
    s.ctx.delete_data = delete_data
    started = time.monotonic()
    result = Runner(s.ctx, s.stages(), "down").run()
    seconds = time.monotonic() - started
    if as_json:
        s.emit(run_document(result, s.clients, seconds))
    else:
        print_run_summary(s.console, result, "removed", seconds, s.clients.writes)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


# ---------------------------------------------------------------------------------------- failover-test


@main.command(name="failover-test")
@click.option("--region", metavar="REGION", help="The region to fail (default: the one serving the client).")
@click.option("--client-region", metavar="REGION", help="Where the client is (default: the primary region).")
@click.option("--client-ip", metavar="IP", help="The client's address instead of --client-region.")
@click.option("--mode", type=click.Choice(MODES), default="health", show_default=True,
              help="health: the health function answers 404 (STATUS=404). outage: reserved concurrency 0 "
                   "on the region's functions, a real outage of its API.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds to wait for each of detection, rerouting, replication and recovery.")
@json_option
@handle_errors
def failover_test(region: str | None, client_region: str | None, client_ip: str | None, mode: str,
                  timeout: float, as_json: bool) -> None:
    """Take one region down, watch Route 53 move the traffic, prove no write is lost, restore.

    \b
    preflight  the stack is converged and every region healthy (else nothing is touched)
    baseline   which region serves the client; write and read through the global name
    inject     fail the region (health or outage mode); never the last healthy region
    detect     wait until Route 53 deems the region unhealthy
    reroute    wait until Route 53 answers the client with another region
    verify     write and read through the global name: served by the other region
    replicate  the new item appears in the failed region's table (replication lag)
    restore    always, also after a failure or Ctrl-C: undo, wait until healthy and serving again

    Exit 0 only when every check held.
    """
    if client_region and client_ip:
        raise click.UsageError("give --client-region or --client-ip, not both")
    for value, flag in ((region, "--region"), (client_region, "--client-region")):
        if value is not None and value not in REGIONS:
            raise click.BadParameter(f"unknown region {value!r}", param_hint=flag)
    if client_ip is not None:
        try:
            ipaddress.ip_address(client_ip)
        except ValueError:
            raise click.BadParameter(f"{client_ip!r} is not an IP address", param_hint="--client-ip") from None
    s = session(as_json)
    options = FailoverOptions(region=region, client_region=client_region, client_ip=client_ip, mode=mode,
                              timeout=timeout)
    on_step = (lambda step: None) if as_json else (lambda step: print_step(s.console, step))
    report = FailoverTest(s.ctx, s.stages(), options, sandbox=s.sandbox_link(), on_step=on_step).run()
    if as_json:
        s.emit(report.to_dict())
    else:
        print_failover_report(s.console, report)
    sys.exit(EXIT_OK if report.passed else EXIT_FAILED)


# ---------------------------------------------------------------------------------------------- sandbox


@main.group()
def sandbox() -> None:
    """The embedded sandbox: a local multi-region AWS on 127.0.0.1 (moto plus replication, a Lambda
    runtime, the API data plane, health checks, traffic policies and DNS answers)."""


_TIMING_HELP = ("How long AWS's asynchronous work takes: 'fast' (short fixed delays, for tests and the demo) or "
                "'aws' (AWS's typical durations, divided by the time scale); see the README.")
_STRICT_HELP = ("AWS's refusals and pending states: updates in progress, throttling, propagation delays, "
                "changes PENDING until INSYNC.")


@sandbox.command()
@click.option("--port", default=control.DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any).")
@click.option("--time-scale", default=10.0, show_default=True,
              help="AWS waits are divided by this: 10 makes a 30 s health check interval 3 s.")
@click.option("--timing", type=click.Choice(control.TIMING_PROFILES), default="fast", show_default=True,
              help=_TIMING_HELP)
@click.option("--strict", is_flag=True, help=_STRICT_HELP)
@click.option("--write-state", is_flag=True, hidden=True)
def serve(port: int, time_scale: float, timing: str, strict: bool, write_state: bool) -> None:
    """Run a sandbox in the foreground until Ctrl-C."""
    try:
        from multiregion.sandbox.server import Sandbox, SandboxOptions
    except ImportError:
        raise click.ClickException("the sandbox needs its extra: pip install 'multiregion[sandbox]'") from None
    if time_scale <= 0:
        raise click.BadParameter("must be positive", param_hint="--time-scale")
    sb = Sandbox(SandboxOptions(time_scale=time_scale, timing=timing, strict=strict), port=port)
    try:
        sb.bind()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    import os
    import signal

    if write_state:
        control.write_state(control.SandboxInfo(os.getpid(), sb.port))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    click.echo(f"multiregion sandbox on {sb.url} ({_describe(time_scale, timing, strict)}); Ctrl-C to stop",
               err=True)
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if write_state:
            control.clear_state(os.getpid())


def _describe(time_scale: float, timing: str, strict: bool) -> str:
    return f"time scale {time_scale:g}, timing {timing}" + (", strict" if strict else "")


@sandbox.command()
@click.option("--port", default=control.DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any).")
@click.option("--time-scale", default=None, type=float, help="See `sandbox serve --help`.")
@click.option("--timing", type=click.Choice(control.TIMING_PROFILES), default=None,
              help=_TIMING_HELP + " Default: fast.")
@click.option("--strict", is_flag=True, help=_STRICT_HELP)
@handle_errors
def start(port: int, time_scale: float | None, timing: str | None, strict: bool) -> None:
    """Start a sandbox in the background (or report the one already running)."""
    already = control.running()
    info = already or control.start(port, time_scale, timing=timing, strict=strict)
    state = "already running" if already else "started"
    click.echo(f"sandbox {state} at {info.url} (pid {info.pid}); logs: {control.log_file()}")
    differ = control.options_differ(control.ping(info.url), time_scale, timing, strict) if already else []
    if differ:
        # A second start never restarts the sandbox: that would drop every resource it holds.
        click.echo(f"warning: the running sandbox has other {', '.join(differ)} than asked; "
                   "`multiregion sandbox stop` first to change them", err=True)


@sandbox.command()
def stop() -> None:
    """Stop the background sandbox. Everything it held is gone."""
    info = control.stop()
    click.echo(f"sandbox stopped (pid {info.pid})" if info else "no sandbox is running")


@sandbox.command(name="status")
@json_option
def sandbox_status(as_json: bool) -> None:
    """Whether a background sandbox runs, and where. Exit 1 when none does."""
    info = control.running()
    health = control.ping(info.url) if info else None
    if as_json:
        click.echo(json.dumps({"running": bool(info), "url": info.url if info else None, **(health or {})}))
    elif info:
        options = (f", {_describe(health['time_scale'], health.get('timing', 'fast'), bool(health.get('strict')))}"
                   if health else ", not answering")
        click.echo(f"sandbox running at {info.url} (pid {info.pid}{options})")
    else:
        click.echo("no sandbox is running (start one with `multiregion sandbox start`)")
    sys.exit(EXIT_OK if info else EXIT_FAILED)


@sandbox.command(name="regions")
@json_option
def sandbox_regions(as_json: bool) -> None:
    """The AWS regions the sandbox knows: where each one is (latency routing measures the distance between
    locations) and its client subnet (an EDNS0 client subnet or X-Multiregion-Client-IP inside it stands
    for a client in that region)."""
    from multiregion.regions import client_ip

    rows: list[dict[str, Any]] = [
        {"region": r.code, "name": r.name, "location": {"latitude": r.location[0], "longitude": r.location[1]},
         "client_subnet": r.client_subnet, "sample_client_ip": client_ip(r.code)} for r in REGIONS.values()]
    if as_json:
        click.echo(json.dumps({"regions": rows}, indent=2))
        return
    table = Table(title="Regions of the sandbox", title_justify="left")
    for column in ("region", "name", "location", "client subnet", "sample client IP"):
        table.add_column(column, no_wrap=column != "name")  # only the name may wrap, at its spaces
    for row in rows:
        where = f"{row['location']['latitude']:.2f}, {row['location']['longitude']:.2f}"
        table.add_row(row["region"], row["name"], where, row["client_subnet"], row["sample_client_ip"])
    Console(highlight=False).print(table)


if __name__ == "__main__":  # pragma: no cover
    main()
