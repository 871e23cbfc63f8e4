"""IngestionStack: knowledge-base files written to S3 are validated, chunked, embedded and indexed.

S3 (EventBridge notifications on the knowledge-base bucket) → EventBridge rule → SQS queue (KMS,
redrive to a dead-letter queue after ``max_receive_count`` attempts) → the ingestion Lambda
(``lambdas/ingest_handler.py``, a container image) with partial batch responses, so one bad file never
sends its batch-mates back to the queue.

Why EventBridge rather than a direct bucket notification: the bucket lives in the data stack and the
queue here; a direct notification would make the data stack refer to this one (a cycle), or need CDK's
notification-handler Lambda. The rule is plain CloudFormation in this stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from careqa_cdk.common import encrypted_log_group
from careqa_cdk.jumpstart_endpoint import JumpStartEndpoint
from careqa_cdk.nag import INLINE_POLICY_REASON, suppress
from careqa_deploy.config import DeployConfig
from careqa_deploy.environment import ingest_environment
from careqa_deploy.names import INDEX_PATTERN, ingest_role_name
from endpoints.config import ModelConfig
from endpoints.sagemaker.record import parameter_name


@dataclass(frozen=True)
class IngestionProps:
    config: DeployConfig
    repo_root: Path
    vpc: ec2.IVpc
    app_subnets: ec2.SubnetSelection
    data_key: kms.IKey
    kb_bucket: s3.IBucket
    domain_endpoint: str
    domain_security_group: ec2.ISecurityGroup
    embedding: JumpStartEndpoint
    embedding_model: ModelConfig


class IngestionStack(Stack):
    """The queue, its dead-letter queue, the EventBridge rule and the ingestion Lambda."""

    def __init__(self, scope: Construct, construct_id: str, *, props: IngestionProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(Stack.of(props.data_key), "data: key, bucket, domain")
        self.add_stack_dependency(Stack.of(props.embedding), "models: the embedding endpoint")
        config = props.config
        settings = config.ingestion

        # The queues' own key: EventBridge must be allowed to use it, and the data key's policy lives
        # in the data stack, which cannot refer to this one.
        self.queue_key = kms.Key(
            self,
            "QueueKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            description=f"{config.app_name}: ingestion queues (S3 object events)",
        )
        self.queue_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )

        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        visibility = Duration.seconds(settings.timeout_s * 6)  # AWS's advice for Lambda event sources
        self.queue = sqs.Queue(
            self,
            "Events",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            visibility_timeout=visibility,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=settings.max_receive_count
            ),
        )

        events.Rule(
            self,
            "KnowledgeBaseChanges",
            description="knowledge-base objects created or deleted → ingestion queue",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created", "Object Deleted"],
                detail={"bucket": {"name": [props.kb_bucket.bucket_name]}},
            ),
            targets=[targets.SqsQueue(self.queue, dead_letter_queue=self.dead_letters, retry_attempts=8)],
        )

        role = iam.Role(
            self,
            "Role",
            role_name=ingest_role_name(config.app_name),
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="CareQA ingestion: read knowledge-base files, embed, write the tenant indices",
        )
        self._grant(role, props)
        self.security_group = ec2.SecurityGroup(
            self,
            "LambdaSg",
            vpc=props.vpc,
            allow_all_outbound=False,
            description="Ingestion Lambda: HTTPS out only (VPC endpoints, S3 gateway, OpenSearch)",
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS (isolated subnets)")
        # The rule lives here, not in the data stack, so the data stack never refers to this one.
        ec2.CfnSecurityGroupIngress(
            self,
            "DomainIngress",
            group_id=props.domain_security_group.security_group_id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            source_security_group_id=self.security_group.security_group_id,
            description="CareQA ingestion to OpenSearch",
        )

        self.function = lambda_.DockerImageFunction(
            self,
            "Ingest",
            code=lambda_.DockerImageCode.from_image_asset(str(props.repo_root), file="lambdas/Dockerfile"),
            architecture=lambda_.Architecture.X86_64,
            role=role,
            timeout=Duration.seconds(settings.timeout_s),
            memory_size=settings.memory_mb,
            reserved_concurrent_executions=settings.reserved_concurrency,
            vpc=props.vpc,
            vpc_subnets=props.app_subnets,
            security_groups=[self.security_group],
            log_group=encrypted_log_group(self, "IngestLogs", key=props.data_key, days=config.log_retention_days),
            environment={
                # The service's Settings names (careqa.config): tenants, the embedding endpoint, the index.
                **ingest_environment(
                    config, embedding=props.embedding_model, opensearch_endpoint=f"https://{props.domain_endpoint}"
                ),
                "POWERTOOLS_SERVICE_NAME": "careqa-ingest",
                "POWERTOOLS_METRICS_NAMESPACE": "CareQA",
            },
            description="Validates, chunks, embeds and indexes knowledge-base files (S3 → SQS batches)",
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=settings.batch_size,
                report_batch_item_failures=True,
                max_batching_window=Duration.seconds(10),
                max_concurrency=settings.max_concurrency,
            )
        )
        suppress(
            self.function,
            {
                "HIPAA.Security-LambdaDLQ": "Invoked by an SQS event source mapping, not asynchronously: "
                "failed messages "
                "go to the queue's redrive dead-letter queue, not to a Lambda DLQ.",
                **(
                    {}
                    if settings.reserved_concurrency
                    else {
                        "HIPAA.Security-LambdaConcurrency": "Concurrency is bounded by the SQS event source's maximum "
                        "concurrency; reserving it would fail in accounts at the default "
                        "limit (set ingestion.reserved_concurrency to reserve).",
                    }
                ),
            },
        )

    def _grant(self, role: iam.Role, props: IngestionProps) -> None:
        config = props.config
        domain_arn = self.format_arn(service="es", resource="domain", resource_name=config.domain_name)
        role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadKnowledgeBase",
                actions=["s3:GetObject"],
                resources=[props.kb_bucket.arn_for_objects(f"{t.kb_prefix}*") for t in config.tenants],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListTenantPrefixes",
                actions=["s3:ListBucket"],
                resources=[props.kb_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{t.kb_prefix}*" for t in config.tenants]}},
            )
        )
        props.embedding.grant_invoke(role, sid="Embed")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteIndices",
                actions=["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"],
                resources=[f"{domain_arn}/{INDEX_PATTERN}"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LiveModelRecord",
                actions=["ssm:GetParameter"],
                resources=[
                    self.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name=parameter_name(props.embedding.endpoint_name).lstrip("/"),
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DataKeyViaS3",
                actions=["kms:Decrypt"],
                resources=[props.data_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{config.env.region}.amazonaws.com"}},
            )
        )
        suppress(
            role,
            {
                "AwsSolutions-IAM4": "AWSLambdaVPCAccessExecutionRole is the minimal AWS policy for a Lambda's network "
                "interfaces and logs in a VPC.",
                "AwsSolutions-IAM5": "Wildcards sit only below fixed prefixes: each tenant's knowledge-base prefix and "
                "the careqa-* index paths of one domain; the SQS grants are CDK's, on one queue.",
                "HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON,
            },
            children=True,
        )
