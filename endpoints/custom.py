"""Models CareQA made: the config of a tuned embedding model, and its SageMaker model artifact.

A tuned model is served like the JumpStart model it was tuned from: the same container image, payload
format and dimension (so the service's codec and the swap tool need nothing new), with its own weights in a
``model.tar.gz`` that ``careqa models package`` builds and uploads. Locally its folder is served by the same
ONNX (or PyTorch) backend as the packaged base model.

Its identity (``ModelConfig.identity``) carries a hash of its weight files: an index built with one tuning
run is never searched with vectors of another, even though every run has the same dimension.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from endpoints.config import ModelConfig, load_model_config
from endpoints.errors import ModelConfigError

#: the inference script packed as code/inference.py
INFERENCE_SCRIPT = Path(__file__).resolve().parent / "serving" / "inference.py"
#: what the Hugging Face inference toolkit needs to find the script
SERVING_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}
#: weights the artifact carries as pytorch_model.bin too: the 1.x images' transformers read that format first
_MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json", "modules.json")


def weights_sha256(model_dir: Path) -> str:
    """The identity of a saved model: a hash over its weight files (the same weights, the same vectors)."""
    digest = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in {".safetensors", ".bin"})
    if not files:
        raise ModelConfigError(f"{model_dir}: no weight files (*.safetensors)")
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode())
        with path.open("rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tuned_config(
    base: ModelConfig, *, name: str, model_dir: Path, config_dir: Path, tuned: dict[str, Any], today: date
) -> dict[str, Any]:
    """The model config (as YAML data) of a model tuned from ``base``, served locally from ``model_dir``."""
    if base.task != "embedding":
        raise ModelConfigError(f"{base.name} is a {base.task} model; only embedding models are tuned")
    sha = weights_sha256(model_dir)
    try:
        local_path = os.path.relpath(model_dir.resolve(), config_dir.resolve())
    except ValueError:  # another drive
        local_path = str(model_dir.resolve())
    backend = base.local.backend if base.local is not None else "onnx-int8"
    data: dict[str, Any] = {
        "model_id": f"careqa-{name}",
        "model_version": today.isoformat(),
        "task": "embedding",
        "description": f"{base.description or base.model_id}, tuned by careqa on {today.isoformat()}",
        "payload_format": base.payload_format,
        "embedding_dimension": base.embedding_dimension,
        "normalize_embeddings": base.normalize_embeddings,
        "max_batch_size": base.max_batch_size,
        "max_input_chars": base.max_input_chars,
        "deployable": base.deployable,
        "local": {"backend": backend, "path": local_path},
        "custom": {"base": base.name, "weights_sha256": sha, "tuned": tuned},
    }
    if base.deployable and base.container is not None:
        data |= {
            "container": base.container.model_dump(exclude_none=True),
            "default_instance_type": base.default_instance_type,
            "default_instance_count": base.default_instance_count,
            "environment": dict(SERVING_ENVIRONMENT),
            "image_uris": dict(base.image_uris),
            # filled in by `careqa models package`, region by region
            "model_data_uris": {},
            "pins": {
                key: record.model_dump(mode="json")
                for key, record in base.pins.items()
                if key in {"container", "image_uris", "payload_format", "instance_types"}
            }
            | {
                "model_version": {"verified": today.isoformat(), "source": f"careqa tune embeddings ({sha[:16]})"},
                "environment": {"verified": today.isoformat(), "source": "endpoints/custom.py SERVING_ENVIRONMENT"},
                "model_data_uris": {"verified": "never", "source": "not packaged yet: careqa models package"},
            },
        }
    return data


def write_config(data: dict[str, Any], path: Path) -> ModelConfig:
    """Write a model config atomically and load it back (so what was written is known to validate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("# Written by careqa (tune embeddings / models package); a tuned model, not a JumpStart one.\n")
            yaml.safe_dump(data, out, sort_keys=False, allow_unicode=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return load_model_config(path)


def build_artifact(config: ModelConfig, out: Path) -> Path:
    """``model.tar.gz`` for the Hugging Face inference image: the weights at the top, ``code/inference.py``.

    The weights are written both as safetensors and as ``pytorch_model.bin`` (the 1.x images' transformers
    version reads the latter first). The archive is written to a temporary name and renamed.
    """
    if config.custom is None or config.local is None or config.local.path is None:
        raise ModelConfigError(f"{config.name}: not a tuned model with its weights in a folder (nothing to package)")
    import torch
    from safetensors.torch import load_file

    model_dir = config.local.path
    if weights_sha256(model_dir) != config.custom.weights_sha256:
        raise ModelConfigError(
            f"{config.name}: the weights in {model_dir} are not the ones this config was written for "
            "(their hash differs): tune again or restore the folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name in _MODEL_FILES:
                if (model_dir / name).is_file():
                    tar.add(model_dir / name, arcname=name)
            for folder in sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name[0].isdigit()):
                tar.add(folder, arcname=folder.name)  # 1_Pooling, 2_Normalize
            safetensors = model_dir / "model.safetensors"
            tar.add(safetensors, arcname="model.safetensors")
            buffer = io.BytesIO()
            torch.save(load_file(str(safetensors)), buffer)
            info = tarfile.TarInfo("pytorch_model.bin")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
            tar.add(INFERENCE_SCRIPT, arcname="code/inference.py")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def record_model_data(config_path: Path, region: str, uri: str, today: date) -> ModelConfig:
    """Pin the uploaded artifact in the tuned config for ``region`` (the other regions' pins are kept)."""
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    data.setdefault("model_data_uris", {})[region] = uri
    data.setdefault("pins", {})["model_data_uris"] = {
        "verified": today.isoformat(),
        "source": f"careqa models package uploaded {uri}",
    }
    data.pop("name", None)
    return write_config(data, config_path)
