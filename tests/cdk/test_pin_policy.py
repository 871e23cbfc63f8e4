"""``cdk synth/deploy`` names every deployed model config whose pins are unverified, and production refuses them.

Pins are "unverified" when a config's ``pins:`` block says ``verified: never`` for one of them, or has no
record of it (``ModelConfig.unverified_pins``).
"""

from __future__ import annotations

import pytest

from careqa_deploy.config import DeployConfigError, load_deploy_config
from careqa_deploy.models import check_model_pins, parse_allow_unverified
from endpoints.config import load_model_config

from .conftest import EXAMPLE_CONFIG, load_cdk_app

MINILM = "huggingface-textembedding-all-MiniLM-L6-v2"
MISTRAL = "huggingface-llm-mistral-7b-instruct"


def verified_copy(name: str):
    """A shipped config with every pin recorded as verified (as `careqa models refresh` leaves it)."""
    config = load_model_config(name)
    record = {"verified": "2026-12-02", "source": "JumpStart spec via sagemaker-core (test)"}
    return config.model_validate({**config.model_dump(), "pins": dict.fromkeys(config.pins, record)})


def test_every_unverified_config_gets_a_warning_naming_its_unverified_pins():
    config = load_deploy_config(EXAMPLE_CONFIG)
    warnings = check_model_pins(config, [load_model_config(MINILM), load_model_config(MISTRAL)], allow_unverified=False)
    assert [w.split(":")[0] for w in warnings] == [MINILM, MISTRAL]
    assert "model_version, container, model_data_uris, environment, instance_types" in warnings[0]


def test_fully_verified_configs_get_no_warning_in_either_profile():
    config = load_deploy_config(EXAMPLE_CONFIG, overrides={"profile": "production"})
    models = [verified_copy(MINILM), verified_copy(MISTRAL)]
    assert models[0].unverified_pins() == []
    assert check_model_pins(config, models, allow_unverified=False) == []


def test_production_refuses_unverified_pins_and_names_the_configs_and_the_override():
    config = load_deploy_config(EXAMPLE_CONFIG, overrides={"profile": "production"})
    with pytest.raises(DeployConfigError, match=rf"unverified pins: {MINILM}, {MISTRAL}\..*allow_unverified_pins=true"):
        check_model_pins(config, [load_model_config(MINILM), load_model_config(MISTRAL)], allow_unverified=False)


def test_production_deploys_unverified_pins_when_allowed_and_still_warns():
    config = load_deploy_config(EXAMPLE_CONFIG, overrides={"profile": "production"})
    warnings = check_model_pins(config, [verified_copy(MINILM), load_model_config(MISTRAL)], allow_unverified=True)
    assert [w.split(":")[0] for w in warnings] == [MISTRAL]


@pytest.mark.parametrize(("value", "expected"), [(None, False), (True, True), ("true", True), ("False", False)])
def test_the_context_flag_reads_command_line_text_and_booleans(value, expected):
    assert parse_allow_unverified(value) is expected


def test_a_misspelt_context_flag_fails_the_synth_rather_than_deploying():
    with pytest.raises(DeployConfigError, match="allow_unverified_pins: expected true or false, got 'yes'"):
        parse_allow_unverified("yes")


def test_the_app_prints_a_warning_per_unverified_config_it_deploys(capsys):
    load_cdk_app().build_app({"config": str(EXAMPLE_CONFIG)}, nag=False)
    err = capsys.readouterr().err
    assert f"warning: {MINILM}: pins not verified against JumpStart" in err
    assert f"warning: {MISTRAL}: pins not verified against JumpStart" in err


def test_the_app_refuses_a_production_deploy_of_unverified_pins_before_building_stacks():
    with pytest.raises(DeployConfigError, match="profile production: model configs with unverified pins"):
        load_cdk_app().build_app({"config": str(EXAMPLE_CONFIG), "profile": "production"}, nag=False)


def test_the_app_checks_the_model_a_swap_made_live_not_only_the_deploy_configs():
    swapped = {"careqa-llm": "huggingface-text2text-flan-t5-xl"}
    with pytest.raises(DeployConfigError, match=f"{MINILM}, huggingface-text2text-flan-t5-xl"):
        load_cdk_app().build_app(
            {"config": str(EXAMPLE_CONFIG), "profile": "production", "careqa:activeModels": swapped}, nag=False
        )
