"""Fine-tune the local stand-in of the embedding model on a tenant's knowledge base and agents' ratings.

What the model learns from, all of it the tenant's own:

* **The knowledge base**: a Q&A pair's question is paired with its answer chunks, a document section's heading
  path with its body (the text is what the index stores, without the heading line the index prepends, so the
  pair is not matched by copying words). Trained with in-batch negatives in both directions
  (``MultipleNegativesRankingLoss``, query-to-document and document-to-query): every other answer in the batch is
  a negative for a question, every other question for an answer, and the batch sampler keeps two pairs with the
  same text out of one batch. Optionally (``hard_negatives``) each pair also brings answers the base model ranks
  close to its question, mined with ``mine_hard_negatives``.
* **Agents' ratings** (``careqa feedback export``): a thumbs-up pairs the question with the sources its answer
  cited (a positive), a thumbs-down with them as a negative, in a second dataset with a contrastive loss.

Validation is split by document (a document's pairs are all on one side, so validation asks about
documents the model never trained on) and scored by MRR@10 over the validation documents' chunks and a
sample of training chunks as distractors. Training evaluates every ``eval_steps``, stops early when MRR
stops improving, and keeps the best checkpoint; a model whose validation MRR is not above the base model's
is not written at all: the base stays.

sentence-transformers' trainer does the training (the Hugging Face trainer underneath: optimiser,
warm-up, checkpoints, early stopping, progress bar); this module only turns a knowledge base into its
datasets and the result into a model config (``endpoints.custom``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from careqa.chunking import chunk_record
from careqa.errors import CareQAError
from careqa.types import KBRecord
from endpoints.custom import weights_sha256

#: validation queries at most (MRR over more costs evaluation time and barely narrows the estimate)
MAX_VALIDATION_QUERIES = 1000
#: training chunks added to the validation corpus as distractors
VALIDATION_DISTRACTORS = 2000


class TuningError(CareQAError):
    """The knowledge base or the ratings cannot be tuned on (too small, unreadable), or tuning did not help."""


@dataclass(frozen=True)
class TrainingPair:
    """A text an agent might ask with (``anchor``) and the chunk text that answers it, from one document."""

    anchor: str
    positive: str
    doc_id: str


@dataclass(frozen=True)
class RatedPair:
    """A question an agent rated, with one cited source's text: ``label`` 1.0 for thumbs-up, 0.0 for down."""

    question: str
    text: str
    label: float


#: below this many training pairs a knowledge base is "small": more passes, smaller batches, a higher rate
SMALL_KB_PAIRS = 5000


@dataclass
class TuneOptions:
    """How to tune. ``None`` means "by the knowledge base's size" (``resolved``)."""

    epochs: float | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    validation_fraction: float | None = None
    warmup_ratio: float = 0.1
    #: tokens per text while training; the saved model keeps the base model's own length for serving
    max_seq_length: int = 128
    #: answer chunks per Q&A pair used as positives (the first ones: they carry the answer's gist)
    parts_per_pair: int = 1
    eval_steps: int | None = None  # default: about four evaluations per epoch
    patience: int = 2
    max_minutes: float | None = None
    #: also rank each positive's anchor among the batch's anchors (MultipleNegativesSymmetricRankingLoss): on
    #: MedQuAD it lifted LiveQA-Med nDCG@10 by +0.028 on messages against +0.008 one-way (README, Benchmarks)
    symmetric: bool = True
    #: negatives per pair mined from the base model's own ranking of the training positives
    #: (sentence-transformers' ``mine_hard_negatives``), on top of the in-batch ones: a text the base model
    #: ranks close to the question that answers another one ("symptoms of X" for "causes of X")
    hard_negatives: int = 0
    #: the base model's best-ranked positives skipped when mining (default: 10, 2 for a small KB): in a
    #: knowledge base that answers one topic in several pairs, the very nearest are often right answers too
    hard_negative_skip: int | None = None
    seed: int = 0
    progress: bool = True

    def resolved(self, pairs: int, documents: int) -> TuneOptions:
        """Settings for a knowledge base of ``pairs`` training pairs from ``documents`` documents.

        A large one (MedQuAD's 17,841 pairs) learns enough in one pass of 64-pair batches at 5e-5 and holds out
        a tenth; a small one (the sample pharmacy's 100 or so) needs three passes of 8-pair batches at 1e-4 to
        move, and a third of its documents held out to measure anything.
        """
        small = pairs < SMALL_KB_PAIRS
        return replace(
            self,
            epochs=self.epochs if self.epochs is not None else (3.0 if small else 1.0),
            batch_size=self.batch_size or (8 if small else 64),
            learning_rate=self.learning_rate if self.learning_rate is not None else (1e-4 if small else 5e-5),
            validation_fraction=self.validation_fraction or (0.3 if documents < 300 else 0.1),
            hard_negative_skip=self.hard_negative_skip if self.hard_negative_skip is not None else (2 if small else 10),
        )


@dataclass
class TuneResult:
    model_dir: Path
    weights_sha256: str
    base_model: str
    train_pairs: int
    rated_pairs: int
    validation_queries: int
    validation_mrr_base: float
    validation_mrr_tuned: float
    steps: int
    stopped_early: bool
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_dir"] = str(self.model_dir)
        return out


# ---------------------------------------------------------------------------------------------------
# datasets


def kb_pairs(records: Iterable[KBRecord], *, parts_per_pair: int = 1) -> list[TrainingPair]:
    """Training pairs from the records, through the product's own chunking (what the index will hold)."""
    pairs: list[TrainingPair] = []
    for record in records:
        taken = 0
        for chunk in chunk_record(record):
            if chunk.kind == "question":
                continue  # the question alone: its answer chunks are the positives
            anchor, _, body = chunk.text.partition("\n")
            body = body.strip()
            if chunk.kind == "answer":
                if taken >= parts_per_pair:
                    continue
                taken += 1
            if anchor.strip() and body:
                pairs.append(TrainingPair(anchor=anchor.strip(), positive=body, doc_id=record.doc_id))
    return pairs


def rated_pairs(rows: Iterable[dict[str, Any]], records: Sequence[KBRecord], tenant: str) -> list[RatedPair]:
    """Ratings of the tenant's answers as (question, cited source text, label); other tenants' rows are skipped.

    A source no longer in the knowledge base is skipped (its text cannot be trained on); so is a row
    without a question or rating.
    """
    first_chunk: dict[str, str] = {}
    for record in records:
        for chunk in chunk_record(record):
            if chunk.kind != "question":
                first_chunk.setdefault(record.doc_id, chunk.text)
                break
    out: list[RatedPair] = []
    for row in rows:
        if row.get("tenant") != tenant or row.get("rating") not in {"up", "down"} or not row.get("question"):
            continue
        label = 1.0 if row["rating"] == "up" else 0.0
        for source in row.get("sources") or []:
            if not isinstance(source, dict) or not source.get("cited"):
                continue
            text = first_chunk.get(str(source.get("doc_id")))
            if text:
                out.append(RatedPair(question=str(row["question"]), text=text, label=label))
    return out


def read_feedback(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``careqa feedback export`` JSONL file; a bad line is an error naming its number."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TuningError(f"cannot read the feedback file {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TuningError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise TuningError(f"{path}:{number}: expected an exported rating (a JSON object)")
        rows.append(row)
    return rows


def _in_validation(doc_id: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_by_document(
    pairs: Sequence[TrainingPair], fraction: float, seed: int = 0
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, validation): every pair of a document on the same side, chosen by a hash of its id."""
    train, validation = [], []
    for pair in pairs:
        (validation if _in_validation(pair.doc_id, fraction, seed) else train).append(pair)
    if not validation and len({p.doc_id for p in train}) > 1:
        # a tiny knowledge base whose hashes all fell on the training side: hold out one document
        held = sorted({p.doc_id for p in train})[-1]
        validation = [p for p in train if p.doc_id == held]
        train = [p for p in train if p.doc_id != held]
    return train, validation


def validation_evaluator(
    validation: Sequence[TrainingPair], train: Sequence[TrainingPair], seed: int = 0, batch_size: int = 64
) -> Any:
    """MRR@10 of validation anchors over the validation chunks plus training chunks as distractors."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    rng = random.Random(seed)
    corpus: dict[str, str] = {}
    by_text: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    queries: dict[str, str] = {}

    def corpus_id(text: str) -> str:
        if text not in by_text:
            by_text[text] = f"c{len(by_text)}"
            corpus[by_text[text]] = text
        return by_text[text]

    anchors: dict[str, set[str]] = {}
    for pair in validation:
        anchors.setdefault(pair.anchor, set()).add(corpus_id(pair.positive))
    chosen = sorted(anchors)
    rng.shuffle(chosen)
    for n, anchor in enumerate(sorted(chosen[:MAX_VALIDATION_QUERIES])):
        queries[f"q{n}"] = anchor
        relevant[f"q{n}"] = anchors[anchor]
    distractors = [p.positive for p in train]
    rng.shuffle(distractors)
    for text in distractors[:VALIDATION_DISTRACTORS]:
        corpus_id(text)
    return InformationRetrievalEvaluator(
        queries=queries,
        corpus=corpus,
        relevant_docs=relevant,
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1, 5],
        precision_recall_at_k=[10],
        map_at_k=[10],
        batch_size=batch_size,
        name="validation",
        write_csv=False,
        show_progress_bar=False,
    )


# ---------------------------------------------------------------------------------------------------
# training


def _mrr(scores: dict[str, float]) -> float:
    for key, value in scores.items():
        if key.endswith("mrr@10"):
            return float(value)
    raise TuningError(f"the evaluator returned no MRR@10: {sorted(scores)}")


def _with_hard_negatives(kb: Any, pairs: Sequence[TrainingPair], model: Any, options: TuneOptions) -> Any:
    """The pairs with ``options.hard_negatives`` mined negatives each (columns negative_1 ... negative_n).

    sentence-transformers' ``mine_hard_negatives`` ranks every training positive for each question with the base
    model; candidates come from below the ``hard_negative_skip`` best and must be at least 5 % less similar than
    the pair's own positive (a near copy of the answer is not a wrong answer). It knows nothing of documents,
    so it mines two spare candidates per pair, and those from the pair's own document (another chunk of the same
    answer) are dropped here; a pair left with too few negatives trains without its row.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    wanted = options.hard_negatives
    mined = mine_hard_negatives(
        kb,
        model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        range_min=options.hard_negative_skip or 0,
        relative_margin=0.05,
        num_negatives=wanted + 2,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=options.batch_size or 32,
        verbose=options.progress,
    )
    documents: dict[str, set[str]] = {}
    for pair in pairs:
        documents.setdefault(pair.positive, set()).add(pair.doc_id)
    doc_of = {(p.anchor, p.positive): p.doc_id for p in pairs}
    columns: dict[str, list[str]] = {"anchor": [], "positive": []} | {f"negative_{i + 1}": [] for i in range(wanted)}
    for row in mined:
        own = doc_of.get((row["anchor"], row["positive"]))
        negatives = [
            text for key, text in row.items() if key.startswith("negative") and own not in documents.get(text, set())
        ][:wanted]
        if len(negatives) < wanted:
            continue
        columns["anchor"].append(row["anchor"])
        columns["positive"].append(row["positive"])
        for i, text in enumerate(negatives):
            columns[f"negative_{i + 1}"].append(text)
    if not columns["anchor"]:
        raise TuningError("no hard negatives could be mined: the knowledge base is too small for --hard-negatives")
    return Dataset.from_dict(columns)


def tune(
    base_weights: Path,
    pairs: Sequence[TrainingPair],
    out: Path,
    *,
    rated: Sequence[RatedPair] = (),
    base_name: str = "",
    options: TuneOptions | None = None,
) -> TuneResult:
    """Fine-tune the sentence-transformers model at ``base_weights`` and save the best model into ``out``.

    Raises :class:`TuningError` when there is too little to train or validate on, or when the best checkpoint
    does not score above the base model on validation (nothing is written then).
    """
    options = (options or TuneOptions()).resolved(len(pairs), len({p.doc_id for p in pairs}))
    assert options.epochs is not None and options.batch_size is not None and options.learning_rate is not None
    assert options.validation_fraction is not None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    started = time.perf_counter()
    train, validation = split_by_document(pairs, options.validation_fraction, options.seed)
    if len(train) < 4 or not validation:
        raise TuningError(
            f"too little to tune on: {len(train)} training and {len(validation)} validation pairs "
            "(a knowledge base of a few documents at least is needed)"
        )

    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import ContrastiveLoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import EarlyStoppingCallback, TrainerCallback

    torch.manual_seed(options.seed)
    model = SentenceTransformer(str(base_weights), device="cpu")
    serving_length = model.max_seq_length
    model.max_seq_length = options.max_seq_length
    evaluator = validation_evaluator(validation, train, options.seed, batch_size=options.batch_size)
    base_mrr = _mrr(evaluator(model))

    rng = random.Random(options.seed)
    shuffled = list(train)
    rng.shuffle(shuffled)
    kb = Dataset.from_dict({"anchor": [p.anchor for p in shuffled], "positive": [p.positive for p in shuffled]})
    if options.hard_negatives:
        kb = _with_hard_negatives(kb, shuffled, model, options)
    datasets: Any = kb
    loss: Any = MultipleNegativesRankingLoss(
        model,
        directions=("query_to_doc", "doc_to_query") if options.symmetric else ("query_to_doc",),
        partition_mode="per_direction",
    )
    if rated:
        ratings = Dataset.from_dict(
            {
                "sentence1": [r.question for r in rated],
                "sentence2": [r.text for r in rated],
                "label": [r.label for r in rated],
            }
        )
        datasets = {"kb": kb, "ratings": ratings}
        loss = {"kb": loss, "ratings": ContrastiveLoss(model)}

    steps_per_epoch = max(1, len(shuffled) // options.batch_size)
    eval_steps = options.eval_steps or max(1, round(steps_per_epoch * options.epochs / 4))

    class TimeBudget(TrainerCallback):  # type: ignore[misc]
        """Stop (after an evaluation, so the best checkpoint is known) once the time budget is spent."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if options.max_minutes is not None and time.perf_counter() - started > options.max_minutes * 60:
                control.should_evaluate = True
                control.should_save = True
                control.should_training_stop = True
            return control

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tune-", dir=out.parent))
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(work / "checkpoints"),
            num_train_epochs=options.epochs,
            per_device_train_batch_size=options.batch_size,
            per_device_eval_batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            warmup_steps=options.warmup_ratio,  # a float below 1 is a share of the steps
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            eval_strategy="steps",
            eval_steps=eval_steps,
            save_strategy="steps",
            save_steps=eval_steps,
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model="eval_validation_cosine_mrr@10",
            greater_is_better=True,
            logging_steps=max(1, eval_steps // 2),
            report_to="none",
            seed=options.seed,
            data_seed=options.seed,
            use_cpu=True,
            disable_tqdm=not options.progress,
            dataloader_num_workers=0,
        )
        early = EarlyStoppingCallback(early_stopping_patience=options.patience)
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=datasets,
            loss=loss,
            evaluator=evaluator,
            callbacks=[early, TimeBudget()],
        )
        trainer.train()
        tuned_mrr = _mrr(evaluator(model))
        total_steps = int(trainer.state.global_step)
        planned = int(trainer.state.max_steps)
        if tuned_mrr <= base_mrr:
            what = "lowered" if tuned_mrr < base_mrr else "did not improve"
            raise TuningError(
                f"tuning {what} validation MRR@10 ({base_mrr:.4f} -> {tuned_mrr:.4f}); nothing was written and the "
                "base model stays (try more pairs or ratings, more epochs or another learning rate)"
            )
        model.max_seq_length = serving_length
        staging = work / "model"
        model.save(str(staging))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return TuneResult(
        model_dir=out,
        weights_sha256=weights_sha256(out),
        base_model=base_name,
        train_pairs=len(train),
        rated_pairs=len(rated),
        validation_queries=len(evaluator.queries),
        validation_mrr_base=round(base_mrr, 4),
        validation_mrr_tuned=round(tuned_mrr, 4),
        steps=total_steps,
        stopped_early=total_steps < planned,
        seconds=round(time.perf_counter() - started, 1),
        options={k: v for k, v in asdict(options).items() if k != "progress"},
    )
