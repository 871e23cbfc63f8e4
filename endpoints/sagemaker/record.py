"""The live-model record: which model config runs on an endpoint, as the swap tool wrote it in SSM.

The running service (``careqa/runtime.py``), the ingestion Lambda and ``cdk/record_active_models.py`` read
it with ``active_model``, so a swapped endpoint is called with the right codec and a deploy keeps the
swapped model. Only the SSM record is authoritative; the ``careqa:model-config`` endpoint tag is for people
and for endpoints created before the tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import ClientError

from endpoints.config import ModelConfig, load_model_config
from endpoints.errors import ModelConfigError
from endpoints.sagemaker._aws import client_error, tags_of, utcnow
from endpoints.sagemaker.builders import TAG_MODEL_CONFIG, TAG_MODEL_VERSION
from endpoints.sagemaker.errors import ModelAdminError

PARAMETER_PREFIX = "/careqa/endpoints/"


def parameter_name(endpoint_name: str) -> str:
    """The SSM parameter that records the model live on an endpoint."""
    return f"{PARAMETER_PREFIX}{endpoint_name}/active-model"


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
    #: ``ModelConfig.identity`` of the live model (records written before it existed: the model id)
    identity: str = ""

    @property
    def model_identity(self) -> str:
        return self.identity or self.model_id

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
                "identity": self.model_identity,
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
                identity=str(data.get("identity") or ""),
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
            identity=config.identity,
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
        if client_error(exc)[0] == "ParameterNotFound":
            return None
        raise
    return ActiveModel.from_json(endpoint_name, value)


def live_record(
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
    config_name = tags_of(sagemaker, endpoint_arn).get(TAG_MODEL_CONFIG)
    if not config_name:
        return None
    try:
        config = load_model_config(config_name, configs_dir)
    except ModelConfigError:
        return None
    return ActiveModel.from_config(endpoint_name, config, endpoint_config_name, utcnow(), source="tag")


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
        code, message = client_error(exc)
        return [f"recorded in SSM, but tagging the endpoint failed: {code}: {message}"]
    return []
