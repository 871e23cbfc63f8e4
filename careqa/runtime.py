"""Build the running system from validated settings: the one place that picks transports and drivers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from careqa.answer import AnswerEngine, LinkFn
from careqa.config import AnswerStrategy, ModelRef, Settings
from careqa.errors import ConfigError
from careqa.grounding import GroundingGuard
from careqa.index.base import ChunkIndex
from careqa.retrieve import HybridRetriever
from endpoints import ModelConfig, load_model_config
from endpoints.langchain import EndpointChatModel, EndpointEmbeddings
from endpoints.local import local_transport
from endpoints.transport import Transport

log = logging.getLogger(__name__)


def _transport(ref: ModelRef, config: ModelConfig) -> Transport:
    """The transport ``ref`` names; the SageMaker one is imported only when used, so local runs never load boto3."""
    if ref.transport == "local":
        return local_transport(
            config, timeout_s=ref.timeout_s, max_waiting=ref.queue.max_waiting, max_wait_s=ref.queue.max_wait_s
        )
    from endpoints.sagemaker.transport import SageMakerTransport

    assert ref.endpoint_name is not None
    return SageMakerTransport(
        ref.endpoint_name, inference_component=ref.inference_component, region=ref.region, timeout_s=ref.timeout_s
    )


def _recorded_config(ref: ModelRef) -> str | None:
    """The config the swap tool recorded as live on the endpoint, so a swap needs no redeploy of the service."""
    if ref.transport != "sagemaker" or not ref.follow_swaps or not ref.endpoint_name:
        return None
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from endpoints.sagemaker.errors import ModelAdminError
    from endpoints.sagemaker.record import active_model

    try:
        record = active_model(ref.endpoint_name, boto3.client("ssm", region_name=ref.region))
    except (BotoCoreError, ClientError, ModelAdminError) as exc:
        log.warning("cannot read the active-model record of %s (%s); using %s", ref.endpoint_name, exc, ref.config)
        return None
    if record is not None and record.config_name != ref.config:
        log.info("%s runs %s (swapped from the configured %s)", ref.endpoint_name, record.config_name, ref.config)
        return record.config_name
    return None


def _model_config(ref: ModelRef, field_name: str, task: str) -> ModelConfig:
    name = _recorded_config(ref) or ref.config
    try:
        config = load_model_config(name)
    except ValueError as exc:
        raise ConfigError(f"models.{field_name}.config: {exc}") from exc
    if config.task != task:
        raise ConfigError(f"models.{field_name}.config: {ref.config} is a {config.task} model, expected {task}")
    return config


@dataclass
class Runtime:
    """Lazily built components; each is created once and shared."""

    settings: Settings
    link: LinkFn = field(default=lambda tenant, url: url)

    def __post_init__(self) -> None:
        # Validate both model configs now, so a bad config fails at start-up, not at the first question.
        self.embedding_config = _model_config(self.settings.models.embedding, "embedding", "embedding")
        self.llm_config = _model_config(self.settings.models.llm, "llm", "text-generation")

    @cached_property
    def embeddings(self) -> EndpointEmbeddings:
        cfg = self.embedding_config
        return EndpointEmbeddings.from_config(cfg, _transport(self.settings.models.embedding, cfg))

    @cached_property
    def chat_model(self) -> EndpointChatModel:
        cfg = self.llm_config
        return EndpointChatModel.from_config(cfg, _transport(self.settings.models.llm, cfg))

    @cached_property
    def index(self) -> ChunkIndex:
        index = self.open_index(self.embedding_config)
        # LanceDB answers from a local file; OpenSearch refuses an incomplete copy per tenant when it is read
        # (no requests at start-up, so a cluster that is briefly unreachable does not stop the service)
        local = self.settings.index.driver == "lancedb"
        incomplete = index.incomplete_tenants([t.id for t in self.settings.tenants]) if local else []
        if incomplete:
            # a copy still being built: serving it would answer from part of the knowledge base
            raise ConfigError(
                f"models.embedding.config: the index copy for {self.embedding_config.name} is not complete for "
                f"tenant(s) {', '.join(incomplete)}; run `careqa ingest --reembed` for them, or serve the previous "
                "embedding model until it is"
            )
        return index

    def open_index(self, config: ModelConfig, *, reembed: bool = False) -> ChunkIndex:
        """The index (or its re-embedded copy) that holds ``config``'s vectors; ``reembed`` opens it for building."""
        from careqa.index.factory import open_index

        assert config.embedding_dimension is not None
        return open_index(
            self.settings.index.driver,
            dimension=config.embedding_dimension,
            embedding_model=config.identity,
            path=self.settings.index_path,
            opensearch=self.settings.index.opensearch,
            normalized_embeddings=config.normalize_embeddings,
            reembed=reembed,
        )

    def embedding_model(self, config_name: str) -> tuple[ModelConfig, EndpointEmbeddings, ChunkIndex]:
        """Another embedding model's local stand-in and its index copy (opened for writing), loaded once."""
        cache = self.__dict__.setdefault("_embedding_models", {})
        if config_name not in cache:
            config, embeddings = self.embeddings_for(config_name)
            cache[config_name] = (config, embeddings, self.open_index(config, reembed=True))
        return cache[config_name]  # type: ignore[no-any-return]

    def embeddings_for(self, config_name: str) -> tuple[ModelConfig, EndpointEmbeddings]:
        """Another embedding model, served by its local stand-in (re-embedding, model comparisons)."""
        ref = self.settings.models.embedding.model_copy(
            update={"config": config_name, "transport": "local", "endpoint_name": None, "follow_swaps": False}
        )
        config = _model_config(ref, "embedding", "embedding")
        if config.local is None:
            raise ConfigError(f"{config_name} has no local stand-in to embed with")
        return config, EndpointEmbeddings.from_config(config, _transport(ref, config))

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever(self.index, self.embeddings, self.settings.retrieval)

    @cached_property
    def engine(self) -> AnswerEngine:
        return self.answer_engine()

    def answer_engine(
        self,
        settings: Settings | None = None,
        *,
        answer_mode: AnswerStrategy | None = None,
        llm: tuple[ModelConfig, EndpointChatModel] | None = None,
        embedding: tuple[ModelConfig, EndpointEmbeddings, ChunkIndex] | None = None,
    ) -> AnswerEngine:
        """An answer engine over this runtime's index and embeddings, optionally with other settings, LLM or
        embedding model (with the index copy that holds its vectors: ``embedding_model``).

        ``careqa eval answers`` builds one per configuration it compares; the service uses ``engine``.
        """
        settings = settings or self.settings
        llm_config, chat_model = llm or (self.llm_config, self.chat_model)
        embedding_config, embeddings, index = embedding or (self.embedding_config, self.embeddings, self.index)
        retriever = (
            self.retriever
            if settings is self.settings and embedding is None
            else HybridRetriever(index, embeddings, settings.retrieval)
        )
        return AnswerEngine(
            settings,
            retriever,
            chat_model,
            GroundingGuard(embeddings, settings.guard),
            models={"embedding": embedding_config.model_id, "llm": llm_config.model_id},
            base_model=llm_config.chat_template == "raw",
            link=self.link,
            answer_mode=answer_mode or llm_config.answer_mode,
        )

    def llm(self, config_name: str, *, endpoint_name: str | None = None) -> tuple[ModelConfig, EndpointChatModel]:
        """Another LLM config, served locally (its stand-in) or by ``endpoint_name`` on SageMaker."""
        configured = self.settings.models.llm
        # the configured endpoint keeps its inference component; another endpoint is addressed as a whole
        component = configured.inference_component if endpoint_name == configured.endpoint_name else None
        ref = configured.model_copy(
            update={
                "config": config_name,
                "transport": "sagemaker" if endpoint_name else "local",
                "endpoint_name": endpoint_name,
                "follow_swaps": False,
                "inference_component": component,
            }
        )
        config = _model_config(ref, "llm", "text-generation")
        if ref.transport == "local" and config.local is None:
            raise ConfigError(f"{config_name} has no local stand-in: name the SageMaker endpoint that serves it")
        return config, EndpointChatModel.from_config(config, _transport(ref, config))

    def warm_up(self, *, llm: bool = True) -> None:
        """Load local models now rather than on the first question (the LLM too unless ``llm`` is false: the
        reader never calls it)."""
        for transport in (
            (self.embeddings.transport, self.chat_model.transport) if llm else (self.embeddings.transport,)
        ):
            container = getattr(transport, "container", None)
            if container is not None:
                container.warm_up()
