"""Retrieval metrics on tiny hand-computed rankings; config specs; staging a large knowledge-base file."""

import json
import math

import pytest

from careqa import evaluate
from careqa.config import RetrievalConfig
from careqa.evaluate import (
    EvalInputError,
    kb_id,
    mrr_at,
    ndcg_at,
    parse_config_spec,
    percentile,
    recall_at,
    score_ranking,
    stage_kb,
    success_at,
)

L3 = math.log2(3)  # the discount at rank 2


def test_ndcg_uses_linear_gain_grade_minus_one_against_the_ideal_order():
    # gains 1, 3, 2 against the ideal 3, 2, 1
    dcg = 1 + 3 / L3 + 2 / 2
    idcg = 3 + 2 / L3 + 1 / 2
    assert ndcg_at(["b", "a", "c"], {"a": 4, "b": 2, "c": 3}) == pytest.approx(dcg / idcg)
    assert ndcg_at(["b", "a", "c"], {"a": 4, "b": 2, "c": 3}) == pytest.approx(0.81749, abs=1e-5)


def test_unjudged_and_grade_one_documents_gain_nothing():
    assert ndcg_at(["x", "a"], {"a": 4}) == pytest.approx((3 / L3) / 3)
    assert ndcg_at(["w", "a"], {"a": 4, "w": 1}) == pytest.approx((3 / L3) / 3)


def test_documents_of_equal_grade_are_interchangeable_and_a_repeated_id_counts_once():
    relevance = {"a": 3, "b": 3, "c": 4}
    assert ndcg_at(["a", "b", "c"], relevance) == pytest.approx(ndcg_at(["b", "a", "c"], relevance))
    assert ndcg_at(["c", "c", "a"], relevance) == pytest.approx(ndcg_at(["c", "a"], relevance))


def test_a_ranking_shorter_than_ten_is_scored_against_the_full_ideal():
    relevance = {"a": 4, "b": 3}
    assert ndcg_at(["a"], relevance) == pytest.approx(3 / (3 + 2 / L3))
    assert recall_at(["a"], relevance) == 0.5
    assert ndcg_at([], relevance) == 0.0


def test_only_the_top_k_count():
    ranking = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at(ranking, {"a": 4}) == 0.0
    assert recall_at(ranking, {"a": 4}) == 0.0
    assert mrr_at(ranking, {"a": 4}) == 0.0


def test_success_at_5_needs_grade_three_or_more_in_the_first_five():
    assert success_at(["x1", "x2", "x3", "x4", "a"], {"a": 3}) == 1.0
    assert success_at(["x1", "x2", "x3", "x4", "x5", "a"], {"a": 4}) == 0.0
    assert success_at(["a"], {"a": 2}) == 0.0


def test_mrr_is_the_reciprocal_rank_of_the_first_grade_three_document():
    assert mrr_at(["r", "x", "a", "b"], {"r": 2, "a": 3, "b": 4}) == pytest.approx(1 / 3)
    assert mrr_at(["x"], {"a": 4}) == 0.0


def test_recall_counts_grade_three_and_four_documents_only():
    assert recall_at(["a", "r"], {"a": 4, "b": 3, "r": 2}) == 0.5


def test_a_question_with_nothing_relevant_scores_zero_rather_than_failing():
    assert score_ranking(["a"], {"a": 1}) == {"ndcg@10": 0.0, "success@5": 0.0, "mrr@10": 0.0, "recall@10": 0.0}


def test_percentile_interpolates_between_ranks():
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert percentile([5.0], 0.95) == 5.0


def test_kb_ids_are_the_doc_ids_without_the_tenant_prefix():
    assert kb_id("eval/GHR_0000178_Sec4.txt", "eval") == "GHR_0000178_Sec4.txt"
    assert kb_id("other/x", "eval") == "other/x"


def test_a_config_spec_is_a_preset_with_overrides_on_the_configured_settings():
    base = RetrievalConfig(top_k=6)
    config = parse_config_spec("bm25:candidates=40", base)
    assert config.dense_weight == 0 and config.candidates == 40 and config.top_k == 6
    assert parse_config_spec("default", base) == base


@pytest.mark.parametrize("spec", ["nope", "default:candidates", "default:colour=red", "default:candidates=-1"])
def test_a_bad_config_spec_is_refused_with_its_reason(spec):
    with pytest.raises(EvalInputError, match=spec.split(":")[0] if spec == "nope" else "default"):
        parse_config_spec(spec, RetrievalConfig())


def test_a_jsonl_file_over_the_loader_limit_is_staged_in_parts_of_whole_lines(tmp_path, monkeypatch):
    lines = [
        json.dumps({"id": f"q{i}", "question": f"Q{i}?", "answer": f"A{i}.", "source_url": f"https://x/{i}"}) + "\n"
        for i in range(50)
    ]
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(lines))
    monkeypatch.setattr(evaluate, "MAX_FILE_BYTES", 500)
    monkeypatch.setattr(evaluate, "_PART_BYTES", 500)
    folder = stage_kb(kb, tmp_path / "stage")
    parts = sorted(folder.iterdir())
    assert len(parts) > 1 and all(p.stat().st_size <= 500 for p in parts)
    assert "".join(p.read_text() for p in parts) == "".join(lines)


def test_a_small_file_is_staged_alone_and_a_folder_is_used_as_it_is(tmp_path):
    kb = tmp_path / "faq.csv"
    kb.write_text("question,answer,source_url\nQ?,A.,https://x\n")
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "stale.jsonl").write_text("{}\n")
    folder = stage_kb(kb, tmp_path / "stage")
    assert [p.name for p in folder.iterdir()] == ["faq.csv"]
    assert stage_kb(tmp_path, tmp_path / "other") == tmp_path


def test_the_paired_bootstrap_interval_is_tight_for_a_constant_shift_and_wide_for_one_lucky_question():
    base = [0.2, 0.5, 0.7, 0.1, 0.9, 0.4, 0.3, 0.6]
    delta, low, high = evaluate.paired_bootstrap([b + 0.1 for b in base], base)
    assert (delta, low, high) == pytest.approx((0.1, 0.1, 0.1))
    lucky = base.copy()
    lucky[0] += 0.8  # one question of eight improves: a mean gain of 0.1 that resampling may not keep
    delta, low, high = evaluate.paired_bootstrap(lucky, base)
    assert delta == pytest.approx(0.1) and low == pytest.approx(0.0) and high > 0.2
    assert evaluate.paired_bootstrap(lucky, base) == evaluate.paired_bootstrap(lucky, base)  # seeded
    with pytest.raises(ValueError):
        evaluate.paired_bootstrap([], [])
