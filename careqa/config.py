"""Typed configuration, validated at start-up: a YAML deployment file plus ``CAREQA_*`` environment overrides.

A bad value fails fast with a message naming the field, e.g. ``retrieval.top_k: Input should be
greater than 0``. Relative paths in the YAML file are resolved against the file's own directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from careqa.alb_keys import arn_partition_region, check_url_template, public_key_url
from careqa.errors import ConfigError, UnknownTenantError
from careqa.knowledge import MAX_FILE_BYTES
from endpoints.errors import format_validation_errors

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config" / "local.yaml"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class StrictModel(BaseModel):
    """The base of every config section here and in the deploy config: an unknown field is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def unique_tenant_ids(ids: Sequence[str]) -> None:
    """Raise ``ValueError`` naming each tenant id listed more than once."""
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate tenant ids: {duplicates}")


def shared_identity(mappings: Iterable[tuple[str, str, str]]) -> tuple[int, str, str, str, str] | None:
    """The first identity two tenants claim, among ``(claim, value, tenant)`` mappings: an identity has one tenant.

    Returns ``(position, claim, value, first tenant, other tenant)``, or None when every identity has one tenant.
    """
    owners: dict[tuple[str, str], str] = {}
    for position, (claim, value, tenant) in enumerate(mappings):
        owner = owners.setdefault((claim, value), tenant)
        if owner != tenant:
            return position, claim, value, owner, tenant
    return None


class FewShotExample(StrictModel):
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


class PromptConfig(StrictModel):
    """A tenant's prompt: the instruction line and the worked examples shown to the model."""

    instructions: str = DEFAULT_INSTRUCTIONS
    examples: list[FewShotExample] = Field(default_factory=lambda: list(DEFAULT_EXAMPLES), max_length=4)


class TenantConfig(StrictModel):
    id: str = Field(pattern=TENANT_PATTERN)
    name: str = Field(min_length=1)
    kb_path: Path | None = Field(default=None, description="the tenant's knowledge-base folder (local runs)")
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    glossary: dict[str, str] = Field(
        default_factory=dict,
        description="the tenant's shorthand (abbreviation -> words), added to the built-in healthcare shorthand",
    )
    builtin_glossaries: list[Literal["shorthand", "us_states", "controlled_substances"]] = Field(
        default_factory=lambda: ["shorthand", "us_states", "controlled_substances"],
        description="the built-in word lists this tenant's questions are read with: healthcare shorthand, US "
        "states read as such, drugs read with their federal schedule (a knowledge base about side effects rather "
        "than dispensing leaves that one out)",
    )
    answer_mode: Literal["reader", "generate", "auto"] | None = Field(
        default=None, description="who writes this tenant's answers; default: the LLM config's answer_mode"
    )
    min_score: float | None = Field(
        default=None,
        ge=-1,
        le=2,
        description="the reader's bar for this tenant's knowledge base (default: reader.min_score). A large "
        "knowledge base holds a close-looking passage for almost any question and needs a higher bar; calibrate "
        "it with `careqa eval answers --configs reader:reader.min_score=...` on the tenant's judged questions",
    )
    min_lexical: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="the reader's lexical bar for this tenant (default: reader.min_lexical). On a large knowledge "
        "base the best BM25 hit is often a document that repeats one rare word, and typos miss it: calibrate with "
        "`careqa eval answers --configs reader:reader.min_lexical=...`",
    )

    @field_validator("glossary")
    @classmethod
    def _glossary_terms(cls, glossary: dict[str, str]) -> dict[str, str]:
        for term, expansion in glossary.items():
            if not term.strip() or not expansion.strip():
                raise ValueError(f"glossary: {term!r} -> {expansion!r}: terms and expansions must not be empty")
        return glossary


class IdentityConfig(StrictModel):
    """A bearer token (stored only as its SHA-256) and the agent identity and tenant it stands for."""

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    subject: str = Field(min_length=1)
    tenant: str
    demo: bool = Field(default=False, description="a published demo token: refused on non-loopback hosts")


class LocalQueueConfig(StrictModel):
    """A local model serves one request at a time; these bound the queue in front of it."""

    max_waiting: int = Field(default=8, ge=0, le=1000, description="requests that may wait for their turn")
    max_wait_s: float = Field(
        default=5.0, gt=0, le=600, description="a request that cannot start within this gets 503 with Retry-After"
    )


class ModelRef(StrictModel):
    config: str = Field(description="a jumpstart_configs/ entry")
    queue: LocalQueueConfig = Field(default_factory=LocalQueueConfig, description="local transport only")
    transport: Literal["local", "sagemaker"] = "local"
    endpoint_name: str | None = None
    region: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    follow_swaps: bool = Field(
        default=True, description="with sagemaker, use the model the swap tool recorded as live on the endpoint"
    )
    inference_component: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
        description="with sagemaker, the inference component to invoke (an endpoint that scales to zero copies)",
    )

    @model_validator(mode="after")
    def _endpoint_for_sagemaker(self) -> ModelRef:
        if self.transport == "sagemaker" and not self.endpoint_name:
            raise ValueError("endpoint_name is required when transport is 'sagemaker'")
        return self


class ModelsConfig(StrictModel):
    embedding: ModelRef = ModelRef(config="huggingface-textembedding-all-MiniLM-L6-v2")
    llm: ModelRef = ModelRef(config="local-gemma-3-270m")


def _field_error(message: str) -> Exception:
    # A custom error type keeps pydantic's "Value error, " prefix out of the message, so it reads
    # "index.opensearch.region: required when auth is sigv4" with the field in the location.
    from pydantic_core import PydanticCustomError

    return PydanticCustomError("invalid_field", message)


def _required_when(condition: bool, what: str) -> None:
    if condition:
        raise _field_error(f"required when {what}")


class OpenSearchConfig(StrictModel):
    """The OpenSearch domain (AWS) or cluster (local) that holds one index per tenant."""

    endpoint: str = Field(description="https://<domain endpoint>; plain http only for a cluster on a loopback host")
    auth: Literal["sigv4", "basic", "none"] = "sigv4"
    region: str | None = Field(default=None, validate_default=True, description="the domain's region (sigv4)")
    username: str | None = Field(default=None, validate_default=True, description="basic auth only")
    password: SecretStr | None = Field(default=None, validate_default=True, description="basic auth only")
    # The IAM policy and the security-plugin role are scoped to careqa-*: change the prefix only for a local cluster.
    index_prefix: str = Field(default="careqa-", pattern=r"^[a-z0-9][a-z0-9._-]{0,60}$")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_retries: int = Field(default=3, ge=0, le=10, description="retries of a 429/502/503/504 answer, with backoff")
    verify_certs: bool = True

    @field_validator("endpoint")
    @classmethod
    def _https_endpoint(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise _field_error("must be an https:// URL (http:// only for a cluster on localhost)")
        if not parts.hostname or parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise _field_error("must be scheme://host[:port], with no path or query")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("region")
    @classmethod
    def _region_for_sigv4(cls, value: str | None, info: Any) -> str | None:
        _required_when(not value and info.data.get("auth") == "sigv4", "auth is sigv4")
        return value

    @field_validator("username", "password")
    @classmethod
    def _credentials_for_basic(cls, value: Any, info: Any) -> Any:
        _required_when(not value and info.data.get("auth") == "basic", "auth is basic")
        return value


class IndexConfig(StrictModel):
    driver: Literal["lancedb", "opensearch"] = "lancedb"
    path: Path | None = Field(default=None, description="the lancedb folder; defaults to <data_dir>/index")
    opensearch: OpenSearchConfig | None = Field(
        default=None, validate_default=True, description="the cluster, required when driver is opensearch"
    )

    @field_validator("opensearch")
    @classmethod
    def _opensearch_for_driver(cls, value: OpenSearchConfig | None, info: Any) -> OpenSearchConfig | None:
        _required_when(value is None and info.data.get("driver") == "opensearch", "driver is opensearch")
        return value


class RetrievalConfig(StrictModel):
    """How documents are found and ranked; ``careqa eval`` compares settings on judged questions."""

    top_k: int = Field(default=4, gt=0, le=20)
    candidates: int = Field(default=100, gt=0, le=200, description="chunk hits taken from lexical (BM25) search")
    dense_candidates: int = Field(default=50, gt=0, le=500, description="chunk hits taken from dense search")
    fusion: Literal["rrf", "score"] = Field(
        default="score",
        description="rrf: weighted reciprocal-rank fusion; score: weighted sum of cosine and max-normalised BM25",
    )
    rrf_k: int = Field(default=60, gt=0)
    lexical_weight: float = Field(
        default=0.1, ge=0, description="with score fusion, BM25 (divided by the best BM25 score) counts this much"
    )
    dense_weight: float = Field(default=1.0, ge=0)
    question_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="with qa_dense=blend, the share of a Q&A pair's question similarity (0: answer chunks only)",
    )
    qa_dense: Literal["blend", "max"] = Field(
        default="max",
        description="a Q&A pair's dense score: blend (question_weight) or the max of question and answer similarity",
    )
    query_parts: int = Field(
        default=0, ge=0, le=16, description="a long question's sentences also embedded on their own (0: none)"
    )
    split_min_words: int = Field(default=30, gt=0, description="questions shorter than this are embedded whole")
    reader_lexical: int = Field(
        default=30, ge=0, le=200, description="BM25 hits (best first) also offered to the reader as candidates"
    )
    min_evidence: float = Field(default=0.40, ge=-1, le=1, description="best cosine similarity needed to answer")
    curated_match: float = Field(
        default=0.80, ge=-1, le=1, description="question similarity to return a curated answer"
    )


AnswerStrategy = Literal["reader", "generate", "auto"]


class ReaderConfig(StrictModel):
    """How the reader picks the Q&A pair or section that answers, and the sentences it quotes (``careqa.reader``).

    Tuned with ``careqa eval answers`` on the public judged set (``sample_kb/judged-answers.jsonl``).
    """

    min_score: float = Field(default=0.45, ge=-1, le=2, description="a unit's score needed to answer from it")
    confident_score: float = Field(
        default=1.0, ge=-1, le=2, description="with answer_mode auto, a score at which the reader answers alone"
    )
    lexical_weight: float = Field(default=0.10, ge=0, le=1, description="share of BM25 in a unit's score")
    sentence_weight: float = Field(
        default=0.30, ge=0, le=2, description="share of a unit's best sentence's similarity in its score"
    )
    rerank_units: int = Field(default=6, ge=1, le=50, description="units scored again by their best sentence")
    phrase_weight: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="added for the share of the question's phrases (two content words in a row) a unit contains, "
        "weighted by their rarity among the candidates",
    )
    heading_weight: float = Field(
        default=0.1, ge=0, le=1, description="added when the question names a unit's heading (two words or more)"
    )
    sentence_cache: int = Field(default=50_000, ge=0, description="knowledge-base sentence embeddings remembered")
    answer_type_weight: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description='added to a unit that states a time ("3 days before", "5 p.m.") when the question asks when '
        "or how long",
    )
    name_weight: float = Field(
        default=0.05, ge=0, le=1, description="added for the share of the question's names a unit contains"
    )
    whole_answer_sentences: int = Field(
        default=4, ge=1, le=20, description="a Q&A answer this short is quoted whole; a longer one, by sentences"
    )
    whole_section_sentences: int = Field(
        default=8, ge=0, le=50, description="a section this short is quoted whole; a longer one, by sentences"
    )
    max_sentences: int = Field(default=3, ge=1, le=10, description="sentences quoted from a long section")
    rival_whole_sentences: int = Field(
        default=5,
        ge=0,
        le=50,
        description="when two places are quoted side by side (rival_margin), each is quoted whole only if this "
        "short; a longer one, by its sentences closest to the question",
    )
    part_overlap_margin: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="a later part of a two-part question gets a new source only if that source's best sentence is "
        "more than this closer to the part than the sentences already quoted",
    )
    rival_margin: float = Field(
        default=0.04,
        ge=0,
        le=1,
        description="when the best place from another source scores within this of the best, and the question is "
        "not a Q&A pair's own, both are quoted (with a note saying so): the reader cannot tell them apart, and "
        "quoting the wrong one alone is a wrong answer. 0 quotes the best alone",
    )
    code_evidence: float = Field(
        default=0.25,
        ge=-1,
        le=1,
        description="the similarity a code's own place (its section heading, or a Q&A pair's title or question, "
        'names every code the question names) needs instead of retrieval.min_evidence: "pt got a 70 on her '
        'ozempic what now" is about code 70 whatever else it says',
    )
    min_lexical: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="the best place must reach this share of the best BM25 score among the candidates, unless the "
        "question is a Q&A pair's own: a place the question's meaning points to but its words do not is where the "
        'embedding model confuses sibling topics; the answer is then "not found". 0 turns the check off',
    )
    repeat_similarity: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="a sentence at least this similar to one already quoted, naming no number, code or name it "
        "lacks, restates it (a Q&A pair's answer and the section it was written from say the same things in other "
        "words): it is left out",
    )
    sentence_margin: float = Field(
        default=0.2, ge=0, le=1, description="sentences scoring within this of the best one are quoted too"
    )
    sentence_lexical_weight: float = Field(default=0.3, ge=0, le=2)
    sentence_code_bonus: float = Field(default=0.2, ge=0, le=2)


class GuardConfig(StrictModel):
    min_similarity: float = Field(default=0.55, ge=-1, le=1, description="sentence-to-passage cosine needed")
    min_coverage: float = Field(
        default=0.75, ge=0, le=1, description="share of a sentence's content words in the passage"
    )
    min_relevance: float = Field(default=0.30, ge=-1, le=1, description="sentence-to-question cosine needed")
    min_statement_coverage: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="a sentence with numbers: share of its content words in the one passage sentence holding them",
    )
    min_clause_coverage: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="share of each clause's content words that one passage sentence must hold (0: not checked)",
    )
    topic_margin: float = Field(
        default=0.05,
        ge=0,
        le=2,
        description="a sentence is on topic only if its passage's reader score is within this of the best unit's",
    )


class LimitsConfig(StrictModel):
    max_question_chars: int = Field(default=1000, gt=0, le=20000)
    max_comment_chars: int = Field(default=2000, gt=0)
    source_link_ttl_s: int = Field(default=3600, gt=0)


class FeedbackConfig(StrictModel):
    """Where answers and ratings are stored: SQLite locally, a DynamoDB table on AWS."""

    driver: Literal["sqlite", "dynamodb"] = "sqlite"
    path: Path | None = Field(default=None, description="sqlite: defaults to <data_dir>/feedback.sqlite3")
    table: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{3,255}$", description="dynamodb: the table's name (required)"
    )
    region: str | None = Field(default=None, description="dynamodb: the table's region (default: the SDK's)")

    @model_validator(mode="after")
    def _table_for_dynamodb(self) -> FeedbackConfig:
        if self.driver == "dynamodb" and not self.table:
            raise ValueError("table is required when driver is 'dynamodb'")
        return self


class SourcesConfig(StrictModel):
    """Where ``GET /sources/...`` reads the knowledge-base files it renders (``careqa/sources.py``)."""

    driver: Literal["local", "s3"] = Field(
        default="local",
        description="local: each tenant's kb_path; s3: the knowledge-base bucket, objects under <tenant>/<path>",
    )
    bucket: str | None = Field(
        default=None,
        validate_default=True,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="s3: the knowledge-base bucket's name (required)",
    )
    region: str | None = Field(default=None, description="s3: the bucket's region (default: the SDK's)")
    max_bytes: int = Field(
        default=MAX_FILE_BYTES,
        gt=0,
        le=MAX_FILE_BYTES,
        description="the largest document rendered (default and ceiling: the largest file ingestion accepts)",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="s3: connect and read timeout of one attempt")

    @field_validator("bucket")
    @classmethod
    def _bucket_for_s3(cls, value: str | None, info: Any) -> str | None:
        _required_when(not value and info.data.get("driver") == "s3", "driver is s3")
        return value


class OidcIdentityConfig(StrictModel):
    """An OIDC subject (``sub``) or group, as the load balancer's identity provider names it, and its tenant."""

    claim: Literal["sub", "group"]
    value: str = Field(min_length=1)
    tenant: str


class AlbOidcConfig(StrictModel):
    """Agents authenticated by the load balancer's authenticate-oidc action (see cdk/README.md, "Authentication").

    The service verifies the load balancer's signed ``x-amzn-oidc-data`` token (careqa/auth.py): the
    load balancer's ARN is what the token is checked against, and its region and partition say where
    the signing keys are published.
    """

    identities: list[OidcIdentityConfig] = Field(min_length=1)
    group_claim: str = Field(default="groups", min_length=1, description="the user claim that lists groups")
    load_balancer_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/.+$",
        description="the load balancer that signs the x-amzn-oidc-data token (its 'signer' header must be this)",
    )
    public_key_url: str | None = Field(
        default=None,
        description="where the load balancer's public keys are, with {kid}; derived from the ARN's region for "
        "the partitions AWS documents (commercial, GovCloud); required for others",
    )
    key_function: str | None = Field(
        default=None,
        min_length=1,
        description="a Lambda function (name or ARN) that fetches the public keys for the service, which has no "
        "internet route on AWS; unset: the service fetches them itself over HTTPS",
    )
    key_fetch_timeout_s: float = Field(
        default=3.0, gt=0, le=10, description="bound on each public-key fetch; a fetch that fails answers 503"
    )

    @field_validator("public_key_url")
    @classmethod
    def _key_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url_template(value)

    @model_validator(mode="after")
    def _documented_partition(self) -> AlbOidcConfig:
        if self.public_key_url is None:
            public_key_url(*arn_partition_region(self.load_balancer_arn))  # raises for undocumented partitions
        return self

    @property
    def key_url_template(self) -> str:
        """The configured key URL, else AWS's published one for the load balancer's region."""
        return self.public_key_url or public_key_url(*arn_partition_region(self.load_balancer_arn))

    @property
    def region(self) -> str:
        return arn_partition_region(self.load_balancer_arn)[1]


class AuthConfig(StrictModel):
    """How agents are authenticated: bearer tokens (``identities``, the default) or the load balancer's OIDC."""

    mode: Literal["bearer", "alb-oidc"] = "bearer"
    alb_oidc: AlbOidcConfig | None = None

    @model_validator(mode="after")
    def _oidc_settings(self) -> AuthConfig:
        if self.mode == "alb-oidc" and self.alb_oidc is None:
            raise ValueError("alb_oidc is required when mode is 'alb-oidc'")
        return self


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
    reader: ReaderConfig = ReaderConfig()
    guard: GuardConfig = GuardConfig()
    limits: LimitsConfig = LimitsConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    sources: SourcesConfig = SourcesConfig()
    auth: AuthConfig = AuthConfig()

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
        unique_tenant_ids([t.id for t in tenants])
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
        oidc_identities = self.auth.alb_oidc.identities if self.auth.alb_oidc else []
        unknown = next((i for i, oidc in enumerate(oidc_identities) if oidc.tenant not in known), None)
        shared = shared_identity((oidc.claim, oidc.value, oidc.tenant) for oidc in oidc_identities)
        if unknown is not None and (shared is None or unknown <= shared[0]):  # the first problem in file order
            where, tenant = f"auth.alb_oidc.identities.{unknown}", oidc_identities[unknown].tenant
            raise ValueError(f"{where}.tenant: unknown tenant {tenant!r}; known: {sorted(known)}")
        if shared is not None:
            i, claim, value, owner, other = shared
            raise ValueError(f"auth.alb_oidc.identities.{i}: {claim} {value!r} is mapped to {owner!r} and {other!r}")
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
        raise ConfigError(f"invalid configuration in {path}: {format_validation_errors(exc)}") from exc
    finally:
        if previous is None:
            os.environ.pop("CAREQA_CONFIG_FILE", None)
        else:
            os.environ["CAREQA_CONFIG_FILE"] = previous
    return _resolve_relative(settings)
