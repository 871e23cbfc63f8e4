"""The OpenSearch driver at the HTTP contract level: the exact bodies it sends, and how it handles errors.

No cluster runs on the build machine, so the driver talks, through opensearch-py's real HTTP stack, to
``tests/opensearch_fake.py``: a local HTTP server that records every request and answers as OpenSearch does
(chosen over a fake opensearch-py ``Connection`` so that serialisation, headers and SigV4 signing are real).
Backoff sleeps are recorded, not slept.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from careqa.chunking import chunk_record
from careqa.config import load_settings
from careqa.errors import ConfigError, IndexMismatchError
from careqa.index.factory import open_index
from careqa.index.opensearch import (
    BulkWriteError,
    OpenSearchIndex,
    OpenSearchIndexError,
    connect,
    cosine_from_score,
)
from careqa.index.opensearch_mapping import index_body
from careqa.ingest import ingest_folder
from careqa.knowledge import load_folder
from careqa.types import Chunk
from tests.opensearch_fake import FakeOpenSearch

DIM = 4
MODEL = "test-model"


def unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def chunk(doc: str, n: int = 0, *, tenant: str = "pharmacy", vector: list[float] | None = None, **kw: Any) -> Chunk:
    fields: dict[str, Any] = {
        "chunk_id": f"{doc}::h1::{n}",
        "doc_id": doc,
        "tenant": tenant,
        "kind": "section",
        "title": f"Title of {doc}",
        "source_url": f"procedures/{doc}.md",
        "source_file": f"procedures/{doc}.md",
        "text": f"Text {n} of {doc}",
        "embed_text": f"Text {n} of {doc}",
        "position": n,
        "content_hash": "h1",
        "vector": vector or unit([1.0, float(n), 0.5, 0.0]),
    }
    return Chunk(**(fields | kw))


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def fake() -> Iterator[FakeOpenSearch]:
    cluster = FakeOpenSearch()
    with cluster.serve():
        yield cluster


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


def driver(fake: FakeOpenSearch, sleeps: Sleeps, **kw: Any) -> OpenSearchIndex:
    options: dict[str, Any] = {"dimension": DIM, "embedding_model": MODEL, "space_type": "innerproduct"}
    return OpenSearchIndex(connect(fake.url), sleep=sleeps, **(options | kw))


@pytest.fixture()
def index(fake: FakeOpenSearch, sleeps: Sleeps) -> OpenSearchIndex:
    return driver(fake, sleeps)


# exact bodies ---------------------------------------------------------------------------------------


def test_the_first_write_creates_the_tenant_index_with_the_shared_mapping(fake, index):
    index.upsert([chunk("refills")])
    (create,) = fake.requests_to("PUT", r"^/careqa-pharmacy$")
    assert create.json() == index_body(DIM, embedding_model=MODEL, space_type="innerproduct", replicas=0)


def test_upserts_are_one_ndjson_bulk_body_keyed_by_chunk_id(fake, index):
    chunks = [chunk("refills", 0), chunk("refills", 1), chunk("transfers", 0, question=None)]
    index.upsert(chunks)
    (bulk,) = fake.requests_to("POST", r"^/_bulk$")
    expected: list[Any] = []
    for c in chunks:
        expected.append({"index": {"_index": "careqa-pharmacy", "_id": c.chunk_id}})
        expected.append(c.model_dump())
    assert bulk.ndjson() == expected
    assert bulk.body.endswith(b"\n") and bulk.body.count(b"\n") == 2 * len(chunks)


def test_a_dense_search_is_a_knn_query_filtered_by_tenant_inside_the_graph_search(fake, index):
    index.upsert([chunk("refills")])
    index.dense_search("pharmacy", [0.0, 3.0, 0.0, 4.0], 7)
    (search,) = fake.requests_to("POST", r"^/careqa-pharmacy/_search$")
    assert search.json() == {
        "size": 7,
        "_source": {"excludes": ["vector"]},
        # innerproduct on unit vectors is cosine: the query vector is normalised first
        "query": {
            "knn": {"vector": {"vector": [0.0, 0.6, 0.0, 0.8], "k": 7, "filter": {"term": {"tenant": "pharmacy"}}}}
        },
    }


def test_a_lexical_search_is_bm25_over_text_title_and_question_filtered_by_tenant(fake, index):
    index.upsert([chunk("refills")])
    index.lexical_search("pharmacy", "What does code 75 mean?", 5)
    (search,) = fake.requests_to("POST", r"^/careqa-pharmacy/_search$")
    assert search.json() == {
        "size": 5,
        "_source": {"excludes": ["vector"]},
        "query": {
            "bool": {
                "must": [
                    {"multi_match": {"query": "What does code 75 mean?", "fields": ["text", "title", "question"]}}
                ],
                "filter": [{"term": {"tenant": "pharmacy"}}],
            }
        },
    }


def test_reading_vectors_is_one_search_by_chunk_id_within_the_tenant(fake, index):
    index.upsert([chunk("refills"), chunk("transfers", 1)])
    found = index.vectors("pharmacy", ["refills::h1::0", "transfers::h1::1", "refills::h1::0"])
    (search,) = fake.requests_to("POST", r"^/careqa-pharmacy/_search$")
    assert search.json() == {
        "size": 2,
        "_source": ["chunk_id", "vector"],
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"chunk_id": ["refills::h1::0", "transfers::h1::1"]}},
                    {"term": {"tenant": "pharmacy"}},
                ]
            }
        },
    }
    assert found["transfers::h1::1"] == pytest.approx(unit([1.0, 1.0, 0.5, 0.0]))
    assert index.vectors("clinic", ["refills::h1::0"]) == {}


def test_deleting_documents_is_a_refreshing_delete_by_query_on_tenant_and_doc_ids(fake, index):
    index.upsert([chunk("refills"), chunk("transfers")])
    index.delete_documents("pharmacy", ["refills", "gone"])
    (delete,) = fake.requests_to("POST", r"^/careqa-pharmacy/_delete_by_query$")
    assert delete.query == {"refresh": "true"}
    assert delete.json() == {
        "query": {"bool": {"filter": [{"term": {"tenant": "pharmacy"}}, {"terms": {"doc_id": ["refills", "gone"]}}]}}
    }
    assert set(index.documents("pharmacy")) == {"transfers"}


def test_stale_chunks_are_those_of_a_kept_document_with_another_hash(fake, index):
    index.upsert([chunk("refills"), chunk("refills", 1, content_hash="h2", chunk_id="refills::h2::1")])
    index.delete_stale_chunks("pharmacy", {"refills": "h2"})
    (delete,) = fake.requests_to("POST", r"^/careqa-pharmacy/_delete_by_query$")
    stale = {"bool": {"filter": [{"term": {"doc_id": "refills"}}], "must_not": [{"term": {"content_hash": "h2"}}]}}
    assert delete.json() == {
        "query": {"bool": {"filter": [{"term": {"tenant": "pharmacy"}}], "should": [stale], "minimum_should_match": 1}}
    }
    assert index.documents("pharmacy")["refills"].content_hash == "h2" and index.count("pharmacy") == 1


def test_documents_pages_with_search_after_on_chunk_id(fake, index, monkeypatch):
    monkeypatch.setattr("careqa.index.opensearch.DOCUMENTS_PAGE", 2)
    index.upsert([chunk(f"doc{i}") for i in range(5)])
    assert sorted(index.documents("pharmacy")) == [f"doc{i}" for i in range(5)]
    pages = [r.json() for r in fake.requests_to("POST", r"^/careqa-pharmacy/_search$")]
    assert [p.get("search_after") for p in pages] == [None, ["doc1::h1::0"], ["doc3::h1::0"]]
    assert pages[0]["query"] == {"bool": {"filter": [{"term": {"tenant": "pharmacy"}}]}}


def test_reads_of_a_tenant_without_an_index_find_nothing_and_create_nothing(fake, index):
    assert index.dense_search("clinic", [1.0, 0.0, 0.0, 0.0], 3) == []
    assert index.lexical_search("clinic", "refill", 3) == []
    assert index.documents("clinic") == {} and index.count("clinic") == 0
    index.delete_documents("clinic", ["x"])
    assert fake.indices == {} and not fake.requests_to("PUT", ".")


def test_refresh_refreshes_the_indices_this_process_wrote(fake, index):
    index.upsert([chunk("refills"), chunk("visits", tenant="clinic")])
    index.refresh()
    index.refresh()
    assert [r.path for r in fake.requests_to("POST", "_refresh$")] == [
        "/careqa-clinic/_refresh",
        "/careqa-pharmacy/_refresh",
    ]


# scores ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["cosinesimil", "innerproduct"])
@pytest.mark.parametrize("cos", [-0.9, -0.2, 0.0, 0.35, 1.0])
def test_opensearch_scores_convert_back_to_cosine_similarity(space, cos):
    score = (1 + cos) / 2 if space == "cosinesimil" else (1 + cos if cos >= 0 else 1 / (1 - cos))
    assert cosine_from_score(score, space) == pytest.approx(cos)


@pytest.mark.parametrize("space", ["cosinesimil", "innerproduct"])
def test_dense_hits_carry_cosine_similarity_in_either_space(fake, sleeps, space):
    index = driver(fake, sleeps, space_type=space)
    near, far = unit([1.0, 0.1, 0.0, 0.0]), unit([-1.0, 0.3, 0.2, 0.0])
    index.upsert([chunk("near", vector=near), chunk("far", vector=far)])
    query = unit([1.0, 0.0, 0.0, 0.0])
    hits = index.dense_search("pharmacy", query, 2)
    assert [h.chunk.doc_id for h in hits] == ["near", "far"]
    for hit, v in zip(hits, [near, far], strict=True):
        assert hit.score == pytest.approx(sum(a * b for a, b in zip(query, v, strict=True)), abs=1e-9)
    assert hits[0].chunk.vector is None and hits[0].chunk.text == "Text 0 of near"


# model and dimension guard --------------------------------------------------------------------------


def test_a_vector_of_another_dimension_is_refused_before_anything_is_written(fake, index):
    index.upsert([chunk("refills")])
    with pytest.raises(IndexMismatchError, match="3-dimensional vector; careqa-pharmacy holds 4"):
        index.upsert([chunk("transfers"), chunk("bad", vector=[1.0, 0.0, 0.0])])
    assert len(fake.requests_to("POST", "_bulk$")) == 1


def test_an_index_built_for_another_embedding_model_is_refused(fake, sleeps):
    driver(fake, sleeps, embedding_model="bge-large").upsert([chunk("refills")])
    with pytest.raises(
        IndexMismatchError, match="holds vectors of bge-large .* configured embedding model is test-model"
    ):
        driver(fake, sleeps).upsert([chunk("transfers")])
    with pytest.raises(IndexMismatchError):
        driver(fake, sleeps).dense_search("pharmacy", [1.0, 0.0, 0.0, 0.0], 3)
    assert len(fake.requests_to("POST", "_bulk$")) == 1


def test_reembedding_writes_a_copy_beside_the_serving_index_and_marks_it_complete(fake, sleeps):
    old = driver(fake, sleeps, embedding_model="minilm")
    old.upsert([chunk("refills"), chunk("transfers")])
    tuned = "minilm+0123456789abcdef"
    builder = driver(fake, sleeps, embedding_model=tuned, reembed=True)
    assert builder.incomplete_tenants(["pharmacy", "clinic"]) == ["pharmacy"]  # clinic has no index at all
    builder.upsert([chunk("refills", vector=unit([0.0, 1.0, 0.0, 0.0]))])
    copy = builder.copy_for("pharmacy")
    assert copy.startswith("careqa-pharmacy--minilm-") and copy in fake.indices
    assert fake.indices[copy].body["mappings"]["_meta"]["careqa"]["embedding_model"] == tuned
    # the serving index is untouched and still answers with the old model's vectors
    assert old.count("pharmacy") == 2 and {
        h.chunk.doc_id for h in old.dense_search("pharmacy", unit([1, 0, 0.5, 0]), 5)
    } == {
        "refills",
        "transfers",
    }
    assert builder.incomplete_tenants(["pharmacy"]) == ["pharmacy"]
    with pytest.raises(IndexMismatchError, match="not complete yet"):
        driver(fake, sleeps, embedding_model=tuned).count("pharmacy")  # a service on the tuned model waits
    builder.mark_complete("pharmacy", "2026-12-02T10:00:00+00:00")
    assert builder.incomplete_tenants(["pharmacy"]) == []
    meta = fake.indices[copy].body["mappings"]["_meta"]["careqa"]
    assert meta["complete_at"] == "2026-12-02T10:00:00+00:00" and meta["embedding_model"] == tuned
    # a service on the tuned model reads the copy; one on the old model keeps reading the serving index
    reader = driver(fake, sleeps, embedding_model=tuned)
    assert reader.count("pharmacy") == 1 and old.count("pharmacy") == 2


def test_without_reembed_another_models_index_is_refused_and_no_copy_is_made(fake, sleeps):
    driver(fake, sleeps, embedding_model="minilm").upsert([chunk("refills")])
    with pytest.raises(IndexMismatchError, match="careqa ingest --reembed"):
        driver(fake, sleeps, embedding_model="other").upsert([chunk("transfers")])
    assert list(fake.indices) == ["careqa-pharmacy"]


# errors and retries ---------------------------------------------------------------------------------


def test_a_400_mapping_error_is_reported_with_its_reason_and_not_retried(fake, index, sleeps):
    fake.fail("PUT", "^/careqa-pharmacy$", 400, "mapper_parsing_exception", "unknown parameter [method] on [vector]")
    expected = r"creating index careqa-pharmacy: HTTP 400 mapper_parsing_exception: unknown parameter \[method\]"
    with pytest.raises(OpenSearchIndexError, match=expected):
        index.upsert([chunk("refills")])
    assert len(fake.requests_to("PUT", ".")) == 1 and sleeps == [] and not fake.requests_to("POST", "_bulk")


def test_a_429_is_retried_after_a_backoff_and_then_succeeds(fake, index, sleeps):
    index.upsert([chunk("seed")])
    fake.fail("POST", "^/_bulk$", 429)
    index.upsert([chunk("refills")])
    first, second = fake.requests_to("POST", "^/_bulk$")[1:]
    assert first.body == second.body and len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5
    assert set(index.documents("pharmacy")) == {"seed", "refills"}


def test_a_503_is_retried_and_then_succeeds(fake, index, sleeps):
    index.upsert([chunk("refills")])
    fake.fail("POST", "_search$", 503)
    assert [h.chunk.doc_id for h in index.dense_search("pharmacy", [1.0, 0.0, 0.0, 0.0], 3)] == ["refills"]
    assert len(fake.requests_to("POST", "_search$")) == 2 and len(sleeps) == 1


def test_a_persistent_503_fails_clearly_after_the_retries_with_growing_backoff(fake, sleeps):
    index = driver(fake, sleeps, max_retries=3)
    index.upsert([chunk("refills")])
    fake.fail("POST", "_search$", 503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE]", times=99)
    with pytest.raises(OpenSearchIndexError, match=r"dense search in careqa-pharmacy: still failing after 4 attempts: "
                       r"HTTP 503 cluster_block_exception: blocked by"):  # fmt: skip
        index.dense_search("pharmacy", [1.0, 0.0, 0.0, 0.0], 3)
    assert len(fake.requests_to("POST", "_search$")) == 4
    assert len(sleeps) == 3 and all(0 <= s <= cap for s, cap in zip(sleeps, [0.5, 1.0, 2.0], strict=True))


def test_a_403_is_not_retried_and_hints_at_the_role_mapping(fake, index, sleeps):
    fake.fail("GET", "_mapping$", 403, "security_exception", "no permissions for [indices:admin/mappings/get]")
    with pytest.raises(OpenSearchIndexError, match=r"HTTP 403 security_exception.*IAM role is mapped"):
        index.dense_search("pharmacy", [1.0, 0.0, 0.0, 0.0], 3)
    assert len(fake.requests) == 1 and sleeps == []


def test_a_partial_bulk_failure_names_exactly_the_failed_chunks_and_documents(fake, index, sleeps):
    chunks = [chunk("refills", 0), chunk("refills", 1), chunk("transfers", 0), chunk("hours", 0)]
    fake.reject_item("refills::h1::1", 400, "mapper_parsing_exception", "failed to parse field [position]")
    fake.reject_item("hours::h1::0", 400, "document_parsing_exception", "bad text")
    with pytest.raises(BulkWriteError) as caught:
        index.upsert(chunks)
    error = caught.value
    assert error.failed == {
        "refills::h1::1": "HTTP 400 mapper_parsing_exception: failed to parse field [position]",
        "hours::h1::0": "HTTP 400 document_parsing_exception: bad text",
    }
    assert error.failed_documents == ["hours", "refills"]
    assert sorted(error.stored) == ["refills::h1::0", "transfers::h1::0"]
    assert "2 of 4 chunks were not stored in careqa-pharmacy (documents hours, refills)" in str(error)
    assert sorted(fake.indices["careqa-pharmacy"].docs) == sorted(error.stored)
    assert sleeps == []  # a 400 item is not retried


def test_throttled_bulk_items_are_retried_alone(fake, index, sleeps):
    fake.reject_item("refills::h1::1", 429, "rejected_execution_exception", "write queue full", times=1)
    index.upsert([chunk("refills", 0), chunk("refills", 1)])
    retry = fake.requests_to("POST", "^/_bulk$")[1]
    assert [line.get("index", {}).get("_id") for line in retry.ndjson()[::2]] == ["refills::h1::1"]
    assert index.count("pharmacy") == 2 and len(sleeps) == 1


def test_items_still_throttled_after_the_retries_are_reported_not_stored(fake, sleeps):
    index = driver(fake, sleeps, max_retries=2)
    fake.reject_item("refills::h1::1", 429, "rejected_execution_exception", "write queue full")
    with pytest.raises(BulkWriteError, match="refills::h1::1 .*still throttled after 3 attempts") as caught:
        index.upsert([chunk("refills", 0), chunk("refills", 1)])
    assert caught.value.stored == ["refills::h1::0"]


def test_a_failed_write_during_ingest_keeps_the_previous_version_of_the_document(fake, index, tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    doc = kb / "refills.md"
    doc.write_text("---\ntitle: Refills\n---\n# Refills\nRefills take two days.\n")
    ingest_folder(kb, "pharmacy", index=index, embeddings=HashEmbeddings(), progress=False)
    ((doc_id, before),) = index.documents("pharmacy").items()
    doc.write_text("---\ntitle: Refills\n---\n# Refills\nRefills take three days.\n")
    (record,) = load_folder(kb, "pharmacy").records
    new_ids = {c.chunk_id for c in chunk_record(record)}
    for chunk_id in new_ids:  # the cluster refuses every chunk of the new version
        fake.reject_item(chunk_id, 400, "mapper_parsing_exception", "rejected by the test")
    with pytest.raises(BulkWriteError):
        ingest_folder(kb, "pharmacy", index=index, embeddings=HashEmbeddings(), progress=False)
    assert index.documents("pharmacy") == {doc_id: before}
    assert not new_ids & set(fake.indices["careqa-pharmacy"].docs)


# authentication -------------------------------------------------------------------------------------


def test_sigv4_signs_every_request_for_the_es_service(fake, sleeps, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    index = OpenSearchIndex(connect(fake.url, auth="sigv4", region="eu-west-1"), dimension=DIM, embedding_model=MODEL)
    index.upsert([chunk("refills")])
    index.dense_search("pharmacy", [1.0, 0.0, 0.0, 0.0], 1)
    assert len(fake.requests) >= 4
    for request in fake.requests:
        authorization = request.headers["Authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/eu-west-1/es/aws4_request" in authorization and "SignedHeaders=" in authorization
        assert request.headers["X-Amz-Security-Token"] == "testing"
        assert request.headers["X-Amz-Content-SHA256"] == hashlib.sha256(request.body).hexdigest()


def test_basic_auth_sends_the_configured_user(fake):
    index = OpenSearchIndex(connect(fake.url, auth="basic", username="careqa", password="s3cret"), dimension=DIM,
                            embedding_model=MODEL)  # fmt: skip
    index.ping()
    assert fake.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(b"careqa:s3cret").decode()


def test_ping_fails_at_once_when_the_cluster_is_unreachable(sleeps):
    index = OpenSearchIndex(
        connect("http://127.0.0.1:9", timeout_s=2), dimension=DIM, embedding_model=MODEL, sleep=sleeps
    )
    with pytest.raises(OpenSearchIndexError, match="reading the CareQA indices: connection failed"):
        index.ping()
    assert sleeps == []


# configuration and wiring ---------------------------------------------------------------------------


def settings_file(tmp_path: Path, index: dict[str, Any]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tenants": [{"id": "pharmacy", "name": "P"}], "index": index}))
    return path


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ({"driver": "opensearch"}, r"index\.opensearch: required when driver is opensearch"),
        ({"driver": "opensearch", "opensearch": {"endpoint": "https://search-x.es.amazonaws.com"}},
         r"index\.opensearch\.region: required when auth is sigv4"),
        ({"driver": "opensearch", "opensearch": {"endpoint": "https://h", "auth": "basic"}},
         r"index\.opensearch\.username: required when auth is basic; index\.opensearch\.password: required"),
        ({"driver": "opensearch", "opensearch": {"endpoint": "http://search-x.es.amazonaws.com", "auth": "none"}},
         r"index\.opensearch\.endpoint: must be an https:// URL"),
        ({"driver": "opensearch", "opensearch": {"endpoint": "https://h/path", "auth": "none"}},
         r"index\.opensearch\.endpoint: must be scheme://host\[:port\]"),
        ({"driver": "opensearch", "opensearch": {"endpoint": "https://h", "auth": "none", "index_prefix": "Bad*"}},
         r"index\.opensearch\.index_prefix"),
        ({"driver": "elastic"}, r"index\.driver"),
    ],
)  # fmt: skip
def test_a_bad_opensearch_configuration_names_the_field(tmp_path, index, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(settings_file(tmp_path, index))


def test_the_agreed_environment_variables_configure_the_driver(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREQA_INDEX__DRIVER", "opensearch")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__ENDPOINT", "https://search-careqa.us-east-1.es.amazonaws.com")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__AUTH", "sigv4")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__REGION", "us-east-1")
    monkeypatch.setenv("CAREQA_INDEX__OPENSEARCH__INDEX_PREFIX", "careqa-")
    settings = load_settings(settings_file(tmp_path, {}))
    opensearch = settings.index.opensearch
    assert settings.index.driver == "opensearch" and opensearch is not None
    assert (opensearch.endpoint, opensearch.auth, opensearch.region, opensearch.index_prefix) == (
        "https://search-careqa.us-east-1.es.amazonaws.com", "sigv4", "us-east-1", "careqa-")  # fmt: skip
    assert opensearch.verify_certs is True


def test_the_runtime_switches_to_opensearch_by_configuration_only(tmp_path, monkeypatch):
    from careqa.runtime import Runtime

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = {"driver": "opensearch", "opensearch": {"endpoint": "https://search-x.us-east-1.es.amazonaws.com",
                                                     "region": "us-east-1", "index_prefix": "kb-"}}  # fmt: skip
    runtime = Runtime(load_settings(settings_file(tmp_path, config)))
    index = runtime.index
    assert isinstance(index, OpenSearchIndex)
    assert (index.index_prefix, index.dimension, index.space_type) == ("kb-", 384, "innerproduct")
    assert index.embedding_model == runtime.embedding_config.model_id


def test_the_factory_opens_a_bare_endpoint_with_sigv4_in_the_runtime_region(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    index = open_index("opensearch", dimension=8, embedding_model="m", endpoint="https://search-x.es.amazonaws.com")
    assert isinstance(index, OpenSearchIndex)
    assert index.client.transport.get_connection().session.auth.signer.region == "eu-central-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match=r"index\.opensearch: region: required when auth is sigv4"):
        open_index("opensearch", dimension=8, embedding_model="m", endpoint="https://search-x.es.amazonaws.com")
    with pytest.raises(ConfigError, match="endpoint: required"):
        open_index("opensearch", dimension=8, embedding_model="m")


class HashEmbeddings:
    """Deterministic 4-dimensional unit vectors from a text's hash: enough for ingestion mechanics."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return unit([b - 127.5 for b in digest[:DIM]])
