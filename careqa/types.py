"""The values that flow through CareQA: records in, chunks, passages, answers and feedback out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RecordKind = Literal["qa", "document"]
ChunkKind = Literal["question", "answer", "section"]


class KBRecord(BaseModel):
    """One knowledge-base entry as read from a file: a Q&A pair or a document."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    tenant: str
    kind: RecordKind
    title: str
    source_url: str = Field(description="absolute http(s) URL, or a path relative to the tenant's knowledge base")
    source_file: str = Field(description="the file it came from, relative to the ingested folder")
    text: str = Field(description="the answer of a Q&A pair, or the document body")
    question: str | None = None
    fmt: Literal["markdown", "html", "text", "qa"] = "qa"
    location: str = Field(description="file and line, for reports")


class Chunk(BaseModel):
    """A unit of retrieval: what is embedded and searched, with enough metadata to cite it."""

    chunk_id: str
    doc_id: str
    tenant: str
    kind: ChunkKind
    title: str
    source_url: str
    source_file: str
    text: str = Field(description="what generation and lexical search see")
    embed_text: str = Field(description="what the embedding model sees (a Q&A pair's question, for question chunks)")
    question: str | None = None
    position: int = 0
    content_hash: str
    vector: list[float] | None = None


class Hit(BaseModel):
    chunk: Chunk
    score: float


class Passage(BaseModel):
    """A retrieved document, represented by its best chunk, with the evidence for it."""

    doc_id: str
    chunk_id: str
    kind: ChunkKind
    title: str
    source_url: str
    text: str
    question: str | None = None
    fused_score: float
    similarity: float = Field(description="best cosine similarity of the question to the document's chunks")
    question_similarity: float | None = Field(default=None, description="similarity to a Q&A pair's question")
    lexical: float = Field(default=0.0, description="BM25 score divided by the best BM25 score of the question")


class Source(BaseModel):
    n: int = Field(description="the citation number, as in [n]")
    title: str
    url: str
    snippet: str
    score: float = Field(description="cosine similarity of the question to this source")
    doc_id: str
    cited: bool = Field(default=False, description="whether the answer cites it (others are related documents)")


class AnswerSentence(BaseModel):
    text: str
    citations: list[int]


class Timings(BaseModel):
    embed_ms: float = 0.0
    retrieve_ms: float = 0.0
    read_ms: float = Field(default=0.0, description="the reader choosing what to quote (sentence embeddings included)")
    generate_ms: float = 0.0
    check_ms: float = 0.0
    first_sentence_ms: float | None = Field(
        default=None, description="from the question to the first sentence ready to show (none when not found)"
    )
    total_ms: float = 0.0


AnswerStatus = Literal["answered", "not_found"]
AnswerMode = Literal["generated", "curated", "extractive", "not_found"]


class Answer(BaseModel):
    answer_id: str
    tenant: str
    status: AnswerStatus
    mode: AnswerMode = Field(
        description="generated: model sentences that passed the grounding check; curated: a matching Q&A pair's "
        "answer; extractive: the best-supported passage sentences; not_found: no sufficient evidence"
    )
    text: str
    sentences: list[AnswerSentence]
    sources: list[Source]
    dropped_sentences: int = Field(default=0, description="generated sentences removed as unsupported")
    note: str | None = Field(default=None, description="why the answer is what it is, for the agent")
    models: dict[str, str]
    timings: Timings


Rating = Literal["up", "down"]


class Feedback(BaseModel):
    feedback_id: str
    answer_id: str
    tenant: str
    subject: str
    rating: Rating
    comment: str = ""
    created_at: datetime


class SourcesEvent(BaseModel):
    """Streamed first: the sources the sentences will cite, numbered as the sentences cite them."""

    type: Literal["sources"] = "sources"
    sources: list[Source]


class SentenceEvent(BaseModel):
    """A sentence that has passed the checks, as soon as it has."""

    type: Literal["sentence"] = "sentence"
    sentence: AnswerSentence


class DoneEvent(BaseModel):
    """The complete answer, as ``POST /v1/ask`` returns it (citations renumbered in order of use)."""

    type: Literal["done"] = "done"
    answer: Answer


AnswerEvent = SourcesEvent | SentenceEvent | DoneEvent
