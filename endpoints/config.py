"""Typed, validated model configs: one YAML file per model under ``jumpstart_configs/``."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from endpoints.containers import ContainerFamily, family_of_image
from endpoints.errors import ModelConfigError, UnknownModelError, format_validation_errors

CONFIGS_DIR = Path(
    os.environ.get("CAREQA_JUMPSTART_CONFIGS", Path(__file__).resolve().parent.parent / "jumpstart_configs")
)


#: local backends per task: sentence embeddings in PyTorch (sentence-transformers) or on ONNX Runtime (an fp32 or a
#: dynamically quantized int8 export of the same weights, endpoints/onnx_export.py); generation with llama.cpp
EMBEDDING_BACKENDS = ("onnx-int8", "onnx-fp32", "sentence-transformers")
GENERATION_BACKENDS = ("llama-cpp",)
LocalBackend = Literal["onnx-int8", "onnx-fp32", "sentence-transformers", "llama-cpp"]


class LocalModel(BaseModel):
    """A model installed with pip that stands in for the endpoint when the transport is local."""

    model_config = ConfigDict(extra="forbid")

    backend: LocalBackend = Field(
        description="embedding: onnx-int8 | onnx-fp32 | sentence-transformers (PyTorch); text generation: llama-cpp"
    )
    package: str | None = Field(default=None, description="importable module that ships the weights")
    path: Path | None = Field(
        default=None,
        description="a sentence-transformers model folder (a tuned model); relative to the config file's folder",
    )
    context_length: int = Field(default=2048, gt=0)
    threads: int | None = Field(default=None, gt=0, description="CPU threads (default: all cores)")

    @model_validator(mode="after")
    def _one_source(self) -> LocalModel:
        if (self.package is None) == (self.path is None):
            raise ValueError("local: give exactly one of package (a pip-installed model) or path (a model folder)")
        if self.path is not None and self.backend == "llama-cpp":
            raise ValueError("local.path: only embedding models can be served from a folder")
        return self

    @property
    def source(self) -> str | Path:
        """Where the weights come from: the package's name, or the model folder."""
        return self.path if self.path is not None else str(self.package)


class CustomModel(BaseModel):
    """A model CareQA made (``careqa tune embeddings``), not a JumpStart one: where it came from, what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str = Field(description="the model config it was tuned from")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of its weight files: its identity")
    tuned: dict[str, Any] = Field(default_factory=dict, description="what it was tuned on and how (a record)")


class Container(BaseModel):
    """The serving container a deployable config runs on, as the SageMaker SDK's image URI config names it.

    ``framework`` and ``version`` (plus ``base_framework_version`` for the ``huggingface`` framework) are the
    arguments of ``sagemaker.core.image_uris.retrieve``: a test resolves them from the SDK's bundled config,
    offline, and requires every pinned ``image_uris`` entry to be that published image.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: ContainerFamily = Field(description="which payload formats can work: endpoints/containers.py")
    framework: str = Field(description="the SDK's image URI config name, e.g. huggingface-llm, djl-lmi")
    version: str = Field(description="framework version in that config, e.g. 2.4.0")
    base_framework_version: str | None = Field(default=None, description="huggingface only, e.g. pytorch1.13.1")


#: the pins a deployable config records the provenance of (``pins:`` in jumpstart_configs/*.yaml)
PinName = Literal[
    "model_version", "container", "image_uris", "model_data_uris", "environment", "instance_types", "payload_format"
]
PIN_NAMES: tuple[str, ...] = get_args(PinName)


class PinRecord(BaseModel):
    """Where one pin was taken from and when it was last checked against that source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verified: date | Literal["never"] = Field(description="the day a source showed this value, or never")
    source: str = Field(min_length=1, description="what was read: repository@commit path, document, command")


class ModelConfig(BaseModel):
    """Everything needed to deploy, call and swap one model; no network lookup at synth or run time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="config name (the file name without extension)")
    model_id: str
    model_version: str
    task: Literal["embedding", "text-generation"]
    payload_format: str
    description: str = ""
    deployable: bool = Field(default=True, description="false for local-only stand-ins with no JumpStart image")
    embedding_dimension: int | None = Field(default=None, gt=0)
    normalize_embeddings: bool = True
    max_batch_size: int = Field(default=1, gt=0)
    max_input_chars: int = Field(default=8000, gt=0)
    chat_template: Literal["raw", "llama3", "mistral", "falcon", "gemma"] = "raw"
    generation_defaults: dict[str, Any] = Field(default_factory=dict)
    default_instance_type: str | None = None
    default_instance_count: int = Field(default=1, ge=1)
    eula_required: bool = False
    environment: dict[str, str] = Field(default_factory=dict)
    image_uris: dict[str, str] = Field(default_factory=dict, description="container image pinned per region")
    model_data_uris: dict[str, str] = Field(default_factory=dict, description="model artifact pinned per region")
    local: LocalModel | None = None
    container: Container | None = Field(default=None, description="required for deployable models")
    pins: dict[PinName, PinRecord] = Field(default_factory=dict, description="provenance of each pin")
    custom: CustomModel | None = Field(default=None, description="set for models CareQA tuned (not JumpStart's)")
    answer_mode: Literal["reader", "generate", "auto"] = Field(
        default="reader",
        description="text-generation models: who writes answers: the reader alone (no LLM call), the LLM "
        "(guarded, the reader as fallback), or auto (the reader when it is confident, else the guarded LLM). "
        "Set from the answer evaluation (careqa eval answers): the LLM writes only where it beats the reader.",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> ModelConfig:
        from endpoints.codecs import CODECS

        codec = CODECS.get(self.payload_format)
        if codec is None:
            raise ValueError(f"payload_format: unknown format {self.payload_format!r}; known: {sorted(CODECS)}")
        if codec.task != self.task:
            raise ValueError(f"payload_format: {self.payload_format!r} is a {codec.task} format, task is {self.task}")
        if self.task == "embedding" and self.embedding_dimension is None:
            raise ValueError("embedding_dimension: required for embedding models")
        if self.local is not None:
            allowed = EMBEDDING_BACKENDS if self.task == "embedding" else GENERATION_BACKENDS
            if self.local.backend not in allowed:
                raise ValueError(
                    f"local.backend: {self.local.backend!r} cannot serve {self.task} models; use one of: "
                    + ", ".join(allowed)
                )
        if self.deployable:
            if not self.default_instance_type:
                raise ValueError("default_instance_type: required for deployable models")
            if not self.image_uris:
                raise ValueError("image_uris: a deployable model needs its container image pinned per region")
            if self.container is None:
                raise ValueError("container: a deployable model names its container (family, framework, version)")
        if self.container is not None:
            self._check_container(self.container, codec.families)
        return self

    def _check_container(self, container: Container, speaks: frozenset[str]) -> None:
        """The payload format must be one the container reads, and every pinned image must be of that family."""
        if container.family not in speaks:
            raise ValueError(
                f"container.family: a {container.family} container does not read payload_format "
                f"{self.payload_format!r} (that format is served by: {', '.join(sorted(speaks))})"
            )
        for region, uri in sorted(self.image_uris.items()):
            found = family_of_image(uri)
            if found != container.family:
                raise ValueError(
                    f"image_uris.{region}: {uri} is {'a ' + found if found else 'not a known'} container image, "
                    f"container.family is {container.family}"
                )

    @property
    def identity(self) -> str:
        """What makes two embedding models interchangeable: the same weights.

        A JumpStart model id names its weights (its versions change the container, not the model: 1.x and 2.x
        of all-MiniLM-L6-v2 serve the same sentence-transformers weights); a tuned model adds a hash of its
        own weights. An index records the identity of the model that made its vectors; a model of the same
        dimension but another identity makes vectors the index cannot be searched with.
        """
        return f"{self.model_id}+{self.custom.weights_sha256[:16]}" if self.custom is not None else self.model_id

    def unverified_pins(self) -> list[str]:
        """Pins of a deployable config that no source has confirmed (missing or ``verified: never``)."""
        if not self.deployable:
            return []
        return [name for name in PIN_NAMES if name not in self.pins or self.pins[name].verified == "never"]

    def image_uri(self, region: str) -> str:
        """The pinned container image for a region, or a clear error naming the missing pin."""
        try:
            return self.image_uris[region]
        except KeyError:
            raise ModelConfigError(
                f"{self.name}: no image_uris pin for region {region!r} (pinned: {sorted(self.image_uris)}); "
                "run `careqa models refresh --region <region>` on a machine with AWS credentials"
            ) from None


def available_models(configs_dir: Path | None = None) -> list[str]:
    """Names of the model configs shipped in ``jumpstart_configs/``."""
    directory = configs_dir or CONFIGS_DIR
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_model_config(name_or_path: str | Path, configs_dir: Path | None = None) -> ModelConfig:
    """Load and validate a model config by name (``jumpstart_configs/<name>.yaml``) or by path."""
    directory = configs_dir or CONFIGS_DIR
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UnknownModelError(
            f"unknown model {str(name_or_path)!r}: no config at {path}; "
            f"available: {', '.join(available_models(directory))}"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelConfigError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    local = raw.get("local")
    if isinstance(local, dict) and isinstance(local.get("path"), str):
        local["path"] = str((path.parent / local["path"]).resolve())  # a folder beside the config travels with it
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ModelConfigError(f"{path}: invalid model config: {format_validation_errors(exc)}") from exc
