"""Pruning: delete a swap's old EndpointConfigs and Models beyond the newest few, never the live or previous one.

Only resources the swap tool created for the endpoint (tagged ``careqa:endpoint``) are ever deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from endpoints.sagemaker._aws import client_error, tags_of
from endpoints.sagemaker.builders import NAME_PREFIX_CHARS, TAG_ENDPOINT


def careqa_endpoint_configs(endpoint_name: str, sagemaker: Any) -> list[tuple[str, datetime]]:
    """EndpointConfigs this tool created for the endpoint (tagged ``careqa:endpoint``), newest first."""
    found: list[tuple[str, datetime]] = []
    prefix = f"{endpoint_name[:NAME_PREFIX_CHARS]}-"
    for page in sagemaker.get_paginator("list_endpoint_configs").paginate(NameContains=prefix):
        for summary in page.get("EndpointConfigs", []):
            if tags_of(sagemaker, summary["EndpointConfigArn"]).get(TAG_ENDPOINT) == endpoint_name:
                found.append((summary["EndpointConfigName"], summary["CreationTime"]))
    return sorted(found, key=lambda item: (item[1], item[0]), reverse=True)


def to_prune(newest_first: list[str], keep: int, protect: set[str]) -> list[str]:
    """Configs beyond the ``keep`` newest, never the protected (live and previous) ones."""
    return [name for name in newest_first[keep:] if name not in protect]


def delete_quietly(action: Callable[[], Any], what: str, warnings: list[str]) -> bool:
    try:
        action()
        return True
    except ClientError as exc:
        code, message = client_error(exc)
        warnings.append(f"could not delete {what}: {code}: {message}")
        return False


def prune_endpoint_configs(
    endpoint_name: str, sagemaker: Any, *, keep: int, protect: set[str]
) -> tuple[list[str], list[str]]:
    """Delete this endpoint's tool-made EndpointConfigs beyond the ``keep`` newest, and their Models.

    Never touches ``protect`` (the live and the previous config), nor anything without the
    ``careqa:endpoint`` tag for this endpoint, nor a Model that a kept config still uses.
    Returns (deleted config names, warnings).
    """
    newest_first = [name for name, _ in careqa_endpoint_configs(endpoint_name, sagemaker)]
    doomed = to_prune(newest_first, keep, protect)
    kept = [n for n in newest_first if n not in doomed] + sorted(protect - set(newest_first))
    models_in_use: set[str] = set()
    for name in kept:
        try:
            config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
        except ClientError:
            continue
        models_in_use.update(v.get("ModelName", "") for v in config.get("ProductionVariants", []))
    deleted: list[str] = []
    warnings: list[str] = []
    for name in doomed:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
        if not delete_quietly(
            partial(sagemaker.delete_endpoint_config, EndpointConfigName=name), f"EndpointConfig {name}", warnings
        ):
            continue
        deleted.append(name)
        for variant in config.get("ProductionVariants", []):
            model_name = variant.get("ModelName")
            if not model_name or model_name in models_in_use:
                continue
            try:
                model = sagemaker.describe_model(ModelName=model_name)
            except ClientError:
                continue  # already gone
            if tags_of(sagemaker, model["ModelArn"]).get(TAG_ENDPOINT) == endpoint_name:
                delete_quietly(partial(sagemaker.delete_model, ModelName=model_name), f"Model {model_name}", warnings)
    return deleted, warnings
