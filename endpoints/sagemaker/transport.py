"""The SageMaker transport: ``sagemaker-runtime`` InvokeEndpoint (and its streaming form) for one endpoint.

It owns the retry policy (jittered backoff on throttling) and translates every botocore failure into the
model errors of ``endpoints/errors.py``, once. An endpoint that hosts inference components is invoked by
component name; other per-call arguments SageMaker accepts (``TargetVariant``, ``CustomAttributes``, ...)
go in ``invoke_args``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

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

from endpoints.errors import (
    ModelInvocationError,
    ModelResponseError,
    ModelThrottledError,
    ModelTimeoutError,
)

T = TypeVar("T")

#: error codes of sagemaker-runtime that mean "try again shortly"
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable", "InternalDependencyException"}
)
#: the arguments every invocation sets itself, which ``invoke_args`` may not replace
_OWN_ARGS = frozenset({"EndpointName", "Body", "ContentType", "Accept"})


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff (attempt 0 is the first retry)."""
    return random.uniform(0, min(cap, base * (2**attempt)))


class SageMakerTransport:
    """``sagemaker-runtime`` InvokeEndpoint with a read timeout and jittered retries on throttling.

    ``inference_component`` names the component to invoke on an endpoint that hosts inference components
    (the cheap profile's LLM, which scales to zero copies); ``invoke_args`` are further InvokeEndpoint
    arguments sent with every call, streaming or not.
    """

    def __init__(
        self,
        endpoint_name: str,
        *,
        inference_component: str | None = None,
        invoke_args: Mapping[str, str] | None = None,
        client: object | None = None,
        region: str | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        base_delay_s: float = 0.25,
        max_delay_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        clash = sorted(_OWN_ARGS.intersection(invoke_args or {}))
        if clash:
            raise ValueError(f"{endpoint_name}: invoke_args may not set {', '.join(clash)}: the transport sets them")
        self.endpoint_name = endpoint_name
        self.name = f"sagemaker:{endpoint_name}"
        self.invoke_args: dict[str, str] = dict(invoke_args or {})
        if inference_component:
            self.invoke_args["InferenceComponentName"] = inference_component
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
                EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=accept, **self.invoke_args
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
                EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=accept, **self.invoke_args
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
