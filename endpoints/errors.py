"""The root of the project's one error tree, and the model adapters' errors.

``CareQAError`` is defined here because ``endpoints`` is the lowest layer: ``careqa``, the deployment package
and the CDK app all import it, and it imports none of them. ``careqa/errors.py`` draws the whole tree.

Errors say what went wrong, not how a caller reports it: the service maps them to HTTP statuses
(``careqa/service/errors.py``), the command line to exit codes. Model errors keep their built-in bases
(``ValueError``, ``RuntimeError``) as well, so code that catches those still does.
"""


class CareQAError(Exception):
    """Base of every error CareQA raises on purpose: a stable ``code`` and a ``message`` for people."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelConfigError(CareQAError, ValueError):
    """A model config file is missing, unreadable or invalid."""

    code = "invalid_model_config"


class UnknownModelError(ModelConfigError):
    """No config file exists for the requested model name."""

    code = "unknown_model"


class ModelInvocationError(CareQAError, RuntimeError):
    """The model endpoint failed to produce an answer."""

    code = "model_error"

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class ModelResponseError(ModelInvocationError):
    """The model answered with an error body or with a body the codec cannot read."""


class DimensionMismatchError(ModelResponseError):
    """The model returned vectors of another size than its config says."""

    def __init__(self, message: str, *, returned: int, expected: int, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.returned = returned
        self.expected = expected


class ModelTimeoutError(ModelInvocationError):
    """The model did not answer within the configured time."""

    code = "model_timeout"


class ModelThrottledError(ModelInvocationError):
    """The endpoint kept throttling (or was not ready) after every retry."""

    code = "model_busy"


class ModelBusyError(ModelThrottledError):
    """A local model's queue is full, or the request could not start within the queue's wait."""


class StreamingNotSupportedError(ModelInvocationError):
    """Streaming was asked of a payload format or transport that cannot stream."""


def format_validation_errors(exc: object, *, root: str | None = "config") -> str:
    """``field.path: message`` for each error of a pydantic ``ValidationError``, joined with ``; ``.

    Pydantic's ``Value error,`` prefix (added to what a validator raises) is dropped, so the message reads as
    written. ``root`` names an error that belongs to no field (a whole-model check); ``None`` leaves it bare.
    One formatter serves every config the project validates: settings, model configs, deploy configs.
    """
    problems = []
    for err in exc.errors():  # type: ignore[attr-defined]
        message = str(err["msg"]).removeprefix("Value error, ")
        location = ".".join(str(part) for part in err["loc"]) or root
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)
