"""Route 53 health checks in the sandbox: real probes, checker regions, thresholds, the 18% rule, and
CreateHealthCheck's CallerReference semantics. Fixtures here are shared by the other test_sandbox_route53_*."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from multiregion.sandbox.route53_health import (
    Checker,
    CheckSpec,
    HealthChecks,
    Target,
    endpoint_healthy,
    new_checkers,
    probe,
)
from multiregion.sandbox.server import Sandbox
from tests.conftest import wait_for

CHECKERS = ["us-east-1", "eu-west-1", "us-west-2"]
OBSERVERS = 2 * len(CHECKERS)  # two health checkers per checker region
TIME_SCALE = 30.0  # in these tests a 10 s RequestInterval probes every third of a second
INTERVAL = 10 / TIME_SCALE


@pytest.fixture
def fast(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox with time compressed further, so that probing tests take a few intervals of 1/3 s."""
    monkeypatch.setattr(sandbox.options, "time_scale", TIME_SCALE)
    return sandbox


class LocalTarget:
    """A tiny HTTP endpoint on 127.0.0.1 whose answer a test switches."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"all good"
        self.delay = 0.0
        self.port = 0
        self.hosts: list[str] = []


@pytest.fixture
def target() -> Iterator[LocalTarget]:
    yield from _serve(LocalTarget())


@pytest.fixture
def second_target() -> Iterator[LocalTarget]:
    yield from _serve(LocalTarget())


def _serve(state: LocalTarget) -> Iterator[LocalTarget]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.hosts.append(self.headers.get("Host", ""))
            time.sleep(state.delay)
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            # The slow-target tests make the prober give up and hang up first.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def local_check(port: int, **overrides: Any) -> dict[str, Any]:
    """A fast check (10 s interval, threshold 1) on a local target."""
    return {"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": port, "ResourcePath": "/health",
            "RequestInterval": 10, "FailureThreshold": 1, "Regions": CHECKERS, **overrides}


def create_check(aws: Any, reference: str, config: dict[str, Any]) -> str:
    return aws("route53").create_health_check(CallerReference=reference, HealthCheckConfig=config)["HealthCheck"]["Id"]


def health(sandbox: Sandbox) -> HealthChecks:
    return sandbox.extension(HealthChecks)


def wait_health(sandbox: Sandbox, check_id: str, healthy: bool, timeout: float = 5.0) -> float:
    """Seconds until the check reports `healthy`."""
    started = time.monotonic()
    wait_for(lambda: health(sandbox).health(check_id)[0] is healthy, timeout)
    return time.monotonic() - started


def set_faults(sandbox: Sandbox, **faults: Any) -> None:
    req = urllib.request.Request(f"{sandbox.url}/_sandbox/faults", data=json.dumps(faults).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def observations(aws: Any, check_id: str) -> list[dict[str, Any]]:
    return aws("route53").get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]


def statuses(aws: Any, check_id: str) -> dict[str, str]:
    """Each checker's last result, by checker address."""
    return {o["IPAddress"]: o["StatusReport"]["Status"] for o in observations(aws, check_id)}


def error_of(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------------------------------------- the rules


def test_more_than_18_percent_of_checkers_make_an_endpoint_healthy() -> None:
    assert not endpoint_healthy([True] + [False] * 7)  # 12.5%
    assert endpoint_healthy([True, True] + [False] * 6)  # 25%
    assert not endpoint_healthy([False, False, False])
    assert endpoint_healthy([True, False, False])  # 33%
    assert endpoint_healthy([])


def test_a_checker_flips_after_threshold_consecutive_results() -> None:
    checker = Checker("us-east-1", next_due=0.0)
    for _ in range(2):
        checker.record(False, 3)
    assert checker.healthy
    checker.record(True, 3)  # a success breaks the streak
    for _ in range(2):
        checker.record(False, 3)
    assert checker.healthy
    checker.record(False, 3)
    assert not checker.healthy
    checker.record(True, 3)
    checker.record(True, 3)
    assert not checker.healthy
    checker.record(True, 3)
    assert checker.healthy


# ---------------------------------------------------------------------------------------------- probing


def test_probes_follow_the_target(aws: Any, fast: Sandbox, target: LocalTarget) -> None:
    sandbox = fast
    check_id = create_check(aws, "follow", local_check(target.port))
    assert health(sandbox).health(check_id)[0]  # a new check starts healthy
    wait_for(lambda: len(statuses(aws, check_id)) == OBSERVERS)
    assert set(statuses(aws, check_id).values()) == {"Success: HTTP Status Code 200, OK"}
    assert sorted(o["Region"] for o in observations(aws, check_id)) == sorted(CHECKERS * 2)
    assert all(o["StatusReport"]["CheckedTime"].year >= 2024 for o in observations(aws, check_id))

    target.status = 404
    # Within interval x threshold + one interval, time-scaled, plus slack for the prober's tick and a
    # loaded CI machine; an unscaled interval (10 s) or a threshold off by one would still fail this.
    bound = (10 * 1 + 10) / TIME_SCALE + 0.8
    assert wait_health(sandbox, check_id, False) < bound
    healthy, since = health(sandbox).health(check_id)
    assert not healthy and time.time() - since < bound
    # Unhealthy once at most 18% of the checkers pass: the last of them reports the 404 within an interval.
    wait_for(lambda: set(statuses(aws, check_id).values()) == {"Failure: HTTP Status Code 404, Not Found"},
             timeout=INTERVAL + 0.5)

    target.status = 200
    assert wait_health(sandbox, check_id, True) < bound
    assert health(sandbox).health(check_id)[1] > since


def test_checkers_are_staggered_over_the_interval() -> None:
    # Each checker starts at its own offset within the interval, not all at once (the schedule itself: the
    # probe times a loaded machine records can bunch up, the schedule cannot).
    spec = CheckSpec(id="stagger", type="HTTP", ip="127.0.0.1", interval=30, regions=tuple(CHECKERS))
    starts = sorted(c.next_due for c in new_checkers(spec, 100.0).values())
    assert len(starts) == OBSERVERS and starts[0] == 100.0
    gaps = [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == [round(30 / OBSERVERS, 6)] * (OBSERVERS - 1)


def test_checkers_keep_their_interval(aws: Any, fast: Sandbox, target: LocalTarget) -> None:
    check_id = create_check(aws, "stagger", local_check(target.port))
    wait_for(lambda: len(statuses(aws, check_id)) == OBSERVERS)
    first, started = len(target.hosts), time.monotonic()
    # Three more probes per checker need at least two intervals each, however fast the machine: a checker
    # that probed more often than its interval would get there sooner. However slow the machine, no checker
    # probes more than once per interval (plus the one in flight when counting began).
    wait_for(lambda: len(target.hosts) - first >= 3 * OBSERVERS, timeout=20 * INTERVAL)
    elapsed = time.monotonic() - started
    assert elapsed >= 2 * INTERVAL * 0.95
    assert len(target.hosts) - first <= OBSERVERS * (elapsed / INTERVAL + 2)
    assert target.hosts[-1] == f"127.0.0.1:{target.port}"  # no FQDN: the IP address (and port) is the Host


# The two ROUTE53_HEALTHCHECKS ranges of each checker region in AWS's ip-ranges.json.
PUBLISHED_RANGES = {
    "us-east-1": ("107.23.255.0/26", "54.243.31.192/26"), "us-west-1": ("54.183.255.128/26", "54.241.32.64/26"),
    "us-west-2": ("54.244.52.192/26", "54.245.168.0/26"), "eu-west-1": ("54.228.16.0/26", "176.34.159.192/26"),
    "ap-southeast-1": ("54.251.31.128/26", "54.255.254.192/26"),
    "ap-southeast-2": ("54.252.79.128/26", "54.252.254.192/26"),
    "ap-northeast-1": ("54.248.220.0/26", "54.250.253.192/26"), "sa-east-1": ("177.71.207.128/26", "54.232.40.64/26"),
}


def test_without_regions_two_checkers_in_every_checker_region_report(aws: Any, fast: Sandbox,
                                                                     target: LocalTarget) -> None:
    import ipaddress

    config = {k: v for k, v in local_check(target.port).items() if k != "Regions"}
    check_id = create_check(aws, "default-regions", config)
    wait_for(lambda: len(observations(aws, check_id)) == 16)
    seen = observations(aws, check_id)
    assert sorted(o["Region"] for o in seen) == sorted(list(PUBLISHED_RANGES) * 2)
    assert len({o["IPAddress"] for o in seen}) == 16  # one observation per checker
    for o in seen:
        ranges = [ipaddress.ip_network(r) for r in PUBLISHED_RANGES[o["Region"]]]
        assert any(ipaddress.ip_address(o["IPAddress"]) in r for r in ranges), o
        assert o["StatusReport"]["Status"] == "Success: HTTP Status Code 200, OK"


def test_observations_are_raw_results_and_the_verdict_waits_for_the_threshold(aws: Any, fast: Sandbox,
                                                                                target: LocalTarget) -> None:
    sandbox = fast
    check_id = create_check(aws, "threshold", local_check(target.port, FailureThreshold=3))
    wait_for(lambda: len(statuses(aws, check_id)) == OBSERVERS)
    target.status = 500
    # Every checker's last probe failed: with a threshold of 3, no checker has failed three times in a row yet
    # (they are staggered within one interval), so Route 53's verdict is still healthy.
    # Read in this order, the verdict comes after every checker's failure was seen: a moment when all have
    # failed once and Route 53 still says healthy. Waited for as one condition: the window lasts about one
    # interval, and a single look right after the statuses could miss it on a loaded machine.
    failed = {"Failure: HTTP Status Code 500, Internal Server Error"}
    wait_for(lambda: set(statuses(aws, check_id).values()) == failed and health(sandbox).health(check_id)[0])
    wait_health(sandbox, check_id, False)


def test_a_new_check_waits_for_its_first_verdict(aws: Any, fast: Sandbox, target: LocalTarget,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = fast
    monkeypatch.setattr(sandbox.options, "timing", "aws")
    before = time.monotonic()
    check_id = create_check(aws, "first-verdict", local_check(target.port))
    with health(sandbox)._lock:
        starts = sorted(c.next_due for c in health(sandbox).states[check_id].checkers.values())
    first_verdict = 30.0 / TIME_SCALE  # health_check_first_verdict: 30 AWS seconds
    assert starts[0] - before >= first_verdict - 0.01
    assert starts[-1] - starts[0] < INTERVAL  # then staggered within one interval
    assert health(sandbox).health(check_id)[0] and observations(aws, check_id) == []


def test_string_match_looks_at_the_body(aws: Any, fast: Sandbox, target: LocalTarget) -> None:
    sandbox = fast
    check_id = create_check(aws, "match", local_check(target.port, Type="HTTP_STR_MATCH", SearchString="good"))
    wait_for(lambda: len(statuses(aws, check_id)) == OBSERVERS)
    assert health(sandbox).health(check_id)[0]
    target.body = b"all bad"
    wait_health(sandbox, check_id, False)
    # Unhealthy once at most 18% of the checkers pass: the last one may still be probing the old body.
    wait_for(lambda: all("search string" in s for s in statuses(aws, check_id).values()))


def test_inverted_and_disabled(aws: Any, fast: Sandbox, target: LocalTarget) -> None:
    sandbox = fast
    inverted = create_check(aws, "inverted", local_check(target.port, Inverted=True))
    disabled = create_check(aws, "disabled", local_check(target.port, Disabled=True))
    wait_health(sandbox, inverted, False)
    target.status = 500
    wait_health(sandbox, inverted, True)
    time.sleep(2 * INTERVAL)
    assert health(sandbox).health(disabled)[0]
    assert statuses(aws, disabled) == {}  # a disabled check is not probed at all


def test_a_frozen_check_keeps_its_status(aws: Any, fast: Sandbox, target: LocalTarget) -> None:
    sandbox = fast
    check_id = create_check(aws, "frozen", local_check(target.port))
    wait_for(lambda: len(statuses(aws, check_id)) == OBSERVERS)
    set_faults(sandbox, health_check_frozen=[check_id])
    target.status = 503
    time.sleep(4 * INTERVAL)
    assert health(sandbox).health(check_id)[0]
    set_faults(sandbox, health_check_frozen=[])
    wait_health(sandbox, check_id, False)


def test_a_domain_name_check_is_served_by_the_sandbox(aws: Any, fast: Sandbox) -> None:
    sandbox = fast
    host = "nosuchapi.execute-api.eu-west-1.amazonaws.com"
    check_id = create_check(aws, "fqdn", {"Type": "HTTPS", "FullyQualifiedDomainName": host, "Port": 443,
                                          "ResourcePath": "/prod/health", "RequestInterval": 10,
                                          "FailureThreshold": 1, "Regions": CHECKERS})
    wait_health(sandbox, check_id, False)
    # The sandbox's API data plane answered for the name: API Gateway's 403 for an unknown API.
    assert set(statuses(aws, check_id).values()) == {"Failure: HTTP Status Code 403, Forbidden"}


def test_a_slow_answer_fails_after_two_seconds(target: LocalTarget) -> None:
    spec = CheckSpec(id="slow", type="HTTP", ip="127.0.0.1", port=target.port, path="/")
    target.delay = 2.5
    started = time.monotonic()
    observation = probe(spec, Target("127.0.0.1", target.port, "127.0.0.1"))
    assert not observation.ok and "timed out" in observation.status
    assert time.monotonic() - started < 2.4
    target.delay = 0.0
    assert probe(spec, Target("127.0.0.1", target.port, "127.0.0.1")).ok


def test_a_closed_port_fails() -> None:
    spec = CheckSpec(id="closed", type="TCP", ip="127.0.0.1", port=9)
    observation = probe(spec, Target("127.0.0.1", 9, "127.0.0.1"))
    assert not observation.ok and observation.status.startswith("Failure: Connection refused")


# ---------------------------------------------------------------------------------------------- the API


def test_same_reference_and_settings_returns_the_existing_check(aws: Any, target: LocalTarget) -> None:
    r53 = aws("route53")
    first = r53.create_health_check(CallerReference="ref", HealthCheckConfig=local_check(target.port))
    again = r53.create_health_check(CallerReference="ref", HealthCheckConfig=local_check(target.port))
    assert again["HealthCheck"]["Id"] == first["HealthCheck"]["Id"]
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert again["Location"].endswith("/healthcheck/" + first["HealthCheck"]["Id"])
    assert len(r53.list_health_checks()["HealthChecks"]) == 1


def test_same_reference_with_other_settings_is_refused(aws: Any, target: LocalTarget) -> None:
    r53 = aws("route53")
    r53.create_health_check(CallerReference="ref", HealthCheckConfig=local_check(target.port))
    code, status = error_of(lambda: r53.create_health_check(
        CallerReference="ref", HealthCheckConfig=local_check(target.port, FailureThreshold=2)))
    assert (code, status) == ("HealthCheckAlreadyExists", 409)


def test_the_reference_of_a_deleted_check_is_refused(aws: Any, target: LocalTarget) -> None:
    r53 = aws("route53")
    check_id = create_check(aws, "ref", local_check(target.port))
    r53.delete_health_check(HealthCheckId=check_id)
    code, status = error_of(lambda: r53.create_health_check(CallerReference="ref",
                                                            HealthCheckConfig=local_check(target.port)))
    assert (code, status) == ("HealthCheckAlreadyExists", 409)
    assert error_of(lambda: r53.delete_health_check(HealthCheckId=check_id)) == ("NoSuchHealthCheck", 404)


def test_https_checks_default_to_port_443(aws: Any) -> None:
    r53 = aws("route53")
    config = {"Type": "HTTPS", "FullyQualifiedDomainName": "x.execute-api.us-east-1.amazonaws.com",
              "ResourcePath": "/prod/health", "Regions": CHECKERS}
    created = r53.create_health_check(CallerReference="https", HealthCheckConfig=config)["HealthCheck"]
    assert created["HealthCheckConfig"]["Port"] == 443
    assert r53.get_health_check(HealthCheckId=created["Id"])["HealthCheck"]["HealthCheckConfig"]["Port"] == 443
    # Passing the default explicitly is the same setting.
    again = r53.create_health_check(CallerReference="https", HealthCheckConfig={**config, "Port": 443})
    assert again["HealthCheck"]["Id"] == created["Id"]


def test_list_health_checks_pages(aws: Any, target: LocalTarget) -> None:
    r53 = aws("route53")
    ids = [create_check(aws, f"page{i}", local_check(target.port)) for i in range(3)]
    first = r53.list_health_checks(MaxItems="2")
    assert [c["Id"] for c in first["HealthChecks"]] == ids[:2]
    assert first["IsTruncated"] and first["NextMarker"] == ids[2]
    rest = r53.list_health_checks(MaxItems="2", Marker=first["NextMarker"])
    assert [c["Id"] for c in rest["HealthChecks"]] == ids[2:] and not rest["IsTruncated"]
    assert "NextMarker" not in rest


def test_health_check_pages_resume_past_a_deleted_check(aws: Any, target: LocalTarget) -> None:
    r53 = aws("route53")
    ids = [create_check(aws, f"page{i}", local_check(target.port)) for i in range(3)]
    first = r53.list_health_checks(MaxItems="1")
    assert first["NextMarker"] == ids[1]
    deleted = r53.delete_health_check(HealthCheckId=ids[1])  # the check the marker names, gone between pages
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 200
    rest = r53.list_health_checks(MaxItems="1", Marker=first["NextMarker"])
    assert [c["Id"] for c in rest["HealthChecks"]] == [ids[2]] and not rest["IsTruncated"]
    # A marker that never was a check is refused, not read as "from the start".
    assert error_of(lambda: r53.list_health_checks(Marker="no-such-check")) == ("InvalidInput", 400)


def test_invalid_settings_are_refused(aws: Any, target: LocalTarget) -> None:
    r53 = aws("route53")
    for bad in ({"Regions": ["us-east-1", "eu-west-1", "eu-west-1"]}, {"Regions": ["us-east-1", "eu-west-1", "mars-1"]},
                {"RequestInterval": 20}, {"FailureThreshold": 11}):
        code, _ = error_of(lambda bad=bad: r53.create_health_check(  # type: ignore[misc]
            CallerReference=json.dumps(bad), HealthCheckConfig=local_check(target.port, **bad)))
        assert code == "InvalidInput", bad


def test_update_keeps_what_it_does_not_name_and_probes_the_new_settings(aws: Any, fast: Sandbox,
                                                                        target: LocalTarget,
                                                                        second_target: LocalTarget) -> None:
    r53 = aws("route53")
    check_id = create_check(aws, "update", local_check(target.port))
    updated = r53.update_health_check(HealthCheckId=check_id, HealthCheckVersion=1, Port=second_target.port,
                                      FailureThreshold=2)["HealthCheck"]
    assert updated["HealthCheckVersion"] == 2
    assert updated["HealthCheckConfig"]["Regions"] == CHECKERS  # moto alone would have cleared them
    assert (updated["HealthCheckConfig"]["Port"], updated["HealthCheckConfig"]["FailureThreshold"]) == \
        (second_target.port, 2)
    assert error_of(lambda: r53.update_health_check(HealthCheckId=check_id, HealthCheckVersion=1, Port=80)) == \
        ("HealthCheckVersionMismatch", 409)
    second_target.status = 404
    wait_health(fast, check_id, False)  # the prober follows the new port
    assert second_target.hosts and target.status == 200
    reset = r53.update_health_check(HealthCheckId=check_id, ResetElements=["Regions"])["HealthCheck"]
    assert "Regions" not in reset["HealthCheckConfig"] and reset["HealthCheckVersion"] == 3
    assert error_of(lambda: r53.update_health_check(HealthCheckId="nope", Port=80)) == ("NoSuchHealthCheck", 404)


def test_create_hosted_zone_refuses_a_caller_reference_used_before(aws: Any) -> None:
    r53 = aws("route53")

    def create_again() -> str:
        with pytest.raises(ClientError) as err:
            r53.create_hosted_zone(Name="ref.example.com", CallerReference="once")
        return str(err.value.response["Error"]["Code"])

    zone = r53.create_hosted_zone(Name="ref.example.com", CallerReference="once")["HostedZone"]
    assert create_again() == "HostedZoneAlreadyExists"  # while the zone exists
    assert len(r53.list_hosted_zones()["HostedZones"]) == 1
    r53.delete_hosted_zone(Id=zone["Id"])
    assert create_again() == "HostedZoneAlreadyExists"  # and after it was deleted
    assert r53.list_hosted_zones()["HostedZones"] == []
