"""Planning a swap: read the endpoint, refuse what must not happen, and compute every request; changes nothing.

``plan_swap`` is all that ``careqa models swap --dry-run`` does. It refuses a different embedding dimension
(the index would no longer match), another embedding model of the same dimension until the index holds a
complete copy of its vectors for every tenant, a different task, a gated model without ``accept_eula`` and a region
with no pinned image, then builds the CreateModel / CreateEndpointConfig / UpdateEndpoint requests and
the pruning list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from endpoints.config import ModelConfig, load_model_config
from endpoints.errors import ModelConfigError
from endpoints.sagemaker._aws import client_error, utcnow
from endpoints.sagemaker.builders import (
    CARRIED_VARIANT_SETTINGS,
    TAG_MODEL_CONFIG,
    endpoint_config_request,
    model_request,
    resource_name,
)
from endpoints.sagemaker.errors import EndpointNotFoundError, SwapRefused
from endpoints.sagemaker.policy import DeploymentOptions
from endpoints.sagemaker.prune import careqa_endpoint_configs, to_prune
from endpoints.sagemaker.record import ActiveModel, live_record, parameter_name
from endpoints.sagemaker.smoke import SMOKE_MAX_NEW_TOKENS


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
        code, message = client_error(exc)
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
        record=live_record(
            endpoint_name, endpoint["EndpointArn"], config_name, sagemaker=sagemaker, ssm=ssm, configs_dir=configs_dir
        ),
    )


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


#: of the tenants, those whose index holds no complete copy of ``target``'s vectors (``careqa models swap --config``)
IndexCheck = Callable[[ModelConfig], list[str]]


def _check_index(endpoint_name: str, target: ModelConfig, record: ActiveModel, index_check: IndexCheck | None) -> None:
    """Another model of the same dimension still needs its own vectors: refuse until every tenant has them."""
    if record.model_identity == target.identity:
        return
    if index_check is None:
        raise SwapRefused(
            f"{endpoint_name}: refusing to swap to {target.name}: it is another embedding model than the live "
            f"{record.config_name} ({target.identity} vs {record.model_identity}), so the service could only search "
            "an index that holds its vectors, and without the service's config the index cannot be checked: pass "
            "--config with the CareQA config whose index this endpoint serves"
        )
    missing = index_check(target)
    if missing:
        raise SwapRefused(
            f"{endpoint_name}: refusing to swap to {target.name}: the index holds {record.config_name}'s vectors, "
            f"and no complete copy for {target.identity} for tenant(s) {', '.join(missing)}. Build it first, while "
            f"the live model keeps serving: careqa ingest --reembed --model {target.name} (per tenant: --tenant T)"
        )


def _check_shipped(endpoint_name: str, target: ModelConfig, configs_dir: Path | None) -> None:
    """The service follows a swap by loading the recorded config by name: a tuned one must ship with it."""
    try:
        shipped = load_model_config(target.name, configs_dir)
    except ModelConfigError:
        shipped = None
    if shipped is None or shipped.identity != target.identity:
        where = "is not among" if shipped is None else "differs from the one in"
        raise SwapRefused(
            f"{endpoint_name}: refusing to swap to {target.name}: the service follows a swap by loading the recorded "
            f"config by name, and this tuned model's config {where} the service's model configs. Copy it into "
            "jumpstart_configs/ and deploy the service (npx cdk deploy) first, then swap"
        )


def _check_compatible(
    endpoint_name: str, target: ModelConfig, record: ActiveModel | None, index_check: IndexCheck | None = None
) -> None:
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
    _check_index(endpoint_name, target, record, index_check)


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
    now: Callable[[], datetime] = utcnow,
    configs_dir: Path | None = None,
    index_check: IndexCheck | None = None,
) -> SwapPlan:
    """Check that the swap may happen and compute its requests; read-only (this is ``--dry-run``).

    ``index_check`` lists the tenants whose index holds no complete copy of an embedding model's vectors;
    without it, a swap to another embedding model is refused.
    """
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
    if target.custom is not None:
        _check_shipped(endpoint_name, target, configs_dir)
    live = read_endpoint(endpoint_name, sagemaker=sagemaker, ssm=ssm, configs_dir=configs_dir)
    if live.status != "InService":
        raise SwapRefused(f"{endpoint_name}: the endpoint is {live.status}; swap only an InService endpoint")
    _check_compatible(endpoint_name, target, live.record, index_check)

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
    existing = [n for n, _ in careqa_endpoint_configs(endpoint_name, sagemaker)]
    prune = to_prune([name, *existing], keep, {name, live.endpoint_config_name})
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
