"""careqa/jumpstart_pins.py's text edits keep everything but the pins; only the pin tools import the SDK."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from careqa import jumpstart_pins as pins
from endpoints.config import load_model_config

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "careqa" / "jumpstart_pins.py"
SCRIPT = REPO / "scripts" / "refresh_jumpstart_pins.py"
CONFIG = """# A heading comment.
# A comment the refresh must keep.
model_id: huggingface-llm-mistral-7b-instruct
model_version: "3.19.0"
task: text-generation
payload_format: tgi
default_instance_type: ml.g5.2xlarge
image_uris:
  us-east-1: 111.dkr.ecr.us-east-1.amazonaws.com/tgi:old
  eu-west-1: 111.dkr.ecr.eu-west-1.amazonaws.com/tgi:old
model_data_uris:
  us-east-1: s3://bucket/old/
local:  # a field after the pins
  backend: llama-cpp
  package: x
"""


def sdk_imports(path: Path) -> list[tuple[int, str]]:
    """(line, enclosing function or "<module>") of each import of the ``sagemaker`` SDK in a file."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else scope
            names = (
                [a.name for a in child.names]
                if isinstance(child, ast.Import)
                else [child.module or ""]
                if isinstance(child, ast.ImportFrom)
                else []
            )
            if any(n == "sagemaker" or n.startswith("sagemaker.") for n in names):
                found.append((child.lineno, scope))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>")
    return found


def test_only_the_pin_tools_import_the_sagemaker_sdk_and_the_runtime_never_does():
    """The SDK is for checking pins; the service, the CDK app and the Lambdas must run without importing it."""
    allowed = {MODULE: "load_sdk", REPO / "tests" / "test_image_pins.py": "<module>"}
    offenders = {}
    for folder in ("careqa", "endpoints", "cdk", "lambdas", "scripts", "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            imports = [(line, scope) for line, scope in sdk_imports(path) if allowed.get(path) != scope]
            if imports:
                offenders[str(path.relative_to(REPO))] = imports
    assert offenders == {}
    assert sdk_imports(MODULE) and all(scope == "load_sdk" for _, scope in sdk_imports(MODULE))


def test_replacing_a_pin_block_keeps_every_other_line():
    new = pins.replace_mapping(CONFIG, "image_uris", {"us-east-1": "222.dkr.ecr.us-east-1.amazonaws.com/tgi:new"})
    changed = [line for line in new.splitlines() if line not in CONFIG.splitlines()]
    assert changed == ["  us-east-1: 222.dkr.ecr.us-east-1.amazonaws.com/tgi:new"]
    assert yaml.safe_load(new)["image_uris"] == {
        "us-east-1": "222.dkr.ecr.us-east-1.amazonaws.com/tgi:new",
        "eu-west-1": "111.dkr.ecr.eu-west-1.amazonaws.com/tgi:old",
    }


def test_a_new_region_is_appended_to_the_block():
    new = pins.replace_mapping(CONFIG, "model_data_uris", {"us-west-2": "s3://bucket/new/"})
    data = yaml.safe_load(new)
    assert list(data["model_data_uris"]) == ["us-east-1", "us-west-2"]
    assert data["local"] == {"backend": "llama-cpp", "package": "x"}


def test_a_missing_block_is_added_at_the_end():
    text = CONFIG.replace("model_data_uris:\n  us-east-1: s3://bucket/old/\n", "")
    new = pins.replace_mapping(text, "model_data_uris", {"us-east-1": "s3://bucket/new/"})
    assert yaml.safe_load(new)["model_data_uris"] == {"us-east-1": "s3://bucket/new/"}
    assert new.startswith(text)


def test_a_value_yaml_would_misread_is_quoted():
    new = pins.replace_mapping(CONFIG, "image_uris", {"us-east-1": "repo:tag # not a comment"})
    assert yaml.safe_load(new)["image_uris"]["us-east-1"] == "repo:tag # not a comment"


def test_an_inline_pin_mapping_is_refused_rather_than_duplicated():
    text = CONFIG.replace(
        "image_uris:\n  us-east-1: 111.dkr.ecr.us-east-1.amazonaws.com/tgi:old\n"
        "  eu-west-1: 111.dkr.ecr.eu-west-1.amazonaws.com/tgi:old\n",
        "image_uris: {us-east-1: x}\n",
    )
    with pytest.raises(pins.PinEditError, match="inline"):
        pins.replace_mapping(text, "image_uris", {"us-east-1": "y"})


def test_a_replaced_block_drops_the_keys_the_new_values_lack():
    new = pins.replace_mapping(CONFIG, "image_uris", {"eu-west-1": "x/tgi:new"}, replace=True)
    assert yaml.safe_load(new)["image_uris"] == {"eu-west-1": "x/tgi:new"}
    assert yaml.safe_load(new)["local"] == {"backend": "llama-cpp", "package": "x"}


def test_a_scalar_is_set_in_place_and_keeps_its_comment():
    text = CONFIG.replace("default_instance_type: ml.g5.2xlarge", "default_instance_type: ml.g5.2xlarge  # why")
    new = pins.replace_scalar(text, "default_instance_type", "ml.g5.12xlarge")
    assert "default_instance_type: ml.g5.12xlarge  # why\n" in new
    assert len(new.splitlines()) == len(text.splitlines())


def test_every_shipped_config_survives_a_refresh_to_the_same_pins(tmp_path):
    for path in sorted((SCRIPT.parent.parent / "jumpstart_configs").glob("*.yaml")):
        text = path.read_text()
        data = yaml.safe_load(text)
        bumped = {region: f"{uri}-next" for region, uri in (data.get("image_uris") or {}).items()}
        new = pins.replace_mapping(text, "image_uris", bumped)
        target = tmp_path / path.name
        target.write_text(new)
        config = load_model_config(target)
        assert dict(config.image_uris) == bumped
        assert config.model_dump(exclude={"image_uris"}) == load_model_config(path).model_dump(exclude={"image_uris"})


def test_the_old_script_runs_careqa_models_refresh():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "Write JumpStart's image, artifact, environment and instance type" in result.stdout
