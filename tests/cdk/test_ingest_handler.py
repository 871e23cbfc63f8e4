"""The ingestion Lambda against moto's S3 and SSM, an embedded LanceDB index and a tiny fake embedding.

An SQS batch of S3 events for a good file and a bad file: the good file is indexed, the bad one is the
only item in ``batchItemFailures``, and nothing else is lost.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from langchain_core.embeddings import Embeddings
from moto import mock_aws

from lambdas import ingest_handler

REGION = "us-east-1"
BUCKET = "careqa-kb-test"
DIMENSION = 384  # the configured embedding model's (all-MiniLM-L6-v2)

GOOD_QA = "\n".join(
    json.dumps(r)
    for r in [
        {
            "id": "refill-window",
            "question": "How early can a refill be requested?",
            "answer": "Most refills can be requested when 75% of the supply has been used.",
            "source_url": "procedures/refills.md",
        },
        {
            "id": "transfer-time",
            "question": "How long does a prescription transfer take?",
            "answer": "Transfers usually complete within one business day.",
            "source_url": "https://example.com/transfers",
        },
    ]
)
BAD_QA = "\n".join(
    [
        json.dumps(
            {
                "id": "ok",
                "question": "Is the counter open on Sunday?",
                "answer": "Yes, 10 to 4.",
                "source_url": "https://example.com/hours",
            }
        ),
        '{"question": "broken line", ',
    ]
)
REFILLS_MD = "# Refills\n\nAsk for a refill in the app or at the counter.\n"


class HashingEmbeddings(Embeddings):
    """Deterministic bag-of-words vectors: fast, and similar texts get similar vectors."""

    def __init__(self, dimension: int = DIMENSION) -> None:
        self.dimension = dimension

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.sha1(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


@dataclass
class FakeContext:
    function_name: str = "careqa-ingest"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:careqa-ingest"
    aws_request_id: str = "req-1"


def s3_event(key: str, *, deleted: bool = False) -> str:
    """An EventBridge S3 event, as the rule delivers it to the queue."""
    return json.dumps(
        {
            "version": "0",
            "source": "aws.s3",
            "detail-type": "Object Deleted" if deleted else "Object Created",
            "region": REGION,
            "detail": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 10}},
        }
    )


def sqs_batch(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{n}",
                "receiptHandle": f"handle-{n}",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:careqa-ingest",
                "awsRegion": REGION,
            }
            for n, body in enumerate(bodies)
        ]
    }


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_METRICS_NAMESPACE": "CareQA",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture()
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Lambda's variables as the ingestion stack sets them, with an embedded index in tmp instead of OpenSearch."""
    variables = {
        "CAREQA_TENANTS": json.dumps([{"id": "pharmacy", "name": "Pharmacy"}, {"id": "clinic", "name": "Clinic"}]),
        "CAREQA_MODELS__EMBEDDING": json.dumps(
            {
                "config": "huggingface-textembedding-all-MiniLM-L6-v2",
                "transport": "sagemaker",
                "endpoint_name": "careqa-embedding",
                "region": REGION,
            }
        ),
        "CAREQA_INDEX__DRIVER": "lancedb",
        "CAREQA_INDEX__PATH": str(tmp_path / "index"),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture()
def deps(aws: Any, environment: dict[str, str]) -> Iterator[ingest_handler.IngestDependencies]:
    """The handler's real factory, pointed at an embedded index in tmp and the fake embedding model."""
    built = ingest_handler.dependencies_from_environment(
        embeddings=HashingEmbeddings(), s3=aws, ssm=boto3.client("ssm", region_name=REGION)
    )
    ingest_handler.configure(lambda: built)
    yield built
    ingest_handler.configure(ingest_handler.dependencies_from_environment)


def test_a_good_file_is_indexed_and_only_the_bad_file_is_reported(aws: Any, deps: Any) -> None:
    aws.put_object(Bucket=BUCKET, Key="pharmacy/procedures/refills.md", Body=REFILLS_MD.encode())
    aws.put_object(Bucket=BUCKET, Key="pharmacy/qa/faq.jsonl", Body=GOOD_QA.encode())
    aws.put_object(Bucket=BUCKET, Key="pharmacy/qa/broken.jsonl", Body=BAD_QA.encode())
    event = sqs_batch(
        s3_event("pharmacy/qa/faq.jsonl"),
        s3_event("pharmacy/qa/broken.jsonl"),
        s3_event("pharmacy/procedures/refills.md"),
    )

    response = ingest_handler.handler(event, FakeContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    documents = deps.index.documents("pharmacy")
    assert {"pharmacy/refill-window", "pharmacy/transfer-time", "pharmacy/procedures/refills.md"} <= set(documents)
    # the bad file's valid line is indexed too; only the file as a whole is reported
    assert "pharmacy/ok" in documents
    assert deps.index.count("clinic") == 0
    hits = deps.index.lexical_search("pharmacy", "refill requested supply", 3)
    assert hits and hits[0].chunk.doc_id == "pharmacy/refill-window"


def test_a_deleted_file_takes_its_documents_out_of_the_index(aws: Any, deps: Any) -> None:
    aws.put_object(
        Bucket=BUCKET,
        Key="pharmacy/qa/faq.jsonl",
        Body=GOOD_QA.replace("procedures/refills.md", "https://example.com/refills").encode(),
    )
    assert ingest_handler.handler(sqs_batch(s3_event("pharmacy/qa/faq.jsonl")), FakeContext()) == {
        "batchItemFailures": []
    }
    aws.delete_object(Bucket=BUCKET, Key="pharmacy/qa/faq.jsonl")

    response = ingest_handler.handler(sqs_batch(s3_event("pharmacy/qa/faq.jsonl", deleted=True)), FakeContext())

    assert response == {"batchItemFailures": []}
    assert deps.index.documents("pharmacy") == {}


def test_a_late_created_event_for_a_deleted_object_converges_to_deleted(aws: Any, deps: Any) -> None:
    response = ingest_handler.handler(sqs_batch(s3_event("pharmacy/qa/gone.jsonl")), FakeContext())
    assert response == {"batchItemFailures": []}
    assert deps.index.count("pharmacy") == 0


def test_objects_outside_a_known_tenant_prefix_and_garbled_messages_are_reported(aws: Any, deps: Any) -> None:
    aws.put_object(Bucket=BUCKET, Key="unknown/qa/faq.jsonl", Body=GOOD_QA.encode())
    aws.put_object(Bucket=BUCKET, Key="clinic/hours.md", Body=b"# Hours\n\nOpen 8 to 6 on weekdays.\n")
    event = sqs_batch(s3_event("unknown/qa/faq.jsonl"), "not json", s3_event("clinic/hours.md"))
    response = ingest_handler.handler(event, FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]}
    assert set(deps.index.documents("clinic")) == {"clinic/hours.md"}


def test_a_batch_where_every_message_fails_is_retried_whole(aws: Any, deps: Any) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    with pytest.raises(BatchProcessingError):
        ingest_handler.handler(sqs_batch("not json"), FakeContext())


def test_s3_notification_records_are_understood_too() -> None:
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectRemoved:Delete",
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": "clinic/a+b.md"}},
                }
            ]
        }
    )
    assert ingest_handler.parse_object_events(body) == [ingest_handler.ObjectEvent(BUCKET, "clinic/a b.md", "deleted")]
    assert ingest_handler.parse_object_events(json.dumps({"Event": "s3:TestEvent"})) == []


def test_the_factory_opens_the_opensearch_driver_from_the_stacks_variables(
    aws: Any, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from careqa.index.opensearch import OpenSearchIndex

    monkeypatch.setenv("CAREQA_INDEX__DRIVER", "opensearch")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__ENDPOINT", "https://vpc-careqa-kb.us-east-1.es.amazonaws.com")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__AUTH", "sigv4")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__REGION", REGION)
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__INDEX_PREFIX", "careqa-")
    built = ingest_handler.dependencies_from_environment(
        embeddings=HashingEmbeddings(), s3=aws, ssm=boto3.client("ssm", region_name=REGION)
    )
    assert isinstance(built.index, OpenSearchIndex)
    assert built.tenants == frozenset({"pharmacy", "clinic"})


def test_a_misnamed_or_missing_setting_fails_with_the_field_named(
    aws: Any, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from careqa.errors import ConfigError

    monkeypatch.setenv("CAREQA_INDEX__DRIVER", "opensearch")  # and no CAREQA_INDEX__OPENSEARCH__*
    with pytest.raises(ConfigError, match=r"index\.opensearch"):
        ingest_handler.dependencies_from_environment(embeddings=HashingEmbeddings(), s3=aws)
    monkeypatch.delenv("CAREQA_TENANTS")
    with pytest.raises(ConfigError, match="tenants"):
        ingest_handler.dependencies_from_environment(embeddings=HashingEmbeddings(), s3=aws)
