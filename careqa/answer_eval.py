"""Answer evaluation: is the text an agent reads *right*? Scored on a judged answer set, side by side.

Retrieval metrics say whether the right passage was found; they cannot see an answer that cites it and
still states another code's meaning. Here each judged question says which sources answer it, which
facts (regular expressions) a right answer states and which statements (regular expressions) make it
wrong, or that the knowledge base cannot answer it. Verdicts:

answerable questions
  ``correct``    answered, cites an expected source, states every required fact, nothing forbidden
  ``wrong``      answered, and not correct: a forbidden statement, no expected source cited, or a required
                 fact missing (the reason is kept: ``forbidden``, ``off_source``, ``missing_fact``)
  ``abstained``  "not found" although the knowledge base answers it
unanswerable questions
  ``abstained``  "not found": the right answer
  ``harmless``   answered with true knowledge-base statements, nothing forbidden
  ``forbidden``  answered with a forbidden statement (an invented yes, a price, a dose): the worst outcome

The file format is in ``sample_kb/README.md``. A line with an error is reported with its number and the
reason, and the rest of the file runs.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from careqa.errors import CareQAError
from careqa.evaluate import percentile
from careqa.types import Answer

Verdict = Literal["correct", "wrong", "abstained", "harmless", "forbidden", "error"]
ANSWERABLE_VERDICTS = ("correct", "wrong", "abstained")
UNANSWERABLE_VERDICTS = ("abstained", "harmless", "forbidden")


class AnswerEvalError(CareQAError):
    """A judged set or a configuration that cannot be used."""

    code = "answer_eval_input"


@dataclass(frozen=True)
class JudgedAnswer:
    """One judged question: what a right answer cites and states, or that none exists in the knowledge base."""

    id: str
    tenant: str
    question: str
    answerable: bool
    sources: tuple[str, ...]
    facts: tuple[re.Pattern[str], ...]
    forbidden: tuple[re.Pattern[str], ...]
    tags: tuple[str, ...] = ()
    line: int = 0


_FIELDS = {"id", "tenant", "question", "answerable", "sources", "facts", "forbidden", "tags", "notes"}


def _patterns(value: Any, name: str) -> tuple[re.Pattern[str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a list of non-empty strings (regular expressions)")
    compiled = []
    for pattern in value:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ValueError(f"{name}: {pattern!r} is not a valid regular expression ({exc})") from None
    return tuple(compiled)


def parse_judged(obj: Any, line: int) -> JudgedAnswer:
    """One judged question from its JSON object; ``ValueError`` says what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    for name in ("id", "tenant", "question"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise ValueError(f"{name} is required (a non-empty string)")
    answerable = obj.get("answerable")
    if not isinstance(answerable, bool):
        raise ValueError("answerable is required (true or false)")
    sources = obj.get("sources") or []
    if not isinstance(sources, list) or not all(isinstance(s, str) and s.strip() for s in sources):
        raise ValueError("sources must be a list of Q&A ids or document paths")
    facts = _patterns(obj.get("facts"), "facts")
    if answerable and not sources:
        raise ValueError("an answerable question needs its expected sources")
    if not answerable and (sources or facts):
        raise ValueError(
            "an unanswerable question has no sources or facts (its forbidden statements say what is wrong)"
        )
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags must be a list of strings")
    return JudgedAnswer(
        id=obj["id"].strip(),
        tenant=obj["tenant"].strip(),
        question=obj["question"],
        answerable=answerable,
        sources=tuple(s.strip() for s in sources),
        facts=facts,
        forbidden=_patterns(obj.get("forbidden"), "forbidden"),
        tags=tuple(tags),
        line=line,
    )


def load_judged(path: Path, *, tenants: Iterable[str] | None = None) -> tuple[list[JudgedAnswer], list[str]]:
    """The judged questions of a JSONL file, and a ``file:line: reason`` for each line that cannot be used.

    ``tenants``: the configured tenants; a question for another tenant is reported, not run.
    """
    known = set(tenants) if tenants is not None else None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnswerEvalError(f"{path}: no such judged answer set") from None
    except UnicodeDecodeError:
        raise AnswerEvalError(f"{path}: not UTF-8 text") from None
    questions: list[JudgedAnswer] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            question = parse_judged(json.loads(raw), number)
            if question.id in seen:
                raise ValueError(f"duplicate id {question.id!r} (first on line {seen[question.id]})")
            if known is not None and question.tenant not in known:
                raise ValueError(f"unknown tenant {question.tenant!r}; configured: {', '.join(sorted(known))}")
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg})")
            continue
        except ValueError as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise AnswerEvalError(
            f"{path}: no usable judged questions" + (f" ({len(problems)} rejected)" if problems else "")
        )
    return questions, problems


# ---------------------------------------------------------------------------------------------------
# scoring one answer


def _kb_id(doc_id: str, tenant: str) -> str:
    prefix = f"{tenant}/"
    return doc_id[len(prefix) :] if doc_id.startswith(prefix) else doc_id


def source_matches(expected: str, doc_id: str, url: str, tenant: str) -> bool:
    """Whether a cited source (its ``doc_id`` and unsigned ``url``) is the expected Q&A id, document or section.

    A document path matches any section of it; a path with ``#section`` only that section. A Q&A pair
    whose source URL is the expected section matches it too (it answers from that section).
    """
    kb_id = _kb_id(doc_id, tenant)
    if expected == kb_id:
        return True
    parts = urlsplit(url)
    path = parts.path.removeprefix(f"/sources/{tenant}/")
    if "#" in expected:
        want_path, _, want_section = expected.partition("#")
        return path == want_path and parts.fragment == want_section
    return path == expected or kb_id == expected


@dataclass
class Scored:
    """One question's verdict under one configuration."""

    id: str
    verdict: Verdict
    reasons: list[str]
    mode: str
    latency_ms: float
    first_sentence_ms: float | None
    generate_ms: float
    called_llm: bool
    answer: str = ""
    #: words the agent reads (citation marks left out); 0 when nothing was answered
    words: int = 0

    def to_dict(self, *, with_answer: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "mode": self.mode,
            "latency_ms": round(self.latency_ms, 1),
        }
        if with_answer:
            out["answer"] = self.answer
        return out


def score_answer(question: JudgedAnswer, answer: Answer) -> tuple[Verdict, list[str]]:
    """The verdict on one answer, with the reasons it is not correct."""
    text = answer.text if answer.status == "answered" else ""
    forbidden = [p.pattern for p in question.forbidden if p.search(text)]
    if not question.answerable:
        if answer.status != "answered":
            return "abstained", []
        return ("forbidden", [f"forbidden: {p}" for p in forbidden]) if forbidden else ("harmless", [])
    if answer.status != "answered":
        return "abstained", []
    reasons = [f"forbidden: {p}" for p in forbidden]
    cited = [s for s in answer.sources if s.cited]
    if not any(source_matches(e, s.doc_id, s.url, question.tenant) for e in question.sources for s in cited):
        reasons.append("off_source: cites " + (", ".join(s.url for s in cited) or "nothing"))
    reasons += [f"missing_fact: {p.pattern}" for p in question.facts if not p.search(text)]
    return ("wrong", reasons) if reasons else ("correct", [])


# ---------------------------------------------------------------------------------------------------
# one configuration over the whole set


@dataclass
class ConfigScore:
    """A configuration's verdicts over the judged set, with latency, mode mix and cost."""

    name: str
    description: str
    per_question: dict[str, Scored] = field(default_factory=dict)
    cost_per_1000: float | None = None
    cost_basis: str = ""

    def _of(self, questions: Sequence[JudgedAnswer], answerable: bool) -> list[Scored]:
        return [self.per_question[q.id] for q in questions if q.answerable == answerable and q.id in self.per_question]

    def summary(self, questions: Sequence[JudgedAnswer]) -> dict[str, Any]:
        answerable = self._of(questions, True)
        unanswerable = self._of(questions, False)
        a = Counter(s.verdict for s in answerable)
        u = Counter(s.verdict for s in unanswerable)
        latencies = [s.latency_ms for s in self.per_question.values() if s.verdict != "error"]
        firsts = [s.first_sentence_ms for s in self.per_question.values() if s.first_sentence_ms is not None]
        lengths = [float(s.words) for s in self.per_question.values() if s.words]
        wrong_why = Counter(r.split(":", 1)[0] for s in answerable if s.verdict == "wrong" for r in s.reasons)

        def share(count: int, total: int) -> float:
            return round(count / total, 4) if total else 0.0

        return {
            "answerable": {
                "n": len(answerable),
                **{v: a[v] for v in ANSWERABLE_VERDICTS},
                "errors": a["error"],
                **{f"{v}_share": share(a[v], len(answerable)) for v in ANSWERABLE_VERDICTS},
                "wrong_reasons": dict(wrong_why),
            },
            "unanswerable": {
                "n": len(unanswerable),
                **{v: u[v] for v in UNANSWERABLE_VERDICTS},
                "errors": u["error"],
                **{f"{v}_share": share(u[v], len(unanswerable)) for v in UNANSWERABLE_VERDICTS},
            },
            "modes": dict(Counter(s.mode for s in self.per_question.values())),
            "llm_calls": sum(s.called_llm for s in self.per_question.values()),
            "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
            "first_sentence_ms": {"p50": percentile(firsts, 0.5), "p95": percentile(firsts, 0.95)},
            # an agent reads the answer mid-chat: its length is part of what it costs them
            "answer_words": {"p50": percentile(lengths, 0.5), "p90": percentile(lengths, 0.9)},
            "cost_per_1000_answers": self.cost_per_1000,
            "cost_basis": self.cost_basis,
        }


AskFn = Callable[[str, str], Answer]

_CITATION_MARK = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


def answer_words(answer: Answer) -> int:
    """How many words an answered question's text holds (its citation marks left out); 0 for "not found"."""
    if answer.status != "answered":
        return 0
    return len(re.findall(r"[A-Za-z0-9$%]+(?:['’.][A-Za-z0-9]+)*", _CITATION_MARK.sub(" ", answer.text)))


def run_config(
    name: str, description: str, ask: AskFn, questions: Sequence[JudgedAnswer], *, errors: tuple[type, ...] = ()
) -> ConfigScore:
    """Ask every judged question with ``ask(tenant, question)`` and score each answer."""
    result = ConfigScore(name=name, description=description)
    for q in questions:
        started = time.perf_counter()
        try:
            answer = ask(q.tenant, q.question)
        except errors as exc:  # a model failure is counted, not fatal: the rest of the set still runs
            result.per_question[q.id] = Scored(
                q.id, "error", [f"{type(exc).__name__}: {exc}"], "error", 0.0, None, 0.0, False
            )
            continue
        elapsed = (time.perf_counter() - started) * 1000
        verdict, reasons = score_answer(q, answer)
        result.per_question[q.id] = Scored(
            id=q.id,
            verdict=verdict,
            reasons=reasons,
            mode=answer.mode,
            latency_ms=elapsed,
            first_sentence_ms=answer.timings.first_sentence_ms,
            generate_ms=answer.timings.generate_ms,
            called_llm=answer.timings.generate_ms > 0,
            answer=answer.text,
            words=answer_words(answer),
        )
    return result


def format_table(results: Sequence[ConfigScore], questions: Sequence[JudgedAnswer]) -> str:
    """One row per configuration: answerable verdicts, unanswerable verdicts, modes, latency and cost."""
    header = (
        f"{'configuration':<24} {'correct':>8} {'wrong':>6} {'abst.':>6} │ {'abst.':>6} {'harml.':>6} {'forbid.':>7} │ "
        f"{'p50 ms':>7} {'p95 ms':>7} {'1st p50':>7} │ {'words':>5} │ {'$/1k':>7}  modes"
    )
    lines = [header, "─" * len(header)]
    for r in results:
        s = r.summary(questions)
        a, u = s["answerable"], s["unanswerable"]
        modes = ", ".join(f"{k} {v}" for k, v in sorted(s["modes"].items()))
        cost = f"{r.cost_per_1000:7.2f}" if r.cost_per_1000 is not None else f"{'–':>7}"
        first = s["first_sentence_ms"]["p50"]
        lines.append(
            f"{r.name:<24} {a['correct_share']:>8.1%} {a['wrong_share']:>6.1%} {a['abstained_share']:>6.1%} │ "
            f"{u['abstained']:>6} {u['harmless']:>6} {u['forbidden']:>7} │ "
            f"{s['latency_ms']['p50']:>7.0f} {s['latency_ms']['p95']:>7.0f} "
            f"{first if first == first else 0:>7.0f} │ {s['answer_words']['p50']:>5.0f} │ {cost}  {modes}"
        )
    n_a = sum(q.answerable for q in questions)
    lines.append(
        f"answerable: {n_a} questions (shares); unanswerable: {len(questions) - n_a} (counts). "
        "wrong = answered but not correct; forbid. = an unanswerable question answered with a forbidden statement; "
        "words = median words of an answer given."
    )
    return "\n".join(lines)


def report(results: Sequence[ConfigScore], questions: Sequence[JudgedAnswer], *, with_answers: bool) -> dict[str, Any]:
    """Everything as JSON: per configuration, the summary and each question's verdict."""
    return {
        "questions": len(questions),
        "answerable": sum(q.answerable for q in questions),
        "verdicts": {
            "answerable": {
                "correct": "answered, cites an expected source, every required fact, nothing forbidden",
                "wrong": "answered and not correct (reasons: forbidden, off_source, missing_fact)",
                "abstained": "not found although the knowledge base answers it",
            },
            "unanswerable": {
                "abstained": "not found",
                "harmless": "answered with nothing forbidden",
                "forbidden": "answered with a forbidden statement",
            },
        },
        "results": [
            {
                "config": r.name,
                "description": r.description,
                **r.summary(questions),
                "per_question": {qid: s.to_dict(with_answer=with_answers) for qid, s in r.per_question.items()},
            }
            for r in results
        ],
    }


# ---------------------------------------------------------------------------------------------------
# configurations: ``preset[:key=value...]``, e.g. "reader", "auto:llm=meta-textgeneration-llama-3-8b-instruct",
# "reader:reader.min_score=0.5"

PRESETS: dict[str, str] = {
    "reader": "reader",
    "generate": "generate",
    "auto": "auto",
}
DEFAULT_CONFIGS = ("reader", "generate", "auto")
#: overrides that are not settings paths: the LLM config and the SageMaker endpoint that serves it
MODEL_KEYS = {"llm", "llm_endpoint", "embedding"}


@dataclass(frozen=True)
class AnswerConfig:
    """One configuration of the answer step: its answer mode, settings overrides and LLM."""

    name: str
    answer_mode: str
    overrides: dict[str, Any]
    llm: str | None = None
    llm_endpoint: str | None = None
    #: another embedding model (config name or YAML path), e.g. a tuned one, with its own index copy
    embedding: str | None = None


def parse_answer_config(spec: str) -> AnswerConfig:
    """``preset[:key=value...]``; keys are dotted settings paths (``reader.min_score``), ``llm``, ``llm_endpoint``
    or ``embedding``."""
    name, *items = spec.strip().split(":")
    if name not in PRESETS:
        raise AnswerEvalError(f"unknown answer configuration {name!r}; known: {', '.join(PRESETS)}")
    overrides: dict[str, Any] = {}
    llm = endpoint = embedding = None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise AnswerEvalError(f"{spec}: {item!r} is not key=value")
        if key == "llm":
            llm = value
        elif key == "llm_endpoint":
            endpoint = value
        elif key == "embedding":
            embedding = value
        else:
            overrides[key] = value
    return AnswerConfig(
        name=spec.strip(),
        answer_mode=PRESETS[name],
        overrides=overrides,
        llm=llm,
        llm_endpoint=endpoint,
        embedding=embedding,
    )


def apply_overrides(settings: Any, overrides: dict[str, Any]) -> Any:
    """A copy of ``settings`` with dotted-path overrides applied and validated (a bad one names the field)."""
    from pydantic import ValidationError

    from careqa.config import Settings
    from endpoints.errors import format_validation_errors

    data = settings.model_dump()
    for path, value in overrides.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise AnswerEvalError(f"{path}: no such setting")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], dict | list):
            raise AnswerEvalError(f"{path}: no such setting")
        node[leaf] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise AnswerEvalError(f"invalid override: {format_validation_errors(exc)}") from None


def engine_for(runtime: Any, config: AnswerConfig) -> Any:
    """The answer engine a configuration describes, over the runtime's index and embedding model."""
    settings = apply_overrides(runtime.settings, config.overrides) if config.overrides else runtime.settings
    llm = runtime.llm(config.llm, endpoint_name=config.llm_endpoint) if config.llm or config.llm_endpoint else None
    if llm is None and config.llm_endpoint:
        raise AnswerEvalError(f"{config.name}: llm_endpoint needs llm=<model config>")
    embedding = runtime.embedding_model(config.embedding) if config.embedding else None
    return runtime.answer_engine(  # type: ignore[no-any-return]
        settings, answer_mode=config.answer_mode, llm=llm, embedding=embedding
    )


# ---------------------------------------------------------------------------------------------------
# the guard against scripted adversarial outputs

_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_AUXILIARY = re.compile(r"\b(is|are|can|will|does|do|must|should|may|was|were|has|have)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|never)\s+|n't\b|\bcannot\b", re.IGNORECASE)
ADVERSARIAL_KINDS = ("another_code", "swapped_number", "flipped_negation", "off_topic")


def flip_negation(sentence: str) -> str | None:
    """The sentence with its negation removed, or one added after its first auxiliary verb."""
    if _NEGATION.search(sentence):
        flipped = re.sub(r"\bcannot\b", "can", sentence, count=1, flags=re.IGNORECASE)
        if flipped == sentence:
            flipped = _NEGATION.sub("", sentence, count=1)
        return flipped if flipped != sentence else None
    match = _AUXILIARY.search(sentence)
    if match is None:
        return None
    return sentence[: match.end()] + " not" + sentence[match.end() :]


def swap_number(sentence: str, others: Sequence[str]) -> str | None:
    """The sentence with one number changed: two of its numbers swapped, or one replaced by another of the KB's.

    Numbers of a range ("3 to 5") are not swapped with each other: "5 to 3" says the same thing.
    """
    numbers = _NUMBER.findall(sentence)
    distinct = list(dict.fromkeys(numbers))
    ranged = set(re.findall(r"\b(\d+)\s*(?:to|-|–|and|or)\s*(\d+)\b", sentence))
    if len(distinct) >= 2 and (distinct[0], distinct[1]) not in ranged:
        a, b = distinct[0], distinct[1]
        return re.sub(rf"\b({re.escape(a)}|{re.escape(b)})\b", lambda m: b if m.group(1) == a else a, sentence)
    if distinct:
        replacement = next((n for n in others if n not in distinct), None)
        if replacement is not None:
            return re.sub(rf"\b{re.escape(distinct[0])}\b", replacement, sentence, count=1)
    return None


@dataclass
class GuardTally:
    """How the guard treated scripted sentences of one kind."""

    n: int = 0
    kept: int = 0  # let through (for wrong sentences: the failures)
    examples: list[str] = field(default_factory=list)


def guard_eval(runtime: Any, questions: Sequence[JudgedAnswer], *, engine: Any | None = None) -> dict[str, GuardTally]:
    """Run the guard on scripted outputs for each answerable question: the right sentences, and wrong variants.

    Right sentences are the expected sources' sentences that state a required fact. Wrong ones are made from
    them: another code named instead of the question's, a number swapped or replaced, the negation flipped;
    and a true sentence from the closest unit that is not an expected source (true, but off topic). The
    guard sees what it sees in ``generate`` mode: the retrieved passages, the question's codes.
    """
    from careqa.grounding import passage_body, split_sentences
    from careqa.query import analyse, code_mentions, known_codes, tenant_glossary

    engine = engine or runtime.answer_engine(answer_mode="generate")
    tallies = {kind: GuardTally() for kind in ("right", *ADVERSARIAL_KINDS)}
    for q in questions:
        if not q.answerable:
            continue
        tenant_cfg = engine.settings.tenant(q.tenant)
        glossary = tenant_glossary(tenant_cfg.builtin_glossaries, tenant_cfg.glossary)
        retrieval = engine.retriever.retrieve(q.tenant, analyse(q.question, glossary).expanded)
        units = [*retrieval.units, *retrieval.passages]
        known = known_codes(f"{u.title}\n{u.question or ''}\n{u.text}" for u in units)
        query = analyse(q.question, glossary, known_codes=known)
        expected = [u for u in units if any(source_matches(e, u.doc_id, u.source_url, q.tenant) for e in q.sources)]
        if not expected:
            continue  # retrieval missed every expected source: nothing right to script for this question
        right = list(
            dict.fromkeys(
                s for u in expected for s in split_sentences(passage_body(u)) if any(f.search(s) for f in q.facts)
            )
        )
        numbers = [n for u in units for n in _NUMBER.findall(u.text)]
        wrong: dict[str, list[str]] = {kind: [] for kind in ADVERSARIAL_KINDS}
        for sentence in right:
            mentioned = code_mentions(sentence, known=known)
            others = sorted(known - set(query.codes) - set(mentioned))
            if query.codes and mentioned and others:
                wrong["another_code"].append(re.sub(rf"\b{re.escape(mentioned[0])}\b", others[0], sentence, count=1))
            swapped = swap_number(sentence, numbers)
            if swapped and swapped != sentence:
                wrong["swapped_number"].append(swapped)
            flipped = flip_negation(sentence)
            if flipped:
                wrong["flipped_negation"].append(flipped)
        expected_ids = {u.chunk_id for u in expected}
        off = next(
            (
                u
                for u in retrieval.units
                if u.chunk_id not in expected_ids and u.doc_id not in {e.doc_id for e in expected}
            ),
            None,
        )
        if off is not None:
            first = next((s for s in split_sentences(passage_body(off)) if not any(f.search(s) for f in q.facts)), None)
            if first and first not in right:
                wrong["off_topic"].append(first)
        # The guard is measured as if the LLM had seen the right source: its passages are the expected units
        # and the retrieved documents, as in generate mode.
        passages = list({p.chunk_id: p for p in [*expected, *retrieval.passages]}.values())
        reading = engine.reader.read(query, [(query.expanded, retrieval.query_vector, retrieval.units)], known)
        on_topic = engine.on_topic(reading, passages)
        for kind, sentences in [("right", right), *wrong.items()]:
            for sentence in sentences:
                [check] = engine.guard.check(
                    sentence,
                    passages,
                    retrieval.query_vector,
                    codes=query.codes,
                    known_codes=known,
                    on_topic=on_topic,
                    question=query.expanded,
                )[:1] or [None]
                tally = tallies[kind]
                tally.n += 1
                kept = bool(check and check.supported)
                tally.kept += kept
                if (kept if kind != "right" else not kept) and len(tally.examples) < 5:
                    tally.examples.append(f"{q.id}: {sentence}" + (f" ({check.reason})" if check else ""))
    return tallies


def format_guard(tallies: dict[str, GuardTally]) -> str:
    right = tallies["right"]
    lines = [
        f"guard on scripted outputs: right sentences dropped {right.n - right.kept}/{right.n}; "
        "wrong sentences let through (goal 0):"
    ]
    for kind in ADVERSARIAL_KINDS:
        t = tallies[kind]
        lines.append(f"  {kind:<18} {t.kept}/{t.n}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# graded relevance (TREC LiveQA-Med on MedQuAD): is the cited source a useful answer?

GradedVerdict = Literal["useful", "related", "wrong", "abstained", "error"]
GRADED_VERDICTS = ("useful", "related", "wrong", "abstained")


def score_graded(relevance: dict[str, int], answer: Answer, tenant: str) -> GradedVerdict:
    """``useful``: a cited source of grade >= 3; ``related``: grade 2 at best; ``wrong``: none of grade >= 2."""
    if answer.status != "answered":
        return "abstained"
    grades = [relevance.get(_kb_id(s.doc_id, tenant), 1) for s in answer.sources if s.cited]
    best = max(grades, default=1)
    return "useful" if best >= 3 else "related" if best == 2 else "wrong"


def run_graded(
    name: str, ask: AskFn, questions: Sequence[Any], tenant: str, form: str, *, errors: tuple[type, ...] = ()
) -> dict[str, Any]:
    """Ask each graded question (``careqa.evaluate.JudgedQuestion``) in one query form; shares and latency."""
    verdicts: dict[str, str] = {}
    latencies: list[float] = []
    modes: Counter[str] = Counter()
    for q in questions:
        started = time.perf_counter()
        try:
            answer = ask(tenant, q.query(form))
        except errors:
            verdicts[q.id] = "error"
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        verdicts[q.id] = score_graded(q.relevance, answer, tenant)
        modes[answer.mode] += 1
    counts = Counter(verdicts.values())
    n = len(questions)
    return {
        "config": name,
        "form": form,
        "n": n,
        **{v: counts[v] for v in (*GRADED_VERDICTS, "error")},
        **{f"{v}_share": round(counts[v] / n, 4) if n else 0.0 for v in GRADED_VERDICTS},
        "modes": dict(modes),
        "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
        "per_question": verdicts,
    }


def format_graded(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        f"{'configuration':<24} {'query':<10} {'useful':>7} {'related':>8} {'wrong':>6} {'abst.':>6} "
        f"{'p50 ms':>7} {'p95 ms':>7}"
    )
    lines = [header, "─" * len(header)]
    for r in rows:
        lines.append(
            f"{r['config']:<24} {r['form']:<10} {r['useful_share']:>7.1%} {r['related_share']:>8.1%} "
            f"{r['wrong_share']:>6.1%} {r['abstained_share']:>6.1%} {r['latency_ms']['p50']:>7.0f} "
            f"{r['latency_ms']['p95']:>7.0f}"
        )
    lines.append(
        "useful: cites a source graded >= 3 (incomplete or excellent); related: grade 2 at best; "
        "wrong: answered, no cited source graded >= 2."
    )
    return "\n".join(lines)
