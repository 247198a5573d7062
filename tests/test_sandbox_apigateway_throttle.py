"""API Gateway's control-plane throttling in the sandbox (under strict): the documented per-account rates."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from multiregion.sandbox.apigateway_throttle import ControlPlaneThrottle
from multiregion.sandbox.server import Sandbox
from tests.conftest import DrivenClock

REGIONAL = {"types": ["REGIONAL"]}


@pytest.fixture
def apigw(sandbox: Sandbox) -> Any:
    """API Gateway clients that do not retry, so a throttle reaches the test."""

    def client(region: str = "eu-west-1") -> Any:
        return boto3.client("apigateway", region_name=region, endpoint_url=sandbox.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))

    return client


def throttled(call: Any) -> str:
    """The Retry-After of a call that must be throttled."""
    with pytest.raises(ClientError) as err:
        call()
    response = err.value.response
    assert response["Error"]["Code"] == "TooManyRequestsException"
    assert response["Error"]["Message"] == "Too Many Requests"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    return response["ResponseMetadata"]["HTTPHeaders"]["retry-after"]


def deployable_api(client: Any) -> str:
    api_id = client.create_rest_api(name="throttled", endpointConfiguration=REGIONAL)["id"]
    root = client.get_resources(restApiId=api_id)["items"][0]["id"]
    client.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    client.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    return api_id


def test_create_deployment_is_one_every_five_seconds_per_region(apigw: Any, strict: Sandbox, clock: DrivenClock,
                                                                aws_timing: Sandbox) -> None:
    eu, us = apigw("eu-west-1"), apigw("us-east-1")
    eu_api, us_api = deployable_api(eu), deployable_api(us)
    eu.create_deployment(restApiId=eu_api, stageName="prod")
    assert throttled(lambda: eu.create_deployment(restApiId=eu_api, stageName="prod")) == "5"
    us.create_deployment(restApiId=us_api, stageName="prod")  # another region has its own quota
    clock.advance(4.0)
    assert throttled(lambda: eu.create_deployment(restApiId=eu_api, stageName="prod")) == "1"
    clock.advance(1.0)
    eu.create_deployment(restApiId=eu_api, stageName="prod")
    assert strict.extension(ControlPlaneThrottle).throttled == 2


def test_regional_and_edge_apis_have_their_own_create_quota(apigw: Any, strict: Sandbox, clock: DrivenClock,
                                                            aws_timing: Sandbox) -> None:
    eu = apigw()
    eu.create_rest_api(name="a", endpointConfiguration=REGIONAL)
    assert throttled(lambda: eu.create_rest_api(name="b", endpointConfiguration=REGIONAL)) == "3"
    eu.create_rest_api(name="edge")  # no endpoint configuration: edge-optimized, 1 every 30 seconds
    clock.advance(3.0)
    eu.create_rest_api(name="b", endpointConfiguration=REGIONAL)
    assert throttled(lambda: eu.create_rest_api(name="edge2", endpointConfiguration={"types": ["EDGE"]})) == "27"


def test_every_operation_counts_towards_ten_per_second_with_a_burst_of_forty(apigw: Any, strict: Sandbox,
                                                                           clock: DrivenClock,
                                                                           aws_timing: Sandbox) -> None:
    eu = apigw()
    for _ in range(40):
        eu.get_rest_apis()
    assert throttled(eu.get_rest_apis) == "1"
    clock.advance(0.1)  # one token back at 10 per second
    eu.get_rest_apis()
    assert throttled(eu.get_rest_apis) == "1"


@pytest.mark.parametrize("profile", ["fast", "aws"])
def test_the_quotas_run_on_compressed_time(apigw: Any, strict: Sandbox, clock: DrivenClock,
                                           monkeypatch: pytest.MonkeyPatch, profile: str) -> None:
    monkeypatch.setattr(strict.options, "timing", profile)
    monkeypatch.setattr(strict.options, "time_scale", 10.0)  # 5 AWS seconds are 0.5 s here
    eu = apigw()
    api_id = deployable_api(eu)
    eu.create_deployment(restApiId=api_id, stageName="prod")
    clock.advance(0.4)
    throttled(lambda: eu.create_deployment(restApiId=api_id, stageName="prod"))
    clock.advance(0.1)
    eu.create_deployment(restApiId=api_id, stageName="prod")


def test_without_strict_nothing_is_throttled(apigw: Any, lenient: Sandbox, clock: DrivenClock) -> None:
    eu = apigw()
    api_id = deployable_api(eu)
    for _ in range(3):
        eu.create_deployment(restApiId=api_id, stageName="prod")
