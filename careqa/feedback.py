"""Answers and agents' ratings, stored durably and exported as JSONL for evaluation and fine-tuning.

The store keeps each answer as served (question, answer, sources, model ids) so that a rating refers
to exactly what the agent saw, and a tenant can only rate its own answers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from careqa.errors import NotFoundError
from careqa.types import Answer, Feedback, Rating


class FeedbackStore(Protocol):
    def record_answer(self, answer: Answer, *, question: str, subject: str) -> None: ...

    def add_feedback(self, *, tenant: str, subject: str, answer_id: str, rating: Rating, comment: str) -> Feedback: ...

    def export(self, tenant: str | None = None) -> Iterator[dict[str, object]]: ...


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
            answer = json.loads(row[8])
            yield {
                "feedback_id": row[0],
                "answer_id": row[1],
                "tenant": row[2],
                "subject": row[3],
                "rating": row[4],
                "comment": row[5],
                "created_at": row[6],
                "question": row[7],
                "answer": answer["text"],
                "mode": answer["mode"],
                "status": answer["status"],
                "sources": answer["sources"],
                "models": answer["models"],
            }

    def close(self) -> None:
        self._conn.close()
