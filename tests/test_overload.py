"""Overload: concurrent agents behind the real local LLM's bounded queue get a 200, or a 503 with Retry-After.

The model is the real Gemma behind the real ``LocalTransport`` queue, made small; its container holds the
first generation until the test lets it go, so which request finds the model busy depends on the order of
events, never on how fast this machine is. ``benchmarks/bench_load.py`` measures the same under real load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import CLINIC_TOKEN, PHARMACY_TOKEN, auth

#: questions each tenant's knowledge base answers, so that in generate mode the LLM writes their answers
QUESTIONS = {
    PHARMACY_TOKEN: "What happens when a package is lost in the mail?",
    CLINIC_TOKEN: "How do I get my lab results?",
}


class HeldModel:
    """Lets the real container's first generation start, then holds it until released."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, body: bytes) -> bytes:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(60), "the test never released the model"
        return self._handle(body)  # type: ignore[no-any-return]


@pytest.fixture()
def held(runtime, monkeypatch) -> Iterator[HeldModel]:  # noqa: ANN001
    transport = runtime.chat_model.transport
    model = HeldModel(transport.container.handle)
    monkeypatch.setattr(transport.container, "handle", model)
    monkeypatch.setattr(runtime.engine, "answer_mode", "generate")
    monkeypatch.setattr(runtime.chat_model, "max_new_tokens", 8)  # short answers: what matters here is the queue
    yield model
    model.release.set()


def ask(client, token: str = PHARMACY_TOKEN, path: str = "/v1/ask"):  # noqa: ANN001, ANN201
    return client.post(path, json={"question": QUESTIONS[token]}, headers=auth(token))


def test_agents_arriving_while_the_queue_is_full_get_503_with_retry_after_at_once(client, runtime, held, monkeypatch):
    monkeypatch.setattr(runtime.chat_model.transport, "max_waiting", 0)
    with ThreadPoolExecutor(max_workers=7) as agents:
        first = agents.submit(ask, client)
        assert held.entered.wait(60)
        tokens = [PHARMACY_TOKEN, CLINIC_TOKEN] * 3
        busy = [f.result() for f in [agents.submit(ask, client, t) for t in tokens]]  # the first still holds the model
        held.release.set()
        answered = first.result()
    assert [r.status_code for r in busy] == [503] * 6
    assert {r.headers["retry-after"] for r in busy} == {"5"}
    assert {r.json()["error"]["code"] for r in busy} == {"model_busy"}
    assert answered.status_code == 200 and answered.json()["mode"] in {"generated", "curated", "extractive"}
    assert ask(client).status_code == 200  # the model is free again


def test_agents_that_wait_longer_than_max_wait_get_503_and_the_queue_does_not_leak(client, runtime, held, monkeypatch):
    transport = runtime.chat_model.transport
    monkeypatch.setattr(transport, "max_waiting", 2)
    monkeypatch.setattr(transport, "max_wait_s", 0.05)
    with ThreadPoolExecutor(max_workers=6) as agents:
        first = agents.submit(ask, client)
        assert held.entered.wait(60)
        # the model stays held while these wait: each either finds the queue full or waits 50 ms in it, then gives up
        busy = [f.result() for f in [agents.submit(ask, client, CLINIC_TOKEN, p) for p in ["/v1/ask/stream"] * 5]]
        held.release.set()
        assert first.result().status_code == 200
    assert [(r.status_code, r.headers.get("retry-after")) for r in busy] == [(503, "5")] * 5
    assert transport._waiting == 0  # every refused request left the queue
    assert ask(client, CLINIC_TOKEN, "/v1/ask/stream").status_code == 200
