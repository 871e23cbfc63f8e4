"""scripts/refresh_jumpstart_pins.py: its text edits keep everything but the pins, and it needs no SDK to load."""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml

from endpoints.config import load_model_config

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "refresh_jumpstart_pins.py"
CONFIG = """# Pins: image_uris and model_data_uris as of 2026-11-25 (refresh: python scripts/refresh_jumpstart_pins.py).
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


@pytest.fixture(scope="module")
def pins() -> Iterator[ModuleType]:
    """The script, loaded as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("refresh_jumpstart_pins", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


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


def test_only_the_refresh_script_imports_the_sagemaker_sdk_and_only_when_run():
    repo = SCRIPT.parent.parent
    offenders = {}
    for folder in ("careqa", "endpoints", "cdk", "lambdas", "scripts", "tests", "benchmarks"):
        for path in (repo / folder).rglob("*.py"):
            imports = sdk_imports(path)
            if path == SCRIPT:
                imports = [(line, scope) for line, scope in imports if scope != "load_sdk"]
            if imports:
                offenders[str(path.relative_to(repo))] = imports
    assert offenders == {}
    assert sdk_imports(SCRIPT) and all(scope == "load_sdk" for _, scope in sdk_imports(SCRIPT))


def test_replacing_a_pin_block_keeps_every_other_line(pins):
    new = pins.replace_mapping(CONFIG, "image_uris", {"us-east-1": "222.dkr.ecr.us-east-1.amazonaws.com/tgi:new"})
    changed = [line for line in new.splitlines() if line not in CONFIG.splitlines()]
    assert changed == ["  us-east-1: 222.dkr.ecr.us-east-1.amazonaws.com/tgi:new"]
    assert yaml.safe_load(new)["image_uris"] == {
        "us-east-1": "222.dkr.ecr.us-east-1.amazonaws.com/tgi:new",
        "eu-west-1": "111.dkr.ecr.eu-west-1.amazonaws.com/tgi:old",
    }


def test_a_new_region_is_appended_to_the_block(pins):
    new = pins.replace_mapping(CONFIG, "model_data_uris", {"us-west-2": "s3://bucket/new/"})
    data = yaml.safe_load(new)
    assert list(data["model_data_uris"]) == ["us-east-1", "us-west-2"]
    assert data["local"] == {"backend": "llama-cpp", "package": "x"}


def test_a_missing_block_is_added_at_the_end(pins):
    text = CONFIG.replace("model_data_uris:\n  us-east-1: s3://bucket/old/\n", "")
    new = pins.replace_mapping(text, "model_data_uris", {"us-east-1": "s3://bucket/new/"})
    assert yaml.safe_load(new)["model_data_uris"] == {"us-east-1": "s3://bucket/new/"}
    assert new.startswith(text)


def test_a_value_yaml_would_misread_is_quoted(pins):
    new = pins.replace_mapping(CONFIG, "image_uris", {"us-east-1": "repo:tag # not a comment"})
    assert yaml.safe_load(new)["image_uris"]["us-east-1"] == "repo:tag # not a comment"


def test_an_inline_pin_mapping_is_refused_rather_than_duplicated(pins):
    text = CONFIG.replace(
        "image_uris:\n  us-east-1: 111.dkr.ecr.us-east-1.amazonaws.com/tgi:old\n"
        "  eu-west-1: 111.dkr.ecr.eu-west-1.amazonaws.com/tgi:old\n",
        "image_uris: {us-east-1: x}\n",
    )
    with pytest.raises(pins.PinEditError, match="inline"):
        pins.replace_mapping(text, "image_uris", {"us-east-1": "y"})


def test_the_pins_date_changes_only_when_a_pin_does(pins):
    same = {"us-east-1": "111.dkr.ecr.us-east-1.amazonaws.com/tgi:old"}
    assert pins.apply_pins(CONFIG, same, {"us-east-1": "s3://bucket/old/"}, "2027-01-02") == CONFIG
    new = pins.apply_pins(CONFIG, {"us-east-1": "222/tgi:new"}, {}, "2027-01-02")
    assert new.splitlines()[0].startswith("# Pins: image_uris and model_data_uris as of 2027-01-02 ")


def test_every_shipped_config_survives_a_refresh_to_the_same_pins(pins, tmp_path):
    for path in sorted((SCRIPT.parent.parent / "jumpstart_configs").glob("*.yaml")):
        text = path.read_text()
        data = yaml.safe_load(text)
        bumped = {region: f"{uri}-next" for region, uri in (data.get("image_uris") or {}).items()}
        new = pins.apply_pins(text, bumped, {}, "2027-01-02")
        target = tmp_path / path.name
        target.write_text(new)
        config = load_model_config(target)
        assert dict(config.image_uris) == bumped
        assert config.model_dump(exclude={"image_uris"}) == load_model_config(path).model_dump(exclude={"image_uris"})


def test_dry_run_prints_a_diff_and_writes_nothing(pins, tmp_path, monkeypatch, capsys):
    config = tmp_path / "m.yaml"
    config.write_text(CONFIG)
    calls: list[dict] = []

    def image_retrieve(**kwargs):
        calls.append(kwargs)
        return f"333.dkr.ecr.{kwargs['region']}.amazonaws.com/tgi:new"

    sdk = pins.Sdk(
        image_uris=SimpleNamespace(retrieve=image_retrieve),
        model_uris=SimpleNamespace(retrieve=lambda **kw: "s3://bucket/old/"),
    )
    monkeypatch.setattr(pins, "load_sdk", lambda: sdk)
    assert pins.main(["--dry-run", "--configs-dir", str(tmp_path), "--date", "2027-01-02"]) == 0
    out = capsys.readouterr().out
    assert "+  us-east-1: 333.dkr.ecr.us-east-1.amazonaws.com/tgi:new" in out
    assert "-  eu-west-1: 111.dkr.ecr.eu-west-1.amazonaws.com/tgi:old" in out
    assert config.read_text() == CONFIG
    assert {c["region"] for c in calls} == {"us-east-1", "eu-west-1"}
    assert all(c["image_scope"] == "inference" and c["model_version"] == "3.19.0" for c in calls)


def test_without_the_sdk_the_script_says_how_to_get_it(pins, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # makes `import sagemaker` raise ImportError
    assert pins.main(["--dry-run"]) == 2
    assert "pip install sagemaker" in capsys.readouterr().err
