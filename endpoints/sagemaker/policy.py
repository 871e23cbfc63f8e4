"""Deployment policy: how UpdateEndpoint shifts traffic to the new model and when it rolls back by itself."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from endpoints.sagemaker.errors import SwapRefused

TrafficMode = Literal["canary", "linear", "all-at-once"]


@dataclass(frozen=True)
class DeploymentOptions:
    """How UpdateEndpoint shifts traffic to the new model and when it rolls back by itself."""

    traffic: TrafficMode = "canary"
    percent: int = 10
    bake_seconds: int = 300
    alarms: tuple[str, ...] = ()
    wait_minutes: int = 60
    termination_wait_seconds: int = 120

    def __post_init__(self) -> None:
        # SageMaker's own limits, checked here so a bad flag fails before anything is created.
        if self.traffic == "canary" and not 1 <= self.percent <= 50:
            raise SwapRefused(f"--canary-percent must be 1-50 (a canary is at most half the fleet), got {self.percent}")
        if self.traffic == "linear" and not 10 <= self.percent <= 50:
            raise SwapRefused(f"a linear step must be 10-50 percent of capacity, got {self.percent}")
        if not 0 <= self.bake_seconds <= 3600:
            raise SwapRefused(f"the bake time must be 0-3600 seconds, got {self.bake_seconds}")
        if not 0 <= self.termination_wait_seconds <= 3600:
            raise SwapRefused(f"the termination wait must be 0-3600 seconds, got {self.termination_wait_seconds}")
        if len(self.alarms) > 10:
            raise SwapRefused(f"SageMaker watches at most 10 rollback alarms, got {len(self.alarms)}")
        if not 10 <= self.wait_minutes <= 480:
            raise SwapRefused(
                f"--wait-minutes must be 10-480 (SageMaker's deployment timeout range), got {self.wait_minutes}"
            )
        if self.minimum_seconds() > self.wait_minutes * 60:
            raise SwapRefused(
                f"{self.describe()} needs at least {self.minimum_seconds()} s of baking and draining, more than "
                f"--wait-minutes {self.wait_minutes}; raise --wait-minutes or shorten the bake time"
            )

    def _steps(self) -> int:
        if self.traffic == "linear":
            return math.ceil(100 / self.percent)
        return 1  # canary: one bake on the canary; all at once: one bake on the whole new fleet

    def minimum_seconds(self) -> int:
        """The time traffic shifting takes at least, before instances even have to start."""
        return self._steps() * self.bake_seconds + self.termination_wait_seconds

    def deployment_config(self) -> dict[str, Any]:
        """The ``DeploymentConfig`` for UpdateEndpoint."""
        kind = {"canary": "CANARY", "linear": "LINEAR", "all-at-once": "ALL_AT_ONCE"}[self.traffic]
        routing: dict[str, Any] = {"Type": kind, "WaitIntervalInSeconds": self.bake_seconds}
        if self.traffic == "canary":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        elif self.traffic == "linear":
            routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": self.termination_wait_seconds,
                # SageMaker gives up (and rolls back) when we do, so the endpoint never outlives our wait.
                "MaximumExecutionTimeoutInSeconds": self.wait_minutes * 60,
            }
        }
        if self.alarms:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in self.alarms]}
        return config

    def describe(self) -> str:
        if self.traffic == "canary":
            shift = f"canary {self.percent}% of capacity, bake {self.bake_seconds} s, then the rest"
        elif self.traffic == "linear":
            shift = f"linear steps of {self.percent}% of capacity, bake {self.bake_seconds} s each"
        else:
            shift = f"all at once, bake {self.bake_seconds} s"
        return f"blue/green, {shift}"
