"""FastAPI service. Every ``/v1`` route needs an identity (careqa/auth.py); the tenant comes from the identity.

Errors share one JSON shape: ``{"error": {"code": "...", "message": "..."}}``. Logs carry ids, sizes
and timings, never question or answer text (they may hold PHI).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from careqa import __version__
from careqa.auth import Authenticator, Principal, authenticator_for
from careqa.config import Settings
from careqa.errors import CareQAError
from careqa.feedback import FeedbackStore, open_feedback_store
from careqa.runtime import Runtime
from careqa.service.errors import error_for, model_failure
from careqa.sources import LinkSigner, SourceStore, open_source_store, render_source
from careqa.types import Answer, AnswerEvent, DoneEvent, Rating
from endpoints.errors import ModelInvocationError

log = logging.getLogger("careqa.service")
STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024


class AskRequest(BaseModel):
    question: str = Field(max_length=20000, description="the agent's question in plain language")


class FeedbackRequest(BaseModel):
    answer_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    rating: Rating
    comment: str = Field(default="", max_length=2000)


class FeedbackResponse(BaseModel):
    feedback_id: str
    status: Literal["stored"] = "stored"


class WhoAmI(BaseModel):
    subject: str
    tenant: str
    tenant_name: str


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller's identity (bearer token, or the load balancer's OIDC headers); the tenant is the identity's."""
    return request.app.state.auth.authenticate_request(request.headers)  # type: ignore[no-any-return]


Authed = Annotated[Principal, Depends(principal)]


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    feedback_store: FeedbackStore | None = None,
    source_store: SourceStore | None = None,
    auth: Authenticator | None = None,
    warm_up: bool = True,
) -> FastAPI:
    secret = settings.link_secret.get_secret_value().encode() if settings.link_secret else secrets.token_bytes(32)
    signer = LinkSigner(secret, settings.limits.source_link_ttl_s)
    runtime = runtime or Runtime(settings, link=signer.link)
    runtime.engine.link = signer.link
    store = feedback_store or open_feedback_store(settings)
    sources = source_store or open_source_store(settings)
    auth = auth or authenticator_for(settings)
    ready = threading.Event()

    def _warm() -> None:
        try:
            runtime.warm_up()
            runtime.index.ping()
            ready.set()
        except Exception:  # noqa: BLE001 - readiness stays false and /readyz says why
            log.exception("warm-up failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(target=_warm, daemon=True).start()
        else:
            ready.set()
        yield

    app = FastAPI(
        title="CareQA",
        version=__version__,
        description="Grounded, cited answers from a tenant's knowledge base for customer-care agents.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorResponse},
            403: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.feedback_store = store
    app.state.auth = auth

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, "payload_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(CareQAError)
    async def careqa_error(_: Request, exc: CareQAError) -> JSONResponse:
        error = error_for(exc)
        headers = dict(error.headers)
        if error.status == 401 and auth.challenge:
            headers["WWW-Authenticate"] = auth.challenge
        return _error(error.status, error.code, error.message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return _error(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; "
                "frame-ancestors 'none'"
            },
        )

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        file = (STATIC / name).resolve()
        if not file.is_relative_to(STATIC.resolve()) or not file.is_file():
            raise StarletteHTTPException(404, "not found")
        return FileResponse(file)

    @app.get("/healthz", tags=["probes"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. Unauthenticated for load balancers; reveals nothing."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], responses={503: {"model": ErrorResponse}})
    def readyz() -> JSONResponse:
        """Readiness: models loaded and index readable. Unauthenticated for load balancers."""
        if not ready.is_set():
            return _error(503, "not_ready", "models are loading")
        try:
            runtime.index.ping()
        except Exception:  # noqa: BLE001
            return _error(503, "not_ready", "index unavailable")
        return JSONResponse({"status": "ready"})

    @app.get("/v1/whoami", response_model=WhoAmI, tags=["agent"])
    def whoami(who: Authed) -> WhoAmI:
        return WhoAmI(subject=who.subject, tenant=who.tenant, tenant_name=settings.tenant(who.tenant).name)

    @app.post(
        "/v1/ask",
        response_model=Answer,
        tags=["agent"],
        responses={502: {"model": ErrorResponse}, 503: {"model": ErrorResponse}, 504: {"model": ErrorResponse}},
    )
    async def ask(body: AskRequest, who: Authed) -> Answer:
        """Answer a question from the caller's tenant's knowledge base, with numbered sources."""
        answer = await run_in_threadpool(runtime.engine.ask, who.tenant, body.question)
        await run_in_threadpool(_record, answer, body.question, who)
        return answer

    @app.post(
        "/v1/ask/stream",
        tags=["agent"],
        response_class=EventSourceResponse,
        responses={
            200: {
                "description": "Server-sent events: `sources` (the sources, numbered as the sentences cite them), "
                "`sentence` (each sentence once it has passed its checks), then `done` (the whole answer, as "
                '`POST /v1/ask` returns it) or `error` (`{"error": {"code", "message"}}`).',
                "content": {"text/event-stream": {}},
            },
            502: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
            504: {"model": ErrorResponse},
        },
    )
    async def ask_stream(body: AskRequest, who: Authed) -> EventSourceResponse:
        """The answer as it is produced. Errors before the first event are ordinary JSON errors."""
        events = runtime.engine.stream(who.tenant, body.question)
        first = await run_in_threadpool(next, events)  # input and model errors raise here, as for /v1/ask

        async def sse() -> AsyncIterator[dict[str, str]]:
            event: AnswerEvent | None = first
            try:
                while event is not None:
                    if isinstance(event, DoneEvent):
                        await run_in_threadpool(_record, event.answer, body.question, who)
                    yield {"event": event.type, "data": event.model_dump_json()}
                    event = await run_in_threadpool(next, events, None)
            except ModelInvocationError as exc:
                error = model_failure(exc)
                yield {"event": "error", "data": json.dumps({"error": {"code": error.code, "message": error.message}})}
            finally:
                events.close()

        return EventSourceResponse(sse(), ping=15)

    def _record(answer: Answer, question: str, who: Principal) -> None:
        store.record_answer(answer, question=question, subject=who.subject)
        log.info(
            "answer id=%s tenant=%s status=%s mode=%s q_chars=%d sources=%d dropped=%d first_ms=%s total_ms=%.0f",
            answer.answer_id,
            who.tenant,
            answer.status,
            answer.mode,
            len(question),
            len(answer.sources),
            answer.dropped_sentences,
            f"{answer.timings.first_sentence_ms:.0f}" if answer.timings.first_sentence_ms is not None else "-",
            answer.timings.total_ms,
        )

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        status_code=201,
        tags=["agent"],
        responses={404: {"model": ErrorResponse}},
    )
    def feedback(body: FeedbackRequest, who: Authed) -> FeedbackResponse:
        """Rate an answer this tenant received (thumbs up/down and an optional comment)."""
        stored = store.add_feedback(
            tenant=who.tenant, subject=who.subject, answer_id=body.answer_id, rating=body.rating, comment=body.comment
        )
        log.info(
            "feedback id=%s answer=%s tenant=%s rating=%s comment_chars=%d",
            stored.feedback_id,
            body.answer_id,
            who.tenant,
            body.rating,
            len(body.comment),
        )
        return FeedbackResponse(feedback_id=stored.feedback_id)

    @app.get("/sources/{tenant}/{path:path}", include_in_schema=False)
    def source(tenant: str, path: str, exp: int, sig: str) -> HTMLResponse:
        signer.verify(tenant, path, exp, sig)
        _, page_html = render_source(path, sources.read(tenant, path))
        return HTMLResponse(
            page_html,
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
            },
        )

    return app
