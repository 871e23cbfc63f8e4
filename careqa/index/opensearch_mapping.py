"""The OpenSearch layout of CareQA's chunks: one index per tenant, built by one pure function.

Two callers must agree on it byte for byte: the deploy-time custom resource that creates each tenant's
index (``cdk/careqa_cdk/data.py`` puts the body into the resource's properties) and the OpenSearch
index driver that reads and writes it. Keeping the body here, with no AWS or CDK imports, means a change
to the chunk schema is one edit, and a test can check that every ``Chunk`` field is mapped.

Choices, and why:

* **One index per tenant** (``careqa-<tenant>``), and a ``tenant`` keyword on every document as well:
  a query can only reach another tenant's chunks through two independent mistakes, and a tenant can be
  re-indexed or deleted on its own.
* **Lucene HNSW** for the vectors: it applies the tenant filter *during* the graph search (efficient
  filtering), so a filtered query still returns ``k`` hits, and it supports both cosine and inner-product
  spaces. Normalised embeddings use ``innerproduct`` (the same ranking as cosine, with less work);
  others use ``cosinesimil``.
* **BM25 on ``text``, ``title`` and ``question``** with the English analyzer, for the lexical half of
  hybrid retrieval, as the embedded LanceDB driver does.
* ``dynamic: strict``: a document with a field the mapping does not know is refused instead of silently
  growing the mapping.
* ``_meta`` records the embedding model and dimension, so a driver can refuse to mix vectors from two
  models (the LanceDB driver keeps the same record in ``careqa-index.json``).
"""

from __future__ import annotations

from typing import Any, Literal

#: every CareQA index name starts with this; IAM policies and security-plugin roles are scoped to it
INDEX_PREFIX = "careqa-"
#: bump when the body below changes in a way an existing index cannot take (a re-index is needed)
MAPPING_VERSION = 1

SpaceType = Literal["cosinesimil", "innerproduct"]

_KEYWORD: dict[str, Any] = {"type": "keyword"}
_ENGLISH_TEXT: dict[str, Any] = {"type": "text", "analyzer": "english", "similarity": "BM25"}


def index_name(tenant: str, prefix: str = INDEX_PREFIX) -> str:
    """The index that holds one tenant's chunks."""
    return f"{prefix}{tenant}"


def space_type_for(normalized_embeddings: bool) -> SpaceType:
    """Inner product ranks unit vectors exactly as cosine does, and is cheaper; otherwise use cosine."""
    return "innerproduct" if normalized_embeddings else "cosinesimil"


def index_body(
    dimension: int,
    *,
    embedding_model: str,
    space_type: SpaceType = "cosinesimil",
    shards: int = 1,
    replicas: int = 1,
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 128,
) -> dict[str, Any]:
    """The settings and mappings of a tenant index (the body of ``PUT /<index>``)."""
    if dimension <= 0:
        raise ValueError(f"dimension must be positive, got {dimension}")
    if shards < 1 or replicas < 0:
        raise ValueError(f"shards must be >= 1 and replicas >= 0, got {shards} and {replicas}")
    return {
        "settings": {
            "index": {
                "knn": True,
                "number_of_shards": shards,
                "number_of_replicas": replicas,
            }
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": {
                "careqa": {
                    "mapping_version": MAPPING_VERSION,
                    "embedding_model": embedding_model,
                    "dimension": dimension,
                    "space_type": space_type,
                }
            },
            "properties": {
                "chunk_id": _KEYWORD,
                "doc_id": _KEYWORD,
                "tenant": _KEYWORD,
                "kind": _KEYWORD,
                "title": {**_ENGLISH_TEXT, "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
                "source_url": {"type": "keyword", "index": False},
                "source_file": _KEYWORD,
                "text": _ENGLISH_TEXT,
                # What the embedding model saw; kept for re-embedding, never searched lexically.
                "embed_text": {"type": "text", "index": False},
                "question": _ENGLISH_TEXT,
                "position": {"type": "integer"},
                "content_hash": _KEYWORD,
                "vector": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {
                        "name": "hnsw",
                        "engine": "lucene",
                        "space_type": space_type,
                        "parameters": {"m": hnsw_m, "ef_construction": hnsw_ef_construction},
                    },
                },
            },
        },
    }


def vector_dimension(mapping: dict[str, Any]) -> int | None:
    """The ``vector`` field's dimension in a ``GET /<index>/_mapping`` entry or an index body, if any."""
    properties = mapping.get("mappings", {}).get("properties", {})
    vector = properties.get("vector", {})
    value = vector.get("dimension")
    return int(value) if value is not None else None
