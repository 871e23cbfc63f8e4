"""The sagemaker-runtime transport: retries with backoff on throttling, never on client errors."""

import io

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from endpoints.errors import ModelInvocationError, ModelResponseError, ModelThrottledError
from endpoints.sagemaker.transport import SageMakerTransport

BODY = b'{"embedding": [[0.1, 0.2]]}'


def make(sleeps: list[float], attempts: int = 3):
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    transport = SageMakerTransport("careqa-embed", client=client, max_attempts=attempts, sleep=sleeps.append)
    return transport, Stubber(client)


def ok_response():
    return {"Body": StreamingBody(io.BytesIO(BODY), len(BODY)), "ContentType": "application/json"}


def test_throttling_is_retried_then_succeeds():
    sleeps: list[float] = []
    transport, stub = make(sleeps)
    stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
    stub.add_client_error("invoke_endpoint", service_error_code="ModelNotReadyException", http_status_code=429)
    stub.add_response("invoke_endpoint", ok_response())
    with stub:
        assert transport.invoke(b"{}", content_type="application/json", accept="application/json") == BODY
    stub.assert_no_pending_responses()
    assert len(sleeps) == 2 and all(s >= 0 for s in sleeps)


def test_persistent_throttling_gives_up_with_a_clear_error():
    sleeps: list[float] = []
    transport, stub = make(sleeps, attempts=2)
    for _ in range(2):
        stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
    with stub, pytest.raises(ModelThrottledError, match="after 2 attempts"):
        transport.invoke(b"{}", content_type="application/json", accept="application/json")


def test_client_errors_are_not_retried():
    sleeps: list[float] = []
    transport, stub = make(sleeps)
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        http_status_code=400,
        service_message="Endpoint careqa-embed not found",
    )
    with stub, pytest.raises(ModelInvocationError, match="not found"):
        transport.invoke(b"{}", content_type="application/json", accept="application/json")
    assert sleeps == []


def test_model_error_carries_the_containers_message():
    sleeps: list[float] = []
    transport, stub = make(sleeps)
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        http_status_code=424,
        response_meta={},
        modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": "inputs too long"},
    )
    with stub, pytest.raises(ModelResponseError, match="inputs too long") as info:
        transport.invoke(b"{}", content_type="application/json", accept="application/json")
    assert info.value.status == 400 and sleeps == []


class RecordingClient:
    """The two runtime calls the transport makes, recording the arguments each received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def invoke_endpoint(self, **kwargs: object) -> dict[str, object]:
        self.calls.append(("invoke_endpoint", kwargs))
        return ok_response()

    def invoke_endpoint_with_response_stream(self, **kwargs: object) -> dict[str, object]:
        self.calls.append(("invoke_endpoint_with_response_stream", kwargs))
        return {"Body": iter([{"PayloadPart": {"Bytes": b"x"}}])}


def test_an_inference_component_and_extra_arguments_go_with_every_call():
    client = RecordingClient()
    transport = SageMakerTransport(
        "careqa-llm",
        inference_component="careqa-llm-component",
        invoke_args={"CustomAttributes": "trace=1"},
        client=client,
    )
    assert transport.invoke(b"{}", content_type="application/json", accept="application/json") == BODY
    assert list(transport.invoke_stream(b"{}", content_type="application/json", accept="application/json")) == [b"x"]
    sent = {
        "EndpointName": "careqa-llm",
        "Body": b"{}",
        "ContentType": "application/json",
        "Accept": "application/json",
        "InferenceComponentName": "careqa-llm-component",
        "CustomAttributes": "trace=1",
    }
    assert client.calls == [("invoke_endpoint", sent), ("invoke_endpoint_with_response_stream", sent)]


def test_extra_arguments_may_not_replace_what_the_transport_sends():
    with pytest.raises(ValueError, match="careqa-llm: invoke_args may not set Body, EndpointName"):
        SageMakerTransport("careqa-llm", invoke_args={"EndpointName": "other", "Body": "x"}, client=object())
