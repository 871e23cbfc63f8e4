"""The models as LangChain components: ``Embeddings`` and a chat model over any transport and codec."""

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

from endpoints.codecs import EmbeddingCodec, GenerationCodec, GenerationRequest, embedding_codec, generation_codec
from endpoints.config import ModelConfig
from endpoints.errors import ModelResponseError
from endpoints.templates import render
from endpoints.transport import StreamingTransport, Transport

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

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        body = self.codec.encode_request([t[: self.max_input_chars] for t in texts])
        vectors = self.codec.decode_array(
            self.transport.invoke(body, content_type=self.codec.content_type, accept=self.codec.accept), len(texts)
        )
        if len(texts) and vectors.shape[1] != self.dimension:
            raise ModelResponseError(
                f"{self.model_id}: returned {vectors.shape[1]}-dimensional vectors, config says {self.dimension}"
            )
        if self.normalize:
            vectors = unit_rows(vectors)
        return vectors

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """``embed_documents`` as an (n, dimension) float64 array, for callers that compute with the vectors."""
        parts = [
            self._embed_batch(texts[start : start + self.batch_size]) for start in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dimension))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self._embed_batch([text])[0].tolist()  # type: ignore[no-any-return]


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

    def request_for(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> GenerationRequest:
        """The canonical request this model sends for ``messages`` (rendered for text formats)."""
        turns = tuple({"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages)
        return GenerationRequest(
            prompt="" if self.codec.takes_messages else render(turns, self.chat_template),
            messages=turns if self.codec.takes_messages else (),
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
        body = self.codec.encode_request(self.request_for(messages, stop, **kwargs))
        text = self.codec.decode_response(
            self.transport.invoke(body, content_type=self.codec.content_type, accept=self.codec.accept)
        )
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    @property
    def can_stream(self) -> bool:
        """Whether both the payload format and the transport stream tokens (else ``stream`` yields one chunk)."""
        return self.codec.supports_streaming and isinstance(self.transport, StreamingTransport)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self.request_for(messages, stop, **kwargs)
        if not self.can_stream:
            # Text2text containers (and any transport without a stream) answer in one piece: one chunk.
            text = self.codec.decode_response(
                self.transport.invoke(
                    self.codec.encode_request(request), content_type=self.codec.content_type, accept=self.codec.accept
                )
            )
            pieces: Iterator[str] = iter([text])
        else:
            body = self.codec.encode_stream_request(request)
            chunks = self.transport.invoke_stream(body, content_type=self.codec.content_type, accept=self.codec.accept)
            pieces = self.codec.decode_stream(chunks)
        for piece in pieces:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
