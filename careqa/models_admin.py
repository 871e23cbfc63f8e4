"""Swap the model behind a CareQA SageMaker endpoint, and record which model is live.

A swap is one function per step, over boto3 clients passed in (``sagemaker``, ``ssm`` and
``sagemaker-runtime``), so it runs the same against AWS and against moto:

1. ``plan_swap`` reads the endpoint, its EndpointConfig and Model, and the live-model record, and
   refuses what must not happen: a different embedding dimension (the index would no longer match),
   a different task, a gated model without ``accept_eula``, a region with no pinned image. It builds the
   CreateModel / CreateEndpointConfig / UpdateEndpoint requests and the pruning list, and mutates
   nothing, which is all ``--dry-run`` does.
2. ``execute_swap`` creates the Model and EndpointConfig, calls UpdateEndpoint with a blue/green
   deployment (canary or linear traffic shifting, auto-rollback on CloudWatch alarms), waits for
   ``InService`` with a bounded poll, and smoke-tests the endpoint through the *new* model's codec. Any
   failure rolls the endpoint back to the previous EndpointConfig. On success it records the live model
   in SSM and as endpoint tags, then prunes old EndpointConfigs and Models beyond ``keep``.

The record lets the running service follow a swap without a redeploy: ``active_model(endpoint, ssm)``
returns what is live, and ``ActiveModel.config()`` loads its model config, from which the service
builds ``EndpointEmbeddings`` / ``EndpointChatModel`` with the right codec. Only CareQA's SSM record is
authoritative; the ``careqa:model-config`` tag is for people and for endpoints created before the tool.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import ClientError

from careqa.errors import CareQAError
from endpoints.codecs import CODECS, EmbeddingCodec, GenerationRequest
from endpoints.config import ModelConfig, load_model_config
from endpoints.errors import ModelConfigError, ModelInvocationError
from endpoints.sagemaker.transport import SageMakerTransport
from endpoints.templates import render

PARAMETER_PREFIX = "/careqa/endpoints/"
TAG_ENDPOINT = "careqa:endpoint"
TAG_MODEL_CONFIG = "careqa:model-config"
TAG_MODEL_VERSION = "careqa:model-version"
#: SageMaker states from which an endpoint moves on by itself
TRANSITIONAL_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
#: variant settings that belong to the deployment, not the model, so a swap keeps them
CARRIED_VARIANT_SETTINGS = (
    "ModelDataDownloadTimeoutInSeconds",
    "ContainerStartupHealthCheckTimeoutInSeconds",
    "VolumeSizeInGB",
    "RoutingConfig",
    "InferenceAmiVersion",
)
SMOKE_TEXT = "CareQA deployment check: is this endpoint answering?"
SMOKE_MAX_NEW_TOKENS = 8
_NAME_PREFIX_CHARS = 48  # + "-" + 14-character timestamp = SageMaker's 63-character name limit

TrafficMode = Literal["canary", "linear", "all-at-once"]


class ModelAdminError(CareQAError):
    """Base of the swap tool's errors; the CLI maps each subclass to an exit code."""

    code = "model_admin"


class SwapRefused(ModelAdminError):
    """The swap was not started: a precondition failed. Nothing was changed."""

    code = "swap_refused"


class EndpointNotFoundError(SwapRefused):
    code = "endpoint_not_found"


class SwapFailed(ModelAdminError):
    """The swap started but failed; the endpoint was rolled back to its previous EndpointConfig."""

    code = "swap_failed"


class RollbackFailed(SwapFailed):
    """The swap failed and the rollback did not complete: the endpoint needs a person."""

    code = "rollback_failed"


class DeploymentError(ModelAdminError):
    """The update did not leave the endpoint InService on the new EndpointConfig."""

    code = "deployment_failed"


class SmokeTestError(ModelAdminError):
    """The endpoint answered the smoke test with an error or a result the new model cannot produce."""

    code = "smoke_test_failed"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parameter_name(endpoint_name: str) -> str:
    """The SSM parameter that records the model live on an endpoint."""
    return f"{PARAMETER_PREFIX}{endpoint_name}/active-model"


def resource_name(endpoint_name: str, at: datetime) -> str:
    """Name for a swap's Model and EndpointConfig: the endpoint's name and a UTC timestamp, within 63 chars."""
    return f"{endpoint_name[:_NAME_PREFIX_CHARS]}-{at.astimezone(UTC):%Y%m%d%H%M%S}"


def _error(exc: ClientError) -> tuple[str, str]:
    err = exc.response.get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", str(exc)))


def _tags(sagemaker: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = sagemaker.list_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]


# ---------------------------------------------------------------------------------------------------
# The live-model record


@dataclass(frozen=True)
class ActiveModel:
    """Which model config is live on an endpoint, as the swap tool recorded it."""

    endpoint_name: str
    config_name: str
    model_id: str
    model_version: str
    task: str
    payload_format: str
    embedding_dimension: int | None
    endpoint_config_name: str
    recorded_at: str
    source: Literal["ssm", "tag"] = "ssm"

    def to_json(self) -> str:
        return json.dumps(
            {
                "config": self.config_name,
                "model_id": self.model_id,
                "model_version": self.model_version,
                "task": self.task,
                "payload_format": self.payload_format,
                "embedding_dimension": self.embedding_dimension,
                "endpoint_config": self.endpoint_config_name,
                "recorded_at": self.recorded_at,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, endpoint_name: str, text: str) -> ActiveModel:
        try:
            data = json.loads(text)
            dim = data.get("embedding_dimension")
            record = cls(
                endpoint_name=endpoint_name,
                config_name=str(data["config"]),
                model_id=str(data["model_id"]),
                model_version=str(data["model_version"]),
                task=str(data["task"]),
                payload_format=str(data["payload_format"]),
                embedding_dimension=int(dim) if dim is not None else None,
                endpoint_config_name=str(data["endpoint_config"]),
                recorded_at=str(data["recorded_at"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelAdminError(
                f"{endpoint_name}: the active-model record in {parameter_name(endpoint_name)} is unreadable ({exc!r}); "
                "fix or delete the parameter, then swap again"
            ) from exc
        return record

    @classmethod
    def from_config(
        cls,
        endpoint_name: str,
        config: ModelConfig,
        endpoint_config_name: str,
        at: datetime,
        source: Literal["ssm", "tag"] = "ssm",
    ) -> ActiveModel:
        return cls(
            endpoint_name=endpoint_name,
            config_name=config.name,
            model_id=config.model_id,
            model_version=config.model_version,
            task=config.task,
            payload_format=config.payload_format,
            embedding_dimension=config.embedding_dimension,
            endpoint_config_name=endpoint_config_name,
            recorded_at=at.astimezone(UTC).isoformat(timespec="seconds") if source == "ssm" else "",
            source=source,
        )

    def config(self, configs_dir: Path | None = None) -> ModelConfig:
        """The model config this record names, from which the service picks its codec."""
        return load_model_config(self.config_name, configs_dir)


def active_model(endpoint_name: str, ssm: Any) -> ActiveModel | None:
    """The model recorded as live on ``endpoint_name`` in SSM, or None when no swap has recorded one.

    The service calls this at start-up (and may call it again on a timer, or when an invocation fails
    with a payload error) to pick the codec for an endpoint whose model was swapped, without a redeploy.
    """
    try:
        value = ssm.get_parameter(Name=parameter_name(endpoint_name))["Parameter"]["Value"]
    except ClientError as exc:
        if _error(exc)[0] == "ParameterNotFound":
            return None
        raise
    return ActiveModel.from_json(endpoint_name, value)


def _live_record(
    endpoint_name: str,
    endpoint_arn: str,
    endpoint_config_name: str,
    *,
    sagemaker: Any,
    ssm: Any,
    configs_dir: Path | None,
) -> ActiveModel | None:
    """The SSM record, else what the endpoint's ``careqa:model-config`` tag names, else None."""
    record = active_model(endpoint_name, ssm)
    if record is not None:
        return record
    config_name = _tags(sagemaker, endpoint_arn).get(TAG_MODEL_CONFIG)
    if not config_name:
        return None
    try:
        config = load_model_config(config_name, configs_dir)
    except ModelConfigError:
        return None
    return ActiveModel.from_config(endpoint_name, config, endpoint_config_name, _utcnow(), source="tag")


# ---------------------------------------------------------------------------------------------------
# Deployment policy


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


# ---------------------------------------------------------------------------------------------------
# Reading the endpoint and building the requests


@dataclass(frozen=True)
class LiveEndpoint:
    """The endpoint as it is now: its EndpointConfig, its single variant and that variant's Model."""

    name: str
    arn: str
    status: str
    endpoint_config_name: str
    variant: dict[str, Any]
    kms_key_id: str | None
    data_capture: dict[str, Any] | None
    model_name: str
    execution_role_arn: str
    vpc_config: dict[str, Any] | None
    network_isolation: bool
    record: ActiveModel | None


def read_endpoint(endpoint_name: str, *, sagemaker: Any, ssm: Any, configs_dir: Path | None = None) -> LiveEndpoint:
    """Describe the endpoint, its EndpointConfig and Model, and find its live-model record."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        code, message = _error(exc)
        if code == "ValidationException" and "Could not find" in message:
            raise EndpointNotFoundError(
                f"{endpoint_name}: no such SageMaker endpoint in this account and region"
            ) from None
        raise
    config_name = endpoint["EndpointConfigName"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    variants = config.get("ProductionVariants", [])
    if len(variants) != 1 or "ModelName" not in variants[0]:
        raise SwapRefused(
            f"{endpoint_name}: EndpointConfig {config_name} has {len(variants)} production variants; the swap tool "
            "handles single-variant endpoints only (blue/green guardrails do not apply to multi-variant ones)"
        )
    variant = variants[0]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    return LiveEndpoint(
        name=endpoint_name,
        arn=endpoint["EndpointArn"],
        status=endpoint["EndpointStatus"],
        endpoint_config_name=config_name,
        variant=variant,
        kms_key_id=config.get("KmsKeyId") or None,
        data_capture=config.get("DataCaptureConfig") or None,
        model_name=variant["ModelName"],
        execution_role_arn=model["ExecutionRoleArn"],
        vpc_config=model.get("VpcConfig") or None,
        network_isolation=bool(model.get("EnableNetworkIsolation")),
        record=_live_record(
            endpoint_name, endpoint["EndpointArn"], config_name, sagemaker=sagemaker, ssm=ssm, configs_dir=configs_dir
        ),
    )


def resource_tags(endpoint_name: str, target: ModelConfig) -> list[dict[str, str]]:
    """Tags on a swap's Model and EndpointConfig: pruning deletes only resources that carry them."""
    return [
        {"Key": TAG_ENDPOINT, "Value": endpoint_name},
        {"Key": TAG_MODEL_CONFIG, "Value": target.name},
        {"Key": TAG_MODEL_VERSION, "Value": target.model_version},
    ]


def container_definition(target: ModelConfig, region: str, *, accept_eula: bool) -> dict[str, Any]:
    """The PrimaryContainer for ``target`` in ``region``, from its pinned image and model data."""
    container: dict[str, Any] = {"Image": target.image_uri(region), "Environment": dict(target.environment)}
    if not target.model_data_uris:
        return container  # the image carries the weights
    data = target.model_data_uris.get(region)
    if data is None:
        raise ModelConfigError(
            f"{target.name}: no model_data_uris pin for region {region!r} (pinned: {sorted(target.model_data_uris)}); "
            "run `careqa models refresh --region <region>` on a machine with AWS credentials"
        )
    if data.endswith("/"):
        # Current JumpStart artifacts are uncompressed S3 prefixes; gated ones need the licence accepted here.
        source: dict[str, Any] = {"S3Uri": data, "S3DataType": "S3Prefix", "CompressionType": "None"}
        if target.eula_required:
            source["ModelAccessConfig"] = {"AcceptEula": accept_eula}
        container["ModelDataSource"] = {"S3DataSource": source}
    elif target.eula_required:
        raise ModelConfigError(f"{target.name}: a gated model's weights must be an S3 prefix ending in '/', got {data}")
    else:
        container["ModelDataUrl"] = data
    return container


def model_request(
    name: str,
    endpoint_name: str,
    target: ModelConfig,
    region: str,
    *,
    execution_role_arn: str,
    accept_eula: bool,
    vpc_config: dict[str, Any] | None = None,
    network_isolation: bool = False,
) -> dict[str, Any]:
    """The CreateModel request for ``target``."""
    request: dict[str, Any] = {
        "ModelName": name,
        "ExecutionRoleArn": execution_role_arn,
        "PrimaryContainer": container_definition(target, region, accept_eula=accept_eula),
        "Tags": resource_tags(endpoint_name, target),
    }
    if vpc_config:
        request["VpcConfig"] = vpc_config
    if network_isolation:
        request["EnableNetworkIsolation"] = True
    return request


def endpoint_config_request(
    name: str,
    endpoint_name: str,
    target: ModelConfig,
    *,
    model_name: str,
    variant_name: str,
    instance_type: str,
    instance_count: int,
    kms_key_id: str | None = None,
    data_capture: dict[str, Any] | None = None,
    carried: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The CreateEndpointConfig request: one variant serving ``model_name``."""
    variant: dict[str, Any] = {
        "VariantName": variant_name,
        "ModelName": model_name,
        "InstanceType": instance_type,
        "InitialInstanceCount": instance_count,
        "InitialVariantWeight": 1.0,
        **(carried or {}),
    }
    request: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [variant],
        "Tags": resource_tags(endpoint_name, target),
    }
    if kms_key_id:
        request["KmsKeyId"] = kms_key_id
    if data_capture:
        request["DataCaptureConfig"] = data_capture
    return request


# ---------------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class SwapPlan:
    """Everything a swap will do, computed without changing anything."""

    endpoint_name: str
    region: str
    target: ModelConfig
    live: LiveEndpoint
    options: DeploymentOptions
    keep: int
    model_request: dict[str, Any]
    endpoint_config_request: dict[str, Any]
    update_request: dict[str, Any]
    prune: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def new_endpoint_config_name(self) -> str:
        return str(self.endpoint_config_request["EndpointConfigName"])

    @property
    def new_model_name(self) -> str:
        return str(self.model_request["ModelName"])

    def summary(self) -> str:
        """The plan in words, as ``--dry-run`` prints it."""
        live, variant = self.live, self.endpoint_config_request["ProductionVariants"][0]
        was = live.record
        was_text = (
            f"{was.config_name} {was.model_version} (recorded in {'SSM' if was.source == 'ssm' else 'tags'})"
            if was
            else "unrecorded model"
        )
        container = self.model_request["PrimaryContainer"]
        source = container.get("ModelDataSource", {}).get("S3DataSource", {})
        data = container.get("ModelDataUrl") or source.get("S3Uri")
        alarms = ", ".join(self.options.alarms) or "none (watch the endpoint yourself)"
        model_id = f" ({self.target.model_id})" if self.target.model_id != self.target.name else ""
        if self.target.task == "embedding":
            smoke = f"embed one text, expect a {self.target.embedding_dimension}-dimensional vector"
        else:
            smoke = f"generate up to {SMOKE_MAX_NEW_TOKENS} tokens, expect non-empty text"
        lines = [
            f"Swap plan for endpoint {self.endpoint_name} ({self.region}), now {live.status}",
            f"  live:        {was_text}: endpoint config {live.endpoint_config_name}, model {live.model_name}",
            f"  new:         {self.target.name} {self.target.model_version}{model_id}: "
            f"endpoint config {self.new_endpoint_config_name}, model {self.new_model_name}",
            f"  image:       {container['Image']}",
            f"  model data:  {data or 'inside the image'}",
            f"  instance:    {variant['InstanceType']} x {variant['InitialInstanceCount']} "
            f"(was {live.variant.get('InstanceType')} x {live.variant.get('InitialInstanceCount')}), "
            f"variant {variant['VariantName']}",
            f"  deployment:  {self.options.describe()}; gives up after {self.options.wait_minutes} min",
            f"  rollback on: {alarms}",
            f"  smoke test:  {smoke}, through the {self.target.payload_format} codec",
            f"  on success:  record {parameter_name(self.endpoint_name)} and tag {TAG_MODEL_CONFIG}",
            f"  pruning:     {', '.join(self.prune) if self.prune else 'nothing'} (keep {self.keep})",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _check_compatible(endpoint_name: str, target: ModelConfig, record: ActiveModel | None) -> None:
    if record is not None and record.task != target.task:
        raise SwapRefused(
            f"{endpoint_name}: refusing to swap to {target.name}: its task is {target.task}, but the endpoint serves "
            f"{record.config_name} (task {record.task}) and the service calls it for {record.task}"
        )
    if target.task != "embedding":
        return
    if record is None:
        raise SwapRefused(
            f"{endpoint_name}: refusing to swap to {target.name}: nothing records which embedding model the endpoint "
            f"serves (no SSM parameter {parameter_name(endpoint_name)} and no {TAG_MODEL_CONFIG} tag), so the index's "
            f"vector size cannot be checked. Tag the endpoint with {TAG_MODEL_CONFIG}=<the config it was deployed "
            "from> (aws sagemaker add-tags) and run the swap again"
        )
    if record.embedding_dimension != target.embedding_dimension:
        raise SwapRefused(
            f"{endpoint_name}: refusing to swap to {target.name}: it makes {target.embedding_dimension}-dimensional "
            f"embeddings, but the live model {record.config_name} makes {record.embedding_dimension}-dimensional ones "
            "and the search index was built with those. Vectors of another size cannot be searched against that "
            "index: re-ingest the knowledge base with the new model into a new index (careqa ingest), serve that "
            "model from a new endpoint, and switch the service to the new index and endpoint together"
        )


def _careqa_configs(endpoint_name: str, sagemaker: Any) -> list[tuple[str, datetime]]:
    """EndpointConfigs this tool created for the endpoint (tagged ``careqa:endpoint``), newest first."""
    found: list[tuple[str, datetime]] = []
    prefix = f"{endpoint_name[:_NAME_PREFIX_CHARS]}-"
    for page in sagemaker.get_paginator("list_endpoint_configs").paginate(NameContains=prefix):
        for summary in page.get("EndpointConfigs", []):
            if _tags(sagemaker, summary["EndpointConfigArn"]).get(TAG_ENDPOINT) == endpoint_name:
                found.append((summary["EndpointConfigName"], summary["CreationTime"]))
    return sorted(found, key=lambda item: (item[1], item[0]), reverse=True)


def _to_prune(newest_first: list[str], keep: int, protect: set[str]) -> list[str]:
    """Configs beyond the ``keep`` newest, never the protected (live and previous) ones."""
    return [name for name in newest_first[keep:] if name not in protect]


def plan_swap(
    endpoint_name: str,
    target: ModelConfig,
    *,
    sagemaker: Any,
    ssm: Any,
    region: str,
    options: DeploymentOptions | None = None,
    keep: int = 2,
    accept_eula: bool = False,
    instance_type: str | None = None,
    instance_count: int | None = None,
    now: Callable[[], datetime] = _utcnow,
    configs_dir: Path | None = None,
) -> SwapPlan:
    """Check that the swap may happen and compute its requests; read-only (this is ``--dry-run``)."""
    options = options or DeploymentOptions()
    if keep < 1:
        raise SwapRefused(f"--keep must be at least 1, got {keep}")
    if not target.deployable:
        raise SwapRefused(
            f"{endpoint_name}: {target.name} is a local-only stand-in (deployable: false), not a SageMaker model"
        )
    if target.eula_required and not accept_eula:
        raise SwapRefused(
            f"{endpoint_name}: {target.name} ({target.model_id}) is a gated model whose licence must be accepted "
            "before it is deployed; read its licence in SageMaker JumpStart, then pass --accept-eula"
        )
    live = read_endpoint(endpoint_name, sagemaker=sagemaker, ssm=ssm, configs_dir=configs_dir)
    if live.status != "InService":
        raise SwapRefused(f"{endpoint_name}: the endpoint is {live.status}; swap only an InService endpoint")
    _check_compatible(endpoint_name, target, live.record)

    name = resource_name(endpoint_name, now())
    try:
        create_model = model_request(
            name,
            endpoint_name,
            target,
            region,
            execution_role_arn=live.execution_role_arn,
            accept_eula=accept_eula,
            vpc_config=live.vpc_config,
            network_isolation=live.network_isolation,
        )
    except ModelConfigError as exc:
        raise SwapRefused(f"{endpoint_name}: {exc}") from exc
    assert target.default_instance_type is not None  # deployable configs are validated to have one
    create_config = endpoint_config_request(
        name,
        endpoint_name,
        target,
        model_name=name,
        variant_name=live.variant["VariantName"],
        instance_type=instance_type or target.default_instance_type,
        instance_count=instance_count or target.default_instance_count,
        kms_key_id=live.kms_key_id,
        data_capture=live.data_capture,
        carried={k: live.variant[k] for k in CARRIED_VARIANT_SETTINGS if k in live.variant},
    )
    update = {
        "EndpointName": endpoint_name,
        "EndpointConfigName": name,
        "RetainAllVariantProperties": False,
        "DeploymentConfig": options.deployment_config(),
    }
    existing = [n for n, _ in _careqa_configs(endpoint_name, sagemaker)]
    prune = _to_prune([name, *existing], keep, {name, live.endpoint_config_name})
    notes = []
    if not options.alarms:
        notes.append("no --alarm given: SageMaker cannot roll back on its own while traffic shifts")
    if live.record is not None and live.record.source == "tag":
        notes.append(f"the live model is known from the {TAG_MODEL_CONFIG} tag only; this swap will record it in SSM")
    return SwapPlan(
        endpoint_name=endpoint_name,
        region=region,
        target=target,
        live=live,
        options=options,
        keep=keep,
        model_request=create_model,
        endpoint_config_request=create_config,
        update_request=update,
        prune=tuple(prune),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------------
# Executing


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


def smoke_test(target: ModelConfig, endpoint_name: str, runtime: Any, *, sleep: Callable[[float], None]) -> str:
    """One real invocation through ``target``'s codec; returns what was checked, raises ``SmokeTestError``."""
    transport = SageMakerTransport(endpoint_name, client=runtime, max_attempts=3, sleep=sleep)
    codec = CODECS[target.payload_format]()
    try:
        if isinstance(codec, EmbeddingCodec):
            body = codec.encode_request([SMOKE_TEXT])
            vectors = codec.decode_response(
                transport.invoke(body, content_type=codec.content_type, accept=codec.accept), expected=1
            )
            if len(vectors[0]) != target.embedding_dimension:
                raise SmokeTestError(
                    f"{endpoint_name}: smoke test: {target.name} should return {target.embedding_dimension}"
                    f"-dimensional vectors, the endpoint returned {len(vectors[0])} dimensions"
                )
            return f"embedded one text: {len(vectors[0])} dimensions"
        turns = ({"role": "user", "content": "Reply with the single word OK."},)
        request = GenerationRequest(
            prompt="" if codec.takes_messages else render(turns, target.chat_template),
            messages=turns if codec.takes_messages else (),
            max_new_tokens=SMOKE_MAX_NEW_TOKENS,
        )
        text = codec.decode_response(
            transport.invoke(codec.encode_request(request), content_type=codec.content_type, accept=codec.accept)
        )
    except ModelInvocationError as exc:
        raise SmokeTestError(
            f"{endpoint_name}: smoke test through the {target.payload_format} codec failed: {exc}"
        ) from exc
    if not text.strip():
        raise SmokeTestError(f"{endpoint_name}: smoke test: {target.name} generated empty text")
    return f"generated {len(text)} characters"


def _roll_back(
    plan: SwapPlan, sagemaker: Any, *, max_polls: int, poll_seconds: float, sleep: Callable[[float], None]
) -> str:
    """Put the endpoint back on the previous EndpointConfig; returns what happened, raises ``RollbackFailed``."""
    name, previous = plan.endpoint_name, plan.live.endpoint_config_name
    try:
        state = describe_state(name, sagemaker)
    except ClientError as exc:
        code, message = _error(exc)
        raise RollbackFailed(
            f"{name}: cannot read the endpoint to roll it back to {previous} ({code}: {message})"
        ) from exc
    if state.status == "InService" and state.endpoint_config_name == previous:
        return f"SageMaker had already rolled back to {previous}"
    try:
        # No DeploymentConfig: put the known-good fleet back as fast as SageMaker can.
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=previous, RetainAllVariantProperties=False)
    except ClientError as exc:
        code, message = _error(exc)
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


def _delete_quietly(action: Callable[[], Any], what: str, warnings: list[str]) -> bool:
    try:
        action()
        return True
    except ClientError as exc:
        code, message = _error(exc)
        warnings.append(f"could not delete {what}: {code}: {message}")
        return False


def _cleanup_new(plan: SwapPlan, sagemaker: Any, *, created_model: bool, created_config: bool) -> list[str]:
    warnings: list[str] = []
    if created_config:
        _delete_quietly(
            partial(sagemaker.delete_endpoint_config, EndpointConfigName=plan.new_endpoint_config_name),
            f"EndpointConfig {plan.new_endpoint_config_name}",
            warnings,
        )
    if created_model:
        _delete_quietly(
            partial(sagemaker.delete_model, ModelName=plan.new_model_name), f"Model {plan.new_model_name}", warnings
        )
    return warnings


def record_active_model(record: ActiveModel, endpoint_arn: str, *, sagemaker: Any, ssm: Any) -> list[str]:
    """Write the SSM record (authoritative: the service reads it), then the endpoint tags (for people).

    Raises ``ClientError`` when SSM fails; a failure to tag comes back as a warning.
    """
    ssm.put_parameter(
        Name=parameter_name(record.endpoint_name),
        Value=record.to_json(),
        Type="String",
        Overwrite=True,
        Description=f"Model live on SageMaker endpoint {record.endpoint_name} (written by careqa models swap)",
    )
    try:
        sagemaker.add_tags(
            ResourceArn=endpoint_arn,
            Tags=[
                {"Key": TAG_MODEL_CONFIG, "Value": record.config_name},
                {"Key": TAG_MODEL_VERSION, "Value": record.model_version},
            ],
        )
    except ClientError as exc:
        code, message = _error(exc)
        return [f"recorded in SSM, but tagging the endpoint failed: {code}: {message}"]
    return []


def prune_endpoint_configs(
    endpoint_name: str, sagemaker: Any, *, keep: int, protect: set[str]
) -> tuple[list[str], list[str]]:
    """Delete this endpoint's tool-made EndpointConfigs beyond the ``keep`` newest, and their Models.

    Never touches ``protect`` (the live and the previous config), nor anything without the
    ``careqa:endpoint`` tag for this endpoint, nor a Model that a kept config still uses.
    Returns (deleted config names, warnings).
    """
    newest_first = [name for name, _ in _careqa_configs(endpoint_name, sagemaker)]
    doomed = _to_prune(newest_first, keep, protect)
    kept = [n for n in newest_first if n not in doomed] + sorted(protect - set(newest_first))
    models_in_use: set[str] = set()
    for name in kept:
        try:
            config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
        except ClientError:
            continue
        models_in_use.update(v.get("ModelName", "") for v in config.get("ProductionVariants", []))
    deleted: list[str] = []
    warnings: list[str] = []
    for name in doomed:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
        if not _delete_quietly(
            partial(sagemaker.delete_endpoint_config, EndpointConfigName=name), f"EndpointConfig {name}", warnings
        ):
            continue
        deleted.append(name)
        for variant in config.get("ProductionVariants", []):
            model_name = variant.get("ModelName")
            if not model_name or model_name in models_in_use:
                continue
            try:
                model = sagemaker.describe_model(ModelName=model_name)
            except ClientError:
                continue  # already gone
            if _tags(sagemaker, model["ModelArn"]).get(TAG_ENDPOINT) == endpoint_name:
                _delete_quietly(partial(sagemaker.delete_model, ModelName=model_name), f"Model {model_name}", warnings)
    return deleted, warnings


def execute_swap(
    plan: SwapPlan,
    *,
    sagemaker: Any,
    ssm: Any,
    runtime: Any,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 30.0,
    now: Callable[[], datetime] = _utcnow,
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
        code, message = _error(exc)
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
        cause = f"{_error(exc)[0]}: {_error(exc)[1]}" if isinstance(exc, ClientError) else str(exc)
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
        code, message = _error(exc)
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


# ---------------------------------------------------------------------------------------------------
# Listing


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
            if name not in recorded and TAG_MODEL_CONFIG not in _tags(sagemaker, endpoint["EndpointArn"]):
                continue
            detail = sagemaker.describe_endpoint(EndpointName=name)
            summaries[name] = EndpointSummary(
                name,
                detail["EndpointStatus"],
                detail.get("EndpointConfigName", ""),
                _live_record(
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
