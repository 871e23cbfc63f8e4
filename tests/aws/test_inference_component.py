"""An LLM deployed as an inference component (the cheap profile's scale-to-zero) is invoked by component name."""

from __future__ import annotations

import io

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from careqa.config import ModelRef
from careqa.runtime import _transport
from endpoints import load_model_config

BODY = b'[{"generated_text": "ok"}]'


def _invoke_with_stub(ref: ModelRef) -> dict[str, object]:
    config = load_model_config("huggingface-llm-mistral-7b-instruct")
    transport = _transport(ref, config)
    client = transport._client  # type: ignore[attr-defined]
    seen: dict[str, object] = {}
    client.meta.events.register(
        "before-parameter-build.sagemaker-runtime.InvokeEndpoint", lambda params, **_: seen.update(params)
    )
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(BODY), len(BODY))})
        assert transport.invoke(b"{}", content_type="application/json", accept="application/json") == BODY
    return seen


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_the_component_name_is_sent_with_every_invocation() -> None:
    ref = ModelRef(
        config="huggingface-llm-mistral-7b-instruct",
        transport="sagemaker",
        endpoint_name="careqa-llm",
        region="us-east-1",
        inference_component="careqa-llm-component",
    )
    params = _invoke_with_stub(ref)
    assert params["EndpointName"] == "careqa-llm"
    assert params["InferenceComponentName"] == "careqa-llm-component"


def test_an_endpoint_without_components_is_invoked_without_a_name() -> None:
    ref = ModelRef(
        config="huggingface-llm-mistral-7b-instruct",
        transport="sagemaker",
        endpoint_name="careqa-llm",
        region="us-east-1",
    )
    assert "InferenceComponentName" not in _invoke_with_stub(ref)
