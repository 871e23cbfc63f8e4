"""Question in, answer out: read the question, retrieve, then the reader quotes or the guarded LLM writes.

Who writes the answer is ``answer_mode`` (the tenant's, else the LLM config's):

* ``reader``: the reader (``careqa.reader``) quotes the Q&A pair or section that answers; no LLM call.
* ``generate``: the LLM writes from the retrieved passages; each sentence must pass the grounding guard;
  if none does, the reader's answer is given instead.
* ``auto``: the reader answers alone when it is confident (a pair whose question matches, or a unit far
  above the bar); otherwise the LLM writes from the reader's best units, guarded, with the reader's answer
  as the fallback. A busy LLM (its queue full) also falls back to the reader instead of failing.

Whatever the mode, the question's codes bind the answer ("code 88" is never answered with code 70), a code
the knowledge base does not list is "not found", and names it never mentions ("CVS") are said so in a note.

The answer is produced as a stream of events (sources, then each sentence as soon as it has passed its
checks, then the whole answer), so the service can show it as it comes; ``ask`` collects the stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from careqa.config import AnswerStrategy, PromptConfig, Settings
from careqa.errors import InvalidQuestionError
from careqa.grounding import GroundingGuard, passage_body, split_sentences
from careqa.prompting import build_messages
from careqa.query import Query, analyse, code_mentions, known_codes, tenant_glossary
from careqa.reader import Reader, Reading
from careqa.retrieve import HybridRetriever, Retrieval
from careqa.types import (
    Answer,
    AnswerEvent,
    AnswerMode,
    AnswerSentence,
    DoneEvent,
    Passage,
    SentenceEvent,
    Source,
    SourcesEvent,
    Timings,
)
from endpoints.errors import ModelThrottledError

NOT_FOUND = "Not found in the knowledge base."
SNIPPET_CHARS = 280
#: units offered to the LLM in auto mode: the reader's best qualifying ones
AUTO_CONTEXT_UNITS = 3

LinkFn = Callable[[str, str], str]


def _snippet(passage: Passage) -> str:
    text = " ".join(passage_body(passage).split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def validate_question(question: str, max_chars: int) -> str:
    """The question with its whitespace collapsed; empty (or only whitespace) or over ``max_chars`` is refused.

    The limit counts the characters as sent, as the API description's ``maxLength`` does.
    """
    cleaned = " ".join((question or "").split())
    if not cleaned:
        raise InvalidQuestionError("question is empty")
    if len(question) > max_chars:
        raise InvalidQuestionError(f"question is too long ({len(question)} characters; the limit is {max_chars})")
    return cleaned


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


@dataclass
class _Draft:
    """An answer being assembled: cited units (numbered in order) and sentences citing them."""

    cited: list[Passage] = field(default_factory=list)
    sentences: list[AnswerSentence] = field(default_factory=list)
    mode: AnswerMode = "not_found"
    notes: list[str] = field(default_factory=list)
    dropped: int = 0

    def cite(self, unit: Passage) -> int:
        """The unit's citation number: two chunks of one document at one link, or a Q&A pair and the section it
        was written from, are one source, not [1] and [2] pointing at the same page. Two Q&A pairs stay two
        sources: each answers its own question, under its own title."""
        for n, known in enumerate(self.cited, start=1):
            if known.chunk_id == unit.chunk_id or (known.doc_id, known.source_url) == (unit.doc_id, unit.source_url):
                return n
            pairs = {known.kind, unit.kind} <= {"question", "answer"}
            if unit.source_url and known.source_url == unit.source_url and not pairs:
                return n
        self.cited.append(unit)
        return len(self.cited)


class AnswerEngine:
    def __init__(
        self,
        settings: Settings,
        retriever: HybridRetriever,
        chat_model: BaseChatModel,
        guard: GroundingGuard,
        *,
        models: dict[str, str],
        base_model: bool,
        link: LinkFn = lambda tenant, url: url,
        reader: Reader | None = None,
        answer_mode: AnswerStrategy = "reader",
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.chat_model = chat_model
        self.guard = guard
        self.models = models
        self.base_model = base_model
        self.link = link
        self.reader = reader or Reader(
            guard.embeddings,
            settings.reader,
            min_evidence=settings.retrieval.min_evidence,
            curated_match=settings.retrieval.curated_match,
        )
        self.answer_mode = answer_mode

    def mode_for(self, tenant: str) -> AnswerStrategy:
        """Who writes this tenant's answers: the tenant's ``answer_mode``, else the engine's (the LLM config's)."""
        return self.settings.tenant(tenant).answer_mode or self.answer_mode

    # -- public API -------------------------------------------------------------------------------------

    def ask(self, tenant: str, question: str) -> Answer:
        """The whole answer (the stream, collected)."""
        answer: Answer | None = None
        for event in self.stream(tenant, question):
            if isinstance(event, DoneEvent):
                answer = event.answer
        assert answer is not None  # the stream always ends with the whole answer
        return answer

    def stream(self, tenant: str, question: str) -> Iterator[AnswerEvent]:
        """The answer as events: the sources, each sentence once it has passed its checks, the whole answer.

        Input errors (unknown tenant, empty or oversized question) raise before the first event.
        """
        started = time.perf_counter()
        tenant_cfg = self.settings.tenant(tenant)
        question = validate_question(question, self.settings.limits.max_question_chars)
        mode = self.mode_for(tenant)
        glossary = tenant_glossary(tenant_cfg.builtin_glossaries, tenant_cfg.glossary)
        retrieval = self.retriever.retrieve(tenant, analyse(question, glossary).expanded)
        timings = Timings(embed_ms=retrieval.embed_ms, retrieve_ms=retrieval.retrieve_ms)
        # Codes the knowledge base itself uses let "claim came back with 75" be read as code 75.
        known = known_codes(f"{u.title}\n{u.question or ''}\n{u.text}" for u in [*retrieval.units, *retrieval.passages])
        query = analyse(question, glossary, known_codes=known)

        t0 = time.perf_counter()
        reading = self.reader.read(
            query, self._parts(tenant, query, retrieval), known, tenant_cfg.min_score, tenant_cfg.min_lexical
        )
        timings.read_ms = (time.perf_counter() - t0) * 1000

        draft = _Draft()
        first_sentence_ms: float | None = None
        if reading.missing_codes:
            listed = ", ".join(reading.missing_codes)
            draft.notes.append(f"The knowledge base does not list code {listed}.")
        writes = mode == "generate" or (mode == "auto" and not reading.confident and reading.ranked)
        if retrieval.best_similarity < self.settings.retrieval.min_evidence and not reading.found:
            if not draft.notes:
                draft.notes.append("No passage in the knowledge base is close enough to this question.")
        elif writes and not (reading.missing_codes and not reading.found):
            events = self._generate(tenant, tenant_cfg.prompt, query, retrieval, reading, known, mode, draft, timings)
            for event in events:
                if first_sentence_ms is None and isinstance(event, SentenceEvent):
                    first_sentence_ms = (time.perf_counter() - started) * 1000
                yield event
        if not draft.sentences and reading.found:
            yield SourcesEvent(sources=self._sources(tenant, self._quote(reading, draft), retrieval, query))
            for sentence in draft.sentences:
                if first_sentence_ms is None:
                    first_sentence_ms = (time.perf_counter() - started) * 1000
                yield SentenceEvent(sentence=sentence)
        if draft.sentences and reading.rival and len(draft.cited) > 1:
            draft.notes.append(
                "Two places in the knowledge base match this question about equally well; both are quoted."
            )
        if draft.sentences and reading.unmentioned:
            draft.notes.append(f"The knowledge base does not mention {_join(reading.unmentioned)}.")
        if not draft.sentences and not draft.notes:
            draft.notes.append("No passage in the knowledge base answers this question.")

        answer = self._answer(tenant, draft, retrieval, query, timings)
        answer.timings.first_sentence_ms = first_sentence_ms
        answer.timings.total_ms = (time.perf_counter() - started) * 1000
        yield DoneEvent(answer=answer)

    # -- reading --------------------------------------------------------------------------------------

    def _parts(
        self, tenant: str, query: Query, retrieval: Retrieval
    ) -> list[tuple[str, Sequence[float], Sequence[Passage]]]:
        """(text, vector, candidate units) for each part of the question; one retrieval per extra part."""
        if not query.is_multi_part:
            return [(query.expanded, retrieval.query_vector, retrieval.units)]
        parts = []
        whole = retrieval.query_vector
        for part, vector in zip(query.parts, self.retriever.embeddings.embed_documents(list(query.parts)), strict=True):
            # A part alone loses its context ("how long does the mail take", of a yearly statement): it is
            # searched with its own vector and the whole question's, blended.
            blended = [a + b for a, b in zip(vector, whole, strict=True)]
            norm = sum(x * x for x in blended) ** 0.5 or 1.0
            found = self.retriever.retrieve(tenant, part, vector=[x / norm for x in blended])
            parts.append((part, found.query_vector, found.units))
        return parts

    @staticmethod
    def _quote(reading: Reading, draft: _Draft) -> _Draft:
        for quote in reading.quotes:
            n = draft.cite(quote.unit)
            draft.sentences.extend(AnswerSentence(text=s, citations=[n]) for s in quote.sentences)
        whole = all(q.whole for q in reading.quotes)
        draft.mode = "curated" if whole else "extractive"
        return draft

    # -- writing --------------------------------------------------------------------------------------

    def _generate(
        self,
        tenant: str,
        prompt: PromptConfig,
        query: Query,
        retrieval: Retrieval,
        reading: Reading,
        known: set[str],
        mode: AnswerStrategy,
        draft: _Draft,
        timings: Timings,
    ) -> Iterator[AnswerEvent]:
        """The LLM's answer, sentence by sentence as each passes the guard (nothing when none passes)."""
        if mode == "auto":
            bar = self.settings.tenant(tenant).min_score
            passages = [s.unit for s in reading.ranked if self.reader.qualifies(s, bar)][:AUTO_CONTEXT_UNITS]
        else:
            passages = list(retrieval.passages)
            if query.codes:
                passages = [p for p in passages if set(query.codes) & set(code_mentions(p.text, known=known))] or [
                    s.unit for s in reading.ranked[:AUTO_CONTEXT_UNITS]
                ]
        if not passages:
            return
        on_topic = self.on_topic(reading, passages)
        messages = build_messages(prompt, passages, query.expanded, base_model=self.base_model)
        t0 = time.perf_counter()
        kept: list[str] = []
        sent_sources = False
        try:
            buffer = ""
            for piece in self.chat_model.stream(messages):
                buffer += str(piece.content)
                complete = split_sentences(buffer)
                # every sentence but the last is finished once the next one has begun (the rest of the buffer,
                # its whitespace kept, is the unfinished one)
                ready = complete[:-1]
                if ready:
                    buffer = buffer[buffer.rindex(complete[-1]) :]
                for event in self._checked(ready, passages, retrieval, query, known, on_topic, draft, kept, timings):
                    if not sent_sources:
                        yield SourcesEvent(sources=self._numbered(tenant, passages))
                        sent_sources = True
                    yield event
            for event in self._checked([buffer], passages, retrieval, query, known, on_topic, draft, kept, timings):
                if not sent_sources:
                    yield SourcesEvent(sources=self._numbered(tenant, passages))
                    sent_sources = True
                yield event
        except ModelThrottledError:
            if mode != "auto" or sent_sources:
                raise
            draft.notes.append("The language model is busy; this answer is quoted from the sources.")
            return
        finally:
            timings.generate_ms = (time.perf_counter() - t0) * 1000 - timings.check_ms
        if draft.sentences:
            draft.mode = "generated"
        else:
            draft.cited = []
            draft.notes.append("The model's answer could not be verified; these sentences are quoted from the sources.")

    def on_topic(self, reading: Reading, passages: Sequence[Passage]) -> set[int]:
        """Numbers of the passages the reader ranks close to its best unit.

        True sentences of the others answer other questions, as "Schedule II prescriptions cannot be
        transferred" does for "can Schedule II meds be put on auto-refill?".
        """
        best = reading.ranked[0].score if reading.ranked else 0.0
        scores: dict[str, float] = {}
        for scored in reading.ranked:
            scores.setdefault(scored.unit.chunk_id, scored.score)
            scores.setdefault(scored.unit.doc_id, scored.score)
        margin = self.settings.guard.topic_margin
        return {
            n
            for n, p in enumerate(passages, start=1)
            if scores.get(p.chunk_id, scores.get(p.doc_id, -1.0)) >= best - margin
        }

    def _checked(
        self,
        texts: Sequence[str],
        passages: Sequence[Passage],
        retrieval: Retrieval,
        query: Query,
        known: set[str],
        on_topic: set[int],
        draft: _Draft,
        kept: list[str],
        timings: Timings,
    ) -> Iterator[SentenceEvent]:
        text = " ".join(t for t in texts if t.strip())
        if not text:
            return
        t0 = time.perf_counter()
        checks = self.guard.check(
            text,
            passages,
            retrieval.query_vector,
            codes=query.codes,
            known_codes=known,
            on_topic=on_topic,
            question=query.expanded,
        )
        timings.check_ms += (time.perf_counter() - t0) * 1000
        for c in checks:
            norm = " ".join(c.text.lower().rstrip(".!").split())
            # Small models repeat themselves; a sentence contained in one already kept adds nothing.
            if not c.supported:
                draft.dropped += 1
                continue
            if any(norm in k or k in norm for k in kept):
                continue
            kept.append(norm)
            unit = passages[(c.citation or 1) - 1]
            sentence = AnswerSentence(text=c.text, citations=[draft.cite(unit)])
            draft.sentences.append(sentence)
            # streamed with the passage numbering of the sources event; the final answer renumbers
            yield SentenceEvent(sentence=AnswerSentence(text=c.text, citations=[c.citation or 1]))

    # -- sources and the final answer ----------------------------------------------------------------

    def _source(self, tenant: str, n: int, p: Passage, cited: bool) -> Source:
        return Source(
            n=n,
            title=p.title,
            url=self.link(tenant, p.source_url),
            snippet=_snippet(p),
            score=round(p.similarity, 4),
            doc_id=p.doc_id,
            cited=cited,
        )

    def _related(self, retrieval: Retrieval, query: Query, cited: Sequence[Passage]) -> list[Passage]:
        """Retrieved documents not cited, above the evidence bar, naming the question's codes.

        For "code 75", the pages about codes 65 and 79 are near in embedding space and no help.
        """
        seen = {p.doc_id for p in cited}
        wanted = set(query.codes)
        related = []
        for p in retrieval.passages:
            if p.doc_id in seen:
                continue
            if cited and p.similarity < self.settings.retrieval.min_evidence:
                continue
            if cited and wanted and not wanted <= set(code_mentions(f"{p.title}\n{p.text}", known=wanted)):
                continue
            related.append(p)
            seen.add(p.doc_id)
        return related

    def _numbered(self, tenant: str, passages: Sequence[Passage]) -> list[Source]:
        """The passages given to the LLM, numbered as its prompt numbers them (and its sentences cite them)."""
        return [self._source(tenant, n, p, False) for n, p in enumerate(passages, start=1)]

    def _sources(self, tenant: str, draft: _Draft, retrieval: Retrieval, query: Query) -> list[Source]:
        """Cited units in citation order (numbered 1..n as cited), then related documents."""
        cited = [self._source(tenant, n, p, True) for n, p in enumerate(draft.cited, start=1)]
        related = self._related(retrieval, query, draft.cited)
        return cited + [self._source(tenant, len(cited) + i, p, False) for i, p in enumerate(related, start=1)]

    def _answer(self, tenant: str, draft: _Draft, retrieval: Retrieval, query: Query, timings: Timings) -> Answer:
        # Citations in order of first use, so the answer reads [1], [2], ... and the sources match.
        order: list[int] = []
        for sentence in draft.sentences:
            for c in sentence.citations:
                if c not in order:
                    order.append(c)
        draft.cited = [draft.cited[c - 1] for c in order]
        sentences = [
            AnswerSentence(text=s.text, citations=sorted({order.index(c) + 1 for c in s.citations}))
            for s in draft.sentences
        ]
        text = " ".join(f"{s.text} [{', '.join(str(c) for c in s.citations)}]" for s in sentences) or NOT_FOUND
        return Answer(
            answer_id=uuid.uuid4().hex,
            tenant=tenant,
            status="answered" if sentences else "not_found",
            mode=draft.mode if sentences else "not_found",
            text=text,
            sentences=sentences,
            sources=self._sources(tenant, draft, retrieval, query),
            dropped_sentences=draft.dropped,
            note=" ".join(draft.notes) or None,
            models=self.models,
            timings=timings,
        )
