"""The in-process transport: a pip-installed stand-in model behind a bounded queue (see ``endpoints.local``).

It imports neither boto3 nor the models' libraries: local runs load only what they use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from endpoints.codecs import GenerationCodec
from endpoints.errors import ModelBusyError, StreamingNotSupportedError


class LocalTransport:
    """Serves a config's payload contract from a pip-installed model, in process (see ``endpoints.local``).

    The model serves one request at a time (llama.cpp contexts and torch models are not safe to share
    across threads) behind a bounded queue: at most ``max_waiting`` requests wait for their turn, each for
    at most ``max_wait_s``. A request that cannot start in time fails at once with ``ModelBusyError``
    (the service's 503 with Retry-After) instead of queueing behind minutes of generation and timing out.

    The model always runs on the transport's one worker thread, whichever thread asks. llama.cpp keeps
    per-thread state for each thread that calls it: called from a server's pool of 40 threads, the resident
    memory grew by about 2.5 MB for every new thread that generated (measured), until each had.
    """

    def __init__(self, container: object, *, name: str, max_waiting: int = 8, max_wait_s: float = 5.0) -> None:
        self._container = container
        self.name = f"local:{name}"
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._queue = threading.Lock()  # guards _waiting
        self._waiting = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"careqa-{name}")

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):  # the model is busy: wait in the queue, if there is room
            with self._queue:
                if self._waiting >= self.max_waiting:
                    raise ModelBusyError(
                        f"{self.name}: {self._waiting} requests are already waiting", endpoint=self.name
                    )
                self._waiting += 1
            try:
                started = self._lock.acquire(timeout=self.max_wait_s)
            finally:
                with self._queue:
                    self._waiting -= 1
            if not started:
                raise ModelBusyError(f"{self.name}: busy for more than {self.max_wait_s:g}s", endpoint=self.name)
        try:
            yield
        finally:
            self._lock.release()

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        with self._turn():
            return self._worker.submit(self._container.handle, body).result()  # type: ignore[attr-defined,no-any-return]

    def invoke_stream(self, body: bytes, *, content_type: str, accept: str) -> Iterator[bytes]:
        """The whole response, re-encoded as the stream the family's container would write.

        The stand-in models answer in one piece, so this generates first and then yields the answer as
        word-sized events in the codec's streaming format (one event per chunk). Callers therefore run
        the same stream decoding locally as against SageMaker; only the timing differs.
        """
        codec = getattr(self._container, "codec", None)
        if not isinstance(codec, GenerationCodec) or not codec.supports_streaming:
            fmt = type(codec).__name__ if codec is not None else "unknown"
            raise StreamingNotSupportedError(f"{self.name}: the {fmt} payload format cannot stream")
        text = codec.decode_response(self.invoke(body, content_type=content_type, accept=accept))
        return iter(codec.encode_stream_response(text))
