#!/usr/bin/env python3
"""Bring the swap tool's live-model records into the CDK context, before a deploy.

    python cdk/record_active_models.py --config config/deploy.mine.yaml [--region us-east-1]

``careqa models swap`` records the model live on an endpoint in SSM (``/careqa/endpoints/<endpoint>/
active-model``). Synth makes no AWS calls, so the stacks cannot read that record themselves; this
script reads it (for the deploy config's two endpoints) and writes ``careqa:activeModels`` into
``cdk.context.json``, which the CDK reads at synth and which is committed with the code. The stacks
then deploy the live model instead of reverting the swap. Run it in the deploy pipeline, right before
``cdk deploy``; an endpoint without a record is left out (the deploy config decides).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from careqa_deploy.config import DeployConfig, load_deploy_config
from careqa_deploy.models import ACTIVE_MODELS_CONTEXT
from endpoints.sagemaker.record import active_model

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_active_models(config: DeployConfig, ssm: Any) -> dict[str, str]:
    """``{endpoint: config name}`` for each of the config's endpoints that has a live-model record."""
    found: dict[str, str] = {}
    for endpoint in (config.embedding_endpoint_name, config.llm_endpoint_name):
        record = active_model(endpoint, ssm)
        if record is not None:
            found[endpoint] = record.config_name
    return found


def write_context(path: Path, active: dict[str, str]) -> dict[str, Any]:
    """Set ``careqa:activeModels`` in a ``cdk.context.json`` file, keeping its other keys."""
    context = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if active:
        context[ACTIVE_MODELS_CONTEXT] = dict(sorted(active.items()))
    else:
        context.pop(ACTIVE_MODELS_CONTEXT, None)
    path.write_text(json.dumps(context, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="the deploy config")
    parser.add_argument("--region", help="default: the deploy config's env.region")
    parser.add_argument("--context-file", type=Path, default=REPO_ROOT / "cdk.context.json")
    args = parser.parse_args(argv)

    import boto3

    config = load_deploy_config(args.config)
    active = read_active_models(config, boto3.client("ssm", region_name=args.region or config.env.region))
    write_context(args.context_file, active)
    for endpoint, name in sorted(active.items()):
        print(f"{endpoint}: {name}")
    if not active:
        print("no live-model records: the deploy config decides both models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
