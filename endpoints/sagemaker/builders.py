"""The SageMaker requests for a model config: pure functions, shared by the swap tool and the CDK construct.

``container_definition`` is the one place a pinned config becomes a container; ``cdk/careqa_cdk`` deploys
with it and ``careqa models swap`` swaps with it, so a model deployed by either is built identically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from endpoints.config import ModelConfig
from endpoints.errors import ModelConfigError

TAG_ENDPOINT = "careqa:endpoint"
TAG_MODEL_CONFIG = "careqa:model-config"
TAG_MODEL_VERSION = "careqa:model-version"
#: variant settings that belong to the deployment, not the model, so a swap keeps them
CARRIED_VARIANT_SETTINGS = (
    "ModelDataDownloadTimeoutInSeconds",
    "ContainerStartupHealthCheckTimeoutInSeconds",
    "VolumeSizeInGB",
    "RoutingConfig",
    "InferenceAmiVersion",
)
NAME_PREFIX_CHARS = 48  # + "-" + 14-character timestamp = SageMaker's 63-character name limit


def resource_name(endpoint_name: str, at: datetime) -> str:
    """Name for a swap's Model and EndpointConfig: the endpoint's name and a UTC timestamp, within 63 chars."""
    return f"{endpoint_name[:NAME_PREFIX_CHARS]}-{at.astimezone(UTC):%Y%m%d%H%M%S}"


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
    if target.custom is not None and region not in target.model_data_uris:
        raise ModelConfigError(
            f"{target.name}: a tuned model's weights are not in {region} yet (model_data_uris has "
            f"{sorted(target.model_data_uris) or 'no region'}); run `careqa models package {target.name} "
            f"--bucket <knowledge-base bucket> --region {region}` first"
        )
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
