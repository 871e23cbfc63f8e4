"""``cdk/record_active_models.py`` turns the swap tool's SSM records into CDK context."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from careqa_deploy.config import load_deploy_config
from careqa_deploy.models import ACTIVE_MODELS_CONTEXT
from endpoints.config import load_model_config
from endpoints.sagemaker.record import ActiveModel, parameter_name

from .conftest import EXAMPLE_CONFIG, REPO

REGION = "us-east-1"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("record_active_models", REPO / "cdk" / "record_active_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION)


def test_live_models_recorded_by_the_swap_tool_land_in_cdk_context(ssm: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    falcon = load_model_config("huggingface-llm-falcon-7b-instruct-bf16")
    record = ActiveModel.from_config("careqa-llm", falcon, "careqa-llm-20261125", datetime(2026, 11, 25, tzinfo=UTC))
    ssm.put_parameter(Name=parameter_name("careqa-llm"), Value=record.to_json(), Type="String")
    context_file = tmp_path / "cdk.context.json"
    context_file.write_text(json.dumps({"availability-zones:account=1:region=us-east-1": ["a", "b"]}))

    script = _script()
    active = script.read_active_models(load_deploy_config(EXAMPLE_CONFIG), ssm)
    context = script.write_context(context_file, active)

    assert active == {"careqa-llm": falcon.name}  # the embedding endpoint has no record: the config decides
    written = json.loads(context_file.read_text())
    assert written[ACTIVE_MODELS_CONTEXT] == {"careqa-llm": falcon.name} and written == context
    assert "availability-zones:account=1:region=us-east-1" in written
