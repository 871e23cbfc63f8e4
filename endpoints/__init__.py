"""Model adapters: JumpStart model configs, payload codecs and transports (SageMaker runtime or local).

The payload format is data (a codec chosen by the model's config file); the transport is code. The
service talks to a local model and to a SageMaker endpoint through the same codec, so the bytes that
cross the transport are the bytes a JumpStart container reads and writes.
"""

from endpoints.config import ModelConfig, available_models, load_model_config
from endpoints.errors import (
    ModelConfigError,
    ModelInvocationError,
    ModelResponseError,
    ModelThrottledError,
    ModelTimeoutError,
    StreamingNotSupportedError,
    UnknownModelError,
)

__all__ = [
    "ModelConfig",
    "ModelConfigError",
    "ModelInvocationError",
    "ModelResponseError",
    "ModelThrottledError",
    "ModelTimeoutError",
    "StreamingNotSupportedError",
    "UnknownModelError",
    "available_models",
    "load_model_config",
]
