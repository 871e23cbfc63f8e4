"""The grounding guard: every sentence shown must be supported by a retrieved passage.

A generated sentence is kept only when one passage (a) contains at least ``min_coverage`` of its
content words (stemmed) and *every* number, code and proper name in it, (b) has a sentence whose
embedding is at least ``min_similarity`` from it, and (c) agrees with that sentence on negation.
Leading "Yes," / "No," are removed: a passage can support a statement, not a verdict on a question
it never mentions. The same guard runs whichever model wrote the text, local or JumpStart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import snowballstemmer
from langchain_core.embeddings import Embeddings
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from careqa.config import GuardConfig
from careqa.types import Passage

_stemmer = snowballstemmer.stemmer("english")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_CITATION = re.compile(r"\s*\[(?:\d+\s*(?:,\s*|-\s*)?)+\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_VERDICT = re.compile(r"^(?:yes|no|yeah|nope|correct|incorrect|true|false)\b[\s,.!:;-]*", re.IGNORECASE)
_NEGATIONS = {"not", "no", "never", "cannot", "nor", "without", "none", "neither", "nothing", "unable"}
_STOP = ENGLISH_STOP_WORDS - _NEGATIONS
#: a sentence with fewer content words than this says too little to be checked ("The claim was rejected.")
MIN_CONTENT_TERMS = 3


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, treating line breaks and list bullets as boundaries too."""
    out: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line).strip()
        if line:
            out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def _words(text: str) -> list[str]:
    return [w.replace("’", "'") for w in _WORD.findall(text)]


def _negated(words: Sequence[str]) -> bool:
    return any(w.lower() in _NEGATIONS or w.lower().endswith("n't") for w in words)


def content_terms(text: str) -> set[str]:
    """Stemmed content words of a text (stop words dropped, negations kept)."""
    return {
        _stemmer.stemWord(w.lower()) for w in _words(text) if w.lower() not in _STOP and (len(w) > 1 or w.isdigit())
    }


def key_words(sentence: str) -> dict[str, str]:
    """Numbers, codes and capitalised names in a sentence, by stem, with the word as written."""
    words = _words(sentence)
    keys: dict[str, str] = {}
    for i, w in enumerate(words):
        if any(ch.isdigit() for ch in w) or (i > 0 and w[0].isupper() and w.lower() not in _STOP):
            keys.setdefault(_stemmer.stemWord(w.lower()), w)
    return keys


def key_terms(sentence: str) -> set[str]:
    """Terms a supporting passage must contain verbatim: numbers, codes and capitalised names."""
    return set(key_words(sentence))


def clean_generated(text: str) -> str:
    """Strip citation markers and echoed labels; the guard assigns citations itself."""
    text = _CITATION.sub("", text)
    text = re.sub(r"^\s*(?:Answer|A)\s*:\s*", "", text.strip())
    return text.strip()


def strip_verdict(sentence: str) -> str:
    """Drop a leading yes/no: the supported statement stays, the unsupported verdict goes."""
    rest = _VERDICT.sub("", sentence).strip()
    return rest[:1].upper() + rest[1:] if rest else ""


@dataclass
class SentenceCheck:
    text: str
    supported: bool
    citation: int | None
    similarity: float
    coverage: float
    reason: str


@dataclass
class _PassageView:
    sentences: list[str]
    terms: set[str]
    body: list[str]


def passage_body(passage: Passage) -> str:
    """A passage's text without its label line (the section heading or the Q&A question)."""
    lines = passage.text.split("\n", 1)
    return lines[1] if len(lines) > 1 else lines[0]


class GroundingGuard:
    def __init__(self, embeddings: Embeddings, config: GuardConfig) -> None:
        self.embeddings = embeddings
        self.config = config

    def _views(self, passages: Sequence[Passage]) -> list[_PassageView]:
        return [
            _PassageView(
                sentences=split_sentences(p.text),
                terms=content_terms(p.text + " " + p.title),
                body=split_sentences(passage_body(p)),
            )
            for p in passages
        ]

    def check(
        self, generated: str, passages: Sequence[Passage], query_vector: Sequence[float] | None = None
    ) -> list[SentenceCheck]:
        """Check each generated sentence against the passages; citations are 1-based passage numbers.

        With ``query_vector``, a supported sentence must also be about the question: small models copy
        true but irrelevant sentences from the passages.
        """
        candidates = [strip_verdict(s) for s in split_sentences(clean_generated(generated))]
        candidates = [s for s in candidates if s]
        if not candidates or not passages:
            return [SentenceCheck(s, False, None, 0.0, 0.0, "no passages") for s in candidates]
        views = self._views(passages)
        flat = [s for v in views for s in v.sentences]
        vectors = self.embeddings.embed_documents(candidates + flat)
        cand_vecs, flat_vecs = vectors[: len(candidates)], vectors[len(candidates) :]
        offsets, pos = [], 0
        for v in views:
            offsets.append((pos, pos + len(v.sentences)))
            pos += len(v.sentences)

        results = []
        for sentence, svec in zip(candidates, cand_vecs, strict=True):
            terms, keys = content_terms(sentence), key_terms(sentence)
            if sentence.rstrip("\"')]").endswith("?"):
                results.append(SentenceCheck(sentence, False, None, 0.0, 0.0, "a question, not an answer"))
                continue
            if not sentence.rstrip("\"')]").endswith((".", "!")):
                results.append(SentenceCheck(sentence, False, None, 0.0, 0.0, "an unfinished sentence"))
                continue
            if len(terms) < MIN_CONTENT_TERMS:
                results.append(SentenceCheck(sentence, False, None, 0.0, 0.0, "no checkable content"))
                continue
            best: SentenceCheck | None = None
            fallback_reason = "no passage supports it"
            for n, (view, (lo, hi)) in enumerate(zip(views, offsets, strict=True), start=1):
                coverage = len(terms & view.terms) / len(terms)
                sims = [sum(a * b for a, b in zip(svec, flat_vecs[i], strict=True)) for i in range(lo, hi)]
                if not sims:
                    continue
                top = max(range(len(sims)), key=sims.__getitem__)
                similarity = sims[top]
                if not keys <= view.terms:
                    fallback_reason = f"names {sorted(keys - view.terms)} that no passage contains"
                    continue
                if coverage < self.config.min_coverage or similarity < self.config.min_similarity:
                    continue
                if _negated(_words(sentence)) != _negated(_words(view.sentences[top])):
                    fallback_reason = "contradicts the passage's negation"
                    continue
                if best is None or similarity > best.similarity:
                    best = SentenceCheck(sentence, True, n, similarity, coverage, "supported")
            if best is not None and query_vector is not None:
                relevance = sum(a * b for a, b in zip(svec, query_vector, strict=True))
                if relevance < self.config.min_relevance:
                    best = SentenceCheck(
                        sentence, False, None, best.similarity, best.coverage, "not about the question"
                    )
            results.append(best or SentenceCheck(sentence, False, None, 0.0, 0.0, fallback_reason))
        return results

    def extract(
        self, query_vector: Sequence[float], passages: Sequence[Passage], limit: int = 2, keys: set[str] | None = None
    ) -> list[tuple[str, int]]:
        """The passage sentences closest to the question: an answer that is supported by construction.

        Sentences that contain the question's key terms (``keys``: its numbers, codes and names) come first,
        because embeddings barely distinguish "code 75" from "code 79".
        """
        views = self._views(passages)
        pairs = [
            (s, n)
            for n, v in enumerate(views, start=1)
            for s in v.body
            if len(content_terms(s)) >= MIN_CONTENT_TERMS and not s.rstrip().endswith("?")
        ]
        if not pairs:
            return []
        vectors = self.embeddings.embed_documents([s for s, _ in pairs])
        scored = []
        for (sentence, n), vector in zip(pairs, vectors, strict=True):
            similarity = sum(a * b for a, b in zip(query_vector, vector, strict=True))
            has_keys = bool(keys) and keys <= content_terms(sentence)  # type: ignore[operator]
            scored.append((has_keys, similarity, sentence, n))
        if any(has_keys for has_keys, *_ in scored):
            scored = [t for t in scored if t[0]]  # another code's sentence is not an answer about this one
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        chosen: list[tuple[str, int]] = []
        for _, similarity, sentence, n in scored:
            if similarity >= self.config.extractive_min_similarity and all(sentence != c for c, _ in chosen):
                chosen.append((sentence, n))
        return chosen[:limit]
