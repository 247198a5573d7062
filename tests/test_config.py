"""Configuration: the demo loads, defaults apply, and every bad config exits 2 with one clear message and
no AWS call."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from multiregion.cli import main
from multiregion.config import Config, ConfigError, load_config, parse_config
from tests.conftest import DEMO_CONFIG, demo_config


def test_demo_config_loads_into_frozen_objects() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.regions == ("eu-west-1", "us-east-1")
    assert config.primary == "eu-west-1"
    assert config.endpoint == "sandbox"
    with pytest.raises(AttributeError):
        config.service = "other"  # type: ignore[misc]


def test_defaults() -> None:
    config = parse_config({"service": "shop", "regions": ["us-east-1"],
                           "domain": {"name": "api.shop.example.org", "hosted_zone": "shop.example.org"}})
    assert isinstance(config, Config)
    assert config.endpoint == "aws"
    assert config.table.name == "shop" and config.table.hash_key == "id"
    assert config.api.stage == "prod"
    assert (config.health_check.interval, config.health_check.failure_threshold) == (30, 3)
    assert (config.routing.mode, config.routing.ttl) == ("traffic-policy", 60)
    assert config.domain.create_zone is False


def with_change(path: str, value: Any) -> dict[str, Any]:
    cfg = demo_config()
    node = cfg
    *parents, leaf = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return cfg


_DELETE = object()

BAD = [
    # (change, YAML path in the message, words of the reason)
    (("colour", "blue"), "colour", "unknown key"),
    (("table.sort_key", "ts"), "table.sort_key", "unknown key"),
    (("regions", ["eu-west-1", "mars-north-1"]), "regions[1]", "unknown region"),
    (("regions", ["eu-west-1", "us-east-1", "eu-west-1"]), "regions[2]", "listed twice"),
    (("regions", []), "regions", "non-empty list"),
    (("domain.name", "api..example.com"), "domain.name", "not a valid DNS name"),
    (("domain.name", "api.other.org"), "domain.name", "outside the hosted zone"),
    (("health_check.interval", 15), "health_check.interval", "not a Route 53 request interval"),
    (("health_check.failure_threshold", 0), "health_check.failure_threshold", "out of range"),
    (("health_check.failure_threshold", 11), "health_check.failure_threshold", "out of range"),
    (("routing.mode", "geo"), "routing.mode", "unknown routing mode"),
    (("endpoint", "ftp://x"), "endpoint", "is not an endpoint"),
    # Found by issue 17's sweep: each passed validation, then failed after API calls.
    (("endpoint", "http://127.0.0.1:99999"), "endpoint", "no valid port"),
    (("endpoint", "http://127.0.0.1:abc"), "endpoint", "no valid port"),
    (("table.hash_key", "k" * 300), "table.hash_key", "is 300 bytes long, more than 255"),
    (("service", _DELETE), "service", "is required"),
    (("table.consistency", "strong"), "table.consistency", "exactly three regions"),  # the demo has two
    (("table.consistency", "linearizable"), "table.consistency", "unknown consistency"),
    (("table.witness", "eu-west-3"), "table.witness", "strongly consistent table only"),
]


@pytest.mark.parametrize("change,path,reason", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_config_is_rejected_with_path_reason_and_hint(change: tuple[str, Any], path: str,
                                                           reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(with_change(*change))
    assert err.value.path == path
    assert reason in err.value.reason


class CountingServer:
    """A TCP listener on 127.0.0.1 that counts connections: proof that nothing was called."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


@pytest.mark.parametrize("change,path,reason", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
@pytest.mark.parametrize("command", [["up"], ["plan"], ["status"], ["down", "--yes"], ["tables"]])
def test_cli_exits_2_with_message_and_no_aws_call(change: tuple[str, Any], path: str, reason: str,
                                                  command: list[str], tmp_path: Path,
                                                  listener: CountingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = with_change(*change)
    if change[0] != "endpoint":
        cfg["endpoint"] = listener.url
    # A config whose endpoint is itself the problem would have sent its calls where botocore resolves them.
    monkeypatch.setenv("AWS_ENDPOINT_URL", listener.url)
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(main, ["--config", str(file), *command])
    assert result.exit_code == 2, result.output
    assert f"{path}: " in result.stderr and reason in result.stderr
    assert "hint:" in result.stderr or reason in ("unknown key",)
    assert "Traceback" not in result.output and result.stderr.count("config error") == 1
    assert listener.connections == 0


def test_hosted_zone_by_id() -> None:
    for zone in ("Z1D633PJN98FT9", "/hostedzone/Z1D633PJN98FT9", "SPI3QVG8KMY2LBSJWQVTX5"):
        config = parse_config(with_change("domain.hosted_zone", zone) | {"domain": {
            "name": "api.example.com", "hosted_zone": zone}})
        assert config.domain.hosted_zone == zone
    with pytest.raises(ConfigError) as err:
        parse_config({**demo_config(), "domain": {"name": "api.example.com", "hosted_zone": "Z1D633PJN98FT9",
                                                  "create_zone": True}})
    assert err.value.path == "domain.create_zone"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "elsewhere.yaml"
    file.write_text(yaml.safe_dump(with_change("routing.mode", "geo")))
    monkeypatch.setenv("MULTIREGION_CONFIG", str(file))
    result = CliRunner().invoke(main, ["plan"])
    assert result.exit_code == 2
    assert str(file) in result.stderr and "routing.mode" in result.stderr


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), "plan"])
    assert result.exit_code == 2 and "no configuration file" in result.stderr
    bad = tmp_path / "broken.yaml"
    bad.write_text("service: [unclosed\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "plan"])
    assert result.exit_code == 2 and "not valid YAML" in result.stderr


def test_unknown_cli_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["up", "--only", "nonsense"])
    assert result.exit_code == 2
