"""README's model table says what the config files say: version, container family, payload format, verified pins."""

from __future__ import annotations

from pathlib import Path

from endpoints.config import PIN_NAMES, available_models, load_model_config

README = Path(__file__).resolve().parent.parent / "README.md"
# README's short names for the pins, in PIN_NAMES order
SHORT = {
    "model_version": "version",
    "container": "container",
    "image_uris": "image",
    "model_data_uris": "artifact",
    "environment": "environment",
    "instance_types": "instance types",
    "payload_format": "payload",
}


def table_rows() -> dict[str, list[str]]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`") and cells[0].strip("`") in available_models():
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_readme_model_table_matches_every_config():
    rows = table_rows()
    assert set(rows) == set(available_models())
    assert list(SHORT) == list(PIN_NAMES)
    for name, (_, version, _task, family, payload, verified, _notes) in rows.items():
        config = load_model_config(name)
        assert payload == f"`{config.payload_format}`", name
        if not config.deployable:
            continue
        assert version == config.model_version, name
        assert family.startswith(f"`{config.container.family}`"), name
        confirmed = [SHORT[p] for p in PIN_NAMES if p not in config.unverified_pins()]
        assert verified == ", ".join(confirmed), name
