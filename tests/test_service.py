"""The HTTP API: authentication, tenant isolation through every route, errors as one JSON shape."""

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from careqa.auth import Principal
from endpoints.errors import ModelResponseError, ModelThrottledError, ModelTimeoutError
from tests.conftest import CLINIC_TOKEN, PHARMACY_TOKEN, SUPERVISOR_TOKEN, auth

ROUTES = [
    ("post", "/v1/ask", {"question": "What does code 75 mean?"}),
    ("post", "/v1/feedback", {"answer_id": "0" * 32, "rating": "up"}),
    ("get", "/v1/whoami", None),
]


def call(client, method, path, body, headers=None):
    return (
        getattr(client, method)(path, json=body, headers=headers or {})
        if body is not None
        else (getattr(client, method)(path, headers=headers or {}))
    )


@pytest.mark.parametrize("method,path,body", ROUTES)
@pytest.mark.parametrize(
    "headers,message",
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer not-a-real-token"}, "invalid bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be 'Bearer <token>'"),
    ],
)
def test_every_api_route_requires_a_valid_bearer_token(client, method, path, body, headers, message):
    response = call(client, method, path, body, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert message in response.json()["error"]["message"]


def test_whoami_names_the_tenant_from_the_token(client):
    assert client.get("/v1/whoami", headers=auth(CLINIC_TOKEN)).json() == {
        "subject": "demo-clinic-agent",
        "tenant": "clinic",
        "tenant_name": "Lakeside Family Clinic",
    }


def test_ask_returns_a_cited_answer_with_models_and_timings(client):
    response = client.post(
        "/v1/ask", json={"question": "What does rejection code 75 mean?"}, headers=auth(PHARMACY_TOKEN)
    )
    assert response.status_code == 200
    body = response.json()
    assert "prior authorization" in body["text"].lower()
    assert set(body["timings"]) == {
        "embed_ms",
        "retrieve_ms",
        "read_ms",
        "generate_ms",
        "check_ms",
        "first_sentence_ms",
        "total_ms",
    }
    assert set(body["models"]) == {"embedding", "llm"}
    source = body["sources"][0]
    assert {"n", "title", "url", "snippet", "score", "doc_id"} <= set(source)


def test_the_tenant_in_the_body_is_ignored(client):
    response = client.post(
        "/v1/ask",
        json={"question": "What does rejection code 75 mean?", "tenant": "pharmacy"},
        headers=auth(CLINIC_TOKEN),
    )
    assert response.status_code == 200
    assert all(s["doc_id"].startswith("clinic/") for s in response.json()["sources"])


@pytest.mark.parametrize(
    "question",
    [
        "What does rejection code 75 mean?",
        "How do I transfer a prescription?",
        "prior authorization refill too soon",
        "How long does delivery take?",
    ],
)
def test_a_clinic_token_never_receives_a_pharmacy_document(client, question):
    body = client.post("/v1/ask", json={"question": question}, headers=auth(CLINIC_TOKEN)).json()
    assert body["sources"], "the clinic still gets its own closest documents"
    for source in body["sources"]:
        assert source["doc_id"].startswith("clinic/")
        assert "/sources/pharmacy/" not in source["url"]
    assert "rejection code" not in body["text"].lower()


def source_link(client, token, question):
    body = client.post("/v1/ask", json={"question": question}, headers=auth(token)).json()
    return next(s["url"] for s in body["sources"] if s["url"].startswith("/sources/"))


def test_source_links_open_without_a_header_and_show_the_document(client):
    url = source_link(client, PHARMACY_TOKEN, "What does rejection code 75 mean?")
    page = client.get(url.split("#")[0])
    assert page.status_code == 200
    assert "Prior authorization required" in page.text or "prior authorization" in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_source_link_cannot_be_pointed_at_another_tenant_or_file(client):
    url = source_link(client, CLINIC_TOKEN, "How do I cancel an appointment?").split("#")[0]
    parts = urlsplit(url)
    stolen = parts.path.replace("/sources/clinic/", "/sources/pharmacy/", 1)
    other_file = re.sub(r"/[^/]+$", "/claim-rejection-codes.md", parts.path)
    for path in (stolen, other_file, parts.path.replace("/sources/clinic/", "/sources/clinic/../pharmacy/")):
        assert client.get(f"{path}?{parts.query}").status_code == 404
    assert client.get(f"{parts.path}?{parts.query.replace('sig=', 'sig=0')}").status_code == 404


def test_feedback_is_stored_and_exported_with_the_answer(client, app):
    answer = client.post("/v1/ask", json={"question": "How do refills work?"}, headers=auth(PHARMACY_TOKEN)).json()
    response = client.post(
        "/v1/feedback",
        json={"answer_id": answer["answer_id"], "rating": "down", "comment": "Missing the auto-refill detail"},
        headers=auth(PHARMACY_TOKEN),
    )
    assert response.status_code == 201
    rows = [r for r in app.state.feedback_store.export("pharmacy") if r["answer_id"] == answer["answer_id"]]
    assert len(rows) == 1
    row = rows[0]
    assert row["rating"] == "down" and row["comment"] == "Missing the auto-refill detail"
    assert row["question"] == "How do refills work?" and row["answer"] == answer["text"]
    assert row["sources"] == answer["sources"] and row["models"] == answer["models"]
    assert row["subject"] == "demo-pharmacy-agent"


def test_a_colleague_in_the_same_tenant_can_rate_an_answer(client):
    answer = client.post("/v1/ask", json={"question": "How do refills work?"}, headers=auth(PHARMACY_TOKEN)).json()
    response = client.post(
        "/v1/feedback", json={"answer_id": answer["answer_id"], "rating": "up"}, headers=auth(SUPERVISOR_TOKEN)
    )
    assert response.status_code == 201


def test_another_tenant_cannot_rate_or_see_an_answer(client, app):
    answer = client.post("/v1/ask", json={"question": "How do refills work?"}, headers=auth(PHARMACY_TOKEN)).json()
    response = client.post(
        "/v1/feedback", json={"answer_id": answer["answer_id"], "rating": "down"}, headers=auth(CLINIC_TOKEN)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert all(r["tenant"] == "clinic" for r in app.state.feedback_store.export("clinic"))


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"question": ""}, "question is empty"),
        ({"question": "   \n "}, "question is empty"),
        ({"question": "why " * 300}, "too long"),
        ({}, "question: Field required"),
        ({"question": 42}, "question: Input should be a valid string"),
    ],
)
def test_bad_questions_get_a_clear_422(client, body, fragment):
    response = client.post("/v1/ask", json=body, headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 422
    assert fragment in response.json()["error"]["message"]


def test_an_oversized_body_is_refused_before_parsing(client):
    response = client.post(
        "/v1/ask",
        content=b'{"question": "' + b"a" * 70_000 + b'"}',
        headers=auth(PHARMACY_TOKEN) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"answer_id": "nope", "rating": "up"},
        {"answer_id": "0" * 32, "rating": "meh"},
        {"answer_id": "0" * 32, "rating": "up", "comment": "x" * 2001},
    ],
)
def test_bad_feedback_is_a_422(client, body):
    assert client.post("/v1/feedback", json=body, headers=auth(PHARMACY_TOKEN)).status_code == 422


def test_feedback_for_an_unknown_answer_is_a_404(client):
    response = client.post("/v1/feedback", json={"answer_id": "f" * 32, "rating": "up"}, headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 404


class FailingModel:
    def __init__(self, exc):
        self.exc = exc

    def invoke(self, *_args, **_kwargs):
        raise self.exc

    stream = invoke


@pytest.mark.parametrize(
    "exc,status,code",
    [
        (ModelTimeoutError("llm: generation exceeded 60s"), 504, "model_timeout"),
        (ModelThrottledError("llm: ThrottlingException after 4 attempts"), 503, "model_busy"),
        (ModelResponseError("llm: model error: CUDA out of memory"), 502, "model_error"),
    ],
)
def test_model_failures_become_clear_errors_and_store_nothing(client, app, runtime, monkeypatch, exc, status, code):
    monkeypatch.setattr(runtime.engine, "chat_model", FailingModel(exc))
    monkeypatch.setattr(runtime.engine, "answer_mode", "generate")
    before = len(list(app.state.feedback_store.export()))
    response = client.post(
        "/v1/ask", json={"question": "What happens when a package is lost in the mail?"}, headers=auth(PHARMACY_TOKEN)
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert len(list(app.state.feedback_store.export())) == before


def test_a_real_local_model_timeout_is_a_504(client, runtime, monkeypatch):
    container = runtime.chat_model.transport.container
    monkeypatch.setattr(container, "timeout_s", 0.0)
    monkeypatch.setattr(runtime.engine, "answer_mode", "generate")
    response = client.post(
        "/v1/ask", json={"question": "What happens when a package is lost in the mail?"}, headers=auth(PHARMACY_TOKEN)
    )
    assert response.status_code == 504


def test_probes_and_the_openapi_document(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ask", "/v1/feedback", "/v1/whoami", "/healthz", "/readyz"} <= set(paths)


def test_the_agent_page_is_served_with_a_strict_csp(client):
    page = client.get("/")
    assert page.status_code == 200 and "CareQA" in page.text
    assert (
        "script-src" not in page.headers["content-security-policy"]
        or "unsafe-inline" not in page.headers["content-security-policy"].split("script-src")[1]
    )


def test_principal_is_immutable():
    with pytest.raises(AttributeError):
        Principal("a", "pharmacy").tenant = "clinic"  # type: ignore[misc]


def test_demo_tokens_are_refused_on_a_public_interface(settings):
    from typer.testing import CliRunner

    from careqa.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--config", str(settings.config_file)])
    assert result.exit_code == 2
    assert "demo tokens" in result.output


def test_no_question_text_reaches_the_logs(client, caplog):
    secret = "Patient Jane Roe DOB 1970-01-01 wants her refill"
    with caplog.at_level("DEBUG"):
        client.post("/v1/ask", json={"question": secret}, headers=auth(PHARMACY_TOKEN))
    assert "Jane" not in caplog.text and "1970" not in caplog.text


def test_a_fresh_client_without_lifespan_reports_ready_after_warm_up(settings, runtime):
    from careqa.service.app import create_app

    with TestClient(create_app(settings, runtime=runtime, warm_up=False)) as c:
        assert c.get("/readyz").status_code == 200


# -- streaming ---------------------------------------------------------------------------------------------------


def sse_events(response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent event stream."""
    import json

    events = []
    for frame in response.text.replace("\r\n", "\n").split("\n\n"):
        kind, data = "message", []
        for line in frame.splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((kind, json.loads("\n".join(data))))
    return events


def test_the_answer_streams_sources_first_then_sentences_then_the_whole_answer(client, app):
    question = "What does rejection code 75 mean?"
    with client.stream("POST", "/v1/ask/stream", json={"question": question}, headers=auth(PHARMACY_TOKEN)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        r.read()
        events = sse_events(r)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"sentence"}
    answer = events[-1][1]["answer"]
    assert [d["sentence"]["text"] for k, d in events if k == "sentence"] == [s["text"] for s in answer["sentences"]]
    assert "prior authorization" in answer["text"].lower()
    # the streamed answer is stored like any other: it can be rated
    rated = client.post(
        "/v1/feedback", json={"answer_id": answer["answer_id"], "rating": "up"}, headers=auth(PHARMACY_TOKEN)
    )
    assert rated.status_code == 201


def test_a_stream_is_tenant_scoped_and_authenticated(client):
    assert client.post("/v1/ask/stream", json={"question": "code 75"}).status_code == 401
    response = client.post("/v1/ask/stream", json={"question": "code 75?"}, headers=auth(CLINIC_TOKEN))
    answer = sse_events(response)[-1][1]["answer"]
    assert all(s["doc_id"].startswith("clinic/") for s in answer["sources"])


def test_stream_input_errors_are_plain_json_errors(client):
    response = client.post("/v1/ask/stream", json={"question": "  "}, headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_question"


def test_a_busy_model_is_a_503_with_retry_after_before_the_stream_starts(client, runtime, monkeypatch):
    from endpoints.errors import ModelBusyError

    monkeypatch.setattr(runtime.engine, "chat_model", FailingModel(ModelBusyError("local:llm: busy for 5s")))
    monkeypatch.setattr(runtime.engine, "answer_mode", "generate")
    for path in ("/v1/ask/stream", "/v1/ask"):
        response = client.post(path, json={"question": "How do I check a PA's status?"}, headers=auth(PHARMACY_TOKEN))
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "model_busy"


def test_a_model_failure_after_the_stream_started_is_an_error_event(client, runtime, monkeypatch):
    class FailsMidway:
        def stream(self, *_args, **_kwargs):
            from langchain_core.messages import AIMessageChunk

            yield AIMessageChunk(content="Open a lost-package case under Orders > Report a problem. ")
            yield AIMessageChunk(content="The package ")
            raise ModelTimeoutError("llm: generation exceeded 60s")

    monkeypatch.setattr(runtime.engine, "chat_model", FailsMidway())
    monkeypatch.setattr(runtime.engine, "answer_mode", "generate")
    response = client.post(
        "/v1/ask/stream",
        json={"question": "What should a patient do if a mail order package is lost?"},
        headers=auth(PHARMACY_TOKEN),
    )
    assert response.status_code == 200
    kind, data = sse_events(response)[-1]
    assert kind == "error" and data["error"]["code"] == "model_timeout"


# found by fuzzing (tests/test_api_fuzz.py) or while making the API description exact ----------------------------


def test_an_unexpected_failure_is_a_500_in_the_error_shape_that_quotes_nothing(app, runtime, monkeypatch):
    def broken(tenant, question):
        raise RuntimeError(f"bug while answering {question!r}")

    monkeypatch.setattr(runtime.engine, "ask", broken)
    with TestClient(app, raise_server_exceptions=False) as raw:
        response = raw.post("/v1/ask", json={"question": "pt dob 01/02/1960"}, headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "the service failed unexpectedly; the error was logged"}
    }


def test_a_wrong_method_is_a_405_naming_the_allowed_one(client):
    response = client.get("/v1/ask", headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_body_that_is_not_utf8_is_a_400_in_the_error_shape(client):
    response = client.post(
        "/v1/feedback",
        content=b'{"rating": "\xc3\x28"}',
        headers=auth(PHARMACY_TOKEN) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_a_streamed_body_over_the_cap_is_refused_though_it_declares_no_length(client):
    def chunks():
        for _ in range(20):
            yield b'{"question": "' + b"a" * 4096  # 80 KiB in all, sent chunked: no Content-Length

    response = client.post(
        "/v1/ask", content=chunks(), headers=auth(PHARMACY_TOKEN) | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_the_comment_limit_comes_from_the_config(settings, runtime):
    from careqa.service.app import create_app

    strict = settings.model_copy(update={"limits": settings.limits.model_copy(update={"max_comment_chars": 10})})
    with TestClient(create_app(strict, runtime=runtime, warm_up=False)) as small:
        body = {"answer_id": "f" * 32, "rating": "up", "comment": "x" * 11}
        response = small.post("/v1/feedback", json=body, headers=auth(PHARMACY_TOKEN))
        assert response.status_code == 422 and "at most 10 characters" in response.json()["error"]["message"]
        schema = small.get("/openapi.json").json()["components"]["schemas"]["FeedbackRequest"]
        assert schema["properties"]["comment"]["maxLength"] == 10


def test_the_openapi_document_declares_the_credential_and_each_routes_errors(client, settings):
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an agent's token (careqa token new)",
    }
    ask = document["paths"]["/v1/ask"]["post"]
    assert ask["security"] == [{"HTTPBearer": []}]
    assert set(ask["responses"]) == {"200", "400", "401", "403", "413", "422", "502", "503", "504"}
    assert ask["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    question = document["components"]["schemas"]["AskRequest"]["properties"]["question"]
    assert question["maxLength"] == settings.limits.max_question_chars and question["pattern"] == r"[^\s\x1c-\x1f\x85]"
    source = document["paths"]["/sources/{tenant}/{path}"]["get"]
    assert "security" not in source and set(source["responses"]["200"]["content"]) == {"text/html"}
    assert set(source["responses"]["404"]["content"]) == {"application/json"}
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200"}


@pytest.mark.parametrize("question", ["\x1c\x1d", "\u3000 \x85", "\t\n"])
def test_a_question_of_only_whitespace_is_blank_as_the_schema_pattern_says(client, question):
    import re

    assert re.search(r"[^\s\x1c-\x1f\x85]", question) is None
    response = client.post("/v1/ask", json={"question": question}, headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 422 and response.json()["error"]["message"] == "question is empty"


def test_the_question_limit_counts_the_characters_as_sent(client, settings):
    limit = settings.limits.max_question_chars
    response = client.post("/v1/ask", json={"question": "a" + " " * limit}, headers=auth(PHARMACY_TOKEN))
    assert response.status_code == 422 and "too long" in response.json()["error"]["message"]
