"""The tenant index layout, the index factory, and the deploy-time index custom resource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from careqa.index.opensearch_mapping import index_body, index_name, space_type_for, vector_dimension
from careqa.types import Chunk
from lambdas.opensearch_indices import handler


def test_the_mapping_covers_every_chunk_field_and_nothing_else() -> None:
    body = index_body(384, embedding_model="m")
    assert set(body["mappings"]["properties"]) == set(Chunk.model_fields)
    assert body["mappings"]["dynamic"] == "strict"


def test_vectors_are_hnsw_with_the_embedding_dimension_and_a_filterable_engine() -> None:
    body = index_body(1024, embedding_model="bge", space_type=space_type_for(True), replicas=0)
    vector = body["mappings"]["properties"]["vector"]
    assert (vector["dimension"], vector["method"]["name"], vector["method"]["engine"]) == (1024, "hnsw", "lucene")
    assert vector["method"]["space_type"] == "innerproduct" and space_type_for(False) == "cosinesimil"
    assert body["settings"]["index"] == {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}
    assert body["mappings"]["_meta"]["careqa"]["embedding_model"] == "bge"
    assert vector_dimension(body) == 1024
    assert index_name("pharmacy") == "careqa-pharmacy"


def test_lexical_fields_use_bm25_and_the_tenant_is_a_keyword() -> None:
    props = index_body(8, embedding_model="m")["mappings"]["properties"]
    for name in ("text", "title", "question"):
        assert props[name]["type"] == "text" and props[name]["similarity"] == "BM25"
    assert props["tenant"] == {"type": "keyword"}


class FakeDomain:
    """Answers the custom resource's HTTP calls from a dict of existing indices."""

    def __init__(self, existing: dict[str, int]) -> None:
        self.existing = existing
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, url: str, auth: str, body: Any = None) -> tuple[int, Any]:
        path = url.split(".com", 1)[1]
        self.calls.append((method, path))
        name = path.strip("/").split("/")[0]
        if method == "GET":
            if name not in self.existing:
                return 404, {"error": "index_not_found_exception"}
            return 200, {name: {"mappings": {"properties": {"vector": {"dimension": self.existing[name]}}}}}
        if method == "PUT" and not path.startswith("/_plugins"):
            self.existing[name] = body["mappings"]["properties"]["vector"]["dimension"]
        return 200, {"acknowledged": True}


def _properties(dimension: int) -> dict[str, str]:
    indices = [
        {"tenant": t, "name": index_name(t), "body": index_body(dimension, embedding_model="m")}
        for t in ("pharmacy", "clinic")
    ]
    return {
        "Endpoint": "vpc-careqa.us-east-1.es.amazonaws.com",
        "MasterSecretArn": "arn:secret",
        "Indices": json.dumps(indices),
        "ServiceRole": "careqa_service",
        "IndexPattern": "careqa-*",
        "BackendRoles": json.dumps(["arn:aws:iam::1:role/careqa-service-task"]),
    }


def test_missing_indices_are_created_and_existing_ones_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    domain = FakeDomain({"careqa-clinic": 384})
    monkeypatch.setattr(handler, "_request", domain.request)
    data = handler.apply(_properties(384), auth="x")
    assert data == {"Indices": "careqa-pharmacy,careqa-clinic", "Created": "careqa-pharmacy"}
    assert ("PUT", "/_plugins/_security/api/rolesmapping/careqa_service") in domain.calls


def test_an_index_of_another_dimension_fails_the_deployment_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "_request", FakeDomain({"careqa-pharmacy": 384}).request)
    with pytest.raises(handler.ResourceError, match="careqa-pharmacy stores 384-dimensional vectors"):
        handler.apply(_properties(1024), auth="x")


def test_every_outcome_is_reported_to_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(
        handler, "_respond", lambda event, context, status, data, reason="": sent.append((status, reason))
    )
    monkeypatch.setattr(handler, "apply", lambda properties: (_ for _ in ()).throw(handler.ResourceError("boom")))
    event = {
        "RequestType": "Create",
        "ResourceProperties": _properties(8),
        "StackId": "s",
        "RequestId": "r",
        "LogicalResourceId": "l",
        "ResponseURL": "https://example.com",
    }
    handler.handler(event, None)
    handler.handler({**event, "RequestType": "Delete"}, None)
    assert sent == [("FAILED", "boom"), ("SUCCESS", "")]
