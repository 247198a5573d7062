"""The conventions users bring from Terraform, SAM and the AWS CLI (issue 14), each shown on the sandbox.

Against AWS (`endpoint: aws`) the tool is reached here through `AWS_ENDPOINT_URL`, as botocore documents it,
pointed at a counting proxy in front of the test sandbox: so "before any write call" is counted outside the
process that makes the calls. Terminals are pseudo-terminals (`os.openpty`) around a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from multiregion.aws import Access, ClientProvider
from multiregion.cli import main
from multiregion.config import ConfigError, parse_config
from multiregion.lookups import dns
from multiregion.sandbox.server import Sandbox
from multiregion.scaffold import init_project
from tests.conftest import DEMO_CONFIG, Cli, demo_config, refuse, schema_errors
from tests.counting_proxy import CountingProxy, counting_proxy
from tests.test_config import BAD, with_change

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[")


@pytest.fixture
def proxy(sandbox: Sandbox) -> Iterator[CountingProxy]:
    yield from counting_proxy(sandbox.url)


def write(tmp_path: Path, cfg: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def on_aws(tmp_path: Path, proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The demo config with `endpoint: aws`, and AWS_ENDPOINT_URL at the proxy (dummy credentials: conftest)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    return Cli(write(tmp_path, demo_config() | {"endpoint": "aws"}))


def subprocess_env(**extra: str) -> dict[str, str]:
    """This test's environment for a `python -m multiregion` child, with this worktree's code first."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def at_terminal(args: list[str], env: dict[str, str], answer: str | None = None,
                timeout: float = 120) -> tuple[int, str]:
    """`multiregion ARGS` with a pseudo-terminal as stdin, stdout and stderr; `answer` is typed at the first
    "[y/N]" prompt. Its exit code and everything it wrote to the terminal."""
    main_fd, child_fd = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "multiregion", *args], stdin=child_fd, stdout=child_fd,
                            stderr=child_fd, env=env, close_fds=True)
    os.close(child_fd)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the child closed its side of the terminal
                break
            if not chunk:
                break
            out += chunk
            if answer is not None and b"[y/N]" in out:
                os.write(main_fd, answer.encode())
                answer = None
        else:
            proc.kill()
            raise AssertionError(f"still running after {timeout}s:\n{out.decode(errors='replace')}")
        return proc.wait(timeout=30), out.decode(errors="replace")
    finally:
        os.close(main_fd)
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------------------ confirm before spending


def test_against_aws_up_without_a_terminal_or_yes_exits_2_before_any_write(on_aws: Cli, proxy: CountingProxy
                                                                           ) -> None:
    result = on_aws("up")  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2, result.output
    assert "--yes" in result.stderr and "nothing was changed" in result.stderr
    assert "change(s) to apply" in result.stdout and "a month" in result.stdout  # the plan and its cost
    seen = proxy.seen()
    # It read the stack through AWS_ENDPOINT_URL (so the variable is honoured), and wrote nothing.
    assert {r.service for r in seen} >= {"sts", "dynamodb", "lambda", "apigateway", "route53", "acm"}
    assert [r for r in seen if r.write] == []


def test_against_aws_an_incomplete_plan_is_confirmed_too(on_aws: Cli, proxy: CountingProxy,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A stage that could not be read would still write when `up` reached it: no skipping the question.
    refuse(monkeypatch, "lambda", "GetFunction", "ServiceException", "Lambda is having a bad day", times=10**6)
    result = on_aws("up")
    assert result.exit_code == 2, result.output
    assert "Lambda is having a bad day" in result.output and "the plan is incomplete" in result.stderr
    assert proxy.seen() and proxy.writes() == []


def test_against_aws_up_yes_converges_and_plan_is_then_empty(on_aws: Cli, proxy: CountingProxy,
                                                             aws: Callable[..., Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(dns, "ask", lambda server, name, *a, **k: asked.append(name) or pytest.fail("DNS asked"))
    code, doc = on_aws.json("up", "--yes")
    assert code == 0 and doc["ok"], doc
    assert proxy.writes(), "up --yes wrote nothing through AWS_ENDPOINT_URL"
    for region in ("eu-west-1", "us-east-1"):
        assert [a["name"] for a in aws("apigateway", region).get_rest_apis()["items"]] == ["items"]
    # AWS_ENDPOINT_URL on this machine: the public DNS knows nothing of its zone, so it is not asked, and
    # each alias address is named by the endpoint the calls go to, never by connecting to the address.
    assert asked == []
    answers = doc["outputs"]["global"]["routing"]["answers"]
    assert {r: a["served_by"] for r, a in answers.items()} == {"eu-west-1": "eu-west-1", "us-east-1": "us-east-1"}
    proxy.clear()
    assert on_aws("plan", "--detailed-exitcode").exit_code == 0
    assert proxy.seen() and proxy.writes() == []


def test_a_per_service_endpoint_variable_wins_over_aws_endpoint_url(tmp_path: Path, sandbox: Sandbox,
                                                                    proxy: CountingProxy,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
    result = Cli(write(tmp_path, demo_config() | {"endpoint": "aws"}))("plan")
    assert result.exit_code == 0, result.output
    assert proxy.seen() and {r.service for r in proxy.seen()} == {"dynamodb"}


def test_against_aws_up_at_a_terminal_asks_and_n_changes_nothing(on_aws: Cli, proxy: CountingProxy) -> None:
    assert on_aws.config is not None
    env = subprocess_env(AWS_ENDPOINT_URL=proxy.url, TERM="xterm-256color")
    code, out = at_terminal(["--config", str(on_aws.config), "up"], env, answer="n\n")
    assert "Apply these" in out and "change(s) in AWS? [y/N]" in out, out
    assert "a month" in out  # the cost was shown before the question
    assert code == 1 and "Aborted" in out
    assert proxy.seen() and proxy.writes() == []


# ---------------------------------------------------------------------------------- plan's exit codes


def test_plan_detailed_exitcode_is_2_with_changes_0_when_converged_1_on_an_error(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("plan", "--detailed-exitcode").exit_code == 2
    assert cli("plan").exit_code == 0  # without the flag, changes are no error
    assert cli.json("up")[0] == 0
    assert cli("plan", "--detailed-exitcode").exit_code == 0
    refuse(monkeypatch, "lambda", "GetFunction", "ServiceException", "Lambda is having a bad day", times=10**6)
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 1, result.output
    assert "Lambda is having a bad day" in result.output and "converged" not in result.output


# ------------------------------------------------------------------------------------ readable in logs


def test_plan_in_a_pipe_without_columns_never_wraps_a_cell(cli: Cli) -> None:
    assert cli.config is not None
    code, doc = cli.json("plan")
    assert code == 0 and len(doc["changes"]) > 20
    run = subprocess.run([sys.executable, "-m", "multiregion", "--config", str(cli.config), "plan"],
                         env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    widest = max(len(f"{c['resource']}  {c['reason']}") for c in doc["changes"])
    assert widest > 80  # a crushed 80-column table would have had to wrap these
    for change in doc["changes"]:
        # Each change on one line: its stage, region, resource and whole reason, in this order.
        pattern = re.compile(r"\s+".join(re.escape(part) for part in (
            change["action"], change["stage"], change["region"], change["resource"])) + r"\s+" +
            re.escape(change["reason"]))
        assert [line for line in lines if pattern.search(line)], f"{change} is not on one line of:\n{run.stdout}"
    assert not ANSI.search(run.stdout)


def test_no_color_and_NO_COLOR_leave_no_ansi_escape_at_a_terminal(cli: Cli) -> None:
    assert cli.config is not None
    args = ["--config", str(cli.config), "plan"]
    code, coloured = at_terminal(args, subprocess_env(TERM="xterm-256color"))
    assert code == 0 and ANSI.search(coloured)  # a terminal gets colours and bold...
    for run in (at_terminal(["--no-color", *args], subprocess_env(TERM="xterm-256color")),
                at_terminal(args, subprocess_env(TERM="xterm-256color", NO_COLOR="1"))):
        code, plain = run
        assert code == 0 and "change(s) planned" in plain
        assert not ANSI.search(plain), repr(plain[:400])  # ...but none of either when asked


# -------------------------------------------------------------------------------------------- the schema


def test_schema_command_prints_the_committed_schema_file() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    committed = (ROOT / "config.schema.json").read_text()
    assert result.stdout == committed, "config.schema.json is stale: run `multiregion schema > config.schema.json`"
    assert json.loads(committed)["$schema"].startswith("https://json-schema.org/draft/2020-12")


def test_demo_and_init_configs_name_the_schema_that_init_writes_beside_them(tmp_path: Path) -> None:
    modeline = "# yaml-language-server: $schema=config.schema.json"
    assert DEMO_CONFIG.read_text().splitlines()[0] == modeline
    assert (DEMO_CONFIG.parent / "config.schema.json").is_file()
    init_project(tmp_path)
    assert (tmp_path / "config.yaml").read_text().splitlines()[0] == modeline
    assert (tmp_path / "config.schema.json").read_text() == (ROOT / "config.schema.json").read_text()
    assert schema_errors(yaml.safe_load((tmp_path / "config.yaml").read_text())) == []


def good_corpus(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Configs the validator accepts, one per feature the suite's tests write."""
    init_project(tmp_path / "init")
    demo = demo_config()
    return {
        "demo": demo,
        "init (an app section)": yaml.safe_load((tmp_path / "init" / "config.yaml").read_text()),
        "endpoint url": demo | {"endpoint": "http://127.0.0.1:4566"},
        "endpoint aws": demo | {"endpoint": "aws"},
        "endpoint https ipv6 with slash": demo | {"endpoint": "https://[::1]:65535/"},
        "regions as one string": demo | {"regions": "us-east-1"},
        "three regions": demo | {"regions": ["eu-west-1", "us-east-1", "eu-central-1"]},
        "latency records": with_change("routing.mode", "latency-records"),
        "deep health check, 30 s": demo | {"health_check": {"interval": 30, "failure_threshold": 3, "deep": True}},
        "zone by id": demo | {"domain": {"name": "api.example.com", "hosted_zone": "/hostedzone/Z1D633PJN98FT9"}},
        "api extras": demo | {"api": {"stage": "live", "auth": "api-key", "throttle": {"rate": 50, "burst": 100},
                                      "cors": {"origins": ["https://app.example.com"]}}},
        "functions": demo | {"functions": {"memory": 512, "timeout": 20}},
        "hash key of 255 bytes": with_change("table.hash_key", "k" * 255),
        "aws per region": demo | {"aws": {"us-east-1": {"role_arn": "arn:aws:iam::123456789012:role/deploy"},
                                          "eu-west-1": {"profile": "eu", "role_arn":
                                                        "arn:aws-cn:iam::210987654321:role/team/deploy"}}},
    }


# Rejections the validator makes across fields, which a JSON Schema cannot express (it sees one value at a
# time): a name outside its zone, or the zone apex itself.
# Rules that relate two fields (or a field and the region list): the validator's alone, the schema
# describes each field by itself.
ACROSS_FIELDS = {"outside the hosted zone", "zone apex", "exactly three regions", "strongly consistent table only"}

BAD_TOO = [
    # (change, YAML path, words of the reason): issue 17's sweep and the `aws` section
    (("endpoint", "http://127.0.0.1:99999"), "endpoint", "no valid port"),
    (("endpoint", "http://127.0.0.1:abc"), "endpoint", "no valid port"),
    (("table.hash_key", "k" * 300), "table.hash_key", "more than 255"),
    (("aws", {"eu-west-1": {"role_arn": "deploy"}}), "aws.eu-west-1.role_arn", "not an IAM role ARN"),
    (("aws", {"eu-west-1": {"rol_arn": "x"}}), "aws.eu-west-1.rol_arn", "unknown key"),
    (("domain.name", "api.multiregion-demo.example.com"), "domain.name", "zone apex"),
]


def test_schema_and_validator_agree_on_the_test_corpus(tmp_path: Path) -> None:
    for name, cfg in good_corpus(tmp_path).items():
        parse_config(cfg, base_dir=tmp_path / "init")  # the validator accepts it...
        assert schema_errors(cfg) == [], name  # ...and so does the schema
    checked = 0
    for change, path, reason in [*BAD, *BAD_TOO]:
        cfg = with_change(*change)
        if change[0] == "domain.name" and reason == "zone apex":
            cfg["domain"]["hosted_zone"] = "api.multiregion-demo.example.com"
        with pytest.raises(ConfigError) as err:
            parse_config(cfg)
        assert err.value.path == path and reason in err.value.reason
        if any(words in reason for words in ACROSS_FIELDS):
            continue
        assert schema_errors(cfg), f"the validator refuses {change} ({reason}) but the schema accepts it"
        checked += 1
    assert checked >= len(BAD) + len(BAD_TOO) - 5


def test_the_aws_section_names_configured_regions_and_something_to_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(demo_config() | {"aws": {"ap-south-1": {"profile": "x"}}})
    assert (err.value.path, err.value.reason) == ("aws.ap-south-1", "is not one of the configured regions")
    with pytest.raises(ConfigError) as err:
        parse_config(demo_config() | {"aws": {"eu-west-1": {}}})
    assert err.value.path == "aws.eu-west-1" and "neither" in err.value.reason
    config = parse_config(demo_config() | {"aws": {"us-east-1": {"profile": "us"}}})
    assert dict(config.access)["us-east-1"].profile == "us"


# -------------------------------------------------------------------------------- AWS CLI conventions


def test_global_clients_take_aws_region_and_sts_too(tmp_path: Path, proxy: CountingProxy,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    config = write(tmp_path, demo_config() | {"endpoint": "aws"})
    assert Cli(config)("plan").exit_code == 0
    default = {(r.service, r.region) for r in proxy.seen() if r.service in ("route53", "sts", "iam")}
    assert default == {("route53", "us-east-1"), ("sts", "eu-west-1"), ("iam", "us-east-1")}
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):  # AWS_REGION wins, as in the AWS CLI
        monkeypatch.setenv(var, {"AWS_DEFAULT_REGION": "ap-south-1", "AWS_REGION": "eu-central-1"}[var])
        proxy.clear()
        assert Cli(config)("plan").exit_code == 0
        chosen = {(r.service, r.region) for r in proxy.seen() if r.service in ("route53", "sts", "iam")}
        region = os.environ[var] if var == "AWS_REGION" else "ap-south-1"
        assert chosen == {("route53", region), ("sts", region), ("iam", region)}
        # The regional services keep the configured regions whatever the variables say.
        assert {r.region for r in proxy.seen() if r.service == "dynamodb"} == {"eu-west-1", "us-east-1"}


def test_a_region_with_a_role_signs_with_the_roles_credentials_and_up_converges(
        tmp_path: Path, proxy: CountingProxy) -> None:
    role = "arn:aws:iam::123456789012:role/deploy-us"
    config = write(tmp_path, demo_config() | {"endpoint": proxy.url, "aws": {"us-east-1": {"role_arn": role}}})
    code, doc = Cli(config).json("up")
    assert code == 0 and doc["ok"], doc
    # eu-west-1 (the primary, whose access Route 53 and IAM use) signs with the dummy keys; us-east-1's
    # regional services with the role's temporary keys, which STS handed out once (moto's start with ASIA).
    assert {r.access_key for r in proxy.seen() if r.region == "eu-west-1"} == {"testing"}
    assert {r.access_key for r in proxy.seen() if r.service in ("route53", "iam")} == {"testing"}
    us = {r.access_key for r in proxy.seen() if r.region == "us-east-1" and r.service not in ("route53", "iam")}
    assert len(us) == 1 and next(iter(us)).startswith("ASIA")
    assert [r.operation for r in proxy.seen() if r.operation == "AssumeRole"] == ["AssumeRole"]
    identity = ClientProvider(proxy.url, access={"us-east-1": Access(role_arn=role)}, home_region="eu-west-1")(
        "sts", "us-east-1").get_caller_identity()
    assert identity["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/deploy-us/multiregion-")


def test_a_region_with_its_own_profile_signs_with_that_profiles_keys(tmp_path: Path, proxy: CountingProxy,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "aws-config").write_text("[profile eu]\naws_access_key_id = AKIAEUEUEUEUEUEUEUEU\n"
                                         "aws_secret_access_key = eu\n"
                                         "[profile us]\naws_access_key_id = AKIAUSUSUSUSUSUSUSUS\n"
                                         "aws_secret_access_key = us\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    config = write(tmp_path, demo_config() | {"endpoint": "aws", "aws": {"us-east-1": {"profile": "us"}}})
    assert Cli(config)("--profile", "eu", "plan").exit_code == 0
    keys: dict[str, set[str]] = {}
    for r in proxy.seen():
        region = "global" if r.service in ("route53", "iam") else r.region
        keys.setdefault(region, set()).add(r.access_key)
    assert keys == {"eu-west-1": {"AKIAEUEUEUEUEUEUEUEU"}, "us-east-1": {"AKIAUSUSUSUSUSUSUSUS"},
                    "global": {"AKIAEUEUEUEUEUEUEUEU"}}
    result = Cli(config)("--profile", "nope", "plan")
    assert result.exit_code == 2 and "nope" in result.stderr and "list-profiles" in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------- completion and CI examples


def test_bash_completion_script_is_produced_and_completes_commands() -> None:
    script = CliRunner().invoke(main, [], prog_name="multiregion", env={"_MULTIREGION_COMPLETE": "bash_source"})
    assert script.exit_code == 0
    assert "complete -o nosort -F _multiregion_completion multiregion" in script.stdout
    words = CliRunner().invoke(main, [], prog_name="multiregion", env={
        "_MULTIREGION_COMPLETE": "bash_complete", "COMP_WORDS": "multiregion fail", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["plain,failover-test"]
    readme = (ROOT / "README.md").read_text()
    assert "_MULTIREGION_COMPLETE=bash_source multiregion" in readme


def commands_in(text: str) -> list[list[str]]:
    """Every `multiregion ...` command line of a workflow or a Makefile, as argv after the program name."""
    found = []
    for line in text.splitlines():
        match = re.match(r"^\s*(?:-\s*)?(?:run:\s*)?multiregion (.*)$", line)
        if match:
            found.append(shlex.split(match.group(1), comments=True))
    return found


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.parametrize("source", ["examples/ci/github-actions.yml", "README.md#CI"])
def test_ci_examples_run_drift_check_apply_and_drill_with_options_that_exist(source: str) -> None:
    text = readme_section("CI") if source.endswith("#CI") else (ROOT / source).read_text()
    if source.endswith(".yml"):
        assert yaml.safe_load(text)["jobs"]
    commands = commands_in(text)
    flat = [" ".join(c) for c in commands]
    assert any("plan --detailed-exitcode" in c for c in flat), flat
    assert any(c.startswith("up ") and "--yes" in c for c in flat), flat
    [drill] = [c for c in commands if c[0] == "failover-test"]
    assert {"--max-rto", "--max-rpo", "--min-availability", "--junit"} <= set(drill)
    for argv in commands:  # every option is one the CLI knows (click refuses an unknown one before --help)
        result = CliRunner().invoke(main, [*argv, "--help"])
        assert result.exit_code == 0, f"multiregion {' '.join(argv)}: {result.output}"


def test_iam_policy_lets_the_credentials_assume_the_regions_roles_and_only_then() -> None:
    from multiregion import iam_policy

    role = "arn:aws:iam::123456789012:role/deploy-us"
    with_role = iam_policy.statements(parse_config(demo_config() | {"aws": {"us-east-1": {"role_arn": role}}}),
                                      "123456789012", "aws")
    [statement] = [s for s in with_role if s["Sid"] == "AssumedRoles"]
    assert statement["Action"] in ("sts:AssumeRole", ["sts:AssumeRole"]) and statement["Resource"] in (role, [role])
    plain = iam_policy.statements(parse_config(demo_config()), "123456789012", "aws")
    assert not [s for s in plain if s["Sid"] == "AssumedRoles"]
