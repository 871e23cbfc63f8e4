"""Embedding tuning, measured end to end with the product's own commands: base MiniLM against MiniLM tuned.

Two experiments, each a sequence of ``careqa`` commands run here as subprocesses and timed:

* **MedQuAD** (``--medquad``): ``careqa tune embeddings`` on the 17,841 MedQuAD pairs of ``../shared/eval``
  alone (no LiveQA question is seen), then ``careqa eval retrieval --models base,tuned`` on the 39 public
  LiveQA-Med questions, both query forms: nDCG@10, S@5, MRR@10 and the tuned model's paired-bootstrap
  interval against the base model.
* **Sample KB** (``--sample``): tune on the pharmacy and clinic knowledge bases, then ``careqa eval answers``
  on the public judged set with the reader, base and tuned embedding model side by side.

The baseline is the base model in the same run, on the same questions and index folder. Timings are wall
clock on this machine: run it on a quiet one (tuning uses every core).

Usage: python benchmarks/bench_tuning.py [--medquad] [--sample] [--eval-dir ../shared/eval] [--work DIR]
                                         [--max-minutes 28] [--hard-negatives N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASE = "huggingface-textembedding-all-MiniLM-L6-v2"


def careqa(*args: str) -> tuple[float, str]:
    """Run one ``careqa`` command; its wall time and stdout (stderr passes through: progress bars)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "careqa.cli", *args], cwd=REPO, stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"careqa {' '.join(args)} exited {done.returncode}:\n{done.stdout}")
    return time.perf_counter() - started, done.stdout


def medquad(eval_dir: Path, work: Path, max_minutes: float, tune_args: list[str]) -> dict[str, Any]:
    out = work / "medquad-model"
    seconds, _ = careqa(
        "tune", "embeddings", "--tenant", "medquad", "--kb", str(eval_dir / "medquad-kb.jsonl"),
        "--max-minutes", str(max_minutes), "--out", str(out), "--name", "minilm-medquad",
        "--json", str(work / "medquad-tune.json"), "--no-progress", *tune_args,
    )  # fmt: skip
    tuned = out / "minilm-medquad.yaml"
    eval_seconds, table = careqa(
        "eval", "retrieval", "--kb", str(eval_dir / "medquad-kb.jsonl"),
        "--questions", str(eval_dir / "liveqa-questions-public.jsonl"), "--data-dir", str(work / "medquad-eval"),
        "--models", f"{BASE},{tuned}", "--configs", "default,dense-questions",
        "--baseline", f"{BASE}/default", "--json", str(work / "medquad-eval.json"),
    )  # fmt: skip
    print(table)
    return {
        "tune_seconds": round(seconds, 1),
        "tune": json.loads((work / "medquad-tune.json").read_text()),
        "eval_seconds": round(eval_seconds, 1),
        "eval": json.loads((work / "medquad-eval.json").read_text())["results"],
    }


def sample(work: Path, tune_args: list[str]) -> dict[str, Any]:
    out = work / "sample-model"
    seconds, _ = careqa(
        "tune", "embeddings", "--tenant", "pharmacy", "--tenant", "clinic", "--out", str(out),
        "--name", "minilm-sample", "--json", str(work / "sample-tune.json"), "--no-progress", *tune_args,
    )  # fmt: skip
    tuned = out / "minilm-sample.yaml"
    eval_seconds, table = careqa(
        "eval", "answers", "--questions", str(REPO / "sample_kb" / "judged-answers.jsonl"),
        "--configs", f"reader,reader:embedding={tuned}", "--data-dir", str(work / "sample-eval"), "--no-guard",
        "--json", str(work / "sample-eval.json"),
    )  # fmt: skip
    print(table)
    return {
        "tune_seconds": round(seconds, 1),
        "tune": json.loads((work / "sample-tune.json").read_text()),
        "eval_seconds": round(eval_seconds, 1),
        "eval": json.loads((work / "sample-eval.json").read_text()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--medquad", action="store_true", help="tune on MedQuAD, evaluate retrieval on LiveQA-Med")
    parser.add_argument("--sample", action="store_true", help="tune on the sample KBs, evaluate answers")
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--work", type=Path, default=Path("/tmp/careqa-bench-tuning"))
    parser.add_argument("--max-minutes", type=float, default=28.0, help="MedQuAD tuning time budget")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--hard-negatives", type=int, default=0, help="passed to careqa tune embeddings")
    args = parser.parse_args()
    tune_args = ["--hard-negatives", str(args.hard_negatives)] if args.hard_negatives else []
    if not (args.medquad or args.sample):
        args.medquad = args.sample = True
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if args.sample:
        results["sample"] = sample(args.work, tune_args)
    if args.medquad:
        results["medquad"] = medquad(args.eval_dir, args.work, args.max_minutes, tune_args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
