"""One contract, two drivers: the embedded LanceDB store and the OpenSearch driver behave and rank alike.

The contract tests run over LanceDB, the OpenSearch driver on ``tests/opensearch_fake.py`` (a documented test
double that evaluates the queries the driver sends: exact cosine k-NN, BM25), and, when ``OPENSEARCH_URL`` is
set, a real cluster (``docker compose up -d`` starts one; see docker-compose.yml). The parity tests put the same
data through both drivers and compare dense rankings and the retriever's output.

Lexical search differs between the two by design, and the synthetic fixture steers clear of the differences
so that a driver fault shows: its titles share no word with the questions (LanceDB's text index covers ``text``
only, the OpenSearch query also ``title`` and ``question``), and its texts hold no word of the questions that
only one analyzer drops as a stop word (LanceDB drops "how", Lucene's English analyzer keeps it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from careqa.config import RetrievalConfig
from careqa.index.base import ChunkIndex, DocState
from careqa.index.lance import LanceIndex
from careqa.index.opensearch import OpenSearchIndex, connect
from careqa.ingest import ingest_folder
from careqa.retrieve import HybridRetriever
from careqa.types import Chunk
from tests.opensearch_fake import FakeOpenSearch

REPO = Path(__file__).resolve().parent.parent
DIM = 8
MODEL = "synthetic-8"

# (tenant, doc_id, text) and a Q&A pair; each document one chunk except the pair (question + answer chunks).
DOCUMENTS = [
    ("pharmacy", "refills", "Refills can be requested online or by phone two days before the supply runs out."),
    ("pharmacy", "code-75", "Rejection code 75 means the insurer requires prior authorization before paying."),
    ("pharmacy", "transfers", "A prescription transfer from another pharmacy takes one business day to complete."),
    ("pharmacy", "delivery", "Courier delivery status appears on the order page; parcels arrive within two days."),
    ("pharmacy", "hours", "The counter opens at eight in the morning and closes at nine at night on weekdays."),
    ("clinic", "visits", "Rejection code 75 also appears on clinic claims that lack prior authorization."),
    ("clinic", "labs", "Lab results are released to the patient portal after the physician reviews them."),
]
QA = ("pharmacy", "password", "Reset a forgotten portal password?", "Use the forgot password link on the sign in page.")
# question -> the chunk its vector is drawn near
QUESTIONS = {
    "What does rejection code 75 mean?": "code-75::v1::0",
    "How long does a prescription transfer take?": "transfers::v1::0",
    "How do I reset my portal password?": "password::v1::0",
    "When does the counter open?": "hours::v1::0",
    "Is there courier delivery?": "delivery::v1::0",
}


def _unit(v: np.ndarray) -> list[float]:
    # float32 values, so both drivers hold exactly the same numbers (LanceDB stores float32)
    return [float(x) for x in (v / np.linalg.norm(v)).astype(np.float32)]


def fixture_chunks() -> list[Chunk]:
    rng = np.random.default_rng(11)
    chunks = []
    for n, (tenant, doc_id, text) in enumerate(DOCUMENTS):
        chunks.append(_chunk(tenant, doc_id, 0, "section", text, text, None, f"Note {n}", rng))
    tenant, doc_id, question, answer = QA
    text = f"{question}\n{answer}"
    chunks.append(_chunk(tenant, doc_id, 0, "question", text, question, question, "Account help", rng))
    chunks.append(_chunk(tenant, doc_id, 1, "answer", text, text, question, "Account help", rng))
    return chunks


def _chunk(tenant, doc_id, n, kind, text, embed_text, question, title, rng) -> Chunk:  # noqa: ANN001
    return Chunk(chunk_id=f"{doc_id}::v1::{n}", doc_id=doc_id, tenant=tenant, kind=kind, title=title,
                 source_url=f"kb/{doc_id}.md", source_file=f"kb/{doc_id}.md", text=text, embed_text=embed_text,
                 question=question, position=n, content_hash="v1", vector=_unit(rng.standard_normal(DIM)))  # fmt: skip


def question_vectors(chunks: list[Chunk]) -> dict[str, list[float]]:
    rng = np.random.default_rng(12)
    by_id = {c.chunk_id: np.asarray(c.vector) for c in chunks}
    noise = {q: np.asarray(_unit(rng.standard_normal(DIM))) for q in QUESTIONS}
    return {q: _unit(0.8 * by_id[target] + 0.5 * noise[q]) for q, target in QUESTIONS.items()}


class FixedEmbeddings:
    """The fixture's vectors as an embedding model: chunk texts and questions map to their fixed vectors."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.vectors = {c.embed_text: list(c.vector or []) for c in chunks} | question_vectors(chunks)

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


# drivers --------------------------------------------------------------------------------------------


def cluster_url() -> str:
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        pytest.skip(
            "no OpenSearch cluster: start one with `docker compose up -d` and set OPENSEARCH_URL=http://localhost:9200"
        )
    return url


@contextmanager
def opensearch(kind: str, dimension: int, model: str, space: str = "innerproduct") -> Iterator[OpenSearchIndex]:
    if kind == "fake":
        fake = FakeOpenSearch()
        with fake.serve():
            yield OpenSearchIndex(connect(fake.url), dimension=dimension, embedding_model=model, space_type=space)  # type: ignore[arg-type]
        return
    url = cluster_url()
    user = os.environ.get("OPENSEARCH_USERNAME")
    password = os.environ.get("OPENSEARCH_PASSWORD")
    verify = os.environ.get("OPENSEARCH_VERIFY_CERTS", "1") != "0"
    client = connect(url, auth="basic" if user else "none", username=user, password=password, verify_certs=verify)
    prefix = f"careqa-test-{uuid.uuid4().hex[:8]}-"
    try:
        yield OpenSearchIndex(client, dimension=dimension, embedding_model=model, space_type=space, index_prefix=prefix)  # type: ignore[arg-type]
    finally:
        for tenant in ("pharmacy", "clinic"):
            client.indices.delete(index=f"{prefix}{tenant}", params={"ignore": 404})


DRIVERS = ["lancedb", "opensearch-fake", pytest.param("opensearch-cluster", marks=pytest.mark.opensearch)]
OPENSEARCH_KINDS = ["fake", pytest.param("cluster", marks=pytest.mark.opensearch)]


@pytest.fixture(params=DRIVERS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkIndex]:
    if request.param == "lancedb":
        yield LanceIndex(tmp_path / "index", dimension=DIM, embedding_model=MODEL)
        return
    with opensearch(request.param.removeprefix("opensearch-"), DIM, MODEL) as os_index:
        yield os_index


def load(index: ChunkIndex, chunks: list[Chunk] | None = None) -> list[Chunk]:
    chunks = chunks or fixture_chunks()
    index.upsert(chunks)
    index.refresh()
    return chunks


def exact_ranking(chunks: list[Chunk], tenant: str, vector: list[float]) -> list[tuple[str, float]]:
    mine = [c for c in chunks if c.tenant == tenant]
    scores = [float(np.dot(np.asarray(c.vector, dtype=np.float64), np.asarray(vector, dtype=np.float64))) for c in mine]
    return sorted(zip([c.chunk_id for c in mine], scores, strict=True), key=lambda s: -s[1])


# the contract ---------------------------------------------------------------------------------------


def test_documents_lists_each_document_of_the_tenant_with_its_hash(index):
    load(index)
    documents = index.documents("pharmacy")
    assert sorted(documents) == sorted(["refills", "code-75", "transfers", "delivery", "hours", "password"])
    assert {d.content_hash for d in documents.values()} == {"v1"}
    assert documents["password"].source_file == "kb/password.md"


def test_count_counts_the_chunks_of_one_tenant_or_all(index):
    load(index)
    assert (index.count("pharmacy"), index.count("clinic"), index.count()) == (7, 2, 9)


def test_upserting_the_same_chunk_ids_again_replaces_them(index):
    chunks = load(index)
    changed = [c.model_copy(update={"text": "Refills are free."}) if c.doc_id == "refills" else c for c in chunks]
    load(index, changed)
    assert index.count() == 9
    hits = index.lexical_search("pharmacy", "free refills", 3)
    assert [h.chunk.text for h in hits][:1] == ["Refills are free."]


def test_dense_search_returns_the_tenants_nearest_chunks_with_cosine_scores(index):
    chunks = load(index)
    for question, vector in question_vectors(chunks).items():
        hits = index.dense_search("pharmacy", vector, 4)
        expected = exact_ranking(chunks, "pharmacy", vector)[:4]
        assert [h.chunk.chunk_id for h in hits] == [cid for cid, _ in expected], question
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
        assert hits[0].chunk.chunk_id == QUESTIONS[question]


def test_lexical_search_finds_the_words_within_the_tenant_only(index):
    load(index)
    hits = index.lexical_search("pharmacy", "rejection code 75", 5)
    assert [h.chunk.doc_id for h in hits] == ["code-75"] and hits[0].score > 0
    assert [h.chunk.doc_id for h in index.lexical_search("clinic", "rejection code 75", 5)] == ["visits"]
    assert index.lexical_search("pharmacy", "  ", 5) == []


def test_vectors_returns_the_stored_vectors_of_the_tenants_chunks_only(index):
    chunks = load(index)
    pharmacy = [c for c in chunks if c.tenant == "pharmacy"][:3]
    clinic = next(c for c in chunks if c.tenant == "clinic")
    wanted = [c.chunk_id for c in pharmacy] + [clinic.chunk_id, "no-such-chunk"]
    found = index.vectors("pharmacy", wanted)
    assert sorted(found) == sorted(c.chunk_id for c in pharmacy)
    for c in pharmacy:
        assert found[c.chunk_id] == pytest.approx(c.vector, abs=1e-6)
    assert index.vectors("pharmacy", []) == {}


def test_delete_documents_removes_only_those_documents_of_that_tenant(index):
    load(index)
    index.delete_documents("pharmacy", ["password", "refills", "visits"])
    index.refresh()
    assert "password" not in index.documents("pharmacy") and "refills" not in index.documents("pharmacy")
    assert index.count("pharmacy") == 4 and "visits" in index.documents("clinic")


def test_delete_stale_chunks_keeps_only_the_current_version(index):
    chunks = load(index)
    current = [c.model_copy(update={"chunk_id": c.chunk_id.replace("v1", "v2"), "content_hash": "v2"})
               for c in chunks if c.doc_id == "password"]  # fmt: skip
    index.upsert(current)
    index.delete_stale_chunks("pharmacy", {"password": "v2"})
    index.refresh()
    assert index.documents("pharmacy")["password"].content_hash == "v2" and index.count("pharmacy") == 7
    assert index.documents("pharmacy")["refills"].content_hash == "v1"


def test_a_document_with_chunks_of_two_versions_is_listed_as_mixed(index):
    chunks = load(index)
    # what an ingest killed between writing a new version and deleting the old one leaves
    index.upsert([c.model_copy(update={"chunk_id": c.chunk_id.replace("v1", "v2"), "content_hash": "v2"})
                  for c in chunks if c.doc_id == "password"])  # fmt: skip
    index.refresh()
    documents = index.documents("pharmacy")
    assert documents["password"].mixed and not documents["refills"].mixed
    index.delete_stale_chunks("pharmacy", {"password": "v2"})
    assert index.documents("pharmacy")["password"] == DocState(content_hash="v2", source_file="kb/password.md")


def test_nothing_needs_a_refresh_after_a_refresh(index):
    load(index)
    assert not index.needs_refresh()


def test_a_tenant_without_chunks_reads_empty(index):
    load(index)
    assert index.documents("dentist") == {} and index.count("dentist") == 0
    assert index.dense_search("dentist", [1.0] + [0.0] * (DIM - 1), 3) == []
    index.ping()


# parity ---------------------------------------------------------------------------------------------


@pytest.fixture()
def lance(tmp_path: Path) -> LanceIndex:
    return LanceIndex(tmp_path / "lance", dimension=DIM, embedding_model=MODEL)


@pytest.mark.parametrize("kind", OPENSEARCH_KINDS)
def test_both_drivers_rank_dense_search_identically(lance, kind):
    chunks = load(lance)
    with opensearch(kind, DIM, MODEL) as os_index:
        load(os_index, chunks)
        for tenant in ("pharmacy", "clinic"):
            for vector in question_vectors(chunks).values():
                ours, theirs = lance.dense_search(tenant, vector, 10), os_index.dense_search(tenant, vector, 10)
                assert [h.chunk.chunk_id for h in ours] == [h.chunk.chunk_id for h in theirs]
                assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-5)
                assert [h.chunk for h in ours] == [h.chunk for h in theirs]


def passages(index: ChunkIndex, chunks: list[Chunk]) -> dict[str, list[tuple[Any, ...]]]:
    retriever = HybridRetriever(index, FixedEmbeddings(chunks), RetrievalConfig())  # type: ignore[arg-type]
    out = {}
    for question in QUESTIONS:
        result = retriever.retrieve("pharmacy", question)
        out[question] = [(p.doc_id, p.chunk_id, p.kind, p.fused_score, p.similarity,
                          -9.0 if p.question_similarity is None else p.question_similarity)
                         for p in result.passages]  # fmt: skip
    return out


def _same(ours: dict[str, list[tuple[Any, ...]]], theirs: dict[str, list[tuple[Any, ...]]]) -> None:
    """Same documents and chunks in the same order; scores equal up to float32 vs float64 storage."""
    assert ours.keys() == theirs.keys()
    for question in ours:
        assert [p[:3] for p in ours[question]] == [p[:3] for p in theirs[question]], question
        for a, b in zip(ours[question], theirs[question], strict=True):
            assert a[3:] == pytest.approx(b[3:], abs=1e-5), question


@pytest.mark.parametrize("kind", OPENSEARCH_KINDS)
def test_both_drivers_give_the_same_retriever_output(lance, kind):
    chunks = load(lance)
    with opensearch(kind, DIM, MODEL) as os_index:
        load(os_index, chunks)
        ours, theirs = passages(lance, chunks), passages(os_index, chunks)
    _same(ours, theirs)
    assert all(len(p) == RetrievalConfig().top_k for p in ours.values())


SAMPLE_QUESTIONS = [
    "What does rejection code 75 mean?",
    "How do I transfer a prescription?",
    "Where is my order?",
    "Can I get a refill early?",
    "Can the pharmacy deliver to Canada?",
]


@pytest.mark.slow
def test_the_sample_knowledge_base_ingests_to_the_same_documents_and_dense_rankings(tmp_path, embeddings):
    kb = REPO / "sample_kb" / "pharmacy"
    dim = len(embeddings.embed_query("dimension"))
    lance = LanceIndex(tmp_path / "lance", dimension=dim, embedding_model="all-MiniLM-L6-v2")
    ingest_folder(kb, "pharmacy", index=lance, embeddings=embeddings, progress=False)
    with opensearch("fake", dim, "all-MiniLM-L6-v2") as os_index:
        ingest_folder(kb, "pharmacy", index=os_index, embeddings=embeddings, progress=False)
        assert os_index.documents("pharmacy") == lance.documents("pharmacy")
        assert os_index.count("pharmacy") == lance.count("pharmacy")
        for question in SAMPLE_QUESTIONS:
            vector = embeddings.embed_query(question)
            ours, theirs = lance.dense_search("pharmacy", vector, 10), os_index.dense_search("pharmacy", vector, 10)
            assert [h.chunk.chunk_id for h in ours] == [h.chunk.chunk_id for h in theirs], question
            assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-4)
