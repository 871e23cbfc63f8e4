"""Transports carry codec bytes to a model: a SageMaker endpoint, or a pip-installed model in process."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from endpoints.errors import (
    ModelInvocationError,
    ModelResponseError,
    ModelThrottledError,
    ModelTimeoutError,
)

#: error codes of sagemaker-runtime that mean "try again shortly"
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable", "InternalDependencyException"}
)


class Transport(Protocol):
    """Sends one request body to one model and returns the response body."""

    name: str

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes: ...


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff (attempt 0 is the first retry)."""
    return random.uniform(0, min(cap, base * (2**attempt)))


class SageMakerTransport:
    """``sagemaker-runtime`` InvokeEndpoint with a read timeout and jittered retries on throttling."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        client: object | None = None,
        region: str | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        base_delay_s: float = 0.25,
        max_delay_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.name = f"sagemaker:{endpoint_name}"
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        # botocore's own retries are off: this class owns the retry policy, so it is the same for every
        # error code and visible in one place.
        self._client = client or boto3.client(
            "sagemaker-runtime",
            region_name=region,
            config=Config(read_timeout=timeout_s, connect_timeout=5, retries={"max_attempts": 1, "mode": "standard"}),
        )

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                response = self._client.invoke_endpoint(  # type: ignore[attr-defined]
                    EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=accept
                )
                return bytes(response["Body"].read())
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                message = exc.response.get("Error", {}).get("Message", str(exc))
                if code in RETRYABLE_CODES:
                    last = exc
                    if attempt + 1 < self.max_attempts:
                        self._sleep(backoff_delay(attempt, self.base_delay_s, self.max_delay_s))
                        continue
                    raise ModelThrottledError(
                        f"{self.endpoint_name}: {code} after {self.max_attempts} attempts", endpoint=self.endpoint_name, status=status
                    ) from exc
                if code == "ModelError":
                    original = exc.response.get("OriginalMessage") or message
                    raise ModelResponseError(
                        f"{self.endpoint_name}: model error: {original}",
                        endpoint=self.endpoint_name,
                        status=exc.response.get("OriginalStatusCode", status),
                    ) from exc
                raise ModelInvocationError(
                    f"{self.endpoint_name}: {code or 'error'}: {message}", endpoint=self.endpoint_name, status=status
                ) from exc
            except (ReadTimeoutError, ConnectTimeoutError) as exc:
                raise ModelTimeoutError(f"{self.endpoint_name}: timed out", endpoint=self.endpoint_name) from exc
            except EndpointConnectionError as exc:
                raise ModelInvocationError(f"{self.endpoint_name}: cannot reach endpoint", endpoint=self.endpoint_name) from exc
        raise ModelThrottledError(f"{self.endpoint_name}: gave up", endpoint=self.endpoint_name) from last


class LocalTransport:
    """Serves a config's payload contract from a pip-installed model, in process (see ``endpoints.local``)."""

    def __init__(self, container: object, *, name: str) -> None:
        self._container = container
        self.name = f"local:{name}"
        self._lock = threading.Lock()  # llama.cpp contexts and torch models are not safe to share across threads

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        with self._lock:
            return self._container.handle(body)  # type: ignore[attr-defined,no-any-return]
