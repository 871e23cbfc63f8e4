"""The service picks the codec of the model the swap tool recorded, without a redeploy."""

import json

import boto3
import pytest
import yaml
from moto import mock_aws

from careqa.config import load_settings
from careqa.runtime import Runtime
from endpoints.sagemaker.record import parameter_name


def settings_for(tmp_path, *, follow: bool = True):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "tenants": [{"id": "pharmacy", "name": "P"}],
                "models": {
                    "llm": {
                        "config": "huggingface-llm-mistral-7b-instruct",
                        "transport": "sagemaker",
                        "endpoint_name": "careqa-llm",
                        "region": "us-east-1",
                        "follow_swaps": follow,
                    }
                },
            }
        )
    )
    return load_settings(path)


def record(config: str) -> str:
    return json.dumps(
        {
            "config": config,
            "model_id": "x",
            "model_version": "1",
            "task": "text-generation",
            "payload_format": "messages",
            "embedding_dimension": None,
            "endpoint_config": "ec",
            "recorded_at": "2026-11-25T00:00:00Z",
        }
    )


@pytest.fixture()
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def test_a_swapped_endpoint_is_called_with_the_recorded_models_codec(tmp_path, aws):
    aws.put_parameter(
        Name=parameter_name("careqa-llm"), Value=record("meta-textgeneration-llama-3-8b-instruct"), Type="String"
    )
    runtime = Runtime(settings_for(tmp_path))
    assert runtime.llm_config.name == "meta-textgeneration-llama-3-8b-instruct"
    assert runtime.chat_model.codec.takes_messages


def test_without_a_record_the_configured_model_is_used(tmp_path, aws):
    assert Runtime(settings_for(tmp_path)).llm_config.name == "huggingface-llm-mistral-7b-instruct"


def test_following_swaps_can_be_turned_off(tmp_path, aws):
    aws.put_parameter(
        Name=parameter_name("careqa-llm"), Value=record("meta-textgeneration-llama-3-8b-instruct"), Type="String"
    )
    assert Runtime(settings_for(tmp_path, follow=False)).llm_config.name == "huggingface-llm-mistral-7b-instruct"
