"""Ingestion is idempotent, replaces changed documents, removes vanished ones on --sync, and loses nothing."""

import json
import shutil

from careqa.ingest import ingest_folder
from careqa.knowledge import load_folder


def run(kb, index, embeddings, **kw):
    return ingest_folder(kb, "pharmacy", index=index, embeddings=embeddings, progress=False, **kw)


def test_re_ingesting_the_same_files_changes_nothing(kb_copy, fresh_index, embeddings):
    first = run(kb_copy, fresh_index, embeddings)
    documents = len(load_folder(kb_copy, "pharmacy").records)
    assert first.counts()["added"] == documents and first.rejected == []
    chunks = fresh_index.count("pharmacy")
    second = run(kb_copy, fresh_index, embeddings)
    assert second.counts() == {
        "added": 0,
        "updated": 0,
        "unchanged": documents,
        "deleted": 0,
        "rejected": 0,
        "chunks_written": 0,
    }
    assert fresh_index.count("pharmacy") == chunks
    assert fresh_index.documents("pharmacy").keys() == first_ids(first)


def first_ids(report):
    return set(report.added)


def test_a_changed_document_replaces_its_old_chunks(kb_copy, fresh_index, embeddings):
    run(kb_copy, fresh_index, embeddings)
    doc = kb_copy / "procedures" / "refills.md"
    doc.write_text(doc.read_text() + "\n## Pet medications\nZebra-striped pill bottles are used for pet medications.\n")
    report = run(kb_copy, fresh_index, embeddings)
    assert report.updated == ["pharmacy/procedures/refills.md"]
    assert report.added == [] and report.deleted == []
    hits = fresh_index.lexical_search("pharmacy", "zebra striped pill bottles", 5)
    assert hits and hits[0].chunk.doc_id == "pharmacy/procedures/refills.md"
    hashes = {
        h.chunk.content_hash
        for h in fresh_index.dense_search("pharmacy", hits[0].chunk.vector or embeddings.embed_query("refills"), 200)
        if h.chunk.doc_id == "pharmacy/procedures/refills.md"
    }
    assert hashes == {fresh_index.documents("pharmacy")["pharmacy/procedures/refills.md"].content_hash}


def test_a_changed_qa_answer_is_updated_in_place(kb_copy, fresh_index, embeddings):
    run(kb_copy, fresh_index, embeddings)
    faq = kb_copy / "qa" / "faq.jsonl"
    lines = faq.read_text().splitlines()
    record = json.loads(lines[0])
    record["answer"] = record["answer"] + " Quokka verification applies."
    lines[0] = json.dumps(record)
    faq.write_text("\n".join(lines) + "\n")
    report = run(kb_copy, fresh_index, embeddings)
    assert report.updated == [f"pharmacy/{record['id']}"]
    assert (
        fresh_index.lexical_search("pharmacy", "quokka verification", 3)[0].chunk.doc_id == f"pharmacy/{record['id']}"
    )


def test_sync_removes_documents_whose_files_disappeared(kb_copy, fresh_index, embeddings):
    run(kb_copy, fresh_index, embeddings)
    (kb_copy / "procedures" / "prescription-transfers.md").unlink()
    without_sync = run(kb_copy, fresh_index, embeddings)
    assert without_sync.deleted == []
    assert "pharmacy/procedures/prescription-transfers.md" in fresh_index.documents("pharmacy")
    with_sync = run(kb_copy, fresh_index, embeddings, sync=True)
    assert "pharmacy/procedures/prescription-transfers.md" in with_sync.deleted
    assert "pharmacy/procedures/prescription-transfers.md" not in fresh_index.documents("pharmacy")
    # Q&A pairs whose source document vanished are rejected, not silently kept pointing nowhere.
    assert all("prescription-transfers.md" in r.reason for r in with_sync.rejected)


def test_a_file_that_turns_malformed_keeps_its_documents(kb_copy, fresh_index, embeddings):
    run(kb_copy, fresh_index, embeddings)
    before = fresh_index.documents("pharmacy")
    faq = kb_copy / "qa" / "claims.csv"
    faq.write_bytes(b"\x00\x01binary garbage")
    report = run(kb_copy, fresh_index, embeddings, sync=True)
    assert [str(r) for r in report.rejected] == ["qa/claims.csv: binary file (contains NUL bytes)"]
    assert report.deleted == []
    assert fresh_index.documents("pharmacy") == before


def test_a_second_tenant_is_untouched_by_ingest_and_sync(kb_copy, fresh_index, embeddings, tmp_path):
    from tests.conftest import SAMPLE_KB

    clinic = tmp_path / "clinic"
    shutil.copytree(SAMPLE_KB / "clinic", clinic)
    ingest_folder(clinic, "clinic", index=fresh_index, embeddings=embeddings, progress=False)
    clinic_docs = fresh_index.documents("clinic")
    run(kb_copy, fresh_index, embeddings, sync=True)
    assert fresh_index.documents("clinic") == clinic_docs
    assert all(
        h.chunk.tenant == "pharmacy"
        for h in fresh_index.dense_search("pharmacy", embeddings.embed_query("appointments"), 50)
    )


def test_a_reader_opened_before_the_first_ingest_sees_its_text_index(kb_copy, tmp_path, runtime, embeddings):
    """The service may start before `careqa ingest` runs in another process; lexical search must then work."""
    from careqa.index.lance import LanceIndex

    cfg = runtime.embedding_config
    reader = LanceIndex(tmp_path / "shared", dimension=cfg.embedding_dimension, embedding_model=cfg.model_id)
    writer = LanceIndex(tmp_path / "shared", dimension=cfg.embedding_dimension, embedding_model=cfg.model_id)
    assert reader.lexical_search("pharmacy", "prior authorization", 3) == []
    run(kb_copy, writer, embeddings)
    hits = reader.lexical_search("pharmacy", "prior authorization", 3)
    assert hits and all(h.chunk.tenant == "pharmacy" for h in hits)
