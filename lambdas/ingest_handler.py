"""Ingestion Lambda: S3 object events, delivered in SQS batches, reconciled into the tenant's index.

Flow: an object is written to (or deleted from) the knowledge-base bucket under ``<tenant>/<path>``;
EventBridge routes the S3 event to an SQS queue (KMS, redrive to a dead-letter queue); this handler
receives batches of those messages. For each object it reconciles the index with the object's *current*
state in S3 (download it and ingest it; or, if it is gone, forget its documents), so messages that
arrive twice or out of order still converge.

The handler is thin: it parses the event into ``ObjectEvent`` values, calls ``careqa.ingest.ingest_file`` or
``forget_file`` (the write path ``careqa ingest`` runs, one file at a time) and shapes the response. Each SQS
message succeeds or fails on its own (powertools ``BatchProcessor``, partial batch responses): a file with
rejected lines is still indexed for its good lines, but its message is reported in ``batchItemFailures`` so
that it is retried and finally lands in the dead-letter queue, where the DLQ alarm shows it to a person.
Logs carry keys, counts and timings, never file content.

Dependencies (index, embeddings, S3 client, known tenants) come from a factory, built once per
container: by default from the ``CAREQA_*`` variables the ingestion stack sets, which are the service's own
``Settings`` names (``IngestSettings``); tests install their own with ``configure``, or set the variables
to use an embedded LanceDB index and a fake embedding model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from langchain_core.embeddings import Embeddings
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from careqa.config import IndexConfig, ModelsConfig, TenantConfig
from careqa.errors import ConfigError
from careqa.index.base import ChunkIndex
from careqa.ingest import IngestReport, forget_file, ingest_file

logger = Logger(service="careqa-ingest")
metrics = Metrics(namespace="CareQA", service="ingest")
processor = BatchProcessor(event_type=EventType.SQS)


class IngestRejectedError(Exception):
    """A file had rejected lines or could not be placed: its message must be reported as failed."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object change, from either an EventBridge event or an S3 notification record."""

    bucket: str
    key: str
    action: Literal["created", "deleted"]


@dataclass(frozen=True)
class IngestDependencies:
    """What the handler needs; built once per Lambda container."""

    index: ChunkIndex
    embeddings: Embeddings
    s3: Any
    tenants: frozenset[str]


class IngestSettings(BaseSettings):
    """The Lambda's settings: the fields of ``careqa.config.Settings`` it needs, under the same ``CAREQA_*`` names
    (``CAREQA_TENANTS``, ``CAREQA_MODELS__EMBEDDING``, ``CAREQA_INDEX__*``), validated by the same models."""

    model_config = SettingsConfigDict(env_prefix="CAREQA_", env_nested_delimiter="__", extra="ignore")

    tenants: list[TenantConfig] = Field(min_length=1)
    models: ModelsConfig = ModelsConfig()
    index: IndexConfig = IndexConfig()


def load_ingest_settings() -> IngestSettings:
    """``IngestSettings`` from the environment; a bad or missing value raises ``ConfigError`` naming the field."""
    from pydantic import ValidationError

    from careqa.config import format_validation_error

    try:
        return IngestSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(f"invalid ingestion settings: {format_validation_error(exc)}") from exc


def dependencies_from_environment(
    *, embeddings: Embeddings | None = None, s3: Any = None, ssm: Any = None
) -> IngestDependencies:
    """Build the index (through the index factory), embeddings and S3 client from the environment.

    The embedding model is the one the swap tool recorded as live on the endpoint (SSM), else the
    configured one, so a swapped endpoint is called with the right codec. ``embeddings`` replaces the
    endpoint client (tests use a small deterministic fake).
    """
    import boto3

    from careqa.index.factory import open_index
    from careqa.models_admin import active_model
    from endpoints.config import load_model_config
    from endpoints.langchain import EndpointEmbeddings
    from endpoints.transport import SageMakerTransport

    settings = load_ingest_settings()
    ref = settings.models.embedding
    if ref.transport != "sagemaker" or ref.endpoint_name is None:
        raise ConfigError("models.embedding: the ingestion Lambda embeds through a SageMaker endpoint")
    record = None
    if ref.follow_swaps:
        record = active_model(ref.endpoint_name, ssm or boto3.client("ssm", region_name=ref.region))
    config = record.config() if record is not None else load_model_config(ref.config)
    assert config.embedding_dimension is not None, "embedding configs always carry their dimension"
    if embeddings is None:
        embeddings = EndpointEmbeddings.from_config(
            config, SageMakerTransport(ref.endpoint_name, region=ref.region, timeout_s=ref.timeout_s)
        )
    index = open_index(
        settings.index.driver,
        dimension=config.embedding_dimension,
        embedding_model=config.model_id,
        path=settings.index.path,
        opensearch=settings.index.opensearch,
        normalized_embeddings=config.normalize_embeddings,
    )
    return IngestDependencies(
        index=index,
        embeddings=embeddings,
        s3=s3 or boto3.client("s3", region_name=ref.region),
        tenants=frozenset(t.id for t in settings.tenants),
    )


_factory: Callable[[], IngestDependencies] = dependencies_from_environment
_dependencies: IngestDependencies | None = None


def configure(factory: Callable[[], IngestDependencies]) -> None:
    """Use ``factory`` to build the handler's dependencies (the next invocation builds them afresh)."""
    global _factory, _dependencies
    _factory, _dependencies = factory, None


def dependencies() -> IngestDependencies:
    global _dependencies
    if _dependencies is None:
        _dependencies = _factory()
    return _dependencies


# ------------------------------------------------------------------------------------------------
# Parsing


def parse_object_events(body: str) -> list[ObjectEvent]:
    """The object changes in one SQS message body: an EventBridge S3 event or an S3 notification."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("message body is not a JSON object")
    if message.get("source") == "aws.s3" and "detail" in message:
        detail = message["detail"]
        deleted = message.get("detail-type") == "Object Deleted"
        action: Literal["created", "deleted"] = "deleted" if deleted else "created"
        return [ObjectEvent(bucket=detail["bucket"]["name"], key=detail["object"]["key"], action=action)]
    if message.get("Event") == "s3:TestEvent":
        return []  # sent once when a notification is configured
    events = []
    for record in message.get("Records", []):
        name = str(record.get("eventName", ""))
        events.append(
            ObjectEvent(
                bucket=record["s3"]["bucket"]["name"],
                # S3 notifications URL-encode keys (a space arrives as '+').
                key=unquote_plus(record["s3"]["object"]["key"]),
                action="deleted" if name.startswith("ObjectRemoved") else "created",
            )
        )
    if not events:
        raise ValueError("message is neither an EventBridge S3 event nor an S3 notification")
    return events


def split_key(key: str, tenants: frozenset[str]) -> tuple[str, str]:
    """``<tenant>/<path>`` → (tenant, path); keys outside a known tenant's prefix are refused."""
    tenant, _, rel = key.partition("/")
    if not rel or rel.endswith("/"):
        raise IngestRejectedError(f"{key}: not a file under a tenant prefix (<tenant>/<path>)")
    if tenant not in tenants:
        raise IngestRejectedError(f"{key}: unknown tenant prefix {tenant!r}; known: {', '.join(sorted(tenants))}")
    if any(part in {"", ".", ".."} for part in rel.split("/")):
        raise IngestRejectedError(f"{key}: the path has empty, '.' or '..' segments")
    return tenant, rel


# ------------------------------------------------------------------------------------------------
# Processing


def _tenant_keys(s3: Any, bucket: str, tenant: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{tenant}/"):
        for item in page.get("Contents", []):
            yield item["Key"]


def _download(s3: Any, event: ObjectEvent, tenant: str, rel: str, workdir: Path) -> Path | None:
    """Download the object into ``workdir/<tenant>/<rel>``; None if it no longer exists."""
    from botocore.exceptions import ClientError

    root = workdir / tenant
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(event.bucket, event.key, str(target))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    # A relative source_url must name a file of the same knowledge base; stand in for the others with
    # empty files, so the validation sees which exist without downloading them.
    for key in _tenant_keys(s3, event.bucket, tenant):
        other = root / key[len(tenant) + 1 :]
        if key.endswith("/") or other == target:
            continue
        other.parent.mkdir(parents=True, exist_ok=True)
        other.touch(exist_ok=True)
    return target


def reconcile(event: ObjectEvent, deps: IngestDependencies) -> IngestReport:
    """Make the index match the object as it is now in S3 (present: ingest it; absent: forget it)."""
    tenant, rel = split_key(event.key, deps.tenants)
    workdir = Path(tempfile.mkdtemp(prefix="careqa-ingest-"))
    try:
        path = _download(deps.s3, event, tenant, rel, workdir)
        if path is None:
            return forget_file(rel, tenant, index=deps.index)
        return ingest_file(path, workdir / tenant, tenant, index=deps.index, embeddings=deps.embeddings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def record_handler(record: SQSRecord) -> None:
    """Process one SQS message; raising marks it failed in the partial batch response."""
    deps = dependencies()
    for event in parse_object_events(record.body):
        started = time.perf_counter()
        report = reconcile(event, deps)
        counts = report.counts()
        logger.info(
            "reconciled object",
            extra={
                "tenant": report.tenant,
                "key": event.key,
                "action": event.action,
                "ms": round((time.perf_counter() - started) * 1000),
                **counts,
            },
        )
        metrics.add_metric(name="ChunksWritten", unit=MetricUnit.Count, value=counts["chunks_written"])
        metrics.add_metric(name="DocumentsDeleted", unit=MetricUnit.Count, value=counts["deleted"])
        if report.rejected:
            metrics.add_metric(name="RejectedFiles", unit=MetricUnit.Count, value=1)
            raise IngestRejectedError(
                f"{event.key}: {len(report.rejected)} rejection(s): " + "; ".join(str(r) for r in report.rejected[:5])
            )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Lambda entry point: a partial batch response listing the messages that failed."""
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failed = len(response.get("batchItemFailures", []))
    if failed < len(event.get("Records", [])):
        # Lexical indexes are rebuilt once per batch, not once per file.
        dependencies().index.refresh()
    if failed:
        logger.warning("messages failed", extra={"failed": failed, "batch": len(event.get("Records", []))})
    return response
