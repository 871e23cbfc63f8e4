"""``careqa``'s public API: the names users import, pinned; each is the real object; importing careqa stays cheap."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import careqa

REPO = Path(__file__).resolve().parent.parent

PUBLIC = [
    "Answer",
    "AnswerEngine",
    "CareQAError",
    "HybridRetriever",
    "KnowledgeBaseRetriever",
    "Runtime",
    "Settings",
    "load_judged",
    "load_settings",
    "run_config",
    "run_eval",
]
DEFINED_IN = {
    "Answer": "careqa.types",
    "AnswerEngine": "careqa.answer",
    "CareQAError": "careqa.errors",
    "HybridRetriever": "careqa.retrieve",
    "KnowledgeBaseRetriever": "careqa.retrieve",
    "Runtime": "careqa.runtime",
    "Settings": "careqa.config",
    "load_judged": "careqa.answer_eval",
    "load_settings": "careqa.config",
    "run_config": "careqa.answer_eval",
    "run_eval": "careqa.evaluate",
}


def test_the_public_api_is_exactly_these_names() -> None:
    assert careqa.__all__ == PUBLIC


def test_each_public_name_is_the_object_its_module_defines() -> None:
    for name in careqa.__all__:
        assert getattr(careqa, name) is getattr(importlib.import_module(DEFINED_IN[name]), name), name


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from careqa import *", namespace)
    assert sorted(k for k in namespace if not k.startswith("__")) == PUBLIC


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        careqa.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_importing_careqa_loads_none_of_the_heavy_libraries() -> None:
    code = (
        "import json, sys; import careqa, careqa.errors; "
        "print(json.dumps(sorted(m for m in ('langchain_core', 'lancedb', 'numpy', 'sklearn', 'boto3', 'torch') "
        "if m in sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == []
