"""Hybrid retrieval: dense search over question and answer vectors plus BM25, fused, always filtered by tenant.

Documents are ranked, not chunks. A Q&A pair's dense score is, by default, the better of its question
vector's and its best answer chunk's cosine similarity (``qa_dense``; or a blend, ``question_weight``);
a document's is its best section's. The default fusion adds a small share of BM25, divided by the best
BM25 score, to that cosine (``fusion="score"``, ``lexical_weight``): measured with ``careqa eval`` on
MedQuAD and LiveQA-Med consumer questions, equal-weight reciprocal-rank fusion let BM25's matches on the
noise of long messages outvote the embedding, while no BM25 at all loses exact codes ("code 75" vs
"code 79"). Optionally (``query_parts``), a long question is also embedded sentence by sentence.

The evidence threshold uses the best cosine similarity to the *whole* question, an absolute measure,
so "nothing relevant" can be told apart from "the best of a poor lot".
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    #: chunk-level candidates for the reader: each section chunk, and each Q&A pair (its best chunk), found by
    #: either search, with its cosine similarity to the whole question and its share of BM25
    units: list[Passage] = field(default_factory=list)

    @property
    def best_similarity(self) -> float:
        return max((p.similarity for p in self.passages), default=-1.0)


@dataclass
class _DocEvidence:
    best: Hit
    similarity: float = -1.0
    question_similarity: float | None = None
    dense: float | None = None
    lexical: float | None = None
    fused: float = 0.0
    # per query vector: best answer/section cosine and question cosine seen in that vector's hits
    answer_cos: dict[int, float] = field(default_factory=dict)
    question_cos: dict[int, float] = field(default_factory=dict)
    is_qa: bool = False


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|\n+")


def query_parts(question: str, config: RetrievalConfig) -> list[str]:
    """The texts to embed: the question itself, then (for a long question) its sentences.

    Short questions, as agents type them, are embedded whole and only whole.
    """
    if not config.query_parts or len(question.split()) < config.split_min_words:
        return [question]
    sentences = [s.strip() for s in _SENTENCE_END.split(question) if len(s.split()) >= 3]
    return [question, *sentences[: config.query_parts]]


def rank_documents(
    dense: Sequence[Sequence[Hit]], lexical: Sequence[Hit], config: RetrievalConfig
) -> list[_DocEvidence]:
    """Group chunk hits by document and rank documents by the configured fusion.

    ``dense`` holds one hit list per query vector, the whole question's first; ``lexical`` the BM25 hits.
    """
    docs: dict[str, _DocEvidence] = {}
    floors: list[float] = []
    for v, hits in enumerate(dense):
        floors.append(min((h.score for h in hits), default=-1.0))
        for hit in hits:
            ev = docs.get(hit.chunk.doc_id)
            if ev is None:
                ev = docs[hit.chunk.doc_id] = _DocEvidence(best=hit)
            if hit.chunk.kind in {"question", "answer"}:
                ev.is_qa = True
            if hit.chunk.kind == "question":
                ev.question_cos[v] = max(ev.question_cos.get(v, -1.0), hit.score)
            else:
                ev.answer_cos[v] = max(ev.answer_cos.get(v, -1.0), hit.score)
            if v == 0:
                if hit.score > ev.similarity:
                    ev.similarity = hit.score
                    ev.best = hit
                if hit.chunk.kind == "question":
                    ev.question_similarity = max(ev.question_similarity or -1.0, hit.score)
    use_dense, use_lexical = config.dense_weight > 0, config.lexical_weight > 0
    if not use_lexical:
        lexical = []
    top_lexical = max((h.score for h in lexical), default=0.0)
    for hit in lexical:
        ev = docs.setdefault(hit.chunk.doc_id, _DocEvidence(best=hit))
        if hit.chunk.kind in {"question", "answer"}:
            ev.is_qa = True
        if ev.lexical is None:
            ev.lexical = hit.score / top_lexical if top_lexical > 0 else 0.0

    lam = config.question_weight
    for ev in docs.values():
        scores = []
        for v in range(len(dense)):
            # A chunk that is not among a vector's hits is at most as similar as the last hit (the floor).
            answer = ev.answer_cos.get(v)
            question = ev.question_cos.get(v)
            if answer is None and question is None:
                continue
            if not ev.is_qa:
                scores.append(answer if answer is not None else floors[v])
                continue
            answer = answer if answer is not None else floors[v]
            question = question if question is not None else floors[v]
            scores.append(max(answer, question) if config.qa_dense == "max" else (1 - lam) * answer + lam * question)
        ev.dense = max(scores) if scores else None

    # Only documents found by a search that counts are ranked (the whole question's dense hits are always
    # fetched, for the evidence similarity, even when dense search has no weight).
    found = [
        ev for ev in docs.values() if (use_dense and ev.dense is not None) or (use_lexical and ev.lexical is not None)
    ]
    if config.fusion == "score":
        # A document BM25 found but dense search did not is at most as similar as the least similar one it did.
        dense_floor = min((ev.dense for ev in found if ev.dense is not None), default=0.0)
        for ev in found:
            dense_score = ev.dense if ev.dense is not None else dense_floor
            ev.fused = config.dense_weight * dense_score + config.lexical_weight * (ev.lexical or 0.0)
    else:
        by_dense = sorted((ev for ev in found if ev.dense is not None), key=lambda e: -(e.dense or 0.0))
        by_lexical = sorted((ev for ev in found if ev.lexical is not None), key=lambda e: -(e.lexical or 0.0))
        for rank, ev in enumerate(by_dense, start=1):
            ev.fused += config.dense_weight / (config.rrf_k + rank)
        for rank, ev in enumerate(by_lexical, start=1):
            ev.fused += config.lexical_weight / (config.rrf_k + rank)
    return sorted(found, key=lambda e: (-e.fused, -e.similarity))


class HybridRetriever:
    """Embeds the question, searches the tenant's chunks both ways and returns the top documents."""

    def __init__(self, index: ChunkIndex, embeddings: Embeddings, config: RetrievalConfig) -> None:
        self.index = index
        self.embeddings = embeddings
        self.config = config

    def retrieve(
        self, tenant: str, question: str, *, top_k: int | None = None, vector: Sequence[float] | None = None
    ) -> Retrieval:
        """The tenant's best documents and the reader's candidate units for ``question``.

        ``vector``: the query vector to search with instead of the question's own embedding (the answer
        step searches for one part of a two-part question with that part's vector blended with the whole's).
        """
        config = self.config
        t0 = time.perf_counter()
        parts = query_parts(question, config)
        vectors = [list(vector) if vector is not None else self.embeddings.embed_query(question)]
        if len(parts) > 1:
            vectors += self.embeddings.embed_documents(parts[1:])
        vector = vectors[0]
        t1 = time.perf_counter()
        # The whole question's dense hits are always needed: they give the evidence similarity.
        searched = vectors if config.dense_weight > 0 else vectors[:1]
        dense = [self.index.dense_search(tenant, v, config.dense_candidates) for v in searched]
        lexical = self.index.lexical_search(tenant, question, config.candidates) if config.lexical_weight > 0 else []
        ranked = rank_documents(dense, lexical, config)[: top_k or config.top_k]
        # A document found only by another query part or lexically has no similarity to the whole question
        # yet: score its best chunk's stored vector against the question (embedding it only if the index
        # has no vector for it, which a consistent index never lacks).
        missing = [ev for ev in ranked if ev.similarity == -1.0]
        if missing:
            stored = self.index.vectors(tenant, [ev.best.chunk.chunk_id for ev in missing])
            unstored = [ev for ev in missing if ev.best.chunk.chunk_id not in stored]
            if unstored:
                embedded = self.embeddings.embed_documents([ev.best.chunk.embed_text for ev in unstored])
                stored |= {ev.best.chunk.chunk_id: v for ev, v in zip(unstored, embedded, strict=True)}
            for ev in missing:
                ev.similarity = sum(a * b for a, b in zip(vector, stored[ev.best.chunk.chunk_id], strict=True))
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
        units = self._units(tenant, vector, dense[0], lexical)
        t2 = time.perf_counter()
        return Retrieval(passages, vector, embed_ms=(t1 - t0) * 1000, retrieve_ms=(t2 - t1) * 1000, units=units)

    def _units(
        self, tenant: str, vector: Sequence[float], dense: Sequence[Hit], lexical: Sequence[Hit]
    ) -> list[Passage]:
        """Every section chunk and Q&A pair among the hits, scored against the whole question.

        A Q&A pair is one unit (its question and answer chunks together: the pair's answer is what is read),
        represented by its best answer chunk; a document's sections are units of their own, since the reader
        answers from one section, not from a whole document. Chunks only BM25 found are scored with their
        stored vectors (the ``reader_lexical`` best of them), so no candidate lacks a similarity.
        """
        top_lexical = max((h.score for h in lexical), default=0.0)
        cosine: dict[str, float] = {h.chunk.chunk_id: h.score for h in dense}
        # every BM25 hit scores its chunk (a dense hit at BM25 rank 32 is not lexically unrelated); only the
        # best ``reader_lexical`` of them join the candidates
        bm25 = {h.chunk.chunk_id: h.score / top_lexical if top_lexical > 0 else 0.0 for h in reversed(lexical)}
        chunks = {h.chunk.chunk_id: h.chunk for h in dense}
        for hit in lexical[: self.config.reader_lexical]:
            chunks.setdefault(hit.chunk.chunk_id, hit.chunk)
        missing = [cid for cid in chunks if cid not in cosine]
        if missing:
            for cid, stored in self.index.vectors(tenant, missing).items():
                cosine[cid] = sum(a * b for a, b in zip(vector, stored, strict=True))
        units: dict[str, Passage] = {}
        for cid, chunk in chunks.items():
            if cid not in cosine:
                continue  # an inconsistent index: a chunk without a vector cannot be compared
            key = chunk.doc_id if chunk.kind in {"question", "answer"} else cid
            sim, lex = cosine[cid], bm25.get(cid, 0.0)
            unit = units.get(key)
            if unit is None:
                unit = units[key] = Passage(
                    doc_id=chunk.doc_id,
                    chunk_id=cid,
                    kind=chunk.kind,
                    title=chunk.title,
                    source_url=chunk.source_url,
                    text=chunk.text,
                    question=chunk.question,
                    fused_score=0.0,
                    similarity=sim,
                    lexical=lex,
                )
            elif chunk.kind != "question" and (unit.kind == "question" or sim > unit.similarity):
                # the pair is read from its best answer chunk (its question chunk only stands in until one is seen)
                best = max(sim, unit.similarity)
                unit = units[key] = unit.model_copy(
                    update={"chunk_id": cid, "kind": chunk.kind, "text": chunk.text, "similarity": best}
                )
            else:
                unit.similarity = max(unit.similarity, sim)
            unit.lexical = max(unit.lexical, lex)
            if chunk.kind == "question":
                unit.question_similarity = max(unit.question_similarity or -1.0, sim)
        return list(units.values())


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
