"""Both feedback drivers behave alike (SQLite locally, DynamoDB on AWS), and exports work from either, to a file
or to S3. DynamoDB and S3 are moto's; the table has the CDK's key schema (``pk``/``sk`` strings)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws
from typer.testing import CliRunner

from careqa.cli import app
from careqa.errors import NotFoundError
from careqa.feedback import DynamoDBFeedbackStore, SQLiteFeedbackStore, export_to_s3, open_feedback_store
from careqa.types import Answer, Timings

REGION = "us-east-1"
TABLE = "careqa-feedback-test"
TENANTS = ("pharmacy", "clinic")


def answer(tenant: str = "pharmacy", text: str = "Code 75 means prior authorization required. [1]") -> Answer:
    return Answer(
        answer_id=uuid.uuid4().hex,
        tenant=tenant,
        status="answered",
        mode="curated",
        text=text,
        sentences=[],
        sources=[],
        models={"embedding": "e", "llm": "l"},
        timings=Timings(),
    )


def create_table() -> None:
    """The feedback table as cdk/careqa_cdk/data.py declares it."""
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        create_table()
        yield


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteFeedbackStore | DynamoDBFeedbackStore:
    if request.param == "sqlite":
        return SQLiteFeedbackStore(tmp_path / "fb.sqlite3")
    request.getfixturevalue("aws")
    return DynamoDBFeedbackStore(TABLE, tenants=TENANTS, region=REGION)


def test_a_rating_is_exported_with_the_question_and_answer_it_rates(store) -> None:
    a = answer()
    store.record_answer(a, question="What does code 75 mean?", subject="agent-1")
    stored = store.add_feedback(
        tenant="pharmacy", subject="agent-1", answer_id=a.answer_id, rating="down", comment="too short"
    )
    (row,) = store.export()
    assert row["feedback_id"] == stored.feedback_id
    assert (row["question"], row["answer"], row["rating"], row["comment"]) == (
        "What does code 75 mean?",
        a.text,
        "down",
        "too short",
    )
    assert row["models"] == {"embedding": "e", "llm": "l"} and row["subject"] == "agent-1"
    assert set(row) == {
        "feedback_id",
        "answer_id",
        "tenant",
        "subject",
        "rating",
        "comment",
        "created_at",
        "question",
        "answer",
        "mode",
        "status",
        "sources",
        "models",
    }


def test_another_tenants_answer_cannot_be_rated_and_nothing_is_written(store) -> None:
    a = answer("pharmacy")
    store.record_answer(a, question="q", subject="s")
    with pytest.raises(NotFoundError):
        store.add_feedback(tenant="clinic", subject="x", answer_id=a.answer_id, rating="up", comment="")
    with pytest.raises(NotFoundError):
        store.add_feedback(tenant="pharmacy", subject="x", answer_id=uuid.uuid4().hex, rating="up", comment="")
    assert list(store.export()) == []


def test_export_filters_by_tenant_and_lists_every_tenant_in_time_order_without_one(store) -> None:
    for tenant in ("pharmacy", "clinic", "pharmacy"):
        a = answer(tenant)
        store.record_answer(a, question=f"q for {tenant}", subject="s")
        store.add_feedback(tenant=tenant, subject="s", answer_id=a.answer_id, rating="up", comment="")
    assert [r["tenant"] for r in store.export("clinic")] == ["clinic"]
    everything = list(store.export())
    assert [r["tenant"] for r in everything] == ["pharmacy", "clinic", "pharmacy"]
    assert [r["created_at"] for r in everything] == sorted(r["created_at"] for r in everything)


def test_dynamodb_store_keeps_each_tenant_in_its_own_partition(aws) -> None:
    store = DynamoDBFeedbackStore(TABLE, tenants=TENANTS, region=REGION)
    a = answer("clinic")
    store.record_answer(a, question="q", subject="s")
    store.add_feedback(tenant="clinic", subject="s", answer_id=a.answer_id, rating="up", comment="")
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
    assert {i["pk"]["S"] for i in items} == {"TENANT#clinic"}
    assert sorted(i["sk"]["S"].split("#")[0] for i in items) == ["ANSWER", "FEEDBACK"]


def test_dynamodb_store_does_not_log_questions_answers_or_comments(aws, caplog: pytest.LogCaptureFixture) -> None:
    store = DynamoDBFeedbackStore("no-such-table", tenants=TENANTS, region=REGION)
    a = answer(text="Patient Jane Roe's refill is ready.")
    with caplog.at_level("DEBUG", logger="careqa.feedback"), pytest.raises(Exception, match="feedback store"):
        store.record_answer(a, question="Is Jane Roe's refill ready?", subject="s")
    assert caplog.records and a.answer_id in caplog.text
    assert "Jane" not in caplog.text


def test_export_to_s3_writes_one_jsonl_object(aws) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="exports")
    rows = [{"feedback_id": "1", "comment": "naïve"}, {"feedback_id": "2", "comment": ""}]
    assert export_to_s3(iter(rows), "s3://exports/feedback/2026-01.jsonl", region=REGION) == 2
    body = s3.get_object(Bucket="exports", Key="feedback/2026-01.jsonl")["Body"].read().decode("utf-8")
    assert [json.loads(line) for line in body.splitlines()] == rows


def _config(tmp_path: Path, feedback: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"tenants": [{"id": t, "name": t.title()} for t in TENANTS], "feedback": feedback}))
    return path


@pytest.mark.parametrize("driver", ["sqlite", "dynamodb"])
def test_careqa_feedback_export_reads_either_store_and_writes_a_file_or_s3(aws, tmp_path: Path, driver: str) -> None:
    feedback = (
        {"driver": "sqlite", "path": str(tmp_path / "fb.sqlite3")}
        if driver == "sqlite"
        else {"driver": "dynamodb", "table": TABLE, "region": REGION}
    )
    config = _config(tmp_path, feedback)
    from careqa.config import load_settings

    store = open_feedback_store(load_settings(config))
    assert type(store).__name__.lower().startswith(driver)
    a = answer("clinic")
    store.record_answer(a, question="When are labs back?", subject="s")
    store.add_feedback(tenant="clinic", subject="s", answer_id=a.answer_id, rating="up", comment="")

    runner = CliRunner()
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["feedback", "export", "-c", str(config), "-o", str(out), "--tenant", "clinic"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["question"] for line in out.read_text().splitlines()] == ["When are labs back?"]

    boto3.client("s3", region_name=REGION).create_bucket(Bucket="exports")
    result = runner.invoke(app, ["feedback", "export", "-c", str(config), "-o", "s3://exports/fb.jsonl"])
    assert result.exit_code == 0, result.output
    body = boto3.client("s3", region_name=REGION).get_object(Bucket="exports", Key="fb.jsonl")["Body"].read()
    assert [json.loads(line)["answer_id"] for line in body.decode().splitlines()] == [a.answer_id]


def test_dynamodb_driver_needs_a_table(tmp_path: Path) -> None:
    from careqa.config import load_settings
    from careqa.errors import ConfigError

    with pytest.raises(ConfigError, match=r"feedback: .*table is required"):
        load_settings(_config(tmp_path, {"driver": "dynamodb"}))
