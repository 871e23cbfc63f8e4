"""Names and counts the stacks agree on without a reference between them, and that the cost estimate counts.

Two stacks cannot refer to each other both ways (a cycle), so some names are fixed here.

The OpenSearch custom resource in the data stack maps the service's and the ingestion Lambda's IAM
roles to a security-plugin role, but those roles live in stacks deployed after it; fixed role names
let the data stack write their ARNs first.
"""

from __future__ import annotations

from careqa.index.opensearch_mapping import INDEX_PREFIX

#: the OpenSearch security-plugin role CareQA's IAM roles are mapped to
OPENSEARCH_SERVICE_ROLE = "careqa_service"
INDEX_PATTERN = f"{INDEX_PREFIX}*"
#: the SSM path the service may read (the swap tool's records live under /careqa/endpoints/)
SSM_PATH = "/careqa/"
#: interface VPC endpoints (construct id → AWS service name); the cost estimate counts the same list
INTERFACE_ENDPOINTS: dict[str, str] = {
    "SageMakerRuntime": "sagemaker.runtime",
    "SageMakerApi": "sagemaker.api",
    "EcrApi": "ecr.api",
    "EcrDocker": "ecr.dkr",
    "Logs": "logs",
    "Sts": "sts",
    "Ssm": "ssm",
    "SecretsManager": "secretsmanager",
    "Monitoring": "monitoring",
    # the service invokes the key Lambda, which fetches the load balancer's public keys (service.py says why)
    "Lambda": "lambda",
}
#: memory of the key Lambda (service.py), for the cost estimate too
KEY_FUNCTION_MEMORY_MB = 256
#: customer-managed KMS keys the stacks create (one per trust boundary), for the cost estimate
KMS_KEYS = ("flow logs", "data", "ingestion queues", "alarm topic")
#: Secrets Manager secrets the stacks create
SECRETS = ("OpenSearch master user", "link-signing key")


def service_task_role_name(app_name: str) -> str:
    return f"{app_name}-service-task"


def ingest_role_name(app_name: str) -> str:
    return f"{app_name}-ingest"
