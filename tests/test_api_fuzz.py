"""The HTTP API under requests generated from its OpenAPI document (schemathesis; the harness is tests/api_fuzz.py).

One seeded run of about 150 requests is shared by the tests below; ``benchmarks/bench_fuzz.py`` sends thousands.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.api_fuzz import FuzzReport, Known, fuzz, make_checks

SEED = 20261203
#: custom checks of this project (tests/api_fuzz.py); every other failure title is one of schemathesis's checks
TENANT_CHECKS = ("answers_stay_in_tenant", "ratings_stay_in_tenant", "source_links_open_only_themselves")


@pytest.fixture(scope="module")
def fuzzed(app) -> FuzzReport:  # noqa: ANN001
    return fuzz(app, examples=10, seed=SEED)


def test_generated_requests_reach_every_operation(fuzzed, app):
    paths = app.openapi()["paths"]
    operations = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert {operation for operation, _ in fuzzed.statuses} == operations
    assert 100 <= fuzzed.requests <= 250


def test_no_generated_request_gets_a_server_error(fuzzed):
    assert [key for key in fuzzed.statuses if key[1] >= 500] == []
    assert fuzzed.failures_of("Server error", "unhandled") == {}


def test_every_error_is_in_the_documented_shape(fuzzed):
    assert fuzzed.failures_of("errors_have_one_shape") == {}


def test_every_response_is_what_the_openapi_document_says(fuzzed):
    others = {key: example for key, example in fuzzed.examples.items() if not any(c in key[1] for c in TENANT_CHECKS)}
    assert others == {}


def test_no_generated_request_reaches_another_tenants_data(fuzzed):
    assert fuzzed.failures_of(*TENANT_CHECKS) == {}
    # the requests aimed at real objects were sent: ratings of real answers, real source links
    assert fuzzed.statuses[("POST /v1/feedback", 201)] and fuzzed.statuses[("POST /v1/feedback", 404)]
    assert fuzzed.statuses[("GET /sources/{tenant}/{path}", 200)]
    assert fuzzed.statuses[("GET /sources/{tenant}/{path}", 404)]


# the project's checks fail on what they look for ------------------------------------------------------------------


def response(status: int, body: Any, *, token: str | None = "demo-pharmacy-agent", url: str = "http://t/") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return SimpleNamespace(status_code=status, content=content, request=SimpleNamespace(headers=headers, url=url))


def case(path: str, body: Any = None) -> Any:
    return SimpleNamespace(operation=SimpleNamespace(path=path), body=body)


def check(name: str, known: Known | None = None) -> Any:
    return next(c for c in make_checks(known or Known()) if c.__name__ == name)


def an_answer(tenant: str, doc_id: str, url: str) -> dict[str, Any]:
    return {"answer_id": "a" * 32, "tenant": tenant, "sources": [{"doc_id": doc_id, "url": url}]}


def test_the_error_shape_check_refuses_any_other_error_body():
    errors_have_one_shape = check("errors_have_one_shape")
    errors_have_one_shape(None, response(404, {"error": {"code": "not_found", "message": "no"}}), case("/v1/x"))
    for body in ({"detail": "Not Found"}, {"error": {"code": "x"}}, b"Internal Server Error"):
        with pytest.raises(AssertionError):
            errors_have_one_shape(None, response(500, body), case("/v1/x"))


def test_the_tenant_check_refuses_an_answer_citing_another_tenant():
    answers_stay_in_tenant = check("answers_stay_in_tenant")
    mine = an_answer("pharmacy", "pharmacy/refills.md", "/sources/pharmacy/refills.md?exp=1&sig=a")
    answers_stay_in_tenant(None, response(200, mine), case("/v1/ask"))
    theirs = an_answer("pharmacy", "clinic/labs.md", "/sources/clinic/labs.md?exp=1&sig=a")
    with pytest.raises(AssertionError, match="got the source clinic/labs.md"):
        answers_stay_in_tenant(None, response(200, theirs), case("/v1/ask"))
    linked = an_answer("pharmacy", "pharmacy/refills.md", "/sources/clinic/labs.md?exp=1&sig=a")
    with pytest.raises(AssertionError, match="got a link"):
        answers_stay_in_tenant(None, response(200, linked), case("/v1/ask"))


def test_the_rating_check_refuses_a_rating_of_another_tenants_answer():
    known = Known(answers={"c" * 32: "clinic"})
    ratings_stay_in_tenant = check("ratings_stay_in_tenant", known)
    rating = case("/v1/feedback", {"answer_id": "c" * 32, "rating": "up"})
    ratings_stay_in_tenant(None, response(404, {}), rating)
    with pytest.raises(AssertionError, match="rating an answer of clinic got 201"):
        ratings_stay_in_tenant(None, response(201, {}), rating)


def test_the_link_check_refuses_a_document_opened_by_a_link_never_signed():
    known = Known(links={("pharmacy", "refills.md", 1, "abc")})
    source_links_open_only_themselves = check("source_links_open_only_themselves", known)
    signed = response(200, b"<html>", token=None, url="http://t/sources/pharmacy/refills.md?exp=1&sig=abc")
    source_links_open_only_themselves(None, signed, case("/sources/{tenant}/{path}"))
    swapped = response(200, b"<html>", token=None, url="http://t/sources/clinic/refills.md?exp=1&sig=abc")
    with pytest.raises(AssertionError, match="never signed"):
        source_links_open_only_themselves(None, swapped, case("/sources/{tenant}/{path}"))
