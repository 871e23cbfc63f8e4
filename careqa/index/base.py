"""The interface every index driver implements; retrieval and ingestion only see this."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from careqa.types import Chunk, Hit

#: the chunk fields every driver stores beside the vector, and reads back into a ``Chunk``
STORED_FIELDS: tuple[str, ...] = tuple(name for name in Chunk.model_fields if name != "vector")


@dataclass(frozen=True)
class DocState:
    """What the index knows of a stored document, to decide unchanged / updated / removed."""

    content_hash: str
    source_file: str
    #: chunks of more than one version are stored: a write stopped between adding the new version's chunks and
    #: removing the old ones (a killed ingest, a timed-out Lambda). Whatever its hash, it must be written again.
    mixed: bool = False


def fold_documents(rows: Iterable[tuple[str, str, str]]) -> dict[str, DocState]:
    """One state per document from its chunks' ``(doc_id, content_hash, source_file)``, in any order.

    Both drivers list documents through this, so a document left with two versions' chunks is ``mixed`` in both.
    """
    out: dict[str, DocState] = {}
    for doc_id, content_hash, source_file in rows:
        known = out.get(doc_id)
        if known is None:
            out[doc_id] = DocState(content_hash=content_hash, source_file=source_file)
        elif known.content_hash != content_hash and not known.mixed:
            out[doc_id] = DocState(content_hash=known.content_hash, source_file=known.source_file, mixed=True)
    return out


class ChunkIndex(Protocol):
    """Tenant-scoped chunk storage with dense and lexical search. Every read takes the tenant."""

    dimension: int

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by ``chunk_id``."""

    def delete_documents(self, tenant: str, doc_ids: Iterable[str]) -> None:
        """Remove every chunk of these documents."""

    def delete_stale_chunks(self, tenant: str, keep: dict[str, str]) -> None:
        """For each ``doc_id -> content_hash`` in ``keep``, remove that document's chunks of any other hash."""

    def documents(self, tenant: str) -> dict[str, DocState]:
        """Every stored document of the tenant with its content hash."""

    def dense_search(self, tenant: str, vector: Sequence[float], k: int) -> list[Hit]:
        """The ``k`` chunks nearest to ``vector``; ``Hit.score`` is cosine similarity."""

    def lexical_search(self, tenant: str, query: str, k: int) -> list[Hit]:
        """The ``k`` best BM25 matches for ``query``; ``Hit.score`` is the BM25 score."""

    def vectors(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of these chunks of the tenant, by ``chunk_id`` (absent ids are left out)."""

    def refresh(self) -> None:
        """Make recent writes fully searchable (rebuild text indexes); called once after an ingest."""

    def needs_refresh(self) -> bool:
        """Whether writes were made since the last refresh finished (an ingest killed before its refresh)."""

    def count(self, tenant: str | None = None) -> int:
        """Number of chunks, for one tenant or all."""

    def ping(self) -> None:
        """Raise if the index cannot be read (readiness probe)."""

    def incomplete_tenants(self, tenants: Sequence[str]) -> list[str]:
        """Of ``tenants``, those whose index for this model is a re-embedded copy not yet complete."""

    def mark_complete(self, tenant: str, when: str) -> None:
        """Record that this model's index holds all of ``tenant``'s knowledge base (end of a re-embedding)."""
