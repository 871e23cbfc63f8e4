"""Transports carry codec bytes to a model: a SageMaker endpoint, or a pip-installed model in process."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, runtime_checkable

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from endpoints.codecs import GenerationCodec
from endpoints.errors import (
    ModelBusyError,
    ModelInvocationError,
    ModelResponseError,
    ModelThrottledError,
    ModelTimeoutError,
    StreamingNotSupportedError,
)

T = TypeVar("T")

#: error codes of sagemaker-runtime that mean "try again shortly"
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable", "InternalDependencyException"}
)


class Transport(Protocol):
    """Sends one request body to one model and returns the response body."""

    name: str

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes: ...


@runtime_checkable
class StreamingTransport(Transport, Protocol):
    """A transport that can also hand back a response as it is generated, in raw byte chunks."""

    def invoke_stream(self, body: bytes, *, content_type: str, accept: str) -> Iterator[bytes]: ...


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
        # error code and visible in one place. (total_max_attempts counts the first call; botocore's
        # max_attempts counts retries only, so max_attempts=1 would add one hidden, sleeping retry.)
        self._client = client or boto3.client(
            "sagemaker-runtime",
            region_name=region,
            config=Config(
                read_timeout=timeout_s, connect_timeout=5, retries={"total_max_attempts": 1, "mode": "standard"}
            ),
        )

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        """InvokeEndpoint: the whole response body."""

        def call() -> bytes:
            response = self._client.invoke_endpoint(  # type: ignore[union-attr]
                EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=accept
            )
            return bytes(response["Body"].read())

        return self._with_retries(call)

    def invoke_stream(self, body: bytes, *, content_type: str, accept: str) -> Iterator[bytes]:
        """InvokeEndpointWithResponseStream: the response's payload parts, as the container writes them.

        The call itself is made now, with the same retry and error policy as ``invoke``, so throttling,
        a missing endpoint or a model error raise here. The returned iterator is never retried: tokens
        already handed on cannot be taken back. Errors the endpoint reports inside the stream
        (``ModelStreamError``, ``InternalStreamFailure``) raise ``ModelResponseError`` while iterating.
        """

        def call() -> Any:
            return self._client.invoke_endpoint_with_response_stream(  # type: ignore[union-attr]
                EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=accept
            )

        response = self._with_retries(call)
        return self._payload_parts(response["Body"])

    def _payload_parts(self, events: Iterable[dict[str, Any]]) -> Iterator[bytes]:
        name = self.endpoint_name
        try:
            for event in events:
                if "PayloadPart" in event:
                    data = event["PayloadPart"].get("Bytes") or b""
                    if data:
                        yield bytes(data)
                elif "ModelStreamError" in event:
                    err = event["ModelStreamError"]
                    raise ModelResponseError(
                        f"{name}: model stream error ({err.get('ErrorCode') or 'unknown'}): "
                        f"{err.get('Message') or 'no message'}",
                        endpoint=name,
                    )
                elif "InternalStreamFailure" in event:
                    message = event["InternalStreamFailure"].get("Message") or "no message"
                    raise ModelResponseError(f"{name}: internal stream failure: {message}", endpoint=name)
        except EventStreamError as exc:  # botocore raises the stream's exception events as this
            code = exc.response.get("Error", {}).get("Code", "") or "stream error"
            message = exc.response.get("Error", {}).get("Message", "") or "no message"
            raise ModelResponseError(f"{name}: {code} while streaming: {message}", endpoint=name) from exc
        except ReadTimeoutError as exc:
            raise ModelTimeoutError(f"{name}: timed out while streaming", endpoint=name) from exc
        except ResponseStreamingError as exc:
            raise ModelResponseError(f"{name}: the response stream broke: {exc}", endpoint=name) from exc
        finally:
            close = getattr(events, "close", None)
            if callable(close):
                close()

    def _with_retries(self, call: Callable[[], T]) -> T:
        """Run one runtime call with jittered retries on retryable codes; translate every failure once."""
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                return call()
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
                        f"{self.endpoint_name}: {code} after {self.max_attempts} attempts",
                        endpoint=self.endpoint_name,
                        status=status,
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
                raise ModelInvocationError(
                    f"{self.endpoint_name}: cannot reach endpoint", endpoint=self.endpoint_name
                ) from exc
        raise ModelThrottledError(f"{self.endpoint_name}: gave up", endpoint=self.endpoint_name) from last


class LocalTransport:
    """Serves a config's payload contract from a pip-installed model, in process (see ``endpoints.local``).

    The model serves one request at a time (llama.cpp contexts and torch models are not safe to share
    across threads) behind a bounded queue: at most ``max_waiting`` requests wait for their turn, each for
    at most ``max_wait_s``. A request that cannot start in time fails at once with ``ModelBusyError``
    (HTTP 503 with Retry-After) instead of queueing behind minutes of generation and timing out.
    """

    def __init__(self, container: object, *, name: str, max_waiting: int = 8, max_wait_s: float = 5.0) -> None:
        self._container = container
        self.name = f"local:{name}"
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._queue = threading.Lock()  # guards _waiting
        self._waiting = 0

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):  # the model is busy: wait in the queue, if there is room
            with self._queue:
                if self._waiting >= self.max_waiting:
                    raise ModelBusyError(
                        f"{self.name}: {self._waiting} requests are already waiting", endpoint=self.name
                    )
                self._waiting += 1
            try:
                started = self._lock.acquire(timeout=self.max_wait_s)
            finally:
                with self._queue:
                    self._waiting -= 1
            if not started:
                raise ModelBusyError(f"{self.name}: busy for more than {self.max_wait_s:g}s", endpoint=self.name)
        try:
            yield
        finally:
            self._lock.release()

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        with self._turn():
            return self._container.handle(body)  # type: ignore[attr-defined,no-any-return]

    def invoke_stream(self, body: bytes, *, content_type: str, accept: str) -> Iterator[bytes]:
        """The whole response, re-encoded as the stream the family's container would write.

        The stand-in models answer in one piece, so this generates first and then yields the answer as
        word-sized events in the codec's streaming format (one event per chunk). Callers therefore run
        the same stream decoding locally as against SageMaker; only the timing differs.
        """
        codec = getattr(self._container, "codec", None)
        if not isinstance(codec, GenerationCodec) or not codec.supports_streaming:
            fmt = type(codec).__name__ if codec is not None else "unknown"
            raise StreamingNotSupportedError(f"{self.name}: the {fmt} payload format cannot stream")
        text = codec.decode_response(self.invoke(body, content_type=content_type, accept=accept))
        return iter(codec.encode_stream_response(text))
