"""Stage `health-checks`: one tagged HTTPS check per region, found again by its tags, never duplicated.

These tests stand up only what the stage reads (a tagged REST API per region), so they stay fast; the full
stack with routing is in test_routing.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from multiregion.aws import ClientProvider
from multiregion.config import load_config
from multiregion.engine import TAG_REGION, TAG_STACK
from multiregion.executor import BuiltinContext
from multiregion.lookups.health_checks import TAG_RETIRED, CheckerVerdicts, health_of, reference_prefix
from multiregion.sandbox.server import Sandbox
from multiregion.stages.health_checks import caller_reference, create_health_check, wanted_config
from tests.conftest import Cli, refuse

REGIONS = ("eu-west-1", "us-east-1")
ONLY = ("--only", "health-checks")


# ---------------------------------------------------------------------------------------------- helpers


def make_apis(aws: Any) -> dict[str, str]:
    """A REST API of the stack in each region: all the stage reads of the `api` stage."""
    return {region: aws("apigateway", region).create_rest_api(
        name="items", tags={TAG_STACK: "items"}, endpointConfiguration={"types": ["REGIONAL"]})["id"]
        for region in REGIONS}


@pytest.fixture
def apis(aws: Any) -> dict[str, str]:
    return make_apis(aws)


def checks_with_tags(aws: Any) -> list[dict[str, Any]]:
    r53 = aws("route53")
    checks = r53.list_health_checks()["HealthChecks"]
    out = []
    for check in checks:
        tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check["Id"])
        out.append({**check, "Tags": {t["Key"]: t["Value"] for t in tags["ResourceTagSet"]["Tags"]}})
    return out


def stack_checks(aws: Any, retired: bool | None = False) -> dict[str, list[dict[str, Any]]]:
    by_region: dict[str, list[dict[str, Any]]] = {}
    for check in checks_with_tags(aws):
        if check["Tags"].get(TAG_STACK) != "items":
            continue
        if retired is not None and (check["Tags"].get(TAG_RETIRED) == "true") != retired:
            continue
        by_region.setdefault(check["Tags"][TAG_REGION], []).append(check)
    return by_region


def one_per_region(aws: Any) -> dict[str, dict[str, Any]]:
    by_region = stack_checks(aws, retired=None)
    assert sorted(by_region) == sorted(REGIONS), by_region
    assert all(len(checks) == 1 for checks in by_region.values()), by_region
    return {region: checks[0] for region, checks in by_region.items()}


@pytest.fixture
def fail_first_tagging(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Make the first tagging of a health check fail as a crash would: the check exists, its tags do not."""
    refused = refuse(monkeypatch, "route53", "ChangeTagsForResource", "ServiceUnavailable", "connection lost",
                     when=lambda params: params.get("ResourceType") == "healthcheck")
    yield refused


def health_changes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in doc["changes"] if c["stage"] == "health-checks"]


# ------------------------------------------------------------------------------------------ unit rules


def _obs(status: str, seconds: int) -> dict[str, Any]:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return {"Region": "us-east-1", "StatusReport": {"Status": status, "CheckedTime": t0 + timedelta(seconds=seconds)}}


def test_healthy_needs_more_than_18_percent_of_checkers() -> None:
    ok, bad = "Success: HTTP Status Code 200, OK", "Failure: HTTP Status Code 404, Not Found"
    # 1 of 8 is 12.5%: unhealthy; 2 of 8 is 25%: healthy.
    healthy, since = health_of([_obs(ok, 1)] + [_obs(bad, s) for s in range(2, 9)])
    assert healthy is False
    assert since == datetime(2024, 1, 1, 0, 0, 8, tzinfo=timezone.utc)  # the 7th failure tipped it
    healthy, since = health_of([_obs(ok, 5), _obs(ok, 3)] + [_obs(bad, s) for s in range(10, 16)])
    assert healthy is True
    assert since == datetime(2024, 1, 1, 0, 0, 5, tzinfo=timezone.utc)  # the second success tipped it
    # 1 of 3 is 33%: healthy.
    assert health_of([_obs(bad, 1), _obs(ok, 2), _obs(bad, 3)])[0] is True
    assert health_of([]) == (None, None)


OK, BAD = "Success: HTTP Status Code 200, OK", "Failure: HTTP Status Code 404, Not Found"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def poll(checkers: int, results: list[str], at: int) -> list[dict[str, Any]]:
    """GetHealthCheckStatus as Route 53 answers it: each checker's last result, with its own CheckedTime."""
    return [{"Region": "us-east-1", "IPAddress": f"15.177.0.{i}",
             "StatusReport": {"Status": results[i], "CheckedTime": T0 + timedelta(seconds=at * 10 + i)}}
            for i in range(checkers)]


def test_a_checker_changes_its_view_only_after_threshold_results_in_a_row() -> None:
    verdicts = CheckerVerdicts(threshold=3)
    assert verdicts.update(poll(4, [OK] * 4, 0)) is True
    # Every checker's last result is a failure: Route 53's raw reports say down, its verdict not yet.
    assert health_of(poll(4, [BAD] * 4, 1))[0] is False
    assert verdicts.update(poll(4, [BAD] * 4, 1)) is True
    assert verdicts.update(poll(4, [BAD] * 4, 2)) is True
    assert verdicts.update(poll(4, [BAD] * 4, 3)) is False  # the third failure in a row flips every checker
    # Back: a success in between starts the streak again.
    assert verdicts.update(poll(4, [OK] * 4, 4)) is False
    assert verdicts.update(poll(4, [BAD] * 4, 5)) is False
    assert verdicts.update(poll(4, [OK] * 4, 6)) is False
    assert verdicts.update(poll(4, [OK] * 4, 7)) is False
    assert verdicts.update(poll(4, [OK] * 4, 8)) is True


def test_the_same_result_seen_at_two_polls_counts_once_and_the_18_percent_rule_counts_checkers() -> None:
    verdicts = CheckerVerdicts(threshold=2)
    verdicts.update(poll(8, [OK] * 8, 0))
    failing = poll(8, [BAD] * 8, 1)
    assert verdicts.update(failing) is True and verdicts.update(failing) is True  # one result, polled twice
    # Two more failures from 7 checkers, one checker still passing: 1 of 8 (12.5%) is not more than 18%.
    assert verdicts.update(poll(8, [OK] + [BAD] * 7, 2)) is False
    # A second checker back (two results in a row): 2 of 8 (25%) is healthy again.
    assert verdicts.update(poll(8, [OK, OK] + [BAD] * 6, 3)) is False
    assert verdicts.update(poll(8, [OK, OK] + [BAD] * 6, 4)) is True
    assert CheckerVerdicts(2).update([]) is None


def test_caller_reference_fits_route53_limit() -> None:
    longest = caller_reference("s" * 32, "ap-southeast-2", 30, 99999, 999)
    assert len(longest) <= 64
    assert longest.startswith(reference_prefix("s" * 32, "ap-southeast-2"))


def test_a_retried_create_returns_the_same_check_and_a_deleted_reference_moves_on(
        write_config: Callable[..., Path], sandbox: Sandbox, aws: Any) -> None:
    config = load_config(write_config())
    builtin_ctx = BuiltinContext(ClientProvider(sandbox.url), lambda s: None, lambda w: {}, print)
    wanted = wanted_config(config, "eu-west-1", "abc123")

    def create(settings: dict[str, Any]) -> dict[str, Any]:
        check_id = create_health_check(builtin_ctx, "us-east-1", "items", "eu-west-1", settings)["check_id"]
        return dict(aws("route53").get_health_check(HealthCheckId=check_id)["HealthCheck"])

    first = create(wanted)
    assert create(wanted)["Id"] == first["Id"]  # same reference, same settings
    assert first["CallerReference"].endswith(":1")
    aws("route53").delete_health_check(HealthCheckId=first["Id"])
    again = create(wanted)  # reference 1 belonged to a deleted check
    assert again["Id"] != first["Id"] and again["CallerReference"].endswith(":2")
    other = create({**wanted, "FailureThreshold": 5})  # 1 deleted, 2 taken with other settings
    assert other["CallerReference"].endswith(":3")
    assert len(aws("route53").list_health_checks()["HealthChecks"]) == 2


# ---------------------------------------------------------------------------------------------- stage


def test_up_creates_one_tagged_https_check_per_region(cli: Cli, aws: Any, apis: dict[str, str]) -> None:
    code, doc = cli.json("up", *ONLY)
    assert code == 0, doc
    checks = one_per_region(aws)
    for region, check in checks.items():
        config = check["HealthCheckConfig"]
        assert config["Type"] == "HTTPS"
        assert config["FullyQualifiedDomainName"] == f"{apis[region]}.execute-api.{region}.amazonaws.com"
        assert config["Port"] == 443 and config["EnableSNI"] is True
        assert config["ResourcePath"] == "/prod/health"
        assert config["RequestInterval"] == 10 and config["FailureThreshold"] == 2
        assert check["Tags"] == {TAG_STACK: "items", TAG_REGION: region, "Name": f"items-{region}"}
        assert check["CallerReference"].startswith(reference_prefix("items", region))
    status = doc["outputs"]["regions"]["eu-west-1"]["health-checks"]
    assert status["check_id"] == checks["eu-west-1"]["Id"]


def test_second_up_plans_and_writes_nothing(cli: Cli, apis: dict[str, str]) -> None:
    assert cli.json("up", *ONLY)[0] == 0
    code, plan = cli.json("plan", *ONLY)
    assert code == 0 and plan["changes"] == []
    code, again = cli.json("up", *ONLY)
    assert code == 0 and again["changes"] == [] and again["api_calls"]["writes"] == {}


def test_plan_shows_the_monthly_cost(write_config: Callable[..., Path], aws: Any, apis: dict[str, str]) -> None:
    code, plan = Cli(write_config()).json("plan", *ONLY)
    assert code == 0
    # basic check on an AWS endpoint $0.50, HTTPS $1.00, the 10 s interval $1.00
    assert [(c["region"], c["action"], c["cost"]) for c in health_changes(plan)] == [
        ("eu-west-1", "create", "$2.50/month"), ("us-east-1", "create", "$2.50/month")]
    code, plan = Cli(write_config(health_check__interval=30)).json("plan", *ONLY)
    assert {c["cost"] for c in health_changes(plan)} == {"$1.50/month"}
    assert aws("route53").list_health_checks()["HealthChecks"] == []


def test_crash_before_tagging_then_up_adopts_the_check(cli: Cli, aws: Any, apis: dict[str, str],
                                                        fail_first_tagging: list[dict[str, Any]]) -> None:
    code, doc = cli.json("up", *ONLY)
    assert code == 1 and doc["errors"][0]["stage"] == "health-checks"
    untagged = fail_first_tagging[0]["ResourceId"]
    assert len(aws("route53").list_health_checks()["HealthChecks"]) == 2
    code, doc = cli.json("up", *ONLY)
    assert code == 0, doc
    checks = one_per_region(aws)
    assert untagged in {c["Id"] for c in checks.values()}
    assert len(aws("route53").list_health_checks()["HealthChecks"]) == 2
    assert [c["action"] for c in health_changes(doc)] == ["update"]  # adopted (tagged), not created again


def test_mutable_settings_change_in_place(write_config: Callable[..., Path], aws: Any,
                                          apis: dict[str, str]) -> None:
    assert Cli(write_config()).json("up", *ONLY)[0] == 0
    before = one_per_region(aws)
    code, doc = Cli(write_config(health_check__failure_threshold=3, api__stage="live")).json("up", *ONLY)
    assert code == 0, doc
    assert {c["action"] for c in health_changes(doc)} == {"update"}
    assert "FailureThreshold 2 -> 3" in health_changes(doc)[0]["reason"]
    after = one_per_region(aws)
    for region in REGIONS:
        assert after[region]["Id"] == before[region]["Id"]
        assert after[region]["HealthCheckConfig"]["FailureThreshold"] == 3
        assert after[region]["HealthCheckConfig"]["ResourcePath"] == "/live/health"


def test_changed_interval_creates_a_replacement_and_retires_the_old(write_config: Callable[..., Path], aws: Any,
                                                                    apis: dict[str, str]) -> None:
    assert Cli(write_config()).json("up", *ONLY)[0] == 0
    old = one_per_region(aws)
    code, doc = Cli(write_config(health_check__interval=30)).json("up", *ONLY)
    assert code == 0, doc
    assert {(c["action"], c["cost"]) for c in health_changes(doc)} == {("replace", "$1.50/month")}
    active, retired = stack_checks(aws), stack_checks(aws, retired=True)
    for region in REGIONS:
        assert [c["HealthCheckConfig"]["RequestInterval"] for c in active[region]] == [30]
        assert [c["Id"] for c in retired[region]] == [old[region]["Id"]]
    # Without the routing stage nothing deletes the retired checks, and nothing else is planned.
    assert Cli(write_config(health_check__interval=30)).json("plan", *ONLY)[1]["changes"] == []


def test_down_then_up_uses_new_caller_references(cli: Cli, aws: Any, apis: dict[str, str]) -> None:
    assert cli.json("up", *ONLY)[0] == 0
    first = {r: c["CallerReference"] for r, c in one_per_region(aws).items()}
    code, doc = cli.json("down", "--yes")
    assert code == 0, doc
    assert aws("route53").list_health_checks()["HealthChecks"] == []
    make_apis(aws)  # `down` removed the APIs too
    code, doc = cli.json("up", *ONLY)
    assert code == 0, doc
    second = {r: c["CallerReference"] for r, c in one_per_region(aws).items()}
    for region in REGIONS:
        # A deleted check's reference cannot be used again: the next generation was taken.
        assert second[region] != first[region]
        assert second[region].startswith(reference_prefix("items", region))


def test_checks_that_are_not_ours_are_left_alone(cli: Cli, aws: Any, apis: dict[str, str]) -> None:
    r53 = aws("route53")
    config = {"Type": "HTTPS", "FullyQualifiedDomainName": "example.org", "Port": 443, "ResourcePath": "/",
              "RequestInterval": 30, "FailureThreshold": 3}
    other = r53.create_health_check(CallerReference="other-stack", HealthCheckConfig=config)["HealthCheck"]["Id"]
    r53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=other, AddTags=[
        {"Key": TAG_STACK, "Value": "other"}, {"Key": TAG_REGION, "Value": "eu-west-1"}])
    # Carries our reference prefix but other settings: not adopted, not deleted.
    lookalike = r53.create_health_check(CallerReference=caller_reference("items", "eu-west-1", 30, 1, 99),
                                        HealthCheckConfig=config)["HealthCheck"]["Id"]
    assert cli.json("up", *ONLY)[0] == 0
    assert all(check["Id"] not in (other, lookalike) for check in one_per_region(aws).values())
    assert cli.json("down", "--yes")[0] == 0
    assert {c["Id"] for c in r53.list_health_checks()["HealthChecks"]} == {other, lookalike}
