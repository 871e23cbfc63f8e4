"""The reader: answer from the knowledge base's own words, choosing the one place that answers the question.

A small model writing free text is where wrong answers come from (another code's meaning, swapped
timelines, fluent nonsense). The reader writes nothing: it picks the Q&A pair or document section that
answers the question, then the sentences of it that do, and quotes them with their citation. It is right
by construction whenever it picks the right place, and it says "not found" when no place is good enough.

Choosing the place (a *unit*: a Q&A pair, or one section chunk of a document):

1. **Codes bind.** When the question names codes ("reject 75", "code MR"), only units that name every one
   of them qualify (units naming some, when none names all, answer code by code). A code no unit names is
   not in the knowledge base: "not found", whatever else is similar.
2. **Score** = cosine similarity of question and unit (a pair's better of its question and answer) +
   ``lexical_weight`` x its BM25 share + ``name_weight`` x the share of the question's names it contains +
   ``phrase_weight`` x the share of the question's phrases it contains (below), + ``answer_type_weight`` when
   the question asks when or how long and the unit states a time, then + ``sentence_weight`` x
   the similarity of its sentence closest to the question for the ``rerank_units`` best.
   A *phrase* is two content words next to each other, or apart by at most two stop words ("refill too soon",
   "early refill window", "real time"), weighted by how few of the candidate units contain it. Words alone
   say what a question is about; phrases say which part of it: "refill too soon" and "no refills left"
   share their words with half of a pharmacy's knowledge base, and their phrases with one section each.
3. **Evidence bar**: the best unit must reach ``retrieval.min_evidence`` in similarity (``code_evidence`` for
   the place whose heading names every code asked),
   ``reader.min_score`` in score and ``reader.min_lexical`` of the best BM25 score (unless the question is a
   Q&A pair's own), or the answer is "not found".

Choosing the sentences: a pair's answer is quoted whole when it is short (it was written as the answer);
from a section or a long answer, the sentences closest to the question (similarity plus shared content
words, plus the question's codes), the best one and those within ``sentence_margin`` of it, in document
order, at most ``max_sentences``. A two-part question is read part by part.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.embeddings import Embeddings
from rapidfuzz.distance import OSA

from careqa.config import ReaderConfig
from careqa.grounding import (
    FRAMING_TERMS,
    MIN_CONTENT_TERMS,
    content_terms,
    key_terms,
    passage_body,
    phrases,
    split_sentences,
)
from careqa.query import Query, code_mentions
from careqa.types import Passage

#: the kinds of unit that are a curated Q&A pair
_PAIR_KINDS = frozenset({"question", "answer"})
#: a quoted answer's leading verdict ("Yes." / "No, ...")
_VERDICT = re.compile(r"^(?:yes|no)\b[.!,]?\s*$", re.IGNORECASE)


#: a sentence about the document, not its subject ("This procedure covers refill requests, ..."): never an answer
_META = re.compile(
    r"^(?:this|the following) (?:procedure|document|page|section|guide|article|policy|chapter)\b[^.]{0,40}?"
    r"\b(?:covers|explains|describes|lists|shows|outlines|sets out|is about|tells)\b",
    re.IGNORECASE,
)
#: a line in capitals with no full stop: a heading of a plain-text document
_HEADING_LINE = re.compile(r"^[A-Z0-9][A-Z0-9 ,&/'’()-]{2,80}$")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
#: a question that asks for a time or a duration ("when do we send the reminder texts", "how long does it take")
_ASKS_TIME = re.compile(
    r"\b(?:how long|how soon|how fast|how quickly|what time|how many (?:days|hours|weeks|months)|by when|until when|"
    r"whens|when (?:do|does|did|is|are|was|will|would|can|could|should|its|it's))\b",
    re.IGNORECASE,
)
#: a time or a duration stated: "3 days before", "within 24 hours", "7 to 10 business days", "5 p.m.", "Saturday"
_STATES_TIME = re.compile(
    r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve)(?:\s*(?:-|to|–|or)\s*\d+)?\s*"
    r"(?:business |calendar |working )?(?:minutes?|hours?|days?|weeks?|months?|years?)\b|"
    r"\b\d{1,2}(?::\d\d)?\s*(?:a\.m\.|p\.m\.|am|pm)|\bnoon\b|"
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\bsame day\b|\bnext business day\b",
    re.IGNORECASE,
)
#: a list item that defines a term the knowledge base uses as a label ("Filling: the medicine is being prepared
#: and checked by a pharmacist.", a status, a plan tier, a form's field)
_DEFINES = re.compile(r"^(?P<term>[A-Z][\w'’/-]*(?: [\w'’/-]+){0,3}): +\S")
#: the words before a label that the question quotes rather than uses: "app says filling", "stuck on in review",
#: "status is shipped" (not "pt hasn't received it", nor "finished filling at 1:30")
_NAMES_LABEL = re.compile(
    r"(?:^|\s)(?:says|said|shows|showed|showing|reads|status(?: is| says| of)?|stuck (?:on|in|at)|marked(?: as)?|"
    r"set to|changed to|went to|moved to)$"
)
#: words this long match a label with one typo ("still says recieved")
_TYPO_LENGTH = 5
#: how a sentence that goes on about the previous one begins
_CONTINUATION = re.compile(r"^(?:it|its|this|that|these|those|they|then|otherwise|if so|if not|meanwhile)\b", re.I)


@dataclass(eq=False)
class _Item:
    """What the reader quotes or leaves out as one: a list item (all its sentences), or one prose sentence."""

    sentences: list[str]
    paragraph: int
    bullet: bool
    position: int = 0
    #: the sentence a list item's list opens with ("New patients should arrive 15 minutes early and bring:")
    lead: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def _items(body: str, heading: str | None = None) -> list[_Item]:
    """What a unit's body says, item by item; a list right under the section's ``heading`` has it as its lead-in."""
    items: list[_Item] = []
    lead: str | None = f"{heading.rstrip(':.')}:" if heading else None
    for paragraph, line in enumerate(body.splitlines()):
        if _HEADING_LINE.match(line.strip()):
            lead = None
            continue  # a plain-text heading ("HSA AND FSA RECEIPTS") names a topic, it says nothing about it
        every = split_sentences(line)
        if every and not _BULLET.match(line):
            # a prose line ending in ":" opens the list that follows it; it is quoted with the items quoted
            last = every[-1]
            lead = last if last.rstrip().endswith(":") and not _META.match(last) else None
        sentences = [s for s in every if not s.rstrip().endswith(":") and not _META.match(s)]
        if not sentences:
            continue
        if _BULLET.match(line):
            items.append(_Item(sentences, paragraph, True, lead=lead))
        else:
            items.extend(_Item([s], paragraph, False) for s in sentences)
    for position, item in enumerate(items):
        item.position = position
    return items


def _quoted(items: Sequence[_Item]) -> list[str]:
    """The items' sentences in order, each list's lead-in before its first quoted item: "A photo ID." alone does
    not say that new patients bring it, nor that they should arrive 15 minutes early."""
    out: list[str] = []
    for item in items:
        if item.lead is not None and item.lead not in out:
            out.append(item.lead)
        out.extend(item.sentences)
    return out


def _continues(item: _Item, following: _Item) -> bool:
    """Whether ``following`` goes on about what ``item`` said: a prose sentence of the same paragraph that
    opens with a pronoun ("It ...", "This ...") or with the thing ``item`` named ("The fee is waived ...", after
    the fee; "Records usually arrive within 10 business days.", after the records release form)."""
    if item.bullet or following.bullet or following.paragraph != item.paragraph:
        return False
    text = following.text
    if _CONTINUATION.match(text):
        return True
    match = re.match(r"^(?:The )?(\w+)", text)
    named = content_terms(match.group(1)) if match else set()
    return bool(named) and named <= content_terms(item.text)  # "The first visit ..." names nothing


def _same_word(asked: str, defined: str) -> bool:
    return asked == defined or (len(defined) >= _TYPO_LENGTH and OSA.distance(asked, defined) <= 1)


def _mentions(question: str, term: str) -> list[tuple[str, str]]:
    """Where the question says ``term`` (one typo allowed in a word of five letters or more: optimal string
    alignment distance, rapidfuzz): the three words before each mention, and the word after it."""
    words = re.findall(r"[\w'’]+", question.lower())
    wanted = term.lower().split()
    found = []
    for at in range(len(words) - len(wanted) + 1):
        if all(_same_word(w, t) for w, t in zip(words[at : at + len(wanted)], wanted, strict=True)):
            after = words[at + len(wanted)] if at + len(wanted) < len(words) else ""
            found.append((" ".join(words[max(0, at - 3) : at]), after))
    return found


def names_label(question: str, term: str) -> bool:
    """Whether the question names ``term`` as a label the agent sees ("app still says recieved", "stuck on in
    review", "filling status"), not as a word of its own sentence ("she hasn't received it")."""
    return any(_NAMES_LABEL.search(before) or after == "status" for before, after in _mentions(question, term))


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def unit_codes(unit: Passage, known: set[str]) -> set[str]:
    """The codes a unit names (in its label, question or body)."""
    return set(code_mentions(f"{unit.title}\n{unit.question or ''}\n{unit.text}", known=known))


def unit_text(unit: Passage) -> str:
    """What a unit says, as the reader matches words and phrases against it: label, question and body."""
    return f"{unit.title}\n{unit.question or ''}\n{unit.text}"


def unit_heading(unit: Passage) -> str:
    """The knowledge base's own name for what a unit answers: a section's heading, a Q&A pair's title."""
    if unit.kind in _PAIR_KINDS:
        return unit.title
    return unit.text.split("\n", 1)[0].split(" — ")[-1]


def _rare_shares(wanted: set, found: list[set]) -> list[float]:
    """For each unit, the share of ``wanted`` it contains (``found``), each weighted by its rarity among the
    units (log(1 + n / (1 + units containing it))): what every candidate has tells none apart."""
    if not wanted or not found:
        return [0.0] * len(found)
    n = len(found)
    weight = {p: math.log(1 + n / (1 + sum(p in f for f in found))) for p in wanted}
    total = sum(weight.values())
    return [sum(weight[p] for p in f) / total for f in found]


def phrase_shares(question: str, units: Sequence[Passage]) -> list[float]:
    """For each unit, the rarity-weighted share of the question's phrases it contains."""
    wanted = phrases(question)
    return _rare_shares(wanted, [phrases(unit_text(u)) & wanted for u in units])


@dataclass
class ScoredUnit:
    unit: Passage
    score: float
    codes: set[str]
    #: similarity of the unit's sentence closest to the question (set for the units the re-rank scored)
    sentence_similarity: float | None = None


@dataclass
class Quote:
    """Sentences of one unit, in the unit's order."""

    unit: Passage
    sentences: list[str]
    whole: bool  # the unit's whole answer (a curated Q&A answer), not a selection


@dataclass
class Reading:
    """What the reader found: the quotes (best first), or why nothing qualified."""

    quotes: list[Quote] = field(default_factory=list)
    ranked: list[ScoredUnit] = field(default_factory=list)  # every qualifying unit, best first
    missing_codes: list[str] = field(default_factory=list)  # codes of the question no unit names
    unmentioned: list[str] = field(default_factory=list)  # names of the question the quoted units never mention
    best_score: float = -1.0
    confident: bool = False  # a strong match: a pair whose question matches, or a unit far above the bar
    rival: bool = False  # two places matched about equally and both are quoted

    @property
    def found(self) -> bool:
        return bool(self.quotes)


class Reader:
    """Picks the unit that answers a question and the sentences of it that do."""

    def __init__(self, embeddings: Embeddings, config: ReaderConfig, *, min_evidence: float, curated_match: float):
        self.embeddings = embeddings
        self.config = config
        self.min_evidence = min_evidence
        self.curated_match = curated_match
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- choosing the unit ------------------------------------------------------------------------------

    def rank(
        self,
        query: Query,
        units: Sequence[Passage],
        known_codes: set[str],
        query_vector: Sequence[float] | None = None,
    ) -> tuple[list[ScoredUnit], list[str]]:
        """Qualifying units, best first, and the question's codes that no unit names.

        With ``query_vector``, the ``rerank_units`` best are scored again with their best sentence's
        similarity to the question: a unit that holds one sentence answering the question beats one that
        is only about the same topic (an overview that names every topic of its document, for instance).
        """
        scored = [ScoredUnit(u, self._score(query, u), unit_codes(u, known_codes)) for u in units]
        if self.config.phrase_weight > 0:
            for s, share in zip(scored, phrase_shares(query.text, units), strict=True):
                s.score += self.config.phrase_weight * share
        if self.config.heading_weight > 0:
            asked = phrases(query.text)
            for s in scored:
                named = phrases(unit_heading(s.unit))
                if named and named <= asked:
                    s.score += self.config.heading_weight
        wanted = set(query.codes)
        missing = sorted(wanted - set().union(*(s.codes for s in scored))) if wanted else []
        if wanted:
            complete = [s for s in scored if wanted <= s.codes]
            scored = complete or [s for s in scored if wanted & s.codes]
        scored.sort(key=lambda s: s.score, reverse=True)
        # a unit with nothing but headings and sentences about its document has nothing to quote
        scored = [s for s in scored if _items(passage_body(s.unit))]
        if query_vector is not None and self.config.sentence_weight > 0 and scored:
            top = scored[: self.config.rerank_units]
            texts = [[i.text for i in _items(passage_body(s.unit))] for s in top]
            vectors = self.embed([t for group in texts for t in group])
            at = 0
            for s, group in zip(top, texts, strict=True):
                best = max((_dot(query_vector, vectors[at + k]) for k in range(len(group))), default=0.0)
                s.score += self.config.sentence_weight * best
                s.sentence_similarity = best
                at += len(group)
            scored = sorted(top, key=lambda s: s.score, reverse=True) + scored[len(top) :]
        return scored, missing

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of knowledge-base sentences, remembered: the same sentences come back question after question."""
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, self.embeddings.embed_documents(missing), strict=True))
            with self._cache_lock:
                for text in missing:
                    self._cache[text] = known[text]
                while len(self._cache) > self.config.sentence_cache:
                    self._cache.popitem(last=False)
        return [known[t] for t in texts]

    def _score(self, query: Query, unit: Passage) -> float:
        score = unit.similarity + self.config.lexical_weight * unit.lexical
        # the expected answer type: a question asking when or how long is answered by a place that states a time
        # ("when do we send the reminder texts": the pair on cancelling mentions the reminder text, the section
        # on scheduling says 3 days and 1 day before)
        if self.config.answer_type_weight and _ASKS_TIME.search(query.text) and _STATES_TIME.search(unit.text):
            score += self.config.answer_type_weight
        if query.names:
            terms = content_terms(unit_text(unit))
            hits = sum(1 for name in query.names if content_terms(name) <= terms)
            score += self.config.name_weight * hits / len(query.names)
        return score

    def qualifies(self, best: ScoredUnit, min_score: float | None = None) -> bool:
        """Whether a unit is close enough to answer from (``min_score``: a tenant's own bar, else the config's)."""
        bar = self.config.min_score if min_score is None else min_score
        return best.unit.similarity >= self.min_evidence and best.score >= bar

    def _code_place(self, scored: ScoredUnit, codes: Sequence[str]) -> bool:
        """Whether a unit is the place of the codes the question names, close enough to answer from.

        A short message about a code ("pt got a 70 on her ozempic what now") is mostly words the code's place does
        not have, and its similarity falls under the evidence bar although the code says what it asks. The
        place whose heading (a Q&A pair's title or question) names every code asked needs only
        ``code_evidence``; a place that mentions the code in passing still needs the full bar.
        """
        if not codes:
            return False
        unit = scored.unit
        # a section's heading path ("Claim rejection codes — Code 70 — Product or service not covered")
        named = f"{unit.title}\n{unit.question or ''}" if unit.kind in _PAIR_KINDS else unit.text.split("\n", 1)[0]
        if not set(codes) <= set(code_mentions(named, known=set(codes))):
            return False
        return unit.similarity >= self.config.code_evidence

    def _worded(self, best: ScoredUnit, min_lexical: float | None = None) -> bool:
        """Whether the question's words, not only its meaning, point to the best place.

        BM25 and the embedding model fail differently: MiniLM scores sibling topics alike ("is the telehealth
        doctor the same one", the pair on how to join a telehealth visit; a pharmacy-PA question asked of the
        clinic, its intake forms), while the words of the question point elsewhere. A place with under
        ``min_lexical`` (a tenant's own bar, else the config's) of the best BM25 score among the candidates is
        not answered from, unless the question is the Q&A pair's own: the reader cannot tell which one answers,
        and "not found" is a correct answer.
        """
        if (best.unit.question_similarity or -1.0) >= self.curated_match:
            return True
        return best.unit.lexical >= (self.config.min_lexical if min_lexical is None else min_lexical)

    # -- choosing the sentences -------------------------------------------------------------------------

    def quote(
        self,
        query_text: str,
        query_vector: Sequence[float],
        scored: ScoredUnit,
        codes: Sequence[str],
        names: Sequence[str] = (),
        *,
        rival: bool = False,
    ) -> Quote:
        """The sentences of ``scored``'s unit that answer the question: all of a short one, else the closest.

        ``rival``: the unit is one of two places quoted side by side; each is quoted whole only up to
        ``rival_whole_sentences``, so that two sections together stay readable mid-chat.
        """
        unit = scored.unit
        is_pair = unit.kind in _PAIR_KINDS
        items = _items(passage_body(unit), None if is_pair else unit_heading(unit))
        # "Yes." answers the pair's own question; it answers the agent's only if the two questions match
        verdict = is_pair and items and _VERDICT.match(items[0].sentences[0])
        if verdict and (unit.question_similarity or -1.0) < self.curated_match:
            items[0].sentences.pop(0)
            items = [i for i in items if i.sentences]
        count = sum(len(i.sentences) for i in items)
        whole_answer, whole_section = self.config.whole_answer_sentences, self.config.whole_section_sentences
        if rival:
            whole_answer = min(whole_answer, self.config.rival_whole_sentences)
            whole_section = min(whole_section, self.config.rival_whole_sentences)
        if is_pair and count <= whole_answer:
            return Quote(unit, _quoted(items), whole=True)
        if not is_pair and count <= whole_section:
            # a short section is one procedure step: quoted whole, nothing the agent needs is cut off
            return Quote(unit, self._with_code_heading(unit, _quoted(items), codes), whole=False)
        candidates = [i for i in items if len(content_terms(i.text)) >= MIN_CONTENT_TERMS and not i.text.endswith("?")]
        if not candidates:
            return Quote(unit, [], whole=False)
        vectors = self.embed([i.text for i in candidates])
        question_terms = content_terms(query_text)
        wanted = set(codes)
        rows = []
        for item, vector in zip(candidates, vectors, strict=True):
            # a list item is quoted with the sentence that opens its list, and says what that sentence says
            # ("... should arrive 15 minutes early and bring:" / "A list of current medicines ...")
            terms = content_terms(f"{item.lead or ''} {item.text}")
            overlap = len(question_terms & terms) / max(len(question_terms), 1)
            value = _dot(query_vector, vector) + self.config.sentence_lexical_weight * overlap
            if wanted and wanted & set(code_mentions(item.text, known=wanted)):
                value += self.config.sentence_code_bonus
            if any(content_terms(name) <= terms for name in names):
                value += self.config.sentence_code_bonus
            rows.append((value, item))
        best = max(value for value, _ in rows)
        ranked = sorted((r for r in rows if r[0] >= best - self.config.sentence_margin), key=lambda r: -r[0])
        chosen: list[_Item] = []
        for _, item in ranked:
            if sum(len(i.sentences) for i in chosen) + len(item.sentences) > self.config.max_sentences and chosen:
                break
            chosen.append(item)
        # A prose sentence that goes on about what a chosen one said ("The fee is waived ...") comes with it.
        for item in list(chosen):
            following = items[item.position + 1] if item.position + 1 < len(items) else None
            if following is not None and following not in chosen and _continues(item, following):
                chosen.append(following)
        picked = _quoted(sorted(chosen, key=lambda i: i.position))
        return Quote(unit, self._with_code_heading(unit, picked, codes), whole=False)

    @staticmethod
    def _with_code_heading(unit: Passage, picked: list[str], codes: Sequence[str]) -> list[str]:
        """A section about a code often names it only in its heading ("Code 79 — Refill too soon"): the heading
        is quoted first when no picked sentence names the question's code, so the answer says which code."""
        wanted = set(codes)
        if not wanted or any(wanted & set(code_mentions(s, known=wanted)) for s in picked):
            return picked
        heading = unit.text.split("\n", 1)[0].split(" — ", 1)[-1]
        if wanted & set(code_mentions(heading, known=wanted)):
            return [heading.rstrip(".") + ".", *picked]
        return picked

    # -- the whole reading ------------------------------------------------------------------------------

    def _source_section(self, best: ScoredUnit, ranked: Sequence[ScoredUnit], text: str) -> ScoredUnit:
        """The section a Q&A pair was written from, when the question asks what the pair leaves out.

        A pair is a summary of the section it links to. When the agent's question is not the pair's own
        question and names something the pair does not mention but that section does, the section answers
        it: "for controlled meds is the early refill window the same" finds the pair on how early a refill is
        allowed (75 to 80 percent), whose section goes on about controlled substances (85 to 90 percent).
        """
        unit = best.unit
        if (
            unit.kind not in _PAIR_KINDS
            or not unit.source_url
            or (unit.question_similarity or -1.0) >= self.curated_match
        ):
            return best
        section = next(
            (s for s in ranked if s.unit.kind not in _PAIR_KINDS and s.unit.source_url == unit.source_url), None
        )
        if section is None or not self.qualifies(section):
            return best
        left_out = content_terms(text) - FRAMING_TERMS - content_terms(unit_text(unit))
        return section if left_out & content_terms(passage_body(section.unit)) else best

    def _rival(self, best: ScoredUnit, qualifying: Sequence[ScoredUnit]) -> ScoredUnit | None:
        """The best unit from another place when it scores within ``rival_margin`` of ``best``.

        Sibling sections of one procedure ("Transfers in" and "Transfers out", "Signature required" and "Lost
        packages") share most of their words, and the reader's scores for them differ by less than its errors.
        Quoting the wrong one alone is a wrong answer; quoting both, each with its source, lets the agent see
        which one answers. A Q&A pair whose question the agent asked (``curated_match``) has no rival.
        """
        margin = self.config.rival_margin
        if margin <= 0 or (best.unit.question_similarity or -1.0) >= self.curated_match:
            return None
        place = best.unit.source_url or best.unit.doc_id
        rival = next((s for s in qualifying if (s.unit.source_url or s.unit.doc_id) != place), None)
        return rival if rival is not None and rival.score >= best.score - margin else None

    def _answered(self, reading: Reading, text: str, vector: Sequence[float], best: ScoredUnit) -> bool:
        """Whether a later part of the question (``text``) is already answered by what the earlier parts quote.

        "When is the statement available and how long does the mail take": the statement's section says how
        long the mailed statement takes; a second source (standard delivery times) would only contradict it.
        A new unit is quoted for a part if the part names something no quoted sentence mentions and the unit
        does ("is a tele visit the same copay? and if pt cancels morning of is she charged": the cost section
        quoted says the cancellation policy applies, the cancellation section says what it charges); otherwise
        only if its best sentence (or, for a Q&A pair, its question) is clearly closer to the part.
        """
        quoted = [s for q in reading.quotes for s in q.sentences]
        if not quoted or best.sentence_similarity is None:
            return False
        if best.unit.kind not in _PAIR_KINDS and any(
            q.unit.kind in _PAIR_KINDS and q.unit.source_url == best.unit.source_url for q in reading.quotes
        ):
            return False  # the section a quoted pair summarises cannot contradict it; it may say what the pair left out
        asked = content_terms(text) - FRAMING_TERMS - content_terms(" ".join(quoted))
        if asked & content_terms(passage_body(best.unit)):
            return False
        covered = max(_dot(vector, v) for v in self.embed(quoted))
        # a Q&A pair answers what its question asks, whatever its sentences look like ("Usually not.")
        offered = max(best.sentence_similarity, best.unit.question_similarity or -1.0)
        return covered >= offered - self.config.part_overlap_margin

    def _misread(
        self, text: str, vector: Sequence[float], scored: ScoredUnit, codes: Sequence[str], names: Sequence[str]
    ) -> bool:
        """Whether all a unit would say is what labels mean that the question uses as words of its own.

        "pt hasn't received her order yet, its been 6 days" finds the list of order statuses, whose "Received:
        the order has been placed and is waiting to start." shares its words; the question does not name the
        status (it would say "app says received", or ask what it means), and the place about late packages
        answers it. Such a unit is passed over for the next one.
        """
        if scored.unit.kind in _PAIR_KINDS or re.search(r"\bmean", text, re.IGNORECASE):
            return False
        said = set(self.quote(text, vector, scored, codes, names).sentences)
        picked = [i for i in _items(passage_body(scored.unit)) if said & set(i.sentences)]
        if not picked:
            return False
        for item in picked:
            defines = _DEFINES.match(item.sentences[0]) if item.bullet else None
            if defines is None:
                return False
            term = defines.group("term")
            if not _mentions(text, term) or names_label(text, term):
                return False
        return True

    @staticmethod
    def _elsewhere(
        reading: Reading, parts: Sequence[tuple[str, Sequence[float], Sequence[Passage]]], text: str, best: ScoredUnit
    ) -> bool:
        """Whether a later part that names almost nothing of its own ("do we charge anything for that") would be
        answered from a place about something else than what the earlier parts asked.

        Such a part is about the earlier part's subject ("pt wants their yearly statement mailed ..."): a place
        that shares none of the earlier parts' words answers another question ("Transfers are free of charge.").
        """
        if not reading.quotes or len(content_terms(text) - FRAMING_TERMS) >= 2:
            return False
        earlier = set().union(*(content_terms(t) for t, _, _ in parts if t != text)) - FRAMING_TERMS
        return not earlier & content_terms(unit_text(best.unit))

    @staticmethod
    def _extend(reading: Reading, quote: Quote) -> None:
        """Add to the quote of the same unit what ``quote`` (another part's reading of it) adds, in the unit's order.

        "pt asked us to transfer her bp med from walgreens, is that normal? how long do transfers usually take":
        both parts are answered by the section on transfers in; the first part's sentences (how to ask) do not
        say how long, the second's do ("Most transfers in are completed within 1 business day.").
        """
        earlier = next((q for q in reading.quotes if q.unit.chunk_id == quote.unit.chunk_id), None)
        if earlier is None or set(quote.sentences) <= set(earlier.sentences):
            return
        order = _quoted(_items(passage_body(quote.unit), unit_heading(quote.unit)))
        merged = set(earlier.sentences) | set(quote.sentences)
        earlier.sentences = [s for s in order if s in merged] + [s for s in earlier.sentences if s not in order]
        earlier.whole = False

    def _without_repeats(self, quote: Quote, reading: Reading) -> Quote:
        """The quote less the sentences that restate one already quoted: at least ``repeat_similarity`` similar,
        with no number, code or name the earlier sentence lacks ("within 24 hours" does not restate "within 72
        hours", however alike the two read)."""
        quoted = [s for q in reading.quotes for s in q.sentences]
        if not quoted or not quote.sentences:
            return quote
        earlier = list(zip(quoted, self.embed(quoted), strict=True))

        def restates(sentence: str, vector: Sequence[float]) -> bool:
            return any(
                _dot(vector, e) >= self.config.repeat_similarity and key_terms(sentence) <= key_terms(said)
                for said, e in earlier
            )

        kept = [s for s, v in zip(quote.sentences, self.embed(quote.sentences), strict=True) if not restates(s, v)]
        return quote if len(kept) == len(quote.sentences) else Quote(quote.unit, kept, whole=False)

    def _definitions(
        self, text: str, parts: Sequence[tuple[str, Sequence[float], Sequence[Passage]]], reading: Reading
    ) -> list[Quote]:
        """What the labels the question names mean, where a candidate unit defines them in a list item.

        An agent reads the order's status off the screen ("app has said filling since this am, she wants the
        tracking #"): the answer is in the place about tracking numbers, and what "Filling" means (not shipped
        yet) is in the list of statuses, which no similarity picks for a question about tracking. A label binds
        like a code: the item that defines it is quoted first, unless a quoted sentence already says it.
        """
        definitions: list[Quote] = []
        seen: set[str] = set()
        for _, _, units in parts:
            for unit in units:
                if unit.chunk_id in seen or unit.kind in _PAIR_KINDS:
                    continue
                seen.add(unit.chunk_id)
                for item in _items(passage_body(unit)):
                    defines = _DEFINES.match(item.sentences[0]) if item.bullet else None
                    if defines is None or any(item.sentences[0] in d.sentences for d in definitions):
                        continue
                    if not names_label(text, defines.group("term")):
                        continue
                    quote = self._without_repeats(Quote(unit, list(item.sentences), whole=False), reading)
                    if quote.sentences:
                        definitions.append(quote)
        return definitions

    def read(
        self,
        query: Query,
        parts: Sequence[tuple[str, Sequence[float], Sequence[Passage]]],
        known_codes: set[str],
        min_score: float | None = None,
        min_lexical: float | None = None,
    ) -> Reading:
        """Read each part of a question (text, vector, candidate units) and join the quotes.

        ``min_score`` and ``min_lexical`` are the tenant's bars for a unit to answer from (default:
        ``reader.min_score``, ``reader.min_lexical``).
        """
        reading = Reading()
        used: set[str] = set()
        for text, vector, units in parts:
            part_codes = [c for c in query.codes if c in set(code_mentions(text, known=known_codes))] or list(
                query.codes
            )
            part_query = Query(text=text, expanded=text, codes=tuple(part_codes), names=query.names, parts=(text,))
            ranked, missing = self.rank(part_query, units, known_codes, vector)
            reading.missing_codes.extend(c for c in missing if c not in reading.missing_codes)
            if not reading.ranked:
                reading.ranked = ranked
            if not ranked or missing and len(part_codes) == len(missing):
                continue
            qualifying = [s for s in ranked if self.qualifies(s, min_score) or self._code_place(s, part_codes)]
            reading.best_score = max(reading.best_score, ranked[0].score)
            while qualifying and self._misread(text, vector, qualifying[0], part_codes, list(query.names)):
                qualifying = qualifying[1:]
            if not qualifying or not self._worded(qualifying[0], min_lexical):
                continue
            best = self._source_section(qualifying[0], ranked, text)
            if best.unit.chunk_id in used:
                self._extend(reading, self.quote(text, vector, best, part_codes, list(query.names)))
                continue
            if self._answered(reading, text, vector, best) or self._elsewhere(reading, parts, text, best):
                continue
            # codes this unit does not name are answered by the best unit that does
            chosen = [best]
            rival = self._rival(best, qualifying) if len(parts) == 1 else None
            if rival is not None:
                # the section a pair was written from stands in for the pair and may score below its rival:
                # the answer opens with the place that scores best
                chosen = [rival, best] if rival.score > best.score else [best, rival]
                reading.rival = True
            for code in part_codes:
                if code not in best.codes:
                    other = next((s for s in ranked if code in s.codes and self.qualifies(s, min_score)), None)
                    if other is not None and other not in chosen:
                        chosen.append(other)
            for scored in chosen:
                if scored.unit.chunk_id in used:
                    continue
                quote = self._without_repeats(
                    self.quote(text, vector, scored, part_codes, list(query.names), rival=reading.rival), reading
                )
                if quote.sentences:
                    reading.quotes.append(quote)
                    used.add(scored.unit.chunk_id)
            if len(parts) == 1:
                question_match = best.unit.question_similarity or -1.0
                reading.confident = question_match >= self.curated_match or (best.score >= self.config.confident_score)
        if reading.quotes:
            reading.quotes[:0] = self._definitions(query.text, parts, reading)
            quoted = " ".join(f"{q.unit.title} {q.unit.question or ''} {q.unit.text}" for q in reading.quotes)
            terms = content_terms(quoted)
            reading.unmentioned = [name for key, name in query.names.items() if not content_terms(key) <= terms]
        return reading
