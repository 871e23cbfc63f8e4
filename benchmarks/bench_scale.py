"""Scale benchmark of the embedded index (LanceDB) at 100k and 1M chunks, next to a numpy brute-force floor.

    python benchmarks/bench_scale.py [--sizes 100000,1000000] [--queries 200] [--json PATH]

For each size it builds a fresh ``LanceIndex`` in a temporary folder from synthetic, seeded, clustered
384-dimensional unit vectors (1,000 clusters, so nearest neighbours are meaningful and an ANN index can miss
them), through the driver's own ``upsert`` and ``refresh`` (which builds the text index, the scalar
indices on tenant and chunk id and, above ``ANN_THRESHOLD`` rows, the vector index), then reports:

* build time: insert (``upsert`` in batches) and ``refresh`` (text, scalar and vector indices, compaction);
* dense query latency p50/p95 through ``dense_search`` with the tenant filter, as the service calls it;
* recall@10 of those results against exact search (the floor's own top 10);
* the floor: one query as a float32 matrix product over all vectors plus ``argpartition`` (no filter, no
  I/O, no result rows), p50/p95 over the same queries, measured in the same run; and the ratios to it.

Queries are fresh points near random cluster centres (not stored vectors), one tenant holds all chunks (the
filter then excludes nothing, the worst case for the work it saves). Timings vary with the machine; compare
rows of one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from careqa.index.lance import ANN_THRESHOLD, LanceIndex  # noqa: E402
from careqa.types import Chunk  # noqa: E402

DIM = 384
CLUSTERS = 1000
SPREAD = 0.6  # noise norm relative to the unit centre: neighbours are close, but not trivially so
BATCH = 50_000
TENANT = "scale"
K = 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clustered unit vectors, and the cluster centres they were drawn around."""
    centres = unit(rng.standard_normal((CLUSTERS, DIM)))
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        noise = rng.standard_normal((m, DIM)).astype(np.float32) * (SPREAD / np.sqrt(DIM))
        vectors[start : start + m] = unit(centres[rng.integers(0, CLUSTERS, m)] + noise)
    return vectors, centres


def chunks(vectors: np.ndarray, start: int, stop: int) -> list[Chunk]:
    return [
        Chunk(
            chunk_id=f"doc-{i}::0",
            doc_id=f"doc-{i}",
            tenant=TENANT,
            kind="section",
            title=f"Synthetic document {i}",
            source_url=f"https://example.org/{i}",
            source_file=f"synthetic/{i // 1000}.md",
            text=f"synthetic chunk {i} in cluster {i % 97}",
            embed_text=f"synthetic chunk {i}",
            position=0,
            content_hash=f"h{i}",
            vector=vectors[i].tolist(),
        )
        for i in range(start, stop)
    ]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_size(n: int, n_queries: int, seed: int) -> dict[str, float | int | str]:
    rng = np.random.default_rng(seed)
    vectors, centres = synthetic(n, rng)
    noise = rng.standard_normal((n_queries, DIM)) * (SPREAD / np.sqrt(DIM))
    queries = unit(centres[rng.integers(0, CLUSTERS, n_queries)] + noise)

    # The floor, whose exact top 10 is also the truth for recall.
    floor_ms: list[float] = []
    exact: list[set[int]] = []
    for q in queries:
        t0 = time.perf_counter()
        scores = vectors @ q
        top = np.argpartition(-scores, K)[:K]
        top = top[np.argsort(-scores[top])]
        floor_ms.append((time.perf_counter() - t0) * 1000)
        exact.append(set(top.tolist()))

    with tempfile.TemporaryDirectory(prefix="careqa-scale-") as tmp:
        index = LanceIndex(Path(tmp) / "index", dimension=DIM, embedding_model="synthetic")
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            index.upsert(chunks(vectors, start, min(n, start + BATCH)))
        insert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.refresh()
        refresh_s = time.perf_counter() - t0

        index.dense_search(TENANT, queries[0].tolist(), K)  # open the index files before timing
        query_ms: list[float] = []
        recalls: list[float] = []
        for q, truth in zip(queries, exact, strict=True):
            t0 = time.perf_counter()
            hits = index.dense_search(TENANT, q.tolist(), K)
            query_ms.append((time.perf_counter() - t0) * 1000)
            found = {int(h.chunk.doc_id.removeprefix("doc-")) for h in hits}
            recalls.append(len(found & truth) / K)
        indices = sorted(str(i.index_type) for i in index._table.list_indices())

    p50, p95 = percentile(query_ms, 50), percentile(query_ms, 95)
    f50, f95 = percentile(floor_ms, 50), percentile(floor_ms, 95)
    return {
        "chunks": n,
        "indices": ", ".join(indices),
        "insert_s": round(insert_s, 1),
        "refresh_s": round(refresh_s, 1),
        "build_s": round(insert_s + refresh_s, 1),
        "query_p50_ms": round(p50, 2),
        "query_p95_ms": round(p95, 2),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "floor_p50_ms": round(f50, 2),
        "floor_p95_ms": round(f95, 2),
        "p50_vs_floor": round(p50 / f50, 2),
        "p95_vs_floor": round(p95 / f95, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20251125)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"LanceDB scale benchmark: {DIM}-dim clustered unit vectors, k={K}, {args.queries} queries, "
          f"ANN index from {ANN_THRESHOLD:,} rows", flush=True)  # fmt: skip
    rows = []
    for n in sizes:
        row = run_size(n, args.queries, args.seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = "| chunks | build (insert + refresh) | query p50 / p95 | recall@10 | numpy floor p50 / p95 | vs floor |"
    print()
    print(header)
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['chunks']:,} | {r['build_s']} s ({r['insert_s']} + {r['refresh_s']}) "
            f"| {r['query_p50_ms']} / {r['query_p95_ms']} ms | {r['recall_at_10']:.3f} "
            f"| {r['floor_p50_ms']} / {r['floor_p95_ms']} ms | {r['p50_vs_floor']}x / {r['p95_vs_floor']}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"dimension": DIM, "k": K, "queries": args.queries, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
