"""Lambda function states and IAM role propagation in the sandbox, as the Lambda developer guide has them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from multiregion.sandbox.lambda_states import FunctionStates
from multiregion.sandbox.server import Sandbox
from tests.test_sandbox_lambda import ECHO, call, create_role, deploy, no_retries, reuse_clients, zip_of

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:echo"
PENDING = "The operation cannot be performed at this time. The function is currently in the following state: Pending"
UPDATING = f"The operation cannot be performed at this time. An update is in progress for resource: {ARN}"
ROLE = "The role defined for the function cannot be assumed by Lambda."
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


class Clock:
    """The states' clock, moved by the test only: wall time frozen at the start of the test, plus offsets."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)


def drive(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, strict: bool) -> Clock:
    """AWS's durations (non-zero) on a driven clock, with or without the strict refusals."""
    monkeypatch.setattr(sandbox.options, "timing", "aws")
    monkeypatch.setattr(sandbox.options, "strict", strict)
    clock = Clock()
    monkeypatch.setattr(sandbox.extension(FunctionStates), "clock", clock)
    for name in ("lambda_pending", "lambda_update", "iam_role_assumable"):
        assert sandbox.duration(name) > 0, f"the aws profile gives {name} no duration"
    return clock


@pytest.fixture
def clock(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Clock:
    return drive(sandbox, monkeypatch, strict=True)


@pytest.fixture
def lenient_clock(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Clock:
    return drive(sandbox, monkeypatch, strict=False)


def assumable_role(aws: Any, sandbox: Sandbox, clock: Clock) -> str:
    role = create_role(aws)
    clock.advance(sandbox.duration("iam_role_assumable") + 60)  # IAM has propagated it
    return role


def active(aws: Any, sandbox: Sandbox, clock: Clock, **extra: Any) -> str:
    """The echo function, created and past Pending."""
    arn = deploy(aws, assumable_role(aws, sandbox, clock), "echo", ECHO, **extra)
    clock.advance(sandbox.duration("lambda_pending"))
    return arn


def refusal(call_aws: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as err:
        call_aws()
    response = err.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def state(aws: Any) -> tuple[Any, ...]:
    """(State, StateReasonCode, LastUpdateStatus, LastUpdateStatusReasonCode) from both read operations."""
    lam = aws("lambda", "eu-west-1")
    via_get = lam.get_function(FunctionName="echo")["Configuration"]
    via_config = lam.get_function_configuration(FunctionName="echo")
    keys = ("State", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReasonCode")
    assert [via_get.get(k) for k in keys] == [via_config.get(k) for k in keys]
    return tuple(via_get.get(k) for k in keys)


def test_a_new_function_is_pending_for_lambda_pending_then_active(aws: Any, sandbox: Sandbox, clock: Clock) -> None:
    role = assumable_role(aws, sandbox, clock)
    created = aws("lambda", "eu-west-1").create_function(
        FunctionName="echo", Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": ECHO})})
    assert (created["State"], created["StateReason"], created["StateReasonCode"]) == (
        "Pending", "The function is being created.", "Creating")
    assert state(aws)[:2] == ("Pending", "Creating")
    clock.advance(sandbox.duration("lambda_pending") * 0.99)
    assert state(aws)[:2] == ("Pending", "Creating")
    clock.advance(sandbox.duration("lambda_pending") * 0.01 + 1e-6)
    assert state(aws)[:3] == ("Active", None, "Successful")


def test_a_pending_function_refuses_invoke_updates_and_publishing(aws: Any, sandbox: Sandbox, clock: Clock) -> None:
    deploy(aws, assumable_role(aws, sandbox, clock), "echo", ECHO)
    lam = no_retries(sandbox, "lambda", "eu-west-1")
    attempts = {
        "Invoke": lambda: lam.invoke(FunctionName="echo", Payload=b"{}"),
        "UpdateFunctionCode": lambda: lam.update_function_code(FunctionName="echo",
                                                               ZipFile=zip_of({"app.py": ECHO})),
        "UpdateFunctionConfiguration": lambda: lam.update_function_configuration(FunctionName="echo", Timeout=9),
        "PublishVersion": lambda: lam.publish_version(FunctionName="echo"),
    }
    for operation, attempt in attempts.items():
        assert refusal(attempt) == (409, "ResourceConflictException", PENDING), operation
    clock.advance(sandbox.duration("lambda_pending"))
    assert call(lam, "echo")[1]["count"] == 1
    assert lam.get_function_configuration(FunctionName="echo")["Timeout"] == 3  # the refused update did nothing


def test_an_update_is_in_progress_for_lambda_update_and_calls_run_the_previous_configuration(
        aws: Any, sandbox: Sandbox, clock: Clock) -> None:
    active(aws, sandbox, clock, Environment={"Variables": {"GREETING": "hi"}})
    lam = no_retries(sandbox, "lambda", "eu-west-1")
    assert call(lam, "echo")[1]["greeting"] == "hi"
    updated = lam.update_function_configuration(FunctionName="echo", Environment={"Variables": {"GREETING": "bye"}})
    assert (updated["State"], updated["LastUpdateStatus"], updated["LastUpdateStatusReason"],
            updated["LastUpdateStatusReasonCode"]) == ("Active", "InProgress", "The function is being created.",
                                                       "Creating")
    assert state(aws) == ("Active", None, "InProgress", "Creating")
    assert call(lam, "echo")[1]["greeting"] == "hi"  # the previous configuration, until the update is done
    clock.advance(sandbox.duration("lambda_update") * 0.99)
    assert state(aws)[2] == "InProgress"
    clock.advance(sandbox.duration("lambda_update") * 0.01 + 1e-6)
    assert state(aws) == ("Active", None, "Successful", None)
    assert call(lam, "echo")[1]["greeting"] == "bye"


def test_an_update_in_progress_refuses_updates_and_publishing_but_not_permissions_or_concurrency(
        aws: Any, sandbox: Sandbox, clock: Clock) -> None:
    active(aws, sandbox, clock)
    lam = no_retries(sandbox, "lambda", "eu-west-1")
    lam.update_function_code(FunctionName="echo", ZipFile=zip_of({"app.py": ECHO + "\n# v2\n"}))
    refused = {
        "UpdateFunctionCode": lambda: lam.update_function_code(FunctionName="echo",
                                                               ZipFile=zip_of({"app.py": ECHO + "\n# v3\n"})),
        "UpdateFunctionConfiguration": lambda: lam.update_function_configuration(FunctionName="echo", Timeout=9),
        "PublishVersion": lambda: lam.publish_version(FunctionName="echo"),
    }
    for operation, attempt in refused.items():
        assert refusal(attempt) == (409, "ResourceConflictException", UPDATING), operation
    # The guide lists only the three above as failing during an update.
    lam.add_permission(FunctionName="echo", StatementId="s1", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com")
    lam.remove_permission(FunctionName="echo", StatementId="s1")
    lam.put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=5)
    clock.advance(sandbox.duration("lambda_update"))
    assert lam.publish_version(FunctionName="echo")["Version"] == "1"
    lam.update_function_configuration(FunctionName="echo", Timeout=9)


def test_waiters_wait_through_pending_and_in_progress(aws: Any, sandbox: Sandbox, clock: Clock) -> None:
    deploy(aws, assumable_role(aws, sandbox, clock), "echo", ECHO)
    lam = aws("lambda", "eu-west-1")
    seen: list[tuple[Any, Any]] = []

    def observe(parsed: dict[str, Any], **_: Any) -> None:
        config = parsed.get("Configuration", {})
        seen.append((config.get("State"), config.get("LastUpdateStatus")))
        if len(seen) == 1:  # the function is provisioned after the waiter's first look
            clock.advance(max(sandbox.duration("lambda_pending"), sandbox.duration("lambda_update")))

    lam.meta.events.register("after-call.lambda.GetFunction", observe)
    lam.get_waiter("function_active_v2").wait(FunctionName="echo", WaiterConfig={"Delay": 0.01, "MaxAttempts": 5})
    assert [s for s, _ in seen] == ["Pending", "Active"]
    seen.clear()
    lam.update_function_configuration(FunctionName="echo", Timeout=9)
    lam.get_waiter("function_updated_v2").wait(FunctionName="echo", WaiterConfig={"Delay": 0.01, "MaxAttempts": 5})
    assert [u for _, u in seen] == ["InProgress", "Successful"]


def test_a_new_role_cannot_be_assumed_until_iam_role_assumable(aws: Any, sandbox: Sandbox, clock: Clock) -> None:
    role = create_role(aws)
    lam = no_retries(sandbox, "lambda", "eu-west-1")

    def create() -> Any:
        return lam.create_function(FunctionName="echo", Runtime="python3.12", Role=role, Handler="app.handler",
                                   Code={"ZipFile": zip_of({"app.py": ECHO})})

    assert refusal(create) == (400, "InvalidParameterValueException", ROLE)
    with pytest.raises(ClientError):
        lam.get_function(FunctionName="echo")  # nothing was created
    clock.advance(sandbox.duration("iam_role_assumable") + 60)
    assert create()["FunctionName"] == "echo"


def test_an_update_naming_a_new_role_is_refused_until_it_propagates(aws: Any, sandbox: Sandbox,
                                                                    clock: Clock) -> None:
    active(aws, sandbox, clock)
    fresh = aws("iam").create_role(RoleName="fresh", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    lam = no_retries(sandbox, "lambda", "eu-west-1")
    assert refusal(lambda: lam.update_function_configuration(FunctionName="echo", Role=fresh)) == (
        400, "InvalidParameterValueException", ROLE)
    lam.update_function_configuration(FunctionName="echo", Timeout=9)  # not naming a role: fine
    clock.advance(max(sandbox.duration("iam_role_assumable") + 60, sandbox.duration("lambda_update")))
    assert lam.update_function_configuration(FunctionName="echo", Role=fresh)["Role"] == fresh


def test_without_strict_the_states_are_reported_but_nothing_is_refused(aws: Any, sandbox: Sandbox,
                                                                       lenient_clock: Clock) -> None:
    deploy(aws, create_role(aws), "echo", ECHO, Environment={"Variables": {"GREETING": "hi"}})  # a new role
    lam = no_retries(sandbox, "lambda", "eu-west-1")
    assert state(aws)[0] == "Pending"
    assert call(lam, "echo")[1]["greeting"] == "hi"
    lenient_clock.advance(sandbox.duration("lambda_pending"))
    lam.update_function_configuration(FunctionName="echo", Environment={"Variables": {"GREETING": "bye"}})
    lam.update_function_configuration(FunctionName="echo", Timeout=9)  # a second update at once
    assert state(aws)[2] == "InProgress"
    assert call(lam, "echo")[1]["greeting"] == "hi"  # still what ran before the first update in progress
    lenient_clock.advance(sandbox.duration("lambda_update"))
    assert call(lam, "echo")[1]["greeting"] == "bye"


def test_the_fast_profile_turns_active_and_successful_at_once(aws: Any, sandbox: Sandbox) -> None:
    assert (sandbox.options.timing, sandbox.duration("lambda_pending"), sandbox.duration("lambda_update")) == (
        "fast", 0, 0)
    created = aws("lambda", "eu-west-1").create_function(
        FunctionName="echo", Runtime="python3.12", Role=create_role(aws), Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": ECHO})})
    assert created["State"] == "Pending"  # AWS's CreateFunction answer, whatever the wait turns out to be
    assert state(aws)[:3] == ("Active", None, "Successful")
    assert aws("lambda", "eu-west-1").update_function_configuration(
        FunctionName="echo", Timeout=9)["LastUpdateStatus"] == "InProgress"
    assert state(aws)[2] == "Successful"


def test_list_functions_leaves_the_state_fields_out(aws: Any, sandbox: Sandbox) -> None:
    deploy(aws, create_role(aws), "echo", ECHO)
    [listed] = aws("lambda", "eu-west-1").list_functions()["Functions"]
    assert listed["FunctionName"] == "echo"
    assert not {"State", "StateReasonCode", "LastUpdateStatus"} & set(listed)
