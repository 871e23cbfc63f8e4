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
        from careqa.index.factory import open_index

        assert self.embedding_config.embedding_dimension is not None
        return open_index(
            self.settings.index.driver,
            dimension=self.embedding_config.embedding_dimension,
            embedding_model=self.embedding_config.model_id,
            path=self.settings.index_path,
            opensearch=self.settings.index.opensearch,
            normalized_embeddings=self.embedding_config.normalize_embeddings,
        )

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
    ) -> AnswerEngine:
        """An answer engine over this runtime's index and embeddings, optionally with other settings or LLM.

        ``careqa eval answers`` builds one per configuration it compares; the service uses ``engine``.
        """
        settings = settings or self.settings
        llm_config, chat_model = llm or (self.llm_config, self.chat_model)
        retriever = (
            self.retriever
            if settings is self.settings
            else HybridRetriever(self.index, self.embeddings, settings.retrieval)
        )
        return AnswerEngine(
            settings,
            retriever,
            chat_model,
            GroundingGuard(self.embeddings, settings.guard),
            models={"embedding": self.embedding_config.model_id, "llm": llm_config.model_id},
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

    def warm_up(self) -> None:
        """Load local models now rather than on the first question."""
        for transport in (self.embeddings.transport, self.chat_model.transport):
            container = getattr(transport, "container", None)
            if container is not None:
                container.warm_up()
