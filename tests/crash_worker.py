"""A process for the crash-safety tests to kill with SIGKILL: it ingests a knowledge base, or stores ratings.

    python -m tests.crash_worker ingest INDEX KB TENANT [--kill-at METHOD:N:before|after] [--group CHUNKS]
    python -m tests.crash_worker feedback DB [--count N]

``ingest`` prints ``ready`` once imported (the test times random kills from there) and ``done`` at the end.
``--kill-at`` kills the process itself just before or just after the Nth call of a ``LanceIndex`` method:
the points where a crash leaves the index between two writes. ``--group`` shrinks the write group so a small
knowledge base is written in several groups. Vectors come from langchain's deterministic hashing embedding:
what is tested is the storage, and the real model would spend each short-lived process loading torch.

``feedback`` records an answer and rates it, over and over, and prints each rating's id once ``add_feedback``
has returned (the acknowledgement an agent would see as a 201).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

DIMENSION = 384
EMBEDDING_MODEL = "crash-test-hashing-384"


def hashing_embeddings() -> Any:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    return DeterministicFakeEmbedding(size=DIMENSION)


def open_index(path: Path) -> Any:
    from careqa.index.lance import LanceIndex

    return LanceIndex(path, dimension=DIMENSION, embedding_model=EMBEDDING_MODEL)


def _kill_at(spec: str) -> None:
    """Make the Nth call of ``LanceIndex.<method>`` kill this process, before it runs or after it returned."""
    from careqa.index.lance import LanceIndex

    method, nth, when = spec.split(":")
    original = getattr(LanceIndex, method)
    calls = 0

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == int(nth) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *args, **kwargs)
        if calls == int(nth) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(LanceIndex, method, wrapper)


def ingest(args: argparse.Namespace) -> None:
    from careqa import ingest as ingest_module

    if args.group:
        ingest_module.WRITE_GROUP_CHUNKS = args.group
    if args.kill_at:
        _kill_at(args.kill_at)
    index = open_index(Path(args.index))
    embeddings = hashing_embeddings()
    print("ready", flush=True)
    report = ingest_module.ingest_folder(
        Path(args.kb), args.tenant, index=index, embeddings=embeddings, sync=True, progress=False
    )
    print("done", report.counts(), flush=True)


def feedback(args: argparse.Namespace) -> None:
    from careqa.feedback import SQLiteFeedbackStore
    from careqa.types import Answer, Timings

    store = SQLiteFeedbackStore(Path(args.db))
    print("ready", flush=True)
    for i in range(args.count):
        answer = Answer(
            answer_id=uuid.uuid4().hex,
            tenant="pharmacy",
            status="answered",
            mode="curated",
            text=f"answer {i} " + "x" * (i % 50) * 40,  # sizes vary, so pages split at different places
            sentences=[],
            sources=[],
            models={"embedding": "e", "llm": "l"},
            timings=Timings(),
        )
        store.record_answer(answer, question=f"question {i}", subject="crash-worker")
        stored = store.add_feedback(
            tenant="pharmacy", subject="crash-worker", answer_id=answer.answer_id, rating="up", comment=f"c{i}"
        )
        print(stored.feedback_id, flush=True)
    print("done", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="crash_worker")
    commands = parser.add_subparsers(dest="command", required=True)
    run_ingest = commands.add_parser("ingest")
    run_ingest.add_argument("index")
    run_ingest.add_argument("kb")
    run_ingest.add_argument("tenant")
    run_ingest.add_argument("--kill-at", default=None)
    run_ingest.add_argument("--group", type=int, default=0)
    run_feedback = commands.add_parser("feedback")
    run_feedback.add_argument("db")
    run_feedback.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args(argv)
    {"ingest": ingest, "feedback": feedback}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
