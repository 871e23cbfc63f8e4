#!/usr/bin/env python3
"""Refresh the container-image and model-data pins in ``jumpstart_configs/*.yaml`` from SageMaker JumpStart.

CareQA never looks JumpStart up at synth, deploy or run time: the lookup needs the network (the SDK
reads a manifest from S3) and would make deployments depend on whatever JumpStart publishes that day.
Instead each config pins ``image_uris`` and ``model_data_uris`` per region, and this script, run by a
person on a machine with network access, refreshes those pins for each config's ``model_id`` and
``model_version``. To move to a newer JumpStart version, edit ``model_version`` first, then run it.

    pip install sagemaker                       # only here; nothing else in CareQA imports it
    python scripts/refresh_jumpstart_pins.py --dry-run            # show what would change
    python scripts/refresh_jumpstart_pins.py [--model NAME ...] [--region R ...]

Files are edited as text: only the two pin blocks and the "Pins: ... as of DATE" comment change, so
comments and every other field stay as written (comments inside a pin block are not kept).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO / "jumpstart_configs"
SCRIPT_PATH = "scripts/refresh_jumpstart_pins.py"
DEFAULT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
PINS_COMMENT = re.compile(r"^(# Pins: .*? as of )(\d{4}-\d{2}-\d{2})", re.MULTILINE)
_ENTRY = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z0-9_-]+):[ \t]*(?P<value>.*?)[ \t]*$")
SDK_MISSING = (
    "refresh_jumpstart_pins.py needs the SageMaker Python SDK, which CareQA does not install: "
    "run `pip install sagemaker` in a separate environment with network access, then run this script again"
)


class PinEditError(ValueError):
    """A config file's text cannot be edited safely (the result would not parse back to the intended pins)."""


def replace_mapping(text: str, field: str, pins: Mapping[str, str]) -> str:
    """Return ``text`` with the top-level ``field:`` mapping updated from ``pins`` ({region: uri}).

    Regions already pinned keep their place and get the new value; new regions are appended; regions
    absent from ``pins`` keep their old value. Every line outside the block is left untouched, and a
    missing block is appended at the end of the file.
    """
    lines = text.splitlines(keepends=True)
    header = re.compile(rf"^{re.escape(field)}:[ \t]*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\r\n"))), None)
    if start is None and any(line.startswith(f"{field}:") for line in lines):
        raise PinEditError(f"{field} is written inline; write it as a block mapping (one region per line)")
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{field}:\n")
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
    merged = {**existing, **{region: _scalar(uri) for region, uri in pins.items()}}
    block = [f"{indent}{region}: {value}\n" for region, value in merged.items()]
    new_text = "".join(lines[: start + 1] + block + lines[end:])
    _check(new_text, field, existing, pins)
    return new_text


def _scalar(uri: str) -> str:
    """``uri`` as a YAML scalar: plain when YAML reads it back unchanged, quoted otherwise."""
    if yaml.safe_load(f"k: {uri}") == {"k": uri}:
        return uri
    return yaml.safe_dump(uri, default_style='"').strip()


def _check(new_text: str, field: str, existing: Mapping[str, str], pins: Mapping[str, str]) -> None:
    try:
        parsed = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise PinEditError(f"editing {field} produced invalid YAML: {exc}") from exc
    got = parsed.get(field) if isinstance(parsed, dict) else None
    if not isinstance(got, dict) or any(got.get(region) != uri for region, uri in pins.items()):
        raise PinEditError(f"editing {field} did not produce the intended pins (got {got!r})")
    if set(got) != set(existing) | set(pins):
        raise PinEditError(f"editing {field} changed which regions are pinned (got {sorted(got)})")


def stamp_pins_date(text: str, date: str) -> str:
    """Set the date in the file's ``# Pins: ... as of YYYY-MM-DD`` comment, or add that comment on top."""
    if PINS_COMMENT.search(text):
        return PINS_COMMENT.sub(lambda m: f"{m[1]}{date}", text, count=1)
    return f"# Pins: image_uris and model_data_uris as of {date} (refresh: python {SCRIPT_PATH}).\n" + text


def apply_pins(text: str, image_pins: Mapping[str, str], model_data_pins: Mapping[str, str], date: str) -> str:
    """The config text with both pin blocks updated; the date comment changes only if a pin did."""
    new = replace_mapping(text, "image_uris", image_pins) if image_pins else text
    new = replace_mapping(new, "model_data_uris", model_data_pins) if model_data_pins else new
    return stamp_pins_date(new, date) if new != text else text


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


@dataclass(frozen=True)
class Sdk:
    """The two JumpStart lookups this script needs, from whichever SDK layout is installed."""

    image_uris: Any
    model_uris: Any


def load_sdk() -> Sdk:
    """Import the SageMaker SDK's lookup modules (v3 layout first, then v2); ImportError if absent."""
    try:
        from sagemaker.core import image_uris, model_uris  # SDK v3
    except ImportError:
        from sagemaker import image_uris, model_uris  # SDK v2
    return Sdk(image_uris=image_uris, model_uris=model_uris)


def lookup_pins(sdk: Sdk, config: Mapping[str, Any], regions: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Ask JumpStart for the inference image and model artifact of one config in each region."""
    images: dict[str, str] = {}
    artifacts: dict[str, str] = {}
    for region in regions:
        images[region] = str(
            sdk.image_uris.retrieve(
                framework=None,
                region=region,
                image_scope="inference",
                model_id=config["model_id"],
                model_version=config["model_version"],
                instance_type=config.get("default_instance_type"),
            )
        )
        artifacts[region] = str(
            sdk.model_uris.retrieve(
                region=region,
                model_scope="inference",
                model_id=config["model_id"],
                model_version=config["model_version"],
            )
        )
    return images, artifacts


def _regions(config: Mapping[str, Any], requested: Sequence[str]) -> list[str]:
    if requested:
        return list(requested)
    pinned = [*(config.get("image_uris") or {}), *(config.get("model_data_uris") or {})]
    return list(dict.fromkeys(pinned)) or list(DEFAULT_REGIONS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", help="print a diff per file; write nothing")
    parser.add_argument("--model", action="append", default=[], help="config name to refresh (default: all deployable)")
    parser.add_argument("--region", action="append", default=[], help="region to pin (default: those already pinned)")
    parser.add_argument("--configs-dir", type=Path, default=CONFIGS_DIR)
    parser.add_argument("--date", default=datetime.now(UTC).strftime("%Y-%m-%d"), help="date for the pins comment")
    args = parser.parse_args(argv)

    try:
        sdk = load_sdk()
    except ImportError:
        print(f"error: {SDK_MISSING}", file=sys.stderr)
        return 2

    paths = [args.configs_dir / f"{name}.yaml" for name in args.model] or sorted(args.configs_dir.glob("*.yaml"))
    failures = 0
    for path in paths:
        if not path.is_file():
            print(f"error: no config at {path}", file=sys.stderr)
            failures += 1
            continue
        text = path.read_text(encoding="utf-8")
        config = yaml.safe_load(text)
        if not config.get("deployable", True):
            continue  # local-only stand-ins have no JumpStart image
        try:
            images, artifacts = lookup_pins(sdk, config, _regions(config, args.region))
            new = apply_pins(text, images, artifacts, args.date)
        except Exception as exc:  # noqa: BLE001 - one model's lookup failing must not stop the others
            print(f"error: {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            failures += 1
            continue
        if new == text:
            print(f"{path.name}: pins unchanged")
        elif args.dry_run:
            print(diff(text, new, path), end="")
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{path.name}: pins updated")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
