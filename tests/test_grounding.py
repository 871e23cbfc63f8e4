"""The grounding guard keeps supported sentences and drops everything else, whatever the model wrote."""

import pytest

from careqa.config import GuardConfig
from careqa.grounding import GroundingGuard, content_terms, phrases, split_sentences, strip_verdict
from careqa.types import Passage


def passage(text: str, title: str = "Doc", n: int = 0) -> Passage:
    return Passage(
        doc_id=f"t/{n}",
        chunk_id=f"t/{n}::0",
        kind="section",
        title=title,
        source_url="x.md",
        text=f"{title}\n{text}",
        fused_score=0.1,
        similarity=0.8,
    )


DELIVERY = passage(
    "Standard delivery takes 3 to 5 business days after the order ships. Expedited delivery takes 1 to 2 "
    "business days. Packages with controlled substances need an adult signature.",
    "Order and delivery status",
    1,
)
CODES = passage(
    "Code 75 means the plan requires a prior authorization before it pays for the drug. "
    "The agent contacts the prescriber, who submits the prior authorization request.",
    "Claim rejection codes",
    2,
)


@pytest.fixture(scope="module")
def guard(embeddings):
    return GroundingGuard(embeddings, GuardConfig())


def test_an_invented_yes_about_an_uncovered_place_is_dropped(guard):
    [check] = guard.check("Yes, the pharmacy can deliver to Canada.", [DELIVERY, CODES])
    assert not check.supported
    assert "canada" in check.reason


def test_a_word_taken_from_the_question_that_no_passage_uses_drops_the_sentence(guard):
    garbled = "Packages with controlled substances need an adult pickup signature."
    [kept] = guard.check(garbled, [DELIVERY, CODES])
    assert kept.supported  # most of its words are the passage's: coverage alone lets it through
    [check] = guard.check(garbled, [DELIVERY, CODES], question="do controlled meds need a signature at pickup")
    assert not check.supported and "pickup" in check.reason
    [fine] = guard.check(
        "Packages with controlled substances need an adult signature.",
        [DELIVERY, CODES],
        question="do controlled meds need a signature at pickup",
    )
    assert fine.supported  # the question's other words are not held against a sentence that does not use them


def test_a_bare_yes_or_no_is_never_shown(guard):
    checks = guard.check("Yes. No.", [DELIVERY])
    assert checks == []  # nothing checkable is left once the verdicts are removed


def test_a_supported_sentence_is_kept_and_cites_its_passage(guard):
    [check] = guard.check(
        "Code 75 means the plan requires a prior authorization before it pays [1].", [DELIVERY, CODES]
    )
    assert check.supported and check.citation == 2


def test_a_wrong_number_is_dropped(guard):
    [check] = guard.check("Code 76 means the plan requires a prior authorization before it pays.", [DELIVERY, CODES])
    assert not check.supported


def test_a_flipped_negation_is_dropped(guard):
    [check] = guard.check("Packages with controlled substances do not need an adult signature.", [DELIVERY, CODES])
    assert not check.supported


TRANSFER_OUT = passage(
    "Our pharmacist gives the details and marks the prescription inactive at Northwind, and the remaining refills "
    "move with it. Controlled substances in Schedule II cannot be transferred.",
    "Transfers out",
    3,
)


def test_a_clause_no_passage_sentence_states_drops_the_sentence(embeddings):
    made_up = (
        "Our pharmacist gives the details and marks the prescription inactive at Northwind so it can be filled "
        "in two places."
    )
    [kept] = GroundingGuard(embeddings, GuardConfig(min_clause_coverage=0)).check(made_up, [TRANSFER_OUT])
    assert kept.supported  # close to the passage overall: similarity and coverage alone let it through
    guard = GroundingGuard(embeddings, GuardConfig())
    [check] = guard.check(made_up, [TRANSFER_OUT])
    assert not check.supported and "clause" in check.reason
    [fine] = guard.check(
        "Our pharmacist marks the prescription inactive at Northwind, and the remaining refills move with it.",
        [TRANSFER_OUT],
    )
    assert fine.supported  # each clause restates one sentence of the passage


def test_a_negation_added_to_a_clause_of_one_word_is_dropped(guard):
    pa = passage(
        "If there is no update after 2 business days, call the prescriber's office to confirm the request was "
        "submitted; the patient can also call the member services number on their card.",
        "Prior authorization",
        4,
    )
    said = (
        "If there is no update after 2 business days, call the prescriber's office to confirm the request was "
        "submitted."
    )
    [kept] = guard.check(said, [pa])
    assert kept.supported
    [check] = guard.check(said.replace("is no update", "is not no update"), [pa])
    assert not check.supported and "negation" in check.reason


def test_a_true_sentence_that_does_not_answer_the_question_is_dropped(guard, embeddings):
    query = embeddings.embed_query("How long does expedited delivery take?")
    checks = guard.check(
        "Code 75 means the plan requires a prior authorization before it pays. "
        "Expedited delivery takes 1 to 2 business days.",
        [DELIVERY, CODES],
        query,
    )
    assert [c.supported for c in checks] == [False, True]
    assert checks[1].citation == 1


def test_only_supported_sentences_survive_a_mixed_answer(guard):
    checks = guard.check(
        "Standard delivery takes 3 to 5 business days. Delivery is free for all orders over $20.", [DELIVERY, CODES]
    )
    assert [c.supported for c in checks] == [True, False]


CODE_88 = passage(
    "Code 88 is a DUR reject: the plan found a possible safety issue. Agents never override a code 88. "
    "Route the order to the pharmacist queue.",
    "Code 88",
    3,
)
TIMELINES = passage(
    "Standard decisions usually arrive within 72 hours after the plan has everything it needs, urgent requests "
    "within 24 hours.",
    "Prior authorization timelines",
    4,
)


def test_a_sentence_about_another_code_never_answers_a_question_about_this_one(guard):
    # true of code 75, and passage 2 supports it, but the question is about code 88
    checks = guard.check(
        "Code 75 means the plan requires a prior authorization before it pays. Route the order to the pharmacist "
        "queue.",
        [CODES, CODE_88],
        codes=["88"],
        known_codes=["75", "88"],
    )
    assert [c.supported for c in checks] == [False, True]
    assert "about code 75" in checks[0].reason
    assert checks[1].citation == 2


def test_a_passage_about_another_code_supports_nothing_said_about_this_one(guard):
    # the agent-queue sentence is in the code 75 passage only: for code 88 it is unsupported
    [check] = guard.check(
        "The agent contacts the prescriber, who submits the prior authorization request.",
        [CODES, CODE_88],
        codes=["88"],
        known_codes=["75", "88"],
    )
    assert not check.supported


def test_a_number_moved_to_what_the_passage_says_of_another_number_is_dropped(guard):
    right, swapped = guard.check(
        "Urgent requests are usually decided within 24 hours. Urgent requests are usually decided within 72 hours.",
        [TIMELINES],
    )
    assert right.supported and not swapped.supported
    assert "another" in swapped.reason


def test_numbers_from_two_statements_are_not_combined_into_one(guard):
    refills = passage(
        "For a 30-day supply, that is usually day 23 or 24 after the last fill. For a 90-day supply, it is "
        "usually between day 68 and day 72.",
        "Refill too soon",
        5,
    )
    [check] = guard.check("For a 90-day supply, a refill is usually allowed on day 23 or 24.", [refills])
    assert not check.supported and "different statements" in check.reason


def test_a_true_sentence_from_a_passage_off_the_topic_is_dropped(guard):
    [check] = guard.check(
        "Standard delivery takes 3 to 5 business days after the order ships.", [CODES, DELIVERY], on_topic={1}
    )
    assert not check.supported and "another question" in check.reason


def test_verdicts_are_removed_but_the_statement_kept():
    assert strip_verdict("Yes, refills can be requested online.") == "Refills can be requested online."
    assert strip_verdict("No.") == ""


def test_sentences_split_on_punctuation_lines_and_bullets():
    assert split_sentences("First one. Second one!\n- third item\n2) fourth") == [
        "First one.",
        "Second one!",
        "third item",
        "fourth",
    ]


def test_content_words_are_stemmed_alike_by_concurrent_threads():
    # Found under load (benchmarks/bench_load.py): one shared Snowball stemmer keeps its word in itself, so answers
    # computed in the service's thread pool got each other's stems, or an IndexError (a 500).
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from careqa.grounding import content_terms

    texts = [
        "Prior authorizations require the prescriber's justification and additional documentation",
        "Refills requested too soon are rejected by the insurer until enough days have passed",
        "Transferring controlled substances between pharmacies is restricted by regulations",
        "Deliveries are rescheduled automatically when nobody is available to sign for packages",
    ] * 50
    expected = [content_terms(t) for t in texts]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so they interleave inside the stemmer
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(content_terms, texts)) == expected
    finally:
        sys.setswitchinterval(interval)


def test_phrases_are_neighbouring_content_words_across_a_few_stop_words_and_never_framing_words():
    assert phrases("what happens if a refill is too soon") == {("refil", "soon")}
    assert phrases("early refill window") == {("earli", "refil"), ("refil", "window")}
    # "pt asking ... wants to" frames the question: no phrase starts or ends on a framing word
    assert phrases("patient asking for renewal") == {("patient", "renew")}
    # more than two words apart, or on another line, is not a phrase
    assert phrases("refill or do we send a renewal") == {("send", "renew")}
    assert phrases("Refill\nsoon") == set()


def test_an_initialism_with_full_stops_is_one_word_and_chat_framing_is_not_content():
    # "P.O. box" is the phrase (po, box), as the knowledge base writes it and the agent's "PO box" expands to
    assert ("po", "box") in phrases("they cannot be sent to a P.O. box")
    assert phrases("ship to a PO box") == phrases("ship to a P.O. box") == {("ship", "po"), ("po", "box")}
    # "does", "whats", "got" frame an agent's question; they are not what it is about
    assert content_terms("does the plan reject in real time, whats the code, pt got a reject") == {
        "plan",
        "reject",
        "real",
        "time",
        "code",
        "pt",
    }
