"""The reader's choice of the place that answers, on hand-made units (the sample-KB behaviour is in test_answer)."""

from careqa.config import ReaderConfig
from careqa.reader import Reader, ScoredUnit, phrase_shares
from careqa.types import Passage


def unit(n: int, kind: str, text: str, *, url: str, question: str | None = None, qsim: float | None = None) -> Passage:
    return Passage(
        doc_id=f"t/{n}",
        chunk_id=f"t/{n}::0",
        kind=kind,  # type: ignore[arg-type]
        title=f"Unit {n}",
        source_url=url,
        text=text,
        question=question,
        fused_score=0.1,
        similarity=0.6,
        question_similarity=qsim,
    )


PAIR = unit(
    1,
    "question",
    "How early can a patient refill?\nMost plans allow a refill once 75 to 80 percent of the supply is used.",
    url="refills.md#refill-too-soon",
    question="How early can a patient refill?",
    qsim=0.6,
)
SECTION = unit(
    2,
    "section",
    "Refills — Refill too soon\nMost plans allow a refill once 75 to 80 percent of the supply is used. "
    "Plans often apply a stricter threshold to controlled substances, commonly 85 to 90 percent.",
    url="refills.md#refill-too-soon",
)
OTHER = unit(
    3,
    "section",
    "Refills — Vacation overrides\nA vacation override lets a patient refill early.",
    url="refills.md#vacation",
)


def reader() -> Reader:
    return Reader(None, ReaderConfig(), min_evidence=0.3, curated_match=0.8)  # type: ignore[arg-type]


def scored(p: Passage, score: float) -> ScoredUnit:
    return ScoredUnit(p, score, set())


def test_a_pair_gives_way_to_its_section_when_the_question_asks_what_only_the_section_says():
    ranked = [scored(PAIR, 0.9), scored(OTHER, 0.85), scored(SECTION, 0.8)]
    chosen = reader()._source_section(ranked[0], ranked, "are controlled substances held to a stricter early refill")
    assert chosen.unit is SECTION


def test_a_pair_that_covers_the_question_or_matches_it_stays():
    ranked = [scored(PAIR, 0.9), scored(SECTION, 0.8)]
    assert reader()._source_section(ranked[0], ranked, "how early can a patient refill").unit is PAIR
    # the agent asked the pair's own question (above the curated-match bar): the pair answers it
    matching = PAIR.model_copy(update={"question_similarity": 0.9})
    ranked = [scored(matching, 0.9), scored(SECTION, 0.8)]
    assert reader()._source_section(ranked[0], ranked, "controlled substances early refill").unit is matching


def test_a_pair_never_gives_way_to_a_section_it_was_not_written_from():
    ranked = [scored(PAIR, 0.9), scored(OTHER, 0.8)]
    assert reader()._source_section(ranked[0], ranked, "vacation override for controlled substances").unit is PAIR


def test_phrase_shares_weigh_a_phrase_by_how_few_candidates_have_it():
    units = [SECTION, OTHER, PAIR]
    shares = phrase_shares("stricter threshold for controlled substances", units)
    assert shares[0] == 1.0 and shares[1] == shares[2] == 0.0
    # "refill early" is in one unit, "patient refill" in two: the rarer phrase counts for more
    shares = phrase_shares("can the patient refill early", units)
    assert shares[1] > shares[2] > 0.0
    assert phrase_shares("nothing in common here", units) == [0.0, 0.0, 0.0]
