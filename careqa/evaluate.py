"""Retrieval evaluation: ingest a knowledge base once, then score retrieval configurations on judged questions.

Scores are at the document level (a Q&A pair or a document), the unit a relevance judgment is about:
chunk hits are mapped to their ``doc_id``, and the knowledge base's own ``id`` is that ``doc_id`` without
the ``<tenant>/`` prefix. Relevance grades follow TREC LiveQA-Med: 1 incorrect, 2 related, 3 incomplete,
4 excellent; an unjudged document counts as grade 1 (not relevant).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import ValidationError

from careqa.config import RetrievalConfig
from careqa.errors import CareQAError
from careqa.index.base import ChunkIndex
from careqa.ingest import IngestReport, ingest_folder
from careqa.knowledge import MAX_FILE_BYTES
from careqa.retrieve import HybridRetriever
from endpoints.errors import format_validation_errors

EVAL_TENANT = "eval"
#: staged JSONL parts stay well under the loader's per-file limit
_PART_BYTES = MAX_FILE_BYTES // 2


def stage_kb(kb: Path, stage_dir: Path) -> Path:
    """A folder that holds exactly the knowledge base ``kb`` (a folder is used as it is).

    A single file is copied into ``stage_dir``; a JSONL file larger than the loader accepts is split into
    parts of whole lines. Record ids do not depend on the file name, so re-staging never re-embeds.
    """
    if kb.is_dir():
        return kb
    if not kb.is_file():
        raise FileNotFoundError(f"knowledge base {kb} does not exist")
    stage_dir.mkdir(parents=True, exist_ok=True)
    for old in stage_dir.iterdir():
        if old.is_file():
            old.unlink()
    if kb.suffix.lower() != ".jsonl" or kb.stat().st_size <= MAX_FILE_BYTES:
        shutil.copyfile(kb, stage_dir / kb.name)
        return stage_dir
    part, size, number = [], 0, 1
    with kb.open("rb") as src:
        for line in src:
            if size + len(line) > _PART_BYTES and part:
                (stage_dir / f"{kb.stem}.part{number:03d}.jsonl").write_bytes(b"".join(part))
                part, size, number = [], 0, number + 1
            part.append(line)
            size += len(line)
    if part:
        (stage_dir / f"{kb.stem}.part{number:03d}.jsonl").write_bytes(b"".join(part))
    return stage_dir


def ingest_kb(
    kb: Path, data_dir: Path, *, index: ChunkIndex, embeddings: Embeddings, tenant: str = EVAL_TENANT
) -> IngestReport:
    """Ingest ``kb`` as ``tenant`` with the product's ingestion (idempotent: a re-run only hashes)."""
    folder = stage_kb(kb, data_dir / "kb")
    return ingest_folder(folder, tenant, index=index, embeddings=embeddings, sync=True)


# ---------------------------------------------------------------------------------------------------
# judged questions


@dataclass(frozen=True)
class JudgedQuestion:
    """A question with graded relevance judgments: knowledge-base id -> grade (1-4)."""

    id: str
    subject: str
    message: str
    paraphrase: str
    relevance: dict[str, int]

    def query(self, form: str) -> str:
        """The query text for a form: ``message`` (subject + ". " + message, as pasted) or ``paraphrase``."""
        if form == "message":
            return f"{self.subject}. {self.message}" if self.subject else self.message
        if form == "paraphrase":
            return self.paraphrase
        raise ValueError(f"unknown query form {form!r}; known: {', '.join(QUERY_FORMS)}")


QUERY_FORMS = ("message", "paraphrase")


def load_questions(path: Path) -> list[JudgedQuestion]:
    """Judged questions from a JSONL file (``id``, ``subject``, ``message``, ``paraphrase``, ``relevance``)."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            relevance = {str(k): int(v) for k, v in obj["relevance"].items()}
            questions.append(
                JudgedQuestion(
                    id=str(obj["id"]),
                    subject=str(obj.get("subject") or "").strip(),
                    message=str(obj.get("message") or "").strip(),
                    paraphrase=str(obj.get("paraphrase") or "").strip(),
                    relevance=relevance,
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EvalInputError(f"{path}:{number}: not a judged question ({exc.__class__.__name__}: {exc})") from None
    if not questions:
        raise EvalInputError(f"{path}: no questions")
    return questions


class EvalInputError(CareQAError):
    """A questions file that cannot be read."""

    code = "eval_input"


# ---------------------------------------------------------------------------------------------------
# metrics: a ranking is a list of knowledge-base ids, best first; relevance maps ids to grades 1-4

RELEVANT_GRADE = 3


def _dedupe(ranking: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def ndcg_at(ranking: Sequence[str], relevance: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gain ``grade - 1`` (unjudged: 0) and a log2(rank + 1) discount."""
    gains = [max(relevance.get(doc, 1) - 1, 0) for doc in _dedupe(ranking)[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((max(g - 1, 0) for g in relevance.values()), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def success_at(ranking: Sequence[str], relevance: dict[str, int], k: int = 5) -> float:
    """1 if a document of grade >= 3 is in the top k, else 0."""
    return float(any(relevance.get(doc, 1) >= RELEVANT_GRADE for doc in _dedupe(ranking)[:k]))


def mrr_at(ranking: Sequence[str], relevance: dict[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first document of grade >= 3 in the top k (0 if none)."""
    for rank, doc in enumerate(_dedupe(ranking)[:k], start=1):
        if relevance.get(doc, 1) >= RELEVANT_GRADE:
            return 1.0 / rank
    return 0.0


def recall_at(ranking: Sequence[str], relevance: dict[str, int], k: int = 10) -> float:
    """Share of the grade >= 3 documents found in the top k (0 if the question has none)."""
    relevant = {doc for doc, grade in relevance.items() if grade >= RELEVANT_GRADE}
    if not relevant:
        return 0.0
    return len(relevant & set(_dedupe(ranking)[:k])) / len(relevant)


METRICS: dict[str, Callable[[Sequence[str], dict[str, int]], float]] = {
    "ndcg@10": ndcg_at,
    "success@5": success_at,
    "mrr@10": mrr_at,
    "recall@10": recall_at,
}


def score_ranking(ranking: Sequence[str], relevance: dict[str, int]) -> dict[str, float]:
    """Every metric of one ranked list."""
    return {name: fn(ranking, relevance) for name, fn in METRICS.items()}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0-1) by linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------------------------------
# configurations compared side by side: a preset name, optionally with overrides ("default:candidates=50")

#: overrides of the configured retrieval settings; ``default`` is the configuration as it stands
PRESETS: dict[str, dict[str, Any]] = {
    "bm25": {"dense_weight": 0.0, "lexical_weight": 1.0, "fusion": "rrf", "candidates": 100, "query_parts": 0},
    "dense-answers": {
        "lexical_weight": 0.0,
        "dense_weight": 1.0,
        "qa_dense": "blend",
        "question_weight": 0.0,
        "dense_candidates": 100,
        "query_parts": 0,
    },
    "dense-questions": {
        "lexical_weight": 0.0,
        "dense_weight": 1.0,
        "qa_dense": "blend",
        "question_weight": 1.0,
        "dense_candidates": 200,
        "query_parts": 0,
    },
    "dense-max": {
        "lexical_weight": 0.0,
        "dense_weight": 1.0,
        "qa_dense": "max",
        "dense_candidates": 100,
        "query_parts": 0,
    },
    # the retrieval before careqa eval existed: RRF of BM25 and one dense list (best chunk), 20 hits each
    "rrf-v1": {
        "fusion": "rrf",
        "rrf_k": 60,
        "lexical_weight": 1.0,
        "dense_weight": 1.0,
        "qa_dense": "max",
        "candidates": 20,
        "dense_candidates": 20,
        "query_parts": 0,
    },
    "default": {},
    "default-rrf": {"fusion": "rrf", "lexical_weight": 1.0},
    "default-blend": {"qa_dense": "blend", "question_weight": 0.5},
    "default-no-question-vectors": {"qa_dense": "blend", "question_weight": 0.0},
    "default-no-bm25": {"lexical_weight": 0.0},
    "default-bm25-0.3": {"lexical_weight": 0.3},
    "default-query-parts": {"query_parts": 8, "split_min_words": 15},
    "default-candidates-20": {"candidates": 20, "dense_candidates": 20},
    "default-candidates-200": {"candidates": 200, "dense_candidates": 200},
}
DEFAULT_CONFIGS = tuple(PRESETS)


def parse_config_spec(spec: str, base: RetrievalConfig) -> RetrievalConfig:
    """``preset[:field=value...]`` on top of ``base`` (the configured retrieval settings)."""
    name, *overrides = spec.strip().split(":")
    if name not in PRESETS:
        raise EvalInputError(f"unknown retrieval configuration {name!r}; known: {', '.join(PRESETS)}")
    values: dict[str, Any] = {**base.model_dump(), **PRESETS[name]}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in RetrievalConfig.model_fields:
            raise EvalInputError(f"{spec}: {item!r} is not field=value with a retrieval field")
        values[key] = value
    try:
        return RetrievalConfig.model_validate(values)
    except ValidationError as exc:
        raise EvalInputError(f"{spec}: {format_validation_errors(exc)}") from None


# ---------------------------------------------------------------------------------------------------
# the run


@dataclass
class FormResult:
    """One configuration's scores on one query form: metric means over questions, latency percentiles."""

    metrics: dict[str, float]
    latency_ms: dict[str, float]
    per_question: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """A configuration against the baseline on one metric, question by question (paired)."""

    baseline: str
    metric: str
    delta: float  # mean over questions of (this configuration - baseline)
    low: float  # 95% paired-bootstrap interval of ``delta``
    high: float
    wins: int  # questions scored higher than by the baseline
    losses: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "metric": self.metric,
            "delta": round(self.delta, 4),
            "ci95": [round(self.low, 4), round(self.high, 4)],
            "wins": self.wins,
            "losses": self.losses,
        }


@dataclass
class ConfigResult:
    name: str
    settings: RetrievalConfig
    forms: dict[str, FormResult] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # by form

    def to_dict(self) -> dict[str, Any]:
        forms: dict[str, Any] = {}
        for form, r in self.forms.items():
            forms[form] = {
                **{k: round(v, 4) for k, v in r.metrics.items()},
                "latency_ms": {k: round(v, 2) for k, v in r.latency_ms.items()},
            }
            if form in self.comparisons:
                forms[form]["vs_baseline"] = self.comparisons[form].to_dict()
            forms[form]["per_question"] = {
                qid: {k: round(v, 4) for k, v in scores.items()} for qid, scores in r.per_question.items()
            }
        return {
            "config": self.name,
            "settings": self.settings.model_dump(exclude={"min_evidence", "curated_match", "top_k"}),
            "forms": forms,
        }


#: resamples of the paired bootstrap; seeded, so a run's intervals are reproducible
BOOTSTRAP_RESAMPLES = 10_000


def paired_bootstrap(ours: Sequence[float], theirs: Sequence[float], *, seed: int = 0) -> tuple[float, float, float]:
    """Mean paired difference and its 95% percentile-bootstrap interval, resampling questions.

    With a few dozen judged questions, a difference in means can be one or two questions' luck: the
    interval says how much of it survives resampling which questions were asked.
    """
    diffs = np.asarray(ours, dtype=float) - np.asarray(theirs, dtype=float)
    if diffs.size == 0:
        raise ValueError("no questions to compare")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, (BOOTSTRAP_RESAMPLES, diffs.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def compare(results: Sequence[ConfigResult], baseline: str, metric: str = "ndcg@10") -> None:
    """Set each result's comparison with the configuration named ``baseline``, per query form."""
    base = next((r for r in results if r.name == baseline), None)
    if base is None:
        raise EvalInputError(f"baseline {baseline!r} is not one of the configurations run")
    for r in results:
        for form, f in r.forms.items():
            ids = list(base.forms[form].per_question)
            ours = [f.per_question[q][metric] for q in ids]
            theirs = [base.forms[form].per_question[q][metric] for q in ids]
            delta, low, high = paired_bootstrap(ours, theirs)
            wins = sum(a > b + 1e-12 for a, b in zip(ours, theirs, strict=True))
            losses = sum(b > a + 1e-12 for a, b in zip(ours, theirs, strict=True))
            r.comparisons[form] = Comparison(baseline, metric, delta, low, high, wins, losses)


def kb_id(doc_id: str, tenant: str) -> str:
    """The knowledge base's own id of a document (``doc_id`` is ``<tenant>/<id>``)."""
    prefix = f"{tenant}/"
    return doc_id[len(prefix) :] if doc_id.startswith(prefix) else doc_id


def evaluate_config(
    name: str,
    config: RetrievalConfig,
    questions: Sequence[JudgedQuestion],
    *,
    index: ChunkIndex,
    embeddings: Embeddings,
    tenant: str = EVAL_TENANT,
    forms: Sequence[str] = QUERY_FORMS,
    depth: int = 10,
) -> ConfigResult:
    """Retrieve the top ``depth`` documents for every question and form with ``config`` and score them."""
    retriever = HybridRetriever(index, embeddings, config)
    result = ConfigResult(name=name, settings=config)
    for form in forms:
        per_question: dict[str, dict[str, float]] = {}
        latencies: list[float] = []
        for q in questions:
            started = time.perf_counter()
            retrieval = retriever.retrieve(tenant, q.query(form), top_k=depth)
            latencies.append((time.perf_counter() - started) * 1000)
            ranking = [kb_id(p.doc_id, tenant) for p in retrieval.passages]
            per_question[q.id] = score_ranking(ranking, q.relevance)
        means = {m: sum(s[m] for s in per_question.values()) / len(per_question) for m in METRICS}
        result.forms[form] = FormResult(
            metrics=means,
            latency_ms={"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
            per_question=per_question,
        )
    return result


def format_table(results: Sequence[ConfigResult]) -> str:
    """A fixed-width table: one row per configuration and query form."""
    header = (
        f"{'configuration':<30} {'query':<10} {'nDCG@10':>7} {'S@5':>6} {'MRR@10':>6} {'R@10':>6} "
        f"{'p50 ms':>7} {'p95 ms':>7}"
    )
    baseline = next((c.baseline for r in results for c in r.comparisons.values()), None)
    if baseline:
        header += f"  nDCG@10 vs {baseline} [95% CI] wins/losses"
    lines = [header, "-" * len(header)]
    for r in results:
        for form, f in r.forms.items():
            m = f.metrics
            line = (
                f"{r.name:<30} {form:<10} {m['ndcg@10']:>7.3f} {m['success@5']:>6.3f} {m['mrr@10']:>6.3f} "
                f"{m['recall@10']:>6.3f} {f.latency_ms['p50']:>7.1f} {f.latency_ms['p95']:>7.1f}"
            )
            c = r.comparisons.get(form)
            if c is not None and r.name != c.baseline:
                line += f"  {c.delta:+.3f} [{c.low:+.3f}, {c.high:+.3f}] {c.wins}/{c.losses}"
            lines.append(line)
    return "\n".join(lines)


@dataclass
class EvalRun:
    """Everything ``careqa eval`` reports: the ingest, and each configuration's scores."""

    kb: str
    questions: str
    tenant: str
    n_questions: int
    ingest: IngestReport
    results: list[ConfigResult]

    def to_dict(self) -> dict[str, Any]:
        ingest = self.ingest.to_dict()
        ingest.pop("rejections")
        return {
            "kb": self.kb,
            "questions": self.questions,
            "tenant": self.tenant,
            "n_questions": self.n_questions,
            "metrics": {
                "ndcg@10": "nDCG@10, gain = grade - 1 (unjudged 0)",
                "success@5": "share of questions with a grade >= 3 document in the top 5",
                "mrr@10": "mean reciprocal rank of the first grade >= 3 document in the top 10",
                "recall@10": "share of a question's grade >= 3 documents in the top 10, averaged",
                "latency_ms": "retrieval per question (embedding included), p50 and p95",
            },
            "ingest": ingest,
            "results": [r.to_dict() for r in self.results],
        }


def run_eval(
    kb: Path,
    questions_file: Path,
    data_dir: Path,
    *,
    index: ChunkIndex,
    embeddings: Embeddings,
    base: RetrievalConfig,
    specs: Sequence[str] = DEFAULT_CONFIGS,
    forms: Sequence[str] = QUERY_FORMS,
    tenant: str = EVAL_TENANT,
    baseline: str | None = None,
    models: Sequence[tuple[str, ChunkIndex, Embeddings]] = (),
) -> EvalRun:
    """Ingest ``kb`` (once: a re-run only hashes), then score every configuration in ``specs``.

    With ``models`` (label, its index, its embeddings), every configuration is scored with each embedding
    model, named ``<label>/<spec>``, each model with its own index (``index`` and ``embeddings`` are then
    unused). Each configuration is compared question by question with ``baseline`` (default: the first).
    """
    for form in forms:
        if form not in QUERY_FORMS:
            raise EvalInputError(f"unknown query form {form!r}; known: {', '.join(QUERY_FORMS)}")
    configs = [(spec, parse_config_spec(spec, base)) for spec in specs]
    runs = list(models) or [("", index, embeddings)]
    names = [f"{label}/{spec}" if label else spec for label, _, _ in runs for spec in specs]
    baseline = baseline or (names[0] if names else None)
    if baseline not in names:
        raise EvalInputError(f"baseline {baseline!r} is not one of the configurations: {', '.join(names)}")
    questions = load_questions(questions_file)
    results = []
    reports = {}
    for label, model_index, model_embeddings in runs:
        reports[label] = ingest_kb(kb, data_dir, index=model_index, embeddings=model_embeddings, tenant=tenant)
        for name, config in configs:
            results.append(
                evaluate_config(
                    f"{label}/{name}" if label else name,
                    config,
                    questions,
                    index=model_index,
                    embeddings=model_embeddings,
                    tenant=tenant,
                    forms=forms,
                )
            )
    compare(results, baseline)
    first = next(iter(reports.values()))
    return EvalRun(str(kb), str(questions_file), tenant, len(questions), first, results)
