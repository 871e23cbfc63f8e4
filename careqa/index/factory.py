"""Open a chunk index by driver name: the one place that maps configuration to an index driver.

The service, the CLI, the ingestion Lambda and tests call this instead of importing a driver, so the driver
is a setting (``lancedb`` for the embedded store, ``opensearch`` on AWS) and tests can point the same code at
an embedded index in a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import ValidationError

from careqa.errors import ConfigError, IndexUnavailableError
from careqa.index.base import ChunkIndex
from careqa.index.opensearch_mapping import space_type_for

if TYPE_CHECKING:
    from careqa.config import OpenSearchConfig

IndexDriver = Literal["lancedb", "opensearch"]
DRIVERS: tuple[str, ...] = get_args(IndexDriver)


class IndexDriverUnavailableError(IndexUnavailableError):
    """The configured driver cannot be used in this build (kept for callers that catch it)."""

    code = "index_driver_unavailable"


def _sigv4_config(endpoint: str | None) -> OpenSearchConfig:
    """An ``index.opensearch`` for a bare endpoint: SigV4 in the region the AWS runtime sets (Lambda, ECS)."""
    from careqa.config import OpenSearchConfig
    from endpoints.errors import format_validation_errors

    if not endpoint:
        raise ConfigError("index.opensearch.endpoint: required for the opensearch driver")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        return OpenSearchConfig(endpoint=endpoint, auth="sigv4", region=region)
    except ValidationError as exc:
        raise ConfigError(f"index.opensearch: {format_validation_errors(exc)}") from exc


def open_index(
    driver: str,
    *,
    dimension: int,
    embedding_model: str,
    path: Path | None = None,
    endpoint: str | None = None,
    opensearch: OpenSearchConfig | None = None,
    normalized_embeddings: bool = True,
    reembed: bool = False,
) -> ChunkIndex:
    """An index of ``driver`` for vectors of ``dimension`` from ``embedding_model``.

    ``path`` is the embedded store's folder. For OpenSearch, ``opensearch`` is the validated
    ``index.opensearch`` section; without it, ``endpoint`` (the domain's HTTPS endpoint) is used with SigV4
    in ``AWS_REGION``. ``normalized_embeddings`` picks the space type of an index the driver has to create.

    An index that holds another model's vectors is served by its copy for ``embedding_model`` when one was
    built (``careqa.index.generations``); ``reembed`` opens (or starts) that copy for writing.
    """
    if driver == "lancedb":
        if path is None:
            raise ConfigError("index path: required for the lancedb driver")
        from careqa.index.generations import same_model
        from careqa.index.lance import LanceIndex, generation_path, recorded_model, resolve_path

        folder = resolve_path(path, embedding_model)
        if reembed:
            recorded = recorded_model(path)
            folder = (
                path
                if recorded is None or same_model(recorded, embedding_model)
                else generation_path(path, embedding_model)
            )
        return LanceIndex(folder, dimension=dimension, embedding_model=embedding_model)
    if driver == "opensearch":
        from careqa.index.opensearch import OpenSearchIndex

        return OpenSearchIndex.from_config(
            opensearch or _sigv4_config(endpoint),
            dimension=dimension,
            embedding_model=embedding_model,
            space_type=space_type_for(normalized_embeddings),
            reembed=reembed,
        )
    raise ConfigError(f"index driver: unknown driver {driver!r}; known: {', '.join(DRIVERS)}")
