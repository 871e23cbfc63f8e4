"""The import contract (.importlinter) holds, and breaks when a lower layer imports a higher one.

Layers, highest first: careqa_cdk, careqa_deploy, lambdas, careqa, endpoints (docs/architecture.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("careqa", "careqa_deploy", "endpoints", "lambdas", "cdk/careqa_cdk")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the tree at ``root``, with its packages first on the import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "cdk")])}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_the_import_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's packages and contract, copied so a test can break them."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", root / ".importlinter")
    return root


@pytest.mark.parametrize(
    ("module", "violation", "reported"),
    [
        ("careqa/retrieve.py", "import careqa_deploy.cost", "careqa is not allowed to import careqa_deploy"),
        ("careqa/runtime.py", "import careqa_cdk.models", "careqa is not allowed to import careqa_cdk"),
        ("endpoints/codecs.py", "import careqa.config", "endpoints is not allowed to import careqa"),
        ("careqa_deploy/cost.py", "import careqa_cdk.names", "careqa_deploy is not allowed to import careqa_cdk"),
        ("lambdas/ingest_handler.py", "import careqa_deploy.config", "lambdas is not allowed to import careqa_deploy"),
        ("endpoints/local_transport.py", "import boto3", "endpoints.local_transport is not allowed to import boto3"),
    ],
)
def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(
    tree_copy: Path, module: str, violation: str, reported: str
) -> None:
    path = tree_copy / module
    original = path.read_text()
    path.write_text(f"{original}\n{violation}  # a deliberate violation\n")
    try:
        result = lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert reported in result.stdout, result.stdout[-4000:]
