"""Answers and agents' ratings, stored durably and exported as JSONL for evaluation and fine-tuning.

The store keeps each answer as served (question, answer, sources, model ids) so that a rating refers
to exactly what the agent saw, and a tenant can only rate its own answers. Two drivers behind one
interface (``feedback.driver``): SQLite locally, a DynamoDB table on AWS. ``export`` yields the same
rows from either, and ``write_jsonl`` / ``export_to_s3`` turn them into the JSONL file that evaluation
and fine-tuning read, on disk or in the deployment's export bucket.
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from careqa.errors import CareQAError, ConfigError, NotFoundError
from careqa.types import Answer, Feedback, Rating

if TYPE_CHECKING:
    from careqa.config import Settings

log = logging.getLogger("careqa.feedback")


class FeedbackStoreError(CareQAError):
    """The feedback store could not be reached or refused the write."""

    code = "feedback_unavailable"
    http_status = 503
    retry_after_s = 5


class FeedbackStore(Protocol):
    def record_answer(self, answer: Answer, *, question: str, subject: str) -> None: ...

    def add_feedback(self, *, tenant: str, subject: str, answer_id: str, rating: Rating, comment: str) -> Feedback: ...

    def export(self, tenant: str | None = None) -> Iterator[dict[str, object]]: ...


def export_row(feedback: dict[str, Any], *, question: str, answer_json: str) -> dict[str, object]:
    """One exported record: the rating with the question and the answer exactly as served."""
    answer = json.loads(answer_json)
    return {
        **{k: feedback[k] for k in ("feedback_id", "answer_id", "tenant", "subject", "rating", "comment")},
        "created_at": feedback["created_at"],
        "question": question,
        "answer": answer["text"],
        "mode": answer["mode"],
        "status": answer["status"],
        "sources": answer["sources"],
        "models": answer["models"],
    }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    question TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id TEXT PRIMARY KEY,
    answer_id TEXT NOT NULL REFERENCES answers(answer_id),
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_tenant ON feedback(tenant, created_at);
"""


class SQLiteFeedbackStore:
    """SQLite in WAL mode: every write is one transaction, readable by export while the service runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def record_answer(self, answer: Answer, *, question: str, subject: str) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    answer.answer_id,
                    answer.tenant,
                    subject,
                    question,
                    answer.model_dump_json(),
                    datetime.now(UTC).isoformat(),
                ),
            )

    def add_feedback(self, *, tenant: str, subject: str, answer_id: str, rating: Rating, comment: str) -> Feedback:
        feedback = Feedback(
            feedback_id=uuid.uuid4().hex,
            answer_id=answer_id,
            tenant=tenant,
            subject=subject,
            rating=rating,
            comment=comment,
            created_at=datetime.now(UTC),
        )
        with self._lock, self._conn:
            row = self._conn.execute("SELECT tenant FROM answers WHERE answer_id = ?", (answer_id,)).fetchone()
            # Another tenant's answer is reported exactly like a missing one: ids must not leak across tenants.
            if row is None or row[0] != tenant:
                raise NotFoundError(f"no answer {answer_id!r} for this tenant")
            self._conn.execute(
                "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
                (feedback.feedback_id, answer_id, tenant, subject, rating, comment, feedback.created_at.isoformat()),
            )
        return feedback

    def export(self, tenant: str | None = None) -> Iterator[dict[str, object]]:
        query = (
            "SELECT f.feedback_id, f.answer_id, f.tenant, f.subject, f.rating, f.comment, f.created_at, "
            "a.question, a.answer_json FROM feedback f JOIN answers a USING (answer_id)"
        )
        params: tuple[str, ...] = ()
        if tenant:
            query += " WHERE f.tenant = ?"
            params = (tenant,)
        for row in self._conn.execute(query + " ORDER BY f.created_at", params):
            yield export_row(
                {
                    "feedback_id": row[0],
                    "answer_id": row[1],
                    "tenant": row[2],
                    "subject": row[3],
                    "rating": row[4],
                    "comment": row[5],
                    "created_at": row[6],
                },
                question=row[7],
                answer_json=row[8],
            )

    def close(self) -> None:
        self._conn.close()


class DynamoDBFeedbackStore:
    """The feedback table on AWS (``cdk/careqa_cdk/data.py``): one partition per tenant.

    Items: ``pk = TENANT#<tenant>``; answers under ``sk = ANSWER#<answer_id>``; ratings under
    ``sk = FEEDBACK#<created_at>#<feedback_id>``, each carrying a copy of the question and answer it rates,
    so an export is one ``Query`` per tenant and reads nothing else. A rating can only find an answer
    in its own tenant's partition, so another tenant's answer id is "not found", as in SQLite. The
    service needs only ``PutItem`` and ``GetItem``; ``Query`` is for exports. Logs carry ids and error
    codes, never questions, answers or comments.
    """

    def __init__(self, table: str, *, tenants: Iterable[str], region: str | None = None, resource: Any = None) -> None:
        import boto3

        self.table_name = table
        self.tenants = tuple(tenants)
        self._table = (resource or boto3.resource("dynamodb", region_name=region)).Table(table)

    @staticmethod
    def _pk(tenant: str) -> str:
        return f"TENANT#{tenant}"

    def _call(self, what: str, ids: str, call: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            log.warning("feedback table %s: %s failed for %s: %s", self.table_name, what, ids, code)
            raise FeedbackStoreError(f"the feedback store refused the {what} ({code})") from exc
        except BotoCoreError as exc:
            log.warning("feedback table %s: %s failed for %s: %s", self.table_name, what, ids, type(exc).__name__)
            raise FeedbackStoreError(f"the feedback store is unreachable ({type(exc).__name__})") from exc

    def record_answer(self, answer: Answer, *, question: str, subject: str) -> None:
        item = {
            "pk": self._pk(answer.tenant),
            "sk": f"ANSWER#{answer.answer_id}",
            "answer_id": answer.answer_id,
            "tenant": answer.tenant,
            "subject": subject,
            "question": question,
            "answer_json": answer.model_dump_json(),
            "created_at": datetime.now(UTC).isoformat(),
        }
        # Answer ids are random; the condition makes a collision an error instead of a silent overwrite.
        self._call(
            "answer write", f"answer={answer.answer_id}", self._table.put_item,
            Item=item, ConditionExpression="attribute_not_exists(pk)",
        )  # fmt: skip

    def add_feedback(self, *, tenant: str, subject: str, answer_id: str, rating: Rating, comment: str) -> Feedback:
        found = self._call(
            "answer read", f"answer={answer_id}", self._table.get_item,
            Key={"pk": self._pk(tenant), "sk": f"ANSWER#{answer_id}"}, ConsistentRead=True,
        )  # fmt: skip
        answer = found.get("Item")
        if answer is None:
            raise NotFoundError(f"no answer {answer_id!r} for this tenant")
        feedback = Feedback(
            feedback_id=uuid.uuid4().hex,
            answer_id=answer_id,
            tenant=tenant,
            subject=subject,
            rating=rating,
            comment=comment,
            created_at=datetime.now(UTC),
        )
        created = feedback.created_at.isoformat()
        item = {
            "pk": self._pk(tenant),
            "sk": f"FEEDBACK#{created}#{feedback.feedback_id}",
            **feedback.model_dump(mode="json", exclude={"created_at"}),
            "created_at": created,
            "question": answer["question"],
            "answer_json": answer["answer_json"],
        }
        self._call("feedback write", f"feedback={feedback.feedback_id}", self._table.put_item, Item=item)
        return feedback

    def _tenant_rows(self, tenant: str) -> Iterator[dict[str, object]]:
        from boto3.dynamodb.conditions import Key

        condition = Key("pk").eq(self._pk(tenant)) & Key("sk").begins_with("FEEDBACK#")
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition}
        while True:
            page = self._call("export query", f"tenant={tenant}", self._table.query, **kwargs)
            for item in page.get("Items", []):
                yield export_row(item, question=str(item["question"]), answer_json=str(item["answer_json"]))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def export(self, tenant: str | None = None) -> Iterator[dict[str, object]]:
        tenants = [tenant] if tenant else list(self.tenants)
        # Each tenant's ratings come back in time order (the sort key starts with the time); merge them.
        yield from heapq.merge(*(self._tenant_rows(t) for t in tenants), key=lambda row: str(row["created_at"]))

    def close(self) -> None:
        """Nothing to release (boto3 clients hold no open transaction)."""


def open_feedback_store(settings: Settings) -> SQLiteFeedbackStore | DynamoDBFeedbackStore:
    """The feedback store ``settings.feedback`` names."""
    config = settings.feedback
    if config.driver == "dynamodb":
        if not config.table:
            raise ConfigError("feedback.table: required when feedback.driver is 'dynamodb'")
        return DynamoDBFeedbackStore(config.table, tenants=[t.id for t in settings.tenants], region=config.region)
    return SQLiteFeedbackStore(settings.feedback_path)


def write_jsonl(rows: Iterable[dict[str, object]], out: IO[str]) -> int:
    """Write export rows as JSON lines; return how many."""
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise ConfigError(f"output: {url!r} is not an s3://bucket/key URL naming an object")
    return bucket, key


def export_to_s3(rows: Iterable[dict[str, object]], url: str, *, s3: Any = None, region: str | None = None) -> int:
    """Write export rows as one JSONL object at ``s3://bucket/key`` (the bucket's default KMS key encrypts it)."""
    import boto3

    bucket, key = parse_s3_url(url)
    client = s3 or boto3.client("s3", region_name=region)
    # Written to a temporary file, not held in memory: an export can be large.
    with tempfile.TemporaryDirectory(prefix="careqa-export-") as tmp:
        path = Path(tmp) / "feedback.jsonl"
        with path.open("w", encoding="utf-8") as out:
            count = write_jsonl(rows, out)
        client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
    log.info("exported %d feedback record(s) to s3://%s/%s", count, bucket, key)
    return count
