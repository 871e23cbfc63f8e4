"""The embedded store's ANN index: built once past the threshold, extended (not rebuilt) by later ingests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from careqa.index.lance import LanceIndex
from careqa.types import Chunk

DIM = 8


def _chunks(start: int, stop: int, rng: np.random.Generator) -> list[Chunk]:
    out = []
    for i in range(start, stop):
        v = rng.normal(size=DIM)
        out.append(
            Chunk(chunk_id=f"c{i}", doc_id=f"d{i}", tenant="a" if i % 2 else "b", kind="section", title=f"T{i}",
                  source_url="https://example.org/kb", source_file="kb.md", text=f"passage number {i}",
                  embed_text=f"passage number {i}", content_hash="h", vector=(v / np.linalg.norm(v)).tolist())
        )  # fmt: skip
    return out


def _vector_index(index: LanceIndex):
    return [i for i in index._table.list_indices() if "vector" in i.columns]


def test_the_vector_index_is_built_once_and_new_rows_are_folded_into_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    index = LanceIndex(tmp_path, dimension=DIM, embedding_model="m", ann_threshold=400)
    first = _chunks(0, 300, rng)
    index.upsert(first)
    index.refresh()
    assert _vector_index(index) == []  # below the threshold: exact search, no index

    index.upsert(_chunks(300, 600, rng))
    index.refresh()
    [built] = _vector_index(index)

    index.upsert(_chunks(600, 700, rng))
    index.refresh()
    [after] = _vector_index(index)
    assert after.index_uuid == built.index_uuid  # not rebuilt
    stats = index._table.index_stats(after.name)
    assert stats.num_indexed_rows == 700 and stats.num_unindexed_rows == 0

    # Still tenant-filtered, and the stored vector finds itself first with cosine 1.
    probe = first[5]  # tenant "a"
    hits = index.dense_search("a", probe.vector, 5)
    assert hits[0].chunk.chunk_id == probe.chunk_id and abs(hits[0].score - 1.0) < 1e-3
    assert {h.chunk.tenant for h in hits} == {"a"}
