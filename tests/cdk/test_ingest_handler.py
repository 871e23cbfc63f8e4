"""The ingestion Lambda against moto's S3 and SSM, an embedded LanceDB index and a tiny fake embedding.

An SQS batch of S3 events for a good file and a bad file: the good file is indexed, the bad one is the
only item in ``batchItemFailures``, and nothing else is lost. Real events, as AWS documents them, come from
``tests/events/``: S3 event notifications and EventBridge S3 events, each inside an SQS message, for keys
with a space, a '+' and non-ASCII characters.
"""

from __future__ import annotations

import hashlib
import io
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
BUCKET = "careqa-kb-test"  # the bucket the fixtures in tests/events/ name
EVENTS = Path(__file__).resolve().parents[1] / "events"
#: the real keys of the objects the fixtures' records (in this order) are about
SPACE_KEY = "pharmacy/procedures/refill policy.md"
PLUS_KEY = "pharmacy/procedures/Rx+OTC.md"
NON_ASCII_KEY = "clinic/guías/vacunación.md"
KEYS = [
    pytest.param(0, SPACE_KEY, id="space"),
    pytest.param(1, PLUS_KEY, id="plus"),
    pytest.param(2, NON_ASCII_KEY, id="non-ascii"),
]
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


# ------------------------------------------------------------------------------------------------
# Real events (tests/events/) and each source's key encoding


def load_event(name: str) -> dict[str, Any]:
    """A fixture: a Lambda event from SQS whose message bodies are S3 events."""
    return dict(json.loads((EVENTS / name).read_text(encoding="utf-8")))


def one_record(event: dict[str, Any], index: int) -> dict[str, Any]:
    return {"Records": [event["Records"][index]]}


def put_document(s3: Any, key: str) -> None:
    title = key.rsplit("/", 1)[-1].removesuffix(".md")
    s3.put_object(Bucket=BUCKET, Key=key, Body=f"# {title}\n\nHow the team handles {title}.\n".encode())


def documents(deps: Any, key: str) -> set[str]:
    return set(deps.index.documents(key.split("/", 1)[0]))


@pytest.mark.parametrize(("index", "key"), KEYS)
def test_an_s3_notification_key_is_read_as_aws_documents_its_encoding(index: int, key: str) -> None:
    event = load_event("sqs-s3-notification-object-created.json")
    body = event["Records"][index]["body"]
    assert key not in body  # the fixture carries the key URL-encoded, as S3 sends it

    assert ingest_handler.parse_object_events(body) == [ingest_handler.ObjectEvent(BUCKET, (key,), "created")]


@pytest.mark.parametrize(("index", "key"), KEYS)
def test_an_s3_notification_indexes_the_file_under_its_real_key(aws: Any, deps: Any, index: int, key: str) -> None:
    put_document(aws, key)
    event = one_record(load_event("sqs-s3-notification-object-created.json"), index)

    assert ingest_handler.handler(event, FakeContext()) == {"batchItemFailures": []}

    assert documents(deps, key) == {key}


def test_a_literal_plus_in_an_s3_notification_key_is_not_read_as_a_space(aws: Any, deps: Any) -> None:
    put_document(aws, PLUS_KEY)
    put_document(aws, PLUS_KEY.replace("+", " "))
    event = one_record(load_event("sqs-s3-notification-object-created.json"), 1)

    ingest_handler.handler(event, FakeContext())

    assert documents(deps, PLUS_KEY) == {PLUS_KEY}  # "Rx OTC.md" exists too, but this event is not about it


def encoded_eventbridge_keys(event: dict[str, Any]) -> dict[str, Any]:
    """The fixture with each key URL-encoded as S3 notifications encode keys: the other way EventBridge may
    send them (AWS documents no encoding for EventBridge; powertools decodes as if there were one)."""
    from urllib.parse import quote_plus

    records = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        body["detail"]["object"]["key"] = quote_plus(body["detail"]["object"]["key"], safe="/")
        records.append({**record, "body": json.dumps(body)})
    return {"Records": records}


@pytest.mark.parametrize("encoding", ["as-documented", "url-encoded"])
@pytest.mark.parametrize(("index", "key"), KEYS)
def test_an_eventbridge_s3_event_indexes_the_file_under_its_real_key_whichever_encoding_arrives(
    aws: Any, deps: Any, index: int, key: str, encoding: str
) -> None:
    put_document(aws, key)
    event = load_event("sqs-eventbridge-s3-object-created.json")
    if encoding == "url-encoded":
        event = encoded_eventbridge_keys(event)

    assert ingest_handler.handler(one_record(event, index), FakeContext()) == {"batchItemFailures": []}

    assert documents(deps, key) == {key}


def test_an_eventbridge_key_with_a_plus_is_reconciled_under_both_readings() -> None:
    body = load_event("sqs-eventbridge-s3-object-created.json")["Records"][1]["body"]
    (event,) = ingest_handler.parse_object_events(body)
    assert event.keys == (PLUS_KEY, PLUS_KEY.replace("+", " "))
    for index in (0, 2):  # a space or non-ASCII characters read the same either way: one reading
        body = load_event("sqs-eventbridge-s3-object-created.json")["Records"][index]["body"]
        assert len(ingest_handler.parse_object_events(body)[0].keys) == 1


@pytest.mark.parametrize(
    ("fixture", "created"),
    [
        ("sqs-s3-notification-object-removed.json", "sqs-s3-notification-object-created.json"),
        ("sqs-eventbridge-s3-object-deleted.json", "sqs-eventbridge-s3-object-created.json"),
    ],
    ids=["s3-notification", "eventbridge"],
)
def test_a_delete_event_takes_the_files_documents_out_of_the_index(
    aws: Any, deps: Any, fixture: str, created: str
) -> None:
    put_document(aws, PLUS_KEY)
    ingest_handler.handler(one_record(load_event(created), 1), FakeContext())
    assert documents(deps, PLUS_KEY) == {PLUS_KEY}
    aws.delete_object(Bucket=BUCKET, Key=PLUS_KEY)

    assert ingest_handler.handler(load_event(fixture), FakeContext()) == {"batchItemFailures": []}

    assert documents(deps, PLUS_KEY) == set()


def test_the_test_event_s3_sends_when_a_notification_is_configured_is_a_no_op(aws: Any, deps: Any) -> None:
    assert ingest_handler.handler(load_event("sqs-s3-test-event.json"), FakeContext()) == {"batchItemFailures": []}
    assert deps.index.count("pharmacy") == deps.index.count("clinic") == 0


def test_a_malformed_event_fails_alone_with_the_missing_field_named(aws: Any, deps: Any) -> None:
    put_document(aws, SPACE_KEY)
    event = load_event("sqs-s3-notification-object-created.json")
    broken = json.loads(event["Records"][1]["body"])
    del broken["Records"][0]["s3"]
    event["Records"][1]["body"] = json.dumps(broken)

    logs = io.StringIO()
    stream = ingest_handler.logger.registered_handler.setStream(logs)  # type: ignore[attr-defined]
    try:
        response = ingest_handler.handler({"Records": event["Records"][:2]}, FakeContext())
    finally:
        ingest_handler.logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert documents(deps, SPACE_KEY) == {SPACE_KEY}
    (failure,) = [json.loads(line) for line in logs.getvalue().splitlines() if '"message failed"' in line]
    assert failure["message_id"] == event["Records"][1]["messageId"] and "no 's3' field" in failure["reason"]
    with pytest.raises(ingest_handler.UnrecognisedMessageError, match="no 's3' field"):
        ingest_handler.parse_object_events(event["Records"][1]["body"])


def test_a_record_from_another_service_is_refused_by_name() -> None:
    body = json.loads(load_event("sqs-s3-notification-object-created.json")["Records"][0]["body"])
    body["Records"][0]["eventSource"] = "aws:sns"
    with pytest.raises(ingest_handler.UnrecognisedMessageError, match="aws:sns"):
        ingest_handler.parse_object_events(json.dumps(body))


def test_a_key_with_dot_dot_segments_never_places_a_file_outside_the_work_folder(
    aws: Any, deps: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    aws.put_object(Bucket=BUCKET, Key="pharmacy/../../escaped.md", Body=b"# x\n")
    put_document(aws, SPACE_KEY)

    ingest_handler.handler(one_record(load_event("sqs-s3-notification-object-created.json"), 0), FakeContext())

    assert documents(deps, SPACE_KEY) == {SPACE_KEY}
    assert list(work.iterdir()) == []  # the work folder is gone, and "../../escaped.md" never landed beside it


def lambda_event_from_queue(sqs: Any, queue_url: str, queue_arn: str) -> dict[str, Any]:
    """The messages waiting in a queue, as the SQS event source hands them to the Lambda."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


@pytest.mark.parametrize("source", ["s3-notification", "eventbridge"])
def test_the_events_s3_itself_sends_for_awkward_keys_index_every_file(aws: Any, deps: Any, source: str) -> None:
    """End to end through moto: S3 writes the events (a notification to a queue, or EventBridge and a rule
    to a queue, as the ingestion stack wires it), the Lambda gets them from the queue."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="careqa-ingest")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    if source == "eventbridge":
        events = boto3.client("events", region_name=REGION)
        pattern = {"source": ["aws.s3"], "detail-type": ["Object Created", "Object Deleted"]}
        events.put_rule(Name="kb-changes", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="kb-changes", Targets=[{"Id": "queue", "Arn": queue_arn}])
        configuration: dict[str, Any] = {"EventBridgeConfiguration": {}}
    else:
        configuration = {"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]}
    aws.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=configuration)
    keys = [SPACE_KEY, PLUS_KEY, NON_ASCII_KEY, "pharmacy/procedures/Rx+OTC refill für Kinder.md"]
    for key in keys:
        put_document(aws, key)

    event = lambda_event_from_queue(sqs, queue_url, queue_arn)

    assert ingest_handler.handler(event, FakeContext()) == {"batchItemFailures": []}
    assert set(deps.index.documents("pharmacy")) | set(deps.index.documents("clinic")) == set(keys)
