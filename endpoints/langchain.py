"""The models as LangChain components: ``Embeddings`` and a chat model over the clients of ``endpoints.client``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, ConfigDict

from endpoints.client import EmbeddingClient, GenerationClient
from endpoints.codecs import EmbeddingCodec, GenerationCodec, GenerationRequest, embedding_codec, generation_codec
from endpoints.config import ModelConfig
from endpoints.transport import Transport

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class EndpointEmbeddings(BaseModel, Embeddings):
    """Embeddings from a model endpoint; batches respect the model's batch limit."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_id: str
    transport: Any
    codec: EmbeddingCodec
    batch_size: int
    dimension: int
    normalize: bool = True
    max_input_chars: int = 8000

    @classmethod
    def from_config(cls, config: ModelConfig, transport: Transport) -> EndpointEmbeddings:
        assert config.embedding_dimension is not None
        return cls(
            model_id=config.model_id,
            transport=transport,
            codec=embedding_codec(config.payload_format),
            batch_size=config.max_batch_size,
            dimension=config.embedding_dimension,
            normalize=config.normalize_embeddings,
            max_input_chars=config.max_input_chars,
        )

    @property
    def client(self) -> EmbeddingClient:
        """The model client these fields describe (batches, truncation, the dimension check)."""
        return EmbeddingClient(
            name=self.model_id,
            codec=self.codec,
            transport=self.transport,
            dimension=self.dimension,
            batch_size=self.batch_size,
            max_input_chars=self.max_input_chars,
        )

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """``embed_documents`` as an (n, dimension) float64 array, for callers that compute with the vectors."""
        vectors = self.client.embed_array(texts)
        return unit_rows(vectors) if self.normalize else vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0.0, 1.0, norms)


class EndpointChatModel(BaseChatModel):
    """A LangChain chat model over a model endpoint: chat formats get messages, text formats a rendered prompt."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_id: str
    transport: Any
    codec: GenerationCodec
    chat_template: str = "raw"
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: ModelConfig, transport: Transport) -> EndpointChatModel:
        d = config.generation_defaults
        return cls(
            model_id=config.model_id,
            transport=transport,
            codec=generation_codec(config.payload_format),
            chat_template=config.chat_template,
            max_new_tokens=int(d.get("max_new_tokens", 256)),
            temperature=float(d.get("temperature", 0.0)),
            top_p=float(d.get("top_p", 1.0)),
            stop=tuple(d.get("stop", ())),
        )

    @property
    def _llm_type(self) -> str:
        return "careqa-endpoint"

    @property
    def client(self) -> GenerationClient:
        """The model client these fields describe (prompt rendering, generate, stream)."""
        return GenerationClient(
            name=self.model_id, codec=self.codec, transport=self.transport, chat_template=self.chat_template
        )

    def request_for(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> GenerationRequest:
        """The canonical request this model sends for ``messages`` (rendered for text formats)."""
        turns = [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]
        return self.client.request(
            turns,
            max_new_tokens=int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            stop=tuple(stop or ()) + tuple(s for s in self.stop if s not in (stop or ())),
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = self.client.generate(self.request_for(messages, stop, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    @property
    def can_stream(self) -> bool:
        """Whether both the payload format and the transport stream tokens (else ``stream`` yields one chunk)."""
        return self.client.can_stream

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in self.client.stream(self.request_for(messages, stop, **kwargs)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
