"""Typed configuration, validated at start-up: a YAML deployment file plus ``CAREQA_*`` environment overrides.

A bad value fails fast with a message naming the field, e.g. ``retrieval.top_k: Input should be
greater than 0``. Relative paths in the YAML file are resolved against the file's own directory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from careqa.errors import ConfigError, UnknownTenantError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config" / "local.yaml"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FewShotExample(_Strict):
    context: str
    question: str
    answer: str


DEFAULT_INSTRUCTIONS = (
    "Answer the customer-care agent's question in one to three short sentences, using only the numbered "
    "passages, and cite each sentence with the passage number like [1]. If the passages do not contain "
    'the answer, reply exactly "Not found in the knowledge base."'
)

DEFAULT_EXAMPLES = [
    FewShotExample(
        context="[1] Store hours: the pharmacy counter is open 8 am to 9 pm on weekdays and 9 am to 6 pm on weekends.",
        question="When is the pharmacy counter open on Saturday?",
        answer="On weekends the pharmacy counter is open 9 am to 6 pm [1].",
    ),
    FewShotExample(
        context="[1] Gift cards can be bought at any register and never expire.",
        question="Can gift cards be used to pay for prescriptions?",
        answer="Not found in the knowledge base.",
    ),
]


class PromptConfig(_Strict):
    """A tenant's prompt: the instruction line and the worked examples shown to the model."""

    instructions: str = DEFAULT_INSTRUCTIONS
    examples: list[FewShotExample] = Field(default_factory=lambda: list(DEFAULT_EXAMPLES), max_length=4)


class TenantConfig(_Strict):
    id: str = Field(pattern=TENANT_PATTERN)
    name: str = Field(min_length=1)
    kb_path: Path | None = Field(default=None, description="the tenant's knowledge-base folder (local runs)")
    prompt: PromptConfig = Field(default_factory=PromptConfig)


class IdentityConfig(_Strict):
    """A bearer token (stored only as its SHA-256) and the agent identity and tenant it stands for."""

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    subject: str = Field(min_length=1)
    tenant: str
    demo: bool = Field(default=False, description="a published demo token: refused on non-loopback hosts")


class ModelRef(_Strict):
    config: str = Field(description="a jumpstart_configs/ entry")
    transport: Literal["local", "sagemaker"] = "local"
    endpoint_name: str | None = None
    region: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    follow_swaps: bool = Field(
        default=True, description="with sagemaker, use the model the swap tool recorded as live on the endpoint"
    )

    @model_validator(mode="after")
    def _endpoint_for_sagemaker(self) -> ModelRef:
        if self.transport == "sagemaker" and not self.endpoint_name:
            raise ValueError("endpoint_name is required when transport is 'sagemaker'")
        return self


class ModelsConfig(_Strict):
    embedding: ModelRef = ModelRef(config="huggingface-textembedding-all-MiniLM-L6-v2")
    llm: ModelRef = ModelRef(config="local-gemma-3-270m")


class IndexConfig(_Strict):
    driver: Literal["lancedb"] = "lancedb"
    path: Path | None = Field(default=None, description="defaults to <data_dir>/index")


class RetrievalConfig(_Strict):
    top_k: int = Field(default=4, gt=0, le=20)
    candidates: int = Field(default=20, gt=0, le=200, description="hits taken from each of lexical and dense search")
    rrf_k: int = Field(default=60, gt=0)
    lexical_weight: float = Field(default=1.0, ge=0)
    dense_weight: float = Field(default=1.0, ge=0)
    min_evidence: float = Field(default=0.40, ge=-1, le=1, description="best cosine similarity needed to answer")
    curated_match: float = Field(
        default=0.80, ge=-1, le=1, description="question similarity to return a curated answer"
    )


class GuardConfig(_Strict):
    min_similarity: float = Field(default=0.55, ge=-1, le=1, description="sentence-to-passage cosine needed")
    min_coverage: float = Field(
        default=0.75, ge=0, le=1, description="share of a sentence's content words in the passage"
    )
    min_relevance: float = Field(default=0.30, ge=-1, le=1, description="sentence-to-question cosine needed")
    extractive_min_similarity: float = Field(default=0.45, ge=-1, le=1)


class LimitsConfig(_Strict):
    max_question_chars: int = Field(default=1000, gt=0, le=20000)
    max_comment_chars: int = Field(default=2000, gt=0)
    source_link_ttl_s: int = Field(default=3600, gt=0)


class FeedbackConfig(_Strict):
    driver: Literal["sqlite"] = "sqlite"
    path: Path | None = Field(default=None, description="defaults to <data_dir>/feedback.sqlite3")


class Settings(BaseSettings):
    """All of CareQA's settings. Sources, strongest first: arguments, ``CAREQA_*`` env, the YAML file."""

    model_config = SettingsConfigDict(env_prefix="CAREQA_", env_nested_delimiter="__", extra="forbid")

    config_file: Path = DEFAULT_CONFIG
    data_dir: Path = Path(".careqa")
    link_secret: SecretStr | None = Field(default=None, description="HMAC key for signed source links")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    tenants: list[TenantConfig] = Field(min_length=1)
    identities: list[IdentityConfig] = Field(default_factory=list)
    models: ModelsConfig = ModelsConfig()
    index: IndexConfig = IndexConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    guard: GuardConfig = GuardConfig()
    limits: LimitsConfig = LimitsConfig()
    feedback: FeedbackConfig = FeedbackConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = os.environ.get("CAREQA_CONFIG_FILE", str(DEFAULT_CONFIG))
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))

    @field_validator("tenants")
    @classmethod
    def _unique_tenants(cls, tenants: list[TenantConfig]) -> list[TenantConfig]:
        ids = [t.id for t in tenants]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate tenant ids: {duplicates}")
        return tenants

    @model_validator(mode="after")
    def _identities_name_known_tenants(self) -> Settings:
        known = {t.id for t in self.tenants}
        for i, identity in enumerate(self.identities):
            if identity.tenant not in known:
                raise ValueError(f"identities.{i}.tenant: unknown tenant {identity.tenant!r}; known: {sorted(known)}")
        hashes = [i.token_sha256 for i in self.identities]
        if len(hashes) != len(set(hashes)):
            raise ValueError("identities: the same token is listed twice")
        return self

    def tenant(self, tenant_id: str) -> TenantConfig:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise UnknownTenantError(
            f"unknown tenant {tenant_id!r}; configured tenants: {', '.join(t.id for t in self.tenants)}"
        )

    @property
    def index_path(self) -> Path:
        return self.index.path or self.data_dir / "index"

    @property
    def feedback_path(self) -> Path:
        return self.feedback.path or self.data_dir / "feedback.sqlite3"


def hash_token(token: str) -> str:
    """The SHA-256 under which a bearer token is stored in the config."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _resolve_relative(settings: Settings) -> Settings:
    base = settings.config_file.resolve().parent
    tenants = [
        t.model_copy(update={"kb_path": (base / t.kb_path).resolve()})
        if t.kb_path and not t.kb_path.is_absolute()
        else t
        for t in settings.tenants
    ]
    return settings.model_copy(update={"tenants": tenants})


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"{loc or 'config'}: {err['msg']}")
    return "; ".join(lines)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Load and validate settings; raise ConfigError naming each bad field."""
    path = Path(config_file or os.environ.get("CAREQA_CONFIG_FILE") or DEFAULT_CONFIG)
    if not path.is_file():
        raise ConfigError(f"config_file: {path} does not exist")
    previous = os.environ.get("CAREQA_CONFIG_FILE")
    os.environ["CAREQA_CONFIG_FILE"] = str(path)
    try:
        settings = Settings(config_file=path, **overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration in {path}: {format_validation_error(exc)}") from exc
    finally:
        if previous is None:
            os.environ.pop("CAREQA_CONFIG_FILE", None)
        else:
            os.environ["CAREQA_CONFIG_FILE"] = previous
    return _resolve_relative(settings)
