"""Synthesize the CDK app once per session per profile (synth is slow) and share the templates.

* ``cheap``: ``config/deploy.example.yaml`` as shipped (profile cheap);
* ``production``: the same file with ``-c profile=production`` (and ``-c allow_unverified_pins=true``: the
  shipped model configs have pins no source confirmed, which production refuses otherwise; see
  ``test_pin_policy.py``);
* ``swapped``: production again, with a swap record in the context (``careqa:activeModels`` names
  Falcon as live on the LLM endpoint), to show a deploy keeps a swapped model.

The first synth pays for starting the jsii runtime (~15 s); later ones take a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "deploy.example.yaml"
SWAPPED_LLM = "huggingface-llm-falcon-7b-instruct-bf16"
ALLOW_UNVERIFIED = {"allow_unverified_pins": "true"}


def load_cdk_app() -> ModuleType:
    """``cdk/app.py`` as a module (its name, ``app``, would shadow others on sys.path)."""
    spec = importlib.util.spec_from_file_location("careqa_cdk_app", REPO / "cdk" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["careqa_cdk_app"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Synth:
    """One synthesized app: its stacks and their templates, by short name (network, data, ...)."""

    stacks: Any
    templates: dict[str, Any]
    jsons: dict[str, dict[str, Any]]
    outdir: Path

    def resources(self, stack: str, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.jsons[stack]["Resources"].items() if v["Type"] == type_name}

    def all_resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {f"{s}/{k}": v for s in self.jsons for k, v in self.resources(s, type_name).items()}

    def assets(self, stack: str) -> dict[str, Any]:
        """The stack's asset manifest (files and Docker images the CLI would publish)."""
        name = getattr(self.stacks, stack).artifact_id
        return dict(json.loads((self.outdir / f"{name}.assets.json").read_text()))


def _synth(tmp: Path, context: dict[str, Any]) -> Synth:
    from aws_cdk.assertions import Template

    cdk_app = load_cdk_app()
    app, stacks = cdk_app.build_app({"config": str(EXAMPLE_CONFIG), **context}, outdir=str(tmp), nag_reports=False)
    app.synth()
    names = ("network", "data", "models", "service", "ingestion", "monitoring")
    templates = {name: Template.from_stack(getattr(stacks, name)) for name in names}
    return Synth(stacks=stacks, templates=templates, jsons={n: t.to_json() for n, t in templates.items()}, outdir=tmp)


@pytest.fixture(scope="session")
def cheap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield _synth(tmp_path_factory.mktemp("cdk-cheap"), {})


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield _synth(tmp_path_factory.mktemp("cdk-production"), {"profile": "production", **ALLOW_UNVERIFIED})


@pytest.fixture(scope="session")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield _synth(
        tmp_path_factory.mktemp("cdk-swapped"),
        {"profile": "production", "careqa:activeModels": {"careqa-llm": SWAPPED_LLM}, **ALLOW_UNVERIFIED},
    )


@pytest.fixture(params=["cheap", "production"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each profile in turn, for properties both must have."""
    return request.getfixturevalue(request.param)
