"""Payload codecs: one class per JumpStart payload family.

Each codec has two sides. The client side (``encode_request`` / ``decode_response``) is what the
service uses against any endpoint. The container side (``decode_request`` / ``encode_response``) is
what a JumpStart container does with those bytes; the local transport uses it to serve pip-installed
models behind exactly the same contract, and tests use it to prove that the two sides agree.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import orjson

from endpoints.containers import ContainerFamily
from endpoints.errors import ModelResponseError, StreamingNotSupportedError
from endpoints.streaming import iter_events, pseudo_tokens, sse_done, sse_event

JSON = "application/json"


@dataclass(frozen=True)
class GenerationRequest:
    """A generation call in canonical form: a prompt (text formats) or messages (chat formats)."""

    prompt: str = ""
    messages: tuple[dict[str, str], ...] = ()
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _load_json(body: bytes, what: str) -> Any:
    # orjson: an embedding response is tens of thousands of numbers, parsed on every batch of an ingest, and
    # orjson reads them several times faster than json. It also refuses NaN and Infinity, which are not JSON.
    try:
        return orjson.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # orjson.JSONDecodeError is a json.JSONDecodeError
        preview = body[:120].decode("utf-8", "replace")
        reason = exc.msg if hasattr(exc, "msg") else exc
        raise ModelResponseError(f"malformed {what}: not JSON ({reason}): {preview!r}") from exc


def _raise_if_error(payload: Any) -> None:
    """Recognise the error bodies JumpStart containers return and raise them as ModelResponseError."""
    if not isinstance(payload, dict):
        return
    err = payload.get("error")
    if isinstance(err, dict):  # OpenAI-compatible servers
        raise ModelResponseError(f"model error: {err.get('message') or err}")
    if isinstance(err, str):  # TGI / TEI
        kind = payload.get("error_type")
        raise ModelResponseError(f"model error{f' ({kind})' if kind else ''}: {err}")
    if payload.get("object") == "error" or ("code" in payload and "message" in payload and "type" in payload):
        raise ModelResponseError(f"model error: {payload.get('message')}")


def _dumps(payload: Any) -> bytes:
    """Request bodies (and small responses): the bytes ``json.dumps`` writes, as endpoints have always received."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _dumps_vectors(payload: Any) -> bytes:
    """Container side: a response full of vectors, numpy arrays written directly (float32 in its shortest form).

    Only the local stand-in containers write these; writing 32 x 384 floats through ``json.dumps`` of a
    Python list took longer than parsing them back.
    """
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


class EmbeddingCodec(ABC):
    task: ClassVar[str] = "embedding"
    #: the container families whose servers read this request and write this response (endpoints/containers.py)
    families: ClassVar[frozenset[ContainerFamily]] = frozenset()
    content_type: ClassVar[str] = JSON
    accept: ClassVar[str] = JSON

    @abstractmethod
    def encode_request(self, texts: list[str]) -> bytes: ...

    @abstractmethod
    def decode_array(self, body: bytes, expected: int) -> np.ndarray:
        """The response's vectors as an (expected, dimension) float64 array; a malformed body raises."""

    def decode_response(self, body: bytes, expected: int) -> list[list[float]]:
        return self.decode_array(body, expected).tolist()  # type: ignore[no-any-return]

    @abstractmethod
    def decode_request(self, body: bytes) -> list[str]: ...

    @abstractmethod
    def encode_response(self, vectors: list[list[float]] | np.ndarray) -> bytes: ...

    @staticmethod
    def _check_vectors(vectors: Any, expected: int) -> np.ndarray:
        """Checked with numpy, whole: a per-number Python check cost as much as the JSON parse itself."""
        if not isinstance(vectors, list) or len(vectors) != expected:
            got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
            raise ModelResponseError(f"malformed embedding response: expected {expected} vectors, got {got}")
        if not vectors:
            return np.empty((0, 0), dtype=np.float64)
        try:
            array = np.asarray(vectors)
        except ValueError:  # ragged: vectors of different lengths
            raise ModelResponseError("malformed embedding response: the vectors differ in length") from None
        if array.ndim != 2 or array.shape[1] == 0 or array.dtype.kind not in "iuf":
            raise ModelResponseError("malformed embedding response: a vector is not a list of numbers")
        return array.astype(np.float64, copy=False)  # finite: the JSON parser refuses NaN and Infinity


class TextInputsEmbeddingCodec(EmbeddingCodec):
    """JumpStart Hugging Face text-embedding containers: ``{"text_inputs": [...]}`` → ``{"embedding": [...]}``."""

    families = frozenset({"hf-pytorch-inference"})

    def encode_request(self, texts: list[str]) -> bytes:
        return _dumps({"text_inputs": texts})

    def decode_array(self, body: bytes, expected: int) -> np.ndarray:
        payload = _load_json(body, "embedding response")
        _raise_if_error(payload)
        if not isinstance(payload, dict) or "embedding" not in payload:
            raise ModelResponseError("malformed embedding response: no 'embedding' field")
        return self._check_vectors(payload["embedding"], expected)

    def decode_request(self, body: bytes) -> list[str]:
        payload = _load_json(body, "embedding request")
        texts = payload.get("text_inputs") if isinstance(payload, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError("'text_inputs' must be a string or a list of strings")
        return texts

    def encode_response(self, vectors: list[list[float]] | np.ndarray) -> bytes:
        return _dumps_vectors({"embedding": vectors})


class SentenceSimilarityEmbeddingCodec(TextInputsEmbeddingCodec):
    """JumpStart sentence-similarity models (1.x, Hugging Face inference scripts).

    Their script serves several modes from one endpoint (embeddings, nearest neighbours of a trained
    corpus), so the request names one: ``{"text_inputs": [...], "mode": "embedding"}`` → ``{"embedding": [...]}``.
    """

    def encode_request(self, texts: list[str]) -> bytes:
        return _dumps({"text_inputs": texts, "mode": "embedding"})

    def decode_request(self, body: bytes) -> list[str]:
        payload = _load_json(body, "embedding request")
        if not isinstance(payload, dict) or payload.get("mode") != "embedding":
            raise ValueError("'mode' must be 'embedding'")
        return super().decode_request(body)


class TeiEmbeddingCodec(EmbeddingCodec):
    """Text Embeddings Inference (TEI) containers: ``{"inputs": [...]}`` → ``[[...], ...]``."""

    families = frozenset({"tei"})

    def encode_request(self, texts: list[str]) -> bytes:
        return _dumps({"inputs": texts, "truncate": True})

    def decode_array(self, body: bytes, expected: int) -> np.ndarray:
        payload = _load_json(body, "embedding response")
        _raise_if_error(payload)
        return self._check_vectors(payload, expected)

    def decode_request(self, body: bytes) -> list[str]:
        payload = _load_json(body, "embedding request")
        texts = payload.get("inputs") if isinstance(payload, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError("'inputs' must be a string or a list of strings")
        return texts

    def encode_response(self, vectors: list[list[float]] | np.ndarray) -> bytes:
        return _dumps_vectors(vectors)


class GenerationCodec(ABC):
    task: ClassVar[str] = "text-generation"
    #: the container families whose servers read this request and write this response (endpoints/containers.py)
    families: ClassVar[frozenset[ContainerFamily]] = frozenset()
    content_type: ClassVar[str] = JSON
    accept: ClassVar[str] = JSON
    #: whether the format carries chat messages (otherwise a rendered prompt)
    takes_messages: ClassVar[bool] = False
    #: whether the family's containers stream tokens (InvokeEndpointWithResponseStream)
    supports_streaming: ClassVar[bool] = False

    @abstractmethod
    def encode_request(self, request: GenerationRequest) -> bytes: ...

    @abstractmethod
    def decode_response(self, body: bytes) -> str: ...

    @abstractmethod
    def decode_request(self, body: bytes) -> GenerationRequest: ...

    @abstractmethod
    def encode_response(self, text: str) -> bytes: ...

    # Streaming. Formats whose containers cannot stream keep these defaults, and callers check
    # ``supports_streaming`` first (EndpointChatModel falls back to one whole response).

    def encode_stream_request(self, request: GenerationRequest) -> bytes:
        """The request body that asks the container to stream its answer."""
        raise StreamingNotSupportedError(f"the {type(self).__name__} payload format cannot stream")

    def decode_stream(self, chunks: Iterable[bytes]) -> Iterator[str]:
        """The generated text pieces of a streamed response, from its raw byte chunks."""
        raise StreamingNotSupportedError(f"the {type(self).__name__} payload format cannot stream")

    def encode_stream_response(self, text: str) -> list[bytes]:
        """Container side: ``text`` as the stream of events the family's container writes."""
        raise StreamingNotSupportedError(f"the {type(self).__name__} payload format cannot stream")


def _stop_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise ValueError("'stop' must be a string or a list of strings")


class TgiCodec(GenerationCodec):
    """Hugging Face TGI / LMI text generation: ``{"inputs", "parameters"}`` → ``[{"generated_text"}]``.

    Streamed, TGI writes one server-sent event per token, ``data:{"token": {"text", "special"}, ...}``
    (LMI writes the same objects as JSON lines); the last event also carries the whole ``generated_text``,
    which is ignored here so that text is never counted twice. Not streamed, TGI answers with a list of
    one object and LMI with the object itself; both are read. Only TGI is listed as a family: LMI's
    handlers take ``stop_sequences`` where TGI takes ``stop`` (djl-serving's lmi_input_output_schema.md), so
    LMI models are called with the ``messages`` format, which both containers read alike.
    """

    families = frozenset({"tgi"})
    supports_streaming = True

    def encode_request(self, request: GenerationRequest) -> bytes:
        return _dumps(self._payload(request))

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_new_tokens": request.max_new_tokens,
            "return_full_text": False,
            "top_p": request.top_p if 0 < request.top_p < 1 else None,
            **request.extra,
        }
        if request.temperature > 0:
            params.update(do_sample=True, temperature=request.temperature)
        else:
            params["do_sample"] = False
        if request.stop:
            params["stop"] = list(request.stop)
        return {"inputs": request.prompt, "parameters": {k: v for k, v in params.items() if v is not None}}

    def encode_stream_request(self, request: GenerationRequest) -> bytes:
        return _dumps({**self._payload(request), "stream": True})

    def decode_stream(self, chunks: Iterable[bytes]) -> Iterator[str]:
        for event in iter_events(chunks, what="generation stream"):
            _raise_if_error(event)
            token = event.get("token") if isinstance(event, dict) else None
            if not isinstance(token, dict) or not isinstance(token.get("text"), str):
                raise ModelResponseError("malformed generation stream: an event has no 'token.text' string")
            if token.get("special"):  # end-of-sequence and other control tokens are not answer text
                continue
            if token["text"]:
                yield token["text"]

    def encode_stream_response(self, text: str) -> list[bytes]:
        events = [
            sse_event(
                {
                    "index": i,
                    "token": {"id": i, "text": piece, "logprob": 0.0, "special": False},
                    "generated_text": None,
                    "details": None,
                }
            )
            for i, piece in enumerate(pseudo_tokens(text))
        ]
        end = len(events)
        events.append(
            sse_event(
                {
                    "index": end,
                    "token": {"id": end, "text": "</s>", "logprob": 0.0, "special": True},
                    "generated_text": text,
                    "details": None,
                }
            )
        )
        return events

    def decode_response(self, body: bytes) -> str:
        payload = _load_json(body, "generation response")
        _raise_if_error(payload)
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            payload = payload[0]
        if not isinstance(payload, dict) or not isinstance(payload.get("generated_text"), str):
            raise ModelResponseError("malformed generation response: no 'generated_text' string")
        return str(payload["generated_text"])

    def decode_request(self, body: bytes) -> GenerationRequest:
        payload = _load_json(body, "generation request")
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), str):
            raise ValueError("'inputs' must be a string")
        params = payload.get("parameters") or {}
        if not isinstance(params, dict):
            raise ValueError("'parameters' must be an object")
        return GenerationRequest(
            prompt=payload["inputs"],
            max_new_tokens=int(params.get("max_new_tokens", 256)),
            temperature=float(params.get("temperature", 0.0)) if params.get("do_sample") else 0.0,
            top_p=float(params.get("top_p", 1.0)),
            stop=_stop_list(params.get("stop")),
        )

    def encode_response(self, text: str) -> bytes:
        return _dumps([{"generated_text": text}])


class Text2TextCodec(GenerationCodec):
    """JumpStart text2text 1.x (Flan-T5 on the Hugging Face inference scripts): ``{"text_inputs", ...}`` →
    ``{"generated_texts": [...]}``. Their 2.x versions run on TGI and take the ``tgi`` format instead."""

    families = frozenset({"hf-pytorch-inference"})

    def encode_request(self, request: GenerationRequest) -> bytes:
        payload: dict[str, Any] = {"text_inputs": request.prompt, "max_length": request.max_new_tokens}
        if request.temperature > 0:
            payload.update(do_sample=True, temperature=request.temperature, top_p=request.top_p)
        return _dumps(payload)

    def decode_response(self, body: bytes) -> str:
        payload = _load_json(body, "generation response")
        _raise_if_error(payload)
        texts = payload.get("generated_texts") if isinstance(payload, dict) else None
        if not isinstance(texts, list) or not texts or not isinstance(texts[0], str):
            raise ModelResponseError("malformed generation response: no 'generated_texts' list")
        return texts[0]

    def decode_request(self, body: bytes) -> GenerationRequest:
        payload = _load_json(body, "generation request")
        if not isinstance(payload, dict) or not isinstance(payload.get("text_inputs"), str):
            raise ValueError("'text_inputs' must be a string")
        return GenerationRequest(
            prompt=payload["text_inputs"],
            max_new_tokens=int(payload.get("max_length", 256)),
            temperature=float(payload.get("temperature", 0.0)) if payload.get("do_sample") else 0.0,
            top_p=float(payload.get("top_p", 1.0)),
        )

    def encode_response(self, text: str) -> bytes:
        return _dumps({"generated_texts": [text]})


class MessagesCodec(GenerationCodec):
    """Messages API (OpenAI chat-completions style, served by current JumpStart LLM containers).

    Streamed, each server-sent event is a ``chat.completion.chunk`` whose ``choices[0].delta.content``
    holds the next piece of text (absent in the first, role-only chunk and in the final one), and the
    stream ends with ``data: [DONE]`` (LMI writes the same chunks as JSON lines).
    """

    families = frozenset({"tgi", "lmi"})
    takes_messages = True
    supports_streaming = True

    def encode_request(self, request: GenerationRequest) -> bytes:
        return _dumps(self._payload(request))

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messages": list(request.messages),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.stop:
            payload["stop"] = list(request.stop)
        return payload

    def encode_stream_request(self, request: GenerationRequest) -> bytes:
        return _dumps({**self._payload(request), "stream": True})

    def decode_stream(self, chunks: Iterable[bytes]) -> Iterator[str]:
        for event in iter_events(chunks, what="generation stream"):
            _raise_if_error(event)
            choices = event.get("choices") if isinstance(event, dict) else None
            if not isinstance(choices, list):
                raise ModelResponseError("malformed generation stream: an event has no 'choices' list")
            if not choices:  # a usage-only chunk
                continue
            delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
            if not isinstance(delta, dict):
                raise ModelResponseError("malformed generation stream: an event has no choices[0].delta object")
            content = delta.get("content")
            if content is None:
                continue
            if not isinstance(content, str):
                raise ModelResponseError("malformed generation stream: delta content is not a string")
            if content:
                yield content

    def encode_stream_response(self, text: str) -> list[bytes]:
        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            return sse_event(
                {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            )

        return [
            chunk({"role": "assistant"}),
            *(chunk({"content": piece}) for piece in pseudo_tokens(text)),
            chunk({}, "stop"),
            sse_done(),
        ]

    def decode_response(self, body: bytes) -> str:
        payload = _load_json(body, "generation response")
        _raise_if_error(payload)
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ModelResponseError("malformed generation response: no choices[0].message.content") from None
        if not isinstance(content, str):
            raise ModelResponseError("malformed generation response: message content is not a string")
        return content

    def decode_request(self, body: bytes) -> GenerationRequest:
        payload = _load_json(body, "generation request")
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            raise ValueError("'messages' must be a non-empty list of {role, content} objects")
        return GenerationRequest(
            messages=tuple({"role": m["role"], "content": m["content"]} for m in messages),
            max_new_tokens=int(payload.get("max_tokens", 256)),
            temperature=float(payload.get("temperature", 0.0)),
            top_p=float(payload.get("top_p", 1.0)),
            stop=_stop_list(payload.get("stop")),
        )

    def encode_response(self, text: str) -> bytes:
        return _dumps(
            {
                "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            }
        )


#: payload_format name (as written in jumpstart_configs/*.yaml) → codec class
CODECS: dict[str, type[EmbeddingCodec] | type[GenerationCodec]] = {
    "text_inputs_embedding": TextInputsEmbeddingCodec,
    "sentence_similarity_embedding": SentenceSimilarityEmbeddingCodec,
    "tei_embedding": TeiEmbeddingCodec,
    "tgi": TgiCodec,
    "text2text": Text2TextCodec,
    "messages": MessagesCodec,
}


def embedding_codec(payload_format: str) -> EmbeddingCodec:
    codec = CODECS[payload_format]()
    if not isinstance(codec, EmbeddingCodec):
        raise TypeError(f"{payload_format} is not an embedding format")
    return codec


def generation_codec(payload_format: str) -> GenerationCodec:
    codec = CODECS[payload_format]()
    if not isinstance(codec, GenerationCodec):
        raise TypeError(f"{payload_format} is not a generation format")
    return codec
