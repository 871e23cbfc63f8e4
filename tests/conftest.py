"""Shared fixtures. The real local models load once per session; each test gets its own index or store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from careqa.config import Settings, load_settings
from careqa.ingest import ingest_folder
from careqa.runtime import Runtime

REPO = Path(__file__).resolve().parent.parent
SAMPLE_KB = REPO / "sample_kb"
PHARMACY_TOKEN = "demo-pharmacy-agent"
SUPERVISOR_TOKEN = "demo-pharmacy-supervisor"
CLINIC_TOKEN = "demo-clinic-agent"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("careqa-data")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return load_settings(REPO / "config" / "local.yaml", data_dir=data_dir, link_secret="test-link-secret")


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Runtime:
    """The sample knowledge base ingested with the real local embedding model and LLM."""
    rt = Runtime(settings)
    for tenant in settings.tenants:
        assert tenant.kb_path is not None
        report = ingest_folder(tenant.kb_path, tenant.id, index=rt.index, embeddings=rt.embeddings)
        assert not report.rejected, report.rejected
    return rt


@pytest.fixture(scope="session")
def embeddings(runtime: Runtime):  # noqa: ANN201 - the session's EndpointEmbeddings
    return runtime.embeddings


@pytest.fixture(scope="session")
def app(settings: Settings, runtime: Runtime):  # noqa: ANN201
    from careqa.service.app import create_app

    return create_app(settings, runtime=runtime, warm_up=False)


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:  # noqa: ANN001
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def kb_copy(tmp_path: Path) -> Path:
    """A private copy of the pharmacy sample knowledge base that a test may change."""
    target = tmp_path / "kb"
    shutil.copytree(SAMPLE_KB / "pharmacy", target)
    return target


@pytest.fixture()
def fresh_index(tmp_path: Path, runtime: Runtime):  # noqa: ANN201
    from careqa.index.lance import LanceIndex

    cfg = runtime.embedding_config
    assert cfg.embedding_dimension is not None
    return LanceIndex(tmp_path / "index", dimension=cfg.embedding_dimension, embedding_model=cfg.model_id)


def config_file(
    tmp: Path, data_dir: Path, embedding: str = "huggingface-textembedding-all-MiniLM-L6-v2", kb: Path | None = None
) -> Path:
    """A CareQA config for the pharmacy tenant only, with its own data folder."""
    raw = yaml.safe_load((REPO / "config" / "local.yaml").read_text())
    raw["data_dir"] = str(data_dir)
    raw["tenants"] = [t for t in raw["tenants"] if t["id"] == "pharmacy"]
    raw["tenants"][0]["kb_path"] = str(kb or SAMPLE_KB / "pharmacy")
    raw["identities"] = [i for i in raw.get("identities", []) if i.get("tenant") == "pharmacy"]
    raw["models"] = raw.get("models") or {}
    raw["models"]["embedding"] = {"config": embedding}
    path = tmp / "careqa.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model tuned on the pharmacy knowledge base with the CLI's defaults (for a small KB); returns its config."""
    tmp = tmp_path_factory.mktemp("tuned")
    cfg = config_file(tmp, tmp / "data")
    out = tmp / "model-out"
    from typer.testing import CliRunner

    from careqa.cli import app

    result = CliRunner().invoke(
        app,
        ["tune", "embeddings", "--tenant", "pharmacy", "--no-progress", "--out", str(out),
         "--name", "minilm-pharmacy-test", "--json", str(tmp / "report.json"), "-c", str(cfg)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out / "minilm-pharmacy-test.yaml"


def browser_required() -> bool:
    return os.environ.get("CAREQA_REQUIRE_BROWSER") == "1"
