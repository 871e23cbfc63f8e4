"""ModelsStack: the embedding and LLM endpoints, their execution role and security group.

Which model each endpoint serves comes from ``careqa_deploy.models.resolve_model``: the deploy config's
``config``, unless the swap tool recorded another model as live on that endpoint and the record was
brought into the CDK context (``careqa:activeModels``). Then the live model is deployed and a warning
says so, so that a deploy never silently reverts a swap. See cdk/README.md, "Swaps and deploys".

The execution role can pull the images and weights of *every* deployable config pinned for the region
(ECR registries and JumpStart buckets listed in ``ArtifactSources``), because the swap tool creates its
models with the live model's role.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, ArnFormat, CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from careqa_cdk.jumpstart_endpoint import (
    DataCapture,
    InstanceHosting,
    JumpStartEndpoint,
    JumpStartEndpointProps,
    ScaleToZeroHosting,
    ServerlessHosting,
)
from careqa_cdk.nag import INLINE_POLICY_REASON, suppress
from careqa_deploy.config import DeployConfig, InstanceScaling
from careqa_deploy.models import ArtifactSources, ResolvedModel

CAPTURE_PREFIX = "capture"


@dataclass(frozen=True)
class ModelsProps:
    config: DeployConfig
    embedding: ResolvedModel
    llm: ResolvedModel
    artifacts: ArtifactSources
    vpc: ec2.IVpc
    model_subnets: ec2.SubnetSelection
    kms_key: kms.IKey
    capture_bucket: s3.IBucket


class ModelsStack(Stack):
    """Two ``JumpStartEndpoint`` constructs, hosted as the profile says."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ModelsProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(Stack.of(props.kms_key), "data: the volume key and capture bucket")
        config = props.config
        cheap = config.profile == "cheap"
        self.security_group = ec2.SecurityGroup(
            self,
            "ModelsSg",
            vpc=props.vpc,
            allow_all_outbound=False,
            description="SageMaker model containers: HTTPS to VPC endpoints and S3 only (isolated subnets)",
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS: the subnets route only to VPC endpoints"
        )
        self.role = self._execution_role(props)
        subnets = tuple(props.vpc.select_subnets(subnet_group_name=props.model_subnets.subnet_group_name).subnets)
        capture_uri = f"s3://{props.capture_bucket.bucket_name}/{CAPTURE_PREFIX}"

        for resolved in (props.embedding, props.llm):
            if resolved.note:
                Annotations.of(self).add_warning_v2("careqa:active-model", resolved.note)

        emb = config.embedding
        self.embedding = JumpStartEndpoint(
            self,
            "Embedding",
            props=JumpStartEndpointProps(
                model=props.embedding.config,
                endpoint_name=config.embedding_endpoint_name,
                region=config.env.region,
                hosting=ServerlessHosting(emb.serverless.memory_mb, emb.serverless.max_concurrency)
                if cheap
                else _instances(emb.production.instance_type, emb.production),
                execution_role=self.role,
                kms_key=props.kms_key,
                vpc_subnets=subnets,
                security_group=self.security_group,
                data_capture=DataCapture(f"{capture_uri}/{config.embedding_endpoint_name}", emb.data_capture_percent),
            ),
        )

        llm = config.llm
        zero = llm.scale_to_zero
        self.llm = JumpStartEndpoint(
            self,
            "Llm",
            props=JumpStartEndpointProps(
                model=props.llm.config,
                endpoint_name=config.llm_endpoint_name,
                region=config.env.region,
                hosting=ScaleToZeroHosting(
                    instance_type=config.llm_instance_type("cheap"),
                    max_instances=zero.max_instances,
                    max_copies=zero.max_copies,
                    accelerators_per_copy=zero.accelerators_per_copy,
                    memory_mb_per_copy=zero.memory_mb_per_copy,
                    invocations_per_copy=zero.invocations_per_copy,
                )
                if cheap
                else _instances(config.llm_instance_type("production"), llm.production),
                execution_role=self.role,
                kms_key=props.kms_key,
                accept_eula=llm.accept_eula,
                vpc_subnets=subnets,
                security_group=self.security_group,
                data_capture=DataCapture(f"{capture_uri}/{config.llm_endpoint_name}", llm.data_capture_percent),
            ),
        )

        for endpoint in (self.embedding, self.llm):
            if not endpoint.volume_encrypted:
                suppress(
                    endpoint.endpoint_config,
                    {
                        "HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured": (
                            f"{endpoint.instance_type} has local NVMe instance storage: SageMaker rejects a volume "
                            "KMS key for it and encrypts that storage in hardware (AES-256, Nitro)."
                        ),
                    },
                )
        CfnOutput(self, "EmbeddingEndpointName", value=self.embedding.endpoint_name)
        CfnOutput(self, "LlmEndpointName", value=self.llm.endpoint_name)
        if self.llm.inference_component_name:
            CfnOutput(
                self,
                "LlmInferenceComponentName",
                value=self.llm.inference_component_name,
                description="pass as InferenceComponentName when invoking the LLM endpoint",
            )

    def _execution_role(self, props: ModelsProps) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker endpoints: pull pinned JumpStart images and weights, write logs",
        )
        region, partition = self.region, self.partition
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[
                    f"arn:{partition}:ecr:{region}:{account}:repository/*" for account in props.artifacts.ecr_accounts
                ],
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:ListBucket"],
                resources=[
                    arn
                    for bucket in props.artifacts.s3_buckets
                    for arn in (f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*")
                ],
            )
        )
        if props.artifacts.s3_objects:  # tuned models' artifacts (careqa models package): each object alone
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[f"arn:{partition}:s3:::{path}" for path in props.artifacts.s3_objects],
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    self.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["*SageMaker*", "/aws/sagemaker/*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                resources=[props.kms_key.key_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[props.capture_bucket.arn_for_objects(f"{CAPTURE_PREFIX}/*")]
            )
        )
        suppress(
            role,
            {
                "AwsSolutions-IAM5": "ecr:GetAuthorizationToken, cloudwatch:PutMetricData (namespace-conditioned) and "
                "the ENI actions SageMaker needs in a VPC cannot be scoped to a resource; registry "
                "repositories, JumpStart buckets, log groups and the capture prefix are wildcards "
                "below fixed ARNs.",
                "HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON,
            },
            children=True,
        )
        return role


def _instances(instance_type: str | None, scaling: InstanceScaling) -> InstanceHosting:
    """The production profile's hosting: the deploy config's instance scaling of one endpoint."""
    return InstanceHosting(
        instance_type=instance_type,
        min_instances=scaling.min_instances,
        max_instances=scaling.max_instances,
        invocations_per_instance=scaling.invocations_per_instance,
    )
