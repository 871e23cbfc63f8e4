"""sagemaker-runtime under moto: every codec through SageMakerTransport, the same round trips as the local
transport, response streaming with split payload parts and in-stream errors, and the retry policy."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from langchain_core.messages import HumanMessage

from endpoints.codecs import CODECS, EmbeddingCodec, GenerationCodec
from endpoints.errors import ModelInvocationError, ModelResponseError, ModelThrottledError
from endpoints.langchain import EndpointChatModel, EndpointEmbeddings
from endpoints.local_transport import LocalTransport
from endpoints.sagemaker.transport import SageMakerTransport

from .conftest import SageMakerFake, StreamReply

EMBEDDING_FORMATS = [name for name, cls in CODECS.items() if cls.task == "embedding"]
GENERATION_FORMATS = [name for name, cls in CODECS.items() if cls.task == "text-generation"]
STREAMING_FORMATS = [name for name in GENERATION_FORMATS if CODECS[name].supports_streaming]  # type: ignore[union-attr]
VECTORS = [[0.25, -0.5, 1.0], [0.0, 0.75, -0.125]]
ANSWER = "Code 75 means prior authorization is required [1]."
ENDPOINT = "careqa-parity"


class ScriptedContainer:
    """A stand-in container: decodes each request with the codec's container side, answers a fixed result."""

    def __init__(self, codec: EmbeddingCodec | GenerationCodec, answer: object) -> None:
        self.codec = codec
        self.answer = answer

    def handle(self, body: bytes) -> bytes:
        self.codec.decode_request(body)
        return self.codec.encode_response(self.answer)  # type: ignore[arg-type]


Serve = Callable[[str, object], object]


@pytest.fixture(params=["in-process", "sagemaker"])
def serve(request: pytest.FixtureRequest) -> Serve:
    """A transport that answers ``answer`` in format ``fmt``: LocalTransport over a stand-in container, or a
    SageMakerTransport to a moto endpoint."""
    if request.param == "in-process":
        return lambda fmt, answer: LocalTransport(ScriptedContainer(CODECS[fmt](), answer), name=fmt)
    fake: SageMakerFake = request.getfixturevalue("sagemaker_fake")

    def sagemaker(fmt: str, answer: object) -> SageMakerTransport:
        codec = CODECS[fmt]()
        fake.queue_results(codec.encode_response(answer))  # type: ignore[arg-type]
        if isinstance(codec, GenerationCodec) and codec.supports_streaming:
            stream = b"".join(codec.encode_stream_response(str(answer)))
            fake.queue_stream(StreamReply(chunks=[stream[i : i + 5] for i in range(0, len(stream), 5)]))
        return SageMakerTransport(ENDPOINT, client=fake.client("sagemaker-runtime"), sleep=lambda _s: None)

    return sagemaker


@pytest.mark.parametrize("fmt", EMBEDDING_FORMATS)
def test_embeddings_round_trip_through_either_transport(serve, fmt):
    embeddings = EndpointEmbeddings(
        model_id="m", transport=serve(fmt, VECTORS), codec=CODECS[fmt](), batch_size=8, dimension=3, normalize=False
    )
    assert embeddings.embed_documents(["refill too soon", "code 75"]) == VECTORS


@pytest.mark.parametrize("fmt", GENERATION_FORMATS)
def test_generation_round_trips_through_either_transport(serve, fmt):
    model = EndpointChatModel(model_id="m", transport=serve(fmt, ANSWER), codec=CODECS[fmt](), chat_template="raw")
    assert model.invoke([HumanMessage("What does code 75 mean?")]).content == ANSWER


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_streamed_generation_round_trips_through_either_transport(serve, fmt):
    model = EndpointChatModel(model_id="m", transport=serve(fmt, ANSWER), codec=CODECS[fmt](), chat_template="raw")
    pieces = [str(c.content) for c in model.stream([HumanMessage("What does code 75 mean?")]) if c.content]
    assert len(pieces) > 1 and "".join(pieces) == ANSWER


@pytest.mark.parametrize("fmt", list(CODECS))
def test_the_request_reaches_the_endpoint_in_the_codec_format(sagemaker_fake, fmt):
    codec = CODECS[fmt]()
    answer = VECTORS[:1] if isinstance(codec, EmbeddingCodec) else ANSWER
    sagemaker_fake.queue_results(codec.encode_response(answer))  # type: ignore[arg-type]
    transport = SageMakerTransport("careqa-any", client=sagemaker_fake.client("sagemaker-runtime"))
    if isinstance(codec, EmbeddingCodec):
        body = codec.encode_request(["code 75"])
        raw = transport.invoke(body, content_type=codec.content_type, accept=codec.accept)
        assert codec.decode_response(raw, 1) == answer
    else:
        from endpoints.codecs import GenerationRequest

        body = codec.encode_request(GenerationRequest(prompt="q", messages=({"role": "user", "content": "q"},)))
        raw = transport.invoke(body, content_type=codec.content_type, accept=codec.accept)
        assert codec.decode_response(raw) == answer
    assert sagemaker_fake.invocations == [("invoke", "careqa-any", body)]


def test_a_malformed_body_from_the_endpoint_is_a_model_error(sagemaker_fake):
    sagemaker_fake.queue_results("<html>502 Bad Gateway</html>", content_type="text/html")
    transport = SageMakerTransport("careqa-embed", client=sagemaker_fake.client("sagemaker-runtime"))
    codec = CODECS["text_inputs_embedding"]()
    raw = transport.invoke(codec.encode_request(["x"]), content_type="application/json", accept="application/json")
    with pytest.raises(ModelResponseError, match="malformed embedding response"):
        codec.decode_response(raw, expected=1)  # type: ignore[call-arg]


def stream_of(fake: SageMakerFake, reply: StreamReply) -> list[bytes]:
    fake.queue_stream(reply)
    transport = SageMakerTransport("careqa-llm", client=fake.client("sagemaker-runtime"), sleep=lambda _s: None)
    return list(
        transport.invoke_stream(
            b'{"inputs": "q", "stream": true}', content_type="application/json", accept="application/json"
        )
    )


def test_payload_parts_arrive_as_sent_and_decode_across_split_lines(sagemaker_fake):
    parts = [b'data:{"token": {"text": "Call', b' "}}\n\ndata:{"tok', b'en": {"text": "us."}}\n\n']
    chunks = stream_of(sagemaker_fake, StreamReply(chunks=parts))
    assert chunks == parts
    assert "".join(CODECS["tgi"]().decode_stream(chunks)) == "Call us."  # type: ignore[union-attr]


def test_a_model_stream_error_mid_stream_raises_after_the_tokens_before_it(sagemaker_fake):
    sagemaker_fake.queue_stream(
        StreamReply(
            chunks=[b'data:{"token": {"text": "Hi"}}\n\n'],
            error=("ModelStreamError", "the model took too long"),
            error_code="ModelInvocationTimeExceeded",
        )
    )
    transport = SageMakerTransport("careqa-llm", client=sagemaker_fake.client("sagemaker-runtime"))
    chunks = transport.invoke_stream(b"{}", content_type="application/json", accept="application/json")
    assert next(chunks) == b'data:{"token": {"text": "Hi"}}\n\n'
    with pytest.raises(ModelResponseError, match="careqa-llm: ModelStreamError while streaming: the model took"):
        next(chunks)


def test_an_internal_stream_failure_is_a_model_error(sagemaker_fake):
    with pytest.raises(ModelResponseError, match="InternalStreamFailure while streaming"):
        stream_of(sagemaker_fake, StreamReply(error=("InternalStreamFailure", "unknown failure")))


def test_a_throttled_stream_call_is_retried_then_streams(sagemaker_fake):
    sleeps: list[float] = []
    sagemaker_fake.queue_stream(StreamReply(initial_error=("ThrottlingException", 400, "Rate exceeded")))
    sagemaker_fake.queue_stream(StreamReply(chunks=[b'data:{"token": {"text": "ok"}}\n\n']))
    transport = SageMakerTransport("careqa-llm", client=sagemaker_fake.client("sagemaker-runtime"), sleep=sleeps.append)
    chunks = list(transport.invoke_stream(b"{}", content_type="application/json", accept="application/json"))
    assert chunks == [b'data:{"token": {"text": "ok"}}\n\n']
    assert len(sleeps) == 1 and len(sagemaker_fake.invocations) == 2


def test_a_stream_call_that_keeps_being_throttled_gives_up(sagemaker_fake):
    for _ in range(2):
        sagemaker_fake.queue_stream(StreamReply(initial_error=("ModelNotReadyException", 429, "warming up")))
    transport = SageMakerTransport(
        "careqa-llm", client=sagemaker_fake.client("sagemaker-runtime"), max_attempts=2, sleep=lambda _s: None
    )
    with pytest.raises(ModelThrottledError, match="ModelNotReadyException after 2 attempts"):
        transport.invoke_stream(b"{}", content_type="application/json", accept="application/json")


def test_a_client_error_on_the_stream_call_is_not_retried(sagemaker_fake):
    sleeps: list[float] = []
    sagemaker_fake.queue_stream(StreamReply(initial_error=("ValidationError", 400, "Endpoint careqa-llm not found")))
    transport = SageMakerTransport("careqa-llm", client=sagemaker_fake.client("sagemaker-runtime"), sleep=sleeps.append)
    with pytest.raises(ModelInvocationError, match="ValidationError: Endpoint careqa-llm not found"):
        transport.invoke_stream(b"{}", content_type="application/json", accept="application/json")
    assert sleeps == [] and len(sagemaker_fake.invocations) == 1


def test_the_stream_request_carries_the_body_unchanged(sagemaker_fake):
    body = json.dumps({"messages": [{"role": "user", "content": "q"}], "stream": True}).encode()
    sagemaker_fake.queue_stream(StreamReply(chunks=[b"data: [DONE]\n\n"]))
    transport = SageMakerTransport("careqa-chat", client=sagemaker_fake.client("sagemaker-runtime"))
    list(transport.invoke_stream(body, content_type="application/json", accept="application/json"))
    assert sagemaker_fake.invocations == [("stream", "careqa-chat", body)]
