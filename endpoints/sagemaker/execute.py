"""Executing a swap: deploy blue/green, wait, smoke-test, then record and prune, or roll back.

``execute_swap`` creates the Model and EndpointConfig, calls UpdateEndpoint with the plan's deployment
(canary or linear traffic shifting, auto-rollback on CloudWatch alarms), waits for ``InService`` with a
bounded poll, and smoke-tests the endpoint through the *new* model's codec. Any failure rolls the endpoint
back to the previous EndpointConfig. On success it records the live model in SSM and as endpoint tags,
then prunes old EndpointConfigs and Models beyond ``keep``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from endpoints.sagemaker._aws import client_error, utcnow
from endpoints.sagemaker.errors import DeploymentError, RollbackFailed, SmokeTestError, SwapFailed
from endpoints.sagemaker.plan import SwapPlan
from endpoints.sagemaker.prune import delete_quietly, prune_endpoint_configs
from endpoints.sagemaker.record import ActiveModel, record_active_model
from endpoints.sagemaker.smoke import smoke_test

#: SageMaker states from which an endpoint moves on by itself
TRANSITIONAL_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


@dataclass(frozen=True)
class EndpointState:
    status: str
    endpoint_config_name: str
    failure_reason: str = ""


@dataclass(frozen=True)
class SwapResult:
    """What a successful swap did."""

    endpoint_name: str
    previous_endpoint_config: str
    endpoint_config_name: str
    model_name: str
    record: ActiveModel
    smoke_check: str
    pruned: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def describe_state(endpoint_name: str, sagemaker: Any) -> EndpointState:
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    return EndpointState(
        endpoint["EndpointStatus"], endpoint.get("EndpointConfigName", ""), endpoint.get("FailureReason", "") or ""
    )


def wait_for_endpoint(
    endpoint_name: str, sagemaker: Any, *, max_polls: int, poll_seconds: float, sleep: Callable[[float], None]
) -> EndpointState:
    """Poll until the endpoint leaves its transitional state; at most ``max_polls`` sleeps.

    The bound counts polls, not wall-clock time, so a test's no-op sleep makes the wait instant and exact.
    Raises ``DeploymentError`` when the endpoint is still changing after the last poll.
    """
    for attempt in range(max_polls + 1):
        state = describe_state(endpoint_name, sagemaker)
        if state.status not in TRANSITIONAL_STATES:
            return state
        if attempt < max_polls:
            sleep(poll_seconds)
    raise DeploymentError(f"{endpoint_name}: still {state.status} after {max_polls} polls {poll_seconds:g} s apart")


def _roll_back(
    plan: SwapPlan, sagemaker: Any, *, max_polls: int, poll_seconds: float, sleep: Callable[[float], None]
) -> str:
    """Put the endpoint back on the previous EndpointConfig; returns what happened, raises ``RollbackFailed``."""
    name, previous = plan.endpoint_name, plan.live.endpoint_config_name
    try:
        state = describe_state(name, sagemaker)
    except ClientError as exc:
        code, message = client_error(exc)
        raise RollbackFailed(
            f"{name}: cannot read the endpoint to roll it back to {previous} ({code}: {message})"
        ) from exc
    if state.status == "InService" and state.endpoint_config_name == previous:
        return f"SageMaker had already rolled back to {previous}"
    try:
        # No DeploymentConfig: put the known-good fleet back as fast as SageMaker can.
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=previous, RetainAllVariantProperties=False)
    except ClientError as exc:
        code, message = client_error(exc)
        raise RollbackFailed(
            f"{name}: rollback to {previous} could not start ({code}: {message}); the endpoint is {state.status} on "
            f"{state.endpoint_config_name}. SageMaker abandons a blue/green update after "
            f"{plan.options.wait_minutes * 60} s by itself; check `aws sagemaker describe-endpoint --endpoint-name "
            f"{name}` and, if it is not back on {previous}, update it to {previous}"
        ) from exc
    try:
        state = wait_for_endpoint(name, sagemaker, max_polls=max_polls, poll_seconds=poll_seconds, sleep=sleep)
    except (DeploymentError, ClientError) as exc:
        raise RollbackFailed(f"{name}: rollback to {previous} did not finish: {exc}") from exc
    if state.status != "InService" or state.endpoint_config_name != previous:
        raise RollbackFailed(
            f"{name}: rollback to {previous} ended {state.status} on {state.endpoint_config_name}"
            f"{f' ({state.failure_reason})' if state.failure_reason else ''}; the endpoint needs attention"
        )
    return f"rolled back to {previous}"


def _cleanup_new(plan: SwapPlan, sagemaker: Any, *, created_model: bool, created_config: bool) -> list[str]:
    warnings: list[str] = []
    if created_config:
        delete_quietly(
            partial(sagemaker.delete_endpoint_config, EndpointConfigName=plan.new_endpoint_config_name),
            f"EndpointConfig {plan.new_endpoint_config_name}",
            warnings,
        )
    if created_model:
        delete_quietly(
            partial(sagemaker.delete_model, ModelName=plan.new_model_name), f"Model {plan.new_model_name}", warnings
        )
    return warnings


def execute_swap(
    plan: SwapPlan,
    *,
    sagemaker: Any,
    ssm: Any,
    runtime: Any,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 30.0,
    now: Callable[[], datetime] = utcnow,
    report: Callable[[str], None] = lambda _message: None,
) -> SwapResult:
    """Carry out a plan: deploy, wait, smoke-test, then record and prune, or roll back.

    Raises ``SwapFailed`` when the swap failed and the endpoint is back on its previous config, and
    ``RollbackFailed`` when it could not be put back.
    """
    name, previous, new = plan.endpoint_name, plan.live.endpoint_config_name, plan.new_endpoint_config_name
    max_polls = max(1, math.ceil(plan.options.wait_minutes * 60 / poll_seconds))
    created_model = created_config = False
    try:
        sagemaker.create_model(**plan.model_request)
        created_model = True
        sagemaker.create_endpoint_config(**plan.endpoint_config_request)
        created_config = True
        sagemaker.update_endpoint(**plan.update_request)
    except ClientError as exc:
        code, message = client_error(exc)
        _cleanup_new(plan, sagemaker, created_model=created_model, created_config=created_config)
        raise SwapFailed(
            f"{name}: could not start the update to {new} ({code}: {message}); the endpoint still serves {previous}"
        ) from exc
    report(f"{name}: updating to {new} ({plan.options.describe()})")

    try:
        state = wait_for_endpoint(name, sagemaker, max_polls=max_polls, poll_seconds=poll_seconds, sleep=sleep)
        if state.status != "InService" or state.endpoint_config_name != new:
            reason = f": {state.failure_reason}" if state.failure_reason else ""
            raise DeploymentError(f"{name}: the update ended {state.status} on {state.endpoint_config_name}{reason}")
        report(f"{name}: InService on {new}; smoke-testing through the {plan.target.payload_format} codec")
        checked = smoke_test(plan.target, name, runtime, sleep=sleep)
        record = ActiveModel.from_config(name, plan.target, new, now())
        warnings = record_active_model(record, plan.live.arn, sagemaker=sagemaker, ssm=ssm)
    except (DeploymentError, SmokeTestError, ClientError) as exc:
        cause = f"{client_error(exc)[0]}: {client_error(exc)[1]}" if isinstance(exc, ClientError) else str(exc)
        report(f"{name}: swap failed ({cause}); rolling back to {previous}")
        outcome = _roll_back(plan, sagemaker, max_polls=max_polls, poll_seconds=poll_seconds, sleep=sleep)
        leftovers = _cleanup_new(plan, sagemaker, created_model=True, created_config=True)
        raise SwapFailed(
            f"{name}: swap to {plan.target.name} failed: {cause}. {outcome[0].upper()}{outcome[1:]}; "
            f"the endpoint serves {previous} again" + (f" ({'; '.join(leftovers)})" if leftovers else "")
        ) from exc

    try:
        pruned, prune_warnings = prune_endpoint_configs(name, sagemaker, keep=plan.keep, protect={new, previous})
    except ClientError as exc:  # the swap has succeeded; old configs can be pruned by the next one
        code, message = client_error(exc)
        pruned, prune_warnings = [], [f"pruning old endpoint configs failed: {code}: {message}"]
    return SwapResult(
        endpoint_name=name,
        previous_endpoint_config=previous,
        endpoint_config_name=new,
        model_name=plan.new_model_name,
        record=record,
        smoke_check=checked,
        pruned=tuple(pruned),
        warnings=tuple(warnings + prune_warnings),
    )
