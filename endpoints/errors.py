"""Exceptions raised by model adapters; the service translates them once, at its boundary."""


class ModelConfigError(ValueError):
    """A model config file is missing, unreadable or invalid."""


class UnknownModelError(ModelConfigError):
    """No config file exists for the requested model name."""


class ModelInvocationError(RuntimeError):
    """The model endpoint failed to produce an answer."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class ModelResponseError(ModelInvocationError):
    """The model answered with an error body or with a body the codec cannot read."""


class ModelTimeoutError(ModelInvocationError):
    """The model did not answer within the configured time."""


class ModelThrottledError(ModelInvocationError):
    """The endpoint kept throttling (or was not ready) after every retry."""


class ModelBusyError(ModelThrottledError):
    """A local model's queue is full, or the request could not start within the queue's wait."""


class StreamingNotSupportedError(ModelInvocationError):
    """Streaming was asked of a payload format or transport that cannot stream."""
