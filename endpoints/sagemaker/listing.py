"""Listing: the endpoints CareQA manages (an SSM record or a ``careqa:model-config`` tag) and what runs on each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpoints.sagemaker._aws import tags_of
from endpoints.sagemaker.builders import TAG_MODEL_CONFIG
from endpoints.sagemaker.record import PARAMETER_PREFIX, ActiveModel, active_model, live_record


@dataclass(frozen=True)
class EndpointSummary:
    endpoint_name: str
    status: str
    endpoint_config_name: str
    active: ActiveModel | None


def _recorded_endpoints(ssm: Any) -> Iterator[str]:
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=PARAMETER_PREFIX, Recursive=True):
        for parameter in page.get("Parameters", []):
            rest = parameter["Name"][len(PARAMETER_PREFIX) :]
            endpoint, _, leaf = rest.partition("/")
            if leaf == "active-model":
                yield endpoint


def list_careqa_endpoints(*, sagemaker: Any, ssm: Any, configs_dir: Path | None = None) -> list[EndpointSummary]:
    """Every endpoint with a CareQA record in SSM or a ``careqa:model-config`` tag, with its live model."""
    summaries: dict[str, EndpointSummary] = {}
    recorded = set(_recorded_endpoints(ssm))
    for page in sagemaker.get_paginator("list_endpoints").paginate():
        for endpoint in page.get("Endpoints", []):
            name = endpoint["EndpointName"]
            if name not in recorded and TAG_MODEL_CONFIG not in tags_of(sagemaker, endpoint["EndpointArn"]):
                continue
            detail = sagemaker.describe_endpoint(EndpointName=name)
            summaries[name] = EndpointSummary(
                name,
                detail["EndpointStatus"],
                detail.get("EndpointConfigName", ""),
                live_record(
                    name,
                    detail["EndpointArn"],
                    detail.get("EndpointConfigName", ""),
                    sagemaker=sagemaker,
                    ssm=ssm,
                    configs_dir=configs_dir,
                ),
            )
    for name in recorded - set(summaries):  # a record whose endpoint was deleted
        summaries[name] = EndpointSummary(name, "Missing", "", active_model(name, ssm))
    return [summaries[n] for n in sorted(summaries)]
