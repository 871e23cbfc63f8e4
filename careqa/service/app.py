"""FastAPI service. Every ``/v1`` route needs an identity (careqa/auth.py); the tenant comes from the identity.

Errors share one JSON shape: ``{"error": {"code": "...", "message": "..."}}``. Logs carry ids, sizes
and timings, never question or answer text (they may hold PHI).
"""

import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careqa import __version__
from careqa.auth import Authenticator, Principal, authenticator_for
from careqa.config import LimitsConfig, Settings
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


#: a question must hold a character that is not whitespace to Python's ``str.split`` (what the answer engine
#: checks); ECMA-262's ``\s``, which readers of the API description apply, lacks \x1c-\x1f and \x85, so they
#: are named too, and both readings agree on which questions are blank
NON_BLANK = r"[^\s\x1c-\x1f\x85]"
#: longest question parsed at all; the configured limit (``limits.max_question_chars``) is checked by the engine
MAX_QUESTION_PARSE = 20000


def request_models(limits: LimitsConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request bodies, with the deployment's limits in their schema: the API description says what is enforced."""

    class AskRequest(BaseModel):
        question: str = Field(
            max_length=MAX_QUESTION_PARSE,
            description="the agent's question in plain language: not blank, at most the configured length",
            json_schema_extra={"maxLength": limits.max_question_chars, "pattern": NON_BLANK},
        )

    class FeedbackRequest(BaseModel):
        answer_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="the answer_id of an answer this tenant got")
        rating: Rating
        comment: str = Field(default="", max_length=limits.max_comment_chars)

    return AskRequest, FeedbackRequest


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


def credential_scheme(settings: Settings) -> HTTPBearer | APIKeyHeader:
    """The credential the API description declares for ``/v1``; the authenticator reads the headers itself."""
    if settings.auth.mode == "alb-oidc":
        return APIKeyHeader(
            name="x-amzn-oidc-data",
            scheme_name="ALB-OIDC",
            auto_error=False,
            description="set by the load balancer after it logs the agent in with the organisation's OIDC provider",
        )
    return HTTPBearer(auto_error=False, description="an agent's token (careqa token new)")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


#: stable error codes for the errors the framework raises itself (unknown route, wrong method, unreadable body)
HTTP_ERROR_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def errors(*, retry_after: bool = True, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for error statuses (``e401="..."``) in the one error shape; a 503 with Retry-After."""
    out: dict[int | str, dict[str, Any]] = {}
    for key, description in described.items():
        status = int(key.removeprefix("e"))
        out[status] = {"model": ErrorResponse, "description": description}
        if status == 503 and retry_after:
            out[status]["headers"] = _RETRY_AFTER_HEADER
    return out


AUTH_ERRORS = errors(
    e401="missing, invalid, forged or expired credentials",
    e403="an identity that no tenant claims",
    e503="the load balancer's signing key cannot be fetched to verify the identity",
)
BODY_ERRORS = errors(
    e400="a body that cannot be read (not UTF-8)",
    e413=f"a body over {MAX_BODY_BYTES // 1024} KiB",
    e422="invalid JSON, or a field missing or out of its bounds",
)
MODEL_ERRORS = errors(
    e502="the model failed or answered with a malformed body",
    e503="the model is busy (its queue is full) or throttled; also the load balancer's key outage",
    e504="the model did not answer in time",
)


class BodyLimit:
    """A 413 in the error shape for a body over ``limit`` bytes, whether its length is declared or it is streamed.

    A chunked request declares no length, so the body is counted as it arrives and reading stops at the limit
    (a length check alone let any size through). Starlette's RequestBodyLimitMiddleware counts the same way but
    answers in plain text, and replaces any response to a request that declared too large a length with it.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body exceeds {self.limit} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _error(413, "payload_too_large", message)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    # An HTTPException passes through FastAPI's body reading to the handler of this app's errors.
                    raise StarletteHTTPException(413, message)
            return event

        await self.app(scope, counted, send)


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
    )
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with errors as JSON on every route (it files them under an HTML route's type)."""
        if app.openapi_schema is None:
            document = generate_openapi()
            for operations in document["paths"].values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status.startswith(("4", "5")) and "text/html" in content:
                            response["content"] = {"application/json": content["text/html"]}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    AskRequest, FeedbackRequest = request_models(settings.limits)
    credential = credential_scheme(settings)

    def principal(request: Request, _: Annotated[object, Depends(credential)]) -> Principal:
        """The caller's identity (bearer token, or the load balancer's OIDC headers); the tenant is the identity's."""
        return auth.authenticate_request(request.headers)

    Authed = Annotated[Principal, Depends(principal)]
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.feedback_store = store
    app.state.auth = auth

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
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

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        # A bug still answers in the one error shape. The type only: a message may quote the question.
        log.error("unhandled %s", type(exc).__name__)
        return _error(500, "internal_error", "the service failed unexpectedly; the error was logged")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # exc.headers carries what the status needs, such as the Allow header of a 405
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers) if exc.headers else None)

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

    @app.get(
        "/readyz",
        tags=["probes"],
        responses=errors(retry_after=False, e503="models are loading, or the index is unreadable"),
    )
    def readyz() -> JSONResponse:
        """Readiness: models loaded and index readable. Unauthenticated for load balancers."""
        if not ready.is_set():
            return _error(503, "not_ready", "models are loading")
        try:
            runtime.index.ping()
        except Exception:  # noqa: BLE001
            return _error(503, "not_ready", "index unavailable")
        return JSONResponse({"status": "ready"})

    @app.get("/v1/whoami", response_model=WhoAmI, tags=["agent"], responses=AUTH_ERRORS)
    def whoami(who: Authed) -> WhoAmI:
        """The caller's identity and tenant."""
        return WhoAmI(subject=who.subject, tenant=who.tenant, tenant_name=settings.tenant(who.tenant).name)

    @app.post(
        "/v1/ask", response_model=Answer, tags=["agent"], responses={**AUTH_ERRORS, **BODY_ERRORS, **MODEL_ERRORS}
    )
    async def ask(body: AskRequest, who: Authed) -> Answer:  # type: ignore[valid-type]
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
            **AUTH_ERRORS,
            **BODY_ERRORS,
            **MODEL_ERRORS,
        },
    )
    async def ask_stream(body: AskRequest, who: Authed) -> EventSourceResponse:  # type: ignore[valid-type]
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
        responses={
            **AUTH_ERRORS,
            **BODY_ERRORS,
            **errors(
                e404="no answer with this id for the caller's tenant (another tenant's answer is reported alike)",
                e503="the feedback store cannot be reached, or the load balancer's key outage",
            ),
        },
    )
    def feedback(body: FeedbackRequest, who: Authed) -> FeedbackResponse:  # type: ignore[valid-type]
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

    @app.get(
        "/sources/{tenant}/{path:path}",
        tags=["sources"],
        response_class=HTMLResponse,
        responses={
            200: {"description": "the document, rendered", "content": {"text/html": {}}},
            **errors(
                e404="an expired link, a signature that does not match the tenant, path and expiry, or no such file",
                e422="exp or sig missing, or exp not an integer",
                e502="the document cannot be read from the store, or is over the size cap",
            ),
        },
    )
    def source(tenant: str, path: str, exp: int, sig: str) -> HTMLResponse:
        """A knowledge-base document behind a citation. The link's signature is the credential: it binds the tenant,
        the path and the expiry, so it opens in a new tab without a token and never opens another tenant's file."""
        signer.verify(tenant, path, exp, sig)
        _, page_html = render_source(path, sources.read(tenant, path))
        return HTMLResponse(
            page_html,
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
            },
        )

    return app
