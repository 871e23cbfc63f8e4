"""The deployment's settings as environment variables: exactly ``careqa.config.Settings`` fields (``__`` nests)."""

from __future__ import annotations

import json
from typing import Any

from careqa.index.opensearch_mapping import INDEX_PREFIX
from careqa_deploy.config import DeployConfig
from endpoints.config import ModelConfig


def identity_map(config: DeployConfig) -> list[dict[str, str]]:
    """Every OIDC subject or group with the tenant its agents work for (``auth.alb_oidc.identities``)."""
    return [
        {"claim": identity.claim, "value": identity.value, "tenant": tenant.id}
        for tenant in config.tenants
        for identity in tenant.identities
    ]


def _model_ref(config: DeployConfig, model: ModelConfig, endpoint: str, timeout_s: float) -> dict[str, Any]:
    """A ``careqa.config.ModelRef`` for a SageMaker endpoint of this deployment."""
    return {
        "config": model.name,
        "transport": "sagemaker",
        "endpoint_name": endpoint,
        "region": config.env.region,
        "timeout_s": timeout_s,
    }


def index_environment(config: DeployConfig, *, opensearch_endpoint: str) -> dict[str, str]:
    """``index.*`` of ``careqa.config.Settings``: the OpenSearch driver on this deployment's domain, with SigV4."""
    return {
        "CAREQA_INDEX__DRIVER": "opensearch",
        "CAREQA_INDEX__OPENSEARCH__ENDPOINT": opensearch_endpoint,
        "CAREQA_INDEX__OPENSEARCH__AUTH": "sigv4",
        "CAREQA_INDEX__OPENSEARCH__REGION": config.env.region,
        "CAREQA_INDEX__OPENSEARCH__INDEX_PREFIX": INDEX_PREFIX,
    }


def service_environment(
    config: DeployConfig,
    *,
    embedding: ModelConfig,
    llm: ModelConfig,
    opensearch_endpoint: str,
    feedback_table: str,
    kb_bucket: str,
    load_balancer_arn: str,
    key_function: str,
    llm_inference_component: str | None = None,
) -> dict[str, str]:
    """The container's ``CAREQA_*`` variables: exactly ``careqa.config.Settings`` fields (``__`` nests).

    No bearer tokens on AWS (``identities`` is empty): the load balancer authenticates agents with OIDC, the
    service verifies its signed token (against ``load_balancer_arn``, with keys fetched by ``key_function``)
    and ``auth.alb_oidc.identities`` maps their subject or groups to a tenant. Feedback goes to the DynamoDB
    table, the index is the OpenSearch domain, and source links open documents from the knowledge-base
    bucket (the task has no knowledge-base folder). ``tests/cdk/test_service_settings.py`` loads this environment,
    as synthesized, into ``Settings``, so a misspelt name or a bad value fails a test, not a deploy.
    """
    llm_ref = _model_ref(config, llm, config.llm_endpoint_name, 120.0)
    if llm_inference_component:  # cheap profile: the LLM is an inference component that scales to zero copies
        llm_ref["inference_component"] = llm_inference_component
    return {
        "CAREQA_TENANTS": json.dumps([{"id": t.id, "name": t.name} for t in config.tenants]),
        "CAREQA_IDENTITIES": "[]",
        "CAREQA_MODELS": json.dumps(
            {"embedding": _model_ref(config, embedding, config.embedding_endpoint_name, 30.0), "llm": llm_ref}
        ),
        "CAREQA_AUTH__MODE": "alb-oidc",
        "CAREQA_AUTH__ALB_OIDC__IDENTITIES": json.dumps(identity_map(config)),
        "CAREQA_AUTH__ALB_OIDC__GROUP_CLAIM": config.auth.oidc.group_claim,
        "CAREQA_AUTH__ALB_OIDC__LOAD_BALANCER_ARN": load_balancer_arn,
        "CAREQA_AUTH__ALB_OIDC__KEY_FUNCTION": key_function,
        "CAREQA_FEEDBACK__DRIVER": "dynamodb",
        "CAREQA_FEEDBACK__TABLE": feedback_table,
        "CAREQA_FEEDBACK__REGION": config.env.region,
        "CAREQA_SOURCES__DRIVER": "s3",
        "CAREQA_SOURCES__BUCKET": kb_bucket,
        "CAREQA_SOURCES__REGION": config.env.region,
        **index_environment(config, opensearch_endpoint=opensearch_endpoint),
        "CAREQA_DATA_DIR": "/tmp/careqa",
        "CAREQA_LOG_LEVEL": "INFO",
    }


def ingest_environment(config: DeployConfig, *, embedding: ModelConfig, opensearch_endpoint: str) -> dict[str, str]:
    """The ingestion Lambda's ``CAREQA_*`` variables: the same ``Settings`` names as the service's, for the
    tenants, the embedding endpoint and the index (``lambdas/ingest_handler.py`` reads them with ``Settings``'
    own models)."""
    return {
        "CAREQA_TENANTS": json.dumps([{"id": t.id, "name": t.name} for t in config.tenants]),
        "CAREQA_MODELS__EMBEDDING": json.dumps(_model_ref(config, embedding, config.embedding_endpoint_name, 60.0)),
        **index_environment(config, opensearch_endpoint=opensearch_endpoint),
    }
