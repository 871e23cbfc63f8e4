"""A test double of the OpenSearch REST API: a real HTTP server in this process, small enough to read.

It serves exactly the requests CareQA's OpenSearch driver sends, through opensearch-py's real HTTP stack
(so request bodies, headers and SigV4 signatures are the ones a cluster would receive), records each request,
and answers the way OpenSearch 2.x does:

* ``PUT /<index>``, ``GET /<index>/_mapping``, ``PUT /<index>/_mapping`` (``_meta`` only)
  (404 ``index_not_found_exception`` when absent), ``DELETE``;
* ``POST /_bulk``: ``index`` actions only; a ``dynamic: strict`` mapping refuses unknown fields and vectors of
  the wrong dimension per item (``strict_dynamic_mapping_exception``, ``mapper_parsing_exception``);
* ``_search``: ``knn`` scored *exactly* (a scan, not HNSW) with the plugin's score for the space type and the
  filter applied first; ``bool`` (filter/must/should/must_not/minimum_should_match), ``term``, ``terms``,
  ``match_all``, and ``multi_match`` (best_fields) scored by BM25 (k1=1.2, b=0.75, Lucene's idf) over an
  approximation of the ``english`` analyzer (lowercase, Lucene's English stop words, Porter stemming); ``size``,
  ``sort`` on one keyword with ``search_after``, ``_source`` includes/excludes;
* ``_delete_by_query``, ``_count``, ``_refresh``, ``GET /``.

Writes are searchable at once (no refresh interval). Faults are scripted: :meth:`FakeOpenSearch.fail` answers the
next matching requests with a status and an error body; :meth:`FakeOpenSearch.reject_item` fails single bulk
items. Anything else is answered 400, so a driver change that sends something new shows up as a failing test.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import snowballstemmer

# Lucene's EnglishAnalyzer default stop words.
_STOP_TEXT = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they"
)
STOP_WORDS = frozenset(f"{_STOP_TEXT} this to was will with".split(" "))
_stemmer = snowballstemmer.stemmer("porter")


def analyze(text: str | None) -> list[str]:
    """Tokens as the ``english`` analyzer would roughly produce them."""
    words = re.findall(r"[a-z0-9]+", (text or "").lower().replace("'s", ""))
    return _stemmer.stemWords([w for w in words if w not in STOP_WORDS])


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode("utf-8").splitlines() if line.strip()]


@dataclass
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    times: int


@dataclass
class _Index:
    name: str
    body: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def properties(self) -> dict[str, Any]:
        return self.body["mappings"]["properties"]


def error_body(status: int, kind: str, reason: str) -> dict[str, Any]:
    """An error response body shaped as OpenSearch shapes them."""
    return {
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status,
    }


class _Answer(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body


class FakeOpenSearch:
    """The fake cluster's state and behaviour; :meth:`serve` puts it behind HTTP on 127.0.0.1."""

    def __init__(self) -> None:
        self.indices: dict[str, _Index] = {}
        self.requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._item_faults: dict[str, tuple[int, str, str, int | None]] = {}
        self._lock = threading.Lock()
        self.url = ""

    # scripting --------------------------------------------------------------------------------------
    def fail(self, method: str, path: str, status: int, kind: str = "", reason: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` requests whose method and path (a regex) match with ``status``."""
        kind = kind or {429: "rejected_execution_exception", 503: "cluster_block_exception"}.get(status, "error")
        body = error_body(status, kind, reason or f"scripted {status}")
        self._faults.append(_Fault(method, re.compile(path), status, body, times))

    def reject_item(self, doc_id: str, status: int, kind: str, reason: str, *, times: int | None = None) -> None:
        """Fail the bulk item with ``_id`` ``doc_id`` (``times`` times, or always)."""
        self._item_faults[doc_id] = (status, kind, reason, times)

    def requests_to(self, method: str, path: str) -> list[Request]:
        """The recorded requests with this method whose path matches the regex ``path``."""
        return [r for r in self.requests if r.method == method and re.search(path, r.path)]

    # HTTP -------------------------------------------------------------------------------------------
    @contextmanager
    def serve(self) -> Iterator[FakeOpenSearch]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers=dict(self.headers.items()),
                    body=self.rfile.read(length) if length else b"",
                )
                status, body = fake.handle(request)
                payload = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    def handle(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.times > 0 and fault.method == request.method and fault.path.search(request.path):
                    fault.times -= 1
                    return fault.status, fault.body
            try:
                return 200, self._route(request)
            except _Answer as answer:
                return answer.status, answer.body

    # routes -----------------------------------------------------------------------------------------
    def _route(self, request: Request) -> Any:
        segments = [s for s in request.path.split("/") if s]
        method = request.method
        if not segments:
            return {"version": {"number": "2.19.0", "distribution": "opensearch"}, "tagline": "fake"}
        if segments == ["_bulk"] and method in {"POST", "PUT"}:
            return self._bulk(request.ndjson())
        name, *rest = segments
        if not rest:
            if method == "PUT":
                return self._create(name, request.json())
            if method == "DELETE":
                self._get(name)
                del self.indices[name]
                return {"acknowledged": True}
            if method == "HEAD":
                self._get(name)
                return {}
        action = rest[0] if len(rest) == 1 else ""
        body = request.json() if request.body else {}
        if action == "_mapping" and method == "GET":
            index = self._get(name)
            return {name: {"mappings": index.body["mappings"]}}
        if action == "_mapping" and method in {"PUT", "POST"}:
            index = self._get(name)
            if set(body) - {"_meta"}:
                raise _Answer(400, error_body(400, "illegal_argument_exception", "the fake updates only _meta"))
            index.body["mappings"]["_meta"] = body["_meta"]
            return {"acknowledged": True}
        if action == "_bulk" and method in {"POST", "PUT"}:
            return self._bulk(request.ndjson(), default_index=name)
        if action == "_search" and method in {"GET", "POST"}:
            return self._search(self._resolve(name), body)
        if action == "_count" and method in {"GET", "POST"}:
            docs = [d for i in self._resolve(name) for d in i.docs.values()]
            return {"count": sum(1 for d in docs if self._matches(d, body.get("query", {"match_all": {}})))}
        if action == "_delete_by_query" and method == "POST":
            return self._delete_by_query(self._get(name), body)
        if action == "_refresh" and method in {"GET", "POST"}:
            self._resolve(name)
            return {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        raise _Answer(
            400, error_body(400, "illegal_argument_exception", f"the fake does not serve {method} {request.path}")
        )

    def _get(self, name: str) -> _Index:
        if name not in self.indices:
            raise _Answer(404, error_body(404, "index_not_found_exception", f"no such index [{name}]"))
        return self.indices[name]

    def _resolve(self, pattern: str) -> list[_Index]:
        if "*" in pattern:
            return [i for n, i in self.indices.items() if fnmatch.fnmatch(n, pattern)]
        return [self._get(pattern)]

    def _create(self, name: str, body: dict[str, Any]) -> Any:
        if name in self.indices:
            raise _Answer(400, error_body(400, "resource_already_exists_exception", f"index [{name}] already exists"))
        vector = body.get("mappings", {}).get("properties", {}).get("vector", {})
        if vector.get("type") == "knn_vector" and not isinstance(vector.get("dimension"), int):
            raise _Answer(400, error_body(400, "mapper_parsing_exception", "dimension must be an integer"))
        self.indices[name] = _Index(name=name, body=body)
        return {"acknowledged": True, "shards_acknowledged": True, "index": name}

    # writes -----------------------------------------------------------------------------------------
    def _bulk(self, lines: list[Any], default_index: str | None = None) -> Any:
        items = []
        for action, source in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = action.items()
            if op != "index":
                raise _Answer(400, error_body(400, "illegal_argument_exception", f"the fake supports index, not {op}"))
            name, doc_id = meta.get("_index", default_index), meta["_id"]
            result: dict[str, Any] = {"_index": name, "_id": doc_id}
            error = self._item_error(doc_id) or self._validate(name, source)
            if error:
                result.update(status=error[0], error={"type": error[1], "reason": error[2]})
            else:
                index = self.indices[name]
                result.update(status=200 if doc_id in index.docs else 201,
                              result="updated" if doc_id in index.docs else "created")  # fmt: skip
                index.docs[doc_id] = source
            items.append({"index": result})
        return {"took": 1, "errors": any(i["index"]["status"] >= 300 for i in items), "items": items}

    def _item_error(self, doc_id: str) -> tuple[int, str, str] | None:
        fault = self._item_faults.get(doc_id)
        if fault is None:
            return None
        status, kind, reason, times = fault
        if times is not None:
            if times <= 0:
                return None
            self._item_faults[doc_id] = (status, kind, reason, times - 1)
        return status, kind, reason

    def _validate(self, name: str, source: dict[str, Any]) -> tuple[int, str, str] | None:
        if name not in self.indices:
            return 404, "index_not_found_exception", f"no such index [{name}]"  # the driver never auto-creates
        properties = self.indices[name].properties
        unknown = sorted(set(source) - set(properties))
        if unknown:
            return (
                400,
                "strict_dynamic_mapping_exception",
                f"mapping set to strict, dynamic introduction of [{unknown[0]}]",
            )
        vector = source.get("vector")
        if vector is not None and len(vector) != properties["vector"]["dimension"]:
            return (
                400,
                "mapper_parsing_exception",
                f"Vector dimension mismatch. Expected: {properties['vector']['dimension']}",
            )
        return None

    def _delete_by_query(self, index: _Index, body: dict[str, Any]) -> Any:
        doomed = [i for i, d in index.docs.items() if self._matches(d, body["query"])]
        for doc_id in doomed:
            del index.docs[doc_id]
        return {"took": 1, "deleted": len(doomed), "total": len(doomed), "version_conflicts": 0, "failures": []}

    # queries ----------------------------------------------------------------------------------------
    def _matches(self, doc: dict[str, Any], query: dict[str, Any]) -> bool:
        ((kind, spec),) = query.items()
        if kind == "match_all":
            return True
        if kind == "term":
            ((name, value),) = spec.items()
            value = value["value"] if isinstance(value, dict) else value
            return doc.get(name) == value
        if kind == "terms":
            ((name, values),) = spec.items()
            return doc.get(name) in values
        if kind == "bool":
            musts = [*spec.get("filter", []), *spec.get("must", [])]
            if not all(self._matches(doc, q) for q in musts):
                return False
            if any(self._matches(doc, q) for q in spec.get("must_not", [])):
                return False
            should = spec.get("should", [])
            needed = spec.get("minimum_should_match", 0 if musts else 1)
            return not should or sum(self._matches(doc, q) for q in should) >= needed
        if kind == "multi_match":
            terms = set(analyze(spec["query"]))
            return any(terms & set(analyze(doc.get(f))) for f in spec["fields"])
        raise _Answer(400, error_body(400, "parsing_exception", f"the fake does not know the [{kind}] query"))

    def _bm25(self, index: _Index, query: dict[str, Any]) -> dict[str, float]:
        spec = query["multi_match"]
        terms = analyze(spec["query"])
        scores: dict[str, float] = {}
        for name in spec["fields"]:
            field_tokens = {i: analyze(d.get(name)) for i, d in index.docs.items() if d.get(name)}
            if not field_tokens:
                continue
            count = len(field_tokens)
            avgdl = sum(len(t) for t in field_tokens.values()) / count
            for doc_id, tokens in field_tokens.items():
                score = 0.0
                for term in terms:
                    tf = tokens.count(term)
                    if not tf:
                        continue
                    df = sum(1 for t in field_tokens.values() if term in t)
                    idf = math.log(1 + (count - df + 0.5) / (df + 0.5))
                    score += idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(tokens) / avgdl))
                if score > 0:  # best_fields: the best field's score
                    scores[doc_id] = max(scores.get(doc_id, 0.0), score)
        return scores

    @staticmethod
    def _knn_score(space: str, a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        if space == "cosinesimil":
            cos = dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
            return (1 + cos) / 2
        if space == "innerproduct":
            return 1 + dot if dot >= 0 else 1 / (1 - dot)
        raise _Answer(400, error_body(400, "illegal_argument_exception", f"the fake does not score {space}"))

    def _search(self, indices: list[_Index], body: dict[str, Any]) -> Any:
        query = body.get("query", {"match_all": {}})
        size = body.get("size", 10)
        scored: list[tuple[float, str, _Index]] = []
        for index in indices:
            if "knn" in query:
                ((name, spec),) = query["knn"].items()
                space = index.properties[name]["method"]["space_type"]
                candidates = [(i, d) for i, d in index.docs.items()
                              if self._matches(d, spec.get("filter", {"match_all": {}}))]  # fmt: skip
                ranked = sorted(((self._knn_score(space, spec["vector"], d[name]), i) for i, d in candidates),
                                key=lambda s: -s[0])[: spec["k"]]  # fmt: skip
                scored.extend((s, i, index) for s, i in ranked)
            elif "bool" in query and any("multi_match" in q for q in query["bool"].get("must", [])):
                (match,) = [q for q in query["bool"]["must"] if "multi_match" in q]
                bm25 = self._bm25(index, match)
                scored.extend(
                    (bm25[i], i, index) for i, d in index.docs.items() if i in bm25 and self._matches(d, query)
                )
            else:
                scored.extend((1.0, i, index) for i, d in index.docs.items() if self._matches(d, query))
        sort = body.get("sort")
        if sort:
            ((key, order),) = sort[0].items()
            scored.sort(key=lambda s: s[2].docs[s[1]][key], reverse=order == "desc")
            after = body.get("search_after")
            if after:
                scored = [s for s in scored if s[2].docs[s[1]][key] > after[0]]
        else:
            scored.sort(key=lambda s: -s[0])
        hits = []
        for score, doc_id, index in scored[:size]:
            hit = {"_index": index.name, "_id": doc_id, "_score": None if sort else score,
                   "_source": self._source(index.docs[doc_id], body.get("_source"))}  # fmt: skip
            if sort:
                hit["sort"] = [index.docs[doc_id][key]]
            hits.append(hit)
        max_score = max((s for s, _, _ in scored), default=None)
        total = {"value": len(scored), "relation": "eq"}
        return {"took": 1, "timed_out": False, "hits": {"total": total, "max_score": max_score, "hits": hits}}

    @staticmethod
    def _source(doc: dict[str, Any], spec: Any) -> dict[str, Any]:
        if spec is None or spec is True:
            return dict(doc)
        if isinstance(spec, list):
            return {k: v for k, v in doc.items() if k in spec}
        excludes = set(spec.get("excludes", []))
        return {k: v for k, v in doc.items() if k not in excludes}
