"""Reading a question as agents type it: shorthand, the codes that bind the answer, names, parts."""

import pytest

from careqa.query import (
    BUILTIN_GLOSSARIES,
    DEFAULT_GLOSSARY,
    US_STATES,
    analyse,
    code_mentions,
    expand,
    key_names,
    known_codes,
    split_parts,
    tenant_glossary,
)

PHARMACY = {**DEFAULT_GLOSSARY, "PA": "prior authorization", "prior auth": "prior authorization"}
KB_CODES = {"25", "41", "65", "70", "75", "76", "79", "88", "MR"}


@pytest.mark.parametrize(
    "question,codes",
    [
        ("pt got reject 75 on their inhaler, what do i tell them", ["75"]),
        ("75 reject", ["75"]),
        ("got a 75 rejection", ["75"]),
        ("what does code 88 mean", ["88"]),
        ("reject code MR??", ["MR"]),
        ("rejection code mr", ["MR"]),
        ("what's the difference between codes 70 and MR", ["70", "MR"]),
        ("claim rejected codes 70, MR and 88", ["70", "MR", "88"]),
        ("got an M/I reject", ["M/I"]),
        ("what does code 99 mean", ["99"]),
    ],
)
def test_codes_next_to_a_code_word_are_found_in_any_order(question, codes):
    assert analyse(question, PHARMACY).codes == tuple(codes)


def test_a_bare_number_is_a_code_when_the_knowledge_base_uses_it_as_one():
    assert analyse("claim came back with 75", PHARMACY, known_codes=KB_CODES).codes == ("75",)
    assert analyse("claim came back with 75", PHARMACY).codes == ()


@pytest.mark.parametrize(
    "question",
    ["refill at 75 percent", "how early can someone refill a 90 day supply?", "is there a $12.95 fee", "75% used"],
)
def test_quantities_are_never_codes(question):
    assert analyse(question, PHARMACY, known_codes=KB_CODES | {"90"}).codes == ()


def test_a_dash_ends_a_quantity_so_a_heading_names_its_code():
    # "79 Refill" would read as "79 refills"; the dash between them says they are apart
    assert code_mentions("Claim rejection codes — Code 79 — Refill too soon", known={"79"}) == ["79"]
    assert code_mentions("Reject 25 - verify NPI", known={"25"}) == ["25"]
    assert code_mentions("allow 3 refills a year", known={"3"}) == []


def test_zero_of_something_reads_as_none_except_as_a_code():
    assert analyse("bottle says 0 refills, can we", PHARMACY).expanded.startswith("bottle says no refills")
    assert "no refills left" in analyse("pt has zero refills left", PHARMACY).expanded
    assert analyse("claim came back code 0 reject", PHARMACY).expanded == "claim came back code 0 reject"
    assert analyse("copay is $0 now", PHARMACY).expanded == "copay is $0 now"


@pytest.mark.parametrize("question", ["claim rejected bc ins", "rejected the med", "pt's claim rejected w/ 88, can i"])
def test_lower_case_words_after_rejected_are_not_codes(question):
    assert set(analyse(question, PHARMACY).codes) <= {"88"}


def test_the_knowledge_base_codes_are_read_from_its_own_wording():
    texts = [
        "Code 75 means prior authorization required.",
        "What is the difference between rejection codes 70 and MR?",
        "Send the order to the technician queue with the note 'Reject 25 - verify NPI.'",
        "Most plans allow a refill once about 75 to 80 percent of the days supply has been used.",
        "Call the automated line and press 1.",
    ]
    assert known_codes(texts) == {"75", "70", "MR", "25"}


def test_shorthand_is_expanded_as_whole_words_in_any_case():
    assert expand("pt's Rx needs a PA", PHARMACY) == "patient's prescription needs a prior authorization"
    assert expand("can C-II meds auto refill", PHARMACY) == "can Schedule II medicines auto refill"
    assert expand("the pattern of paper", PHARMACY) == "the pattern of paper"  # no expansion inside words
    assert expand("on a cruise next wk, back in 2 wks", PHARMACY) == "on a cruise next week, back in 2 weeks"
    assert expand("do we send reminder txts", PHARMACY) == "do we send reminder texts"


def test_a_weekday_reads_as_the_days_a_knowledge_base_names():
    assert expand("latest its open on a weekday", PHARMACY) == "latest its open on a weekday (Monday to Friday)"
    assert expand("open weekends?", PHARMACY) == "open weekends (Saturday or Sunday)?"


def test_a_us_state_is_read_as_one():
    # the knowledge base says "all 50 US states" or "a state where the clinician is licensed", never each name
    assert expand("do we ship to alaska", PHARMACY) == "do we ship to Alaska (a US state)"
    assert expand("pt is in New York til fri", PHARMACY) == "patient is in New York (a US state) til Friday"
    assert expand("mailing to puerto rico?", PHARMACY) == "mailing to Puerto Rico (a US territory)?"
    assert expand("pt is in toronto canada", PHARMACY) == "patient is in toronto canada"
    assert key_names("Can we ship to Texas?", skip=PHARMACY) == {}
    assert len(US_STATES) == 50 and all(name == name.strip() for name in US_STATES)


def test_a_controlled_substance_is_read_with_its_schedule():
    # the knowledge base names schedules ("Schedule II controlled substances ... cannot be transferred"), agents drugs
    assert (
        expand("can we move her adderall", PHARMACY) == "can we move her Adderall (a Schedule II controlled substance)"
    )
    assert (
        expand("lost pkg w/ oxy in it", PHARMACY)
        == "lost pkg with oxycodone (a Schedule II controlled substance) in it"
    )
    assert expand("pts Xanax refills", PHARMACY) == "patients Xanax (a controlled substance, Schedule IV) refills"
    assert expand("her Lyrica", PHARMACY) == "her Lyrica (a controlled substance, Schedule V)"
    assert expand("her lisinopril", PHARMACY) == "her lisinopril"
    assert key_names("Can Walgreens transfer her Xanax?", skip=PHARMACY) == {"walgreens": "Walgreens"}


def test_a_tenant_reads_its_questions_with_the_builtin_lists_it_names_and_its_own_glossary():
    medical = tenant_glossary(["shorthand"], {"PA": "physician assistant"})
    assert (
        expand("pt started methadone, asked her PA", medical)
        == "patient started methadone, asked her physician assistant"
    )
    assert expand("pt in alaska", medical) == "patient in alaska"
    pharmacy = tenant_glossary(["shorthand", "controlled_substances"], {"tramadol": "tramadol (Schedule IV here)"})
    assert expand("her tramadol and her xanax", pharmacy) == (
        "her tramadol (Schedule IV here) and her Xanax (a controlled substance, Schedule IV)"
    )
    assert tenant_glossary(BUILTIN_GLOSSARIES, {}) == DEFAULT_GLOSSARY


def test_names_skip_the_first_word_and_glossary_abbreviations_and_keep_units():
    assert key_names("how do I transfer a rx from CVS") == {"cvs": "CVS"}
    assert key_names("Can the pharmacy deliver to Canada?") == {"canada": "Canada"}
    assert key_names("needs a PA", skip=PHARMACY) == {}
    assert key_names("not received after 7 days") == {"7 days": "7 days"}


def test_two_part_questions_are_split_and_one_part_questions_are_not():
    assert split_parts("how long does a prior authorization take and who submits it") == [
        "how long does a prior authorization take",
        "who submits it",
    ]
    assert split_parts("what does code 75 mean? what do i tell the patient") == [
        "what does code 75 mean",
        "what do i tell the patient",
    ]
    assert split_parts("can patients pay cash and skip insurance") == ["can patients pay cash and skip insurance"]
    # after "and", an auxiliary opens a second question, unless it goes on with the same clause
    assert split_parts("when do we send the reminder texts and can they confirm by replying") == [
        "when do we send the reminder texts",
        "can they confirm by replying",
    ]
    assert split_parts("can a discount card be used with insurance, and do cash purchases count") == [
        "can a discount card be used with insurance",
        "do cash purchases count",
    ]
    one = "she works from home and would rather not come in, can that be video"
    assert split_parts(one) == [one]
    # a sentence that opens with "also" or "and" is another part, whatever follows the word
    assert split_parts("how long is her 1st appt. also her old clinic is sending records, will we have them") == [
        "how long is her 1st appt",
        "also her old clinic is sending records, will we have them",
    ]
    assert split_parts("pt asked how long it takes. and she wants it mailed") == [
        "pt asked how long it takes",
        "and she wants it mailed",
    ]


def test_code_mentions_require_capitals_for_bare_letter_codes():
    assert code_mentions("the MR reject", known={"MR"}) == ["MR"]
    assert code_mentions("ask mr smith", known={"MR"}) == []
