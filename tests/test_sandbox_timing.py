"""The sandbox's table of AWS durations: a fast profile (the default) and an aws profile in AWS time."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from multiregion import durations
from multiregion.sandbox import timing
from multiregion.sandbox.server import Sandbox, SandboxOptions

# Every duration the realism work names; a missing one would leave a state without an AWS figure.
NAMED = {"table_active", "replica_active", "replica_deleted", "acm_validation", "domain_available",
         "route53_insync", "policy_instance_applied", "lambda_pending", "lambda_update", "iam_role_assumable",
         "health_check_first_verdict"}


def test_every_duration_is_named_and_says_where_its_figure_comes_from() -> None:
    assert set(timing.DURATIONS) >= NAMED
    for name, duration in timing.DURATIONS.items():
        kind = duration.source.split(":")[0]
        assert kind in ("AWS documentation", "published measurement", "estimate"), f"{name}: {duration.source!r}"
        assert duration.aws_seconds >= 0 and duration.fast_seconds >= 0


def test_aws_profile_is_aws_seconds_divided_by_the_time_scale() -> None:
    assert timing.sandbox_seconds("route53_insync", "aws", 10.0) == pytest.approx(6.0)
    assert timing.sandbox_seconds("replica_active", "aws", 60.0) == pytest.approx(3.0)
    # The fast profile ignores the time scale: its delays are already sandbox seconds.
    assert timing.sandbox_seconds("replica_active", "fast", 60.0) == timing.DURATIONS["replica_active"].fast_seconds


def test_sandbox_duration_follows_its_options() -> None:
    fast = Sandbox(SandboxOptions(replica_create_delay=0.2))
    assert fast.duration("replica_active") == 0.2  # an explicit option wins in the fast profile
    assert fast.duration("route53_insync") == 0.0
    aws = Sandbox(SandboxOptions(timing="aws", time_scale=20.0, replica_create_delay=0.2))
    assert aws.duration("replica_active") == pytest.approx(180.0 / 20.0)
    assert aws.duration("route53_insync") == pytest.approx(3.0)


def test_an_unknown_profile_is_refused_when_the_sandbox_is_made() -> None:
    with pytest.raises(ValueError, match="unknown timing profile 'slow'"):
        Sandbox(SandboxOptions(timing="slow"))


def test_the_readme_lists_every_duration_with_its_seconds_on_aws() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## The embedded sandbox\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): [cell.strip() for cell in line.split("|")[2:4]]
            for line in section.splitlines() if line.startswith("| `")}
    assert rows == {name: [d.what, f"{d.aws_seconds:g}"] for name, d in timing.DURATIONS.items()}


def test_the_sandbox_runs_on_the_table_the_plan_estimates_with() -> None:
    # One table: what `plan` estimates from (multiregion.durations) is what the aws profile waits.
    assert {name: (d.what, d.aws_seconds, d.source) for name, d in timing.DURATIONS.items()} == \
        {name: (d.what, d.seconds, d.source) for name, d in durations.DURATIONS.items()}


KEY = {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
       "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}
SCALE = 10.0


@pytest.fixture
def scaled(sandbox: Sandbox, strict: Sandbox, clock: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox as the benchmark runs it: the aws profile at time scale 10, strict, on a driven clock."""
    monkeypatch.setattr(sandbox.options, "timing", "aws")
    monkeypatch.setattr(sandbox.options, "time_scale", SCALE)
    return clock


def table_status(client: Any) -> str:
    return str(client.describe_table(TableName="t")["Table"]["TableStatus"])


def refusal(call: Any) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return str(err.value.response["Error"]["Code"])


def test_a_new_table_stays_creating_for_its_scaled_duration(aws: Any, scaled: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    scaled.advance(durations.seconds("table_active") / SCALE - 0.01)
    assert table_status(eu) == "CREATING"
    assert refusal(lambda: eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])) \
        == "ResourceInUseException"
    scaled.advance(0.01)
    assert table_status(eu) == "ACTIVE"


def test_a_second_table_update_is_refused_for_the_scaled_replica_creation(aws: Any, scaled: Any) -> None:
    eu = aws("dynamodb", "eu-west-1")
    eu.create_table(TableName="t", **KEY)
    scaled.advance(durations.seconds("table_active") / SCALE)
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "us-east-1"}}])
    replica = durations.seconds("replica_active") / SCALE
    scaled.advance(replica - 0.01)
    assert table_status(eu) == "UPDATING"
    assert refusal(lambda: eu.update_table(TableName="t", ReplicaUpdates=[
        {"Create": {"RegionName": "ap-southeast-2"}}])) == "ResourceInUseException"
    scaled.advance(0.01)
    assert table_status(eu) == "ACTIVE"
    eu.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "ap-southeast-2"}}])
