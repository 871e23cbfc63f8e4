"""DataStack: everything that holds tenants' data, kept apart so stateless stacks can come and go.

* a customer-managed KMS key (rotated yearly) for buckets, table, domain, secrets, logs and SageMaker;
* the knowledge-base bucket: versioned, KMS, TLS-only, no public access, server access logs, one prefix
  per tenant (``<tenant>/``), S3 events to EventBridge (the ingestion stack routes them to its queue);
* the export bucket (feedback exports, optional endpoint data capture), with the same protections;
* the access-log bucket (SSE-S3: S3 server access logs and ALB logs cannot be delivered to SSE-KMS);
* the feedback table: DynamoDB on demand, point-in-time recovery, the KMS key;
* the OpenSearch domain in the data subnets: KMS at rest, node-to-node encryption, HTTPS only with
  TLS 1.2+, fine-grained access control whose master user's password is generated into Secrets
  Manager, zone awareness and dedicated masters in production, audit/slow/application logs;
* a custom resource (``lambdas/opensearch_indices``) that creates each tenant's k-NN index from
  ``careqa.index.opensearch_mapping`` and maps the service's and ingestion's IAM roles into the domain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, CustomResource, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from careqa.index.opensearch_mapping import index_body, index_name
from careqa_cdk.common import allow_cloudwatch_logs, encrypted_log_group
from careqa_cdk.nag import INLINE_POLICY_REASON, suppress
from careqa_deploy.config import OpenSearchSize, Profile
from careqa_deploy.names import INDEX_PATTERN, OPENSEARCH_SERVICE_ROLE

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
MASTER_USER = "careqa-admin"


@dataclass(frozen=True)
class DataProps:
    app_name: str
    profile: Profile
    tenants: tuple[str, ...]
    vpc: ec2.IVpc
    data_subnets: ec2.SubnetSelection
    app_subnets: ec2.SubnetSelection
    domain_name: str
    engine_version: str
    opensearch: OpenSearchSize
    hnsw_m: int
    hnsw_ef_construction: int
    embedding_model: str
    embedding_dimension: int
    #: normalised embeddings are searched by inner product (same ranking as cosine, cheaper)
    space_type: str
    #: IAM role names (created later by the service and ingestion stacks) mapped into the domain
    backend_role_names: tuple[str, ...]
    log_retention_days: int


class DataStack(Stack):
    """Keys, buckets, the feedback table and the OpenSearch domain with one index per tenant."""

    def __init__(self, scope: Construct, construct_id: str, *, props: DataProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        production = props.profile == "production"
        keep = RemovalPolicy.RETAIN

        self.key = kms.Key(
            self,
            "DataKey",
            enable_key_rotation=True,
            removal_policy=keep,
            description=f"{props.app_name}: knowledge bases, feedback, index, logs, model volumes",
        )
        allow_cloudwatch_logs(self.key)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=keep,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(max(props.log_retention_days, 90)),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        )
        suppress(
            self.access_logs,
            {
                "HIPAA.Security-S3DefaultEncryptionKMS": "S3 server access logs and ALB access logs can "
                "only be delivered "
                "to a bucket encrypted with SSE-S3, not SSE-KMS.",
                "HIPAA.Security-S3BucketReplicationEnabled": "Access logs are kept in-region for the retention period; "
                "cross-region replication is a DR decision for the operator.",
            },
        )

        self.kb_bucket = self._data_bucket("KnowledgeBase", "kb/")
        # S3 → EventBridge natively (CloudFormation), not through CDK's notifications Lambda.
        cfn_kb = self.kb_bucket.node.default_child
        assert isinstance(cfn_kb, s3.CfnBucket)
        cfn_kb.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
        self.export_bucket = self._data_bucket("Exports", "exports/")
        self.tenant_prefixes = {tenant: f"{tenant}/" for tenant in props.tenants}
        for tenant, prefix in self.tenant_prefixes.items():
            CfnOutput(
                self,
                f"KbPrefix{_pascal(tenant)}",
                value=f"s3://{self.kb_bucket.bucket_name}/{prefix}",
                description=f"where tenant {tenant}'s knowledge-base files go",
            )

        self.feedback_table = dynamodb.Table(
            self,
            "Feedback",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=production,
            removal_policy=keep,
            time_to_live_attribute="expires_at",
        )
        suppress(
            self.feedback_table,
            {
                "HIPAA.Security-DynamoDBInBackupPlan": "Point-in-time recovery gives 35 days of continuous restore; "
                "AWS Backup plans are usually set organisation-wide by policy.",
            },
        )

        self.link_secret = secretsmanager.Secret(
            self,
            "LinkSecret",
            encryption_key=self.key,
            description=f"{props.app_name}: HMAC key that signs the service's source-document links",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        suppress(
            self.link_secret,
            {
                "AwsSolutions-SMG4": "The link-signing key only signs links that expire within the hour; rotate it by "
                "replacing the secret and restarting the service (every task must switch at once).",
                "HIPAA.Security-SecretsManagerRotationEnabled": "The link-signing key only signs links that expire "
                "within the hour; rotate it by replacing the secret.",
            },
        )

        self._opensearch(props)

    # -- buckets ------------------------------------------------------------------------------------
    def _data_bucket(self, construct_id: str, log_prefix: str) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(90),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        suppress(
            bucket,
            {
                "HIPAA.Security-S3BucketReplicationEnabled": "Versioning protects against overwrite and deletion; "
                "cross-region replication is a DR decision for the operator.",
            },
        )
        return bucket

    # -- OpenSearch ---------------------------------------------------------------------------------
    def _opensearch(self, props: DataProps) -> None:
        production = props.profile == "production"
        size = props.opensearch
        self.domain_security_group = ec2.SecurityGroup(
            self,
            "DomainSg",
            vpc=props.vpc,
            allow_all_outbound=False,
            description="OpenSearch: HTTPS from the service, the ingestion Lambda and the index setup only",
        )
        self.master_secret = secretsmanager.Secret(
            self,
            "OpenSearchMaster",
            encryption_key=self.key,
            description=f"{props.app_name}: OpenSearch fine-grained-access master user (index setup only)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": MASTER_USER}),
                generate_string_key="password",
                password_length=32,
                require_each_included_type=True,
                exclude_characters="\"'\\/@:`",
            ),
        )
        suppress(
            self.master_secret,
            {
                "AwsSolutions-SMG4": "Rotating the FGAC master password needs a rotation function that also updates "
                "the domain; only the index-setup custom resource uses it, at deploy time.",
                "HIPAA.Security-SecretsManagerRotationEnabled": "Rotating the FGAC master password needs a rotation "
                "function that also updates the domain; it is used only "
                "at deploy time.",
            },
        )

        log_groups = {
            kind: encrypted_log_group(self, f"OpenSearch{kind}Logs", key=self.key, days=props.log_retention_days)
            for kind in ("App", "Audit", "SlowSearch", "SlowIndex")
        }
        logs.ResourcePolicy(
            self,
            "OpenSearchLogDelivery",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:PutLogEvents", "logs:CreateLogStream"],
                    resources=[f"{g.log_group_arn}" for g in log_groups.values()],
                    conditions={"StringEquals": {"aws:SourceAccount": self.account}},
                )
            ],
        )

        subnets = props.vpc.select_subnets(subnet_group_name=props.data_subnets.subnet_group_name).subnets
        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=props.domain_name,
            version=opensearch.EngineVersion.open_search(props.engine_version.removeprefix("OpenSearch_")),
            vpc=props.vpc,
            vpc_subnets=[ec2.SubnetSelection(subnets=subnets if production else subnets[:1])],
            security_groups=[self.domain_security_group],
            capacity=opensearch.CapacityConfig(
                data_nodes=size.data_nodes,
                data_node_instance_type=size.instance_type,
                master_nodes=size.dedicated_masters or None,
                master_node_instance_type=size.dedicated_master_type,
                multi_az_with_standby_enabled=False,
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=True, availability_zone_count=2)
            if production
            else opensearch.ZoneAwarenessConfig(enabled=False),
            ebs=opensearch.EbsOptions(volume_size=size.volume_gb, volume_type=ec2.EbsDeviceVolumeType.GP3),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True, kms_key=self.key),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2_PFS,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_name=MASTER_USER,
                master_user_password=SecretValue.secrets_manager(self.master_secret.secret_arn, json_field="password"),
            ),
            logging=opensearch.LoggingOptions(
                app_log_enabled=True,
                app_log_group=log_groups["App"],
                audit_log_enabled=True,
                audit_log_group=log_groups["Audit"],
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
            ),
            suppress_logs_resource_policy=True,
            enable_version_upgrade=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Fine-grained access control authenticates every request (the master user by password, CareQA's
        # roles by SigV4 and the role mapping below); the resource policy only opens the HTTP actions on
        # this domain, inside a VPC that only three security groups can reach it from.
        domain_arn = self.format_arn(service="es", resource="domain", resource_name=props.domain_name)
        cfn_domain = self.domain.node.default_child
        assert isinstance(cfn_domain, opensearch.CfnDomain)
        cfn_domain.access_policies = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    principals=[iam.AnyPrincipal()], actions=["es:ESHttp*"], resources=[f"{domain_arn}/*"]
                )
            ]
        ).to_json()
        suppress(
            self.domain,
            {
                "AwsSolutions-OS3": "The domain is reachable only inside the VPC, from three security groups; "
                "fine-grained access control authenticates every request.",
                "AwsSolutions-OS5": "Fine-grained access control with an internal master user requires an "
                "open resource "
                "policy; unsigned requests still need the master password, signed ones a role mapping.",
                **(
                    {}
                    if production
                    else {
                        "AwsSolutions-OS4": "Cheap profile: a single data node for pilots; the production "
                        "profile adds three "
                        "dedicated master nodes.",
                        "AwsSolutions-OS7": "Cheap profile: a single data node in one AZ; the production profile is "
                        "zone-aware across two AZs.",
                    }
                ),
            },
        )

        # Each tenant's index, created at deploy time from the same builder the index driver uses.
        replicas = 1 if production else 0  # a replica on a single node would leave the cluster yellow forever
        indices = [
            {
                "tenant": tenant,
                "name": index_name(tenant),
                "body": index_body(
                    props.embedding_dimension,
                    embedding_model=props.embedding_model,
                    space_type=props.space_type,  # type: ignore[arg-type]
                    replicas=replicas,
                    hnsw_m=props.hnsw_m,
                    hnsw_ef_construction=props.hnsw_ef_construction,
                ),
            }
            for tenant in props.tenants
        ]
        self.index_names = {i["tenant"]: i["name"] for i in indices}
        setup_sg = ec2.SecurityGroup(
            self,
            "IndexSetupSg",
            vpc=props.vpc,
            allow_all_outbound=True,
            description="Index-setup custom resource: OpenSearch and AWS endpoints",
        )
        self.domain_security_group.add_ingress_rule(setup_sg, ec2.Port.tcp(443), "index setup")
        setup = lambda_.Function(
            self,
            "IndexSetup",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(LAMBDAS / "opensearch_indices"), exclude=["__pycache__", "*.pyc"]),
            timeout=Duration.minutes(5),
            memory_size=256,
            vpc=props.vpc,
            vpc_subnets=props.app_subnets,
            security_groups=[setup_sg],
            log_group=encrypted_log_group(self, "IndexSetupLogs", key=self.key, days=props.log_retention_days),
            description="Creates each tenant's k-NN index and CareQA's role mapping (CloudFormation custom resource)",
        )
        self.master_secret.grant_read(setup)
        suppress(
            setup,
            {
                "HIPAA.Security-LambdaDLQ": "Invoked synchronously by CloudFormation, which records every failure on "
                "the stack; a dead-letter queue would never receive a message.",
                "HIPAA.Security-LambdaConcurrency": "Runs only during deployments, once per change; "
                "reserved concurrency "
                "would take capacity from the account for nothing.",
            },
        )
        suppress(
            setup,
            {
                "AwsSolutions-IAM4": "AWSLambdaVPCAccessExecutionRole is the minimal AWS policy for a Lambda's ENIs "
                "and logs in a VPC.",
                "AwsSolutions-IAM5": "ENI management and log-stream actions cannot be scoped further by AWS.",
                "HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON,
            },
            children=True,
        )
        self.tenant_indices = CustomResource(
            self,
            "TenantIndices",
            service_token=setup.function_arn,
            resource_type="Custom::CareQATenantIndices",
            properties={
                "Endpoint": self.domain.domain_endpoint,
                "MasterSecretArn": self.master_secret.secret_arn,
                "Indices": json.dumps(indices, sort_keys=True),
                "ServiceRole": OPENSEARCH_SERVICE_ROLE,
                "IndexPattern": INDEX_PATTERN,
                "BackendRoles": json.dumps(
                    [
                        self.format_arn(service="iam", region="", resource="role", resource_name=name)
                        for name in props.backend_role_names
                    ]
                ),
            },
        )
        self.tenant_indices.node.add_dependency(self.domain)
        CfnOutput(self, "OpenSearchEndpoint", value=f"https://{self.domain.domain_endpoint}")


def _pascal(text: str) -> str:
    return "".join(part.capitalize() for part in text.split("-"))
