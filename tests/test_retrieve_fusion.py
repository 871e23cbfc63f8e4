"""Document ranking from chunk hits: question/answer blending, floors, weighted RRF, score fusion, query parts."""

import pytest
from langchain_core.embeddings import Embeddings

from careqa.config import RetrievalConfig
from careqa.index.lance import LanceIndex
from careqa.retrieve import HybridRetriever, query_parts, rank_documents
from careqa.types import Chunk, Hit


def hit(doc: str, kind: str, score: float, n: int = 0) -> Hit:
    chunk = Chunk(
        chunk_id=f"{doc}::{kind}{n}",
        doc_id=doc,
        tenant="t",
        kind=kind,  # type: ignore[arg-type]
        title=doc,
        source_url="https://x",
        source_file="f",
        text=doc,
        embed_text=doc,
        question="q?" if kind != "section" else None,
        content_hash="h",
    )
    return Hit(chunk=chunk, score=score)


def order(ranked):
    return [ev.best.chunk.doc_id for ev in ranked]


def test_a_qa_pair_blends_its_question_and_answer_similarity():
    dense = [[hit("a", "question", 0.9), hit("b", "answer", 0.8), hit("a", "answer", 0.5), hit("b", "question", 0.4)]]
    by_question = rank_documents(dense, [], RetrievalConfig(lexical_weight=0, qa_dense="blend", question_weight=1.0))
    by_answer = rank_documents(dense, [], RetrievalConfig(lexical_weight=0, qa_dense="blend", question_weight=0.0))
    assert order(by_question) == ["a", "b"] and order(by_answer) == ["b", "a"]
    blended = rank_documents(dense, [], RetrievalConfig(lexical_weight=0, qa_dense="blend", question_weight=0.5))
    assert [round(ev.dense or 0, 3) for ev in blended] == [0.7, 0.6]


def test_the_max_mode_takes_the_better_of_question_and_answer():
    dense = [[hit("a", "question", 0.9), hit("b", "answer", 0.8), hit("a", "answer", 0.1), hit("b", "question", 0.2)]]
    ranked = rank_documents(dense, [], RetrievalConfig(lexical_weight=0, qa_dense="max"))
    assert [(order([ev])[0], ev.dense) for ev in ranked] == [("a", 0.9), ("b", 0.8)]


def test_a_chunk_missing_from_the_hits_counts_as_the_last_hits_similarity():
    # b's question vector is not among the hits: it is at most 0.3, the lowest similarity returned.
    dense = [[hit("a", "question", 0.9), hit("b", "answer", 0.8), hit("a", "answer", 0.3)]]
    ranked = rank_documents(dense, [], RetrievalConfig(lexical_weight=0, qa_dense="blend", question_weight=0.5))
    assert {order([ev])[0]: round(ev.dense or 0, 3) for ev in ranked} == {"a": 0.6, "b": 0.55}


def test_a_document_without_a_question_vector_is_scored_by_its_sections():
    dense = [[hit("doc", "section", 0.7), hit("qa", "question", 0.9), hit("qa", "answer", 0.2)]]
    ranked = rank_documents(dense, [], RetrievalConfig(lexical_weight=0, qa_dense="blend", question_weight=0.5))
    assert order(ranked) == ["doc", "qa"] and ranked[0].dense == 0.7


def test_weighted_rrf_adds_each_lists_weight_over_k_plus_rank():
    dense = [[hit("a", "section", 0.9), hit("b", "section", 0.8)]]
    lexical = [hit("b", "section", 12.0), hit("c", "section", 3.0)]
    config = RetrievalConfig(fusion="rrf", rrf_k=10, dense_weight=1.0, lexical_weight=0.5)
    fused = {order([ev])[0]: ev.fused for ev in rank_documents(dense, lexical, config)}
    assert fused == pytest.approx({"a": 1 / 11, "b": 1 / 12 + 0.5 / 11, "c": 0.5 / 12})


def test_a_lexical_weight_of_zero_ignores_bm25_and_a_dense_weight_of_zero_keeps_only_bm25_hits():
    dense = [[hit("a", "section", 0.9)]]
    lexical = [hit("b", "section", 5.0)]
    for fusion in ("rrf", "score"):
        assert order(rank_documents(dense, lexical, RetrievalConfig(fusion=fusion, lexical_weight=0))) == ["a"]
        assert order(rank_documents(dense, lexical, RetrievalConfig(fusion=fusion, dense_weight=0))) == ["b"]


def test_score_fusion_adds_cosine_and_max_normalised_bm25():
    dense = [[hit("a", "section", 0.8), hit("b", "section", 0.6)]]
    lexical = [hit("b", "section", 10.0), hit("a", "section", 2.0)]
    config = RetrievalConfig(fusion="score", dense_weight=1.0, lexical_weight=0.5)
    fused = {order([ev])[0]: ev.fused for ev in rank_documents(dense, lexical, config)}
    assert fused == pytest.approx({"a": 0.8 + 0.5 * 0.2, "b": 0.6 + 0.5 * 1.0})


def test_the_default_ranks_by_the_best_of_question_and_answer_plus_a_little_bm25():
    dense = [[hit("a", "question", 0.80), hit("b", "answer", 0.78), hit("b", "question", 0.5), hit("a", "answer", 0.4)]]
    lexical = [hit("b", "answer", 9.0)]
    fused = {order([ev])[0]: ev.fused for ev in rank_documents(dense, lexical, RetrievalConfig())}
    assert fused == pytest.approx({"a": 0.80, "b": 0.78 + 0.1})


def test_query_parts_let_one_sentence_of_a_long_message_find_its_document():
    dense = [[hit("noise", "section", 0.5), hit("a", "section", 0.4)], [hit("a", "section", 0.9)]]
    ranked = rank_documents(dense, [], RetrievalConfig(lexical_weight=0))
    assert order(ranked) == ["a", "noise"]
    # the evidence similarity is the whole question's, never a part's
    assert ranked[0].similarity == 0.4


def test_only_long_questions_are_split_into_sentences():
    config = RetrievalConfig(query_parts=2, split_min_words=10)
    assert query_parts("What does rejection code 75 mean?", config) == ["What does rejection code 75 mean?"]
    long = "Dementia. Is dementia passed down in families? My mother had it. Could I get it too, and when?"
    assert query_parts(long, config) == [long, "Is dementia passed down in families?", "My mother had it."]
    assert query_parts(long, RetrievalConfig(query_parts=0, split_min_words=10)) == [long]


class CountingEmbeddings(Embeddings):
    """Fixed vectors by text, counting what it is asked to embed."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.documents: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents += texts
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def test_a_document_found_only_by_bm25_is_scored_with_its_stored_vector_not_re_embedded(tmp_path):
    index = LanceIndex(tmp_path / "index", dimension=2, embedding_model="test")
    near = hit("near", "section", 0).chunk.model_copy(update={"tenant": "t", "vector": [1.0, 0.0], "text": "refills"})
    far = hit("far", "section", 0).chunk.model_copy(
        update={"tenant": "t", "vector": [0.6, 0.8], "text": "zebra striped bottles"}
    )
    index.upsert([near, far])
    index.refresh()
    embeddings = CountingEmbeddings({"zebra bottles": [1.0, 0.0]})
    config = RetrievalConfig(dense_candidates=1, top_k=2)  # dense search sees only "near"
    retrieval = HybridRetriever(index, embeddings, config).retrieve("t", "zebra bottles")
    similarity = {p.doc_id: p.similarity for p in retrieval.passages}
    assert similarity == pytest.approx({"near": 1.0, "far": 0.6})
    assert embeddings.documents == []


def test_a_dense_hit_beyond_the_readers_bm25_candidates_keeps_its_bm25_share(tmp_path):
    # Three sections; BM25 ranks "overview" last (a long section that says "prior authorization" once), and
    # only the best BM25 hit joins the reader's candidates. The overview, found by dense search, still gets
    # its BM25 share: rank 3 in BM25 is not "lexically unrelated".
    index = LanceIndex(tmp_path / "index", dimension=2, embedding_model="test")
    texts = {
        "denial": "prior authorization denial prior authorization appeal",
        "timing": "prior authorization timing",
        "overview": "a prior authorization is a review by the plan before it pays for a drug, for high cost drugs",
    }
    vectors = {"denial": [0.0, 1.0], "timing": [0.0, 1.0], "overview": [1.0, 0.0]}
    index.upsert(
        [
            hit(doc, "section", 0).chunk.model_copy(update={"tenant": "t", "vector": vectors[doc], "text": text})
            for doc, text in texts.items()
        ]
    )
    index.refresh()
    config = RetrievalConfig(dense_candidates=1, reader_lexical=1)
    retrieval = HybridRetriever(index, CountingEmbeddings({"prior authorization": [1.0, 0.0]}), config).retrieve(
        "t", "prior authorization"
    )
    lexical = {u.doc_id: u.lexical for u in retrieval.units}
    assert set(lexical) == {"overview", "denial"}  # the dense hit and the one BM25 candidate
    assert lexical["denial"] == 1.0 and 0 < lexical["overview"] < 1.0
