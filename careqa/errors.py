"""The project's errors, as one tree. Each carries a stable ``code``; the edges translate them once.

What an error means is decided where it is raised; what a caller sees is decided at the edge: the service
maps errors to HTTP statuses and messages (``careqa/service/errors.py``, the only place that knows HTTP),
the command line to exit codes, the Lambda handlers to failed records. The root is defined in the lowest
layer (``endpoints/errors.py``) and re-exported here::

    CareQAError                              endpoints/errors.py
    ├── ConfigError                          careqa/errors.py: a setting is wrong (start-up)
    ├── NotFoundError                        no such answer, document or link (or another tenant's)
    ├── UnknownTenantError
    ├── InvalidQuestionError                 empty or oversized question
    ├── IndexUnavailableError                the index cannot serve now
    │   ├── IndexMismatchError               built with another embedding model: re-ingest
    │   ├── IndexDriverUnavailableError      careqa/index/factory.py
    │   └── OpenSearchIndexError             careqa/index/opensearch.py
    │       └── BulkWriteError
    ├── AuthError                            careqa/auth.py: no identity, or one that cannot be believed
    ├── ForbiddenError                       a genuine identity no tenant claims
    ├── AuthUnavailableError                 the load balancer's key cannot be fetched to verify one
    ├── SourceStoreError                     careqa/sources.py: the knowledge-base store cannot be read
    ├── SourceTooLargeError
    ├── FeedbackStoreError                   careqa/feedback.py
    ├── EvalInputError                       careqa/evaluate.py
    ├── AnswerEvalError                      careqa/answer_eval.py
    ├── PinError                             careqa/jumpstart_pins.py
    │   └── PinEditError
    ├── ModelConfigError (ValueError)        endpoints/errors.py
    │   └── UnknownModelError
    ├── ModelInvocationError (RuntimeError)  the model failed to answer
    │   ├── ModelResponseError               an error body, or one the codec cannot read
    │   │   └── DimensionMismatchError       vectors of another size than the config says
    │   ├── ModelTimeoutError
    │   ├── ModelThrottledError              still throttled after the retries
    │   │   └── ModelBusyError               a local model's queue is full
    │   └── StreamingNotSupportedError
    ├── ModelAdminError                      endpoints/sagemaker/errors.py: the swap tool
    │   ├── SwapRefused                      nothing was changed
    │   │   └── EndpointNotFoundError
    │   ├── SwapFailed                       rolled back
    │   │   └── RollbackFailed               the endpoint needs a person
    │   ├── DeploymentError
    │   └── SmokeTestError
    ├── DeployConfigError (ValueError)       careqa_deploy/config.py
    └── CostError                            careqa_deploy/cost.py

Signals that never leave their module stay plain exceptions: the key lookups of ``careqa/alb_keys.py``
(translated by ``careqa/auth.py``), ``careqa/knowledge.py``'s rejections (reported per file and line) and the
Lambda handlers' per-record failures.
"""

from endpoints.errors import CareQAError

__all__ = [
    "CareQAError",
    "ConfigError",
    "IndexMismatchError",
    "IndexUnavailableError",
    "InvalidQuestionError",
    "NotFoundError",
    "UnknownTenantError",
]


class ConfigError(CareQAError):
    code = "invalid_config"


class UnknownTenantError(CareQAError):
    code = "unknown_tenant"


class InvalidQuestionError(CareQAError):
    code = "invalid_question"


class IndexUnavailableError(CareQAError):
    """The index cannot serve queries now (unreachable, refusing, or built for another model)."""

    code = "index_unavailable"


class IndexMismatchError(IndexUnavailableError):
    """The index was built with another embedding model or dimension: it needs re-ingestion."""

    code = "index_mismatch"


class NotFoundError(CareQAError):
    code = "not_found"
