"""Answers on the sample knowledge base: cited, grounded, tenant-scoped, honest when nothing is found."""

import re

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from careqa.answer import NOT_FOUND, AnswerEngine
from careqa.errors import InvalidQuestionError, UnknownTenantError
from careqa.grounding import GroundingGuard


def verdict(text: str) -> bool:
    """Whether a text opens with a yes/no verdict ("Not found" is not one)."""
    return re.match(r"\s*(yes|no|nope|yeah)\b", text, re.IGNORECASE) is not None


class ExplodingChatModel(FakeListChatModel):
    def _call(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the model must not be called")


def engine_with(runtime, chat_model) -> AnswerEngine:
    return AnswerEngine(
        runtime.settings,
        runtime.retriever,
        chat_model,
        GroundingGuard(runtime.embeddings, runtime.settings.guard),
        models={"embedding": "e", "llm": "fake"},
        base_model=True,
    )


def test_code_75_is_answered_with_prior_authorization_and_cites_the_codes_document(runtime):
    answer = runtime.engine.ask("pharmacy", "What does rejection code 75 mean?")
    assert answer.status == "answered"
    assert "prior authorization" in answer.text.lower()
    cited = {n for s in answer.sentences for n in s.citations}
    cited_urls = {s.url for s in answer.sources if s.n in cited}
    assert any("claim-rejection-codes.md" in url for url in cited_urls), cited_urls
    assert answer.timings.total_ms > 0 and answer.timings.embed_ms > 0
    assert answer.models["embedding"] == "huggingface-textembedding-all-MiniLM-L6-v2"


def test_every_answer_sentence_cites_a_listed_source(runtime):
    answer = runtime.engine.ask("pharmacy", "How long does a prior authorization take?")
    assert answer.status == "answered"
    numbers = {s.n for s in answer.sources}
    assert answer.sentences and all(s.citations and set(s.citations) <= numbers for s in answer.sentences)


def test_a_question_outside_the_knowledge_base_is_not_found_without_calling_the_model(runtime):
    answer = engine_with(runtime, ExplodingChatModel(responses=["never"])).ask(
        "pharmacy", "What is the capital of France?"
    )
    assert answer.status == "not_found" and answer.mode == "not_found"
    assert answer.text == NOT_FOUND
    assert answer.sources, "the closest documents are still shown"


@pytest.mark.parametrize(
    "invented",
    [
        "Yes, the pharmacy can deliver to Canada.",
        "No, the pharmacy cannot deliver to Canada.",
        "Yes.",
        "Yes, we ship to Canada within 3 to 5 business days [1].",
    ],
)
@pytest.mark.parametrize("question", ["Can the pharmacy deliver to Canada?", "can you guys deliver to canada"])
def test_canada_never_gets_an_invented_yes_or_no_whatever_the_model_says(runtime, invented, question):
    # The lower-case spelling names no proper noun, so it reaches the model and the guard has to catch it.
    answer = engine_with(runtime, FakeListChatModel(responses=[invented])).ask("pharmacy", question)
    assert "canada" not in answer.text.lower()
    assert not verdict(answer.text)
    assert not any(verdict(s.text) for s in answer.sentences)


def test_a_question_naming_something_the_knowledge_base_never_mentions_is_not_found(runtime):
    answer = engine_with(runtime, ExplodingChatModel(responses=["never"])).ask(
        "pharmacy", "Can the pharmacy deliver to Canada?"
    )
    assert answer.status == "not_found"
    assert answer.note == "The knowledge base does not mention Canada."


def test_a_curated_pair_for_another_code_is_not_returned(runtime):
    model = FakeListChatModel(responses=["Code 79 means the refill was submitted too soon."])
    answer = engine_with(runtime, model).ask(
        "pharmacy", "The claim came back with code 79, what do I tell the patient?"
    )
    assert "79" in answer.text and "75" not in answer.text


def test_canada_with_the_real_local_model(runtime):
    answer = runtime.engine.ask("pharmacy", "Can the pharmacy deliver to Canada?")
    assert "canada" not in answer.text.lower()
    assert not verdict(answer.text)


def test_unsupported_generated_sentences_are_dropped_and_counted(runtime):
    model = FakeListChatModel(
        responses=["Standard delivery takes 3 to 5 business days. Every order also includes a free toothbrush."]
    )
    answer = engine_with(runtime, model).ask("pharmacy", "How long does standard delivery take to arrive?")
    assert "toothbrush" not in answer.text
    assert answer.dropped_sentences >= 1 or answer.mode == "curated"


def test_when_every_generated_sentence_fails_the_answer_is_extractive_and_cited(runtime):
    model = FakeListChatModel(responses=["Orders ship by drone from the moon within an hour."])
    answer = engine_with(runtime, model).ask("pharmacy", "What happens when a package is lost in the mail?")
    assert answer.mode in {"extractive", "not_found"}
    assert "moon" not in answer.text
    for sentence in answer.sentences:
        assert sentence.citations


def test_clinic_answers_come_only_from_clinic_documents(runtime):
    answer = runtime.engine.ask("clinic", "What does rejection code 75 mean?")
    assert all(s.doc_id.startswith("clinic/") for s in answer.sources)
    assert "prior authorization" not in answer.text.lower()


def test_unknown_tenant_is_a_clear_error(runtime):
    with pytest.raises(UnknownTenantError, match="unknown tenant 'hospital'"):
        runtime.engine.ask("hospital", "anything")


@pytest.mark.parametrize(
    "question,message", [("   ", "question is empty"), ("x" * 1001, r"too long \(1001 characters")]
)
def test_empty_and_oversized_questions_are_refused(runtime, question, message):
    with pytest.raises(InvalidQuestionError, match=message):
        runtime.engine.ask("pharmacy", question)
