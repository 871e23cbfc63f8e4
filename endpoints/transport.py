"""The transport interface: what carries a codec's request bytes to a model and its response bytes back.

Two implementations, one per module, so that a run imports only the one it uses:
``endpoints/sagemaker/transport.py`` (``sagemaker-runtime``, boto3) and ``endpoints/local_transport.py`` (a
pip-installed model in this process). A test can pass anything with an ``invoke`` method.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable


class Transport(Protocol):
    """Sends one request body to one model and returns the response body."""

    name: str

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes: ...


@runtime_checkable
class StreamingTransport(Transport, Protocol):
    """A transport that can also hand back a response as it is generated, in raw byte chunks."""

    def invoke_stream(self, body: bytes, *, content_type: str, accept: str) -> Iterator[bytes]: ...
