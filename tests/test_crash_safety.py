"""Crash safety: an ingest or a feedback writer killed with SIGKILL loses nothing that was acknowledged.

An ingest killed at any point and then re-run must end with the index a clean ingest of the same knowledge base
builds (same documents, chunks, content hashes and search results, compared through the index's own API), and
the previous version must stay searchable meanwhile. Ratings acknowledged before a feedback writer is killed
must all be in the database, which must stay readable. The processes killed are ``tests/crash_worker.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from careqa.chunking import chunk_record
from careqa.feedback import SQLiteFeedbackStore
from careqa.index.lance import LanceIndex
from careqa.ingest import ingest_folder
from careqa.knowledge import load_folder
from tests.conftest import REPO, SAMPLE_KB
from tests.crash_worker import hashing_embeddings, open_index

TENANT = "pharmacy"
QUERIES = ["refill too soon", "prior authorization code 75", "transfer a prescription", "weekend delivery"]
#: a write group this small splits the sample knowledge base's changes into several writes
SMALL_GROUP = 4


def worker(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(process: subprocess.Popen[str], line: str, timeout: float = 60) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = process.stdout.readline()
        if got.strip() == line:
            return
        if not got and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"the worker never printed {line!r}: {process.stderr.read() if process.stderr else ''}")


def finish(process: subprocess.Popen[str]) -> int:
    _, err = process.communicate(timeout=120)
    if process.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"the worker failed ({process.returncode}): {err}")
    return process.returncode


def edited_kb(root: Path) -> Path:
    """The sample pharmacy KB with a document and a Q&A answer changed, a Q&A file removed and a document added."""
    kb = root / "kb-v2"
    shutil.copytree(SAMPLE_KB / TENANT, kb)
    refills = kb / "procedures" / "refills.md"
    refills.write_text(refills.read_text() + "\n\n## Holiday refills\n\nOn public holidays refills ship a day late.\n")
    faq = kb / "qa" / "faq.jsonl"
    faq.write_text(faq.read_text().replace("refill too soon", "refill requested too soon", 1))
    (kb / "qa" / "claims.csv").unlink()
    (kb / "procedures" / "weekend-delivery.md").write_text(
        "---\ntitle: Weekend delivery\n---\n# Weekend delivery\n\nOrders placed by noon on Saturday arrive on Monday.\n"
    )
    return kb


def snapshot(index: LanceIndex, kb: Path) -> dict[str, object]:
    """What a reader sees of the tenant: documents with hashes, chunk count and ids, and search results."""
    records = load_folder(kb, TENANT).records
    expected_ids = [c.chunk_id for r in records for c in chunk_record(r)]
    embeddings = hashing_embeddings()
    return {
        "documents": index.documents(TENANT),
        "chunks": index.count(TENANT),
        "expected chunks present": sorted(index.vectors(TENANT, expected_ids)),
        "lexical": {q: [h.chunk.chunk_id for h in index.lexical_search(TENANT, q, 5)] for q in QUERIES},
        "dense": {
            q: [h.chunk.chunk_id for h in index.dense_search(TENANT, embeddings.embed_query(q), 5)] for q in QUERIES
        },
    }


def assert_searchable(index: LanceIndex) -> None:
    embeddings = hashing_embeddings()
    assert index.dense_search(TENANT, embeddings.embed_query("refills"), 3)
    assert index.lexical_search(TENANT, "refill", 3)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kb")
    v1 = root / "kb-v1"
    shutil.copytree(SAMPLE_KB / TENANT, v1)
    return v1, edited_kb(root)


@pytest.fixture(scope="module")
def clean_v2(tmp_path_factory: pytest.TempPathFactory, versions: tuple[Path, Path]) -> dict[str, object]:
    """The index a clean ingest of the edited knowledge base builds, as a reader sees it."""
    index = open_index(tmp_path_factory.mktemp("clean") / "index")
    ingest_folder(versions[1], TENANT, index=index, embeddings=hashing_embeddings(), sync=True, progress=False)
    return snapshot(index, versions[1])


def ingested(path: Path, kb: Path) -> LanceIndex:
    index = open_index(path)
    ingest_folder(kb, TENANT, index=index, embeddings=hashing_embeddings(), sync=True, progress=False)
    return index


@pytest.mark.parametrize(
    "kill_at",
    [
        "upsert:1:after",  # new chunks written, old ones not yet removed
        "delete_stale_chunks:2:before",  # the first group done, the second group's new chunks written
        "delete_documents:1:before",  # every change written, vanished files not yet removed
        "refresh:1:before",  # everything written, text index not rebuilt
    ],
)
def test_an_update_killed_between_writes_ends_identical_to_a_clean_ingest_once_rerun(
    tmp_path, versions, clean_v2, kill_at
):
    v1, v2 = versions
    before = ingested(tmp_path / "index", v1)  # a reader of the previous version, like the running service
    killed = worker(
        "ingest", str(tmp_path / "index"), str(v2), TENANT, "--kill-at", kill_at, "--group", str(SMALL_GROUP)
    )
    assert finish(killed) == -signal.SIGKILL
    assert_searchable(before)
    assert_searchable(open_index(tmp_path / "index"))
    ingested(tmp_path / "index", v2)  # the re-run
    assert snapshot(open_index(tmp_path / "index"), v2) == clean_v2


@pytest.mark.parametrize("kill_at", ["upsert:2:after", "refresh:1:before"])
def test_a_first_ingest_killed_part_way_ends_identical_to_a_clean_ingest_once_rerun(
    tmp_path, versions, clean_v2, kill_at
):
    _, v2 = versions
    killed = worker(
        "ingest", str(tmp_path / "index"), str(v2), TENANT, "--kill-at", kill_at, "--group", str(SMALL_GROUP)
    )
    assert finish(killed) == -signal.SIGKILL
    ingested(tmp_path / "index", v2)  # the re-run
    assert snapshot(open_index(tmp_path / "index"), v2) == clean_v2


def test_ingests_killed_at_random_moments_end_identical_to_a_clean_ingest_once_rerun(tmp_path, versions, clean_v2):
    v1, v2 = versions
    index = str(tmp_path / "index")
    before = ingested(tmp_path / "index", v1)
    timed = worker("ingest", index, str(v2), TENANT, "--group", str(SMALL_GROUP))  # how long a change takes here
    wait_for(timed, "ready")
    started_at = time.monotonic()
    assert finish(timed) == 0
    duration = time.monotonic() - started_at
    rng = random.Random(20261203)
    interrupted = 0
    for kb in (v1, v2, v1):  # back and forth, so every kill lands in a real change
        running = worker("ingest", index, str(kb), TENANT, "--group", str(SMALL_GROUP))
        wait_for(running, "ready")
        time.sleep(rng.uniform(0.0, 0.9 * duration))
        running.send_signal(signal.SIGKILL)
        out, _ = running.communicate(timeout=60)
        interrupted += "done" not in out
        assert_searchable(before)
        assert_searchable(open_index(tmp_path / "index"))
    assert interrupted, "every kill came after its ingest had finished"
    ingested(tmp_path / "index", v2)  # the re-run
    assert snapshot(open_index(tmp_path / "index"), v2) == clean_v2


def test_a_write_after_the_last_refresh_makes_the_index_need_one(tmp_path, versions):
    index = ingested(tmp_path / "index", versions[0])
    assert not index.needs_refresh()
    index.delete_documents(TENANT, ["pharmacy/procedures/refills.md"])
    assert index.needs_refresh() and open_index(tmp_path / "index").needs_refresh()  # any process sees it
    index.refresh()
    assert not open_index(tmp_path / "index").needs_refresh()


def test_an_index_whose_creation_was_killed_mid_write_still_opens(tmp_path):
    # A file-size limit makes the kernel kill the process (SIGXFSZ, which Python ignores unless told otherwise)
    # in the middle of writing the index's metadata file: a crash exactly there.
    script = (
        "import resource, signal, sys; from tests.crash_worker import open_index; "
        "signal.signal(signal.SIGXFSZ, signal.SIG_DFL); resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16)); "
        "open_index(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "index")], cwd=REPO, env=env, check=False)
    assert killed.returncode == -signal.SIGXFSZ
    index = open_index(tmp_path / "index")  # the previous code left a truncated file here and failed to parse it
    assert index.count() == 0
    assert json.loads((tmp_path / "index" / "careqa-index.json").read_text())["dimension"] == 384


def test_a_feedback_writer_killed_mid_way_keeps_every_acknowledged_rating(tmp_path):
    db = tmp_path / "feedback.sqlite3"
    reader = SQLiteFeedbackStore(db)  # the service's export, open while the writer runs
    rng = random.Random(7)
    acknowledged: list[str] = []
    for _ in range(3):
        writer = worker("feedback", str(db))
        wait_for(writer, "ready")
        assert writer.stdout is not None
        for _ in range(rng.randint(5, 40)):
            acknowledged.append(writer.stdout.readline().strip())
        list(reader.export("pharmacy"))  # readable while the writer writes
        time.sleep(rng.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        assert finish(writer) == -signal.SIGKILL
        stored = {row["feedback_id"] for row in reader.export("pharmacy")}
        assert set(acknowledged) <= stored
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = conn.execute(
            "SELECT count(*) FROM feedback LEFT JOIN answers USING (answer_id) WHERE question IS NULL"
        )
        assert orphans.fetchone() == (0,)
