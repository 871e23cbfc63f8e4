"""``careqa cost``: print the monthly estimate of a deploy config, both profiles side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEPLOY_CONFIG = REPO_ROOT / "config" / "deploy.example.yaml"
DEFAULT_PRICES = REPO_ROOT / "cdk" / "prices.yaml"

app = typer.Typer(
    help="Estimate the monthly AWS bill of a deploy config (cheap and production side by side).",
    invoke_without_command=True,
)


def _load_deploy_config(path: Path):  # noqa: ANN202 - careqa_cdk's DeployConfig, imported late
    """The deploy config model lives with the CDK app in ``cdk/``; it is plain pydantic (no CDK import)."""
    cdk_dir = str(REPO_ROOT / "cdk")
    if cdk_dir not in sys.path:
        sys.path.insert(0, cdk_dir)
    from careqa_cdk.deploy_config import load_deploy_config

    return load_deploy_config(path)


@app.callback(invoke_without_command=True)
def cost(
    config: Annotated[Path, typer.Option("--config", "-c", help="deploy config YAML")] = DEFAULT_DEPLOY_CONFIG,
    prices: Annotated[Path, typer.Option("--prices", help="list prices (with their date and region)")] = DEFAULT_PRICES,
    as_json: Annotated[bool, typer.Option("--json", help="print line items, bases and totals as JSON")] = False,
) -> None:
    """Itemised monthly estimate: endpoints, OpenSearch, Fargate, VPC endpoints, ALB, KMS, DynamoDB, S3, CloudWatch."""
    from careqa.cost import CostError, estimate, load_prices, render

    try:
        deploy = _load_deploy_config(config)
        result = estimate(deploy, load_prices(prices))
    except (CostError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else render(result))
