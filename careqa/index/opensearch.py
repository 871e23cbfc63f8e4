"""OpenSearch index driver: one k-NN index per tenant, on an Amazon OpenSearch Service domain or a local cluster.

It implements :class:`careqa.index.base.ChunkIndex` as :class:`careqa.index.lance.LanceIndex` does, so the
service, the CLI and the ingestion Lambda switch between the two by configuration only.

* **Layout**: the bodies of ``careqa.index.opensearch_mapping`` (shared with the deploy-time custom resource):
  ``<prefix><tenant>`` per tenant, a ``tenant`` keyword on every chunk, Lucene HNSW vectors, English BM25 on
  ``text``, ``title`` and ``question``. A missing index is created on the first write (on AWS the custom
  resource has created it already); reads of a missing index find nothing.
* **Ids**: a chunk's ``_id`` is its ``chunk_id`` (``<doc_id>::<hash>::<n>``), the id the embedded store
  merges on, so a re-ingest overwrites instead of duplicating.
* **Model guard**: the index's ``_meta`` names the embedding model and dimension; the driver refuses to read
  or write an index built for another model, and any vector whose dimension differs (:class:`IndexMismatchError`).
* **Tenant filter, twice**: every query runs on the tenant's own index *and* filters on its ``tenant`` keyword
  (inside the k-NN query, so Lucene filters during the graph search and still returns ``k`` hits).
* **Scores**: ``dense_search`` returns cosine similarity, recovered from OpenSearch's score for the index's
  space type (``cosinesimil``: score = (1 + cos) / 2; ``innerproduct`` on unit vectors: score = 1 + cos when
  cos >= 0, else 1 / (1 - cos)); ``lexical_search`` returns the BM25 ``_score``.
* **Retries**: 429, 502, 503, 504 and connection failures are retried with full-jitter exponential backoff
  (opensearch-py's own transport retries at once, with no backoff, so its retries are off); any other 4xx fails
  at once with the cluster's error type and reason. Bulk items rejected with 429 (a full write queue) are
  retried alone, the same way.
* **Partial failures**: a bulk write that leaves any chunk unstored raises :class:`BulkWriteError`, which names
  every failed chunk and document with its reason and lists the chunks that were stored; ingestion stops before
  it removes the old chunks of a document whose new chunks failed, so nothing is lost.

**Hybrid fusion stays client-side** (the score fusion of ``careqa.retrieve``) rather than OpenSearch's
``hybrid`` query with a score-normalization search pipeline: (1) the same fusion code then ranks for both
drivers, so the embedded store's evaluation (``careqa eval``) and its tuning of the fusion and the weights carry
over to AWS unchanged, and the parity test can compare the two drivers end to end; (2) the retriever needs
the dense hits' cosine similarities as such (the evidence threshold and the curated-answer match are absolute),
which a normalized hybrid score no longer carries; (3) it needs no search pipeline resource on the domain (one
fewer thing to deploy, version and grant). The price is two requests per question instead of one, both small
and both served by the same shard, which we could not measure against a cluster on the build machine.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opensearchpy import OpenSearch, RequestsHttpConnection
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import TransportError

from careqa.errors import ConfigError, IndexMismatchError, IndexUnavailableError
from careqa.index.base import STORED_FIELDS, DocState, fold_documents
from careqa.index.generations import model_slug, same_model
from careqa.index.opensearch_mapping import INDEX_PREFIX, SpaceType, index_body, index_name, vector_dimension
from careqa.types import Chunk, Hit

if TYPE_CHECKING:
    from careqa.config import OpenSearchConfig

log = logging.getLogger(__name__)

#: the chunk fields stored in ``_source`` besides the vector (every ``Chunk`` field the mapping declares)
FIELDS = STORED_FIELDS
LEXICAL_FIELDS = ("text", "title", "question")
#: statuses worth retrying: throttling, and a cluster that is briefly unavailable
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BULK_MAX_CHUNKS = 500
BULK_MAX_BYTES = 5_000_000  # well under the 10 MiB request limit of the smallest OpenSearch Service instances
DOCUMENTS_PAGE = 5000
DELETE_BATCH = 500
STALE_BATCH = 200  # two clauses each, under the default limit of 1024 boolean clauses
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
SUPPORTED_SPACES: tuple[SpaceType, ...] = ("cosinesimil", "innerproduct")


class OpenSearchIndexError(IndexUnavailableError):
    """The cluster refused a request, or kept failing it after the retries."""

    code = "index_error"


class BulkWriteError(OpenSearchIndexError):
    """Some chunks of a bulk write were not stored. ``failed`` maps each to its reason; ``stored`` lists the rest."""

    code = "index_partial_write"

    def __init__(self, index: str, failed: dict[str, str], stored: list[str], doc_of: dict[str, str]) -> None:
        self.index = index
        self.failed = dict(failed)
        self.stored = list(stored)
        self.failed_documents = sorted({doc_of.get(c, c) for c in failed})
        reasons = "; ".join(f"{c} (document {doc_of.get(c, '?')}): {r}" for c, r in sorted(failed.items()))
        super().__init__(
            f"{len(failed)} of {len(failed) + len(stored)} chunks were not stored in {index} "
            f"(documents {', '.join(self.failed_documents)}): {reasons}"
        )


def cosine_from_score(score: float, space_type: str) -> float:
    """The cosine similarity behind an OpenSearch k-NN score (the inverse of the plugin's score function)."""
    if space_type == "cosinesimil":
        return 2.0 * score - 1.0
    if space_type == "innerproduct":
        # Unit vectors: the inner product is the cosine; the plugin maps it to 1 + ip (ip >= 0) or 1 / (1 - ip).
        return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
    raise ValueError(f"no cosine similarity can be recovered from a {space_type} score")


def _tenant_filter(tenant: str) -> dict[str, Any]:
    return {"term": {"tenant": tenant}}


def _reason(error: Any) -> str:
    """``type: reason`` of an OpenSearch error object (a bulk item's ``error`` or a response's ``error``)."""
    if isinstance(error, dict):
        kind = error.get("type", "error")
        reason = error.get("reason") or ""
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason = f"{reason} ({cause.get('type', 'cause')}: {cause['reason']})"
        return f"{kind}: {reason}".rstrip(": ")
    return str(error)


def _describe(exc: TransportError) -> str:
    if isinstance(exc, TransportConnectionError):
        return f"connection failed: {exc.info or exc.error}"
    info = exc.info if isinstance(exc.info, dict) else {}
    detail = _reason(info["error"]) if "error" in info else str(exc.error)
    return f"HTTP {exc.status_code} {detail}"


def _careqa_meta(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(entry.get("mappings", {}).get("_meta", {}).get("careqa", {}))


def _recorded_model(entry: dict[str, Any]) -> str | None:
    model = _careqa_meta(entry).get("embedding_model")
    return str(model) if model is not None else None


def _action_line(name: str, chunk_id: str) -> str:
    return json.dumps({"index": {"_index": name, "_id": chunk_id}}, separators=(",", ":"))


@dataclass(frozen=True)
class _TenantIndex:
    name: str
    space_type: str
    dimension: int


@dataclass
class _BulkOutcome:
    stored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    throttled: dict[str, str] = field(default_factory=dict)


def connect(
    endpoint: str,
    *,
    auth: str = "none",
    region: str | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    verify_certs: bool = True,
    credentials: Any = None,
) -> OpenSearch:
    """An opensearch-py client for ``endpoint``, signing with SigV4 (service ``es``), basic auth, or none.

    ``credentials`` (botocore credentials) defaults to boto3's chain: the task or function role on AWS.
    The client's own retries are off: :class:`OpenSearchIndex` retries with backoff.
    """
    http_auth: Any = None
    if auth == "sigv4":
        from opensearchpy import RequestsAWSV4SignerAuth

        if not region:
            raise ConfigError("index.opensearch.region: required when auth is sigv4")
        if credentials is None:
            import boto3

            credentials = boto3.Session(region_name=region).get_credentials()
        if credentials is None:
            raise ConfigError("index.opensearch.auth: sigv4 needs AWS credentials, and none were found")
        http_auth = RequestsAWSV4SignerAuth(credentials, region, "es")
    elif auth == "basic":
        if not username or password is None:
            raise ConfigError("index.opensearch.username/password: required when auth is basic")
        http_auth = (username, password)
    elif auth != "none":
        raise ConfigError(f"index.opensearch.auth: unknown {auth!r}; known: sigv4, basic, none")
    return OpenSearch(
        hosts=[endpoint],
        http_auth=http_auth,
        use_ssl=endpoint.startswith("https://"),
        verify_certs=verify_certs,
        ssl_show_warn=verify_certs,
        connection_class=RequestsHttpConnection,
        timeout=timeout_s,
        max_retries=0,
        retry_on_status=(),
        retry_on_timeout=False,
        pool_maxsize=16,
    )


class OpenSearchIndex:
    """Tenant chunks in OpenSearch, one index per tenant, always filtered by tenant as well."""

    def __init__(
        self,
        client: OpenSearch,
        *,
        dimension: int,
        embedding_model: str,
        space_type: SpaceType = "cosinesimil",
        index_prefix: str = INDEX_PREFIX,
        max_retries: int = 3,
        replicas: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        reembed: bool = False,
    ) -> None:
        """``space_type`` and ``replicas`` apply only to indices this driver creates (on AWS the deploy does).

        ``reembed``: where a tenant's index holds another model's vectors, write this model's copy beside it
        (``careqa ingest --reembed``) instead of refusing.
        """
        self.client = client
        self.dimension = dimension
        self.embedding_model = embedding_model
        self.space_type = space_type
        self.index_prefix = index_prefix
        self.max_retries = max_retries
        self.replicas = replicas
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._known: dict[str, _TenantIndex] = {}
        self._written: set[str] = set()
        self.reembed = reembed

    @classmethod
    def from_config(
        cls, config: OpenSearchConfig, *, dimension: int, embedding_model: str, space_type: SpaceType, **kwargs: Any
    ) -> OpenSearchIndex:
        """The driver for a validated ``index.opensearch`` configuration."""
        client = connect(
            config.endpoint,
            auth=config.auth,
            region=config.region,
            username=config.username,
            password=config.password.get_secret_value() if config.password is not None else None,
            timeout_s=config.timeout_s,
            verify_certs=config.verify_certs,
        )
        return cls(
            client,
            dimension=dimension,
            embedding_model=embedding_model,
            space_type=space_type,
            index_prefix=config.index_prefix,
            max_retries=config.max_retries,
            **kwargs,
        )

    # requests ---------------------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))

    def _call(
        self, what: str, fn: Callable[..., Any], *, missing_ok: bool = False, retries: int | None = None, **kwargs: Any
    ) -> Any:
        """``fn(**kwargs)``, retrying throttling and unavailability; ``None`` for a 404 when ``missing_ok``."""
        retries = self.max_retries if retries is None else retries
        if missing_ok:
            # An expected 404 comes back as a body (opensearch-py's ``ignore``), not as a logged failure.
            kwargs["params"] = {**kwargs.get("params", {}), "ignore": 404}
        for attempt in range(retries + 1):
            try:
                result = fn(**kwargs)
            except TransportError as exc:
                if missing_ok and exc.status_code == 404:
                    return None
                retryable = isinstance(exc, TransportConnectionError) or exc.status_code in RETRY_STATUSES
                if not retryable:
                    hint = ""
                    if exc.status_code in (401, 403):
                        hint = (
                            " (check the credentials, and that the IAM role is mapped to the careqa role on the domain)"
                        )
                    raise OpenSearchIndexError(f"{what}: {_describe(exc)}{hint}") from exc
                if attempt == retries:
                    tries = f"still failing after {attempt + 1} attempts: " if attempt else ""
                    raise OpenSearchIndexError(f"{what}: {tries}{_describe(exc)}") from exc
                delay = self._backoff(attempt)
                log.warning("%s: %s; retrying in %.2f s", what, _describe(exc), delay)
                self._sleep(delay)
            else:
                if missing_ok and isinstance(result, dict) and result.get("status") == 404 and "error" in result:
                    return None
                return result
        raise AssertionError("unreachable")

    # the tenant's index -----------------------------------------------------------------------------
    def index_for(self, tenant: str) -> str:
        """The name of the tenant's index."""
        return index_name(tenant, self.index_prefix)

    def copy_for(self, tenant: str) -> str:
        """The name of the tenant's copy for this driver's model, beside an index of another model."""
        return f"{self.index_for(tenant)}--{model_slug(self.embedding_model)}"

    def _mapping(self, name: str) -> dict[str, Any] | None:
        mapping = self._call(
            f"reading the mapping of {name}", self.client.indices.get_mapping, index=name, missing_ok=True
        )
        if mapping is None:
            return None
        return dict(mapping.get(name) or next(iter(mapping.values())))

    def _tenant_index(self, tenant: str, *, create: bool) -> _TenantIndex | None:
        """The tenant's index, checked against the configured model; created if ``create``, else ``None`` if absent.

        Where the tenant's index holds another model's vectors, its copy for this model is used (created
        only when re-embedding); without a copy, the model check refuses.
        """
        base = self.index_for(tenant)
        with self._lock:
            known = self._known.get(base)
            if known is not None:
                return known
            name, entry = base, self._mapping(base)
            if entry is not None and not same_model(_recorded_model(entry), self.embedding_model):
                copy = self._mapping(self.copy_for(tenant))
                if copy is not None or (create and self.reembed):
                    name, entry = self.copy_for(tenant), copy
            if entry is None:
                if not create:
                    return None  # not cached: an ingest in another process may create it
                entry = self._create(name)
            if name != base and not self.reembed and not _careqa_meta(entry).get("complete_at"):
                raise IndexMismatchError(
                    f"{name}, the copy of {base} for {self.embedding_model}, is not complete yet: finish "
                    f"`careqa ingest --reembed --tenant {tenant}`, or serve the previous embedding model until then"
                )
            known = self._check(name, entry)
            self._known[base] = known
            return known

    def incomplete_tenants(self, tenants: Sequence[str]) -> list[str]:
        """Tenants whose index for this model is a re-embedded copy not yet marked complete (or missing)."""
        out = []
        for tenant in tenants:
            entry = self._mapping(self.index_for(tenant))
            if entry is None or same_model(_recorded_model(entry), self.embedding_model):
                continue
            copy = self._mapping(self.copy_for(tenant))
            if copy is None or not _careqa_meta(copy).get("complete_at"):
                out.append(tenant)
        return out

    def mark_complete(self, tenant: str, when: str) -> None:
        """Record in the tenant's index for this model that it holds the whole knowledge base."""
        index = self._tenant_index(tenant, create=True)
        assert index is not None
        entry = self._mapping(index.name) or {}
        meta = {**_careqa_meta(entry), "complete_at": when}
        self._call(
            f"marking {index.name} complete",
            self.client.indices.put_mapping,
            index=index.name,
            body={"_meta": {**entry.get("mappings", {}).get("_meta", {}), "careqa": meta}},
        )

    def _create(self, name: str) -> dict[str, Any]:
        """Create ``name`` with this driver's body (or accept another writer's) and return its mapping entry."""
        body = index_body(self.dimension, embedding_model=self.embedding_model, space_type=self.space_type,
                          replicas=self.replicas)  # fmt: skip
        try:
            self._call(f"creating index {name}", self.client.indices.create, index=name, body=body)
        except OpenSearchIndexError as exc:
            # Another writer created it between our look-up and our create: use theirs (checked below).
            if "resource_already_exists_exception" not in str(exc):
                raise
        entry = self._mapping(name)
        if entry is None:
            raise OpenSearchIndexError(f"creating index {name}: it is still missing after it was created")
        return entry

    def _check(self, name: str, entry: dict[str, Any]) -> _TenantIndex:
        mappings = entry.get("mappings", {})
        meta = mappings.get("_meta", {}).get("careqa", {})
        dimension = vector_dimension(entry)
        vector = mappings.get("properties", {}).get("vector", {})
        space_type = vector.get("method", {}).get("space_type") or meta.get("space_type") or "l2"
        model = meta.get("embedding_model")
        if model is not None and same_model(model, self.embedding_model):
            model = self.embedding_model
        if dimension is None:
            raise IndexMismatchError(f"the OpenSearch index {name} has no 'vector' field: it is not a CareQA index")
        if dimension != self.dimension or (model is not None and model != self.embedding_model):
            raise IndexMismatchError(
                f"the OpenSearch index {name} holds vectors of {model or 'an unrecorded model'} ({dimension} "
                f"dimensions) but the configured embedding model is {self.embedding_model} ({self.dimension}); "
                "build a copy for it with `careqa ingest --reembed`"
            )
        if space_type not in SUPPORTED_SPACES:
            raise IndexMismatchError(
                f"the OpenSearch index {name} uses the {space_type} space; CareQA needs cosinesimil or innerproduct"
            )
        return _TenantIndex(name=name, space_type=space_type, dimension=dimension)

    def _vector(self, index: _TenantIndex, vector: Sequence[float], what: str) -> list[float]:
        if len(vector) != index.dimension:
            raise IndexMismatchError(
                f"{what} has a {len(vector)}-dimensional vector; {index.name} holds {index.dimension} dimensions"
            )
        values = [float(v) for v in vector]
        if index.space_type == "innerproduct":
            # Inner product equals cosine only on unit vectors: normalise what is not (already), so scores stay cosine.
            norm = math.sqrt(sum(v * v for v in values))
            if norm == 0.0:
                raise ValueError(f"{what} has a zero vector")
            if abs(norm - 1.0) > 1e-4:
                values = [v / norm for v in values]
        return values

    # writes -----------------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Index or replace the chunks by ``chunk_id``; raise :class:`BulkWriteError` if any was not stored."""
        by_tenant: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            if chunk.vector is None:
                raise ValueError(f"chunk {chunk.chunk_id} has no vector")
            by_tenant.setdefault(chunk.tenant, []).append(chunk)
        for tenant, group in by_tenant.items():
            index = self._tenant_index(tenant, create=True)
            assert index is not None
            lines: dict[str, tuple[str, int]] = {}
            for chunk in group:  # build every line first: a bad vector refuses the whole write, before any request
                assert chunk.vector is not None
                source = {name: getattr(chunk, name) for name in FIELDS}
                source["vector"] = self._vector(index, chunk.vector, f"chunk {chunk.chunk_id}")
                line = f"{_action_line(index.name, chunk.chunk_id)}\n{json.dumps(source, separators=(',', ':'))}\n"
                lines[chunk.chunk_id] = (line, len(line.encode("utf-8")))
            self._bulk(index.name, lines, {c.chunk_id: c.doc_id for c in group})
            self._written.add(index.name)

    def _batches(self, lines: dict[str, tuple[str, int]]) -> Iterator[list[str]]:
        batch: list[str] = []
        size = 0
        for chunk_id, (_, n) in lines.items():
            if batch and (len(batch) >= BULK_MAX_CHUNKS or size + n > BULK_MAX_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(chunk_id)
            size += n
        if batch:
            yield batch

    def _bulk(self, name: str, lines: dict[str, tuple[str, int]], doc_of: dict[str, str]) -> None:
        pending = dict(lines)
        stored: list[str] = []
        failed: dict[str, str] = {}
        for attempt in range(self.max_retries + 1):
            outcome = _BulkOutcome()
            batches = list(self._batches(pending))
            for i, batch in enumerate(batches):
                body = "".join(pending[c][0] for c in batch)
                try:
                    response = self._call(f"bulk write to {name}", self.client.bulk, body=body)
                except OpenSearchIndexError as exc:
                    # The request itself failed: nothing of this batch or the ones after it is known to be stored.
                    for rest in batches[i:]:
                        outcome.failed.update({c: f"not written: {exc.message}" for c in rest})
                    break
                self._read_bulk_response(response, batch, outcome)
            stored.extend(outcome.stored)
            failed.update(outcome.failed)
            pending = {c: pending[c] for c in outcome.throttled}
            if not pending:
                break
            if attempt == self.max_retries:
                failed.update(
                    {c: f"still throttled after {attempt + 1} attempts: {r}" for c, r in outcome.throttled.items()}
                )
                break
            self._sleep(self._backoff(attempt))
        if failed:
            raise BulkWriteError(name, failed, stored, doc_of)

    @staticmethod
    def _read_bulk_response(response: dict[str, Any], batch: list[str], outcome: _BulkOutcome) -> None:
        seen: set[str] = set()
        for item in response.get("items", []):
            result = next(iter(item.values()))
            chunk_id = str(result.get("_id"))
            seen.add(chunk_id)
            status = int(result.get("status", 500))
            if status < 300:
                outcome.stored.append(chunk_id)
            elif status in RETRY_STATUSES:
                outcome.throttled[chunk_id] = f"HTTP {status} {_reason(result.get('error'))}"
            else:
                outcome.failed[chunk_id] = f"HTTP {status} {_reason(result.get('error'))}"
        for chunk_id in batch:
            if chunk_id not in seen:
                outcome.failed[chunk_id] = "no result for it in the bulk response"

    def _delete_by_query(self, name: str, query: dict[str, Any], what: str) -> None:
        response = self._call(
            what, self.client.delete_by_query, index=name, body={"query": query}, params={"refresh": "true"}
        )
        failures = response.get("failures") or []
        if failures:
            reasons = "; ".join(f"{f.get('id', '?')}: {_reason(f.get('cause'))}" for f in failures)
            raise OpenSearchIndexError(f"{what}: {len(failures)} chunks were not deleted: {reasons}")

    def delete_documents(self, tenant: str, doc_ids: Iterable[str]) -> None:
        index = self._tenant_index(tenant, create=False)
        ids = list(doc_ids)
        if index is None or not ids:
            return
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ids[start : start + DELETE_BATCH]
            query = {"bool": {"filter": [_tenant_filter(tenant), {"terms": {"doc_id": batch}}]}}
            self._delete_by_query(index.name, query, f"deleting {len(batch)} documents from {index.name}")

    def delete_stale_chunks(self, tenant: str, keep: dict[str, str]) -> None:
        index = self._tenant_index(tenant, create=False)
        items = list(keep.items())
        if index is None or not items:
            return
        for start in range(0, len(items), STALE_BATCH):
            stale = [
                {"bool": {"filter": [{"term": {"doc_id": doc_id}}], "must_not": [{"term": {"content_hash": digest}}]}}
                for doc_id, digest in items[start : start + STALE_BATCH]
            ]
            query = {"bool": {"filter": [_tenant_filter(tenant)], "should": stale, "minimum_should_match": 1}}
            self._delete_by_query(index.name, query, f"deleting stale chunks from {index.name}")

    def refresh(self) -> None:
        """Make the writes of this process searchable now rather than at the next periodic refresh."""
        with self._lock:
            written, self._written = sorted(self._written), set()
        for name in written:
            self._call(f"refreshing {name}", self.client.indices.refresh, index=name)

    def needs_refresh(self) -> bool:
        """Never: OpenSearch makes every write searchable by itself within its refresh interval (``refresh`` only
        hurries that), and it keeps its text and vector indices current on every write."""
        return False

    # reads ------------------------------------------------------------------------------------------
    def documents(self, tenant: str) -> dict[str, DocState]:
        index = self._tenant_index(tenant, create=False)
        rows: list[tuple[str, str, str]] = []
        if index is None:
            return {}
        body: dict[str, Any] = {
            "size": DOCUMENTS_PAGE,
            "query": {"bool": {"filter": [_tenant_filter(tenant)]}},
            "_source": ["doc_id", "content_hash", "source_file"],
            "sort": [{"chunk_id": "asc"}],
            "track_total_hits": False,
        }
        while True:
            response = self._call(
                f"listing the documents of {index.name}", self.client.search, index=index.name, body=body
            )
            hits = response["hits"]["hits"]
            rows.extend(
                (h["_source"]["doc_id"], h["_source"]["content_hash"], h["_source"]["source_file"]) for h in hits
            )
            if len(hits) < DOCUMENTS_PAGE:
                return fold_documents(rows)
            body = {**body, "search_after": hits[-1]["sort"]}

    @staticmethod
    def _chunk(source: dict[str, Any]) -> Chunk:
        return Chunk(**{name: source[name] for name in FIELDS if name in source})

    def dense_search(self, tenant: str, vector: Sequence[float], k: int) -> list[Hit]:
        index = self._tenant_index(tenant, create=False)
        if index is None:
            return []
        knn = {"vector": self._vector(index, vector, "the query"), "k": k, "filter": _tenant_filter(tenant)}
        body = {"size": k, "_source": {"excludes": ["vector"]}, "query": {"knn": {"vector": knn}}}
        response = self._call(f"dense search in {index.name}", self.client.search, index=index.name, body=body)
        return [
            Hit(chunk=self._chunk(h["_source"]), score=cosine_from_score(float(h["_score"]), index.space_type))
            for h in response["hits"]["hits"]
        ]

    def lexical_search(self, tenant: str, query: str, k: int) -> list[Hit]:
        index = self._tenant_index(tenant, create=False)
        if index is None or not query.strip():
            return []
        # multi_match does not parse query syntax, so a question's punctuation is never read as an operator.
        match = {"multi_match": {"query": query, "fields": list(LEXICAL_FIELDS)}}
        body = {
            "size": k,
            "_source": {"excludes": ["vector"]},
            "query": {"bool": {"must": [match], "filter": [_tenant_filter(tenant)]}},
        }
        response = self._call(f"lexical search in {index.name}", self.client.search, index=index.name, body=body)
        return [Hit(chunk=self._chunk(h["_source"]), score=float(h["_score"])) for h in response["hits"]["hits"]]

    def vectors(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        index = self._tenant_index(tenant, create=False)
        ids = list(dict.fromkeys(chunk_ids))
        if index is None or not ids:
            return {}
        body = {
            "size": len(ids),
            "_source": ["chunk_id", "vector"],
            "query": {"bool": {"filter": [{"terms": {"chunk_id": ids}}, _tenant_filter(tenant)]}},
        }
        response = self._call(f"reading vectors from {index.name}", self.client.search, index=index.name, body=body)
        return {h["_source"]["chunk_id"]: h["_source"]["vector"] for h in response["hits"]["hits"]}

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            response = self._call("counting chunks", self.client.count, index=f"{self.index_prefix}*")
            return int(response["count"])
        index = self._tenant_index(tenant, create=False)
        if index is None:
            return 0
        body = {"query": {"bool": {"filter": [_tenant_filter(tenant)]}}}
        response = self._call(f"counting chunks in {index.name}", self.client.count, index=index.name, body=body)
        return int(response["count"])

    def ping(self) -> None:
        # A count over CareQA's indices needs only the read permission the service has (not cluster monitor).
        self._call("reading the CareQA indices", self.client.count, index=f"{self.index_prefix}*", retries=0)
