"""``careqa tune embeddings``, a tuned model served locally, and ``careqa ingest --reembed`` beside a serving index.

The tuned model is made once per session from a small knowledge base (seconds on two cores) and reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from careqa.cli import app
from careqa.config import load_settings
from careqa.errors import ConfigError, IndexMismatchError
from careqa.knowledge import load_folder
from careqa.runtime import Runtime
from careqa.tuning import (
    TuningError,
    kb_pairs,
    rated_pairs,
    read_feedback,
    split_by_document,
)
from endpoints import load_model_config
from endpoints.custom import weights_sha256

from .conftest import SAMPLE_KB, config_file

BASE = "huggingface-textembedding-all-MiniLM-L6-v2"
runner = CliRunner()


# --- what the model learns from -----------------------------------------------------------------------


def test_pairs_are_questions_to_answers_and_headings_to_bodies_without_the_heading_line():
    records = load_folder(SAMPLE_KB / "pharmacy", "pharmacy").records
    pairs = kb_pairs(records)
    qa = next(r for r in records if r.kind == "qa")
    mine = [p for p in pairs if p.doc_id == qa.doc_id]
    assert len(mine) == 1 and mine[0].anchor == qa.question
    assert qa.question not in mine[0].positive and mine[0].positive in qa.text
    doc = next(r for r in records if r.kind != "qa")
    sections = [p for p in pairs if p.doc_id == doc.doc_id]
    assert sections and all(p.anchor.startswith(doc.title) for p in sections)
    assert all(not p.positive.startswith(p.anchor) for p in sections)


def test_validation_is_split_by_document():
    records = load_folder(SAMPLE_KB / "pharmacy", "pharmacy").records
    pairs = kb_pairs(records)
    train, validation = split_by_document(pairs, 0.25, seed=1)
    assert train and validation and len(train) + len(validation) == len(pairs)
    assert not {p.doc_id for p in train} & {p.doc_id for p in validation}
    assert split_by_document(pairs, 0.25, seed=1) == (train, validation)  # the same split every run


def test_ratings_become_positives_and_negatives_of_the_cited_sources_of_that_tenant():
    records = load_folder(SAMPLE_KB / "pharmacy", "pharmacy").records
    cited, other = records[0].doc_id, records[1].doc_id
    rows = [
        {"tenant": "pharmacy", "rating": "up", "question": "q1",
         "sources": [{"doc_id": cited, "cited": True}, {"doc_id": other, "cited": False}]},
        {"tenant": "pharmacy", "rating": "down", "question": "q2", "sources": [{"doc_id": cited, "cited": True}]},
        {"tenant": "clinic", "rating": "up", "question": "q3", "sources": [{"doc_id": cited, "cited": True}]},
        {"tenant": "pharmacy", "rating": "up", "question": "q4", "sources": [{"doc_id": "gone", "cited": True}]},
    ]  # fmt: skip
    rated = rated_pairs(rows, records, "pharmacy")
    assert [(r.question, r.label) for r in rated] == [("q1", 1.0), ("q2", 0.0)]
    assert "When Northwind Pharmacy bills a plan" in rated[0].text and rated[0].text == rated[1].text


def test_a_bad_feedback_line_is_named(tmp_path: Path):
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"rating": "up"}\n{oops\n')
    with pytest.raises(TuningError, match=r"feedback.jsonl:2: not valid JSON"):
        read_feedback(path)


def test_an_unknown_tenant_is_refused_before_any_model_loads(tmp_path: Path):
    cfg = config_file(tmp_path, tmp_path / "data")
    result = runner.invoke(app, ["tune", "embeddings", "--tenant", "nobody", "-c", str(cfg)])
    assert result.exit_code == 2 and "nobody" in result.output


# --- tuning ------------------------------------------------------------------------------------------


def test_a_tiny_knowledge_base_tunes_and_its_validation_mrr_does_not_drop(tuned: Path):
    config = load_model_config(tuned)
    assert config.custom is not None and config.custom.base == BASE
    assert config.local is not None and config.local.path == tuned.parent / "model"
    assert config.custom.weights_sha256 == weights_sha256(config.local.path)
    mrr = config.custom.tuned["validation_mrr_at_10"]
    assert mrr["tuned"] > mrr["base"] > 0
    base = load_model_config(BASE)
    assert config.identity != base.identity and config.embedding_dimension == base.embedding_dimension
    report = json.loads((tuned.parent.parent / "report.json").read_text())
    assert report["identity"] == config.identity and report["train_pairs"] > 0


def test_hard_negatives_are_answers_the_base_model_ranks_close_from_other_documents():
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from careqa.tuning import TuneOptions, _with_hard_negatives
    from endpoints.local import _weights_path

    records = load_folder(SAMPLE_KB / "pharmacy", "pharmacy").records
    pairs = kb_pairs(records, parts_per_pair=2)
    # two chunks of one long answer: each is the other's nearest text, and neither may be the other's negative
    two = {p.doc_id for p in pairs if sum(q.doc_id == p.doc_id for q in pairs) > 1}
    assert two
    model = SentenceTransformer(str(_weights_path(load_model_config(BASE))), device="cpu")
    kb = Dataset.from_dict({"anchor": [p.anchor for p in pairs], "positive": [p.positive for p in pairs]})
    options = TuneOptions(hard_negatives=2, progress=False).resolved(len(pairs), len(records))
    mined = _with_hard_negatives(kb, pairs, model, options)
    assert mined.column_names == ["anchor", "positive", "negative_1", "negative_2"] and len(mined) > len(pairs) / 2
    doc_of_text: dict[str, set[str]] = {}
    for p in pairs:
        doc_of_text.setdefault(p.positive, set()).add(p.doc_id)
    owner = {(p.anchor, p.positive): p.doc_id for p in pairs}
    for row in mined:
        own = owner[(row["anchor"], row["positive"])]
        for negative in (row["negative_1"], row["negative_2"]):
            assert negative != row["positive"] and own not in doc_of_text[negative]


def test_a_run_that_does_not_beat_the_base_model_writes_nothing(tmp_path: Path):
    cfg = config_file(tmp_path, tmp_path / "data")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["tune", "embeddings", "--tenant", "pharmacy", "--learning-rate", "0", "--batch-size", "16", "--no-progress",
         "--out", str(out), "-c", str(cfg)],
    )  # fmt: skip
    assert result.exit_code == 1 and "did not improve validation MRR@10" in result.output
    assert not (out / "model").exists() and not list(out.glob("*.yaml"))


def test_the_tuned_model_is_served_locally_and_differs_from_the_base(tuned: Path):
    from endpoints.local import EmbeddingContainer

    texts = ["pt got reject 75 on their inhaler", "how early can a 90 day supply be refilled"]
    tuned_vectors = EmbeddingContainer(load_model_config(tuned)).encode(texts)
    base_vectors = EmbeddingContainer(load_model_config(BASE)).encode(texts)
    assert tuned_vectors.shape == base_vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(tuned_vectors, axis=1), 1.0, atol=1e-3)
    assert not np.allclose(tuned_vectors, base_vectors, atol=1e-3)


def test_a_config_whose_weights_folder_is_missing_fails_naming_it(tuned: Path, tmp_path: Path):
    moved = tmp_path / "cfg.yaml"
    shutil.copy(tuned, moved)  # its relative path now points at tmp_path/model, which does not exist
    from endpoints.local import EmbeddingContainer

    with pytest.raises(ValueError, match=r"not a sentence-transformers model folder"):
        EmbeddingContainer(load_model_config(moved)).encode(["x"])


# --- re-embedding ------------------------------------------------------------------------------------


def test_reembed_leaves_the_old_index_serving_until_the_new_one_is_complete(tuned: Path, tmp_path: Path):
    data = tmp_path / "data"
    base_cfg = config_file(tmp_path, data)
    assert runner.invoke(app, ["ingest", "-c", str(base_cfg)]).exit_code == 0
    serving = Runtime(load_settings(base_cfg))
    before = serving.engine.ask("pharmacy", "what does reject 75 mean")
    assert before.sources

    # A copy for the tuned model that is not complete yet: the service on the tuned model refuses to start,
    # the old index keeps answering.
    (tmp_path / "t").mkdir()
    tuned_cfg = config_file(tmp_path / "t", data, embedding=str(tuned))
    tuned_runtime = Runtime(load_settings(tuned_cfg))
    copy = tuned_runtime.open_index(tuned_runtime.embedding_config, reembed=True)
    assert copy.incomplete_tenants(["pharmacy"]) == ["pharmacy"]
    with pytest.raises(ConfigError, match="not complete for tenant.*pharmacy.*--reembed"):
        _ = Runtime(load_settings(tuned_cfg)).index
    assert serving.engine.ask("pharmacy", "what does reject 75 mean").text == before.text

    result = runner.invoke(app, ["ingest", "--reembed", "--model", str(tuned), "-c", str(base_cfg)])
    assert result.exit_code == 0, result.output
    assert "re-embedded with minilm-pharmacy-test" in result.output and "complete" in result.output

    # The old index is untouched and still serves the base model; the tuned model now serves from its copy.
    assert serving.engine.ask("pharmacy", "what does reject 75 mean").text == before.text
    switched = Runtime(load_settings(tuned_cfg))
    assert switched.index.count("pharmacy") == serving.index.count("pharmacy")
    answer = switched.engine.ask("pharmacy", "what does reject 75 mean")
    assert answer.models["embedding"] == switched.embedding_config.model_id and answer.sources


def test_a_plain_ingest_with_another_model_is_refused_and_names_reembed(tuned: Path, tmp_path: Path):
    data = tmp_path / "data"
    base_cfg = config_file(tmp_path, data)
    assert runner.invoke(app, ["ingest", "-c", str(base_cfg)]).exit_code == 0
    (tmp_path / "t").mkdir()
    tuned_cfg = config_file(tmp_path / "t", data, embedding=str(tuned))
    with pytest.raises(IndexMismatchError, match="--reembed"):
        _ = Runtime(load_settings(tuned_cfg)).open_index(load_model_config(tuned))
    result = runner.invoke(app, ["ingest", "-c", str(tuned_cfg)])
    assert result.exit_code != 0 and "--reembed" in result.output


def test_settings_follow_the_size_of_the_knowledge_base_unless_given():
    from careqa.tuning import TuneOptions

    small, large = TuneOptions().resolved(131, 77), TuneOptions().resolved(17_841, 17_841)
    assert (small.epochs, small.batch_size, small.learning_rate, small.validation_fraction) == (3.0, 8, 1e-4, 0.3)
    assert (large.epochs, large.batch_size, large.learning_rate, large.validation_fraction) == (1.0, 64, 5e-5, 0.1)
    given = TuneOptions(epochs=2.0, batch_size=32, learning_rate=5e-5, validation_fraction=0.2).resolved(131, 77)
    assert (given.epochs, given.batch_size, given.learning_rate, given.validation_fraction) == (2.0, 32, 5e-5, 0.2)
