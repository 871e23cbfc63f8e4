#!/usr/bin/env python3
"""The CDK app: load and validate the deploy config once, then build the stacks from typed props.

    npx cdk synth                                   # config/deploy.example.yaml (cdk.json's default)
    npx cdk deploy --all -c config=config/deploy.mine.yaml
    npx cdk synth -c config=... -c profile=production
    npx cdk deploy --all -c config=... -c 'careqa:activeModels={"careqa-llm": "huggingface-llm-mistral-7b-instruct"}'
    npx cdk deploy --all -c config=... -c profile=production -c allow_unverified_pins=true

This is the only place that reads files, CDK context or environment variables; the stacks and
constructs get values. Synth makes no AWS calls: the model images and weights are pinned in
``jumpstart_configs/`` and the live-model records come in through the context (``cdk/README.md``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The jsii runtime warns on every start under an end-of-life Node; the CDK itself works on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

import aws_cdk as cdk  # noqa: E402
from careqa_cdk.data import DataProps, DataStack  # noqa: E402
from careqa_cdk.ingestion import IngestionProps, IngestionStack  # noqa: E402
from careqa_cdk.models import ModelsProps, ModelsStack  # noqa: E402
from careqa_cdk.monitoring import MonitoringProps, MonitoringStack  # noqa: E402
from careqa_cdk.nag import add_nag_packs  # noqa: E402
from careqa_cdk.network import NetworkProps, NetworkStack  # noqa: E402
from careqa_cdk.service import ServiceProps, ServiceStack  # noqa: E402

from careqa.index.opensearch_mapping import space_type_for  # noqa: E402
from careqa_deploy.config import DeployConfig, DeployConfigError, load_deploy_config  # noqa: E402
from careqa_deploy.models import (  # noqa: E402
    ACTIVE_MODELS_CONTEXT,
    ALLOW_UNVERIFIED_PINS_CONTEXT,
    artifact_sources,
    check_model_pins,
    parse_active_models,
    parse_allow_unverified,
    resolve_model,
)
from careqa_deploy.names import ingest_role_name, service_task_role_name  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_CONFIG = "config/deploy.example.yaml"
#: CDK behaviours this app relies on; cdk.json or -c can still override them
FEATURE_FLAGS: dict[str, Any] = {
    # S3 server access logs delivered through a bucket policy (the buckets enforce object ownership).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup": True,
    "@aws-cdk/core:enablePartitionLiterals": True,
    # Exports from the stateful stacks stay protected while a stateless stack still imports them.
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


@dataclass(frozen=True)
class CareQAStacks:
    config: DeployConfig
    network: NetworkStack
    data: DataStack
    models: ModelsStack
    service: ServiceStack
    ingestion: IngestionStack
    monitoring: MonitoringStack

    @property
    def all(self) -> tuple[cdk.Stack, ...]:
        return (self.network, self.data, self.models, self.service, self.ingestion, self.monitoring)


def _config_path(value: str) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return REPO_ROOT / path


def build_stacks(app: cdk.App, config: DeployConfig, active_models: dict[str, str]) -> CareQAStacks:
    """All six stacks of one deployment, wired through typed props."""
    env = cdk.Environment(account=config.env.account, region=config.env.region)
    prefix = config.stack_prefix
    production = config.profile == "production"
    embedding = resolve_model(config, "embedding", active_models)
    llm = resolve_model(config, "llm", active_models)
    assert embedding.config.embedding_dimension is not None

    network = NetworkStack(
        app,
        f"{prefix}-Network",
        env=env,
        props=NetworkProps(
            app_name=config.app_name,
            cidr=config.network.cidr,
            availability_zones=tuple(config.network.availability_zones),
            nat_gateways=0 if config.network.alb_egress == "none" else (2 if production else 1),
            log_retention_days=config.log_retention_days,
        ),
    )
    size = config.opensearch.production if production else config.opensearch.cheap
    data = DataStack(
        app,
        f"{prefix}-Data",
        env=env,
        termination_protection=production,
        props=DataProps(
            app_name=config.app_name,
            profile=config.profile,
            tenants=tuple(t.id for t in config.tenants),
            vpc=network.vpc,
            data_subnets=network.data_subnets,
            app_subnets=network.app_subnets,
            domain_name=config.domain_name,
            engine_version=config.opensearch.engine_version,
            opensearch=size,
            hnsw_m=config.opensearch.hnsw_m,
            hnsw_ef_construction=config.opensearch.hnsw_ef_construction,
            embedding_model=embedding.config.model_id,
            embedding_dimension=embedding.config.embedding_dimension,
            space_type=space_type_for(embedding.config.normalize_embeddings),
            backend_role_names=(service_task_role_name(config.app_name), ingest_role_name(config.app_name)),
            log_retention_days=config.log_retention_days,
        ),
    )
    models = ModelsStack(
        app,
        f"{prefix}-Models",
        env=env,
        props=ModelsProps(
            config=config,
            embedding=embedding,
            llm=llm,
            artifacts=artifact_sources(config.env.region),
            vpc=network.vpc,
            model_subnets=network.model_subnets,
            kms_key=data.key,
            capture_bucket=data.export_bucket,
        ),
    )
    service = ServiceStack(
        app,
        f"{prefix}-Service",
        env=env,
        props=ServiceProps(
            config=config,
            repo_root=REPO_ROOT,
            vpc=network.vpc,
            app_subnets=network.app_subnets,
            ingress_subnets=network.ingress_subnets,
            kms_key=data.key,
            access_logs_bucket=data.access_logs,
            feedback_table=data.feedback_table,
            kb_bucket=data.kb_bucket,
            link_secret_arn=data.link_secret.secret_arn,
            domain_endpoint=data.domain.domain_endpoint,
            domain_security_group=data.domain_security_group,
            embedding=models.embedding,
            llm=models.llm,
        ),
    )
    ingestion = IngestionStack(
        app,
        f"{prefix}-Ingestion",
        env=env,
        props=IngestionProps(
            config=config,
            repo_root=REPO_ROOT,
            vpc=network.vpc,
            app_subnets=network.app_subnets,
            data_key=data.key,
            kb_bucket=data.kb_bucket,
            domain_endpoint=data.domain.domain_endpoint,
            domain_security_group=data.domain_security_group,
            embedding=models.embedding,
            embedding_model=embedding.config,
        ),
    )
    monitoring = MonitoringStack(
        app,
        f"{prefix}-Monitoring",
        env=env,
        props=MonitoringProps(
            app_name=config.app_name,
            alarms=config.alarms,
            embedding=models.embedding,
            llm=models.llm,
            load_balancer=service.load_balancer,
            dead_letters=ingestion.dead_letters,
            domain_name=config.domain_name,
        ),
    )
    for stack in (network, data, models, service, ingestion, monitoring):
        cdk.Tags.of(stack).add("careqa:app", config.app_name)
        cdk.Tags.of(stack).add("careqa:profile", config.profile)
    return CareQAStacks(config, network, data, models, service, ingestion, monitoring)


def build_app(
    context: dict[str, Any] | None = None, *, outdir: str | None = None, nag: bool = True, nag_reports: bool = True
) -> tuple[cdk.App, CareQAStacks]:
    """The app with its stacks; ``context`` adds to (and is overridden by) the CLI's context."""
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    overrides: dict[str, Any] = {}
    profile = app.node.try_get_context("profile")
    if profile:
        overrides["profile"] = profile
    config = load_deploy_config(
        _config_path(str(app.node.try_get_context("config") or DEFAULT_CONFIG)), overrides=overrides
    )
    active = parse_active_models(app.node.try_get_context(ACTIVE_MODELS_CONTEXT))
    deployed = [resolve_model(config, field, active).config for field in ("embedding", "llm")]
    allow = parse_allow_unverified(app.node.try_get_context(ALLOW_UNVERIFIED_PINS_CONTEXT))
    for warning in check_model_pins(config, deployed, allow_unverified=allow):
        print(f"warning: {warning}", file=sys.stderr)
    stacks = build_stacks(app, config, active)
    if nag:
        add_nag_packs(app, reports=nag_reports)
    return app, stacks


def main() -> int:
    try:
        app, _ = build_app()
    except DeployConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
