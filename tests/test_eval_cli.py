"""``careqa eval`` on a tiny knowledge base: JSON shape, hand-computed metrics, and an index reused across runs."""

import json
import math

import pytest
from typer.testing import CliRunner

from careqa.cli import app

runner = CliRunner()

KB = [
    {"id": "a1", "question": "Zorblax dosing", "answer": "Zorblax tablets go twice daily with meals."},
    {"id": "a2", "question": "Quintrel storage", "answer": "Keep quintrel capsules in a cool cupboard."},
    {"id": "a3", "question": "Plenvix interactions", "answer": "Plenvix must never be combined with grapefruit."},
    {"id": "a4", "question": "Counter hours", "answer": "The counter opens at eight every weekday."},
]
# Each query's words occur in one pair only, so BM25 returns exactly that pair: the rankings are known.
QUESTIONS = [
    # ranking [a2]; a2 is grade 3, a4 (grade 4) is missed
    {"id": "q1", "subject": "Quintrel", "message": "quintrel cupboard", "paraphrase": "quintrel",
     "relevance": {"a2": 3, "a4": 4}},
    # ranking [a4]; a4 is only related (grade 2), a1 (grade 4) is missed
    {"id": "q2", "subject": "Weekday", "message": "counter opens weekday", "paraphrase": "weekday counter",
     "relevance": {"a4": 2, "a1": 4, "a3": 1}},
]  # fmt: skip
L3 = math.log2(3)
EXPECTED = {
    "ndcg@10": (2 / (3 + 2 / L3) + 1 / (3 + 1 / L3)) / 2,
    "success@5": 0.5,
    "mrr@10": 0.5,
    "recall@10": 0.25,
}


@pytest.fixture()
def files(tmp_path):
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(json.dumps(r | {"source_url": f"https://kb.example/{r['id']}"}) + "\n" for r in KB))
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return kb, questions, tmp_path / "eval-data"


def invoke(kb, questions, data, *extra):
    args = ["eval", "retrieval", "--kb", str(kb), "--questions", str(questions), "--data-dir", str(data)]
    args += ["--json", "-", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_reports_hand_computed_metrics_as_json_for_each_configuration_and_form(files):
    report = invoke(*files, "--configs", "bm25,dense-questions")
    assert report["n_questions"] == 2 and report["tenant"] == "eval"
    assert report["ingest"]["added"] == 4 and report["ingest"]["rejected"] == 0
    assert [r["config"] for r in report["results"]] == ["bm25", "dense-questions"]
    for result in report["results"]:
        assert set(result["forms"]) == {"message", "paraphrase"}
        for scores in result["forms"].values():
            assert set(scores) == {"ndcg@10", "success@5", "mrr@10", "recall@10", "latency_ms", "vs_baseline",
                                   "per_question"}  # fmt: skip
            assert set(scores["per_question"]) == {"q1", "q2"}
            assert set(scores["latency_ms"]) == {"p50", "p95"}
            assert all(0.0 <= scores[m] <= 1.0 for m in EXPECTED)
    bm25 = report["results"][0]
    assert bm25["settings"]["dense_weight"] == 0.0
    for form in ("message", "paraphrase"):
        assert {m: bm25["forms"][form][m] for m in EXPECTED} == pytest.approx(EXPECTED, abs=1e-4)


def test_a_second_run_reuses_the_index_and_the_table_names_every_configuration(files):
    invoke(*files, "--configs", "bm25")
    again = invoke(*files, "--configs", "bm25")
    assert again["ingest"]["added"] == 0 and again["ingest"]["unchanged"] == 4
    kb, questions, data = files
    result = runner.invoke(
        app, ["eval", "retrieval", "--kb", str(kb), "--questions", str(questions), "--data-dir", str(data), "--configs",
              "bm25,default:lexical_weight=0.5", "--forms", "paraphrase"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bm25" in result.output and "default:lexical_weight=0.5" in result.output and "nDCG@10" in result.output
    assert "message" not in result.output.split("nDCG@10", 1)[1]


def test_an_unknown_configuration_is_refused_before_anything_is_ingested(files):
    kb, questions, data = files
    result = runner.invoke(app, ["eval", "retrieval", "--kb", str(kb), "--questions", str(questions),
                                 "--data-dir", str(data),
                                 "--configs", "nope"])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown retrieval configuration 'nope'" in result.output
    assert not (data / "index").exists() or not any((data / "index").iterdir())


def test_each_configuration_is_compared_with_the_baseline_question_by_question(files):
    report = invoke(*files, "--configs", "bm25,dense-questions", "--baseline", "dense-questions")
    bm25, dense = report["results"]
    per_question = bm25["forms"]["message"]["per_question"]
    assert per_question["q1"]["ndcg@10"] == pytest.approx(2 / (3 + 2 / L3), abs=1e-4)
    assert per_question["q2"]["ndcg@10"] == pytest.approx(1 / (3 + 1 / L3), abs=1e-4)
    for form in ("message", "paraphrase"):
        same = dense["forms"][form]["vs_baseline"]
        assert same == {"baseline": "dense-questions", "metric": "ndcg@10", "delta": 0.0, "ci95": [0.0, 0.0],
                        "wins": 0, "losses": 0}  # fmt: skip
        other = bm25["forms"][form]["vs_baseline"]
        expected = bm25["forms"][form]["ndcg@10"] - dense["forms"][form]["ndcg@10"]
        assert other["delta"] == pytest.approx(expected, abs=2e-4)
        assert other["ci95"][0] <= other["delta"] <= other["ci95"][1]
        assert other["wins"] + other["losses"] <= 2


def test_a_baseline_that_is_not_run_is_refused_before_anything_is_ingested(files):
    kb, questions, data = files
    result = runner.invoke(app, ["eval", "retrieval", "--kb", str(kb), "--questions", str(questions),
                                 "--data-dir", str(data),
                                 "--configs", "bm25", "--baseline", "default"])  # fmt: skip
    assert result.exit_code == 2
    assert "--baseline 'default' is not one of the configurations: bm25" in result.output
    assert not (data / "index").exists() or not any((data / "index").iterdir())


# -- careqa eval answers ----------------------------------------------------------------------------------------

JUDGED = [
    {"id": "j1", "tenant": "pharmacy", "question": "pt got reject 75, what do i tell them", "answerable": True,
     "sources": ["procedures/claim-rejection-codes.md#code-75-prior-authorization-required"],
     "facts": ["prior authori[sz]ation", "prescriber"], "forbidden": ["code 70"]},
    {"id": "j2", "tenant": "pharmacy", "question": "what does code 99 mean", "answerable": False,
     "forbidden": ["99 means"]},
    {"id": "j3", "tenant": "clinic", "question": "whats the late cancel fee", "answerable": True,
     "sources": ["procedures/appointments.md#cancelling-or-rescheduling", "clinic-faq-001"], "facts": [r"\$25"]},
]  # fmt: skip


def test_eval_answers_scores_each_question_and_reports_bad_lines_and_the_guard(tmp_path, monkeypatch):
    from endpoints.local import GenerationContainer

    def no_llm(*_args, **_kwargs):
        raise AssertionError("the reader never calls the LLM: it must not load")

    monkeypatch.setattr(GenerationContainer, "_load", no_llm)
    judged = tmp_path / "judged.jsonl"
    lines = [json.dumps(q) for q in JUDGED]
    lines.insert(1, '{"id": "bad", "tenant": "pharmacy", "question": "x", "answerable": "maybe"}')
    lines.append(json.dumps({**JUDGED[1], "id": "j4", "tenant": "hospital"}))
    judged.write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        app,
        ["eval", "answers", "--questions", str(judged), "--data-dir", str(tmp_path / "d"), "--configs", "reader",
         "--answers", "--json", "-"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{judged}:2: answerable is required" in result.stderr
    assert f"{judged}:5: unknown tenant 'hospital'" in result.stderr
    report = json.loads(result.stdout)
    [reader] = report["results"]
    verdicts = {qid: q["verdict"] for qid, q in reader["per_question"].items()}
    assert verdicts == {"j1": "correct", "j2": "abstained", "j3": "correct"}
    assert reader["answerable"]["correct_share"] == 1.0 and reader["llm_calls"] == 0
    assert reader["cost_per_1000_answers"] > 0 and "no LLM endpoint" in reader["cost_basis"]
    assert set(report["guard"]) == {"right", "another_code", "swapped_number", "flipped_negation", "off_topic"}
    assert report["skipped"] and "unknown tenant" in report["skipped"][1]


@pytest.mark.parametrize(
    "configs,message",
    [
        ("reader,writer", "unknown answer configuration 'writer'"),
        ("reader:reader.nope=1", "reader.nope: no such setting"),
        ("reader:reader.min_score=high", "reader.min_score"),
    ],
)
def test_eval_answers_refuses_a_bad_configuration_before_any_model_loads(tmp_path, monkeypatch, configs, message):
    from careqa import runtime

    def no_models(*_args, **_kwargs):
        raise AssertionError("no model may load before the configurations are checked")

    monkeypatch.setattr(runtime.Runtime, "__init__", no_models)
    judged = tmp_path / "judged.jsonl"
    judged.write_text(json.dumps(JUDGED[1]) + "\n")
    result = runner.invoke(app, ["eval", "answers", "--questions", str(judged), "--configs", configs])
    assert result.exit_code == 2 and message in result.output
