"""Embedding backends side by side: PyTorch fp32, ONNX Runtime fp32 and int8, on the same texts in one process.

Prints, each figure next to its baseline from the same run:
- raw texts/s of each backend's bare model (no payload, no index) on the same MedQuAD chunks and sample
  knowledge-base chunks, cut into the same batches (the config's max_batch_size, texts sorted by length as
  ingestion sorts them); rounds interleave the backends and the medians are printed, so a busy machine slows
  them alike; PyTorch is also run with an inner batch of 8 (its best on these chunks) so that the ratio is
  not only against the batch size PyTorch happened to be given;
  next to texts/s, texts per CPU-second of the process (all its threads), which other jobs on a shared
  machine disturb far less than wall time (run with OMP_WAIT_POLICY=PASSIVE, or PyTorch's OpenMP threads
  count the time they spin waiting for each other); ``--threads 1`` compares the backends core for core;
- each ONNX backend's cosine to the PyTorch vectors of the same texts;
- query embedding latency (p50/p95) of a 30-word question through the whole client path (codec, local
  transport, model), as retrieval calls it;
- ``careqa ingest`` chunks/s on MedQuAD against the raw throughput of the backend it runs on (raw measured
  before and after the ingest, on the same chunk texts, averaged);
- with ``--ndcg BACKEND=DIR``: nDCG@10 of the default retrieval configuration on the 39 public LiveQA-Med
  questions over the full MedQuAD knowledge base, indexed with that backend in DIR (ingested on the first
  run, which is timed; later runs only hash the file).

Usage: python benchmarks/bench_embeddings.py [--medquad-pairs 1000] [--raw-texts 600] [--repeats 3]
         [--ingest-backend onnx-int8] [--ndcg onnx-int8=/tmp/careqa-eval-onnx-int8 ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_pipeline import medquad_folder, pct  # noqa: E402
from careqa.chunking import chunk_record  # noqa: E402
from careqa.config import Settings, load_settings  # noqa: E402
from careqa.evaluate import stage_kb  # noqa: E402
from careqa.ingest import ingest_folder  # noqa: E402
from careqa.knowledge import load_folder  # noqa: E402
from careqa.runtime import Runtime  # noqa: E402
from endpoints.config import EMBEDDING_BACKENDS, ModelConfig  # noqa: E402
from endpoints.langchain import EndpointEmbeddings  # noqa: E402
from endpoints.local import EmbeddingContainer, local_transport  # noqa: E402

#: a question of 30 words (the length the issue sets for the query-latency target)
QUESTION_30_WORDS = (
    "My mother was prescribed metformin last month and now her stomach hurts badly after every single meal, "
    "so should she stop taking it or ask her doctor about another medicine?"
)
PYTORCH = "sentence-transformers"
PYTORCH_INNER8 = "sentence-transformers, inner batch 8"

Encoder = Callable[[list[str]], Any]


#: CPU threads every backend may use (None: the config's, i.e. all cores); set by --threads
THREADS: int | None = None


def with_backend(config: ModelConfig, backend: str) -> ModelConfig:
    assert config.local is not None
    local = config.local.model_copy(update={"backend": backend, "threads": THREADS or config.local.threads})
    return config.model_copy(update={"local": local})


def runtime_for(settings: Settings, backend: str) -> Runtime:
    """A runtime whose embedding model runs on ``backend`` (the model config otherwise unchanged)."""
    runtime = Runtime(settings)
    runtime.embedding_config = with_backend(runtime.embedding_config, backend)
    return runtime


def batches_of(texts: list[str], size: int) -> list[list[str]]:
    ordered = sorted(texts, key=len)  # as ingestion sorts a write group before batching
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def raw_rates(
    encoders: dict[str, Encoder],
    batches: list[list[str]],
    repeats: int,
    cpu_rates: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Texts/s of each encoder over the same batches; rounds interleave the encoders.

    ``cpu_rates``, when given, receives texts per CPU-second of this process (all its threads) for each round.
    """
    n = sum(len(b) for b in batches)
    for encode in encoders.values():
        encode(batches[-1])  # warm: first-call allocations and lazy initialisation
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(repeats):
        for name, encode in encoders.items():
            cpu_started, started = time.process_time(), time.perf_counter()
            for batch in batches:
                encode(batch)
            rates[name].append(n / (time.perf_counter() - started))
            if cpu_rates is not None:
                cpu_rates.setdefault(name, []).append(n / (time.process_time() - cpu_started))
    return rates


def vectors_of(encode: Encoder, batches: list[list[str]]) -> np.ndarray:
    return np.concatenate([np.asarray(encode(b), dtype=np.float64) for b in batches])


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    c = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"min": float(c.min()), "p1": float(np.percentile(c, 1)), "mean": float(c.mean())}


def query_latency(embeddings: EndpointEmbeddings, repeats: int = 200) -> dict[str, float]:
    embeddings.embed_query(QUESTION_30_WORDS)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        embeddings.embed_query(QUESTION_30_WORDS)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": pct(times, 0.5), "p95": pct(times, 0.95)}


def bench_ingest(settings: Settings, backend: str, folder: Path, sample: int, repeats: int) -> dict[str, Any]:
    """``careqa ingest`` of ``folder`` on ``backend`` against that backend's raw throughput on the same texts."""
    runtime = runtime_for(settings, backend)
    container = runtime.embeddings.transport.container
    records = load_folder(folder, "medquad").records
    texts = [c.embed_text for r in records for c in chunk_record(r)]
    batches = batches_of(
        random.Random(0).sample(texts, min(sample, len(texts))), runtime.embedding_config.max_batch_size
    )
    before = statistics.median(raw_rates({backend: container.encode}, batches, repeats)[backend])
    report = ingest_folder(folder, "medquad", index=runtime.index, embeddings=runtime.embeddings, progress=False)
    after = statistics.median(raw_rates({backend: container.encode}, batches, repeats)[backend])
    raw = (before + after) / 2
    rate = report.chunks_written / report.seconds
    return {
        "backend": backend,
        "documents": len(records),
        "chunks": report.chunks_written,
        "raw_chunks_per_s": raw,
        "raw_before_after": [before, after],
        "ingest_chunks_per_s": rate,
        "ingest_vs_raw": rate / raw,
        "embed_share_of_ingest": report.embed_seconds / report.seconds,
        "ingest_seconds": report.seconds,
    }


def bench_ndcg(settings: Settings, backend: str, data_dir: Path, eval_dir: Path) -> dict[str, Any]:
    from careqa.evaluate import run_eval
    from careqa.index.lance import LanceIndex

    runtime = runtime_for(settings, backend)
    cfg = runtime.embedding_config
    assert cfg.embedding_dimension is not None
    index = LanceIndex(data_dir / "index", dimension=cfg.embedding_dimension, embedding_model=cfg.model_id)
    run = run_eval(
        eval_dir / "medquad-kb.jsonl",
        eval_dir / "liveqa-questions-public.jsonl",
        data_dir,
        index=index,
        embeddings=runtime.embeddings,
        base=settings.retrieval,
        specs=["default"],
    )
    forms = run.results[0].forms
    return {
        "backend": backend,
        "data_dir": str(data_dir),
        "ndcg@10": {form: r.metrics["ndcg@10"] for form, r in forms.items()},
        "retrieval_ms_p50": {form: r.latency_ms["p50"] for form, r in forms.items()},
        "ingest": {k: v for k, v in run.ingest.to_dict().items() if k != "rejections"},
    }


def show_raw(title: str, rates: dict[str, list[float]], cpu: dict[str, list[float]], n: int) -> None:
    base, cpu_base = statistics.median(rates[PYTORCH]), statistics.median(cpu[PYTORCH])
    print(f"\n== raw embedding throughput: {title} ({n} texts, medians of {len(rates[PYTORCH])} interleaved rounds)")
    print(f"  {'backend':38} {'texts/s':>8}  {'vs PyTorch':>10}   {'per CPU-s':>9}  {'vs PyTorch':>10}   rounds")
    for name, values in rates.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        median, per_cpu = statistics.median(values), statistics.median(cpu[name])
        print(
            f"  {name:38} {median:8.1f}  x{median / base:9.2f}   {per_cpu:9.1f}  x{per_cpu / cpu_base:9.2f}   ({runs})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--medquad-pairs", type=int, default=1000, help="MedQuAD pairs to ingest (0 = all 17,841)")
    parser.add_argument("--raw-texts", type=int, default=600, help="MedQuAD chunks the raw comparison encodes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingest-backend", choices=EMBEDDING_BACKENDS, help="default: the model config's")
    parser.add_argument("--ndcg", action="append", default=[], metavar="BACKEND=DIR", help="score retrieval")
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw, quality and query-latency part")
    parser.add_argument("--skip-ingest", action="store_true", help="skip the ingestion part")
    parser.add_argument("--threads", type=int, help="CPU threads per backend (default: all cores)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads

    results: dict[str, Any] = {"load_average_start": os.getloadavg()}
    settings = load_settings(REPO / "config" / "local.yaml", data_dir=Path(tempfile.mkdtemp(prefix="bench-emb-")))
    config = Runtime(settings).embedding_config
    assert config.local is not None
    chosen = args.ingest_backend or config.local.backend
    print(f"model {config.name}; configured backend {config.local.backend}; {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as tmp:
        written = medquad_folder(args.eval_dir, args.medquad_pairs, Path(tmp) / "medquad-one-file")
        # split into files the loader accepts (the whole of MedQuAD is over its per-file limit), as careqa eval does
        folder = stage_kb(written / "medquad.jsonl", Path(tmp) / "medquad")
        if not args.skip_raw:
            medquad = [c.embed_text for r in load_folder(folder, "medquad").records for c in chunk_record(r)]
            medquad = random.Random(0).sample(medquad, min(args.raw_texts, len(medquad)))
            pharmacy = settings.tenant("pharmacy").kb_path
            assert pharmacy is not None
            sample_kb = [c.embed_text for r in load_folder(pharmacy, "pharmacy").records for c in chunk_record(r)]
            containers = {b: EmbeddingContainer(with_backend(config, b)) for b in (PYTORCH, "onnx-fp32", "onnx-int8")}
            encoders: dict[str, Encoder] = {name: c.encode for name, c in containers.items()}
            st = containers[PYTORCH]._model.get(containers[PYTORCH]._load).model
            encoders[PYTORCH_INNER8] = lambda texts: st.encode(texts, batch_size=8, convert_to_numpy=True)
            for title, texts in (("MedQuAD chunks", medquad), ("sample knowledge base chunks", sample_kb)):
                batches = batches_of(texts, config.max_batch_size)
                cpu: dict[str, list[float]] = {}
                rates = raw_rates(encoders, batches, args.repeats, cpu)
                show_raw(title, rates, cpu, len(texts))
                reference = vectors_of(encoders[PYTORCH], batches)
                quality = {
                    b: cosine_stats(vectors_of(encoders[b], batches), reference) for b in ("onnx-fp32", "onnx-int8")
                }
                for b, q in quality.items():
                    print(f"  {b} vs PyTorch, cosine: min {q['min']:.5f}  p1 {q['p1']:.5f}  mean {q['mean']:.5f}")
                results[f"raw {title}"] = {
                    "texts": len(texts),
                    "rates": rates,
                    "per_cpu_second": cpu,
                    "cosine_vs_pytorch": quality,
                }

            words = len(QUESTION_30_WORDS.split())
            print(f"\n== query embedding: a {words}-word question through the whole client path (codec, transport)")
            for backend in (PYTORCH, "onnx-fp32", "onnx-int8"):
                cfg = with_backend(config, backend)
                latency = query_latency(EndpointEmbeddings.from_config(cfg, local_transport(cfg)))
                results[f"query {backend}"] = latency
                print(f"  {backend:22} p50 {latency['p50']:6.2f} ms   p95 {latency['p95']:6.2f} ms")

        if not args.skip_ingest:
            print(f"\n== careqa ingest on {chosen}: MedQuAD, first {args.medquad_pairs or 'all'} pairs")
            r = bench_ingest(settings, chosen, folder, args.raw_texts, args.repeats)
            results["ingest"] = r
            print(f"  raw {chosen} (before/after) {r['raw_chunks_per_s']:8.1f} chunks/s  {r['raw_before_after']}")
            print(
                f"  careqa ingest              {r['ingest_chunks_per_s']:8.1f} chunks/s  "
                f"ratio {r['ingest_vs_raw']:.2f} of raw; {r['chunks']} chunks in {r['ingest_seconds']:.1f}s; embedding "
                f"{r['embed_share_of_ingest']:.0%}"
            )

    for spec in args.ndcg:
        backend, _, directory = spec.partition("=")
        if backend not in EMBEDDING_BACKENDS or not directory:
            parser.error(f"--ndcg {spec!r}: expected BACKEND=DIR with BACKEND one of {', '.join(EMBEDDING_BACKENDS)}")
        r = bench_ndcg(settings, backend, Path(directory), args.eval_dir)
        results[f"ndcg {backend}"] = r
        ingest = r["ingest"]
        print(
            f"\n== nDCG@10 on {backend} ({directory}): messages {r['ndcg@10']['message']:.4f}, paraphrases "
            f"{r['ndcg@10']['paraphrase']:.4f}; retrieval p50 {r['retrieval_ms_p50']['message']:.0f} ms; ingest "
            f"{ingest['added']} added, {ingest['unchanged']} unchanged, {ingest['chunks_written']} chunks in "
            f"{ingest['seconds']:.0f}s"
        )
    results["load_average_end"] = os.getloadavg()
    print(f"\nload average at start {results['load_average_start']}, at end {results['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
