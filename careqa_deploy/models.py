"""Which model each endpoint of a deployment runs, whether its pins may be deployed, and where they come from.

A deploy must not silently revert a swap: ``resolve_model`` deploys the model the swap tool recorded as
live (brought into the CDK context by ``cdk/record_active_models.py``) over the deploy config's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from careqa_deploy.config import DeployConfig, DeployConfigError
from endpoints.config import ModelConfig, available_models, load_model_config
from endpoints.errors import ModelConfigError

#: CDK context key under which the live model of each endpoint is recorded (see cdk/README.md)
ACTIVE_MODELS_CONTEXT = "careqa:activeModels"


@dataclass(frozen=True)
class ResolvedModel:
    """The model an endpoint is deployed with, and why."""

    config: ModelConfig
    source: Literal["deploy-config", "active-record"]
    #: set when the record differs from the deploy config: the deploy keeps the live model
    note: str | None = None


def parse_active_models(value: Any) -> dict[str, str]:
    """The ``careqa:activeModels`` context value: ``{endpoint name: config name}``, as a mapping or JSON text."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise DeployConfigError(f"context {ACTIVE_MODELS_CONTEXT}: not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise DeployConfigError(f"context {ACTIVE_MODELS_CONTEXT}: expected {{endpoint name: model config name}}")
    return dict(value)


def resolve_model(config: DeployConfig, field: Literal["embedding", "llm"], active: dict[str, str]) -> ResolvedModel:
    """The model to deploy on an endpoint: the swap tool's record wins over the deploy config.

    A deploy must not silently revert a swap: if ``careqa models swap`` moved the endpoint to another
    model (and the record was brought into the context), the stacks deploy that model and say so.
    """
    entry = getattr(config, field)
    endpoint = config.embedding_endpoint_name if field == "embedding" else config.llm_endpoint_name
    recorded = active.get(endpoint)
    if recorded is None or recorded == entry.config:
        return ResolvedModel(entry.model, "deploy-config")
    where = f"context {ACTIVE_MODELS_CONTEXT}.{endpoint}"
    try:
        live = load_model_config(recorded)
    except ModelConfigError as exc:
        raise DeployConfigError(f"{where}: {exc}") from None
    if live.task != entry.model.task:
        raise DeployConfigError(f"{where}: {recorded} is a {live.task} model; {field} needs {entry.model.task}")
    if field == "embedding" and live.embedding_dimension != entry.model.embedding_dimension:
        raise DeployConfigError(
            f"{where}: {recorded} makes {live.embedding_dimension}-dimensional vectors, the deploy config's "
            f"{entry.config} makes {entry.model.embedding_dimension}; the indices cannot serve both"
        )
    if config.env.region not in live.image_uris:
        raise DeployConfigError(f"{where}: {recorded} has no container image pinned for {config.env.region}")
    note = (
        f"{endpoint}: the swap tool recorded {recorded} as live; deploying it instead of {field}.config "
        f"{entry.config}. Swap with 'careqa models swap' (or update the record) to change it."
    )
    return ResolvedModel(live, "active-record", note)


#: CDK context key that lets the production profile deploy model configs whose pins no source has confirmed
ALLOW_UNVERIFIED_PINS_CONTEXT = "allow_unverified_pins"


def parse_allow_unverified(value: Any) -> bool:
    """The ``allow_unverified_pins`` context value: ``-c allow_unverified_pins=true`` arrives as text."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise DeployConfigError(f"context {ALLOW_UNVERIFIED_PINS_CONTEXT}: expected true or false, got {value!r}")


def check_model_pins(config: DeployConfig, models: Sequence[ModelConfig], *, allow_unverified: bool) -> list[str]:
    """A warning per model config whose pins are unverified; for production, refuse them unless allowed.

    A pin nobody checked against JumpStart may name an image, artifact or environment the model does not
    run with, and that shows only after a deploy's endpoints fail their health checks. The cheap profile
    (pilots) deploys with the warning; production needs the risk taken on explicitly.
    """
    unverified = {m.name: m.unverified_pins() for m in models if m.unverified_pins()}
    warnings = [
        f"{name}: pins not verified against JumpStart: {', '.join(pins)} (its pins: block says where each came "
        "from; `careqa models verify` checks them, `careqa models refresh` rewrites them)"
        for name, pins in unverified.items()
    ]
    if unverified and config.profile == "production" and not allow_unverified:
        raise DeployConfigError(
            f"profile production: model configs with unverified pins: {', '.join(unverified)}. Verify them "
            "(`careqa models verify`, `careqa models refresh` on a machine with AWS credentials), or deploy "
            f"anyway with -c {ALLOW_UNVERIFIED_PINS_CONTEXT}=true"
        )
    return warnings


@dataclass(frozen=True)
class ArtifactSources:
    """Where SageMaker pulls model images and weights from, for every model a swap may choose."""

    ecr_accounts: tuple[str, ...]
    s3_buckets: tuple[str, ...]
    #: ``bucket/key`` of each tuned model's artifact (``careqa models package``): the role reads that object only,
    #: not the rest of the knowledge-base bucket it is kept in
    s3_objects: tuple[str, ...] = ()


def artifact_sources(region: str, configs_dir: Path | None = None) -> ArtifactSources:
    """ECR registry accounts and S3 buckets of all deployable model configs pinned in ``region``.

    The SageMaker execution role is scoped to these, and covers every config in ``jumpstart_configs/``
    so that ``careqa models swap`` can move an endpoint to any of them with the same role.
    """
    accounts: set[str] = set()
    buckets: set[str] = set()
    objects: set[str] = set()
    for name in available_models(configs_dir):
        model = load_model_config(name, configs_dir)
        if not model.deployable:
            continue
        image = model.image_uris.get(region)
        if image:
            accounts.add(image.split(".", 1)[0])
        data = model.model_data_uris.get(region)
        if data and data.startswith("s3://"):
            if model.custom is not None:
                objects.add(data[5:])
            else:
                buckets.add(data[5:].split("/", 1)[0])
    return ArtifactSources(tuple(sorted(accounts)), tuple(sorted(buckets)), tuple(sorted(objects)))
