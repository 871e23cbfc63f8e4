"""``careqa cost``: line items add up to the totals, and the profiles differ where they should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from careqa.cli import app
from careqa_deploy.config import load_deploy_config
from careqa_deploy.cost import PROFILES, CostError, estimate, load_prices

from .conftest import EXAMPLE_CONFIG, REPO

PRICES = REPO / "cdk" / "prices.yaml"


@pytest.fixture(scope="module")
def result():  # noqa: ANN201 - careqa_deploy.cost.Estimate
    return estimate(load_deploy_config(EXAMPLE_CONFIG), load_prices(PRICES))


def test_line_items_sum_to_each_total(result) -> None:  # noqa: ANN001
    for profile in PROFILES:
        assert result.total(profile) == pytest.approx(sum(i.monthly.get(profile, 0.0) for i in result.items))
    data = result.to_dict()
    for profile in PROFILES:
        assert data["totals"][profile] == pytest.approx(
            sum(i["monthly"].get(profile, 0.0) for i in data["items"]), abs=0.01
        )


def test_production_costs_more_and_the_difference_is_in_models_search_and_tasks(result) -> None:  # noqa: ANN001
    assert result.total("production") > result.total("cheap")
    by_name = {i.name: i.monthly for i in result.items}
    prices = load_prices(PRICES)
    config = load_deploy_config(EXAMPLE_CONFIG)
    # cheap: the LLM is up only while in use; production: at least one instance all month
    assert by_name["LLM endpoint"]["cheap"] == pytest.approx(
        config.llm.scale_to_zero.active_hours_per_month * prices.sagemaker_hour("ml.g5.2xlarge"), abs=0.01
    )
    assert by_name["LLM endpoint"]["production"] == pytest.approx(
        730 * prices.sagemaker_hour("ml.g5.2xlarge"), abs=0.01
    )
    assert by_name["embedding endpoint"]["cheap"] < by_name["embedding endpoint"]["production"]
    assert (
        "production" in by_name["OpenSearch dedicated masters"]
        and "cheap" not in by_name["OpenSearch dedicated masters"]
    )
    assert by_name["Fargate tasks"]["cheap"] < by_name["Fargate tasks"]["production"]
    # the same in both: the security baseline is not part of the profile
    assert by_name["interface VPC endpoints"]["cheap"] == by_name["interface VPC endpoints"]["production"]


def test_every_item_says_how_it_was_computed(result) -> None:  # noqa: ANN001
    for item in result.items:
        assert set(item.basis) == set(item.monthly) and all(item.basis.values())


def test_the_command_prints_both_profiles_with_the_price_date(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["cost", "--config", str(EXAMPLE_CONFIG)])
    assert out.exit_code == 0, out.output
    assert "cheap" in out.output and "production" in out.output and "total per month" in out.output
    assert "as of 2026-11-25" in out.output and "verify" in out.output
    as_json = CliRunner().invoke(app, ["cost", "--config", str(EXAMPLE_CONFIG), "--json"])
    assert set(json.loads(as_json.output)["totals"]) == {"cheap", "production"}


def test_a_profile_the_config_cannot_use_is_shown_as_unavailable(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    raw.update(profile="production", embedding={"config": "huggingface-sentencesimilarity-bge-large-en-v1-5"})
    path = tmp_path / "gpu-embedding.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = estimate(load_deploy_config(path), load_prices(PRICES))
    assert "cheap" in result.unavailable and "serverless" in result.unavailable["cheap"]
    assert result.total("production") > 0


def test_a_missing_price_names_the_instance_type(tmp_path: Path) -> None:
    raw = yaml.safe_load(PRICES.read_text())
    del raw["sagemaker"]["instance_hour"]["ml.g5.2xlarge"]
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(CostError, match="ml.g5.2xlarge"):
        estimate(load_deploy_config(EXAMPLE_CONFIG), load_prices(path))


def test_the_key_lambda_and_its_interface_endpoint_are_priced(result) -> None:  # noqa: ANN001
    from careqa_deploy.names import INTERFACE_ENDPOINTS

    by_name = {i.name: i for i in result.items}
    prices = load_prices(PRICES)
    config = load_deploy_config(EXAMPLE_CONFIG)
    # the Lambda endpoint is one of the interface endpoints counted in every profile
    assert "lambda" in INTERFACE_ENDPOINTS.values()
    endpoints = by_name["interface VPC endpoints"]
    assert endpoints.monthly["cheap"] == pytest.approx(
        len(INTERFACE_ENDPOINTS) * 2 * 730 * prices.vpc["interface_endpoint_az_hour"]
        + config.usage.endpoint_data_gb_per_month * prices.vpc["interface_endpoint_data_gb"],
        abs=0.01,
    )
    assert endpoints.basis["cheap"].startswith(f"{len(INTERFACE_ENDPOINTS)} endpoints")
    key_lambda = by_name["load balancer key Lambda"]
    assert key_lambda.category == "service" and set(key_lambda.monthly) == {"cheap", "production"}
    assert 0 <= key_lambda.monthly["production"] < 0.01
    assert f"{config.fargate.production.max_tasks * 31} fetches" in key_lambda.basis["production"]
