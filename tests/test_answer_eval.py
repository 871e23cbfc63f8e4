"""Scoring answers against a judged answer set: verdicts, source matching, bad lines, configurations."""

import json

import pytest

from careqa.answer_eval import (
    AnswerEvalError,
    ConfigScore,
    JudgedAnswer,
    Scored,
    answer_words,
    apply_overrides,
    flip_negation,
    load_judged,
    parse_answer_config,
    parse_judged,
    score_answer,
    score_graded,
    source_matches,
    swap_number,
)
from careqa.types import Answer, AnswerSentence, Source, Timings

CODE_75 = "procedures/claim-rejection-codes.md#code-75-prior-authorization-required"


def answer(text: str, *cited: tuple[str, str], status: str = "answered") -> Answer:
    sources = [
        Source(n=n, title="t", url=url, snippet="", score=0.8, doc_id=doc_id, cited=True)
        for n, (doc_id, url) in enumerate(cited, start=1)
    ]
    return Answer(
        answer_id="a" * 32,
        tenant="pharmacy",
        status=status,  # type: ignore[arg-type]
        mode="curated" if status == "answered" else "not_found",
        text=text,
        sentences=[AnswerSentence(text=text, citations=[1])] if status == "answered" else [],
        sources=sources,
        models={},
        timings=Timings(),
    )


def judged(**fields) -> JudgedAnswer:
    base = {
        "id": "q1",
        "tenant": "pharmacy",
        "question": "pt got reject 75",
        "answerable": True,
        "sources": [CODE_75],
        "facts": ["prior authori[sz]ation", "prescriber"],
        "forbidden": ["code 70"],
    }
    return parse_judged({**base, **fields}, 1)


def test_an_answer_citing_the_section_with_every_fact_is_correct():
    a = answer("Code 75 needs a prior authorization from the prescriber.", ("pharmacy/rx-faq-001", CODE_75))
    assert score_answer(judged(), a) == ("correct", [])


def test_a_forbidden_statement_makes_an_answer_wrong_even_with_every_fact():
    a = answer("Like code 70, it needs a prior authorization from the prescriber.", ("pharmacy/rx-faq-001", CODE_75))
    verdict, reasons = score_answer(judged(), a)
    assert verdict == "wrong" and reasons == ["forbidden: code 70"]


def test_citing_another_section_is_wrong():
    other = "procedures/claim-rejection-codes.md#code-70-product-or-service-not-covered"
    a = answer("A prior authorization from the prescriber.", ("pharmacy/procedures/claim-rejection-codes.md", other))
    verdict, reasons = score_answer(judged(), a)
    assert verdict == "wrong" and reasons[0].startswith("off_source")


def test_a_missing_fact_makes_an_answer_wrong():
    a = answer("It needs a prior authorization.", ("pharmacy/rx-faq-001", CODE_75))
    assert score_answer(judged(), a) == ("wrong", ["missing_fact: prescriber"])


def test_not_found_is_abstaining_for_both_kinds_of_question():
    nothing = answer("Not found in the knowledge base.", status="not_found")
    assert score_answer(judged(), nothing)[0] == "abstained"
    assert score_answer(judged(answerable=False, sources=[], facts=[], forbidden=["yes"]), nothing)[0] == "abstained"


def test_unanswerable_answers_are_harmless_or_forbidden():
    q = judged(answerable=False, sources=[], facts=[], forbidden=[r"\byes\b", "(ship|deliver)\\w* to canada"])
    harmless = answer("Mail orders are delivered to addresses in all 50 US states.", ("pharmacy/rx-faq-031", "x"))
    invented = answer("Yes, we deliver to Canada.", ("pharmacy/rx-faq-031", "x"))
    assert score_answer(q, harmless)[0] == "harmless"
    assert score_answer(q, invented)[0] == "forbidden"


@pytest.mark.parametrize(
    "expected,doc_id,url,match",
    [
        ("rx-faq-001", "pharmacy/rx-faq-001", CODE_75, True),
        (CODE_75, "pharmacy/rx-faq-001", CODE_75, True),  # a pair answering from the section
        ("procedures/claim-rejection-codes.md", "pharmacy/procedures/claim-rejection-codes.md", CODE_75, True),
        (CODE_75, "pharmacy/procedures/claim-rejection-codes.md", CODE_75.replace("75", "70"), False),
        (CODE_75, "x", f"/sources/pharmacy/{CODE_75.split('#')[0]}?exp=1&sig=ab#{CODE_75.split('#')[1]}", True),
        ("rx-faq-001", "pharmacy/rx-faq-0011", "other.md", False),
    ],
)
def test_sources_match_by_id_document_or_section(expected, doc_id, url, match):
    assert source_matches(expected, doc_id, url, "pharmacy") is match


def test_bad_lines_are_reported_with_their_numbers_and_the_rest_is_kept(tmp_path):
    good = {"id": "a", "tenant": "pharmacy", "question": "q", "answerable": False, "forbidden": ["yes"]}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "id": "b", "answerable": "no"}),
        json.dumps({**good, "id": "c", "forbidden": ["(unclosed"]}),
        json.dumps({**good, "id": "a"}),
        json.dumps({**good, "id": "d", "tenant": "hospital"}),
        json.dumps({**good, "id": "e", "answerable": True}),
        json.dumps({**good, "id": "f", "colour": "red"}),
        "",
        json.dumps({**good, "id": "g"}),
    ]
    path = tmp_path / "judged.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    questions, problems = load_judged(path, tenants=["pharmacy", "clinic"])
    assert [q.id for q in questions] == ["a", "g"]
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["2", "3", "4", "5", "6", "7", "8"]
    assert "not valid JSON" in problems[0]
    assert "answerable is required" in problems[1]
    assert "not a valid regular expression" in problems[2]
    assert "duplicate id 'a' (first on line 1)" in problems[3]
    assert "unknown tenant 'hospital'" in problems[4]
    assert "needs its expected sources" in problems[5]
    assert "unknown field(s) colour" in problems[6]


def test_a_file_with_no_usable_line_is_refused(tmp_path):
    path = tmp_path / "judged.jsonl"
    path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(AnswerEvalError, match="no usable judged questions"):
        load_judged(path)


def test_configurations_parse_presets_overrides_and_models():
    config = parse_answer_config("auto:reader.min_score=0.5:llm=huggingface-llm-mistral-7b-instruct")
    assert config.answer_mode == "auto" and config.overrides == {"reader.min_score": "0.5"}
    assert config.llm == "huggingface-llm-mistral-7b-instruct"
    with pytest.raises(AnswerEvalError, match="unknown answer configuration 'writer'"):
        parse_answer_config("writer")
    with pytest.raises(AnswerEvalError, match="is not key=value"):
        parse_answer_config("reader:min_score")


def test_overrides_are_validated_and_name_the_field(settings):
    changed = apply_overrides(settings, {"reader.min_score": "0.55"})
    assert changed.reader.min_score == 0.55 and settings.reader.min_score != 0.55
    with pytest.raises(AnswerEvalError, match="reader.nope: no such setting"):
        apply_overrides(settings, {"reader.nope": "1"})
    with pytest.raises(AnswerEvalError, match="reader.max_sentences"):
        apply_overrides(settings, {"reader.max_sentences": "0"})


def test_graded_verdicts_follow_the_best_cited_grade():
    relevance = {"A": 4, "B": 2}
    assert score_graded(relevance, answer("x", ("eval/A", "u")), "eval") == "useful"
    assert score_graded(relevance, answer("x", ("eval/B", "u")), "eval") == "related"
    assert score_graded(relevance, answer("x", ("eval/C", "u")), "eval") == "wrong"
    assert score_graded(relevance, answer("x", status="not_found"), "eval") == "abstained"


def test_summary_counts_verdicts_and_shares_per_kind():
    qs = [judged(id="a"), judged(id="b"), judged(id="c", answerable=False, sources=[], facts=[], forbidden=["x"])]
    score = ConfigScore("reader", "reader")
    for qid, verdict in [("a", "correct"), ("b", "abstained"), ("c", "forbidden")]:
        score.per_question[qid] = Scored(qid, verdict, [], "curated", 10.0, 5.0, 0.0, False)  # type: ignore[arg-type]
    summary = score.summary(qs)
    assert summary["answerable"]["correct"] == 1 and summary["answerable"]["correct_share"] == 0.5
    assert summary["unanswerable"]["forbidden"] == 1


def test_answer_length_counts_the_words_an_agent_reads():
    text = "Code 75 means prior authorization (PA) required. [1] Transfers are free of charge. [1, 2]"
    assert answer_words(answer(text)) == 12  # "[1]" and "[1, 2]" are not words
    assert answer_words(answer("Mail orders take 3 to 5 business days; $12.95 for expedited. [2]")) == 11
    assert answer_words(answer("Not found in the knowledge base.", status="not_found")) == 0
    qs = [judged(id="a"), judged(id="b"), judged(id="c")]
    score = ConfigScore("reader", "reader")
    for qid, words in [("a", 40), ("b", 0), ("c", 60)]:
        score.per_question[qid] = Scored(qid, "correct", [], "curated", 1.0, None, 0.0, False, "", words)
    assert score.summary(qs)["answer_words"]["p50"] == 50  # "not found" is no answer to measure


def test_scripted_wrong_sentences_change_what_they_claim():
    assert flip_negation("Agents never override a code 88.") == "Agents override a code 88."
    assert flip_negation("Only the prescriber can submit the PA.") == "Only the prescriber can not submit the PA."
    assert flip_negation("Schedule II prescriptions cannot be transferred.") == (
        "Schedule II prescriptions can be transferred."
    )
    swapped = swap_number("Standard requests take 72 hours, urgent ones 24 hours.", [])
    assert swapped == "Standard requests take 24 hours, urgent ones 72 hours."
    # the two ends of a range are not swapped (that says the same); one end is replaced instead
    assert swap_number("It takes 3 to 5 business days.", ["3", "10"]) == "It takes 10 to 5 business days."
