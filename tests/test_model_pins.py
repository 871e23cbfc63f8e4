"""``careqa models verify`` and ``careqa models refresh`` against JumpStart's spec lookup, with no network.

The SageMaker SDK's own lookups run unchanged; its local-metadata mode reads JumpStart's manifest and
spec documents from a folder instead of S3, here the recorded spec of Meta Llama 3.1 70B 2.16.2 in
``tests/data/jumpstart_specs/`` (its README says where it was recorded). The configs under test are
copies of the shipped Llama 3 config pointed at that model and version.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from careqa.cli_models import build_app, jumpstart_sdk
from endpoints.config import load_model_config

REPO = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "data" / "jumpstart_specs"
LLAMA3 = (REPO / "jumpstart_configs" / "meta-textgeneration-llama-3-8b-instruct.yaml").read_text()
# What the recorded spec says (meta-textgeneration-llama-3-1-70b 2.16.2, us-east-1).
SPEC_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.29.0-lmi11.0.0-cu124"
SPEC_ARTIFACT = (
    "s3://jumpstart-private-cache-prod-us-east-1/meta-textgeneration/meta-textgeneration-llama-3-1-70b/"
    "artifacts/inference-prepack/v2.0.0/"
)
TODAY = date(2027, 1, 15)


@pytest.fixture()
def recorded_specs(monkeypatch):
    """Point the SDK's JumpStart lookup at the recorded documents (its local-metadata mode)."""
    monkeypatch.setenv("AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE", str(SPECS))
    monkeypatch.setenv("AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE", str(SPECS))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # never used: nothing is fetched, but boto3 clients are built
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def llama31(tmp_path: Path, name: str = "llama31", **replace: str) -> Path:
    """The shipped Llama 3 config as one for Llama 3.1 70B 2.16.2, pinned to us-east-1 only."""
    text = LLAMA3.replace("meta-textgeneration-llama-3-8b-instruct", "meta-textgeneration-llama-3-1-70b")
    text = text.replace('model_version: "2.16.0"', 'model_version: "2.16.2"')
    text = "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith(("  us-west-2:", "  eu-west-1:"))
    )
    text = text.replace("default_instance_type: ml.g5.12xlarge", "default_instance_type: ml.p4d.24xlarge")
    text = text.replace("/inference-prepack/v1.0.0/", "/inference-prepack/v2.0.0/")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def run(tmp_path: Path, *args: str):
    app = build_app(today=lambda: TODAY)
    return CliRunner().invoke(app, [*args, "--configs-dir", str(tmp_path)])


def test_verify_passes_when_every_pin_matches_the_spec(recorded_specs, tmp_path):
    llama31(tmp_path)
    result = run(tmp_path, "verify", "llama31")
    assert result.exit_code == 0, result.output
    assert "llama31 2.16.2: pins match JumpStart" in result.output


def test_verify_prints_every_drifted_field_and_exits_non_zero(recorded_specs, tmp_path):
    llama31(
        tmp_path,
        **{
            "/inference-prepack/v2.0.0/": "/inference-prepack/v1.0.0/",
            'OPTION_ENFORCE_EAGER: "true"': 'OPTION_ENFORCE_EAGER: "false"',
            "default_instance_type: ml.p4d.24xlarge": "default_instance_type: ml.g5.2xlarge",
            '  ENDPOINT_SERVER_TIMEOUT: "3600"\n': "",
        },
    )
    result = run(tmp_path, "verify")
    assert result.exit_code == 1, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "llama31 2.16.2: 5 pinned field(s) differ" in lines
    assert (
        f"model_data_uris.us-east-1: pinned {SPEC_ARTIFACT.replace('v2.0.0', 'v1.0.0')}, JumpStart {SPEC_ARTIFACT}"
        in lines
    )
    assert "environment.ENDPOINT_SERVER_TIMEOUT: pinned (none), JumpStart 3600" in lines
    assert "environment.OPTION_ENFORCE_EAGER: pinned false, JumpStart true" in lines
    assert "default_instance_type: pinned ml.g5.2xlarge, JumpStart ml.p4d.24xlarge" in lines
    assert any(
        line.startswith("default_instance_type (supported): pinned ml.g5.2xlarge, JumpStart supports ml.g5.48xlarge")
        for line in lines
    )


def test_verify_reports_a_container_and_payload_the_spec_does_not_run(recorded_specs, tmp_path):
    """A TGI pin for a model JumpStart serves on LMI: the drift Llama 3's shipped config had before."""
    tgi = (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
        "2.4.0-tgi2.4.0-gpu-py311-cu124-ubuntu22.04-v2.2"
    )
    lmi_block = "family: lmi\n  framework: djl-lmi\n  version: 0.29.0"
    tgi_block = "family: tgi\n  framework: huggingface-llm\n  version: 2.4.0"
    llama31(
        tmp_path,
        **{
            "payload_format: messages": "payload_format: tgi",
            lmi_block: tgi_block,
            SPEC_IMAGE: tgi,
        },
    )
    result = run(tmp_path, "verify", "llama31")
    assert result.exit_code == 1, result.output
    assert f"image_uris.us-east-1: pinned {tgi}, JumpStart {SPEC_IMAGE}" in result.output
    assert "container.family: pinned tgi, JumpStart lmi" in result.output
    assert "container.framework: pinned huggingface-llm, JumpStart djl-lmi" in result.output
    assert "payload_format: pinned tgi (read by tgi), JumpStart a lmi container" in result.output


def test_refresh_dry_run_prints_the_diff_and_writes_nothing(recorded_specs, tmp_path):
    path = llama31(tmp_path, **{"/inference-prepack/v2.0.0/": "/inference-prepack/v1.0.0/"})
    before = path.read_text()
    result = run(tmp_path, "refresh", "llama31", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"+  us-east-1: {SPEC_ARTIFACT}" in result.output
    assert path.read_text() == before


def test_refresh_writes_the_spec_and_marks_those_pins_verified_then_verify_passes(recorded_specs, tmp_path):
    path = llama31(
        tmp_path,
        **{
            "/inference-prepack/v2.0.0/": "/inference-prepack/v1.0.0/",
            'OPTION_ENFORCE_EAGER: "true"': 'OPTION_ENFORCE_EAGER: "no"',
        },
    )
    before = path.read_text()
    result = run(tmp_path, "refresh")
    assert result.exit_code == 0, result.output
    assert "llama31: pins updated" in result.output
    after = path.read_text()
    assert [line for line in before.splitlines() if line.startswith("#")] == [
        line for line in after.splitlines() if line.startswith("#")
    ]  # comments kept
    config = load_model_config(path)
    assert config.model_data_uris == {"us-east-1": SPEC_ARTIFACT}
    assert config.environment["OPTION_ENFORCE_EAGER"] == "true"
    stamped = {name for name, record in config.pins.items() if record.verified == TODAY}
    assert stamped == {"model_version", "container", "image_uris", "model_data_uris", "environment", "instance_types"}
    assert config.pins["image_uris"].source.startswith(
        "JumpStart spec meta-textgeneration-llama-3-1-70b 2.16.2 via sagemaker-core "
    )
    assert config.pins["payload_format"].verified == date(2026, 12, 2)  # a spec says nothing of the request body
    assert run(tmp_path, "verify").exit_code == 0


def test_refresh_of_fewer_regions_than_pinned_leaves_those_pins_unverified(recorded_specs, tmp_path):
    path = llama31(tmp_path)
    text = path.read_text()
    west = "  us-west-2: 763104351884.dkr.ecr.us-west-2.amazonaws.com/djl-inference:0.29.0-lmi11.0.0-cu124\n"
    path.write_text(text.replace(f"  us-east-1: {SPEC_IMAGE}\n", f"  us-east-1: {SPEC_IMAGE}\n{west}"))
    result = run(tmp_path, "refresh", "llama31", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    config = load_model_config(path)
    assert config.image_uris["us-west-2"].endswith("0.29.0-lmi11.0.0-cu124")  # kept as it was
    assert config.pins["image_uris"].verified != TODAY
    assert config.pins["model_data_uris"].verified == TODAY


def test_a_model_the_spec_lookup_does_not_know_is_an_error_and_the_others_still_run(recorded_specs, tmp_path):
    llama31(tmp_path)
    llama31(tmp_path, "ghost", **{"meta-textgeneration-llama-3-1-70b": "meta-textgeneration-llama-9"})
    result = run(tmp_path, "verify")
    assert result.exit_code == 2
    assert "ghost: error: ghost: JumpStart lookup failed" in result.output
    assert "llama31 2.16.2: pins match JumpStart" in result.output


def test_a_local_only_config_cannot_be_verified(tmp_path):
    (tmp_path / "gemma.yaml").write_text((REPO / "jumpstart_configs" / "local-gemma-3-270m.yaml").read_text())
    result = run(tmp_path, "verify", "gemma")
    assert result.exit_code == 2
    assert "local-only stand-in (deployable: false)" in result.output


def test_without_the_sdk_the_commands_say_how_to_get_it(tmp_path, monkeypatch):
    llama31(tmp_path)

    def missing():
        raise ImportError("No module named 'sagemaker'")

    result = CliRunner().invoke(build_app(sdk=missing), ["verify", "--configs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "sagemaker-core, pinned in requirements.txt" in result.output


def test_the_default_sdk_loader_is_the_installed_sagemaker_core():
    sdk = jumpstart_sdk()
    assert sdk.version == "2.27.0"
    assert sdk.image_uris.__name__ == "sagemaker.core.image_uris"


def test_refreshed_pins_are_written_as_flow_records_yaml_reads_back(recorded_specs, tmp_path):
    path = llama31(tmp_path, **{"/inference-prepack/v2.0.0/": "/inference-prepack/v1.0.0/"})
    run(tmp_path, "refresh")
    pins = yaml.safe_load(path.read_text())["pins"]
    assert pins["model_data_uris"]["verified"] == TODAY
    assert [
        line for line in path.read_text().splitlines() if line.startswith("  model_data_uris: {verified: 2027-01-15")
    ]
