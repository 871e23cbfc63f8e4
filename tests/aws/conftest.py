"""moto, extended where 5.2.5's SageMaker lacks what CareQA's model tools use. One fixture: ``sagemaker_fake``.

moto 5.2.5 gaps, and how the fixture fills each (at moto's backend and response layers, for the length
of one test, so production code runs unchanged against it):

* ``UpdateEndpoint`` raises NotImplementedError. Added as on AWS: the endpoint goes ``Updating`` with a
  ``PendingDeploymentSummary`` and records ``LastDeploymentConfig``; later DescribeEndpoint calls finish
  the update the way the test asked (``SageMakerFake.next_update``): InService on the new config, Failed
  on the old one, rolled back by SageMaker (InService on the old config with a FailureReason), or stuck
  Updating. Like AWS, an endpoint that is still updating refuses another update.
* ``InvokeEndpointWithResponseStream`` has no route. Added: it answers with the queued ``StreamReply``
  encoded in AWS's binary event-stream format (PayloadPart events, then optionally a ModelStreamError or
  InternalStreamFailure exception event), so botocore's real event-stream parser reads it; or with the
  reply's initial error (for example ThrottlingException) as a rest-json error.
* ``CreateEndpointConfig`` rejects instance families newer than g4dn/p3/c5/m5 (``ml.g5.*``, ``ml.g6.*``,
  ``ml.inf2.*``, ``ml.c6i.*``...). The fixture also accepts current families, and still validates the rest.
* ``AddTags`` appends a second value for an existing key; AWS overwrites it. The fixture overwrites.

Plain ``InvokeEndpoint`` is moto's own: its bodies are queued through moto's endpoint-results API
(``SageMakerFake.queue_results``), and the fixture only records what was sent (``invocations``).
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import boto3
import pytest
import requests
from botocore.config import Config
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime import urls as runtime_urls
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

REGION = "us-east-1"
ENDPOINT_RESULTS_URL = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"
STREAM_PATH = "{0}/endpoints/(?P<name>[^/]+)/invocations-response-stream$"
#: instance families SageMaker hosts today that moto 5.2.5's enum predates
CURRENT_INSTANCE_TYPES = re.compile(
    r"^ml\.(g5|g6|g6e|inf2|p4d|p5|c6i|c7i|m6i|m7i|r6i|r7i)\.(large|xlarge|(2|4|8|12|16|24|32|48)xlarge)$"
)


@dataclass
class UpdateOutcome:
    """How the next UpdateEndpoint on an endpoint ends."""

    status: Literal["InService", "Failed", "RolledBack", "Updating"] = "InService"
    failure_reason: str = ""
    #: DescribeEndpoint calls that still report Updating before the outcome lands
    polls: int = 1


@dataclass
class StreamReply:
    """One InvokeEndpointWithResponseStream answer: payload parts, then optionally an in-stream error."""

    chunks: list[bytes] = field(default_factory=list)
    #: ("ModelStreamError" | "InternalStreamFailure", message), sent after the chunks
    error: tuple[str, str] | None = None
    error_code: str = "StreamBroken"
    #: (error code, HTTP status, message) returned instead of a stream, e.g. ("ThrottlingException", 400, "...")
    initial_error: tuple[str, int, str] | None = None
    content_type: str = "text/event-stream"


@dataclass
class _Pending:
    endpoint_config_name: str
    outcome: UpdateOutcome
    polls_left: int


_SESSION: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    """One boto3 session for the whole run: mock_aws resets the default one, and reloading the
    SageMaker service model for every test's clients costs ~150 ms a client."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message in AWS's event-stream encoding (prelude, string headers, payload, CRC32s)."""
    encoded = b"".join(
        struct.pack("!B", len(k)) + k.encode() + b"\x07" + struct.pack("!H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


class SageMakerFake:
    """The fixture's handle: hooks that steer the extensions, records of what they received, and clients."""

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.update_requests: list[dict[str, Any]] = []
        self.invocations: list[tuple[str, str, bytes]] = []  # (operation, endpoint, body)
        self._outcomes: dict[str, list[UpdateOutcome]] = defaultdict(list)
        self._pending: dict[str, _Pending] = {}
        self._streams: list[StreamReply] = []
        self._clients: dict[tuple[str, str], Any] = {}

    # -- hooks ----------------------------------------------------------------------------------------
    def next_update(self, endpoint_name: str, outcome: UpdateOutcome) -> None:
        """Make the next UpdateEndpoint on ``endpoint_name`` end as ``outcome`` (later ones succeed)."""
        self._outcomes[endpoint_name].append(outcome)

    def queue_results(self, *bodies: bytes | str, content_type: str = "application/json") -> None:
        """Queue InvokeEndpoint bodies through moto's own endpoint-results API.

        moto hands each *new* request (endpoint, body, Accept) the next queued body and answers a repeated
        identical request with the body it gave it first.
        """
        results = [
            {
                "Body": b.decode("utf-8") if isinstance(b, bytes) else b,
                "ContentType": content_type,
                "InvokedProductionVariant": "AllTraffic",
            }
            for b in bodies
        ]
        response = requests.post(ENDPOINT_RESULTS_URL, json={"results": results, "region": self.region}, timeout=5)
        response.raise_for_status()

    def queue_stream(self, reply: StreamReply) -> None:
        """Queue the answer to the next InvokeEndpointWithResponseStream."""
        self._streams.append(reply)

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client for the mock (one per service and region), with botocore's own retries off."""
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = _session().client(
                service, region_name=key[1], config=Config(retries={"total_max_attempts": 1, "mode": "standard"})
            )
        return self._clients[key]

    # -- SageMaker backend: UpdateEndpoint and its completion ----------------------------------------
    def update_endpoint(
        self,
        backend: SageMakerModelBackend,
        endpoint_name: str,
        endpoint_config_name: str,
        deployment_config: dict[str, Any] | None,
    ) -> str:
        endpoint = backend.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = FakeEndpoint.arn_formatter(endpoint_name, backend.account_id, backend.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status not in ("InService", "Failed"):
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        if endpoint_config_name not in backend.endpoint_configs:
            arn = FakeEndpointConfig.arn_formatter(endpoint_config_name, backend.account_id, backend.region_name)
            raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
        queue = self._outcomes[endpoint_name]
        outcome = queue.pop(0) if queue else UpdateOutcome()
        endpoint.endpoint_status = "Updating"
        endpoint.failure_reason = None
        endpoint.pending_deployment_summary = {"EndpointConfigName": endpoint_config_name, "StartTime": utcnow()}
        if deployment_config:
            endpoint.last_deployment_config = deployment_config
        self._pending[endpoint_name] = _Pending(endpoint_config_name, outcome, outcome.polls)
        return str(endpoint.arn)

    def advance(self, backend: SageMakerModelBackend, endpoint_name: str) -> None:
        """Called on each DescribeEndpoint: count down the pending update and land its outcome."""
        pending = self._pending.get(endpoint_name)
        endpoint = backend.endpoints.get(endpoint_name)
        if pending is None or endpoint is None or pending.outcome.status == "Updating":
            return
        if pending.polls_left > 0:
            pending.polls_left -= 1
            return
        outcome = pending.outcome
        if outcome.status == "InService":
            config = backend.endpoint_configs[pending.endpoint_config_name]
            endpoint.endpoint_config_name = pending.endpoint_config_name
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.data_capture_config = config.data_capture_config
            endpoint.endpoint_status = "InService"
        elif outcome.status == "Failed":
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = outcome.failure_reason or (
                "The primary container for production variant AllTraffic did not pass the ping health check."
            )
        else:  # RolledBack: blue/green auto-rollback leaves the old fleet serving
            endpoint.endpoint_status = "InService"
            endpoint.failure_reason = outcome.failure_reason or "Deployment rolled back: an alarm went into ALARM."
        endpoint.pending_deployment_summary = None
        endpoint.last_modified_time = utcnow()
        del self._pending[endpoint_name]

    # -- sagemaker-runtime: the response stream ------------------------------------------------------
    def stream_response(self, endpoint_name: str, body: bytes) -> tuple[int, dict[str, str], bytes | str]:
        self.invocations.append(("stream", endpoint_name, body))
        if not self._streams:
            return (
                400,
                _error_headers("ValidationError", 400),
                json.dumps({"message": "test fake: no stream reply queued for this call (SageMakerFake.queue_stream)"}),
            )
        reply = self._streams.pop(0)
        if reply.initial_error is not None:
            code, status, message = reply.initial_error
            return status, _error_headers(code, status), json.dumps({"message": message})
        messages = [
            event_message(
                {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"},
                chunk,
            )
            for chunk in reply.chunks
        ]
        if reply.error is not None:
            kind, message = reply.error
            payload: dict[str, str] = {"Message": message}
            if kind == "ModelStreamError":
                payload["ErrorCode"] = reply.error_code
            messages.append(
                event_message(
                    {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                    json.dumps(payload).encode(),
                )
            )
        headers = {
            "Content-Type": "application/vnd.amazon.eventstream",
            "X-Amzn-SageMaker-Content-Type": reply.content_type,
            "x-Amzn-Invoked-Production-Variant": "AllTraffic",
        }
        return 200, headers, b"".join(messages)


def _error_headers(code: str, status: int) -> dict[str, str]:
    # moto takes the HTTP status from the "status" header, not from the tuple's first element.
    return {"x-amzn-ErrorType": code, "Content-Type": "application/json", "status": str(status)}


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return str(body or "").encode("utf-8")


@pytest.fixture()
def sagemaker_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[SageMakerFake]:
    """moto with SageMaker's UpdateEndpoint, response streaming, current instance types and AddTags upserts."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    fake = SageMakerFake()

    # Backend layer.
    def update_endpoint(
        backend: SageMakerModelBackend,
        endpoint_name: str,
        endpoint_config_name: str,
        deployment_config: dict[str, Any] | None = None,
    ) -> str:
        return fake.update_endpoint(backend, endpoint_name, endpoint_config_name, deployment_config)

    original_describe = SageMakerModelBackend.describe_endpoint

    def describe_endpoint(backend: SageMakerModelBackend, endpoint_name: str) -> dict[str, Any]:
        fake.advance(backend, endpoint_name)
        return original_describe(backend, endpoint_name)

    def add_tags(backend: SageMakerModelBackend, arn: str, tags: list[dict[str, str]]) -> list[dict[str, str]]:
        resource = backend._get_resource_from_arn(arn)
        keys = {t["Key"] for t in tags}
        resource.tags = [t for t in resource.tags if t["Key"] not in keys] + list(tags)
        return list(resource.tags)

    original_validate = FakeEndpointConfig.validate_instance_type

    def validate_instance_type(config: FakeEndpointConfig, instance_type: str) -> None:
        if not CURRENT_INSTANCE_TYPES.match(instance_type):
            original_validate(config, instance_type)

    monkeypatch.setattr(SageMakerModelBackend, "update_endpoint", update_endpoint, raising=False)
    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", describe_endpoint)
    monkeypatch.setattr(SageMakerModelBackend, "add_tags", add_tags)
    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", validate_instance_type)

    # Response layer.
    def update_endpoint_response(self: SageMakerResponse) -> ActionResult:
        request = {
            k: self._get_param(k)
            for k in ("EndpointName", "EndpointConfigName", "DeploymentConfig", "RetainAllVariantProperties")
        }
        fake.update_requests.append(request)
        arn = self.sagemaker_backend.update_endpoint(
            request["EndpointName"], request["EndpointConfigName"], request["DeploymentConfig"]
        )
        return ActionResult({"EndpointArn": arn})

    original_invoke = SageMakerRuntimeResponse.invoke_endpoint

    def invoke_endpoint(self: SageMakerRuntimeResponse) -> Any:
        fake.invocations.append(("invoke", unquote(self.path.split("/")[2]), _body_bytes(self.body)))
        return original_invoke(self)

    def invoke_endpoint_with_response_stream(self: SageMakerRuntimeResponse) -> Any:
        return fake.stream_response(unquote(self.path.split("/")[2]), _body_bytes(self.body))

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint_response, raising=False)
    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
    monkeypatch.setattr(
        SageMakerRuntimeResponse,
        "invoke_endpoint_with_response_stream",
        invoke_endpoint_with_response_stream,
        raising=False,
    )
    monkeypatch.setitem(runtime_urls.url_paths, STREAM_PATH, SageMakerRuntimeResponse.dispatch)

    with mock_aws():
        yield fake
