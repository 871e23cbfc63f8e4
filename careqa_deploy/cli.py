"""``careqa cost``: print the monthly estimate of a deploy config, both profiles side by side.

``careqa eval answers`` prices its configurations with ``answer_cost``, from the same deploy config and prices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from careqa_deploy.config import load_deploy_config
from careqa_deploy.cost import CostError, estimate, load_prices, per_1000_answers, render

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEPLOY_CONFIG = REPO_ROOT / "config" / "deploy.example.yaml"
DEFAULT_PRICES = REPO_ROOT / "cdk" / "prices.yaml"

app = typer.Typer(
    help="Estimate the monthly AWS bill of a deploy config (cheap and production side by side).",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def cost(
    config: Annotated[Path, typer.Option("--config", "-c", help="deploy config YAML")] = DEFAULT_DEPLOY_CONFIG,
    prices: Annotated[Path, typer.Option("--prices", help="list prices (with their date and region)")] = DEFAULT_PRICES,
    as_json: Annotated[bool, typer.Option("--json", help="print line items, bases and totals as JSON")] = False,
) -> None:
    """Itemised monthly estimate: endpoints, OpenSearch, Fargate, VPC endpoints, ALB, KMS, DynamoDB, S3, CloudWatch."""
    try:
        result = estimate(load_deploy_config(config), load_prices(prices))
    except (CostError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else render(result))


def answer_cost(deploy_config: Path | None, profile: str, *, llm: str | None, calls_llm: bool) -> tuple[float, str]:
    """Cost per 1,000 answers from `careqa cost`'s prices (see ``careqa_deploy.cost.per_1000_answers``)."""
    deploy = load_deploy_config(deploy_config or DEFAULT_DEPLOY_CONFIG)
    return per_1000_answers(deploy, load_prices(DEFAULT_PRICES), profile, llm=llm, calls_llm=calls_llm)
