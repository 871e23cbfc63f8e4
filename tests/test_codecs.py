"""Every codec's client side and container side agree, and error bodies become clear errors."""

import json

import numpy as np
import pytest

from endpoints import available_models, load_model_config
from endpoints.codecs import (
    CODECS,
    EmbeddingCodec,
    GenerationCodec,
    GenerationRequest,
    embedding_codec,
    generation_codec,
)
from endpoints.errors import ModelConfigError, ModelResponseError, UnknownModelError

EMBEDDING_FORMATS = [name for name, cls in CODECS.items() if cls.task == "embedding"]
GENERATION_FORMATS = [name for name, cls in CODECS.items() if cls.task == "text-generation"]


@pytest.mark.parametrize("name", available_models())
def test_every_shipped_model_config_validates(name):
    config = load_model_config(name)
    assert config.name == name
    assert config.payload_format in CODECS


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UnknownModelError, match="available: .*huggingface-textembedding-all-MiniLM-L6-v2"):
        load_model_config("gpt-17")


def test_invalid_config_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model_id: x\nmodel_version: '1'\ntask: embedding\npayload_format: text_inputs_embedding\ndeployable: false\n"
    )
    with pytest.raises(ModelConfigError, match="embedding_dimension"):
        load_model_config(bad)


def test_payload_format_must_match_the_task(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model_id: x\nmodel_version: '1'\ntask: embedding\npayload_format: tgi\n"
        "deployable: false\nembedding_dimension: 3\n"
    )
    with pytest.raises(ModelConfigError, match="payload_format"):
        load_model_config(bad)


def test_missing_region_pin_is_a_clear_error():
    config = load_model_config("huggingface-textembedding-all-MiniLM-L6-v2")
    with pytest.raises(ModelConfigError, match="no image_uris pin for region 'ap-south-2'"):
        config.image_uri("ap-south-2")


@pytest.mark.parametrize("fmt", EMBEDDING_FORMATS)
def test_embedding_codec_round_trips(fmt):
    codec: EmbeddingCodec = CODECS[fmt]()  # type: ignore[assignment]
    texts = ["what does code 75 mean?", "refill too soon"]
    assert codec.decode_request(codec.encode_request(texts)) == texts
    vectors = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    assert codec.decode_response(codec.encode_response(vectors), expected=2) == vectors


@pytest.mark.parametrize("fmt", EMBEDDING_FORMATS)
def test_embedding_codec_rejects_a_wrong_vector_count(fmt):
    codec: EmbeddingCodec = CODECS[fmt]()  # type: ignore[assignment]
    with pytest.raises(ModelResponseError, match="expected 3 vectors"):
        codec.decode_response(codec.encode_response([[0.1], [0.2]]), expected=3)


@pytest.mark.parametrize(
    ("vectors", "reason"),
    [
        ([[0.1, 0.2], [0.3]], "differ in length"),
        ([[0.1, "0.2"], [0.3, 0.4]], "not a list of numbers"),
        ([[0.1, None], [0.3, 0.4]], "not a list of numbers"),
        ([[], []], "not a list of numbers"),
        ([[[0.1]], [[0.2]]], "not a list of numbers"),
        ([[0.1, float("nan")], [0.3, 0.4]], "not JSON"),  # json.dumps writes NaN, which is not JSON
    ],
)
def test_embedding_codec_rejects_malformed_vectors(vectors, reason):
    codec = embedding_codec("text_inputs_embedding")
    body = json.dumps({"embedding": vectors}).encode()
    with pytest.raises(ModelResponseError, match=reason):
        codec.decode_response(body, expected=2)


def test_embedding_request_bytes_are_what_json_dumps_writes():
    """What a SageMaker endpoint receives did not change when the response side moved to orjson."""
    texts = ["What does code 75 mean?", "café, 東京"]
    for fmt in EMBEDDING_FORMATS:
        body = CODECS[fmt]().encode_request(texts)  # type: ignore[attr-defined]
        assert body == json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    assert embedding_codec("text_inputs_embedding").encode_request(texts) == (
        '{"text_inputs": ["What does code 75 mean?", "café, 東京"]}'.encode()
    )


def test_container_writes_float32_vectors_that_read_back_exactly():
    codec = embedding_codec("text_inputs_embedding")
    vectors = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    decoded = codec.decode_array(codec.encode_response(vectors), expected=3)
    assert np.array_equal(decoded.astype(np.float32), vectors)


@pytest.mark.parametrize("fmt", GENERATION_FORMATS)
def test_generation_codec_round_trips(fmt):
    codec: GenerationCodec = CODECS[fmt]()  # type: ignore[assignment]
    request = GenerationRequest(
        prompt="" if codec.takes_messages else "Question: hi\nAnswer:",
        messages=({"role": "user", "content": "hi"},) if codec.takes_messages else (),
        max_new_tokens=42,
        stop=("\n\n",) if fmt != "text2text" else (),
    )
    decoded = codec.decode_request(codec.encode_request(request))
    assert decoded.prompt == request.prompt
    assert decoded.messages == request.messages
    assert decoded.max_new_tokens == 42
    assert decoded.stop == request.stop
    assert codec.decode_response(codec.encode_response("Code 75 means prior authorization.")) == (
        "Code 75 means prior authorization."
    )


ERROR_BODIES = [
    {"error": "Input validation error: inputs too long", "error_type": "validation"},
    {"code": 400, "type": "InternalServerException", "message": "CUDA out of memory"},
    {"object": "error", "message": "context length exceeded"},
    {"error": {"message": "bad request", "type": "invalid_request_error"}},
]


@pytest.mark.parametrize("fmt", list(CODECS))
@pytest.mark.parametrize("body", ERROR_BODIES)
def test_error_bodies_become_model_errors(fmt, body):
    codec = CODECS[fmt]()
    with pytest.raises(ModelResponseError, match="model error"):
        if isinstance(codec, EmbeddingCodec):
            codec.decode_response(json.dumps(body).encode(), expected=1)
        else:
            codec.decode_response(json.dumps(body).encode())


@pytest.mark.parametrize("fmt", list(CODECS))
def test_malformed_json_is_a_model_error_not_a_crash(fmt):
    codec = CODECS[fmt]()
    with pytest.raises(ModelResponseError, match="malformed"):
        if isinstance(codec, EmbeddingCodec):
            codec.decode_response(b"<html>502 Bad Gateway</html>", expected=1)
        else:
            codec.decode_response(b"<html>502 Bad Gateway</html>")


@pytest.mark.parametrize("fmt", GENERATION_FORMATS)
def test_a_response_without_the_expected_field_is_a_model_error(fmt):
    with pytest.raises(ModelResponseError, match="malformed"):
        CODECS[fmt]().decode_response(b'{"unexpected": true}')


def test_local_embedding_container_serves_the_jumpstart_contract(embeddings):
    """The local transport answers the same bytes a JumpStart text-embedding endpoint would."""
    body = json.dumps({"text_inputs": ["prior authorization", "refill"]}).encode()
    raw = embeddings.transport.invoke(body, content_type="application/json", accept="application/json")
    payload = json.loads(raw)
    assert len(payload["embedding"]) == 2 and len(payload["embedding"][0]) == 384


def test_local_container_rejects_a_malformed_request_like_a_container(embeddings):
    with pytest.raises(ModelResponseError, match="bad request") as info:
        embeddings.transport.invoke(b'{"inputs": 3}', content_type="application/json", accept="application/json")
    assert info.value.status == 400


def test_local_container_enforces_the_batch_limit(embeddings):
    body = json.dumps({"text_inputs": ["x"] * 33}).encode()
    with pytest.raises(ModelResponseError, match="exceeds the model's limit of 32"):
        embeddings.transport.invoke(body, content_type="application/json", accept="application/json")


def test_embeddings_split_large_inputs_into_model_sized_batches(embeddings):
    vectors = embeddings.embed_documents([f"text {i}" for i in range(70)])
    assert len(vectors) == 70
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-4  # normalised for cosine search


# --- Container families: a config's payload format must be one its container reads -------------------

DEPLOYABLE = [c for c in map(load_model_config, available_models()) if c.deployable]
# The shape huggingface-text2text-flan-t5-xl had before issue 11: a 2.x version on the TGI image, with the
# 1.x `text_inputs` request (text2text) that only JumpStart's old script on the PyTorch image reads.
TGI_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
    "2.3.0-tgi2.0.2-gpu-py310-cu121-ubuntu22.04"
)
MISMATCHED_FLAN = f"""\
model_id: huggingface-text2text-flan-t5-xl
model_version: "2.2.7"
task: text-generation
payload_format: text2text
container: {{family: tgi, framework: huggingface-llm, version: 2.0.2}}
default_instance_type: ml.g5.2xlarge
image_uris:
  us-east-1: {TGI_IMAGE}
"""


@pytest.mark.parametrize("config", DEPLOYABLE, ids=[c.name for c in DEPLOYABLE])
def test_every_deployable_config_names_a_container_that_reads_its_payload_format(config):
    assert config.container is not None
    assert config.container.family in CODECS[config.payload_format].families


def test_a_config_whose_container_does_not_read_its_payload_format_is_refused(tmp_path):
    bad = tmp_path / "flan.yaml"
    bad.write_text(MISMATCHED_FLAN)
    with pytest.raises(
        ModelConfigError, match="container.family: a tgi container does not read payload_format 'text2text'"
    ):
        load_model_config(bad)
    bad.write_text(MISMATCHED_FLAN.replace("payload_format: text2text", "payload_format: tgi"))
    assert load_model_config(bad).container.family == "tgi"  # the same file with TGI's format loads


def test_an_image_of_another_family_than_the_container_is_refused(tmp_path):
    bad = tmp_path / "flan.yaml"
    bad.write_text(
        MISMATCHED_FLAN.replace("payload_format: text2text", "payload_format: tgi").replace(
            "huggingface-pytorch-tgi-inference:", "djl-inference:"
        )
    )
    with pytest.raises(
        ModelConfigError, match="image_uris.us-east-1: .* is a lmi container image, container.family is tgi"
    ):
        load_model_config(bad)


def test_a_deployable_config_must_name_its_container(tmp_path):
    bad = tmp_path / "flan.yaml"
    bad.write_text(
        MISMATCHED_FLAN.replace("container: {family: tgi, framework: huggingface-llm, version: 2.0.2}\n", "")
    )
    with pytest.raises(ModelConfigError, match="container: a deployable model names its container"):
        load_model_config(bad)


def test_every_payload_format_is_read_by_some_container_family():
    assert all(codec.families for codec in CODECS.values())


# --- Real response bodies of each family, from public docs and examples -----------------------------
# Each entry: the response body as published (trimmed where noted), and what the codec must read from it.
# The request side of each family is the one the same source sends.

REAL_GENERATION_BODIES = {
    # djl-serving serving/docs/lmi/user_guides/lmi_input_output_schema.md (@0971984), "Response with TGI
    # compatibility": documented as TGI's own output shape (a list of one object); token list omitted.
    "tgi": (
        b'[{"generated_text": "Deep Learning is a really cool field", "details": {"finish reason": "length", '
        b'"generated_tokens": 8, "inputs": "What is Deep Learning?"}}]',
        "Deep Learning is a really cool field",
    ),
    # aws/amazon-sagemaker-examples@2d519b5 archived/text2text-generation-Batch-Transform.ipynb: one output
    # line of a JumpStart text2text (Flan-T5 1.x) batch transform.
    "text2text": (
        b'{"id":2, "generated_texts":["Preheat oven to 400 degrees F. Spread pizza sauce on a pizza pan. Bake for"]}',
        "Preheat oven to 400 degrees F. Spread pizza sauce on a pizza pan. Bake for",
    ),
    # djl-serving serving/docs/lmi/user_guides/chat_input_output_schema.md (@2924b70): LMI's answer to a
    # `messages` request on /invocations.
    "messages": (
        b'{"id":"chatcmpl-0","object":"chat.completion","created":1711997860,"choices":[{"index":0,"message":'
        b'{"role":"assistant","content":"Hello! I\'m here to help you with any questions you may have. Deep '
        b'learning is a subfield of machine learning that involves the use"},"logprobs":null,"finish_reason":'
        b'"length"}],"usage":{"prompt_tokens":33,"completion_tokens":30,"total_tokens":63}}',
        "Hello! I'm here to help you with any questions you may have. Deep learning is a subfield of machine "
        "learning that involves the use",
    ),
}

REAL_EMBEDDING_BODIES = {
    # TEI's /embed answer for BAAI/bge-large-en-v1.5 ("Hello World!"), first five of 1024 dimensions as printed
    # in LlamaIndex's "Text Embedding Inference" example (developers.llamaindex.ai, read 2026-12-02).
    "tei_embedding": (
        b"[[0.010597229, 0.05895996, 0.022445679, -0.012046814, -0.03164673]]",
        [[0.010597229, 0.05895996, 0.022445679, -0.012046814, -0.03164673]],
    ),
    # aws/amazon-sagemaker-examples@2d519b5 generative_ai/sm-jumpstart_foundation_rag_langchain_question_answering
    # .ipynb reads `response["embedding"]` from a JumpStart text-embedding endpoint; the notebook prints no
    # values, so these three are the TEI ones above: the shape is what this format fixes.
    "text_inputs_embedding": (
        b'{"embedding": [[0.010597229, 0.05895996, 0.022445679]]}',
        [[0.010597229, 0.05895996, 0.022445679]],
    ),
    # Same response shape for the sentence-similarity script (issue 11, shared/ENVIRONMENT.md): only the
    # request differs, by `"mode": "embedding"`.
    "sentence_similarity_embedding": (
        b'{"embedding": [[0.010597229, 0.05895996, 0.022445679]]}',
        [[0.010597229, 0.05895996, 0.022445679]],
    ),
}


def test_every_codec_has_a_real_body_in_these_tests():
    assert set(REAL_GENERATION_BODIES) | set(REAL_EMBEDDING_BODIES) == set(CODECS)


@pytest.mark.parametrize("fmt", sorted(REAL_GENERATION_BODIES))
def test_each_generation_codec_reads_a_real_body_of_its_family_and_writes_one_it_reads_back(fmt):
    body, text = REAL_GENERATION_BODIES[fmt]
    codec = generation_codec(fmt)
    assert codec.decode_response(body) == text
    assert codec.decode_response(codec.encode_response(text)) == text


@pytest.mark.parametrize("fmt", sorted(REAL_EMBEDDING_BODIES))
def test_each_embedding_codec_reads_a_real_body_of_its_family_and_writes_one_it_reads_back(fmt):
    body, vectors = REAL_EMBEDDING_BODIES[fmt]
    codec = embedding_codec(fmt)
    assert codec.decode_response(body, expected=1) == vectors
    assert codec.decode_response(codec.encode_response(vectors), expected=1) == vectors


def test_lmi_s_plain_answer_an_object_not_a_list_is_read_too():
    """djl-serving lmi_input_output_schema.md (@0971984), rolling batch, non-streaming example response."""
    body = (
        b'{"generated_text": "Deep Learning is a really cool field", "details": {"finish reason": "length", '
        b'"generated_tokens": 8, "inputs": "What is Deep Learning?"}}'
    )
    assert generation_codec("tgi").decode_response(body) == "Deep Learning is a really cool field"


def test_lmi_s_json_lines_chat_stream_is_read_by_the_messages_codec():
    """djl-serving chat_input_output_schema.md (@2924b70): streamed chunks as JSON lines (logprobs trimmed)."""
    chunks = [
        b'{"id": "chatcmpl-0", "object": "chat.completion.chunk", "created": 1712792433, "choices": [{"index": 0, '
        b'"delta": {"content": " Oh", "role": "assistant"}, "logprobs": null, "finish_reason": null}]}\n',
        b'{"id": "chatcmpl-0", "object": "chat.completion.chunk", "created": 1712792436, "choices": [{"index": 0, '
        b'"delta": {"content": " assist"}, "logprobs": null, "finish_reason": "length"}]}\n',
    ]
    assert list(generation_codec("messages").decode_stream(chunks)) == [" Oh", " assist"]


def test_lmi_s_json_lines_token_stream_is_read_by_the_tgi_codec():
    """djl-serving lmi_input_output_schema.md (@0971984): streamed tokens as JSON lines, the last with the text."""
    chunks = [
        b'{"token": {"id": 304, "text": "Deep ", "log_prob": -0.052432529628276825}}\n',
        b'{"token": {"id": 11157, "text": " Learning", "log_prob": -1.2865009307861328}}\n',
        b'{"token": {"id": 5972, "text": " field.", "log_prob": -0.6950479745864868}, '
        b'"generated_text": "Deep  Learning field.", "details": {"finish_reason": "length"}}\n',
    ]
    assert "".join(generation_codec("tgi").decode_stream(chunks)) == "Deep  Learning field."


def test_the_sentence_similarity_request_names_the_embedding_mode():
    codec = embedding_codec("sentence_similarity_embedding")
    assert json.loads(codec.encode_request(["refill too soon"])) == {
        "text_inputs": ["refill too soon"],
        "mode": "embedding",
    }
    with pytest.raises(ValueError, match="'mode' must be 'embedding'"):
        codec.decode_request(b'{"text_inputs": ["x"], "mode": "nn_train_data"}')
