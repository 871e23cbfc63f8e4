"""Embedded index on LanceDB: on-disk, columnar, with vector search and BM25 full-text search in one table.

Why LanceDB: it persists to a folder with no server, keeps every write as a new table version (a crash
mid-write leaves the previous version intact), filters by tenant *before* the nearest-neighbour search
(prefilter), has BM25 full-text search built in, and builds ANN indexes (IVF/HNSW) when a table grows
large, so the same driver serves the sample knowledge base and a million chunks.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa

from careqa.errors import IndexMismatchError
from careqa.index.base import STORED_FIELDS, DocState, fold_documents
from careqa.index.generations import model_slug, same_model
from careqa.types import Chunk, Hit

TABLE = "chunks"
META_FILE = "careqa-index.json"
#: the table version the last completed ``refresh`` left: any write since (or a refresh that never finished,
#: as when an ingest is killed) makes the table's version differ, and the next ingest refreshes again
REFRESHED_FILE = "careqa-refreshed.json"
_COLUMNS = list(STORED_FIELDS)
#: rows above which an ANN index is built; below it, exact search is fast and exact
ANN_THRESHOLD = 100_000
#: an ANN search re-ranks this many times ``k`` candidates with the full vectors (the index stores them quantised)
REFINE_FACTOR = 10
#: scalar indices built on the first refresh and kept current by ``optimize()``: every read filters on ``tenant``
#: (a few distinct values: a bitmap), and upserts and ``vectors()`` look rows up by ``chunk_id`` (unique: a B-tree)
SCALAR_INDICES = {"tenant": "BITMAP", "chunk_id": "BTREE"}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole or not at all: a process killed mid-write leaves the old file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def recorded_model(path: Path) -> str | None:
    """The model identity an index folder records, or None when the folder holds no index yet."""
    meta = Path(path) / META_FILE
    return json.loads(meta.read_text()).get("embedding_model") if meta.is_file() else None


def generation_path(root: Path, identity: str) -> Path:
    """Where the copy of the index for model ``identity`` lives, beside the index at ``root``."""
    return Path(root) / "generations" / model_slug(identity)


def resolve_path(root: Path, identity: str) -> Path:
    """The folder that serves ``identity``: the index at ``root`` if it is that model's (or new), else its copy.

    A missing copy resolves to ``root``, whose model check then names the re-embedding step.
    """
    recorded = recorded_model(root)
    if recorded is None or same_model(recorded, identity):
        return Path(root)
    copy = generation_path(root, identity)
    return copy if same_model(recorded_model(copy), identity) else Path(root)


def _fts_query(text: str) -> str:
    # Only words reach the full-text parser, so punctuation in a question is never read as query syntax.
    return " ".join(re.findall(r"\w+", text.lower()))


class LanceIndex:
    """A LanceDB table of chunks, shared by all tenants and always filtered by tenant."""

    def __init__(self, path: Path, *, dimension: int, embedding_model: str, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.path = Path(path)
        self.dimension = dimension
        self.embedding_model = embedding_model
        self.ann_threshold = ann_threshold
        self.path.mkdir(parents=True, exist_ok=True)
        self._check_meta()
        # read_consistency_interval=0: a service process sees what a separate ingest process just wrote.
        self._db = lancedb.connect(str(self.path), read_consistency_interval=timedelta(0))
        self._lock = threading.Lock()
        self._table = self._open_or_create()
        self._fts_ready = self._table.count_rows() > 0 and self._has_fts()

    def _check_meta(self) -> None:
        meta_path = self.path / META_FILE
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if (
                not same_model(meta.get("embedding_model"), self.embedding_model)
                or meta.get("dimension") != self.dimension
            ):
                raise IndexMismatchError(
                    f"the index at {self.path} was built with {meta.get('embedding_model')} "
                    f"({meta.get('dimension')} dimensions) "
                    f"but the configured embedding model is {self.embedding_model} ({self.dimension}); "
                    "build a copy for it with `careqa ingest --reembed`"
                )
        else:
            _write_atomically(
                meta_path, json.dumps({"embedding_model": self.embedding_model, "dimension": self.dimension})
            )

    # re-embedding -----------------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return dict(json.loads((self.path / META_FILE).read_text()))

    def complete_tenants(self) -> dict[str, str]:
        """Tenants a re-embedding finished in this copy (tenant -> when); empty for an index built by ingest."""
        return dict(self._meta().get("complete_tenants", {}))

    def is_copy(self) -> bool:
        """Whether this is a re-embedded copy beside the index (``<index>/generations/<model>``)."""
        return self.path.parent.name == "generations"

    def incomplete_tenants(self, tenants: Sequence[str]) -> list[str]:
        """Of ``tenants``, those a re-embedded copy does not yet hold completely (none for the index itself)."""
        if not self.is_copy():
            return []
        done = self.complete_tenants()
        return [t for t in tenants if t not in done]

    def mark_complete(self, tenant: str, when: str) -> None:
        """Record that this copy holds all of ``tenant``'s knowledge base (the last step of a re-embedding)."""
        with self._lock:
            meta = self._meta()
            meta.setdefault("complete_tenants", {})[tenant] = when
            _write_atomically(self.path / META_FILE, json.dumps(meta))

    def _schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("chunk_id", pa.string()),
                ("doc_id", pa.string()),
                ("tenant", pa.string()),
                ("kind", pa.string()),
                ("title", pa.string()),
                ("source_url", pa.string()),
                ("source_file", pa.string()),
                ("text", pa.string()),
                ("embed_text", pa.string()),
                ("question", pa.string()),
                ("position", pa.int32()),
                ("content_hash", pa.string()),
                ("vector", pa.list_(pa.float32(), self.dimension)),
            ]
        )

    def _open_or_create(self) -> Any:
        if TABLE in self._db.table_names():
            return self._db.open_table(TABLE)
        return self._db.create_table(TABLE, schema=self._schema(), exist_ok=True)

    def _indexed_columns(self) -> set[str]:
        try:
            return {column for idx in self._table.list_indices() for column in idx.columns}
        except Exception:  # noqa: BLE001 - an unreadable index listing just means "build them"
            return set()

    def _has_vector_index(self) -> bool:
        return "vector" in self._indexed_columns()

    def _has_fts(self) -> bool:
        try:
            return any("text" in idx.columns and "FTS" in str(idx.index_type) for idx in self._table.list_indices())
        except Exception:  # noqa: BLE001 - an unreadable index listing just means "rebuild it"
            return False

    # writes -----------------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        rows = []
        for c in chunks:
            if c.vector is None or len(c.vector) != self.dimension:
                raise ValueError(f"chunk {c.chunk_id} has no {self.dimension}-dimensional vector")
            row = c.model_dump(include=set(_COLUMNS))
            row["vector"] = c.vector
            rows.append(row)
        with self._lock:
            (
                self._table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(pa.Table.from_pylist(rows, schema=self._schema()))
            )

    def delete_documents(self, tenant: str, doc_ids: Iterable[str]) -> None:
        ids = list(doc_ids)
        with self._lock:
            for start in range(0, len(ids), 500):
                batch = ", ".join(_quote(d) for d in ids[start : start + 500])
                self._table.delete(f"tenant = {_quote(tenant)} AND doc_id IN ({batch})")

    def delete_stale_chunks(self, tenant: str, keep: dict[str, str]) -> None:
        items = list(keep.items())
        with self._lock:
            for start in range(0, len(items), 200):
                clauses = " OR ".join(
                    f"(doc_id = {_quote(d)} AND content_hash != {_quote(h)})" for d, h in items[start : start + 200]
                )
                self._table.delete(f"tenant = {_quote(tenant)} AND ({clauses})")

    def refresh(self) -> None:
        with self._lock:
            if self._table.count_rows() == 0:
                self._mark_refreshed()
                return
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self._table.create_fts_index("text", replace=True)
            self._fts_ready = True
            indexed = self._indexed_columns()
            for column, kind in SCALAR_INDICES.items():
                if column not in indexed:
                    self._table.create_scalar_index(column, index_type=kind)
            rows = self._table.count_rows()
            if rows >= self.ann_threshold and not self._has_vector_index():
                # Built once (minutes at 100k rows on 2 cores); later refreshes fold new rows into it through
                # optimize() below instead of rebuilding it on every ingest.
                self._table.create_index(metric="cosine", index_type="IVF_HNSW_SQ", vector_column_name="vector")
            self._table.optimize(cleanup_older_than=timedelta(minutes=10))
            self._mark_refreshed()

    def _mark_refreshed(self) -> None:
        _write_atomically(self.path / REFRESHED_FILE, json.dumps({"version": self._table.version}))

    def needs_refresh(self) -> bool:
        try:
            refreshed = json.loads((self.path / REFRESHED_FILE).read_text())["version"]
        except (OSError, ValueError, KeyError):
            refreshed = None
        return bool(refreshed != self._table.version)

    # reads ------------------------------------------------------------------------------------------
    def documents(self, tenant: str) -> dict[str, DocState]:
        table = (
            self._table.search()
            .where(f"tenant = {_quote(tenant)}")
            .select(["doc_id", "content_hash", "source_file"])
            .limit(None)
            .to_arrow()
        )
        return fold_documents(
            zip(
                table["doc_id"].to_pylist(),
                table["content_hash"].to_pylist(),
                table["source_file"].to_pylist(),
                strict=True,
            )
        )

    def _hits(self, rows: list[dict[str, Any]], score: Any) -> list[Hit]:
        return [Hit(chunk=Chunk(**{k: r[k] for k in _COLUMNS}), score=float(score(r))) for r in rows]

    def dense_search(self, tenant: str, vector: Sequence[float], k: int) -> list[Hit]:
        rows = (
            self._table.search(list(vector), vector_column_name="vector")
            .distance_type("cosine")
            .refine_factor(REFINE_FACTOR)
            .where(f"tenant = {_quote(tenant)}", prefilter=True)
            .select([*_COLUMNS, "_distance"])
            .limit(k)
            .to_list()
        )
        return self._hits(rows, lambda r: 1.0 - r["_distance"])

    def lexical_search(self, tenant: str, query: str, k: int) -> list[Hit]:
        terms = _fts_query(query)
        if not self._fts_ready:
            # Another process (an ingest run) may have built the text index since this one opened the table.
            self._fts_ready = self._has_fts()
        if not terms or not self._fts_ready:
            return []
        rows = (
            self._table.search(terms, query_type="fts", fts_columns="text")
            .where(f"tenant = {_quote(tenant)}", prefilter=True)
            .select([*_COLUMNS, "_score"])
            .limit(k)
            .to_list()
        )
        return self._hits(rows, lambda r: r["_score"])

    def vectors(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        table = (
            self._table.search()
            .where(f"tenant = {_quote(tenant)} AND chunk_id IN ({', '.join(_quote(i) for i in ids)})")
            .select(["chunk_id", "vector"])
            .limit(len(ids))
            .to_arrow()
        )
        return dict(zip(table["chunk_id"].to_pylist(), table["vector"].to_pylist(), strict=True))

    def count(self, tenant: str | None = None) -> int:
        return int(self._table.count_rows(f"tenant = {_quote(tenant)}" if tenant else None))

    def ping(self) -> None:
        self._table.count_rows()
