"""Exception types of the RAG core. Each carries a stable code; the HTTP and CLI edges translate them."""


class CareQAError(Exception):
    code = "error"
    http_status = 500
    #: for errors a client should retry (a 503): the seconds to wait, sent as Retry-After
    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CareQAError):
    code = "invalid_config"


class UnknownTenantError(CareQAError):
    code = "unknown_tenant"
    http_status = 404


class InvalidQuestionError(CareQAError):
    code = "invalid_question"
    http_status = 422


class IndexMismatchError(CareQAError):
    """The index was built with another embedding model or dimension: it needs re-ingestion."""

    code = "index_mismatch"
    http_status = 503


class NotFoundError(CareQAError):
    code = "not_found"
    http_status = 404
