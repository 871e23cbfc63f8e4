"""Overload: concurrent agents against ``careqa serve`` with the local models, and the same while a KB re-ingests.

Starts ``careqa serve`` as a subprocess on a free loopback port, over its own temporary data folder with a copy of
the sample knowledge base ingested, and runs agents in threads (httpx), each asking the public judged questions
of its tenant (``sample_kb/judged-answers.jsonl``) with the demo tokens through ``POST /v1/ask``. Three phases,
each bounded in requests and in time:

* ``reader``: the default answer mode (no LLM call);
* ``generate``: the local LLM writes every answer (``answer_mode: generate`` for both tenants), so its bounded
  queue (``models.llm.queue``: ``--max-waiting``, ``--max-wait-s``) decides who waits and who gets a 503;
* ``reingest``: reader mode while ``careqa ingest --sync`` runs again and again on an edited copy of the
  pharmacy knowledge base (a paragraph added, then removed), in another process writing the same index.

Every response must be a 200 with an answer, or a 503 with ``Retry-After`` in the error shape; anything else
(another status, a timeout, a dropped connection) is a failure, printed loudly, and the exit status is 1. An agent
that gets a 503 waits what Retry-After says, capped by ``--max-backoff-s``, then asks its next question. A server
is warmed up first (reader mode: every judged question once, so caches are as warm for one agent as for many); then
each phase runs one agent alone for a baseline and reports the concurrent p50 as a ratio of it, same server, same run.
The server's resident memory (``/proc/<pid>/status``) is sampled throughout: start, end and peak per phase, and per
round (``--rounds``: the agents ask the same questions again), which tells warming caches from a leak.

Usage: python benchmarks/bench_load.py [--agents 8] [--requests 200] [--generate-requests 60] [--reingest-runs 3]
                                       [--rounds 2]
                                       [--max-waiting 8] [--max-wait-s 5] [--phases reader,generate,reingest]
                                       [--seed 7] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
TOKENS = {"pharmacy": ["demo-pharmacy-agent", "demo-pharmacy-supervisor"], "clinic": ["demo-clinic-agent"]}


@dataclass
class Outcome:
    status: int | str  # an HTTP status, or the name of the exception that replaced a response
    seconds: float
    problem: str | None = None  # why the response breaks the contract, if it does


@dataclass
class PhaseResult:
    name: str
    agents: int
    warmup: list[Outcome] = field(default_factory=list)
    baseline: list[Outcome] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    rss_mb: list[float] = field(default_factory=list)
    round_starts: list[int] = field(default_factory=list)  # index in rss_mb where each round began
    ingest_runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = sorted(o.seconds for o in self.outcomes if o.status == 200)
        busy = sorted(o.seconds for o in self.outcomes if o.status == 503)
        p50 = quantile(ok, 0.5)
        alone = quantile(sorted(o.seconds for o in self.baseline if o.status == 200), 0.5)
        return {
            "phase": self.name,
            "agents": self.agents,
            "requests": len(self.outcomes),
            "statuses": dict(Counter(str(o.status) for o in self.outcomes)),
            "failures": [f"{o.status}: {o.problem}" for o in self.warmup + self.baseline + self.outcomes if o.problem],
            "warmup_requests": len(self.warmup),
            "baseline_requests": len(self.baseline),
            "p50_s": p50,
            "p95_s": quantile(ok, 0.95),
            "busy_p50_s": quantile(busy, 0.5),
            "one_agent_p50_s": alone,
            "p50_vs_one_agent": round(p50 / alone, 2) if p50 and alone else None,
            "seconds": round(self.seconds, 1),
            "rss_mb": {
                "start": self.rss_mb[0] if self.rss_mb else None,
                "end": self.rss_mb[-1] if self.rss_mb else None,
                "max": max(self.rss_mb) if self.rss_mb else None,
                # per round of the same questions: growth in the first only is caches and allocator arenas
                # warming up to new content and threads; growth in every round would be a leak
                "rounds": [
                    {"start": self.rss_mb[a], "end": self.rss_mb[b - 1], "max": max(self.rss_mb[a:b])}
                    for a, b in zip(self.round_starts, self.round_starts[1:] + [len(self.rss_mb)], strict=False)
                    if b > a
                ],
            },
            "ingest_runs": self.ingest_runs,
        }


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1], 3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def careqa(*args: str) -> list[str]:
    return [sys.executable, "-c", "from careqa.cli import app; app()", *args]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Server:
    """``careqa serve`` in a subprocess on a loopback port, and a thread sampling its memory."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            careqa("serve", "--host", "127.0.0.1", "--port", str(self.port), "--config", str(config)),
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.samples: list[float] = []
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"careqa serve exited with {self.process.returncode}; see {self._log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    self._sampler.start()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"careqa serve was not ready after {timeout_s:.0f} s; see {self._log.name}")

    def _sample(self) -> None:
        while not self._sampling.wait(0.5):
            value = rss_mb(self.process.pid)
            if value is not None:
                self.samples.append(value)

    def stop(self) -> None:
        self._sampling.set()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def judged_questions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (REPO / "sample_kb" / "judged-answers.jsonl").read_text().splitlines():
        item = json.loads(line)
        out.setdefault(item["tenant"], []).append(item["question"])
    return out


def check_response(response: httpx.Response) -> str | None:
    """Why a response breaks the contract (200 with an answer, or 503 with Retry-After in the error shape)."""
    try:
        response.json()
    except ValueError:
        return f"{response.status_code} with a body that is not JSON: {response.text[:200]!r}"
    if response.status_code == 200:
        body = response.json()
        return None if isinstance(body, dict) and body.get("answer_id") and "text" in body else "200 without answer"
    if response.status_code == 503:
        retry_after = response.headers.get("retry-after", "")
        if not retry_after.isdigit() or int(retry_after) < 1:
            return f"503 without a valid Retry-After ({retry_after!r})"
        error = response.json().get("error", {})
        return None if set(error) == {"code", "message"} else f"503 not in the error shape: {response.text[:200]}"
    return f"unexpected status: {response.text[:300]}"


def run_agents(
    url: str,
    agents: int,
    max_requests: int,
    max_seconds: float,
    questions: dict[str, list[str]],
    *,
    seed: int,
    max_backoff_s: float,
    until: threading.Event | None = None,
) -> list[Outcome]:
    """``agents`` threads asking until ``max_requests`` were sent, ``max_seconds`` passed, or ``until`` is set."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    sent = 0
    deadline = time.monotonic() + max_seconds
    identities = [(tenant, token) for tenant, tokens in TOKENS.items() for token in tokens]

    def agent(number: int) -> None:
        nonlocal sent
        rng = random.Random(seed * 1000 + number)
        tenant, token = identities[number % len(identities)]
        with httpx.Client(base_url=url, timeout=180, headers={"Authorization": f"Bearer {token}"}) as client:
            while time.monotonic() < deadline and not (until is not None and until.is_set()):
                with lock:
                    if sent >= max_requests:
                        return
                    sent += 1
                started = time.perf_counter()
                try:
                    response = client.post("/v1/ask", json={"question": rng.choice(questions[tenant])})
                    outcome = Outcome(response.status_code, time.perf_counter() - started, check_response(response))
                except httpx.HTTPError as exc:
                    outcome = Outcome(type(exc).__name__, time.perf_counter() - started, str(exc) or type(exc).__name__)
                with lock:
                    outcomes.append(outcome)
                if outcome.status == 503 and outcome.problem is None:  # so it has a valid Retry-After
                    time.sleep(min(float(response.headers["retry-after"]), max_backoff_s))

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def reingest_loop(
    config: Path, env: dict[str, str], kb: Path, runs: int, log: Path, done: threading.Event, results: list[dict]
) -> None:
    """Edit the pharmacy KB copy and run ``careqa ingest --sync`` on it ``runs`` times, alternating the edit."""
    target = kb / "procedures" / "refills.md"
    original = target.read_text()
    try:
        for run in range(runs):
            edited = run % 2 == 0
            target.write_text(original + "\n\n## Holiday refills\n\nOn public holidays refills ship a day late.\n"
                              if edited else original)  # fmt: skip
            started = time.perf_counter()
            with log.open("ab") as out:
                finished = subprocess.run(
                    careqa("ingest", "--tenant", "pharmacy", "--sync", "--json", "--config", str(config)),
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=out,
                    check=False,
                )
            report = json.loads(finished.stdout or b"[{}]")[0] if finished.returncode == 0 else {}
            results.append(
                {
                    "rc": finished.returncode,
                    "seconds": round(time.perf_counter() - started, 1),
                    "updated": report.get("updated"),
                    "chunks_written": report.get("chunks_written"),
                }
            )
    finally:
        target.write_text(original)
        done.set()


def write_config(base: dict[str, Any], path: Path, kb_root: Path, *, mode: str | None, queue: dict[str, Any]) -> Path:
    config = json.loads(json.dumps(base))
    for tenant in config["tenants"]:
        tenant["kb_path"] = str(kb_root / tenant["id"])
        if mode:
            tenant["answer_mode"] = mode
    config["models"]["llm"]["queue"] = queue
    config["log_level"] = "WARNING"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def warm_up(url: str, questions: dict[str, list[str]], limit: int | None) -> list[Outcome]:
    """One agent asks the judged questions once each (or the first ``limit``): caches are warm for every phase."""
    outcomes = []
    asked = [(tenant, q) for tenant, qs in questions.items() for q in qs][:limit]
    with httpx.Client(base_url=url, timeout=180) as client:
        for tenant, question in asked:
            headers = {"Authorization": f"Bearer {TOKENS[tenant][0]}"}
            started = time.perf_counter()
            try:
                response = client.post("/v1/ask", json={"question": question}, headers=headers)
                outcomes.append(Outcome(response.status_code, time.perf_counter() - started, check_response(response)))
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(type(exc).__name__, time.perf_counter() - started, str(exc)))
    return outcomes


def run_server(
    phases: list[str], config: Path, env: dict[str, str], args: argparse.Namespace, work: Path, kb: Path
) -> list[PhaseResult]:
    """Start one server for ``phases`` (which share its config), warm it up, then run each phase on it."""
    questions = judged_questions()
    server = Server(config, env, work / f"serve-{'-'.join(phases)}.log")
    results = []
    try:
        server.wait_ready()
        warm = warm_up(server.url, questions, args.generate_warmup if phases == ["generate"] else None)
        for name in phases:
            print(f"phase {name} ...", flush=True)
            result = PhaseResult(name, args.agents, warmup=warm if name == phases[0] else [])
            first_sample = len(server.samples)
            started = time.perf_counter()
            alone = args.generate_baseline if name == "generate" else args.baseline_requests
            result.baseline = run_agents(server.url, 1, alone, args.max_seconds, questions,
                                         seed=args.seed, max_backoff_s=args.max_backoff_s)  # fmt: skip
            requests = args.generate_requests if name == "generate" else args.requests
            if name == "reingest":
                done = threading.Event()
                runs: list[dict[str, Any]] = []
                ingest = threading.Thread(
                    target=reingest_loop,
                    args=(config, env, kb / "pharmacy", args.reingest_runs, work / "ingest.log", done, runs),
                )
                ingest.start()
                result.outcomes = run_agents(server.url, args.agents, 1_000_000, args.max_seconds, questions,
                                             seed=args.seed, max_backoff_s=args.max_backoff_s, until=done)  # fmt: skip
                ingest.join()
                result.ingest_runs = runs
            else:
                for _ in range(args.rounds):  # each round asks the same questions in the same order
                    result.round_starts.append(len(server.samples))
                    result.outcomes += run_agents(server.url, args.agents, requests, args.max_seconds, questions,
                                                  seed=args.seed, max_backoff_s=args.max_backoff_s)  # fmt: skip
            result.seconds = time.perf_counter() - started
            result.rss_mb = server.samples[max(first_sample - 1, 0) :]
            result.round_starts = [max(i - first_sample, 0) for i in result.round_starts]
            results.append(result)
    finally:
        server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="reader and reingest phases: most requests")
    parser.add_argument("--generate-requests", type=int, default=60)
    parser.add_argument("--baseline-requests", type=int, default=20, help="one agent alone, before each phase")
    parser.add_argument("--generate-warmup", type=int, default=4, help="warm-up questions in generate mode")
    parser.add_argument("--generate-baseline", type=int, default=6, help="one agent alone, in generate mode")
    parser.add_argument("--reingest-runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="reader and generate: times the same questions are asked")
    parser.add_argument("--max-seconds", type=float, default=300, help="per phase")
    parser.add_argument("--max-backoff-s", type=float, default=1.0, help="cap on the wait after a 503")
    parser.add_argument("--max-waiting", type=int, default=8, help="models.llm.queue.max_waiting")
    parser.add_argument("--max-wait-s", type=float, default=5.0, help="models.llm.queue.max_wait_s")
    parser.add_argument("--phases", default="reader,generate,reingest")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the server logs")
    args = parser.parse_args()

    base = yaml.safe_load((REPO / "config" / "local.yaml").read_text())
    queue = {"max_waiting": args.max_waiting, "max_wait_s": args.max_wait_s}
    results: list[PhaseResult] = []
    with tempfile.TemporaryDirectory(prefix="careqa-load-") as tmp:
        work = Path(tempfile.mkdtemp(prefix="careqa-load-")) if args.keep else Path(tmp)
        print(f"work folder (config, data, server and ingest logs): {work}", flush=True)
        kb = work / "kb"
        shutil.copytree(REPO / "sample_kb", kb)
        env = {**os.environ, "PYTHONPATH": str(REPO), "CAREQA_DATA_DIR": str(work / "data"), "HF_HUB_OFFLINE": "1"}
        reader = write_config(base, work / "reader.yaml", kb, mode=None, queue=queue)
        generate = write_config(base, work / "generate.yaml", kb, mode="generate", queue=queue)
        print("ingesting the sample knowledge base ...", flush=True)
        subprocess.run(careqa("ingest", "--config", str(reader)), cwd=REPO, env=env, check=True, capture_output=True)
        phases = args.phases.split(",")
        reader_phases = [p for p in phases if p in ("reader", "reingest")]
        if reader_phases:
            results += run_server(reader_phases, reader, env, args, work, kb)
        if "generate" in phases:
            results += run_server(["generate"], generate, env, args, work, kb)

    summaries = [r.summary() for r in results]
    print(f"\n{'phase':9} {'agents':>6} {'requests':>8}  {'statuses':28} {'p50 s':>6} {'p95 s':>6} "
          f"{'503 p50':>7} {'x alone':>7}  RSS MB start/end/max")  # fmt: skip
    for s in summaries:
        rss = s["rss_mb"]
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s["statuses"].items()))
        print(f"{s['phase']:9} {s['agents']:>6} {s['requests']:>8}  {statuses:28} {s['p50_s'] or '-':>6} "
              f"{s['p95_s'] or '-':>6} {s['busy_p50_s'] or '-':>7} {s['p50_vs_one_agent'] or '-':>7}  "
              f"{rss['start']}/{rss['end']}/{rss['max']}")  # fmt: skip
        if len(rss["rounds"]) > 1:
            print("          RSS MB by round (start/end/max): " + ", ".join(
                f"{r['start']}/{r['end']}/{r['max']}" for r in rss["rounds"]))  # fmt: skip
        if s["ingest_runs"]:
            print(f"          re-ingests while answering: {s['ingest_runs']}")
    failures = [(s["phase"], f) for s in summaries for f in s["failures"]]
    failures += [(s["phase"], f"ingest run failed: {r}") for s in summaries for r in s["ingest_runs"] if r["rc"] != 0]
    if failures:
        print(f"\n!!! {len(failures)} FAILURE(S): responses other than 200 or 503 with Retry-After, or failed ingests")
        for phase, failure in failures[:50]:
            print(f"!!! {phase}: {failure}")
    else:
        print("\nevery response was a 200 with an answer or a 503 with Retry-After")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
