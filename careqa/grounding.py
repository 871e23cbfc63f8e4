"""The grounding guard: every sentence shown must be supported by a retrieved passage.

A generated sentence is kept only when one passage (a) contains at least ``min_coverage`` of its
content words (stemmed) and *every* number, code and proper name in it, (b) has a sentence whose
embedding is at least ``min_similarity`` from it, and (c) agrees with that sentence on negation.
Leading "Yes," / "No," are removed: a passage can support a statement, not a verdict on a question
it never mentions. The same guard runs whichever model wrote the text, local or JumpStart.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import snowballstemmer
from langchain_core.embeddings import Embeddings
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from careqa.config import GuardConfig
from careqa.query import code_mentions
from careqa.types import Passage

#: one Snowball stemmer per thread: a stemmer keeps the word it is working on in itself, so threads sharing one
#: (the service answers in a thread pool) corrupt each other's stems, or fail with an IndexError
_stemmers = threading.local()
#: a word, or an initialism written with full stops ("P.O.", "U.S."), which reads as one word ("PO", "US")
_WORD = re.compile(r"(?:[A-Za-z]\.){2,}|[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_CITATION = re.compile(r"\s*\[(?:\d+\s*(?:,\s*|-\s*)?)+\]")
#: a sentence ends at ., ! or ? (and any closing quotes or brackets, which stay with it) before a capital or digit
_SENTENCE_END = re.compile(r"[.!?][\"'’”)\]]*(?=\s+[\"'“(\[]?[A-Z0-9])")
#: abbreviations after which a full stop does not end a sentence
_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "vs", "e.g", "i.e", "etc", "approx", "dept", "inc", "jr", "a.m", "p.m"}
)
_VERDICT = re.compile(r"^(?:yes|no|yeah|nope|correct|incorrect|true|false)\b[\s,.!:;-]*", re.IGNORECASE)
_NEGATIONS = {"not", "no", "never", "cannot", "nor", "without", "none", "neither", "nothing", "unable"}
#: how agents' questions are framed, which no general English list has: "does it", "whats the", "got a reject"
_CHAT_WORDS = {"does", "did", "doing", "whats", "hows", "whos", "wheres", "im", "ive", "got", "pls", "plz", "ok"}
_STOP = (ENGLISH_STOP_WORDS | _CHAT_WORDS) - _NEGATIONS
#: a sentence with fewer content words than this says too little to be checked ("The claim was rejected.")
MIN_CONTENT_TERMS = 3


def _split_line(line: str) -> list[str]:
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        words = line[start : match.start()].split()
        if match.group(0).startswith(".") and words and words[-1].lower().rstrip(".") in _ABBREVIATIONS:
            continue
        sentences.append(line[start : match.end()].strip())
        start = match.end()
    sentences.append(line[start:].strip())
    return [s for s in sentences if s]


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, treating line breaks and list bullets as boundaries too.

    Closing quotes stay with their sentence ('... the note "Reject 88 - DUR."'), and a full stop after a
    common abbreviation ("Dr.", "e.g.") does not end one.
    """
    out: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line).strip()
        if line:
            out.extend(_split_line(line))
    return out


def _words(text: str) -> list[str]:
    return [w.replace("’", "'").replace(".", "") for w in _WORD.findall(text)]


def _negations(text: str) -> int:
    """How many negations a sentence has: removing one of two ("not eligible ... no refills left") flips it too."""
    return sum(1 for w in _words(text) if w.lower() in _NEGATIONS or w.lower().endswith("n't"))


_NUMBER_TOKEN = re.compile(r"\d+(?:\.\d+)?")


def reordered_numbers(sentence: str, source: str) -> bool:
    """Whether the sentence has the source's numbers in another order ("5 a.m. to 8 p.m." for "8 a.m. to 5 p.m.")."""
    mine = list(dict.fromkeys(_NUMBER_TOKEN.findall(sentence)))
    theirs = [n for n in dict.fromkeys(_NUMBER_TOKEN.findall(source)) if n in mine]
    return len(theirs) > 1 and [n for n in mine if n in theirs] != theirs


@functools.lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    """The English Snowball stem of a word, with this thread's own stemmer (remembered: the knowledge base's
    words come back question after question)."""
    stemmer = getattr(_stemmers, "stemmer", None)
    if stemmer is None:
        stemmer = _stemmers.stemmer = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


def content_terms(text: str) -> set[str]:
    """Stemmed content words of a text (stop words dropped, negations kept)."""
    return {stem(w.lower()) for w in _words(text) if w.lower() not in _STOP and (len(w) > 1 or w.isdigit())}


#: words an agent frames a question with ("pt asking ...", "wants to know what ... means"): never a topic
_FRAMING = frozenset(
    {"ask", "asks", "asked", "asking", "want", "wants", "wanted", "wondering", "wonders", "know", "knows"}
    | {"say", "says", "said", "saying", "tell", "tells", "told", "happen", "happens", "happened", "mean", "means"}
)


#: the framing words' stems, to leave out of a question's content words
FRAMING_TERMS = frozenset(stem(w) for w in _FRAMING)


def phrases(text: str, *, max_gap: int = 2) -> set[tuple[str, str]]:
    """Pairs of stemmed content words that follow each other in a text, apart by at most ``max_gap`` other
    words ("refill too soon" -> (refil, soon); "early refill window" -> (earli, refil), (refil, window)).

    Framing words ("asking", "wants", "means") are gaps, not content; a line break ends a phrase.
    """
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        previous: str | None = None
        gap = 0
        for word in _words(line):
            lower = word.lower()
            if lower in _STOP or lower in _FRAMING or not (len(lower) > 1 or lower.isdigit()):
                gap += 1
                continue
            term = stem(lower)
            if previous is not None and gap <= max_gap and term != previous:
                found.add((previous, term))
            previous, gap = term, 0
    return found


def key_words(sentence: str) -> dict[str, str]:
    """Numbers, codes and capitalised names in a sentence, by stem, with the word as written."""
    words = _words(sentence)
    keys: dict[str, str] = {}
    for i, w in enumerate(words):
        if any(ch.isdigit() for ch in w) or (i > 0 and w[0].isupper() and w.lower() not in _STOP):
            keys.setdefault(stem(w.lower()), w)
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


_CLAUSE_BREAK = re.compile(r"[,;:()]|\s(?:and|or|but|while|whereas|then)\s", re.IGNORECASE)


def _clauses(text: str) -> list[tuple[set[str], set[str]]]:
    """(numbers, content terms) of each clause of a sentence."""
    out = []
    for clause in _CLAUSE_BREAK.split(text):
        terms = content_terms(clause)
        out.append(({t for t in terms if any(ch.isdigit() for ch in t)}, terms))
    return out


def _misattributed(generated: list[tuple[set[str], set[str]]], source: list[tuple[set[str], set[str]]]) -> bool:
    """Whether a generated piece's number sits with words the source says of another number (see below)."""
    for numbers, terms in generated:
        words = {t for t in terms if not any(ch.isdigit() for ch in t)}
        for number in numbers:
            owners = [t for nums, t in source if number in nums]
            if not owners:
                continue
            own_share = max(len(words & t) for t in owners)
            for nums, other in source:
                if nums and number not in nums and not nums & numbers and len(words & other) > own_share:
                    return True
    return False


def swapped_numbers(sentence: str, source: str, passage: Sequence[str] = ()) -> bool:
    """Whether ``sentence`` attaches a number of ``source`` to what its passage says of another number.

    "Urgent requests take 72 hours" against "standard decisions arrive within 72 hours, urgent requests
    within 24 hours": the sentence's words around 72 ("urgent requests") are those of the clause with 24.
    Across the passage's sentences (``passage``) the same holds sentence by sentence: "Expedited requests
    are decided within 72 hours" shares more words with the expedited sentence (24 hours) than with the
    standard one (72 hours).
    """
    if _misattributed(_clauses(sentence), _clauses(source)):
        return True
    whole = content_terms(sentence)
    sentences = [content_terms(s) for s in passage]
    return _misattributed(
        [({t for t in whole if any(ch.isdigit() for ch in t)}, whole)],
        [({t for t in terms if any(ch.isdigit() for ch in t)}, terms) for terms in sentences],
    )


_NEGATION_TERMS = frozenset(_NEGATIONS)
_NEGATION_CLAUSE = re.compile(
    r"[,;:()]|\b(?:if|when|unless|and|or|but|while|whereas|because|so|after|before|until)\b", re.IGNORECASE
)


def negation_conflict(sentence: str, sources: Sequence[str]) -> bool:
    """Whether a clause of ``sentence`` has another number of negations than the passage clause it restates.

    Clause by clause, because a sentence can take its condition from one passage sentence and its action
    from another: "If a code is in the procedure, escalate ..." restates "If a code is not listed here".
    """
    clauses = [(content_terms(c) - _NEGATION_TERMS, _negations(c)) for s in sources for c in _NEGATION_CLAUSE.split(s)]
    for clause in _NEGATION_CLAUSE.split(sentence):
        # a clause of one content word counts too: "if there is not no update after 2 business days" splits
        # at "after", and its negations are all in "there is not no update"
        terms = content_terms(clause) - _NEGATION_TERMS
        if not terms:
            continue
        overlap, negations = max(((len(terms & t) / len(terms | t), n) for t, n in clauses if t), default=(0.0, 0))
        if overlap >= 0.3 and negations != _negations(clause):
            return True
    return False


def unsupported_clause(sentence: str, sources: Sequence[str], min_share: float) -> bool:
    """Whether a clause of ``sentence`` has under ``min_share`` of its content words in any one source sentence.

    A sentence can restate its passage closely enough overall and still add a claim of its own: "marks the
    prescription inactive so it can be filled in two places" against a passage that never says what marking
    it inactive is for, or "which insurance does cover" after a fee the passage says nothing more of. Every
    clause with two content words or more must be stated by some sentence of the passage.
    """
    if min_share <= 0:
        return False
    stated = [content_terms(s) - _NEGATION_TERMS for s in sources]
    for clause in _NEGATION_CLAUSE.split(sentence):
        terms = content_terms(clause) - _NEGATION_TERMS
        if len(terms) < 2:
            continue
        if max((len(terms & t) / len(terms) for t in stated), default=0.0) < min_share:
            return True
    return False


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
    labelled: bool = False  # the first sentence is the passage's label line (a heading or a pair's question)
    label_terms: set[str] = field(default_factory=set)


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
                sentences=[label, *split_sentences(passage_body(p))] if "\n" in p.text else split_sentences(p.text),
                terms=content_terms(p.text + " " + p.title),
                body=split_sentences(passage_body(p)),
                labelled="\n" in p.text,
                label_terms=content_terms(label) if "\n" in p.text else set(),
            )
            for p in passages
            for label in [p.text.split("\n", 1)[0]]
        ]

    def check(
        self,
        generated: str,
        passages: Sequence[Passage],
        query_vector: Sequence[float] | None = None,
        *,
        codes: Sequence[str] = (),
        known_codes: Iterable[str] = (),
        on_topic: Iterable[int] | None = None,
        question: str | None = None,
    ) -> list[SentenceCheck]:
        """Check each generated sentence against the passages; citations are 1-based passage numbers.

        With ``query_vector``, a supported sentence must also be about the question: small models copy
        true but irrelevant sentences from the passages. With ``codes`` (the codes the question names), a
        sentence naming another code is dropped, and only passages naming the question's codes support
        anything. With ``on_topic`` (passage numbers), only those passages may support a sentence: the
        others are true but answer another question. With ``question``, a sentence using a word of the
        question that no passage uses is dropped: the model took it from the question ("does the clinic take
        walk-ins" -> "The clinic does not take walk insurance."), so nothing in the knowledge base says it.
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
        wanted = {c.upper() for c in codes}
        known = {c.upper() for c in known_codes} | wanted
        allowed = set(on_topic) if on_topic is not None else None
        passage_codes = [set(code_mentions(f"{p.title}\n{p.text}", known=known)) for p in passages]
        unsupported = content_terms(question) - set().union(*(v.terms for v in views)) if question else set()

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
            borrowed = sorted(terms & unsupported)
            if borrowed:
                reason = f"uses {', '.join(borrowed)} from the question, which no passage mentions"
                results.append(SentenceCheck(sentence, False, None, 0.0, 0.0, reason))
                continue
            other_codes = sorted(set(code_mentions(sentence, known=known)) - wanted) if wanted else []
            if other_codes:
                reason = f"about code {', '.join(other_codes)}; the question asks about {', '.join(sorted(wanted))}"
                results.append(SentenceCheck(sentence, False, None, 0.0, 0.0, reason))
                continue
            numbers = {k for k in keys if any(ch.isdigit() for ch in k)}
            best: SentenceCheck | None = None
            fallback_reason = "no passage supports it"
            for n, (view, (lo, hi)) in enumerate(zip(views, offsets, strict=True), start=1):
                if wanted and not wanted & passage_codes[n - 1]:
                    continue  # a passage about another code supports nothing said about this one
                coverage = len(terms & view.terms) / len(terms)
                # the passage's own sentences (its label line, a heading or a pair's question, gives context only)
                first = 1 if view.labelled else 0
                sims = [sum(a * b for a, b in zip(svec, flat_vecs[i], strict=True)) for i in range(lo + first, hi)]
                body = view.sentences[first:]
                if not sims:
                    continue
                if not keys <= view.terms:
                    fallback_reason = f"names {sorted(keys - view.terms)} that no passage contains"
                    continue
                closest = max(range(len(sims)), key=sims.__getitem__)
                top = closest
                if numbers:
                    # Numbers must stand together in one passage sentence, which says what the sentence says of
                    # them: "day 23 of a 90-day supply" takes its numbers from two statements, and "urgent
                    # requests take 72 hours" borrows the number of the standard requests' sentence.
                    holding = [i for i in range(len(body)) if numbers <= content_terms(body[i]) | view.label_terms]
                    if not holding:
                        fallback_reason = "combines numbers from different statements"
                        continue
                    top = max(holding, key=sims.__getitem__)
                    statement = content_terms(body[top]) | view.label_terms
                    if len(terms & statement) / len(terms) < self.config.min_statement_coverage:
                        fallback_reason = "says of a number what its passage says of something else"
                        continue
                    if swapped_numbers(sentence, body[top], body) or reordered_numbers(sentence, body[top]):
                        fallback_reason = "attaches a number to what the passage says of another"
                        continue
                similarity = sims[top]
                if coverage < self.config.min_coverage or similarity < self.config.min_similarity:
                    continue
                # The closest sentence (with the label when the sentence restates it: "patient not covered")
                # must have as many negations, and so must each clause's closest passage clause.
                # A sentence that restates the whole closest sentence (or its label) keeps its negations in
                # number too; a partial restatement is checked clause by clause.
                expected, restates = 0, False
                for text in (body[closest], view.sentences[0].split(" — ")[-1] if view.labelled else ""):
                    source = content_terms(text) - _NEGATION_TERMS
                    if source and len(terms & source) >= self.config.min_coverage * len(source):
                        expected, restates = expected + _negations(text), True
                if (restates and _negations(sentence) != expected) or negation_conflict(sentence, view.sentences):
                    fallback_reason = "contradicts the passage's negation"
                    continue
                if unsupported_clause(sentence, view.sentences, self.config.min_clause_coverage):
                    fallback_reason = "adds a clause that no passage sentence states"
                    continue
                if allowed is not None and n not in allowed:
                    fallback_reason = "true, but from a passage that answers another question"
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
