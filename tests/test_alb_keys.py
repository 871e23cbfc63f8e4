"""careqa/alb_keys.py: fetching the load balancer's public keys (directly or through the key Lambda) and caching them.

The direct fetcher runs over an ``httpx.MockTransport`` (tests/alb_tokens.py's ``KeyServer``), the Lambda
fetcher over botocore's ``Stubber`` (and a ``before-send`` hook for a transport timeout): no network, no AWS.
"""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from careqa.alb_keys import (
    HttpsKeyFetcher,
    KeyCache,
    KeyNotFoundError,
    KeyUnavailableError,
    LambdaKeyFetcher,
    serve_key_request,
)
from tests.alb_tokens import AlbKey, KeyServer

KID = "0b9c7a8e-1d2f-4a3b-9c8d-7e6f5a4b3c2d"
URL = "https://public-keys.auth.elb.us-east-1.amazonaws.com/{kid}"


def fetcher(server: KeyServer) -> HttpsKeyFetcher:
    return HttpsKeyFetcher(URL, client=server.client())


# -- direct HTTPS ------------------------------------------------------------------------------------------------


def test_the_pem_published_for_a_key_id_is_returned() -> None:
    server = KeyServer()
    key = server.publish(AlbKey.generate(KID))
    assert fetcher(server)(KID) == key.pem
    assert server.requests == [URL.format(kid=KID)]


@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_4xx_answer_means_the_key_does_not_exist(status: int) -> None:
    # The S3-hosted GovCloud endpoints answer 403 for an object that does not exist.
    with pytest.raises(KeyNotFoundError):
        fetcher(KeyServer(fail=status))(KID)


@pytest.mark.parametrize("status", [301, 408, 429, 500, 502, 503, 504])
def test_redirects_throttling_and_5xx_mean_the_key_is_unavailable(status: int) -> None:
    with pytest.raises(KeyUnavailableError, match=str(status)):
        fetcher(KeyServer(fail=status))(KID)


def test_no_redirect_is_followed() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "https://attacker.example/key"})

    # Even a client that follows redirects by default must not be led away from the key URL.
    direct = HttpsKeyFetcher(URL, client=httpx.Client(transport=httpx.MockTransport(handle), follow_redirects=True))
    with pytest.raises(KeyUnavailableError, match="302"):
        direct(KID)
    assert seen == [URL.format(kid=KID)]


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("x"),
    ],
)
def test_transport_errors_mean_the_key_is_unavailable(error: Exception) -> None:
    with pytest.raises(KeyUnavailableError, match="could not be reached"):
        fetcher(KeyServer(fail=error))(KID)


def test_an_answer_larger_than_any_key_is_not_read_to_the_end() -> None:
    with pytest.raises(KeyUnavailableError, match="too large"):
        fetcher(KeyServer(body=b"A" * 1_000_000))(KID)


def test_a_key_id_with_url_characters_is_refused_before_any_request() -> None:
    server = KeyServer()
    for kid in ("../admin", "a/b", "k?x=1", "", "-leading-dash", "x" * 200):
        with pytest.raises(KeyNotFoundError):
            fetcher(server)(kid)
    assert server.requests == []


def test_the_url_template_must_be_https_with_one_kid_placeholder() -> None:
    for template in ("http://keys.example.com/{kid}", "https://keys.example.com/", "https://k/{kid}/{other}"):
        with pytest.raises(ValueError):
            HttpsKeyFetcher(template)


def test_the_default_client_is_bounded_and_follows_no_redirects() -> None:
    direct = HttpsKeyFetcher(URL, timeout_s=2.5)
    assert direct._client.follow_redirects is False
    assert direct._client.timeout == httpx.Timeout(2.5)


# -- the key Lambda --------------------------------------------------------------------------------------------


def test_the_lambda_serves_only_a_key_by_id() -> None:
    asked: list[str] = []

    def fetch(kid: str) -> str:
        asked.append(kid)
        return "PEM"

    assert serve_key_request({"kid": KID}, fetch) == {"status": "found", "pem": "PEM"}
    assert serve_key_request({"kid": "../x"}, fetch)["status"] == "not_found"
    assert serve_key_request({"url": "https://attacker.example"}, fetch)["status"] == "not_found"
    assert asked == [KID]


def test_the_lambda_reports_a_missing_key_and_an_outage_apart() -> None:
    assert serve_key_request({"kid": KID}, fetcher(KeyServer()))["status"] == "not_found"
    down = serve_key_request({"kid": KID}, fetcher(KeyServer(fail=httpx.ConnectTimeout("slow"))))
    assert down["status"] == "unavailable" and "ConnectTimeout" in down["reason"]


def test_the_lambda_handler_fetches_from_the_url_its_stack_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREQA_ALB_PUBLIC_KEY_URL", URL)
    import importlib

    from lambdas import alb_key_handler

    handler = importlib.reload(alb_key_handler)
    assert handler._fetch.url(KID) == URL.format(kid=KID)
    server = KeyServer()
    key = server.publish(AlbKey.generate(KID))
    monkeypatch.setattr(handler, "_fetch", fetcher(server))
    assert handler.handler({"kid": KID}, None) == {"status": "found", "pem": key.pem}


def _lambda_client() -> Any:
    return boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _invoke_answer(payload: dict[str, Any] | bytes, *, function_error: str | None = None) -> dict[str, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    answer: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        answer["FunctionError"] = function_error
    return answer


def _stubbed(answer: dict[str, Any] | None = None, error: str | None = None) -> tuple[LambdaKeyFetcher, Stubber]:
    client = _lambda_client()
    stubber = Stubber(client)
    expected = {"FunctionName": "careqa-alb-keys", "Payload": json.dumps({"kid": KID}).encode()}
    if error:
        stubber.add_client_error("invoke", service_error_code=error, http_status_code=429, expected_params=expected)
    else:
        stubber.add_response("invoke", answer, expected)
    stubber.activate()
    return LambdaKeyFetcher("careqa-alb-keys", region="us-east-1", client=client), stubber


def test_the_lambda_fetcher_returns_the_key_the_function_found() -> None:
    fetch, stubber = _stubbed(_invoke_answer({"status": "found", "pem": "-----BEGIN PUBLIC KEY-----"}))
    assert fetch(KID) == "-----BEGIN PUBLIC KEY-----"
    stubber.assert_no_pending_responses()


def test_the_lambda_fetcher_passes_on_a_missing_key() -> None:
    fetch, _ = _stubbed(_invoke_answer({"status": "not_found", "reason": "404"}))
    with pytest.raises(KeyNotFoundError):
        fetch(KID)


@pytest.mark.parametrize(
    "answer,error",
    [
        (_invoke_answer({"status": "unavailable", "reason": "ConnectTimeout"}), None),
        (_invoke_answer({"errorMessage": "Task timed out"}, function_error="Unhandled"), None),
        (_invoke_answer(b"not json"), None),
        (None, "TooManyRequestsException"),
        (None, "ServiceException"),
    ],
    ids=["upstream-down", "function-error", "garbage", "throttled", "lambda-5xx"],
)
def test_the_lambda_fetcher_turns_every_failure_into_unavailable(
    answer: dict[str, Any] | None, error: str | None
) -> None:
    fetch, _ = _stubbed(answer, error)
    with pytest.raises(KeyUnavailableError):
        fetch(KID)


def test_a_lambda_invoke_that_times_out_is_unavailable() -> None:
    from botocore.config import Config

    client = boto3.client(
        "lambda",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )

    def time_out(request: Any, **_: Any) -> None:
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.lambda.Invoke", time_out)
    with pytest.raises(KeyUnavailableError, match="ReadTimeoutError"):
        LambdaKeyFetcher("careqa-alb-keys", region="us-east-1", client=client)(KID)


def test_the_default_lambda_client_makes_one_bounded_attempt() -> None:
    fetch = LambdaKeyFetcher("careqa-alb-keys", region="us-east-1", timeout_s=2.0)
    config = fetch._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.0, 6.0)
    assert config.retries["total_max_attempts"] == 1


# -- the cache ---------------------------------------------------------------------------------------------------


class CountingFetch:
    def __init__(self, missing: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.missing = missing or set()

    def __call__(self, kid: str) -> str:
        self.calls.append(kid)
        if kid in self.missing:
            raise KeyNotFoundError(kid)
        return f"key-{kid}"


def test_a_cached_key_is_not_fetched_again() -> None:
    fetch = CountingFetch()
    cache: KeyCache[str] = KeyCache(fetch)
    assert [cache.get("a"), cache.get("a"), cache.get("b"), cache.get("a")] == ["key-a", "key-a", "key-b", "key-a"]
    assert fetch.calls == ["a", "b"]


def test_the_cache_is_bounded_and_drops_the_least_recently_used_key() -> None:
    fetch = CountingFetch()
    cache: KeyCache[str] = KeyCache(fetch, max_keys=2)
    cache.get("a"), cache.get("b"), cache.get("a"), cache.get("c")  # b is the least recently used
    assert len(cache) == 2
    cache.get("a")
    cache.get("b")
    assert fetch.calls == ["a", "b", "c", "b"]


def test_an_unknown_key_id_is_not_asked_for_again_until_its_miss_expires() -> None:
    now = [0.0]
    fetch = CountingFetch(missing={"ghost"})
    cache: KeyCache[str] = KeyCache(fetch, miss_ttl_s=60, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(KeyNotFoundError):
            cache.get("ghost")
    assert fetch.calls == ["ghost"]
    now[0] = 61.0
    fetch.missing.clear()  # published since
    assert cache.get("ghost") == "key-ghost"
    assert fetch.calls == ["ghost", "ghost"]


def test_the_memory_of_unknown_ids_is_bounded() -> None:
    fetch = CountingFetch(missing={f"ghost-{i}" for i in range(5)})
    cache: KeyCache[str] = KeyCache(fetch, max_misses=2)
    for i in range(5):
        with pytest.raises(KeyNotFoundError):
            cache.get(f"ghost-{i}")
    with pytest.raises(KeyNotFoundError):
        cache.get("ghost-0")  # forgotten, so asked again
    assert fetch.calls.count("ghost-0") == 2 and len(cache._misses) == 2


def test_concurrent_requests_for_one_key_id_share_a_single_fetch() -> None:
    entered, release = threading.Event(), threading.Event()
    fetch = CountingFetch()

    def slow_fetch(kid: str) -> str:
        entered.set()
        assert release.wait(30)
        return fetch(kid)

    cache: KeyCache[str] = KeyCache(slow_fetch)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(KID))) for _ in range(6)]
    threads[0].start()
    assert entered.wait(30)
    for thread in threads[1:]:
        thread.start()
    waited = threading.Event()
    for _ in range(3000):  # until all five followers are parked on the leader's fetch
        if cache.waiting(KID) == 5:
            break
        waited.wait(0.01)
    assert cache.waiting(KID) == 5
    release.set()
    for thread in threads:
        thread.join(30)
    assert fetch.calls == [KID] and results == [f"key-{KID}"] * 6


def test_concurrent_requests_share_a_failed_fetch_and_the_next_request_tries_again() -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def failing_fetch(kid: str) -> str:
        calls.append(kid)
        entered.set()
        assert release.wait(30)
        raise KeyUnavailableError("endpoint down")

    cache: KeyCache[str] = KeyCache(failing_fetch)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            cache.get(KID)
        except KeyUnavailableError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    threads[0].start()
    assert entered.wait(30)
    for thread in threads[1:]:
        thread.start()
    waited = threading.Event()
    for _ in range(3000):
        if cache.waiting(KID) == 3:
            break
        waited.wait(0.01)
    assert cache.waiting(KID) == 3
    release.set()
    for thread in threads:
        thread.join(30)
    assert calls == [KID] and len(errors) == 4
    assert len({id(e) for e in errors}) == 4  # each thread raises its own exception object
    with pytest.raises(KeyUnavailableError):
        cache.get(KID)
    assert calls == [KID, KID]


def test_the_lambda_image_installs_every_package_the_key_handler_imports() -> None:
    # The image installs a grep'd subset of requirements.txt (lambdas/Dockerfile); a package the handler's
    # code imports outside that subset would fail only at the function's first cold start on AWS.
    import ast
    import importlib.util
    import subprocess
    import sys
    from importlib.metadata import packages_distributions, requires
    from pathlib import Path

    from packaging.requirements import Requirement

    repo = Path(__file__).resolve().parent.parent
    ours = ("careqa", "lambdas", "endpoints")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, lambdas.alb_key_handler; print('\\n'.join(sys.modules))"],
        cwd=repo,
        env={"PYTHONPATH": str(repo), "CAREQA_ALB_PUBLIC_KEY_URL": URL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    imported: set[str] = set()  # top-level names our loaded modules import (libraries' optional imports aside)
    for module in (m for m in loaded if m.split(".")[0] in ours):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - set(ours) - {"__future__"}
    owners = packages_distributions()
    needed = {_normal(d) for top in third_party for d in owners.get(top, [top])}

    grep = re.search(r"grep -E '\^\(([^)]+)\)==", (repo / "lambdas" / "Dockerfile").read_text())
    assert grep, "lambdas/Dockerfile selects its packages with grep -E '^(...)=='"
    installed: set[str] = set()
    todo = [_normal(name) for name in grep.group(1).split("|")]
    while todo:
        name = todo.pop()
        if name in installed:
            continue
        installed.add(name)
        needs = [Requirement(r) for r in requires(name) or []]
        todo.extend(_normal(r.name) for r in needs if r.marker is None or r.marker.evaluate({"extra": ""}))
    assert {"httpx", "aws-lambda-powertools"} <= needed
    assert needed - installed == set()


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
