"""A local model serves one request at a time behind a bounded queue: busy means 503 at once, not a timeout later."""

import threading

import pytest

from endpoints.errors import ModelBusyError, ModelThrottledError
from endpoints.local_transport import LocalTransport


class Gate:
    """A container whose requests wait until the test lets them finish."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def handle(self, body: bytes) -> bytes:
        self.entered.set()
        assert self.release.wait(10), "the test never released the model"
        return body


def start(transport: LocalTransport) -> threading.Thread:
    thread = threading.Thread(target=transport.invoke, args=(b"x",), kwargs={"content_type": "", "accept": ""})
    thread.start()
    return thread


def test_a_request_that_cannot_start_in_time_is_refused_as_busy():
    container = Gate()
    transport = LocalTransport(container, name="llm", max_waiting=4, max_wait_s=0.05)
    running = start(transport)
    assert container.entered.wait(5)
    with pytest.raises(ModelBusyError, match="busy for more than 0.05s"):
        transport.invoke(b"y", content_type="", accept="")
    container.release.set()
    running.join()
    assert transport.invoke(b"z", content_type="", accept="") == b"z"  # free again


def test_a_full_queue_refuses_at_once_without_waiting():
    container = Gate()
    transport = LocalTransport(container, name="llm", max_waiting=0, max_wait_s=60)
    running = start(transport)
    assert container.entered.wait(5)
    with pytest.raises(ModelBusyError, match="requests are already waiting"):
        transport.invoke(b"y", content_type="", accept="")  # would wait up to 60 s if the queue were not full
    container.release.set()
    running.join()


def test_a_waiting_request_runs_when_the_model_frees_up_in_time():
    container = Gate()
    transport = LocalTransport(container, name="llm", max_waiting=1, max_wait_s=10)
    running = start(transport)
    assert container.entered.wait(5)
    results: list[bytes] = []
    waiting = threading.Thread(target=lambda: results.append(transport.invoke(b"w", content_type="", accept="")))
    waiting.start()
    container.release.set()
    running.join()
    waiting.join()
    assert results == [b"w"]


def test_busy_is_a_kind_of_throttling_so_the_service_answers_503():
    assert issubclass(ModelBusyError, ModelThrottledError)


class Recorder:
    """A container that remembers which thread ran each request."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def handle(self, body: bytes) -> bytes:
        self.threads.add(threading.get_ident())
        if body == b"fail":
            raise ValueError("the model failed")
        return body


def test_the_model_always_runs_on_one_worker_thread_whichever_thread_asks():
    container = Recorder()
    transport = LocalTransport(container, name="llm", max_waiting=16, max_wait_s=5)
    callers = [start(transport) for _ in range(12)]
    for caller in callers:
        caller.join()
    assert transport.invoke(b"z", content_type="", accept="") == b"z"
    assert len(container.threads) == 1 and threading.get_ident() not in container.threads
    with pytest.raises(ValueError, match="the model failed"):  # the model's own error reaches the caller
        transport.invoke(b"fail", content_type="", accept="")
