"""Question in, grounded answer out: retrieve → prompt → generate → check, with honest fallbacks.

Order of preference: the curated answer of a Q&A pair whose question matches strongly; else the
model's sentences that pass the grounding guard; else the passage sentences closest to the question
(extractive); else "not found in the knowledge base" with the closest documents.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from langchain_core.language_models import BaseChatModel

from careqa.config import Settings
from careqa.errors import InvalidQuestionError
from careqa.grounding import GroundingGuard, content_terms, key_words, passage_body, split_sentences
from careqa.prompting import build_messages
from careqa.retrieve import HybridRetriever
from careqa.types import Answer, AnswerSentence, Passage, Source, Timings

NOT_FOUND = "Not found in the knowledge base."
SNIPPET_CHARS = 280

LinkFn = Callable[[str, str], str]


def _snippet(passage: Passage) -> str:
    text = " ".join(passage_body(passage).split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def validate_question(question: str, max_chars: int) -> str:
    cleaned = " ".join((question or "").split())
    if not cleaned:
        raise InvalidQuestionError("question is empty")
    if len(cleaned) > max_chars:
        raise InvalidQuestionError(f"question is too long ({len(cleaned)} characters; the limit is {max_chars})")
    return cleaned


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
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.chat_model = chat_model
        self.guard = guard
        self.models = models
        self.base_model = base_model
        self.link = link

    def _sources(self, tenant: str, passages: Sequence[Passage], order: Sequence[int], keys: set[str]) -> list[Source]:
        """Sources in citation order (numbered 1..n as cited), then related documents above the evidence bar.

        A related document must also contain the question's codes and names: for "code 75", the pages about
        codes 65 and 79 are near in embedding space and no help.
        """
        chosen = list(order) + [
            i
            for i, p in enumerate(passages)
            if i not in order
            and (
                not order
                or (
                    p.similarity >= self.settings.retrieval.min_evidence
                    and keys <= content_terms(f"{p.title} {p.text}")
                )
            )
        ]
        return [
            Source(
                n=n,
                title=passages[i].title,
                url=self.link(tenant, passages[i].source_url),
                snippet=_snippet(passages[i]),
                score=round(passages[i].similarity, 4),
                doc_id=passages[i].doc_id,
                cited=i in order,
            )
            for n, i in enumerate(chosen, start=1)
        ]

    def ask(self, tenant: str, question: str) -> Answer:
        started = time.perf_counter()
        tenant_cfg = self.settings.tenant(tenant)
        question = validate_question(question, self.settings.limits.max_question_chars)
        retrieval = self.retriever.retrieve(tenant, question)
        passages = retrieval.passages
        timings = Timings(embed_ms=retrieval.embed_ms, retrieve_ms=retrieval.retrieve_ms)
        sentences: list[AnswerSentence] = []
        dropped = 0
        mode = "not_found"
        note: str | None = None
        # A question that names something (a number, a code, a place, a product) that no retrieved passage
        # mentions cannot be answered from them, however similar the rest of the wording is.
        named = key_words(question)
        keys = set(named)
        known = set().union(*(content_terms(f"{p.title} {p.text}") for p in passages)) if passages else set()
        unknown = sorted(keys - known)

        if not passages or retrieval.best_similarity < self.settings.retrieval.min_evidence:
            note = "No passage in the knowledge base is close enough to this question."
        elif unknown:
            note = f"The knowledge base does not mention {', '.join(named[k] for k in unknown)}."
        else:
            # Embeddings barely tell "code 65" from "code 75": a curated pair must also contain every
            # number, code and name of the question, or it is not the pair that was asked about.
            curated = max(
                (
                    p
                    for p in passages
                    if p.kind in {"question", "answer"}
                    and p.question_similarity is not None
                    and keys <= content_terms(f"{p.question} {p.text}")
                ),
                key=lambda p: p.question_similarity or -1.0,
                default=None,
            )
            if curated is not None and (curated.question_similarity or -1.0) >= self.settings.retrieval.curated_match:
                n = passages.index(curated) + 1
                sentences = [AnswerSentence(text=s, citations=[n]) for s in split_sentences(passage_body(curated))]
                mode = "curated"
            else:
                t0 = time.perf_counter()
                messages = build_messages(tenant_cfg.prompt, passages, question, base_model=self.base_model)
                generated = str(self.chat_model.invoke(messages).content)
                t1 = time.perf_counter()
                checks = self.guard.check(generated, passages, retrieval.query_vector)
                kept: dict[str, AnswerSentence] = {}
                for c in checks:
                    norm = " ".join(c.text.lower().rstrip(".!").split())
                    # Small models repeat themselves; a sentence contained in one already kept adds nothing.
                    if c.supported and not any(norm in k or k in norm for k in kept):
                        kept[norm] = AnswerSentence(text=c.text, citations=[c.citation or 1])
                dropped = sum(not c.supported for c in checks)
                if kept:
                    sentences = list(kept.values())
                    mode = "generated"
                else:
                    extracted = self.guard.extract(retrieval.query_vector, passages, keys=keys)
                    if extracted:
                        sentences = [AnswerSentence(text=s, citations=[n]) for s, n in extracted]
                        mode = "extractive"
                        note = "The model's answer could not be verified; these sentences are quoted from the sources."
                    else:
                        note = "No sentence in the closest passages answers this question."
                timings.generate_ms = (t1 - t0) * 1000
                timings.check_ms = (time.perf_counter() - t1) * 1000

        # Renumber citations in order of first use, so the answer reads [1], [2], ... and the sources match.
        order: list[int] = []
        for sentence in sentences:
            for c in sentence.citations:
                if c - 1 not in order:
                    order.append(c - 1)
        sentences = [
            AnswerSentence(text=s.text, citations=sorted({order.index(c - 1) + 1 for c in s.citations}))
            for s in sentences
        ]
        if not sentences:
            text = NOT_FOUND
        else:
            text = " ".join(f"{s.text} [{', '.join(str(c) for c in s.citations)}]" for s in sentences)
        timings.total_ms = (time.perf_counter() - started) * 1000
        return Answer(
            answer_id=uuid.uuid4().hex,
            tenant=tenant,
            status="answered" if sentences else "not_found",
            mode=mode,  # type: ignore[arg-type]
            text=text,
            sentences=sentences,
            sources=self._sources(tenant, passages, order, keys),
            dropped_sentences=dropped,
            note=note,
            models=self.models,
            timings=timings,
        )
