"""The reader's choice of the place that answers, on hand-made units (the sample-KB behaviour is in test_answer)."""

import pytest

from careqa.config import ReaderConfig
from careqa.reader import Quote, Reader, Reading, ScoredUnit, names_label, phrase_shares
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


class Vectors:
    """Embeddings from a table: each sentence's vector is given by the test."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table

    def embed_documents(self, texts):
        return [self.table[t] for t in texts]


PAIR_SAYS = "The prescriber leads the appeal, and the patient may also file one."
SECTION_SAYS = "The prescriber leads it, and the patient may also file one."
AGENTS = "Agents do not file appeals."
URGENT = "Urgent requests are decided within 24 hours."
STANDARD = "Standard requests are decided within 72 hours."


def with_vectors(table: dict[str, list[float]]) -> Reader:
    return Reader(Vectors(table), ReaderConfig(), min_evidence=0.3, curated_match=0.8)  # type: ignore[arg-type]


def test_the_section_a_quoted_pair_summarises_still_answers_a_later_part():
    from careqa.reader import Quote, Reading

    pair = PAIR.model_copy(update={"source_url": "pa.md#appeals"})
    section = SECTION.model_copy(update={"source_url": "pa.md#appeals"})
    reading = Reading(quotes=[Quote(pair, [PAIR_SAYS], whole=True)])
    part = [1.0, 0.0]  # "can I file it for them": as close to the pair's sentence as to the section's best
    r = with_vectors({PAIR_SAYS: [1.0, 0.0]})
    best = ScoredUnit(section, 0.9, set(), sentence_similarity=0.7)
    assert not r._answered(reading, "can I file it for them", part, best)
    # another source is quoted for a later part only if it is clearly closer to it than what is quoted
    other = ScoredUnit(OTHER, 0.9, set(), sentence_similarity=0.7)
    assert r._answered(reading, "can I file it for them", part, other)


def test_a_later_part_naming_what_nothing_quoted_mentions_gets_the_source_that_does():
    from careqa.reader import Quote, Reading

    reading = Reading(quotes=[Quote(PAIR, [PAIR_SAYS], whole=True)])
    part = [1.0, 0.0]  # the part's vector is as close to what is quoted as to the new source
    r = with_vectors({PAIR_SAYS: [1.0, 0.0]})
    other = ScoredUnit(OTHER, 0.9, set(), sentence_similarity=0.7)
    # "vacation": nothing quoted says it, the other source does
    assert not r._answered(reading, "and what about a vacation", part, other)
    # a word neither says does not make the part new
    assert r._answered(reading, "and what about a cruise", part, other)


def test_a_sentence_that_restates_a_quoted_one_is_left_out_unless_it_names_something_new():
    from careqa.reader import Quote, Reading

    r = with_vectors(
        {
            PAIR_SAYS: [1.0, 0.0, 0.0],
            SECTION_SAYS: [0.9, 0.436, 0.0],  # 0.9 similar: the same sentence in other words
            AGENTS: [0.3, 0.0, 0.954],
            STANDARD: [0.0, 1.0, 0.0],
            URGENT: [0.0, 0.95, 0.312],  # as alike as restatements, but another number
        }
    )
    reading = Reading(quotes=[Quote(PAIR, [PAIR_SAYS, STANDARD], whole=True)])
    quote = r._without_repeats(Quote(SECTION, [SECTION_SAYS, URGENT, AGENTS], whole=True), reading)
    assert quote.sentences == [URGENT, AGENTS] and not quote.whole


def test_a_place_scoring_within_the_rival_margin_is_quoted_too_unless_a_pair_matches_the_question():
    r = reader()  # rival_margin 0.04
    best, near, same_place = scored(OTHER, 0.90), scored(PAIR, 0.87), scored(OTHER.model_copy(), 0.89)
    assert r._rival(best, [best, same_place, near]) is near  # the same place is no rival
    assert r._rival(best, [best, scored(PAIR, 0.85)]) is None  # clearly behind
    matching = scored(PAIR.model_copy(update={"question_similarity": 0.9}), 0.95)
    assert r._rival(matching, [matching, scored(OTHER, 0.94)]) is None  # the agent asked the pair's own question
    off = Reader(None, ReaderConfig(rival_margin=0), min_evidence=0.3, curated_match=0.8)  # type: ignore[arg-type]
    assert off._rival(best, [best, near]) is None


def test_a_place_the_questions_words_do_not_point_to_is_not_answered_from_unless_its_question_was_asked():
    r = reader()  # min_lexical 0.3
    assert r._worded(scored(OTHER.model_copy(update={"lexical": 0.3}), 0.9))
    assert not r._worded(scored(OTHER.model_copy(update={"lexical": 0.26}), 0.9))
    # the agent asked the pair's own question: its meaning is enough, whatever words were used
    assert r._worded(scored(PAIR.model_copy(update={"lexical": 0.0, "question_similarity": 0.85}), 0.9))
    assert not r._worded(scored(PAIR.model_copy(update={"lexical": 0.0}), 0.9))
    off = Reader(None, ReaderConfig(min_lexical=0), min_evidence=0.3, curated_match=0.8)  # type: ignore[arg-type]
    assert off._worded(scored(OTHER.model_copy(update={"lexical": 0.0}), 0.9))


def test_a_question_asking_when_prefers_a_place_that_states_a_time():
    from careqa.query import Query

    r = reader()  # answer_type_weight 0.1
    timed = OTHER.model_copy(update={"text": "Reminders — Texts\nA text reminder is sent 3 days before the visit."})
    untimed = OTHER.model_copy(update={"text": "Reminders — Texts\nPatients can reply to the reminder text."})
    when = Query(text="when do we send the reminder texts", expanded="", codes=(), names={}, parts=())
    assert r._score(when, timed) - r._score(when, untimed) == pytest.approx(0.1)
    # "what happens when" asks what, not when; a question asking something else gets no bonus either
    for text in ("what happens when the reminder text bounces", "can they reply to the reminder text"):
        asked = Query(text=text, expanded="", codes=(), names={}, parts=())
        assert r._score(asked, timed) == r._score(asked, untimed)


def test_a_quoted_list_item_comes_with_the_sentence_or_heading_that_opens_its_list():
    from careqa.reader import _items, _quoted

    body = (
        "The first visit is 40 minutes.\n\nNew patients should arrive 15 minutes early and bring:\n\n"
        "- A photo ID.\n- Their insurance card.\n\nRecords usually arrive within 10 business days."
    )
    items = _items(body)
    assert [i.text for i in items][1:3] == ["A photo ID.", "Their insurance card."]
    lead = "New patients should arrive 15 minutes early and bring:"
    assert _quoted(items) == [
        "The first visit is 40 minutes.",
        lead,
        "A photo ID.",
        "Their insurance card.",
        items[3].text,
    ]
    assert _quoted([items[2]]) == [lead, "Their insurance card."]  # the lead-in once, before its first item
    assert _quoted([items[0], items[3]]) == [items[0].text, items[3].text]  # prose has no lead-in
    # a list right under the heading has the heading as its lead-in
    under = _items("- Expired prescriptions.\n- Schedule II prescriptions.", "What cannot be transferred")
    assert _quoted(under[1:]) == ["What cannot be transferred:", "Schedule II prescriptions."]


@pytest.mark.parametrize(
    ("question", "term", "named"),
    [
        ("app has said filling on pts mail order since this am", "Filling", True),
        ("pts order been stuck on in review since yesterday", "In review", True),
        ("pt asked yesterday, app still says recieved. is that normal", "Received", True),  # one typo
        ("what does the ready for pickup status mean", "Ready for pickup", True),
        ("the order says shipped but patient hasn't received it", "Received", False),  # a verb, not the label
        ("her mail order just finished filling at 1:30", "Filling", False),
        ("app says filing", "Filling", True),
        ("app says fill", "Filling", False),  # a short word must be the label's own
        ("order says shipped", "In review", False),
    ],
)
def test_a_label_counts_as_named_when_the_question_quotes_it_off_the_screen(question, term, named):
    assert names_label(question, term) is named


def test_a_label_the_question_quotes_is_defined_first_from_the_list_item_that_defines_it():
    statuses = unit(
        4,
        "section",
        "Order status — Order statuses\nEvery order moves through these statuses.\n"
        "- Received: the order has been placed and is waiting to start.\n"
        "- Filling: the medicine is being prepared and checked by a pharmacist.",
        url="status.html#order-statuses",
    )
    tracking = unit(
        5, "section", "Order status — Tracking numbers\nThe tracking number appears once it ships.", url="t"
    )
    ships = "The tracking number appears once it ships."
    filling = "Filling: the medicine is being prepared and checked by a pharmacist."
    said = "Filling means a pharmacist is preparing and checking the medicine."
    r = with_vectors({ships: [1.0, 0.0], filling: [0.0, 1.0], said: [0.0, 1.0]})
    question = "app has said filling since this am, where is the tracking number"
    parts = [(question, [], [tracking, statuses]), (question, [], [statuses])]  # the same unit found twice
    found = r._definitions(question, parts, Reading(quotes=[Quote(tracking, [ships], whole=False)]))
    assert [(q.unit.chunk_id, q.sentences) for q in found] == [(statuses.chunk_id, [filling])]
    # a quoted sentence that already says what the label means is not repeated
    assert r._definitions(question, parts, Reading(quotes=[Quote(tracking, [ships, said], whole=False)])) == []
    # a question that uses the word, not the label, gets no definition
    assert (
        r._definitions("she hasn't received it", parts, Reading(quotes=[Quote(tracking, [ships], whole=False)])) == []
    )


def test_a_later_part_answered_by_a_quoted_unit_adds_its_own_sentences_in_the_units_order():
    how = "A patient can ask to move a prescription by phone or in the app."
    long = "Most transfers in are completed within 1 business day."
    closed = "If the other pharmacy is closed, the transfer is completed the next business day."
    section = unit(6, "section", f"Transfers — Transfers in\n{how} {long} {closed}", url="transfers.md#transfers-in")
    reading = Reading(quotes=[Quote(section, [how, closed], whole=False)])
    Reader._extend(reading, Quote(section, [long, closed], whole=False))
    assert reading.quotes[0].sentences == [how, long, closed]
    Reader._extend(reading, Quote(section, [closed], whole=False))  # nothing new: unchanged
    assert reading.quotes[0].sentences == [how, long, closed]
    Reader._extend(reading, Quote(OTHER, ["A vacation override lets a patient refill early."], whole=False))
    assert len(reading.quotes) == 1 and reading.quotes[0].sentences == [how, long, closed]


def test_a_sentence_opening_with_the_and_a_word_that_names_nothing_does_not_go_on_about_the_previous_one():
    from careqa.reader import _continues, _Item

    forms = _Item(["The forms cover health history and current medicines."], 0, False)
    assert not _continues(forms, _Item(["The first visit is scheduled for 40 minutes."], 0, False))
    assert _continues(forms, _Item(["The forms take ten minutes to complete."], 0, False))


def test_a_sentence_opening_with_what_the_previous_one_named_goes_on_about_it():
    from careqa.reader import _continues, _Item

    release = _Item(["The patient signs a records release form, which the front desk sends on."], 0, False)
    assert _continues(release, _Item(["Records usually arrive within 10 business days."], 0, False))
    assert not _continues(release, _Item(["Vaccination records are kept for 10 years."], 0, False))
    assert not _continues(release, _Item(["Records usually arrive within 10 business days."], 1, False))


def test_a_list_item_shares_the_words_of_the_sentence_that_opens_its_list():
    filler = [
        f"Clinic rule number {w} applies to every visit booked online."
        for w in ("one", "two", "three", "four", "five", "six")
    ]
    portal = "New patients complete their intake forms in the portal before the visit."
    lead = "New patients should arrive early and bring:"
    meds = "A list of current medicines, with doses."
    photo = "A photo identity card issued by any state."
    body = "\n".join([" ".join([portal, *filler]), lead, f"- {meds}", f"- {photo}"])
    section = unit(7, "section", f"Appointments — New patient intake\n{body}", url="appointments.md#intake")
    table = {portal: [0.7, 0.714, 0.0], meds: [0.3, 0.0, 0.954], photo: [0.0, 0.0, 1.0]}
    table.update({f: [0.0, 1.0, 0.0] for f in filler})
    quote = with_vectors(table).quote(
        "does she still need to bring a list of medicines", [1.0, 0.0, 0.0], scored(section, 1), []
    )
    # similarity alone puts the item 0.4 below the portal sentence; "bring" is in its list's opening sentence
    assert quote.sentences == [portal, lead, meds]


def test_a_later_part_that_names_nothing_of_its_own_is_answered_only_from_a_place_about_the_earlier_parts():
    statement = unit(8, "section", "Billing — Statements\nA yearly statement can be mailed.", url="billing.txt")
    transfers = unit(9, "section", "Transfers — Common questions\nTransfers are free of charge.", url="transfers.md")
    first = "patient wants their yearly statement mailed instead of downloading it"
    parts = [(first, [], [statement]), ("do we charge anything for that", [], [transfers])]
    reading = Reading(quotes=[Quote(statement, ["A yearly statement can be mailed."], whole=False)])
    assert Reader._elsewhere(reading, parts, "do we charge anything for that", scored(transfers, 1))
    assert not Reader._elsewhere(reading, parts, "do we charge anything for that", scored(statement, 1))
    # a part that says what it asks about is read on its own
    assert not Reader._elsewhere(reading, parts, "are prescription transfers free of charge", scored(transfers, 1))


def test_only_the_place_whose_heading_names_every_code_asked_has_the_lower_bar():
    own = unit(10, "section", "Codes — Code 70 — Not covered\nThe plan excludes the drug.", url="codes.md#code-70")
    passing = unit(11, "section", "Refills — Overrides\nA code 70 is never overridden here.", url="refills.md#o")
    r = reader()  # code_evidence 0.25
    low = {"similarity": 0.3}
    assert r._code_place(scored(own.model_copy(update=low), 1), ["70"])
    assert not r._code_place(scored(passing.model_copy(update=low), 1), ["70"])
    assert not r._code_place(scored(own.model_copy(update={"similarity": 0.2}), 1), ["70"])
    assert not r._code_place(scored(own.model_copy(update=low), 1), ["70", "75"])  # every code asked
    assert not r._code_place(scored(own.model_copy(update=low), 1), [])
