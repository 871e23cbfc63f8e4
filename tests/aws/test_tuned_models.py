"""A tuned embedding model on SageMaker: ``careqa models package`` against moto's S3, and a swap that refuses a
model of the same dimension but another identity until the index holds its vectors."""

from __future__ import annotations

import json
import tarfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from careqa.cli_models import build_app, index_check
from careqa.index.lance import LanceIndex, generation_path
from endpoints.config import ModelConfig, load_model_config
from endpoints.custom import tuned_config, write_config
from endpoints.sagemaker.builders import container_definition
from endpoints.sagemaker.errors import SwapRefused

from ..conftest import config_file
from .conftest import REGION
from .test_swap import EMBED, MINILM, Clock, deploy, plan

BUCKET = "careqa-kb-123456789012"


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def fabricated_tuned(tmp: Path, *, packaged: bool = True) -> tuple[ModelConfig, Path]:
    """A tuned-model config in a configs folder (its weights are never loaded by a swap plan)."""
    model = tmp / "weights"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"not really weights, only hashed")
    configs = tmp / "configs"
    data = tuned_config(
        MINILM, name="minilm-pharmacy", model_dir=model, config_dir=configs, tuned={}, today=date(2026, 12, 2)
    )
    if packaged:
        data["model_data_uris"] = {REGION: f"s3://{BUCKET}/models/minilm-pharmacy/model.tar.gz"}
    config = write_config(data, configs / "minilm-pharmacy.yaml")
    return config, configs


def test_a_same_size_model_of_another_identity_is_refused_until_every_tenant_is_reembedded(sagemaker_fake, tmp_path):
    clock = Clock()
    deploy(sagemaker_fake, EMBED, MINILM, clock)
    tuned, configs = fabricated_tuned(tmp_path)
    assert tuned.embedding_dimension == MINILM.embedding_dimension and tuned.identity != MINILM.identity

    with pytest.raises(SwapRefused, match="another embedding model.*pass --config"):
        plan(sagemaker_fake, EMBED, tuned, clock, configs_dir=configs)

    # The service's index holds MiniLM's vectors and no copy for the tuned model.
    settings_file = config_file(tmp_path, tmp_path / "data")
    root = tmp_path / "data" / "index"
    LanceIndex(root, dimension=384, embedding_model=MINILM.identity)
    check = index_check(settings_file)
    with pytest.raises(SwapRefused, match=r"no complete copy for .*pharmacy.*careqa ingest --reembed"):
        plan(sagemaker_fake, EMBED, tuned, clock, configs_dir=configs, index_check=check)

    # A copy that is still being built is not enough either.
    copy = LanceIndex(generation_path(root, tuned.identity), dimension=384, embedding_model=tuned.identity)
    with pytest.raises(SwapRefused, match="pharmacy"):
        plan(sagemaker_fake, EMBED, tuned, clock, configs_dir=configs, index_check=check)

    copy.mark_complete("pharmacy", "2026-12-02T10:00:00+00:00")
    ready = plan(sagemaker_fake, EMBED, tuned, clock, configs_dir=configs, index_check=check)
    assert ready.model_request["PrimaryContainer"]["ModelDataUrl"] == tuned.model_data_uris[REGION]
    assert sagemaker_fake.update_requests == []


def test_the_swap_command_checks_the_index_of_the_config_it_is_given(sagemaker_fake, tmp_path, monkeypatch):
    clock = Clock()
    deploy(sagemaker_fake, EMBED, MINILM, clock)
    tuned, configs = fabricated_tuned(tmp_path)
    settings_file = config_file(tmp_path, tmp_path / "data")
    LanceIndex(tmp_path / "data" / "index", dimension=384, embedding_model=MINILM.identity)
    app = build_app(client=sagemaker_fake.client, sleep=lambda _s: None)
    args = ["swap", EMBED, str(configs / "minilm-pharmacy.yaml"), "--dry-run", "--region", REGION]
    import endpoints.config as endpoint_config

    monkeypatch.setattr(endpoint_config, "CONFIGS_DIR", configs)  # the service ships the tuned config
    refused = CliRunner().invoke(app, [*args, "--config", str(settings_file)])
    without = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "careqa ingest --reembed" in refused.output
    assert without.exit_code == 2 and "--config" in without.output


def test_a_tuned_model_the_service_does_not_ship_is_refused(sagemaker_fake, tmp_path):
    clock = Clock()
    deploy(sagemaker_fake, EMBED, MINILM, clock)
    tuned, _ = fabricated_tuned(tmp_path)
    with pytest.raises(SwapRefused, match="Copy it into jumpstart_configs/ and deploy the service"):
        plan(sagemaker_fake, EMBED, tuned, clock, index_check=lambda _t: [])


def test_a_tuned_model_not_packaged_for_the_region_cannot_be_deployed(tmp_path):
    tuned, _ = fabricated_tuned(tmp_path, packaged=False)
    with pytest.raises(ValueError, match="careqa models package minilm-pharmacy"):
        container_definition(tuned, REGION, accept_eula=False)


def test_package_uploads_an_artifact_that_serves_the_tuned_model_and_pins_it(sagemaker_fake, tuned, tmp_path):
    s3 = sagemaker_fake.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    config_path = tmp_path / "tuned.yaml"
    config_path.write_text(Path(tuned).read_text())
    data = yaml.safe_load(config_path.read_text())
    data["local"]["path"] = str(Path(tuned).parent / "model")  # the copy points at the same weights
    config_path.write_text(yaml.safe_dump(data))

    app = build_app(client=sagemaker_fake.client, today=lambda: date(2026, 12, 2))
    result = CliRunner().invoke(app, ["package", str(config_path), "--bucket", BUCKET, "--region", REGION])
    assert result.exit_code == 0, result.output

    config = load_model_config(config_path)
    uri = config.model_data_uris[REGION]
    assert uri.startswith(f"s3://{BUCKET}/models/tuned/") and uri.endswith("/model.tar.gz")
    assert config.pins["model_data_uris"].verified == date(2026, 12, 2)
    key = uri.removeprefix(f"s3://{BUCKET}/")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert container_definition(config, REGION, accept_eula=False)["ModelDataUrl"] == uri

    artifact = tmp_path / "model.tar.gz"
    s3.download_file(BUCKET, key, str(artifact))
    extracted = tmp_path / "opt-ml-model"
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
        tar.extractall(extracted, filter="data")
    assert {"code/inference.py", "pytorch_model.bin", "model.safetensors", "config.json", "tokenizer.json"} <= names
    assert "1_Pooling/config.json" in names

    # The inference script, as the Hugging Face inference toolkit calls it, returns the model's own vectors.
    import importlib.util

    spec = importlib.util.spec_from_file_location("careqa_inference_script", extracted / "code" / "inference.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    loaded = script.model_fn(str(extracted))
    texts = ["pt got reject 75", "can a C-II be transferred?"]
    request = script.input_fn(json.dumps({"text_inputs": texts}), "application/json")
    body, content_type = script.output_fn(script.predict_fn(request, loaded), "application/json")
    assert content_type == "application/json"
    from endpoints.codecs import embedding_codec
    from endpoints.local import EmbeddingContainer

    served = embedding_codec(config.payload_format).decode_array(body.encode(), 2)
    assert config.local is not None
    pytorch = config.local.model_copy(update={"backend": "sentence-transformers"})
    local = EmbeddingContainer(config.model_copy(update={"local": pytorch})).encode(texts)
    assert np.allclose(served, local, atol=1e-4)
    with pytest.raises(ValueError, match="text_inputs"):
        script.input_fn('{"inputs": "x"}', "application/json")


def test_package_refuses_a_jumpstart_model(sagemaker_fake):
    app = build_app(client=sagemaker_fake.client)
    path = Path(__file__).resolve().parents[2] / "jumpstart_configs" / f"{MINILM.name}.yaml"
    result = CliRunner().invoke(app, ["package", str(path), "--bucket", BUCKET, "--region", REGION])
    assert result.exit_code == 2 and "only tuned models are packaged" in result.output


def test_the_endpoint_role_may_read_a_tuned_artifact_but_not_the_rest_of_its_bucket(tmp_path):
    import shutil

    from careqa_deploy.models import artifact_sources

    tuned, configs = fabricated_tuned(tmp_path)
    shutil.copy(Path(__file__).resolve().parents[2] / "jumpstart_configs" / f"{MINILM.name}.yaml", configs)
    sources = artifact_sources(REGION, configs)
    assert sources.s3_objects == (f"{BUCKET}/models/minilm-pharmacy/model.tar.gz",)
    assert BUCKET not in sources.s3_buckets and sources.s3_buckets  # MiniLM's JumpStart bucket stays
