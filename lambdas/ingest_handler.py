"""Ingestion Lambda: S3 object events, delivered in SQS batches, reconciled into the tenant's index.

Flow: an object is written to (or deleted from) the knowledge-base bucket under ``<tenant>/<path>``;
EventBridge routes the S3 event to an SQS queue (KMS, redrive to a dead-letter queue); this handler
receives batches of those messages. For each object it reconciles the index with the object's *current*
state in S3 (download it and ingest it; or, if it is gone, forget its documents), so messages that
arrive twice or out of order still converge.

The handler is thin: it parses each message body with powertools' typed event classes
(``S3EventBridgeNotificationEvent``, ``S3Event``) into ``ObjectEvent`` values, calls ``careqa.ingest.ingest_file``
or ``forget_file`` (the write path ``careqa ingest`` runs, one file at a time) and shapes the response. Each SQS
message succeeds or fails on its own (powertools ``BatchProcessor``, partial batch responses): a file with
rejected lines is still indexed for its good lines, but its message is reported in ``batchItemFailures`` so
that it is retried and finally lands in the dead-letter queue, where the DLQ alarm shows it to a person; the
reason is logged with the message id. Logs carry keys, counts and timings, never file content.

Object keys arrive encoded differently by each source; ``parse_object_events`` says how each is read.
Real events of both kinds, as AWS documents them, are the fixtures in ``tests/events/``.

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
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent, S3EventRecord
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


class UnrecognisedMessageError(ValueError):
    """A message body that is not an S3 event this handler knows, or one that lacks a field it needs."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object change, from an EventBridge S3 event or an S3 event notification record.

    ``keys`` are the readings of the object key to reconcile (``parse_object_events`` says why there can be
    two); ``key`` is the first.
    """

    bucket: str
    keys: tuple[str, ...]
    action: Literal["created", "deleted"]

    @property
    def key(self) -> str:
        return self.keys[0]


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

    from endpoints.errors import format_validation_errors

    try:
        return IngestSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(f"invalid ingestion settings: {format_validation_errors(exc)}") from exc


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
    from endpoints.config import load_model_config
    from endpoints.langchain import EndpointEmbeddings
    from endpoints.sagemaker.record import active_model
    from endpoints.sagemaker.transport import SageMakerTransport

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
    """The object changes in one SQS message body; ``UnrecognisedMessageError`` if it holds none we know.

    Two sources, each with its own key encoding:

    * **S3 event notifications** (``{"Records": [{"eventSource": "aws:s3", ...}]}``): AWS documents the key
      as URL-encoded the way form values are, so a space arrives as '+', a literal '+' as '%2B' and other
      characters as percent-encoded UTF-8. Read one way: decoded (``unquote_plus``).
    * **EventBridge S3 events** (``{"source": "aws.s3", "detail-type": "Object Created", ...}``; what the CDK
      app's rule delivers). AWS's EventBridge message-structure page documents the key with no encoding and,
      unlike the notification page, says nothing of URL-encoding; powertools'
      ``S3EventBridgeNotificationEvent`` nevertheless decodes it as a notification key. The two readings
      differ only for a key with '+' or '%'; then both are reconciled. Reconciling makes the index match what
      S3 holds under a key now, so the reading that names an object indexes it and the other only confirms
      that nothing is there: the file is indexed under its real name whichever encoding arrives, and a wrong
      guess can never make it look deleted.
    """
    try:
        message = json.loads(body)
    except json.JSONDecodeError as exc:
        raise UnrecognisedMessageError(f"message body is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(message, dict):
        raise UnrecognisedMessageError("message body is not a JSON object")
    try:
        if message.get("source") == "aws.s3" and "detail" in message:
            return [_eventbridge_object_event(S3EventBridgeNotificationEvent(message))]
        if message.get("Event") == "s3:TestEvent":
            return []  # S3 sends one when a notification configuration is saved; there is nothing to do
        if message.get("Records"):
            return [_notification_object_event(record) for record in S3Event(message).records]
    except KeyError as exc:
        raise UnrecognisedMessageError(f"the S3 event has no {exc} field") from None
    except (TypeError, AttributeError) as exc:
        raise UnrecognisedMessageError(f"the S3 event is malformed ({exc})") from None
    raise UnrecognisedMessageError("message is neither an EventBridge S3 event nor an S3 event notification")


def _eventbridge_object_event(event: S3EventBridgeNotificationEvent) -> ObjectEvent:
    detail = event.detail
    as_sent = str(detail.object["key"])
    decoded = detail.object.key  # powertools applies unquote_plus
    action: Literal["created", "deleted"] = "deleted" if event.detail_type == "Object Deleted" else "created"
    return ObjectEvent(bucket=detail.bucket.name, keys=tuple(dict.fromkeys((as_sent, decoded))), action=action)


def _notification_object_event(record: S3EventRecord) -> ObjectEvent:
    if record.event_source != "aws:s3":
        raise UnrecognisedMessageError(f"a record from {record.event_source!r}, not an S3 event notification")
    action: Literal["created", "deleted"] = "deleted" if record.event_name.startswith("ObjectRemoved") else "created"
    # powertools' S3Object.key is the key as sent; the notification's encoding is undone here.
    return ObjectEvent(bucket=record.s3.bucket.name, keys=(unquote_plus(record.s3.get_object.key),), action=action)


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


def _download(s3: Any, bucket: str, key: str, tenant: str, rel: str, workdir: Path) -> Path | None:
    """Download the object into ``workdir/<tenant>/<rel>``; None if it no longer exists."""
    from botocore.exceptions import ClientError

    root = workdir / tenant
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(bucket, key, str(target))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    # A relative source_url must name a file of the same knowledge base; stand in for the others with
    # empty files, so the validation sees which exist without downloading them.
    for other_key in _tenant_keys(s3, bucket, tenant):
        try:
            _, other_rel = split_key(other_key, frozenset({tenant}))
        except IngestRejectedError:
            continue  # a key with '..' segments must not place a file outside the work folder
        other = root / other_rel
        if other == target:
            continue
        other.parent.mkdir(parents=True, exist_ok=True)
        other.touch(exist_ok=True)
    return target


def reconcile(bucket: str, key: str, deps: IngestDependencies) -> IngestReport:
    """Make the index match the object as it is now in S3 (present: ingest it; absent: forget it)."""
    tenant, rel = split_key(key, deps.tenants)
    workdir = Path(tempfile.mkdtemp(prefix="careqa-ingest-"))
    try:
        path = _download(deps.s3, bucket, key, tenant, rel, workdir)
        if path is None:
            return forget_file(rel, tenant, index=deps.index)
        return ingest_file(path, workdir / tenant, tenant, index=deps.index, embeddings=deps.embeddings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _valid_keys(event: ObjectEvent, tenants: frozenset[str]) -> list[str]:
    """The event's key readings that name a file under a known tenant's prefix; if none does, the first
    reading's rejection."""
    valid, rejections = [], []
    for key in event.keys:
        try:
            split_key(key, tenants)
        except IngestRejectedError as exc:
            rejections.append(exc)
        else:
            valid.append(key)
    if not valid:
        raise rejections[0]
    return valid


def record_handler(record: SQSRecord) -> None:
    """Process one SQS message; raising marks it failed in the partial batch response."""
    try:
        _reconcile_message(record)
    except Exception as exc:
        # What reaches the dead-letter queue is explained here: the message, and why (keys, field names and
        # rejection reasons; never file content).
        logger.warning("message failed", extra={"message_id": record.message_id, "reason": str(exc)})
        raise


def _reconcile_message(record: SQSRecord) -> None:
    deps = dependencies()
    for event in parse_object_events(record.body):
        for key in _valid_keys(event, deps.tenants):
            started = time.perf_counter()
            report = reconcile(event.bucket, key, deps)
            counts = report.counts()
            logger.info(
                "reconciled object",
                extra={
                    "tenant": report.tenant,
                    "key": key,
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
                    f"{key}: {len(report.rejected)} rejection(s): " + "; ".join(str(r) for r in report.rejected[:5])
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
