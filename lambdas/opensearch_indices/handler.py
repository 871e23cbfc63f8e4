"""CloudFormation custom resource: create each tenant's k-NN index and the role CareQA's IAM roles map to.

The index bodies are computed at synth time by ``careqa.index.opensearch_mapping`` and arrive as JSON in
the resource properties, so this function only applies them and needs nothing beyond the standard
library and boto3 (both in the Lambda runtime). It authenticates as the domain's fine-grained-access
master user, whose password it reads from Secrets Manager (through the VPC's interface endpoint).

* Create/Update: create each missing index; an existing index is left as it is, unless its vector
  dimension differs from the one asked for, which fails the deployment with a clear message (a k-NN
  field's dimension cannot change: re-ingest into a new index instead). Then upsert the security-plugin
  role ``careqa_service`` (read/write on ``careqa-*`` only) and map the service's and the ingestion
  Lambda's IAM roles to it, so their SigV4-signed requests are authorised.
* Delete: nothing is removed. The indices hold the tenants' knowledge; they go with the domain.

The function answers CloudFormation itself (a PUT to the pre-signed ``ResponseURL``, which reaches S3
through the VPC's gateway endpoint), so no provider framework Lambda is needed outside the VPC.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 30


class ResourceError(Exception):
    """A failure to report to CloudFormation as the resource's reason."""


def _request(method: str, url: str, auth: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Basic {auth}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=ssl.create_default_context()) as response:
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload) if payload else None
        except ValueError:
            return exc.code, payload.decode("utf-8", "replace")


def _basic_auth(secret_arn: str) -> str:
    import boto3

    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
    return base64.b64encode(f"{secret['username']}:{secret['password']}".encode()).decode()


def _existing_dimension(mapping: Any, name: str) -> int | None:
    entry = (mapping or {}).get(name, {})
    value = entry.get("mappings", {}).get("properties", {}).get("vector", {}).get("dimension")
    return int(value) if value is not None else None


def apply(properties: dict[str, Any], *, auth: str | None = None) -> dict[str, str]:
    """Create missing indices and the security role mapping; return the attributes CloudFormation sees."""
    base = f"https://{properties['Endpoint']}"
    auth = auth or _basic_auth(properties["MasterSecretArn"])
    indices = json.loads(properties["Indices"])
    created: list[str] = []
    for index in indices:
        name, body = index["name"], index["body"]
        wanted = body["mappings"]["properties"]["vector"]["dimension"]
        status, payload = _request("GET", f"{base}/{name}/_mapping", auth)
        if status == 404:
            status, payload = _request("PUT", f"{base}/{name}", auth, body)
            if status >= 300:
                raise ResourceError(f"creating index {name} failed: HTTP {status}: {payload}")
            created.append(name)
        elif status >= 300:
            raise ResourceError(f"reading index {name} failed: HTTP {status}: {payload}")
        elif _existing_dimension(payload, name) != int(wanted):
            raise ResourceError(
                f"index {name} stores {_existing_dimension(payload, name)}-dimensional vectors but the embedding "
                f"model now makes {wanted}; re-ingest into a new index rather than changing the model under it"
            )

    role = properties["ServiceRole"]
    pattern = properties["IndexPattern"]
    role_body = {
        "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
        "index_permissions": [
            {
                "index_patterns": [pattern],
                "allowed_actions": [
                    "crud",
                    "search",
                    "create_index",
                    "indices:admin/refresh*",
                    "indices:admin/mapping/get",
                    "indices:monitor/stats",
                ],
            }
        ],
    }
    status, payload = _request("PUT", f"{base}/_plugins/_security/api/roles/{role}", auth, role_body)
    if status >= 300:
        raise ResourceError(f"writing security role {role} failed: HTTP {status}: {payload}")
    mapping = {"backend_roles": json.loads(properties["BackendRoles"])}
    status, payload = _request("PUT", f"{base}/_plugins/_security/api/rolesmapping/{role}", auth, mapping)
    if status >= 300:
        raise ResourceError(f"mapping IAM roles to {role} failed: HTTP {status}: {payload}")
    return {"Indices": ",".join(i["name"] for i in indices), "Created": ",".join(created)}


def _respond(event: dict[str, Any], context: Any, status: str, data: dict[str, str], reason: str = "") -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or f"see CloudWatch log stream {getattr(context, 'log_stream_name', '?')}")[:3000],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or f"careqa-indices-{event['ResourceProperties']['Endpoint']}",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode("utf-8")
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT")
    request.add_header("Content-Type", "")
    request.add_header("Content-Length", str(len(body)))
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()


def handler(event: dict[str, Any], context: Any) -> None:
    """The Lambda entry point CloudFormation invokes."""
    try:
        data = {} if event["RequestType"] == "Delete" else apply(event["ResourceProperties"])
    except Exception as exc:  # noqa: BLE001 - every failure must reach CloudFormation, or the stack hangs for an hour
        print(json.dumps({"level": "ERROR", "request": event.get("RequestType"), "error": str(exc)}))
        _respond(event, context, "FAILED", {}, str(exc))
        return
    print(json.dumps({"level": "INFO", "request": event["RequestType"], **data}))
    _respond(event, context, "SUCCESS", data)
