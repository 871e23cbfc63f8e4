"""Hybrid retrieval: BM25 and dense search, fused by reciprocal rank, always filtered by tenant.

Fusion ranks documents; the evidence threshold uses the best cosine similarity, an absolute measure,
so "nothing relevant" can be told apart from "the best of a poor lot".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from careqa.config import RetrievalConfig
from careqa.index.base import ChunkIndex
from careqa.types import Hit, Passage


@dataclass
class Retrieval:
    passages: list[Passage]
    query_vector: list[float]
    embed_ms: float
    retrieve_ms: float

    @property
    def best_similarity(self) -> float:
        return max((p.similarity for p in self.passages), default=-1.0)


@dataclass
class _DocEvidence:
    best: Hit
    similarity: float = -1.0
    question_similarity: float | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    fused: float = 0.0


def fuse(dense: Sequence[Hit], lexical: Sequence[Hit], config: RetrievalConfig) -> list[_DocEvidence]:
    """Group chunk hits by document and rank documents by weighted reciprocal-rank fusion."""
    docs: dict[str, _DocEvidence] = {}
    for rank, hit in enumerate(dense, start=1):
        ev = docs.setdefault(hit.chunk.doc_id, _DocEvidence(best=hit))
        if ev.dense_rank is None:
            ev.dense_rank = rank
            ev.best = hit
        ev.similarity = max(ev.similarity, hit.score)
        if hit.chunk.kind == "question":
            ev.question_similarity = max(ev.question_similarity or -1.0, hit.score)
    for rank, hit in enumerate(lexical, start=1):
        ev = docs.setdefault(hit.chunk.doc_id, _DocEvidence(best=hit))
        if ev.lexical_rank is None:
            ev.lexical_rank = rank
    for ev in docs.values():
        if ev.dense_rank is not None:
            ev.fused += config.dense_weight / (config.rrf_k + ev.dense_rank)
        if ev.lexical_rank is not None:
            ev.fused += config.lexical_weight / (config.rrf_k + ev.lexical_rank)
    return sorted(docs.values(), key=lambda e: (-e.fused, -e.similarity))


class HybridRetriever:
    """Embeds the question, searches the tenant's chunks both ways and returns the top documents."""

    def __init__(self, index: ChunkIndex, embeddings: Embeddings, config: RetrievalConfig) -> None:
        self.index = index
        self.embeddings = embeddings
        self.config = config

    def retrieve(self, tenant: str, question: str, *, top_k: int | None = None) -> Retrieval:
        t0 = time.perf_counter()
        vector = self.embeddings.embed_query(question)
        t1 = time.perf_counter()
        dense = self.index.dense_search(tenant, vector, self.config.candidates)
        lexical = self.index.lexical_search(tenant, question, self.config.candidates)
        ranked = fuse(dense, lexical, self.config)[: top_k or self.config.top_k]
        # A document found only lexically has no similarity yet: score its best chunk against the question.
        missing = [ev for ev in ranked if ev.dense_rank is None]
        if missing:
            vectors = self.embeddings.embed_documents([ev.best.chunk.embed_text for ev in missing])
            for ev, v in zip(missing, vectors, strict=True):
                ev.similarity = sum(a * b for a, b in zip(vector, v, strict=True))
        passages = [
            Passage(
                doc_id=ev.best.chunk.doc_id,
                chunk_id=ev.best.chunk.chunk_id,
                kind=ev.best.chunk.kind,
                title=ev.best.chunk.title,
                source_url=ev.best.chunk.source_url,
                text=ev.best.chunk.text,
                question=ev.best.chunk.question,
                fused_score=ev.fused,
                similarity=ev.similarity,
                question_similarity=ev.question_similarity,
            )
            for ev in ranked
        ]
        t2 = time.perf_counter()
        return Retrieval(passages, vector, embed_ms=(t1 - t0) * 1000, retrieve_ms=(t2 - t1) * 1000)


class KnowledgeBaseRetriever(BaseRetriever):
    """The tenant's knowledge base as a LangChain retriever, for use in users' own chains."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: HybridRetriever
    tenant: str
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        result = self.retriever.retrieve(self.tenant, query, top_k=self.k)
        return [
            Document(
                page_content=p.text,
                metadata={
                    "doc_id": p.doc_id,
                    "title": p.title,
                    "source_url": p.source_url,
                    "similarity": p.similarity,
                    "fused_score": p.fused_score,
                    "tenant": self.tenant,
                },
            )
            for p in result.passages
        ]
