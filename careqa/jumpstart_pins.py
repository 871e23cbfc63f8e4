"""Check the pins of ``jumpstart_configs/*.yaml`` against SageMaker JumpStart, and rewrite them from it.

CareQA never looks JumpStart up at synth, deploy or run time: the lookup needs the network and AWS
credentials (the SDK reads JumpStart's manifest and model specs from S3), and a deployment must not
depend on whatever JumpStart publishes that day. Each config pins its container, image and model
artifact per region, environment and instance type instead, and records where each pin came from
(``pins:``). On a machine with credentials:

* ``careqa models verify [CONFIG...]`` (``verify_configs``) resolves each config's ``model_id`` and
  ``model_version`` through the SDK's JumpStart lookup and reports every pinned field that differs;
* ``careqa models refresh [CONFIG...]`` (``refresh_configs``) writes the resolved values into the files
  and stamps the pins it wrote as verified today, with the spec as their source.

The lookups are the SDK's own (``sagemaker.core``: ``image_uris``, ``model_uris``,
``environment_variables``, ``instance_types`` and the JumpStart accessor): reimplementing JumpStart's
spec resolution (instance-type variants, regional aliases, gated buckets) is what the SDK exists for.
Tests run them unchanged against recorded spec documents through the SDK's local-metadata mode.

Files are edited as text, not re-dumped, so comments and field order stay as written; each edit is
parsed back and checked before anything is written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from careqa.errors import CareQAError
from endpoints.codecs import CODECS
from endpoints.config import CONFIGS_DIR, ModelConfig, available_models, load_model_config
from endpoints.containers import family_of_image
from endpoints.errors import format_validation_errors

SDK_PACKAGE = "sagemaker-core"
SDK_MISSING = (
    f"the JumpStart lookup needs the SageMaker SDK ({SDK_PACKAGE}, pinned in requirements.txt): "
    "run `make setup` or `pip install -r requirements.txt`"
)
DEFAULT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
_ENTRY = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z0-9_.-]+):[ \t]*(?P<value>.*?)[ \t]*$")


class PinError(CareQAError):
    """A config cannot be resolved, or its file cannot be edited safely."""

    code = "pin_error"


class PinEditError(PinError):
    """A config file's text cannot be edited safely (the result would not parse back to the intended pins)."""

    code = "pin_edit_error"


# ---------------------------------------------------------------------------------------------------
# The SDK's JumpStart lookups


@dataclass(frozen=True)
class Sdk:
    """The SageMaker SDK's JumpStart lookups, gathered so tests and callers can pass a stand-in."""

    image_uris: Any
    model_uris: Any
    environment_variables: Any
    instance_types: Any
    model_specs: Callable[..., Any]
    version: str


def load_sdk() -> Sdk:
    """Import the SDK's lookup modules (``sagemaker.core``, SDK v3's core package); ImportError if absent."""
    from importlib.metadata import version

    from sagemaker.core import environment_variables, image_uris, instance_types, model_uris
    from sagemaker.core.jumpstart.accessors import JumpStartModelsAccessor

    return Sdk(
        image_uris=image_uris,
        model_uris=model_uris,
        environment_variables=environment_variables,
        instance_types=instance_types,
        model_specs=JumpStartModelsAccessor.get_model_specs,
        version=version(SDK_PACKAGE),
    )


@dataclass(frozen=True)
class ResolvedContainer:
    """The ``container:`` block JumpStart's spec implies: its image config name and version."""

    framework: str
    version: str
    base_framework_version: str | None = None


@dataclass(frozen=True)
class Resolved:
    """What JumpStart's spec says for one config's model id and version, in the requested regions."""

    model_id: str
    model_version: str
    images: dict[str, str]
    artifacts: dict[str, str]
    environment: dict[str, str]
    default_instance_type: str | None
    supported_instance_types: tuple[str, ...]
    container: ResolvedContainer | None
    source: str

    @property
    def family(self) -> str | None:
        """The container family of the resolved images (None if they disagree or are unknown)."""
        families = {family_of_image(uri) for uri in self.images.values()}
        return families.pop() if len(families) == 1 else None


def _container_of(spec: Any) -> ResolvedContainer | None:
    ecr = getattr(spec, "hosting_ecr_specs", None)
    if ecr is None or not getattr(ecr, "framework", None):
        return None
    transformers = getattr(ecr, "huggingface_transformers_version", None)
    if transformers:  # the SDK's image config files these under "huggingface", keyed by transformers version
        return ResolvedContainer("huggingface", str(transformers), f"{ecr.framework}{ecr.framework_version}")
    return ResolvedContainer(str(ecr.framework), str(ecr.framework_version))


def resolve(sdk: Sdk, config: ModelConfig, regions: Sequence[str]) -> Resolved:
    """Ask JumpStart (through the SDK) for the image, artifact, environment and instance types of ``config``."""
    if not regions:
        raise PinError(f"{config.name}: no region to resolve")
    ids = {"model_id": config.model_id, "model_version": config.model_version}
    images: dict[str, str] = {}
    artifacts: dict[str, str] = {}
    try:
        for region in regions:
            images[region] = str(
                sdk.image_uris.retrieve(
                    framework=None,
                    region=region,
                    image_scope="inference",
                    instance_type=config.default_instance_type,
                    **ids,
                )
            )
            artifacts[region] = str(sdk.model_uris.retrieve(region=region, model_scope="inference", **ids))
        first = regions[0]
        environment = {
            str(k): str(v) for k, v in (sdk.environment_variables.retrieve_default(region=first, **ids) or {}).items()
        }
        default_type = sdk.instance_types.retrieve_default(region=first, scope="inference", **ids)
        supported = tuple(sdk.instance_types.retrieve(region=first, scope="inference", **ids) or ())
        spec = sdk.model_specs(region=first, model_id=config.model_id, version=config.model_version)
    except Exception as exc:  # the SDK raises ValueError, KeyError, botocore errors...: one message for all
        raise PinError(f"{config.name}: JumpStart lookup failed: {type(exc).__name__}: {exc}") from exc
    return Resolved(
        model_id=config.model_id,
        model_version=config.model_version,
        images=images,
        artifacts=artifacts,
        environment=environment,
        default_instance_type=str(default_type) if default_type else None,
        supported_instance_types=tuple(str(t) for t in supported),
        container=_container_of(spec),
        source=(
            f"JumpStart spec {config.model_id} {config.model_version} via {SDK_PACKAGE} {sdk.version} "
            f"(careqa models refresh, {', '.join(regions)})"
        ),
    )


# ---------------------------------------------------------------------------------------------------
# Drift: every pinned field that differs from the spec


@dataclass(frozen=True)
class Drift:
    """One pinned field that differs from what JumpStart's spec says."""

    field: str
    pinned: str
    jumpstart: str

    def __str__(self) -> str:
        return f"{self.field}: pinned {self.pinned}, JumpStart {self.jumpstart}"


def compare(config: ModelConfig, resolved: Resolved) -> list[Drift]:
    """Every difference between ``config``'s pins and ``resolved``: image, artifact, environment,
    instance types, container and payload format."""
    drifts: list[Drift] = []

    def check(name: str, pinned: object, actual: object) -> None:
        if pinned != actual:
            drifts.append(Drift(name, _show(pinned), _show(actual)))

    for region in resolved.images:
        check(f"image_uris.{region}", config.image_uris.get(region), resolved.images[region])
        check(f"model_data_uris.{region}", config.model_data_uris.get(region), resolved.artifacts[region])
    for key in sorted(set(config.environment) | set(resolved.environment)):
        check(f"environment.{key}", config.environment.get(key), resolved.environment.get(key))
    check("default_instance_type", config.default_instance_type, resolved.default_instance_type)
    if resolved.supported_instance_types and config.default_instance_type not in resolved.supported_instance_types:
        drifts.append(
            Drift(
                "default_instance_type (supported)",
                _show(config.default_instance_type),
                "supports " + ", ".join(resolved.supported_instance_types),
            )
        )
    family = resolved.family
    pinned_family = config.container.family if config.container else None
    check("container.family", pinned_family, family)
    if resolved.container is not None and config.container is not None:
        check("container.framework", config.container.framework, resolved.container.framework)
        check("container.version", config.container.version, resolved.container.version)
        check(
            "container.base_framework_version",
            config.container.base_framework_version,
            resolved.container.base_framework_version,
        )
    speaks = CODECS[config.payload_format].families
    if family is not None and family not in speaks:
        drifts.append(
            Drift(
                "payload_format",
                f"{config.payload_format} (read by {', '.join(sorted(speaks))})",
                f"a {family} container",
            )
        )
    return drifts


def _show(value: object) -> str:
    return "(none)" if value is None else str(value)


# ---------------------------------------------------------------------------------------------------
# Editing a config file's text


def replace_mapping(text: str, field_name: str, entries: Mapping[str, str], *, replace: bool = False) -> str:
    """Return ``text`` with the top-level ``field_name:`` mapping updated from ``entries`` ({key: value}).

    Values are plain Python strings, written as YAML scalars (quoted only where YAML would misread them).
    Keys already present keep their place and get the new value; new keys are appended; with ``replace``
    keys absent from ``entries`` are dropped, otherwise they keep their old value. Every line outside the
    block is left untouched, and a missing block is appended at the end of the file.
    """
    if not entries and not replace:
        return text
    return _replace_block(text, field_name, {k: _scalar(v) for k, v in entries.items()}, entries, replace=replace)


def _replace_block(
    text: str, field_name: str, rendered: Mapping[str, str], expected: Mapping[str, object], *, replace: bool
) -> str:
    lines = text.splitlines(keepends=True)
    header = re.compile(rf"^{re.escape(field_name)}:[ \t]*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\r\n"))), None)
    if start is None and any(line.startswith(f"{field_name}:") for line in lines):
        raise PinEditError(f"{field_name} is written inline; write it as a block mapping (one entry per line)")
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{field_name}:\n")
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t"):  # the block: the indented lines under the key
        end += 1
    existing: dict[str, str] = {}
    indent = "  "
    for line in lines[start + 1 : end]:
        match = _ENTRY.match(line.rstrip("\r\n"))
        if match:
            existing[match["key"]] = match["value"]
            indent = match["indent"]
    merged = {**({} if replace else existing), **{k: v for k, v in existing.items() if k in rendered}, **rendered}
    block = [f"{indent}{key}: {value}\n" for key, value in merged.items()]
    new_text = "".join(lines[: start + 1] + block + lines[end:])
    _check(new_text, field_name, expected, set(merged))
    return new_text


def replace_scalar(text: str, field_name: str, value: str) -> str:
    """Return ``text`` with the top-level ``field_name: value`` line set (kept in place, or appended)."""
    pattern = re.compile(rf"^{re.escape(field_name)}:[ \t]*(?P<value>[^#\n]*?)(?P<comment>[ \t]*#.*)?$", re.MULTILINE)
    rendered = _scalar(value)
    if pattern.search(text):
        new_text = pattern.sub(lambda m: f"{field_name}: {rendered}{m['comment'] or ''}", text, count=1)
    else:
        new_text = text + ("" if text.endswith("\n") or not text else "\n") + f"{field_name}: {rendered}\n"
    parsed = yaml.safe_load(new_text)
    if not isinstance(parsed, dict) or str(parsed.get(field_name)) != value:
        raise PinEditError(f"editing {field_name} did not produce {value!r}")
    return new_text


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when YAML reads it back as the same string, double-quoted otherwise."""
    if yaml.safe_load(f"k: {value}") == {"k": value}:
        return value
    return yaml.safe_dump(value, default_style='"', width=10_000).strip()


def _check(new_text: str, field_name: str, expected: Mapping[str, object], keys: set[str]) -> None:
    try:
        parsed = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise PinEditError(f"editing {field_name} produced invalid YAML: {exc}") from exc
    got = parsed.get(field_name) if isinstance(parsed, dict) else None
    if not isinstance(got, dict) or any(got.get(k) != v for k, v in expected.items()):
        raise PinEditError(f"editing {field_name} did not produce the intended values (got {got!r})")
    if set(got) != keys:
        raise PinEditError(f"editing {field_name} changed which keys are present (got {sorted(got)})")


def _pin_record(verified: date, source: str) -> str:
    return (
        "{verified: "
        + verified.isoformat()
        + ", source: "
        + yaml.safe_dump(source, default_style='"', width=10_000).strip()
        + "}"
    )


def apply_resolved(text: str, resolved: Resolved, today: date) -> str:
    """The config text with every resolved pin written and its ``pins:`` record stamped as verified today.

    Only what the spec resolved is stamped; ``payload_format`` keeps its record, since a spec does not say
    which request body its container's handler reads (``compare`` checks the family instead).
    """
    new = replace_mapping(text, "image_uris", resolved.images)
    new = replace_mapping(new, "model_data_uris", resolved.artifacts)
    new = replace_mapping(new, "environment", resolved.environment, replace=True)
    if resolved.default_instance_type:
        new = replace_scalar(new, "default_instance_type", resolved.default_instance_type)
    pinned = yaml.safe_load(new)
    stamped = ["model_version", "environment"]
    # A region list that missed a pinned region leaves that region's pin as it was: not verified.
    stamped += [
        name for name in ("image_uris", "model_data_uris") if set(pinned.get(name) or {}) <= set(resolved.images)
    ]
    if resolved.default_instance_type or resolved.supported_instance_types:
        stamped.append("instance_types")
    family = resolved.family
    if resolved.container is not None and family is not None:
        block = {"family": family, "framework": resolved.container.framework, "version": resolved.container.version}
        if resolved.container.base_framework_version:
            block["base_framework_version"] = resolved.container.base_framework_version
        new = replace_mapping(new, "container", block, replace=True)
        stamped.append("container")
    record = _pin_record(today, resolved.source)
    records = {name: record for name in stamped}
    return _replace_block(new, "pins", records, {n: yaml.safe_load(r) for n, r in records.items()}, replace=False)


def diff(old: str, new: str, path: Path) -> str:
    """A unified diff of one config file, as ``--dry-run`` prints it."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path.name}",
            tofile=f"b/{path.name}",
        )
    )


# ---------------------------------------------------------------------------------------------------
# The two commands, over any set of config files


@dataclass
class Outcome:
    """What a verify or refresh run found, per config name: drifts, diffs or the error that stopped it."""

    drifts: dict[str, list[Drift]] = field(default_factory=dict)
    changed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and not any(self.drifts.values())


def deployable_configs(names: Iterable[str], configs_dir: Path | None = None) -> list[tuple[Path, ModelConfig]]:
    """The named configs (all deployable ones if none are named) with their file paths."""
    directory = configs_dir or CONFIGS_DIR
    named = list(names)
    found: list[tuple[Path, ModelConfig]] = []
    for name in named or available_models(directory):
        config = load_model_config(name, directory)
        path = Path(name) if Path(name).suffix in {".yaml", ".yml"} else directory / f"{name}.yaml"
        if not config.deployable or config.custom is not None:
            if named:
                what = (
                    "a model tuned by careqa"
                    if config.custom is not None
                    else "a local-only stand-in (deployable: false)"
                )
                raise PinError(f"{config.name} is {what}: JumpStart has no spec for it")
            continue
        found.append((path, config))
    return found


def _regions(config: ModelConfig, requested: Sequence[str]) -> list[str]:
    if requested:
        return list(requested)
    return list(dict.fromkeys([*config.image_uris, *config.model_data_uris])) or list(DEFAULT_REGIONS)


def verify_configs(sdk: Sdk, configs: Sequence[tuple[Path, ModelConfig]], regions: Sequence[str] = ()) -> Outcome:
    """Resolve each config and collect its drift; one config's failure never stops the others."""
    outcome = Outcome()
    for _path, config in configs:
        try:
            outcome.drifts[config.name] = compare(config, resolve(sdk, config, _regions(config, regions)))
        except PinError as exc:
            outcome.errors[config.name] = str(exc)
    return outcome


def refresh_configs(
    sdk: Sdk,
    configs: Sequence[tuple[Path, ModelConfig]],
    regions: Sequence[str] = (),
    *,
    today: date,
    dry_run: bool = False,
) -> Outcome:
    """Write each config's resolved pins (or, with ``dry_run``, only collect the diffs)."""
    outcome = Outcome()
    for path, config in configs:
        try:
            resolved = resolve(sdk, config, _regions(config, regions))
            text = path.read_text(encoding="utf-8")
            new = apply_resolved(text, resolved, today)
            _validate(new, config.name)
        except PinError as exc:
            outcome.errors[config.name] = str(exc)
            continue
        if new != text:
            outcome.changed[config.name] = diff(text, new, path)
            if not dry_run:
                path.write_text(new, encoding="utf-8")
    return outcome


def _validate(text: str, name: str) -> None:
    """A refreshed file is written only if it is still a valid config (e.g. its codec reads the new container)."""
    raw = yaml.safe_load(text)
    try:
        ModelConfig.model_validate({**raw, "name": name})
    except ValidationError as exc:
        problems = format_validation_errors(exc)
        raise PinError(f"{name}: the refreshed file would be invalid, left unchanged: {problems}") from None
