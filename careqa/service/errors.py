"""How the service reports an error: the one place in the project that turns errors into HTTP statuses.

Errors say what went wrong (``careqa/errors.py`` draws the tree); this module decides the status, the
headers and, for model failures, the words an agent reads, so no other layer knows HTTP. An error no row
names is a 500 with its own code and message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from careqa.auth import AuthError, AuthUnavailableError, ForbiddenError
from careqa.errors import CareQAError, IndexUnavailableError, InvalidQuestionError, NotFoundError, UnknownTenantError
from careqa.feedback import FeedbackStoreError
from careqa.sources import SourceStoreError, SourceTooLargeError
from endpoints.errors import ModelInvocationError, ModelThrottledError, ModelTimeoutError

log = logging.getLogger("careqa.service")

#: seconds a client is asked to wait after a 503 it may retry (a busy model, an unverifiable identity, the
#: feedback store out of reach)
RETRY_AFTER_S = 5

#: each error class's status, checked in order: the first class the error is an instance of decides
STATUSES: tuple[tuple[type[CareQAError], int], ...] = (
    (AuthError, 401),
    (ForbiddenError, 403),
    (AuthUnavailableError, 503),
    (NotFoundError, 404),
    (UnknownTenantError, 404),
    (InvalidQuestionError, 422),
    (IndexUnavailableError, 503),
    (FeedbackStoreError, 503),
    (SourceStoreError, 502),
    (SourceTooLargeError, 502),
)
#: errors a client should simply retry after a pause: their 503 carries Retry-After
RETRY_LATER: tuple[type[CareQAError], ...] = (AuthUnavailableError, ModelThrottledError, FeedbackStoreError)


@dataclass(frozen=True)
class HttpError:
    """What the service answers for an error: status, stable code, message and extra headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def _retry_headers(exc: CareQAError) -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, RETRY_LATER) else {}


def model_failure(exc: ModelInvocationError) -> HttpError:
    """A model failure as agents see it: the words are the service's, the endpoint's details stay in the log."""
    log.warning("model failure: %s", exc.__class__.__name__)
    if isinstance(exc, ModelTimeoutError):
        return HttpError(504, "model_timeout", "the language model did not answer in time; please try again")
    if isinstance(exc, ModelThrottledError):
        return HttpError(503, "model_busy", "the model is busy; please retry shortly", _retry_headers(exc))
    return HttpError(502, "model_error", f"the model endpoint failed: {exc}")


def error_for(exc: CareQAError) -> HttpError:
    """The status, code, message and headers the service sends for ``exc``."""
    if isinstance(exc, ModelInvocationError):
        return model_failure(exc)
    status = next((status for kind, status in STATUSES if isinstance(exc, kind)), 500)
    return HttpError(status, exc.code, exc.message, _retry_headers(exc))
