"""The deploy config: validated at synth with the field named; the live model wins over the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from careqa_deploy.config import DeployConfigError, load_deploy_config
from careqa_deploy.models import parse_active_models, resolve_model

from .conftest import EXAMPLE_CONFIG, load_cdk_app


def _write(tmp_path: Path, **changes: Any) -> Path:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_example_config_is_valid() -> None:
    config = load_deploy_config(EXAMPLE_CONFIG)
    assert config.profile == "cheap" and [t.id for t in config.tenants] == ["pharmacy", "clinic"]


def test_synth_fails_naming_an_unknown_model(tmp_path: Path) -> None:
    cdk_app = load_cdk_app()
    with pytest.raises(DeployConfigError, match=r"llm\.config: unknown model 'llama-9'"):
        cdk_app.build_app({"config": str(_write(tmp_path, llm__config="llama-9"))})


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"llm__config": "huggingface-textembedding-all-MiniLM-L6-v2"}, r"llm\.config: .* is a embedding model"),
        ({"llm__config": "local-gemma-3-270m"}, r"llm\.config: .*local-only stand-in"),
        ({"llm__config": "meta-textgeneration-llama-3-8b-instruct"}, r"llm\.accept_eula: .*gated model"),
        (
            {"embedding__config": "huggingface-sentencesimilarity-bge-large-en-v1-5"},
            r"embedding\.config: .*serverless inference .* has none",
        ),
        ({"env__region": "ap-south-2"}, r"embedding\.config: .*no container image pinned for ap-south-2"),
        ({"auth__certificate_arn": "not-an-arn"}, r"auth\.certificate_arn: String should match pattern"),
        ({"profile": "premium"}, r"profile: Input should be 'cheap' or 'production'"),
        ({"opensearch__production": {"data_nodes": 3}}, r"opensearch\.production: .*even number"),
        ({"fargate__cheap": {"cpu": 256, "memory_mib": 4096}}, r"fargate\.cheap: .*not valid with cpu 256"),
        ({"network__allowed_cidrs": ["0.0.0.0/0"]}, r"network\.allowed_cidrs: .*internal"),
        ({"embedding__production": {"min_instances": 0}}, r"embedding\.production\.min_instances"),
    ],
)
def test_a_bad_value_fails_with_its_field_named(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployConfigError, match=message):
        load_deploy_config(_write(tmp_path, **changes))


def test_an_identity_cannot_belong_to_two_tenants(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    raw["tenants"][1]["identities"].append({"group": "northwind-care-agents"})
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DeployConfigError, match=r"tenants: .*mapped to both 'pharmacy' and 'clinic'"):
        load_deploy_config(path)


def test_the_swap_record_wins_over_the_deploy_config() -> None:
    config = load_deploy_config(EXAMPLE_CONFIG)
    resolved = resolve_model(config, "llm", {"careqa-llm": "huggingface-llm-falcon-7b-instruct-bf16"})
    assert resolved.config.name == "huggingface-llm-falcon-7b-instruct-bf16"
    assert resolved.source == "active-record" and resolved.note and "careqa models swap" in resolved.note
    assert resolve_model(config, "llm", {}).config.name == config.llm.config


def test_a_swap_record_that_would_break_the_indices_is_refused() -> None:
    config = load_deploy_config(EXAMPLE_CONFIG)
    with pytest.raises(DeployConfigError, match=r"careqa:activeModels\.careqa-embedding: .*1024-dimensional"):
        resolve_model(config, "embedding", {"careqa-embedding": "huggingface-sentencesimilarity-bge-large-en-v1-5"})
    with pytest.raises(DeployConfigError, match=r"careqa:activeModels\.careqa-llm: .*embedding model"):
        resolve_model(config, "llm", {"careqa-llm": "huggingface-textembedding-all-MiniLM-L6-v2"})


def test_active_models_come_as_a_mapping_or_json_text() -> None:
    assert parse_active_models('{"careqa-llm": "x"}') == {"careqa-llm": "x"}
    assert parse_active_models({"careqa-llm": "x"}) == {"careqa-llm": "x"}
    assert parse_active_models(None) == {}
    with pytest.raises(DeployConfigError, match="careqa:activeModels"):
        parse_active_models("[1, 2]")
