"""Answer correctness: this version's answer configurations next to the previous pipeline, in one run.

Two measurements, both scored by ``careqa.answer_eval`` (what an agent would read, not what was retrieved):

* the public judged answer set of the sample knowledge bases (``sample_kb/judged-answers.jsonl``):
  correct / wrong / abstained on answerable questions, abstained / harmless / forbidden on unanswerable ones,
  mode mix, latency, first-sentence latency, and the guard on scripted wrong sentences;
* ``--medquad``: MedQuAD with the 39 public LiveQA-Med questions (``../shared/eval``): the share answered with
  a cited source graded useful (>= 3), answered with no cited source graded >= 2 (wrong), or abstained.

The baseline is the pipeline as it was at ``--baseline-ref`` (default: the last commit before the reader),
checked out into a temporary git worktree and run in a subprocess on the same questions, knowledge base and
machine; its answers are scored by this version's scorer. Latency figures are as measured on this machine:
run it on a quiet one.

Usage: python benchmarks/bench_answers.py [--configs reader,generate,auto] [--baseline-ref 5b52147]
                                          [--medquad] [--eval-dir ../shared/eval] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from careqa import answer_eval as ae  # noqa: E402
from careqa.config import TenantConfig, load_settings  # noqa: E402
from careqa.evaluate import ingest_kb, load_questions  # noqa: E402
from careqa.ingest import ingest_folder  # noqa: E402
from careqa.runtime import Runtime  # noqa: E402
from careqa.types import Answer  # noqa: E402
from endpoints.errors import ModelInvocationError  # noqa: E402

#: the last commit whose answer step had no reader (curated pairs, generation, guard, extractive fallback)
DEFAULT_BASELINE_REF = "5b52147"

#: run inside the baseline's worktree (its own ``careqa`` package first on the path): answers as JSON lines
_BASELINE_SCRIPT = r"""
import json, sys, time
from careqa.config import TenantConfig, load_settings
from careqa.ingest import ingest_folder
from careqa.runtime import Runtime
job = json.load(sys.stdin)
settings = load_settings(job["config"], data_dir=job["data_dir"])
extra = job.get("extra_tenant")
if extra and extra not in {t.id for t in settings.tenants}:
    tenants = [*settings.tenants, TenantConfig(id=extra, name="eval")]
    settings = settings.model_copy(update={"tenants": tenants})
runtime = Runtime(settings)
for tenant in job.get("ingest", []):
    folder = settings.tenant(tenant).kb_path
    ingest_folder(folder, tenant, index=runtime.index, embeddings=runtime.embeddings, sync=True)
runtime.warm_up()
for q in job["questions"]:
    started = time.perf_counter()
    try:
        answer = runtime.engine.ask(q["tenant"], q["question"]).model_dump(mode="json")
    except Exception as exc:  # a failure is reported and scored as an error, like this version's runner does
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps({"id": q["id"], "ms": (time.perf_counter() - started) * 1000, "answer": answer}), flush=True)
"""


def baseline_answers(ref: str, questions: list[dict[str, str]], data_dir: Path, **job: Any) -> dict[str, Any]:
    """Answers of the pipeline at ``ref``: ``{id: (Answer | error text, milliseconds)}``."""
    with tempfile.TemporaryDirectory(prefix="careqa-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref], check=True)
        try:
            payload = {
                "config": str(tree / "config" / "local.yaml"),
                "data_dir": str(data_dir),
                "questions": questions,
                **job,
            }
            done = subprocess.run(
                [sys.executable, "-c", _BASELINE_SCRIPT],
                input=json.dumps(payload),
                capture_output=True,
                text=True,
                cwd=tree,
                env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
                check=False,
            )
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    if done.returncode != 0:
        raise SystemExit(f"the baseline at {ref} failed:\n{done.stderr[-4000:]}")
    out = {}
    for line in done.stdout.splitlines():
        row = json.loads(line)
        answer = row["answer"]
        out[row["id"]] = (answer["error"] if "error" in answer else Answer.model_validate(answer), row["ms"])
    return out


def _replay(answers: dict[str, Any], by_text: dict[tuple[str, str], str]) -> ae.AskFn:
    """An ``ask`` that returns the recorded baseline answer (so the same scorer and runner apply)."""

    def ask(tenant: str, question: str) -> Answer:
        answer, _ = answers[by_text[(tenant, question)]]
        if isinstance(answer, str):
            raise ModelInvocationError(answer)
        return answer

    return ask


def judged_set(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(None, data_dir=args.data_dir / "current")
    judged, problems = ae.load_judged(args.judged, tenants=[t.id for t in settings.tenants])
    runtime = Runtime(settings)
    for tenant in sorted({q.tenant for q in judged}):
        ingest_folder(settings.tenant(tenant).kb_path, tenant, index=runtime.index, embeddings=runtime.embeddings)
    runtime.warm_up()
    results = []
    for spec in [ae.parse_answer_config(c) for c in args.configs.split(",") if c.strip()]:
        engine = ae.engine_for(runtime, spec)
        try:
            engine.ask(judged[0].tenant, judged[0].question)  # warm caches before timing
        except ModelInvocationError as exc:
            print(f"{spec.name}: warm-up failed ({exc}); measuring anyway", file=sys.stderr)
        results.append(ae.run_config(spec.name, engine.answer_mode, engine.ask, judged, errors=(ModelInvocationError,)))
    if args.baseline_ref:
        rows = [{"id": q.id, "tenant": q.tenant, "question": q.question} for q in judged]
        recorded = baseline_answers(
            args.baseline_ref, rows, args.data_dir / "baseline", ingest=sorted({q.tenant for q in judged})
        )
        by_text = {(q.tenant, q.question): q.id for q in judged}
        score = ae.run_config(
            f"previous ({args.baseline_ref})",
            "curated pairs, generation, guard, extractive fallback",
            _replay(recorded, by_text),
            judged,
            errors=(ModelInvocationError,),
        )
        for qid, (_, ms) in recorded.items():  # the recorded time, not the replay's
            score.per_question[qid].latency_ms = ms
        results.insert(0, score)
    print(
        f"\nJudged answer set {args.judged.name}: {len(judged)} questions, "
        f"{sum(q.answerable for q in judged)} answerable"
    )
    print(ae.format_table(results, judged))
    tallies = ae.guard_eval(runtime, judged)
    print(ae.format_guard(tallies))
    report = ae.report(results, judged, with_answers=True)
    report["guard"] = {k: {"n": t.n, "kept": t.kept, "examples": t.examples} for k, t in tallies.items()}
    report["skipped"] = problems
    return report


def medquad(args: argparse.Namespace) -> dict[str, Any]:
    tenant = "eval"
    base = load_settings(None, data_dir=args.medquad_dir)
    settings = base.model_copy(update={"tenants": [*base.tenants, TenantConfig(id=tenant, name="MedQuAD")]})
    questions = load_questions(args.eval_dir / "liveqa-questions-public.jsonl")
    runtime = Runtime(settings)
    started = time.perf_counter()
    report = ingest_kb(
        args.eval_dir / "medquad-kb.jsonl",
        args.medquad_dir,
        index=runtime.index,
        embeddings=runtime.embeddings,
        tenant=tenant,
    )
    print(f"MedQuAD index: {report.counts()} ({time.perf_counter() - started:.0f} s)")
    runtime.warm_up()
    rows = []
    forms = ("message", "paraphrase")
    for spec in [ae.parse_answer_config(c) for c in args.medquad_configs.split(",") if c.strip()]:
        engine = ae.engine_for(runtime, spec)
        for form in forms:
            rows.append(ae.run_graded(spec.name, engine.ask, questions, tenant, form, errors=(ModelInvocationError,)))
    if args.baseline_ref:
        for form in forms:
            asked = [{"id": q.id, "tenant": tenant, "question": q.query(form)} for q in questions]
            recorded = baseline_answers(args.baseline_ref, asked, args.medquad_dir, extra_tenant=tenant)
            by_text = {(tenant, q.query(form)): q.id for q in questions}
            row = ae.run_graded(
                f"previous ({args.baseline_ref})",
                _replay(recorded, by_text),
                questions,
                tenant,
                form,
                errors=(ModelInvocationError,),
            )
            ms = sorted(m for _, m in recorded.values())
            row["latency_ms"] = {"p50": ae.percentile(ms, 0.5), "p95": ae.percentile(ms, 0.95)}
            rows.insert(0 if form == "message" else 1, row)
    print(f"\nMedQuAD + LiveQA-Med: {len(questions)} questions")
    print(ae.format_graded(rows))
    return {"questions": len(questions), "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--configs", default="reader,generate,auto")
    parser.add_argument("--judged", type=Path, default=REPO / "sample_kb" / "judged-answers.jsonl")
    parser.add_argument(
        "--baseline-ref", default=DEFAULT_BASELINE_REF, help="git ref of the previous pipeline ('' for none)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/careqa-bench-answers"))
    parser.add_argument(
        "--medquad", action="store_true", help="also measure MedQuAD + LiveQA-Med (slow the first time)"
    )
    parser.add_argument("--medquad-configs", default="reader")
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--medquad-dir", type=Path, default=Path("/tmp/careqa-eval"), help="the retrieval eval's index")
    parser.add_argument("--skip-judged", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if not args.skip_judged:
        report["judged"] = judged_set(args)
    if args.medquad:
        report["medquad"] = medquad(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
