"""Property-based tests of the HTTP API, generated from its own OpenAPI document with schemathesis.

Shared by ``tests/test_api_fuzz.py`` (a small seeded run in the suite) and ``benchmarks/bench_fuzz.py`` (1,000 and
more requests). Each generated request, positive (valid by the schema) or negative (invalid), goes to the app in
process through ASGI with one of the demo identities or none. Schemathesis's own checks run on every response (no
server error; status code, content type, headers and body as documented; invalid data rejected, valid data
accepted), and so do this project's:

* ``errors_have_one_shape``: every 4xx and 5xx body is ``{"error": {"code", "message"}}`` and nothing else;
* ``answers_stay_in_tenant``: an answer (``/v1/ask`` or the stream's final event) is the caller's tenant's, and so
  is each of its sources and source links; ``/v1/whoami`` names the caller's tenant;
* ``ratings_stay_in_tenant``: rating an answer another tenant got is a 404, exactly like a missing one;
* ``source_links_open_only_themselves``: ``/sources/...`` answers 200 only for a link exactly as the service signed
  it; the same signature under another tenant or path is a 404.

Generated requests also aim at real objects: some ratings name answers each tenant really got, and some source
links are real links, as signed or with their tenant or path swapped.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from starlette.testclient import TestClient

#: the demo tokens of config/local.yaml and the tenant each stands for
TOKENS = {"demo-pharmacy-agent": "pharmacy", "demo-pharmacy-supervisor": "pharmacy", "demo-clinic-agent": "clinic"}
#: questions asked once per tenant before fuzzing, for real answer ids and source links to aim at
SEED_QUESTIONS = {
    "pharmacy": ["What does rejection code 75 mean?", "How do refills work?", "Can I transfer a prescription?"],
    "clinic": ["How do I reschedule an appointment?", "When are lab results ready?"],
}
#: statuses that reject invalid input: schemathesis's defaults with 413 (our 64 KiB body cap) added
REJECTION_STATUSES = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]


@dataclass
class Known:
    """Objects each tenant really has: answer ids (with their tenant) and the source links it was given."""

    answers: dict[str, str] = field(default_factory=dict)
    links: set[tuple[str, str, int, str]] = field(default_factory=set)

    def add_answer(self, answer: dict[str, Any]) -> None:
        self.answers[answer["answer_id"]] = answer["tenant"]
        for source in answer["sources"]:
            link = parse_link(source["url"])
            if link is not None:
                self.links.add(link)


@dataclass
class FuzzReport:
    """What a run sent and found: requests per (operation, status) and each failure title with an example."""

    requests: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def failures_of(self, *checks: str) -> dict[tuple[str, str], str]:
        """The failures (operation, title) whose title names one of these checks, with an example each."""
        return {key: self.examples[key] for key in self.failures if any(c in key[1] for c in checks)}


def parse_link(url: str) -> tuple[str, str, int, str] | None:
    """(tenant, path, exp, sig) of a ``/sources/<tenant>/<path>?exp&sig`` link; None for an external URL."""
    parts = urlsplit(url)
    if not parts.path.startswith("/sources/"):
        return None
    tenant, _, path = parts.path.removeprefix("/sources/").partition("/")
    query = parse_qs(parts.query)
    return tenant, unquote(path), int(query["exp"][0]), query["sig"][0]


def caller(response: Any) -> str | None:
    """The tenant of the identity a request was sent with, if any."""
    header = response.request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    return TOKENS.get(token.strip()) if scheme.lower() == "bearer" else None


def sse_events(text: str) -> Iterator[tuple[str, str]]:
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.splitlines()
        name = next((line.removeprefix("event:").strip() for line in lines if line.startswith("event:")), "")
        data = "\n".join(line.removeprefix("data:").strip() for line in lines if line.startswith("data:"))
        if name:
            yield name, data


def _json(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"not JSON: {response.content[:200]!r}") from exc


def check_error(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, f"not the error shape: {body!r}"
    assert isinstance(error["code"], str) and error["code"], f"no error code: {body!r}"
    assert isinstance(error["message"], str) and error["message"], f"no error message: {body!r}"


def check_answer(answer: dict[str, Any], tenant: str) -> None:
    assert answer["tenant"] == tenant, f"a {tenant} caller got an answer of {answer['tenant']}"
    for source in answer["sources"]:
        assert source["doc_id"].startswith(f"{tenant}/"), f"a {tenant} caller got the source {source['doc_id']}"
        link = parse_link(source["url"])
        assert link is None or link[0] == tenant, f"a {tenant} caller got a link to {source['url']}"


def make_checks(known: Known) -> list[Callable[..., None]]:
    """This project's checks, each a schemathesis check function ``(ctx, response, case)``."""

    def errors_have_one_shape(ctx: Any, response: Any, case: Any) -> None:
        if response.status_code >= 400:
            check_error(_json(response))

    def answers_stay_in_tenant(ctx: Any, response: Any, case: Any) -> None:
        tenant = caller(response)
        if response.status_code != 200 or tenant is None:
            return
        path = case.operation.path
        if path == "/v1/ask":
            answer = _json(response)
            check_answer(answer, tenant)
            known.add_answer(answer)
        elif path == "/v1/ask/stream":
            for name, data in sse_events(response.content.decode()):
                if name == "done":
                    check_answer(json.loads(data)["answer"], tenant)
                elif name == "error":
                    check_error(json.loads(data))
        elif path == "/v1/whoami":
            assert _json(response)["tenant"] == tenant, f"whoami of a {tenant} caller: {response.content!r}"

    def ratings_stay_in_tenant(ctx: Any, response: Any, case: Any) -> None:
        if case.operation.path != "/v1/feedback" or not isinstance(case.body, dict):
            return
        tenant, owner = caller(response), known.answers.get(str(case.body.get("answer_id")))
        if tenant is None or response.status_code in (401, 422):
            return
        if owner is None or owner != tenant:
            assert response.status_code == 404, (
                f"a {tenant} caller rating an answer of {owner or 'nobody'} got {response.status_code}"
            )

    def source_links_open_only_themselves(ctx: Any, response: Any, case: Any) -> None:
        if not case.operation.path.startswith("/sources/") or response.status_code != 200:
            return
        link = parse_link(str(response.request.url))
        assert link in known.links, f"a link the service never signed opened a document: {response.request.url}"

    return [errors_have_one_shape, answers_stay_in_tenant, ratings_stay_in_tenant, source_links_open_only_themselves]


def known_objects(app: Any) -> Known:
    """Ask each tenant's seed questions once: the answer ids and source links that fuzzed requests aim at."""
    known = Known()
    with TestClient(app) as client:
        for token, tenant in (("demo-pharmacy-agent", "pharmacy"), ("demo-clinic-agent", "clinic")):
            for question in SEED_QUESTIONS[tenant]:
                response = client.post("/v1/ask", json={"question": question}, headers=bearer(token))
                assert response.status_code == 200, response.text
                known.add_answer(response.json())
    assert {t for t, *_ in known.links} == set(SEED_QUESTIONS), "each tenant needs a source link to aim at"
    return known


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def aimed_cases(operation: Any, known: Known, mode: GenerationMode) -> st.SearchStrategy[Any] | None:
    """Cases aimed at real objects, for the operations that take them (positive data only)."""
    if mode is not GenerationMode.POSITIVE:
        return None
    if operation.path == "/v1/feedback":
        ids = sorted(known.answers)

        def aim(pair: tuple[Any, str]) -> Any:
            case, answer_id = pair
            if isinstance(case.body, dict):
                case.body["answer_id"] = answer_id
            return case

        return st.tuples(operation.as_strategy(mode), st.sampled_from(ids)).map(aim)
    if operation.path.startswith("/sources/"):
        links = sorted(known.links)
        tenants = sorted({t for t, *_ in links})
        paths = sorted({p for _, p, *_ in links})

        def variant(link: tuple[str, str, int, str], swap: str, other: int) -> st.SearchStrategy[Any]:
            tenant, path, exp, sig = link
            if swap == "tenant":
                tenant = [t for t in tenants if t != tenant][other % (len(tenants) - 1)]
            elif swap == "path":
                path = paths[other % len(paths)]
            return operation.as_strategy(
                mode, path_parameters={"tenant": tenant, "path": path}, query={"exp": exp, "sig": sig}
            )

        return st.tuples(
            st.sampled_from(links), st.sampled_from(["none", "tenant", "path"]), st.integers(0, 99)
        ).flatmap(lambda t: variant(*t))
    return None


def fuzz(app: Any, *, examples: int, seed: int, known: Known | None = None) -> FuzzReport:
    """Send ``examples`` generated requests per operation and mode (positive, negative, aimed) and check each."""
    known = known or known_objects(app)
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTION_STATUSES}}}
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    checks = make_checks(known)
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            aimed = aimed_cases(operation, known, mode)
            for strategy in [operation.as_strategy(mode)] + ([aimed] if aimed is not None else []):
                # an operation with nothing to make invalid has no negative cases
                with contextlib.suppress(Unsatisfiable):
                    send_generated(report, operation.label, strategy, checks, examples=examples, seed=seed)
    return report


def send_generated(
    report: FuzzReport, label: str, strategy: Any, checks: list[Callable[..., None]], *, examples: int, seed: int
) -> None:
    """Send up to ``examples`` cases drawn from ``strategy``, each with a demo identity or none, and check each."""

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy, token=st.sampled_from([*TOKENS, None]))
    def send(case: Any, token: str | None) -> None:
        headers = bearer(token) if token else {}
        report.requests += 1
        try:
            response = case.call(headers=headers)
            report.statuses[(label, response.status_code)] += 1
            case.validate_response(response, headers=headers, additional_checks=checks)
        except BaseExceptionGroup as group:
            for failure in group.exceptions:
                record(report, label, failure)
        except AssertionError as failure:
            record(report, label, failure)
        except Exception as exc:  # noqa: BLE001 - in process, an unhandled error reaches the caller
            report.statuses[(label, 500)] += 1
            record(report, label, exc, title=f"ST000 unhandled {type(exc).__name__} (a 500)")

    send()


def record(report: FuzzReport, operation: str, failure: BaseException, title: str | None = None) -> None:
    if title is None:
        title = f"{getattr(failure, 'code', '')} {getattr(failure, 'title', None) or type(failure).__name__}".strip()
    key = (operation, title)
    report.failures[key] += 1
    report.examples.setdefault(key, str(failure)[:2000])
