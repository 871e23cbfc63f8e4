"""Fuzz the HTTP API with requests generated from its own OpenAPI document (schemathesis), and report what happened.

The harness is the test suite's (``tests/api_fuzz.py``), run longer: for each operation, up to ``--examples``
positive and as many negative cases, plus cases aimed at real answers and source links of both tenants, each sent
with a demo identity or none, against the real app in process (ASGI) over the sample knowledge base ingested with
the local models into a temporary folder. Offline. Every response goes through schemathesis's checks and this
project's (error shape, tenant isolation). Prints requests per operation and status and each distinct failure with
one example; exits 1 if there was any.

Usage: python benchmarks/bench_fuzz.py [--examples 100] [--seed 20261203] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from careqa.config import load_settings  # noqa: E402
from careqa.ingest import ingest_folder  # noqa: E402
from careqa.runtime import Runtime  # noqa: E402
from careqa.service.app import create_app  # noqa: E402
from tests.api_fuzz import fuzz, known_objects  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation, mode and strategy")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="careqa-fuzz-") as data_dir:
        settings = load_settings(REPO / "config" / "local.yaml", data_dir=data_dir)
        runtime = Runtime(settings)
        for tenant in settings.tenants:
            assert tenant.kb_path is not None
            ingest_folder(tenant.kb_path, tenant.id, index=runtime.index, embeddings=runtime.embeddings)
        app = create_app(settings, runtime=runtime, warm_up=False)
        known = known_objects(app)
        seeded = len(known.answers), len(known.links)
        started = time.perf_counter()
        report = fuzz(app, examples=args.examples, seed=args.seed, known=known)
        seconds = time.perf_counter() - started

    by_operation: dict[str, dict[int, int]] = defaultdict(dict)
    for (operation, status), count in sorted(report.statuses.items()):
        by_operation[operation][status] = count
    print(f"{report.requests} generated requests in {seconds:.0f} s (seed {args.seed}, {args.examples} examples)")
    print(
        f"aimed at {seeded[0]} answers and {seeded[1]} source links both tenants got before the run, "
        f"and at the {len(known.answers) - seeded[0]} answers and {len(known.links) - seeded[1]} links it got itself\n"
    )
    print(f"{'operation':32} {'requests':>8}  statuses")
    for operation, statuses in by_operation.items():
        counts = ", ".join(f"{status}: {count}" for status, count in statuses.items())
        print(f"{operation:32} {sum(statuses.values()):>8}  {counts}")
    print(f"\n{sum(report.failures.values())} failure(s) in {len(report.failures)} distinct kind(s)")
    for (operation, title), count in report.failures.items():
        print(f"\n== {operation}: {title} ({count}x)\n{report.examples[(operation, title)]}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "requests": report.requests,
                    "seconds": round(seconds, 1),
                    "seed": args.seed,
                    "examples": args.examples,
                    "statuses": by_operation,
                    "failures": [
                        {"operation": op, "title": title, "count": n, "example": report.examples[(op, title)]}
                        for (op, title), n in report.failures.items()
                    ],
                },
                indent=2,
            )
        )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
