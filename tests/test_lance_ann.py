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
    assert after.name == built.name
    stats = index._table.index_stats(after.name)
    # Not rebuilt: the new rows went into a delta beside the trained index (a rebuild leaves one).
    assert stats.num_indices == 2
    assert stats.num_indexed_rows == 700 and stats.num_unindexed_rows == 0

    # Still tenant-filtered, and the stored vector finds itself first with cosine 1.
    probe = first[5]  # tenant "a"
    hits = index.dense_search("a", probe.vector, 5)
    assert hits[0].chunk.chunk_id == probe.chunk_id and abs(hits[0].score - 1.0) < 1e-3
    assert {h.chunk.tenant for h in hits} == {"a"}


def test_tenant_and_chunk_id_indices_are_built_once_and_kept_current(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    index = LanceIndex(tmp_path, dimension=DIM, embedding_model="m")
    first = _chunks(0, 200, rng)
    index.upsert(first)
    index.refresh()
    built = {i.columns[0]: i for i in index._table.list_indices() if i.columns[0] in ("tenant", "chunk_id")}
    assert {c: str(i.index_type) for c, i in built.items()} == {"tenant": "Bitmap", "chunk_id": "BTree"}

    # An update, new rows and a delete, then another refresh: the same indices, updated to cover every row.
    changed = first[3].model_copy(update={"text": "changed passage", "tenant": "a"})
    index.upsert([changed, *_chunks(200, 260, rng)])
    index.delete_documents("b", ["d0", "d2"])
    index.refresh()
    for column, before in built.items():
        [after] = [i for i in index._table.list_indices() if i.columns == [column]]
        assert (after.name, after.index_type) == (before.name, before.index_type)
        assert index._table.index_stats(after.name).num_unindexed_rows == 0

    # Reads through the indices still see exactly the tenant's current rows.
    assert index.count("a") == 130 and index.count("b") == 128
    assert set(index.vectors("b", ["c0", "c3", "c4", "c201"])) == {"c4"}
    assert set(index.vectors("a", ["c3", "c201", "c4"])) == {"c3", "c201"}
    assert [h.chunk.text for h in index.lexical_search("a", "changed passage", 1)] == ["changed passage"]
    assert index.documents("b").keys() == {f"d{i}" for i in range(0, 260, 2)} - {"d0", "d2"}
