"""The typed deployment config (``config/deploy.*.yaml``), validated before any construct is built.

Everything the stacks vary on lives here: tenants and the identities that map to them, the two model
endpoints (each naming a ``jumpstart_configs/`` entry), the cost profile, and the sizes, thresholds
and usage assumptions. ``cdk/app.py`` loads it once and hands typed values to the stacks; constructs
never read files or environment variables themselves. A bad value fails the synth with the field
named, e.g. ``llm.config: unknown model 'llama-9'``.

This module has no CDK imports, so ``careqa cost`` can load a deploy config without starting jsii. Which
model each endpoint deploys is ``careqa_deploy.models``; the service's settings, ``careqa_deploy.environment``.

Profiles:

* ``cheap``: serverless inference for the embedding model (CPU only, billed per use), the LLM as an
  inference component with managed instance scaling down to zero copies and zero instances, one
  OpenSearch node, one NAT gateway (when the ALB needs egress), small Fargate tasks.
* ``production``: instance-backed endpoints with at least one instance each, a zone-aware OpenSearch
  domain with dedicated masters, one NAT gateway per AZ, deletion protection on what holds data.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from careqa.config import TENANT_PATTERN, StrictModel, shared_identity, unique_tenant_ids
from careqa.errors import CareQAError
from careqa_deploy.instance_types import InstanceType
from endpoints.config import ModelConfig, load_model_config
from endpoints.errors import ModelConfigError, format_validation_errors

Profile = Literal["cheap", "production"]
PROFILES: tuple[Profile, ...] = ("cheap", "production")

_ENDPOINT_NAME = r"^[a-z0-9](?:-?[a-z0-9]){0,47}$"  # lower case (IAM ARNs), 48 chars: the swap tool adds a suffix
_HTTPS_URL = r"^https://[^\s/$.?#][^\s]*$"
#: OpenSearch instance types without encryption at rest or fine-grained access control
_OPENSEARCH_UNSUPPORTED = re.compile(r"^(t2\.|t3\.(nano|micro|small)\.)")
#: valid Fargate (CPU units → memory MiB) combinations
_FARGATE_MEMORY = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
}


class DeployConfigError(CareQAError, ValueError):
    """The deploy config (or the CDK context that refines it) is invalid; the message names the field."""

    code = "invalid_deploy_config"


class _Strict(StrictModel):
    """The settings' strict base (``careqa.config``), frozen: a deploy config is a value."""

    model_config = ConfigDict(frozen=True)


class EnvConfig(_Strict):
    """Where to deploy. The region is required: it picks the pinned model images."""

    account: str | None = Field(default=None, pattern=r"^\d{12}$", description="omit for an account-agnostic synth")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class Identity(_Strict):
    """An OIDC subject or group whose agents work for a tenant."""

    subject: str | None = Field(default=None, min_length=1)
    group: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Identity:
        if (self.subject is None) == (self.group is None):
            raise ValueError("give exactly one of subject or group")
        return self

    @property
    def claim(self) -> Literal["sub", "group"]:
        return "sub" if self.subject is not None else "group"

    @property
    def value(self) -> str:
        return self.subject if self.subject is not None else str(self.group)


class Tenant(_Strict):
    id: str = Field(pattern=TENANT_PATTERN)
    name: str = Field(min_length=1)
    identities: list[Identity] = Field(min_length=1)

    @property
    def kb_prefix(self) -> str:
        """The tenant's folder in the knowledge-base bucket."""
        return f"{self.id}/"


class NetworkConfig(_Strict):
    cidr: str = "10.40.0.0/16"
    availability_zones: list[str] = Field(
        default_factory=list, description="two AZ names; set them when env.account is set, so synth needs no lookup"
    )
    alb_egress: Literal["nat", "none"] = Field(
        default="nat",
        description="nat: the ALB's subnets reach the OIDC provider through NAT; none: the provider is reachable "
        "privately (VPN, Direct Connect, Transit Gateway)",
    )
    allowed_cidrs: list[str] = Field(
        default_factory=lambda: ["10.0.0.0/8"],
        min_length=1,
        description="networks whose agents may reach the internal load balancer",
    )

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value)
        if network.prefixlen > 20:
            raise ValueError(f"{value} is too small: use a /20 or larger for five subnet tiers in two AZs")
        return value

    @field_validator("allowed_cidrs")
    @classmethod
    def _allowed(cls, values: list[str]) -> list[str]:
        for value in values:
            if ipaddress.ip_network(value).prefixlen == 0:
                raise ValueError("the load balancer is internal; 0.0.0.0/0 is not an agent network")
        return values

    @field_validator("availability_zones")
    @classmethod
    def _azs(cls, values: list[str]) -> list[str]:
        if values and len(values) != 2:
            raise ValueError(f"give exactly two availability zones, got {len(values)}")
        return values


class OidcConfig(_Strict):
    """The organisation's identity provider, used by the load balancer's authenticate-oidc action."""

    issuer: str = Field(pattern=_HTTPS_URL)
    authorization_endpoint: str = Field(pattern=_HTTPS_URL)
    token_endpoint: str = Field(pattern=_HTTPS_URL)
    user_info_endpoint: str = Field(pattern=_HTTPS_URL)
    client_id: str = Field(min_length=1)
    client_secret_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$",
        description="Secrets Manager secret whose value is the client secret",
    )
    scope: str = "openid profile email"
    group_claim: str = Field(default="groups", description="the ID-token/userinfo claim that lists groups")


class AuthConfig(_Strict):
    certificate_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$",
        description="ACM certificate for the HTTPS listener (required)",
    )
    oidc: OidcConfig
    session_timeout_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60)


class InstanceScaling(_Strict):
    """An instance-backed endpoint (production profile): always at least one instance."""

    instance_type: str | None = Field(default=None, description="defaults to the model config's")
    min_instances: int = Field(default=1, ge=1)
    max_instances: int = Field(default=2, ge=1)
    invocations_per_instance: int = Field(default=100, gt=0, description="target-tracking target, per minute")

    @model_validator(mode="after")
    def _bounds(self) -> InstanceScaling:
        if self.max_instances < self.min_instances:
            raise ValueError(f"max_instances ({self.max_instances}) is below min_instances ({self.min_instances})")
        return self


class ServerlessSizing(_Strict):
    """A serverless embedding endpoint (cheap profile)."""

    memory_mb: int = Field(default=3072, description="1024 to 6144, in steps of 1024")
    max_concurrency: int = Field(default=10, ge=1, le=200)

    @field_validator("memory_mb")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value % 1024 or not 1024 <= value <= 6144:
            raise ValueError(f"serverless memory must be 1024..6144 in steps of 1024, got {value}")
        return value


class ScaleToZero(_Strict):
    """The LLM as an inference component whose copies and instances scale to zero (cheap profile)."""

    instance_type: str | None = Field(default=None, description="defaults to the model config's")
    max_instances: int = Field(default=1, ge=1)
    max_copies: int = Field(default=1, ge=1)
    accelerators_per_copy: int = Field(default=1, ge=0)
    memory_mb_per_copy: int = Field(default=8192, ge=1024)
    invocations_per_copy: int = Field(default=10, gt=0, description="target-tracking target, per minute")
    active_hours_per_month: float = Field(
        default=176, ge=0, le=744, description="cost estimate: hours a copy is up (e.g. working hours)"
    )


class _EndpointBase(_Strict):
    task: ClassVar[str]

    config: str = Field(description="a jumpstart_configs/ entry")
    endpoint_name: str | None = Field(default=None, pattern=_ENDPOINT_NAME)
    production: InstanceScaling = InstanceScaling()
    data_capture_percent: int = Field(
        default=0, ge=0, le=100, description="share of requests captured (they may hold PHI; 0 turns it off)"
    )

    @field_validator("config")
    @classmethod
    def _known_model(cls, value: str) -> str:
        model = _model(value)
        if model.task != cls.task:
            raise ValueError(f"{value} is a {model.task} model, this endpoint needs a {cls.task} model")
        if not model.deployable:
            raise ValueError(f"{value} is a local-only stand-in (deployable: false), not a SageMaker model")
        return value

    @property
    def model(self) -> ModelConfig:
        return _model(self.config)


class EmbeddingEndpoint(_EndpointBase):
    task: ClassVar[str] = "embedding"
    serverless: ServerlessSizing = ServerlessSizing()


class LlmEndpoint(_EndpointBase):
    task: ClassVar[str] = "text-generation"
    accept_eula: bool = Field(
        default=False, validate_default=True, description="accept a gated model's licence (read it first)"
    )
    scale_to_zero: ScaleToZero = ScaleToZero()

    @field_validator("accept_eula")
    @classmethod
    def _eula(cls, value: bool, info: ValidationInfo) -> bool:
        name = info.data.get("config")
        if name and _model(name).eula_required and not value:
            raise ValueError(
                f"{name} is a gated model: read its licence in SageMaker JumpStart, then set accept_eula: true"
            )
        return value


class OpenSearchSize(_Strict):
    instance_type: str = "t3.medium.search"
    data_nodes: int = Field(default=1, ge=1)
    volume_gb: int = Field(default=20, ge=10, le=16384)
    dedicated_master_type: str | None = None
    dedicated_masters: Literal[0, 3, 5] = 0

    @field_validator("instance_type", "dedicated_master_type")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        if value is not None and _OPENSEARCH_UNSUPPORTED.match(value):
            raise ValueError(f"{value} supports neither encryption at rest nor fine-grained access control")
        if value is not None and not value.endswith(".search"):
            raise ValueError(f"{value} is not an OpenSearch instance type (they end in .search)")
        return value

    @model_validator(mode="after")
    def _masters(self) -> OpenSearchSize:
        if (self.dedicated_masters > 0) != (self.dedicated_master_type is not None):
            raise ValueError("set dedicated_master_type and dedicated_masters (3 or 5) together")
        return self


class OpenSearchConfig(_Strict):
    engine_version: str = Field(default="OpenSearch_2.19", pattern=r"^OpenSearch_\d+\.\d+$")
    domain_name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{2,27}$")
    cheap: OpenSearchSize = OpenSearchSize()
    production: OpenSearchSize = OpenSearchSize(
        instance_type="r6g.large.search",
        data_nodes=2,
        volume_gb=100,
        dedicated_master_type="m6g.large.search",
        dedicated_masters=3,
    )
    hnsw_m: int = Field(default=16, ge=4, le=128)
    hnsw_ef_construction: int = Field(default=128, ge=16, le=1024)

    @field_validator("production")
    @classmethod
    def _zone_aware(cls, value: OpenSearchSize) -> OpenSearchSize:
        if value.data_nodes < 2 or value.data_nodes % 2:
            raise ValueError(
                f"data_nodes must be an even number >= 2 (zone awareness over 2 AZs), got {value.data_nodes}"
            )
        return value


class FargateSize(_Strict):
    cpu: int = Field(default=512, description="CPU units: 256, 512, 1024, 2048 or 4096")
    memory_mib: int = 2048
    min_tasks: int = Field(default=1, ge=1)
    max_tasks: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _combination(self) -> FargateSize:
        allowed = _FARGATE_MEMORY.get(self.cpu)
        if allowed is None:
            raise ValueError(f"cpu must be one of {sorted(_FARGATE_MEMORY)}, got {self.cpu}")
        if self.memory_mib not in allowed:
            raise ValueError(
                f"memory_mib {self.memory_mib} is not valid with cpu {self.cpu} "
                f"({allowed.start}..{allowed.stop - 1} in steps of {allowed.step})"
            )
        if self.max_tasks < self.min_tasks:
            raise ValueError(f"max_tasks ({self.max_tasks}) is below min_tasks ({self.min_tasks})")
        return self


class FargateConfig(_Strict):
    cheap: FargateSize = FargateSize()
    production: FargateSize = FargateSize(cpu=1024, memory_mib=4096, min_tasks=2, max_tasks=6)
    cpu_target_percent: int = Field(default=60, ge=10, le=90)
    requests_per_target: int = Field(default=300, gt=0, description="ALB requests per task per minute")


class AlarmsConfig(_Strict):
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    embedding_latency_p95_ms: int = Field(default=1000, gt=0)
    llm_latency_p95_ms: int = Field(default=20000, gt=0)
    endpoint_5xx_per_5min: int = Field(default=5, ge=1)
    alb_5xx_per_5min: int = Field(default=10, ge=1)
    alb_p95_response_s: float = Field(default=10.0, gt=0)
    dlq_messages: int = Field(default=1, ge=1)
    opensearch_free_storage_mb: int = Field(default=4096, gt=0)


class UsageConfig(_Strict):
    """Assumptions behind the cost estimate (and nothing else)."""

    questions_per_month: int = Field(default=20_000, ge=0)
    embedding_calls_per_question: int = Field(default=3, ge=0, description="query + grounding checks")
    embedding_seconds_per_call: float = Field(default=0.15, gt=0)
    ingest_files_per_month: int = Field(default=500, ge=0)
    kb_storage_gb: float = Field(default=5, ge=0)
    export_storage_gb: float = Field(default=2, ge=0)
    log_ingest_gb_per_month: float = Field(default=5, ge=0)
    endpoint_data_gb_per_month: float = Field(default=10, ge=0, description="through interface VPC endpoints")
    nat_data_gb_per_month: float = Field(default=1, ge=0)
    alb_average_lcu: float = Field(default=1, ge=0)


class IngestionConfig(_Strict):
    batch_size: int = Field(default=5, ge=1, le=10)
    max_receive_count: int = Field(default=3, ge=1, le=10)
    timeout_s: int = Field(default=300, ge=30, le=900)
    memory_mb: int = Field(default=2048, ge=512, le=10240)
    max_concurrency: int = Field(default=2, ge=2, le=1000, description="SQS event source's maximum concurrency")
    reserved_concurrency: int | None = Field(default=None, ge=1)


class DeployConfig(_Strict):
    """One CareQA deployment: ``npx cdk deploy --all -c config=<this file>``."""

    app_name: str = Field(default="careqa", pattern=r"^[a-z][a-z0-9-]{1,19}$")
    env: EnvConfig
    profile: Profile = "cheap"
    network: NetworkConfig = NetworkConfig()
    tenants: list[Tenant] = Field(min_length=1)
    auth: AuthConfig
    embedding: EmbeddingEndpoint
    llm: LlmEndpoint
    opensearch: OpenSearchConfig = OpenSearchConfig()
    fargate: FargateConfig = FargateConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    usage: UsageConfig = UsageConfig()
    ingestion: IngestionConfig = IngestionConfig()
    log_retention_days: int = Field(default=365, ge=1)

    @field_validator("tenants")
    @classmethod
    def _unique(cls, tenants: list[Tenant]) -> list[Tenant]:
        unique_tenant_ids([t.id for t in tenants])
        shared = shared_identity((i.claim, i.value, t.id) for t in tenants for i in t.identities)
        if shared:
            _, claim, value, owner, tenant = shared
            raise ValueError(
                f"{claim} {value!r} is mapped to both {owner!r} and {tenant!r}; an identity belongs to one tenant"
            )
        return tenants

    @model_validator(mode="after")
    def _deployable_here(self) -> DeployConfig:
        region = self.env.region
        for field in ("embedding", "llm"):
            model = getattr(self, field).model
            if region not in model.image_uris:
                raise ValueError(
                    f"{field}.config: {model.name} has no container image pinned for {region} "
                    f"(pinned: {', '.join(sorted(model.image_uris))})"
                )
        if self.embedding_endpoint_name == self.llm_endpoint_name:
            raise ValueError("llm.endpoint_name: the two endpoints need different names")
        embedding = self.embedding.model
        embedding_type = self.embedding.production.instance_type or embedding.default_instance_type or ""
        if self.profile == "cheap" and InstanceType.of(embedding_type).accelerated:
            raise ValueError(
                f"embedding.config: {embedding.name} runs on a GPU instance and serverless inference "
                "(the cheap profile) has none; use a CPU model or profile: production"
            )
        llm_type = self.llm_instance_type("cheap")
        if self.llm.scale_to_zero.accelerators_per_copy and not InstanceType.of(llm_type).accelerated:
            raise ValueError(f"llm.scale_to_zero.accelerators_per_copy: {llm_type} has no accelerators; set 0")
        return self

    # -- derived names -------------------------------------------------------------------------------
    @property
    def embedding_endpoint_name(self) -> str:
        return self.embedding.endpoint_name or f"{self.app_name}-embedding"

    @property
    def llm_endpoint_name(self) -> str:
        return self.llm.endpoint_name or f"{self.app_name}-llm"

    @property
    def domain_name(self) -> str:
        return self.opensearch.domain_name or f"{self.app_name}-kb"

    @property
    def stack_prefix(self) -> str:
        return "".join(part.capitalize() for part in self.app_name.split("-"))

    def embedding_instance_type(self) -> str:
        return self.embedding.production.instance_type or str(self.embedding.model.default_instance_type)

    def llm_instance_type(self, profile: Profile) -> str:
        explicit = self.llm.scale_to_zero.instance_type if profile == "cheap" else self.llm.production.instance_type
        return explicit or str(self.llm.model.default_instance_type)

    def with_profile(self, profile: Profile) -> DeployConfig:
        """The same deployment under another profile (validated again)."""
        return parse_deploy_config(
            {**self.model_dump(exclude_none=True), "profile": profile}, source=f"profile {profile}"
        )


@lru_cache(maxsize=64)
def _model(name: str) -> ModelConfig:
    try:
        return load_model_config(name)
    except ModelConfigError as exc:
        raise ValueError(str(exc)) from None


def parse_deploy_config(raw: Any, *, source: str = "deploy config") -> DeployConfig:
    """Validate a mapping as a deploy config; raise ``DeployConfigError`` naming each bad field."""
    if not isinstance(raw, dict):
        raise DeployConfigError(f"{source}: expected a mapping at the top level")
    try:
        return DeployConfig.model_validate(raw)
    except ValidationError as exc:
        raise DeployConfigError(f"{source}: {format_validation_errors(exc, root=None)}") from None


def load_deploy_config(path: str | Path, *, overrides: dict[str, Any] | None = None) -> DeployConfig:
    """Read and validate a deploy config file; ``overrides`` replace top-level keys (e.g. ``profile``)."""
    path = Path(path)
    if not path.is_file():
        raise DeployConfigError(f"config: {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DeployConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and overrides:
        raw = {**raw, **overrides}
    return parse_deploy_config(raw, source=str(path))
