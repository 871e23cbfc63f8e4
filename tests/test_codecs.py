"""Every codec's client side and container side agree, and error bodies become clear errors."""

import json

import pytest

from endpoints import available_models, load_model_config
from endpoints.codecs import CODECS, EmbeddingCodec, GenerationCodec, GenerationRequest
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
