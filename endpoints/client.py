"""One client per model kind: a codec and a transport, so every caller speaks to a model the same way.

``EmbeddingClient.embed`` and ``GenerationClient.generate`` / ``stream`` encode with the model's codec, send
the bytes over the transport (SageMaker or local) and decode the answer. The LangChain adapters
(``endpoints/langchain.py``) and the swap tool's smoke test (``endpoints/sagemaker/execute.py``) both call
these, so what is smoke-tested after a swap is exactly what the service sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from endpoints.codecs import EmbeddingCodec, GenerationCodec, GenerationRequest, embedding_codec, generation_codec
from endpoints.config import ModelConfig
from endpoints.errors import DimensionMismatchError
from endpoints.templates import render
from endpoints.transport import StreamingTransport, Transport


@dataclass(frozen=True)
class EmbeddingClient:
    """Texts in, vectors out, in batches the model accepts; vectors of the wrong size are an error."""

    name: str
    codec: EmbeddingCodec
    transport: Transport
    #: the vector size the model must return (None: not checked)
    dimension: int | None = None
    batch_size: int = 1
    #: longer texts are cut to this many characters before they are sent
    max_input_chars: int = 8000

    @classmethod
    def from_config(cls, config: ModelConfig, transport: Transport) -> EmbeddingClient:
        return cls(
            name=config.model_id,
            codec=embedding_codec(config.payload_format),
            transport=transport,
            dimension=config.embedding_dimension,
            batch_size=config.max_batch_size,
            max_input_chars=config.max_input_chars,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; raises ``DimensionMismatchError`` for a vector of the wrong size."""
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """``embed`` as an (n, dimension) float64 array, for callers that compute with the vectors."""
        parts = [
            self._embed_batch(texts[start : start + self.batch_size]) for start in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dimension or 0))

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        body = self.codec.encode_request([t[: self.max_input_chars] for t in texts])
        raw = self.transport.invoke(body, content_type=self.codec.content_type, accept=self.codec.accept)
        vectors = self.codec.decode_array(raw, len(texts))
        if len(texts) and self.dimension is not None and vectors.shape[1] != self.dimension:
            raise DimensionMismatchError(
                f"{self.name}: returned {vectors.shape[1]}-dimensional vectors, config says {self.dimension}",
                returned=vectors.shape[1],
                expected=self.dimension,
            )
        return vectors


@dataclass(frozen=True)
class GenerationClient:
    """Turns in, text out: chat formats get the messages, text formats a prompt rendered with the template."""

    name: str
    codec: GenerationCodec
    transport: Transport
    chat_template: str = "raw"

    @classmethod
    def from_config(cls, config: ModelConfig, transport: Transport) -> GenerationClient:
        return cls(
            name=config.model_id,
            codec=generation_codec(config.payload_format),
            transport=transport,
            chat_template=config.chat_template,
        )

    def request(self, turns: Sequence[dict[str, str]], **params: Any) -> GenerationRequest:
        """The canonical request for ``turns`` (``role``/``content`` dicts); ``params`` are its other fields."""
        turns = tuple(turns)
        takes_messages = self.codec.takes_messages
        return GenerationRequest(
            prompt="" if takes_messages else render(turns, self.chat_template),
            messages=turns if takes_messages else (),
            **params,
        )

    def generate(self, request: GenerationRequest) -> str:
        """The whole generated text."""
        body = self.codec.encode_request(request)
        raw = self.transport.invoke(body, content_type=self.codec.content_type, accept=self.codec.accept)
        return self.codec.decode_response(raw)

    @property
    def can_stream(self) -> bool:
        """Whether both the payload format and the transport stream tokens (else ``stream`` yields one piece)."""
        return self.codec.supports_streaming and isinstance(self.transport, StreamingTransport)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The generated text in pieces as they arrive; the model is called when the first piece is asked for."""
        if not self.can_stream:
            # Text2text containers (and any transport without a stream) answer in one piece.
            yield self.generate(request)
            return
        body = self.codec.encode_stream_request(request)
        chunks = self.transport.invoke_stream(  # type: ignore[attr-defined]
            body, content_type=self.codec.content_type, accept=self.codec.accept
        )
        yield from self.codec.decode_stream(chunks)
