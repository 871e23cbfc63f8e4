"""The load balancer's public keys: where AWS publishes them, how they are fetched, and how they are cached.

An Application Load Balancer signs the ``x-amzn-oidc-data`` token with ES256 and names the signing key
in the token header's ``kid``. AWS publishes the public key, PEM-encoded, at a per-region URL (see the
ELB user guide, "User claims encoding and signature verification"):

* commercial regions: ``https://public-keys.auth.elb.<region>.amazonaws.com/<kid>``;
* AWS GovCloud (US): ``https://s3-<region>.amazonaws.com/aws-elb-public-keys-prod-<region>/<kid>``.

AWS documents no URL for other partitions (China, ISO), so there the URL must be configured
(``auth.alb_oidc.public_key_url``) rather than guessed.

Two fetchers, one contract (``kid`` in, PEM text out, ``KeyNotFoundError`` or ``KeyUnavailableError``):

* ``HttpsKeyFetcher`` asks the endpoint itself (httpx, a short timeout, a bounded body, no redirects);
* ``LambdaKeyFetcher`` asks a small Lambda function that runs ``HttpsKeyFetcher`` on the service's behalf.
  On AWS the service's subnets have no route to the internet; the Lambda runs outside the VPC and can
  fetch nothing but a key by id (``serve_key_request``), so the tasks gain no internet egress
  (cdk/careqa_cdk/service.py says why this beats a NAT route).

``KeyCache`` keeps fetched keys by id (a key id names one immutable key, so entries never go stale),
bounded, with a single fetch in flight per id and a short memory of ids the endpoint does not know.

This module imports only the standard library and httpx (boto3 on demand), so the Lambda's image can
run it without the service's other dependencies.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import httpx

#: ALB key ids are UUIDs; anything else is refused before it is put into a URL
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")
#: the parts of a load balancer ARN the key URL depends on
_ALB_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):elasticloadbalancing:(?P<region>[a-z0-9-]+):\d{12}:loadbalancer/app/.+$"
)
#: a P-256 public key in PEM is under 200 bytes; anything much longer is not a key
MAX_KEY_BYTES = 4096
DEFAULT_TIMEOUT_S = 3.0


class KeyNotFoundError(Exception):
    """The key endpoint has no key by this id: the token was not signed by an ALB key."""


class KeyUnavailableError(Exception):
    """The key endpoint could not be asked, or did not answer usefully: try again later."""


KeyFetcher = Callable[[str], str]
"""``kid`` → the public key as PEM text; raises ``KeyNotFoundError`` or ``KeyUnavailableError``."""


def arn_partition_region(load_balancer_arn: str) -> tuple[str, str]:
    """The partition and region of a load balancer ARN; ``ValueError`` if it is not an ALB's ARN."""
    match = _ALB_ARN.match(load_balancer_arn)
    if match is None:
        raise ValueError(f"not an Application Load Balancer ARN: {load_balancer_arn!r}")
    return match["partition"], match["region"]


def public_key_url(partition: str, region: str) -> str:
    """The URL template (with ``{kid}``) where AWS publishes the public keys of ALBs in ``region``."""
    if partition == "aws":
        return f"https://public-keys.auth.elb.{region}.amazonaws.com/{{kid}}"
    if partition == "aws-us-gov":
        return f"https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}/{{kid}}"
    raise ValueError(
        f"AWS documents no load balancer public-key endpoint for the {partition} partition; "
        "set auth.alb_oidc.public_key_url"
    )


def check_url_template(template: str) -> str:
    """``template`` if it is an https URL with one ``{kid}`` placeholder, else ``ValueError``."""
    if not template.startswith("https://") or template.count("{kid}") != 1:
        raise ValueError("must be an https:// URL with one {kid} placeholder")
    try:
        template.format(kid="k")
    except (KeyError, IndexError, ValueError):
        raise ValueError("must contain no placeholder but {kid}") from None
    return template


def _check_kid(kid: str) -> None:
    if not KEY_ID.match(kid):
        raise KeyNotFoundError("not a load balancer key id")


class HttpsKeyFetcher:
    """Fetches a key from the public-key endpoint over HTTPS.

    Bounded: ``timeout_s`` for connecting and for each read, the same again as a deadline for the whole
    body, at most ``MAX_KEY_BYTES``, no redirects. 4xx answers (404; the S3-hosted GovCloud endpoints
    answer 403 for an object that does not exist) mean the key does not exist; 408, 429, 5xx and
    transport errors mean it could not be fetched now.
    """

    def __init__(
        self, url_template: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, client: httpx.Client | None = None
    ) -> None:
        self._template = check_url_template(url_template)
        self._timeout_s = timeout_s
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False)

    def url(self, kid: str) -> str:
        _check_kid(kid)
        return self._template.format(kid=kid)

    def __call__(self, kid: str) -> str:
        url = self.url(kid)
        deadline = time.monotonic() + 2 * self._timeout_s
        try:
            # Redirects are refused here, whatever the client's default: a key comes from the fixed URL or not at all.
            with self._client.stream("GET", url, timeout=self._timeout_s, follow_redirects=False) as response:
                status = response.status_code
                if status in (408, 429) or status >= 500:
                    raise KeyUnavailableError(f"the key endpoint answered {status}")
                if status >= 400:
                    raise KeyNotFoundError(f"the key endpoint has no key {kid} ({status})")
                if status != 200:
                    raise KeyUnavailableError(f"the key endpoint answered {status}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_KEY_BYTES:
                        raise KeyUnavailableError("the key endpoint's answer is too large to be a key")
                    if time.monotonic() > deadline:
                        raise KeyUnavailableError("the key endpoint answered too slowly")
        except httpx.HTTPError as exc:
            raise KeyUnavailableError(f"the key endpoint could not be reached ({exc.__class__.__name__})") from None
        try:
            return body.decode("ascii")
        except UnicodeDecodeError:
            raise KeyUnavailableError("the key endpoint's answer is not a PEM key") from None


def serve_key_request(event: Mapping[str, Any], fetch: KeyFetcher) -> dict[str, str]:
    """The key Lambda's work: ``{"kid"}`` in, ``{"status": "found", "pem"}`` / ``not_found`` / ``unavailable``.

    It accepts nothing but a key id and fetches nothing but that key, so the function that runs it can
    have internet access without being a general-purpose way out of the VPC.
    """
    kid = event.get("kid")
    if not isinstance(kid, str) or not KEY_ID.match(kid):
        return {"status": "not_found", "reason": "not a load balancer key id"}
    try:
        return {"status": "found", "pem": fetch(kid)}
    except KeyNotFoundError as exc:
        return {"status": "not_found", "reason": str(exc)}
    except KeyUnavailableError as exc:
        return {"status": "unavailable", "reason": str(exc)}


class LambdaKeyFetcher:
    """Asks the key Lambda (``serve_key_request``) for a key, through the VPC's Lambda interface endpoint.

    One attempt per call, bounded by ``timeout_s`` to connect and three times that to read (a cold start
    plus the function's own bounded fetch): a failure becomes a 503 with Retry-After for the caller to
    retry, rather than a retry storm here.
    """

    def __init__(
        self, function_name: str, *, region: str, timeout_s: float = DEFAULT_TIMEOUT_S, client: Any | None = None
    ) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            # The read timeout covers a cold start of the function plus its own bounded fetch.
            config = Config(
                connect_timeout=timeout_s,
                read_timeout=3 * timeout_s,
                retries={"mode": "standard", "total_max_attempts": 1},
            )
            client = boto3.client("lambda", region_name=region, config=config)
        self._client = client
        self._function = function_name

    def __call__(self, kid: str) -> str:
        _check_kid(kid)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.invoke(FunctionName=self._function, Payload=json.dumps({"kid": kid}).encode())
            payload = response["Payload"].read(MAX_KEY_BYTES + 1024)
        except (BotoCoreError, ClientError) as exc:
            raise KeyUnavailableError(f"the key function could not be invoked ({exc.__class__.__name__})") from None
        if response.get("FunctionError"):
            raise KeyUnavailableError(f"the key function failed ({response['FunctionError']})")
        try:
            answer = json.loads(payload)
            status = answer["status"]
        except (ValueError, KeyError, TypeError):
            raise KeyUnavailableError("the key function's answer is not understood") from None
        if status == "found" and isinstance(answer.get("pem"), str):
            return str(answer["pem"])
        if status == "not_found":
            raise KeyNotFoundError(f"the key endpoint has no key {kid}")
        raise KeyUnavailableError(f"the key function could not fetch the key: {answer.get('reason', status)}")


K = TypeVar("K")


class _Flight:
    """One fetch in progress, which every concurrent caller for the same id waits on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.waiting = 0
        self.value: Any = None
        self.error: BaseException | None = None


class KeyCache(Generic[K]):
    """Keys by id, fetched once: bounded (least recently used out), one fetch per id at a time.

    ``fetch`` turns an id into a key (e.g. a fetcher plus PEM loading). Failures are not cached, except
    that an id the endpoint does not know is refused without asking again for ``miss_ttl_s`` (so a burst
    of tokens naming a made-up key costs one fetch, and a key published moments later is still found).
    """

    def __init__(
        self,
        fetch: Callable[[str], K],
        *,
        max_keys: int = 16,
        max_misses: int = 256,
        miss_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._max_misses = max_misses
        self._miss_ttl_s = miss_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, K] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._flights: dict[str, _Flight] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def waiting(self, kid: str) -> int:
        """How many callers are waiting for the fetch of ``kid`` now in progress (0 if none is)."""
        with self._lock:
            flight = self._flights.get(kid)
            return flight.waiting if flight else 0

    def get(self, kid: str) -> K:
        """The key named ``kid``; raises what the fetch raises (``KeyNotFoundError``, ``KeyUnavailableError``)."""
        with self._lock:
            if kid in self._keys:
                self._keys.move_to_end(kid)
                return self._keys[kid]
            missed_at = self._misses.get(kid)
            if missed_at is not None and self._clock() - missed_at < self._miss_ttl_s:
                raise KeyNotFoundError(f"the key endpoint has no key {kid}")
            flight = self._flights.get(kid)
            leader = flight is None
            if flight is None:
                flight = self._flights[kid] = _Flight()
            else:
                flight.waiting += 1
        if not leader:
            flight.done.wait()
            error = flight.error
            if isinstance(error, KeyNotFoundError | KeyUnavailableError):
                raise type(error)(*error.args)  # a fresh exception: one instance raised in many threads tangles
            if error is not None:
                raise KeyUnavailableError("the key could not be loaded") from error
            return flight.value  # type: ignore[no-any-return]
        try:
            key = self._fetch(kid)
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                if isinstance(exc, KeyNotFoundError):
                    self._misses[kid] = self._clock()
                    self._misses.move_to_end(kid)
                    while len(self._misses) > self._max_misses:
                        self._misses.popitem(last=False)
                del self._flights[kid]
            flight.done.set()
            raise
        flight.value = key
        with self._lock:
            self._keys[kid] = key
            self._misses.pop(kid, None)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            del self._flights[kid]
        flight.done.set()
        return key
