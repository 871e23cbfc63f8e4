"""The smoke test after a swap: one real invocation through the new model's codec, with the service's clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from endpoints.client import EmbeddingClient, GenerationClient
from endpoints.config import ModelConfig
from endpoints.errors import DimensionMismatchError, ModelInvocationError
from endpoints.sagemaker.errors import SmokeTestError
from endpoints.sagemaker.transport import SageMakerTransport

SMOKE_TEXT = "CareQA deployment check: is this endpoint answering?"
SMOKE_MAX_NEW_TOKENS = 8


def smoke_test(target: ModelConfig, endpoint_name: str, runtime: Any, *, sleep: Callable[[float], None]) -> str:
    """One real invocation through ``target``'s codec; returns what was checked, raises ``SmokeTestError``."""
    transport = SageMakerTransport(endpoint_name, client=runtime, max_attempts=3, sleep=sleep)
    try:
        if target.task == "embedding":
            vectors = EmbeddingClient.from_config(target, transport).embed([SMOKE_TEXT])
            return f"embedded one text: {len(vectors[0])} dimensions"
        client = GenerationClient.from_config(target, transport)
        turns = ({"role": "user", "content": "Reply with the single word OK."},)
        text = client.generate(client.request(turns, max_new_tokens=SMOKE_MAX_NEW_TOKENS))
    except DimensionMismatchError as exc:
        raise SmokeTestError(
            f"{endpoint_name}: smoke test: {target.name} should return {exc.expected}"
            f"-dimensional vectors, the endpoint returned {exc.returned} dimensions"
        ) from exc
    except ModelInvocationError as exc:
        raise SmokeTestError(
            f"{endpoint_name}: smoke test through the {target.payload_format} codec failed: {exc}"
        ) from exc
    if not text.strip():
        raise SmokeTestError(f"{endpoint_name}: smoke test: {target.name} generated empty text")
    return f"generated {len(text)} characters"
