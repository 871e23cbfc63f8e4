"""Streamed generation: chunk reassembly, each codec's stream format, and streaming through the transports."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage

from endpoints.codecs import CODECS, GenerationCodec, MessagesCodec, TgiCodec
from endpoints.errors import ModelResponseError, StreamingNotSupportedError
from endpoints.langchain import EndpointChatModel
from endpoints.local_transport import LocalTransport
from endpoints.sagemaker.transport import SageMakerTransport
from endpoints.streaming import LineBuffer, iter_events, iter_lines

STREAMING_FORMATS = [name for name, cls in CODECS.items() if getattr(cls, "supports_streaming", False)]
ANSWER = "Rejection code 75 means the plan needs prior authorization — café ✓."


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class ScriptedContainer:
    """A stand-in container: reads each request with the codec's container side and answers ``text``."""

    def __init__(self, codec: GenerationCodec, text: str) -> None:
        self.codec = codec
        self.text = text
        self.requests: list[dict] = []

    def handle(self, body: bytes) -> bytes:
        self.requests.append(json.loads(body))
        self.codec.decode_request(body)
        return self.codec.encode_response(self.text)


def test_stream_formats_are_the_chat_and_tgi_families():
    assert sorted(STREAMING_FORMATS) == ["messages", "tgi"]


def test_a_line_split_across_chunks_is_reassembled():
    buffer = LineBuffer()
    assert buffer.feed(b'data:{"tok') == []
    assert buffer.feed(b'en": 1}\r\n\ndata: [DO') == ['data:{"token": 1}', ""]
    assert buffer.feed(b"NE]") == []
    assert buffer.flush() == ["data: [DONE]"]


def test_a_multibyte_character_cut_between_chunks_decodes():
    encoded = "é✓\n".encode()
    assert list(iter_lines([encoded[:1], encoded[1:3], encoded[3:]])) == ["é✓"]


def test_a_line_that_is_not_utf8_is_a_model_error():
    with pytest.raises(ModelResponseError, match="not UTF-8"):
        list(iter_lines([b"\xff\xfe\n"]))


def test_sse_comments_fields_and_blank_lines_carry_no_events():
    stream = b': keep-alive\nevent: message\nid: 7\nretry: 100\n\ndata:{"a": 1}\n\ndata: {"a": 2}\n\n'
    assert list(iter_events([stream])) == [{"a": 1}, {"a": 2}]


def test_done_ends_the_stream():
    assert list(iter_events([b'data: {"a": 1}\n\ndata: [DONE]\n\ndata: {"a": 2}\n\n'])) == [{"a": 1}]


def test_json_lines_without_a_data_prefix_are_events():
    assert list(iter_events([b'{"a": 1}\n{"a": 2}'])) == [{"a": 1}, {"a": 2}]


def test_an_event_that_is_not_json_is_a_model_error():
    with pytest.raises(ModelResponseError, match="malformed generation stream: an event is not JSON"):
        list(iter_events([b"data:<html>502</html>\n\n"], what="generation stream"))


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_stream_round_trips_at_any_chunk_boundary(fmt, size):
    codec: GenerationCodec = CODECS[fmt]()  # type: ignore[assignment]
    stream = b"".join(codec.encode_stream_response(ANSWER))
    pieces = list(codec.decode_stream(split_every(stream, size)))
    assert "".join(pieces) == ANSWER
    assert len(pieces) > 1


def test_tgi_stream_skips_special_tokens_and_ignores_the_final_generated_text():
    events = [
        b'data:{"token": {"id": 1, "text": "Hello", "special": false}, "generated_text": null}\n\n',
        b'data:{"token": {"id": 2, "text": "</s>", "special": true}, "generated_text": "Hello"}\n\n',
    ]
    assert list(TgiCodec().decode_stream(events)) == ["Hello"]


def test_tgi_error_event_becomes_a_model_error():
    events = [
        b'data:{"token": {"text": "Hi", "special": false}}\n\n',
        b'data:{"error": "Request failed during generation: CUDA OOM", "error_type": "generation"}\n\n',
    ]
    pieces = TgiCodec().decode_stream(events)
    assert next(pieces) == "Hi"
    with pytest.raises(ModelResponseError, match="model error \\(generation\\): Request failed during generation"):
        next(pieces)


def test_tgi_event_without_a_token_is_malformed():
    with pytest.raises(ModelResponseError, match="no 'token.text'"):
        list(TgiCodec().decode_stream([b'data:{"generated_text": "x"}\n\n']))


def test_messages_stream_skips_role_only_usage_and_finish_chunks():
    events = [
        b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": "Call "}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": "us."}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n',
        b'data: {"choices": [], "usage": {"completion_tokens": 2}}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert list(MessagesCodec().decode_stream(events)) == ["Call ", "us."]


def test_messages_error_object_in_the_stream_becomes_a_model_error():
    with pytest.raises(ModelResponseError, match="context length exceeded"):
        list(MessagesCodec().decode_stream([b'data: {"object": "error", "message": "context length exceeded"}\n\n']))


def test_messages_event_without_choices_is_malformed():
    with pytest.raises(ModelResponseError, match="no 'choices' list"):
        list(MessagesCodec().decode_stream([b'data: {"id": "x"}\n\n']))


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_stream_requests_ask_the_container_to_stream(fmt):
    from endpoints.codecs import GenerationRequest

    codec: GenerationCodec = CODECS[fmt]()  # type: ignore[assignment]
    request = GenerationRequest(prompt="hi", messages=({"role": "user", "content": "hi"},), max_new_tokens=5)
    body = codec.encode_stream_request(request)
    assert json.loads(body)["stream"] is True
    assert codec.decode_request(body).max_new_tokens == 5


def test_text2text_cannot_stream():
    codec = CODECS["text2text"]()
    assert not codec.supports_streaming  # type: ignore[union-attr]
    with pytest.raises(StreamingNotSupportedError, match="cannot stream"):
        list(codec.decode_stream([b""]))  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_the_in_process_transport_streams_the_whole_answer_in_the_codec_format(fmt):
    codec: GenerationCodec = CODECS[fmt]()  # type: ignore[assignment]
    transport = LocalTransport(ScriptedContainer(codec, ANSWER), name="scripted")
    chunks = list(
        transport.invoke_stream(
            b'{"inputs": "q", "messages": [{"role": "user", "content": "q"}]}',
            content_type="application/json",
            accept="application/json",
        )
    )
    assert len(chunks) > 2
    assert "".join(codec.decode_stream(chunks)) == ANSWER


def test_the_in_process_transport_refuses_to_stream_a_format_that_cannot():
    transport = LocalTransport(ScriptedContainer(CODECS["text2text"](), ANSWER), name="flan")  # type: ignore[arg-type]
    with pytest.raises(StreamingNotSupportedError, match="local:flan"):
        transport.invoke_stream(b"{}", content_type="application/json", accept="application/json")


def chat_model(fmt: str, transport: object) -> EndpointChatModel:
    return EndpointChatModel(model_id="m", transport=transport, codec=CODECS[fmt](), chat_template="raw")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_chat_model_streams_chunks_that_join_to_the_answer(fmt):
    container = ScriptedContainer(CODECS[fmt](), ANSWER)  # type: ignore[arg-type]
    model = chat_model(fmt, LocalTransport(container, name="scripted"))
    chunks = [c for c in model.stream([HumanMessage("What does code 75 mean?")], stop=["\n\n"]) if c.content]
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == ANSWER
    assert container.requests[0]["stream"] is True


class OnlyInvoke:
    """A transport with no stream support."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        return self.body


def test_chat_model_without_a_streaming_transport_streams_one_whole_chunk():
    model = chat_model("tgi", OnlyInvoke(TgiCodec().encode_response(ANSWER)))
    assert [c.content for c in model.stream([HumanMessage("q")]) if c.content] == [ANSWER]


def test_chat_model_over_text2text_streams_one_whole_chunk():
    container = ScriptedContainer(CODECS["text2text"](), ANSWER)  # type: ignore[arg-type]
    model = chat_model("text2text", LocalTransport(container, name="flan"))
    assert [c.content for c in model.stream([HumanMessage("q")]) if c.content] == [ANSWER]


class EventClient:
    """The part of a sagemaker-runtime client the transport streams from, answering fixed events."""

    def __init__(self, events: list[dict]) -> None:
        self.events = events
        self.closed = False

    def invoke_endpoint_with_response_stream(self, **_: object) -> dict:
        return {"Body": self._body(), "ContentType": "text/event-stream"}

    def _body(self) -> Iterator[dict]:
        try:
            yield from self.events
        finally:
            self.closed = True


def test_sagemaker_stream_surfaces_a_model_stream_error_event():
    error = {"Message": "model timed out", "ErrorCode": "ModelInvocationTimeExceeded"}
    client = EventClient([{"PayloadPart": {"Bytes": b"data:"}}, {"ModelStreamError": error}])
    chunks = SageMakerTransport("careqa-llm", client=client).invoke_stream(
        b"{}", content_type="application/json", accept="application/json"
    )
    assert next(chunks) == b"data:"
    with pytest.raises(ModelResponseError, match="careqa-llm: model stream error \\(ModelInvocationTimeExceeded\\)"):
        next(chunks)


def test_sagemaker_stream_surfaces_an_internal_stream_failure_event():
    client = EventClient([{"InternalStreamFailure": {"Message": "try again"}}])
    chunks = SageMakerTransport("careqa-llm", client=client).invoke_stream(
        b"{}", content_type="application/json", accept="application/json"
    )
    with pytest.raises(ModelResponseError, match="internal stream failure: try again"):
        list(chunks)
