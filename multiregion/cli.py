"""The command layer: parse, build a context, call the core, render. Exit codes: 0 ok, 1 a failed step or
check, 2 a usage or configuration error (nothing was touched); `plan --detailed-exitcode` adds 2 for "changes
present" as Terraform does."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import ProfileNotFound
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from multiregion import __version__
from multiregion.aws import Access, ClientProvider
from multiregion.config import CONFIG_ENV, Config, ConfigError, config_path, load_config
from multiregion.drill.budgets import Budgets
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
from multiregion.failover import FAULTS, MODES, FailoverTest, SandboxLink
from multiregion.failover import Options as FailoverOptions
from multiregion.lease import Held, LeaseHeld, Leases, lease_ttl
from multiregion.packaging import PackagingError
from multiregion.plan import Change, monthly_cost
from multiregion.regions import REGIONS
from multiregion.render import (
    RichReporter,
    changes_lines,
    changes_table,
    print_estimate,
    print_failover_report,
    print_run_summary,
    print_status,
    print_step,
)
from multiregion.sandbox import control
from multiregion.stages import STAGE_NAMES, STAGES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes present
WIDE = 200  # columns for output that is not a terminal (a CI log), unless COLUMNS says otherwise


class Session:
    """What one command run needs: the config, a console, the clients and the engine context."""

    def __init__(self, config: Config, as_json: bool):
        self.config, self.as_json = config, as_json
        options = root_options()
        # Progress goes to stderr when stdout carries the JSON document.
        self.console = make_console(stderr=as_json, no_color=options.get("no_color", False))
        self.reporter = RichReporter(self.console, quiet=as_json)
        self.clients = connect(config, self.reporter, options.get("profile"))
        local = self.clients.local  # the sandbox or LocalStack (also through AWS_ENDPOINT_URL): poll quickly
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

    @property
    def remote(self) -> bool:
        """Whether the stack lives in AWS (changes cost money there: `up` and `down` ask first)."""
        return self.config.endpoint == "aws"

    def leases(self) -> Leases:
        # Its own clients: the lease's calls are not the stack's, and must not count as its writes.
        return Leases(connect(self.config, Reporter(), root_options().get("profile")), self.config.primary,
                      self.config.service)

    @contextlib.contextmanager
    def lease(self, command: str, wait: float) -> Iterator[None]:
        def waiting(lease: Any) -> None:
            # A warning, not progress: shown with --json too (on stderr), since the run may wait minutes.
            self.reporter.warn(f"waiting for the lease of {lease.owner} (`{lease.command}`, expires "
                               f"{lease.expires_text})")

        def lost() -> None:
            self.reporter.warn("the stack's lease was taken away (force-unlock?): another run may now change it")

        try:
            ttl = lease_ttl()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None  # before the lease, the first write of a run
        with Held(self.leases(), command, ttl, wait, waiting, lost):
            yield

    def emit(self, data: dict[str, Any]) -> None:
        click.echo(json.dumps(data, indent=2, default=str))


def make_console(stderr: bool = False, no_color: bool = False) -> Console:
    """A console as wide as the terminal, or (in a CI log) as COLUMNS says, else WIDE; NO_COLOR honoured."""
    probe = Console(stderr=stderr)
    columns = os.environ.get("COLUMNS", "").strip()
    width = None if probe.is_terminal else int(columns) if columns.isdigit() and int(columns) > 0 else WIDE
    plain = no_color or bool(os.environ.get("NO_COLOR"))
    # rich's no_color drops colours but keeps bold and dim; no colour system at all writes no ANSI style.
    if plain:
        return Console(stderr=stderr, highlight=False, width=width, no_color=True, color_system=None)
    return Console(stderr=stderr, highlight=False, width=width)


def root_options() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return dict(ctx.find_root().params) if ctx else {}


def connect(config: Config, reporter: Reporter, profile: str | None = None) -> ClientProvider:
    access = {region: Access(a.profile, a.role_arn) for region, a in config.access}
    endpoint: str | None = config.endpoint
    if config.endpoint == "aws":
        endpoint = None  # boto3's own resolution: AWS_ENDPOINT_URL(_<SERVICE>), else AWS
    elif config.endpoint == "sandbox":
        info = control.running()
        if info is None:
            reporter.info("no sandbox is running; starting one (stop it with `multiregion sandbox stop`)")
            info = control.start()
            reporter.info(f"sandbox started at {info.url} (pid {info.pid})")
        endpoint = info.url
    return ClientProvider(endpoint, profile=profile, access=access, home_region=config.primary)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into a message and an exit code; --debug shows the traceback instead."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = root_options().get("debug", False)
        err = make_console(stderr=True, no_color=root_options().get("no_color", False))

        def fail(code: int, text: str) -> None:
            err.print(text, soft_wrap=True)
            sys.exit(code)

        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if debug:
                raise
            if isinstance(exc, ConfigError):
                fail(EXIT_USAGE, f"[red]config error[/red] {escape(exc.message)}")
            elif isinstance(exc, PackagingError):
                fail(EXIT_USAGE, f"[red]packaging error[/red] {escape(str(exc))}\n  hint: fix the app's source "
                                 "or requirements; nothing was deployed")
            elif isinstance(exc, GraphError):
                fail(EXIT_USAGE, f"[red]error[/red] {escape(str(exc))}")
            elif isinstance(exc, Unreachable):
                # botocore sends every call to AWS_ENDPOINT_URL when it is set: name it, it is easily forgotten.
                through = f" (through AWS_ENDPOINT_URL={os.environ['AWS_ENDPOINT_URL']})" \
                    if os.environ.get("AWS_ENDPOINT_URL") else ""
                fail(EXIT_FAILED, f"[red]error[/red] cannot read the stack: {escape(exc.reason)}{escape(through)}\n"
                                  f"  hint: {escape(exc.hint)}")
            elif isinstance(exc, LeaseHeld):
                fail(EXIT_FAILED, f"[red]locked[/red] {escape(str(exc))}\n  hint: {escape(exc.hint)}")
            elif isinstance(exc, ProfileNotFound):
                fail(EXIT_USAGE, f"[red]error[/red] {escape(str(exc))}\n  hint: list the profiles with `aws configure "
                                 "list-profiles`; check --profile, AWS_PROFILE and the config's aws: section")
            elif isinstance(exc, (StepError, control.SandboxError)):
                fail(EXIT_FAILED, f"[red]error[/red] {escape(str(getattr(exc, 'message', exc)))}")
            else:
                raise

    return wrapper


def session(as_json: bool = False) -> Session:
    config = load_config(config_path(root_options().get("config_file")))
    return Session(config, as_json)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
lock_option = click.option("--lock-timeout", type=click.FloatRange(min=0), default=0.0, show_default=True,
                           metavar="SECONDS", help="How long to wait for another run's lease on the stack.")
yes_option = click.option("--yes", is_flag=True, help="Do not ask for confirmation (as terraform -auto-approve).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_file", metavar="PATH", envvar=CONFIG_ENV,
              help=f"The stack's YAML file (default: config.yaml, or ${CONFIG_ENV}).")
@click.option("--profile", metavar="NAME", envvar="AWS_PROFILE",
              help="The AWS CLI profile to use (default: $AWS_PROFILE, else the default credentials chain).")
@click.option("--no-color", is_flag=True, help="No colours in the output (NO_COLOR is honoured too).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of short error messages.")
@click.version_option(__version__, prog_name="multiregion")
def main(config_file: str | None, profile: str | None, no_color: bool, debug: bool) -> None:
    """Run a serverless backend active-active in several AWS regions, and prove that failover works.

    \b
    multiregion init DIR         a new project: config.yaml and the item API as your own code
    multiregion up               converge every stage in every region (idempotent)
    multiregion plan             what `up` would change; nothing is touched
    multiregion status           what exists, per region
    multiregion failover-test    take a region down, measure what users feel, restore
    multiregion logs             the functions' logs, merged across regions
    multiregion down             remove what this stack owns
    multiregion sandbox start    a local multi-region AWS on 127.0.0.1 to try it all

    Every command reads config.yaml (or --config PATH). `endpoint: sandbox` in it runs everything against
    the embedded sandbox, starting one when none runs.
    """


# ---------------------------------------------------------------------------------------------- up/plan


def print_changes(s: Session, changes: list[Change], title: str) -> None:
    """The changes as a table on a terminal, one line each in a log (no cell ever wraps mid-word there)."""
    if s.console.is_terminal:
        s.console.print(changes_table(changes, title))
    else:
        s.console.print(title, markup=False)
        for line in changes_lines(changes):
            s.console.print(line, soft_wrap=True)
    cost = monthly_cost(changes)
    if cost:
        s.console.print(f"These changes add about ${cost:.2f} a month (AWS list prices).")


def confirm_changes(s: Session, stages: list[Stage[Any]], mode: str, yes: bool, verb: str) -> bool:
    """Against AWS, show what will change (and cost) and ask first; False when there is nothing to do.
    Without a terminal and without --yes, refuse (exit 2) before any write, as Terraform does."""
    if not s.remote or yes:
        return True
    result = Runner(s.ctx, stages, mode).run()
    if not result.changes and not result.errors:
        return True
    # A stage that could not be read may still write once the run reaches it: an incomplete plan is asked too.
    incomplete = " (the plan is incomplete: some stages could not be read)" if result.errors else ""
    if not s.as_json:
        if result.changes:
            print_changes(s, result.changes, f"{len(result.changes)} change(s) to {verb}")
        for error in result.errors:
            s.console.print(f"[red]error[/red] {escape(error.message)}", soft_wrap=True)
        print_estimate(s.console, result.estimate(), s.remote)
    if not sys.stdin.isatty():
        raise click.UsageError(f"{verb} needs confirmation against AWS: run it at a terminal, or pass --yes "
                               f"(nothing was changed){incomplete}")
    click.confirm(f"{verb.capitalize()} these {len(result.changes)} change(s) in AWS{incomplete}?", abort=True,
                  err=s.as_json)
    return True


def run_up(only: Iterable[str], as_json: bool, prune: bool, yes: bool = False, lock_timeout: float = 0.0) -> None:
    s = session(as_json)
    s.ctx.prune = prune
    stages = s.stages(only)
    confirm_changes(s, stages, "plan", yes, "apply")
    started = time.monotonic()
    with s.lease("up", lock_timeout):
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
        "seconds": round(seconds, 2),  # measured wall time: taking the lease, then every node
        # What the same changes take at AWS's typical durations: the plan's critical path (AWS seconds).
        "estimate": result.estimate().to_dict(),
    }


only_option = click.option(
    "--only", "only", multiple=True, type=click.Choice(STAGE_NAMES), metavar="STAGE",
    help=f"Only these stages (repeatable), and the stages they depend on, as Terraform's -target: "
         f"{', '.join(STAGE_NAMES)}.")


@main.command()
@only_option
@click.option("--prune", is_flag=True,
              help="Also remove the table replicas and health checks of regions no longer in the config.")
@yes_option
@lock_option
@json_option
@handle_errors
def up(only: tuple[str, ...], prune: bool, yes: bool, lock_timeout: float, as_json: bool) -> None:
    """Converge every stage in every region, in parallel. Safe to run again: a converged stack is left
    alone (no write call), and a run that was interrupted resumes where it stopped.

    Against AWS the plan (with the monthly cost it adds) is shown and confirmed first; --yes skips the
    question, and without a terminal --yes is required. Concurrent runs on one stack wait for each other's
    lease (see --lock-timeout)."""
    run_up(only, as_json, prune, yes, lock_timeout)


@main.command()
@only_option
@click.option("--detail", is_flag=True, help="With --json: each change's AWS operations and parameters.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when nothing would change, 2 when something would, 1 on an error (Terraform's).")
@json_option
@handle_errors
def plan(only: tuple[str, ...], detail: bool, detailed_exitcode: bool, as_json: bool) -> None:
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
                "monthly_cost_added_usd": float(cost),
                "estimate": result.estimate().to_dict()})
    else:
        if result.changes:
            print_changes(s, result.changes, f"{len(result.changes)} change(s) planned")
            print_estimate(s.console, result.estimate(), s.remote)
        for error in result.errors:
            s.console.print(f"[red]error[/red] {escape(error.message)}", soft_wrap=True)
        skipped = [f"{n.stage}/{n.region}" for n in result.nodes if n.skipped]
        if skipped:
            s.console.print(f"[yellow]not planned after a failure:[/yellow] {', '.join(skipped)}")
        if not result.changes and result.ok:
            s.console.print("[green]No changes.[/green] Every stage is converged.")
        elif not result.ok:
            s.console.print("[red]The plan is incomplete[/red]: some stages could not be read (see above).")
    if not result.ok:
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_CHANGES if detailed_exitcode and result.changes else EXIT_OK)


def add_stage_commands() -> None:
    for stage in STAGES:
        def command(as_json: bool, prune: bool, yes: bool, lock_timeout: float, _name: str = stage.name) -> None:
            run_up([_name], as_json, prune, yes, lock_timeout)

        command.__doc__ = (f"{stage.help}\n\nThe same idempotent step as inside `up` (`up --only {stage.name}`), "
                           "with the stages it depends on.")
        cmd = click.command(name=stage.name)(handle_errors(command))
        cmd = click.option("--prune", is_flag=True, hidden=stage.name not in ("global-table", "health-checks"),
                           help="Also remove what this stage keeps for regions no longer in the config.")(cmd)
        main.add_command(json_option(lock_option(yes_option(cmd))))


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
    """Show what exists of the stack, per region and for the global name, and who holds its lease.
    Exit 1 when a part of the stack could not be read."""
    s = session(as_json)
    data = collect_status(s)
    lease = s.leases().current()
    data["global"]["lease"] = lease.to_dict() if lease else None
    if as_json:
        s.emit(data)
    else:
        print_status(s.console, data, s.config.regions, s.config.primary)
    sys.exit(EXIT_FAILED if data["errors"] else EXIT_OK)


@main.command(name="force-unlock")
@click.argument("lease_id")
@handle_errors
def force_unlock(lease_id: str) -> None:
    """Remove the stack's lease LEASE_ID, left by a run that died (its id is in the message that refused
    you, and in `status`). Only do this when that run is gone: two runs would then change the stack."""
    s = session()
    if s.leases().force_unlock(lease_id):
        click.echo(f"lease {lease_id} removed")
        return
    current = s.leases().current()
    held = f"; the current lease is {current.lease_id} ({current.owner})" if current else "; no lease is held"
    click.echo(f"no lease {lease_id} on stack {s.config.service}{held}", err=True)
    sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------------------------------------- down


@main.command()
@yes_option
@click.option("--delete-data", is_flag=True,
              help="Also delete the table and replicas when they hold items, and the functions' log groups.")
@lock_option
@json_option
@handle_errors
def down(yes: bool, delete_data: bool, lock_timeout: float, as_json: bool) -> None:
    """Remove every resource this stack owns, in every region, dependents first. Resources that are not
    tagged as this stack's are never touched; a table that holds items, and the functions' logs, are kept
    unless --delete-data."""
    s = session(as_json)
    s.ctx.delete_data = delete_data
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("down needs confirmation: pass --yes when not at a terminal")
        if s.remote:
            result = Runner(s.ctx, s.stages(), "plan-down").run()
            print_changes(s, result.changes, f"{len(result.changes)} change(s) to remove")
        click.confirm(f"Remove stack {s.config.service!r} from {', '.join(s.config.regions)}?", abort=True)
    started = time.monotonic()
    with s.lease("down", lock_timeout):
        result = Runner(s.ctx, s.stages(), "down").run()
    seconds = time.monotonic() - started
    if as_json:
        s.emit(run_document(result, s.clients, seconds))
    else:
        print_run_summary(s.console, result, "removed", seconds, s.clients.writes)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


# ------------------------------------------------------------------------------------------ init, schema


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def init(directory: Path) -> None:
    """Start a project in DIRECTORY: a config.yaml on the sandbox, the item API as your own code in app/
    (with a test), and the config's JSON Schema for editors. Nothing is overwritten."""
    from multiregion.scaffold import ScaffoldError, init_project

    try:
        written = init_project(directory)
    except ScaffoldError as exc:
        raise click.UsageError(str(exc)) from None
    for path in written:
        click.echo(f"  wrote {path}")
    where = f"cd {directory} && " if str(directory) != "." else ""
    click.echo(f"next: {where}multiregion up && multiregion failover-test")


@main.command()
def schema() -> None:
    """Print the JSON Schema of config.yaml (from the same model that validates it), for editors:
    `# yaml-language-server: $schema=config.schema.json` at the top of config.yaml."""
    from multiregion.scaffold import schema_text

    click.echo(schema_text(), nl=False)


@main.command(name="iam-policy")
@click.option("--account", metavar="ID", help="The account id for the ARNs (default: the caller's, else any).")
@handle_errors
def iam_policy(account: str | None) -> None:
    """Print the least-privilege IAM policy that the role running `up`, `plan`, `status`, `failover-test`,
    `logs` and `down` needs for this config, service-linked roles included: one document, or a JSON array
    of documents when it does not fit in one managed policy (6,144 characters) - create a managed policy
    from each, or one inline policy from all their statements."""
    from multiregion import iam_policy as policy

    config = load_config(config_path(root_options().get("config_file")))
    partition = "aws"
    if account is None:
        try:
            s = Session(config, as_json=True)
            account, partition = s.ctx.caller_identity()
        except Unreachable:
            account = policy.UNKNOWN_ACCOUNT  # no credentials yet: the ARNs match any account
    click.echo(policy.describe(config, account, partition))


# ------------------------------------------------------------------------------------------------- logs


@main.command()
@click.option("--region", "regions", multiple=True, metavar="REGION", help="Only this region (repeatable).")
@click.option("--function", "functions", multiple=True, metavar="NAME",
              help="Only this function (repeatable): `put` or `items-put`.")
@click.option("--since", default="10m", show_default=True,
              help="From when: 30s, 10m, 2h, 1d, an ISO 8601 time, or epoch milliseconds.")
@click.option("--filter", "filter_pattern", metavar="PATTERN", help="A CloudWatch Logs filter pattern.")
@click.option("--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def logs(regions: tuple[str, ...], functions: tuple[str, ...], since: str, filter_pattern: str | None,
         follow: bool, as_json: bool) -> None:
    """The functions' log events, merged across regions in time order, each tagged with its region and
    function (CloudWatch Logs FilterLogEvents)."""
    from multiregion import logs as logs_module

    s = session(as_json)
    try:
        query = logs_module.LogQuery(regions, functions, since=logs_module.parse_since(since),
                                     filter_pattern=filter_pattern)
        logs_module.sources(s.config, query)
    except logs_module.QueryError as exc:
        raise click.UsageError(str(exc)) from None
    color = s.console.is_terminal and not root_options().get("no_color") and not os.environ.get("NO_COLOR")
    widths = {"region_width": max(len(r) for r in s.config.regions),
              "function_width": max(len(s.config.name(f)) for f in ("health", *functions)) if functions else 0}
    lines = logs_module.follow(s.clients, s.config, query, note=s.reporter.warn) if follow else \
        logs_module.fetch(s.clients, s.config, query, note=s.reporter.warn)
    try:
        for line in lines:
            click.echo(logs_module.json_line(line) if as_json else logs_module.format_line(line, color=color,
                                                                                            **widths))
    except logs_module.LogsError as exc:
        click.echo(f"error {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------------------------------- failover-test


@main.command(name="failover-test")
@click.option("--region", metavar="REGION", help="The region to fail (default: the one serving the client).")
@click.option("--client-region", metavar="REGION", help="Where the test's client is (default: the primary).")
@click.option("--client-ip", metavar="IP", help="The test client's address instead of --client-region.")
@click.option("--fault", "fault", type=click.Choice(FAULTS), default=None,
              help="health: the health function answers 404 (STATUS=404). outage: reserved concurrency 0 on the "
                   "region's functions. isolate: the region's replica stops replicating both ways while its API "
                   "answers. [default: health]")
@click.option("--mode", "mode", type=click.Choice(MODES), default=None, hidden=True,
              help="The first releases' name of --fault.")
@click.option("--clients", metavar="REGIONS", help="Synthetic clients' regions, comma-separated (default: every "
                                                   "configured region).")
@click.option("--rate", type=click.FloatRange(min=0.1, max=100), default=4.0, show_default=True,
              help="Requests per second per synthetic client.")
@click.option("--no-traffic", is_flag=True, help="Only the test's own write and read, no continuous traffic.")
@click.option("--max-rto", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Budget: fail when a client's visible RTO exceeds this.")
@click.option("--max-rpo", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Budget: fail when acknowledged writes spanning more than this were lost (0: any lost write).")
@click.option("--min-availability", type=click.FloatRange(min=0, max=100), metavar="PERCENT",
              help="Budget: fail when fewer requests than this were answered 2xx.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write a JUnit XML report (a test case per step and per budget).")
@click.option("--report", "html_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write a self-contained HTML report with the traffic's timeline.")
@click.option("--hold", type=click.FloatRange(min=0), metavar="SECONDS",
              help="isolate: how long (AWS seconds) the isolation lasts (default: three health check intervals).")
@click.option("--keep-items", is_flag=True, help="Keep the test's and the traffic's items for inspection.")
@click.option("--restore-only", is_flag=True,
              help="Only undo what a killed drill left behind (STATUS, reserved concurrency, an isolation).")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds to wait for each of detection, rerouting, replication and recovery.")
@lock_option
@json_option
@handle_errors
def failover_test(region: str | None, client_region: str | None, client_ip: str | None, fault: str | None,
                  mode: str | None, clients: str | None, rate: float, no_traffic: bool, max_rto: float | None,
                  max_rpo: float | None, min_availability: float | None, junit_file: Path | None,
                  html_file: Path | None, hold: float | None, keep_items: bool, restore_only: bool, timeout: float,
                  lock_timeout: float, as_json: bool) -> None:
    """Take one region down under continuous traffic, measure what users felt and what was lost, restore.

    \b
    preflight  the stack is converged and every region healthy (else nothing is touched)
    baseline   which region serves the client; a write and a read; traffic starts from every region
    inject     the fault (health, outage or isolate); never the last healthy region
    detect     until Route 53's checkers deem the region unhealthy (health, outage)
    reroute    until Route 53 answers the client with another region
    verify     a write and a read through the global name, served by the other region
    replicate  the new item appears in the failed region's table
    isolated   (isolate) the region keeps answering; its writes do not reach the others
    restore    always, also after a failure or Ctrl-C: undo, wait until healthy and serving again
    settle     traffic stops; every acknowledged write must reach every region (else: lost, RPO)

    Then the measures: availability, client-visible and DNS-level RTO, latency before/during/after, RPO,
    conflicts, replication lag; budgets (--max-rto, --max-rpo, --min-availability), JUnit and HTML.
    Exit 0 only when every check held and every budget was met. The stack's lease is held throughout.
    """
    if fault and mode and fault != mode:
        raise click.UsageError("give --fault (or its old name --mode) once")
    chosen = fault or mode or "health"
    if mode and not fault:
        click.echo("warning: --mode is the old name of --fault; it keeps working", err=True)
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
    client_regions = tuple(c.strip() for c in clients.split(",") if c.strip()) if clients else ()
    for value in client_regions:
        if value not in REGIONS:
            raise click.BadParameter(f"unknown region {value!r}", param_hint="--clients")
    s = session(as_json)
    if restore_only:
        with s.lease("failover-test --restore-only", lock_timeout):
            result = Runner(s.ctx, s.stages(["global-table", "functions"]), "up").run()
        print_run_summary(s.console, result, "undone", 0.0, s.clients.writes)
        sys.exit(EXIT_OK if result.ok else EXIT_FAILED)
    options = FailoverOptions(region=region, client_region=client_region, client_ip=client_ip, mode=chosen,
                              timeout=timeout, clients=client_regions, rate=rate, traffic=not no_traffic,
                              budgets=Budgets(max_rto, max_rpo, min_availability), keep_items=keep_items, hold=hold)
    on_step = (lambda step: None) if as_json else (lambda step: print_step(s.console, step))
    with s.lease("failover-test", lock_timeout):
        report = FailoverTest(s.ctx, s.stages(), options, sandbox=s.sandbox_link(), on_step=on_step).run()
    if report.drill is not None:
        from multiregion.drill.html import render_html
        from multiregion.drill.junit import report_junit

        if junit_file is not None:
            junit_file.write_text(report_junit(report.drill), encoding="utf-8")
        if html_file is not None:
            html_file.write_text(render_html(report.drill), encoding="utf-8")
    elif junit_file is not None or html_file is not None:
        s.reporter.warn("no traffic ran (--no-traffic, or the drill stopped before it): no JUnit or HTML report")
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
                "changes PENDING until INSYNC (the default). --no-strict lets every call through at once: "
                "quicker, but a stage that would fail on AWS may pass.")


@sandbox.command()
@click.option("--port", default=control.DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any).")
@click.option("--time-scale", default=10.0, show_default=True,
              help="AWS waits are divided by this: 10 makes a 30 s health check interval 3 s.")
@click.option("--timing", type=click.Choice(control.TIMING_PROFILES), default="fast", show_default=True,
              help=_TIMING_HELP)
@click.option("--strict/--no-strict", default=True, show_default=True, help=_STRICT_HELP)
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
    return f"time scale {time_scale:g}, timing {timing}, " + ("strict" if strict else "not strict")


@sandbox.command()
@click.option("--port", default=control.DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any).")
@click.option("--time-scale", default=None, type=float, help="See `sandbox serve --help`.")
@click.option("--timing", type=click.Choice(control.TIMING_PROFILES), default=None,
              help=_TIMING_HELP + " Default: fast.")
@click.option("--strict/--no-strict", default=None, help=_STRICT_HELP)
@handle_errors
def start(port: int, time_scale: float | None, timing: str | None, strict: bool | None) -> None:
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
