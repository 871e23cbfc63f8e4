"""Retrieval quality on MedQuAD with the TREC 2017 LiveQA-Med consumer questions, next to the published baselines.

Runs what ``careqa eval`` runs (the same ingestion, retriever and scoring) on ``../shared/eval/`` and prints
each configuration's nDCG@10, Success@5, MRR@10 and recall@10 for both query forms, followed by the
baselines table of ``../shared/eval/README.md`` (measured there with rank-bm25 and plain all-MiniLM-L6-v2,
no chunking) for comparison. The first run embeds the 17,841 pairs into ``--data-dir`` (slow on a CPU);
later runs reuse that index and only hash the file.

Usage: python benchmarks/bench_retrieval.py [--eval-dir ../shared/eval] [--data-dir /tmp/careqa-eval]
                                            [--configs bm25,dense-answers,...] [--baseline dense-questions]
                                            [--json FILE]
The same figures: careqa eval --kb ../shared/eval/medquad-kb.jsonl \\
    --questions ../shared/eval/liveqa-questions-public.jsonl --data-dir /tmp/careqa-eval \\
    --baseline dense-questions --json results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from careqa.config import load_settings  # noqa: E402
from careqa.evaluate import DEFAULT_CONFIGS, format_table, run_eval  # noqa: E402
from careqa.index.lance import LanceIndex  # noqa: E402
from careqa.runtime import Runtime  # noqa: E402

#: ../shared/eval/README.md, query = subject + message: (nDCG@10, Success@5, MRR@10, recall@10)
PUBLISHED_BASELINES = {
    "BM25 over question + answer (rank-bm25)": (0.333, 0.564, 0.396, 0.352),
    "dense MiniLM, question + answer (256 tokens)": (0.511, 0.769, 0.587, 0.537),
    "dense MiniLM, question only": (0.541, 0.795, 0.603, 0.521),
    "RRF(k=60) BM25 + dense Q+A": (0.478, 0.744, 0.616, 0.479),
    "RRF BM25 + dense Q+A + dense Q": (0.535, 0.795, 0.659, 0.536),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/careqa-eval"))
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument(
        "--baseline",
        default="dense-questions",
        help="configuration the others are compared with question by question (default: the strongest baseline)",
    )
    args = parser.parse_args()

    settings = load_settings(None, data_dir=args.data_dir)
    runtime = Runtime(settings)
    cfg = runtime.embedding_config
    assert cfg.embedding_dimension is not None
    index = LanceIndex(args.data_dir / "index", dimension=cfg.embedding_dimension, embedding_model=cfg.model_id)
    run = run_eval(
        args.eval_dir / "medquad-kb.jsonl",
        args.eval_dir / "liveqa-questions-public.jsonl",
        args.data_dir,
        index=index,
        embeddings=runtime.embeddings,
        base=settings.retrieval,
        specs=[s for s in args.configs.split(",") if s.strip()],
        baseline=args.baseline,
    )
    report = run.to_dict()
    ingest = report["ingest"]
    print(
        f"MedQuAD: {ingest['added']} added, {ingest['unchanged']} unchanged, {ingest['rejected']} rejected; "
        f"ingest {ingest['seconds']:.0f} s (embedding {ingest['embed_seconds']:.0f} s); "
        f"{run.n_questions} LiveQA-Med questions"
    )
    print(format_table(run.results))
    print("\nPublished baselines (../shared/eval/README.md; query = subject + message, whole pairs, no chunking):")
    for name, (ndcg, s5, mrr, r10) in PUBLISHED_BASELINES.items():
        print(f"  {name:<46} nDCG@10 {ndcg:.3f}  S@5 {s5:.3f}  MRR@10 {mrr:.3f}  R@10 {r10:.3f}")
    if args.json:
        report["published_baselines"] = {
            name: dict(zip(("ndcg@10", "success@5", "mrr@10", "recall@10"), values, strict=True))
            for name, values in PUBLISHED_BASELINES.items()
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
