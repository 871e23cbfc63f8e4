"""Ingestion throughput and answer latency by stage, on the sample knowledge base and on MedQuAD.

Every figure is printed next to a baseline measured in the same process:
- ingestion chunks/s against the embedding model's raw batch throughput on the same chunk texts
  (the configured backend's bare model, no codec, no index): the ratio is what the pipeline costs;
- answer latency per stage (embed, retrieve, generate, check) as p50/p95, with each stage's share.

Usage: python benchmarks/bench_pipeline.py [--medquad-pairs N] [--eval-dir ../shared/eval] [--skip-answers]
                                          [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from careqa.chunking import chunk_record  # noqa: E402
from careqa.config import load_settings  # noqa: E402
from careqa.ingest import ingest_folder  # noqa: E402
from careqa.knowledge import load_folder  # noqa: E402
from careqa.runtime import Runtime  # noqa: E402
from endpoints.errors import ModelInvocationError  # noqa: E402

SAMPLE_QUESTIONS = [
    "What does rejection code 75 mean?",
    "How long does a prior authorization take?",
    "The claim came back with code 79, what do I tell the patient?",
    "How do I transfer a prescription from another pharmacy?",
    "Can a Schedule II prescription be transferred?",
    "Where is my order? It says shipped.",
    "How do I update a patient's insurance?",
    "What if the package was lost?",
    "Can the pharmacy deliver to Canada?",
    "What is the capital of France?",
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def raw_throughput(runtime: Runtime, texts: list[str], repeats: int = 3) -> float:
    """Chunks/s of the bare embedding model on the same texts and batch size: the floor-cost baseline.

    The texts are sorted by length and cut into the model's batches, as ingestion does, and each batch goes
    to the configured backend's model directly (no payload, no index). The median of ``repeats`` runs, so
    one noisy run on a shared machine does not set the baseline.
    """
    container = runtime.embeddings.transport.container
    batch = runtime.embedding_config.max_batch_size
    ordered = sorted(texts, key=len)
    batches = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    container.encode(batches[-1])  # warm
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for part in batches:
            container.encode(part)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_ingest(runtime: Runtime, root: Path, tenant: str) -> dict[str, float]:
    records = load_folder(root, tenant).records
    texts = [c.embed_text for r in records for c in chunk_record(r)]
    sample = texts[:2000]  # the baseline's cost is linear in texts: a large sample is enough
    raw_before = raw_throughput(runtime, sample)
    report = ingest_folder(root, tenant, index=runtime.index, embeddings=runtime.embeddings, progress=True)
    raw = (raw_before + raw_throughput(runtime, sample)) / 2  # before and after, to cancel drift
    ingest_rate = report.chunks_written / report.seconds
    again = ingest_folder(root, tenant, index=runtime.index, embeddings=runtime.embeddings, progress=False)
    return {
        "documents": len(records),
        "chunks": report.chunks_written,
        "raw_embed_chunks_per_s": raw,
        "ingest_chunks_per_s": ingest_rate,
        "ingest_vs_raw": ingest_rate / raw,
        "embed_share_of_ingest": report.embed_seconds / report.seconds,
        "reingest_unchanged_s": again.seconds,
    }


def bench_answers(runtime: Runtime, tenant: str, questions: list[str]) -> dict[str, object]:
    runtime.engine.ask(tenant, questions[0])  # warm caches and models
    stages: dict[str, list[float]] = {k: [] for k in ("embed_ms", "retrieve_ms", "generate_ms", "check_ms", "total_ms")}
    modes: dict[str, int] = {}
    for q in questions:
        try:
            answer = runtime.engine.ask(tenant, q)
        except ModelInvocationError as exc:  # counted, not fatal: a timeout is a finding, not a crash
            modes[type(exc).__name__] = modes.get(type(exc).__name__, 0) + 1
            continue
        modes[answer.mode] = modes.get(answer.mode, 0) + 1
        for k in stages:
            stages[k].append(getattr(answer.timings, k))
    total = statistics.fmean(stages["total_ms"])
    return {
        "questions": len(questions),
        "modes": modes,
        "stages": {
            k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95), "mean_share_of_total": statistics.fmean(v) / total}
            for k, v in stages.items()
        },
    }


def medquad_folder(eval_dir: Path, pairs: int, into: Path) -> Path:
    """Write the first ``pairs`` MedQuAD Q&A pairs as a JSONL knowledge base (their URLs are the sources)."""
    into.mkdir(parents=True, exist_ok=True)
    with (eval_dir / "medquad-kb.jsonl").open() as src, (into / "medquad.jsonl").open("w") as dst:
        for i, line in enumerate(src):
            if pairs and i >= pairs:
                break
            r = json.loads(line)
            dst.write(
                json.dumps(
                    {
                        "id": r["id"],
                        "question": r["question"],
                        "answer": r["answer"],
                        "title": r.get("focus") or r["question"],
                        "source_url": r["source_url"],
                    }
                )
                + "\n"
            )
    return into


def show_ingest(name: str, r: dict[str, float]) -> None:
    print(f"\n== ingestion: {name} ({r['documents']} documents, {r['chunks']} chunks)")
    print(f"  raw embedding model (baseline)  {r['raw_embed_chunks_per_s']:8.1f} chunks/s")
    print(
        f"  careqa ingest                   {r['ingest_chunks_per_s']:8.1f} chunks/s   "
        f"ratio {r['ingest_vs_raw']:.2f} of raw; embedding is {r['embed_share_of_ingest']:.0%} of ingest time"
    )
    print(f"  re-ingest, nothing changed      {r['reingest_unchanged_s']:8.2f} s")


def show_answers(name: str, r: dict) -> None:
    print(f"\n== answer latency: {name} ({r['questions']} questions; modes {r['modes']})")
    print(f"  {'stage':10} {'p50 ms':>9} {'p95 ms':>9} {'share':>7}")
    for stage, s in r["stages"].items():
        print(f"  {stage[:-3]:10} {s['p50']:9.1f} {s['p95']:9.1f} {s['mean_share_of_total']:7.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--medquad-pairs", type=int, default=1000, help="MedQuAD pairs to ingest (0 = all 17,841)")
    parser.add_argument("--liveqa-questions", type=int, default=39)
    parser.add_argument("--skip-answers", action="store_true", help="ingestion only (no answer latency)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(REPO / "config" / "local.yaml", data_dir=Path(tmp))
        runtime = Runtime(settings)
        runtime.warm_up()
        pharmacy = settings.tenant("pharmacy").kb_path
        assert pharmacy is not None
        results["sample_ingest"] = r = bench_ingest(runtime, pharmacy, "pharmacy")
        show_ingest("sample knowledge base (pharmacy)", r)
        if not args.skip_answers:
            results["sample_answers"] = a = bench_answers(runtime, "pharmacy", SAMPLE_QUESTIONS)
            show_answers("sample knowledge base", a)

        if (args.eval_dir / "medquad-kb.jsonl").exists():
            folder = medquad_folder(args.eval_dir, args.medquad_pairs, Path(tmp) / "medquad")
            medquad = settings.model_copy(
                update={
                    "tenants": [
                        *settings.tenants,
                        settings.tenants[0].model_copy(update={"id": "medquad", "kb_path": folder}),
                    ]
                }
            )
            runtime.settings = medquad
            runtime.engine.settings = medquad
            results["medquad_ingest"] = r = bench_ingest(runtime, folder, "medquad")
            show_ingest(f"MedQuAD, first {args.medquad_pairs or 'all'} pairs", r)
            if not args.skip_answers:
                questions = []
                with (args.eval_dir / "liveqa-questions-public.jsonl").open() as f:
                    for line in f:
                        q = json.loads(line)
                        questions.append((q["subject"] + ". " + q["message"])[: settings.limits.max_question_chars])
                results["medquad_answers"] = a = bench_answers(runtime, "medquad", questions[: args.liveqa_questions])
                show_answers("MedQuAD with LiveQA consumer questions", a)
        else:
            print(f"\n(no {args.eval_dir}/medquad-kb.jsonl: MedQuAD part skipped)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
