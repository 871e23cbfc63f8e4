"""ServiceStack: ``careqa serve`` on Fargate behind an internal HTTPS load balancer that authenticates agents.

Authentication is the load balancer's **authenticate-oidc** action against the organisation's own
identity provider (Okta, Entra ID, Ping, ... or Cognito as a plain OIDC provider). Why not a Cognito user
pool in the stack: health businesses already run an IdP with their agents, groups and MFA, and a second
user store would duplicate people's identities. The load balancer does the OIDC code flow, keeps the
session cookie and forwards ``x-amzn-oidc-*`` headers; the service (``auth.mode: alb-oidc``) maps the subject
or groups to a tenant (``auth.alb_oidc.identities``) and answers 403 to an identity no tenant claims. API paths
(``/v1/*``) answer 401 instead of redirecting to the login page. The tasks' security group admits the load
balancer only, and the service still believes the headers only after verifying the load balancer's ES256
signature on ``x-amzn-oidc-data`` (careqa/auth.py), so nothing else in the VPC can pose as an agent.

Verifying needs the load balancer's public keys, which AWS publishes on the internet (one URL per key id,
per region). The tasks get them through the **key Lambda** (``lambdas/alb_key_handler.py``), a function
outside the VPC that takes a key id and fetches that one key from AWS's endpoint for this region; the tasks
invoke it through the VPC's Lambda interface endpoint and cache each key. Why not a NAT route for the
service subnets: security groups filter by address, not by name, so a route to the NAT gateway would let the
tasks, which hold questions that may be PHI, send anything to any HTTPS host; an allow-listing proxy or AWS
Network Firewall could narrow that, but would add a fleet to run or about $290 a month per AZ. The key
Lambda keeps the subnets isolated, can reach nothing but a key by id, costs one more interface endpoint
(about $15 a month over two AZs) plus a few invocations, reuses the ingestion image, and works whether or not
the VPC has a NAT gateway (``network.alb_egress: none``).

There is no plain-HTTP listener. The HTTPS listener needs an ACM certificate (``auth.certificate_arn``)
and uses the TLS 1.3 / 1.2 restricted policy. Tasks run in isolated subnets; they reach SageMaker, SSM,
Secrets Manager, ECR and CloudWatch through interface endpoints and S3/DynamoDB through gateways.

The task role is least privilege: invoke the two endpoints, ``es:ESHttpGet/Post`` on the ``careqa-*``
index paths of the domain, put/get items of the feedback table, read ``/careqa/*`` parameters (the swap
tool's live-model records), invoke the key Lambda, and read the knowledge-base objects under its own
tenants' prefixes (the documents behind source links). Logs go to KMS-encrypted groups;
the application logs ids, sizes and timings, never questions or answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, Duration, SecretValue, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from careqa.alb_keys import public_key_url
from careqa_cdk.common import encrypted_log_group
from careqa_cdk.jumpstart_endpoint import JumpStartEndpoint, grant_invoke
from careqa_cdk.nag import INLINE_POLICY_REASON, suppress
from careqa_deploy.config import DeployConfig, DeployConfigError
from careqa_deploy.environment import service_environment
from careqa_deploy.names import INDEX_PATTERN, KEY_FUNCTION_MEMORY_MB, SSM_PATH, service_task_role_name

PORT = 8000


@dataclass(frozen=True)
class ServiceProps:
    config: DeployConfig
    repo_root: Path
    vpc: ec2.IVpc
    app_subnets: ec2.SubnetSelection
    ingress_subnets: ec2.SubnetSelection
    kms_key: kms.IKey
    access_logs_bucket: s3.IBucket
    feedback_table: dynamodb.ITable
    kb_bucket: s3.IBucket
    link_secret_arn: str
    domain_endpoint: str
    domain_security_group: ec2.ISecurityGroup
    embedding: JumpStartEndpoint
    llm: JumpStartEndpoint


class ServiceStack(Stack):
    """The chatbot: Fargate service, internal ALB with OIDC, autoscaling, least-privilege task role."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ServiceProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Declared first: grants on the data key from here must land in this stack's policies, and the
        # endpoints are named by ARN (no export), so the models must exist before the service.
        self.add_stack_dependency(Stack.of(props.kms_key), "data: key, buckets, table, domain")
        self.add_stack_dependency(Stack.of(props.embedding), "models: the endpoints the service invokes")
        config = props.config
        production = config.profile == "production"
        size = config.fargate.production if production else config.fargate.cheap

        self.task_role = self._task_role(props)
        # Imported by ARN: granting through the secret object would write to the data key's policy (a cycle);
        # the execution role gets exactly GetSecretValue on it and Decrypt through Secrets Manager.
        link_secret = secretsmanager.Secret.from_secret_complete_arn(self, "LinkSecret", props.link_secret_arn)
        log_group = encrypted_log_group(self, "ServiceLogs", key=props.kms_key, days=config.log_retention_days)
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
        )
        container = task.add_container(
            "careqa",
            image=ecs.ContainerImage.from_asset(
                str(props.repo_root), file="Dockerfile", platform=ecr_assets.Platform.LINUX_AMD64
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="careqa", log_group=log_group),
            secrets={"CAREQA_LINK_SECRET": ecs.Secret.from_secrets_manager(link_secret)},
            port_mappings=[ecs.PortMapping(container_port=PORT)],
            readonly_root_filesystem=True,
            health_check=ecs.HealthCheck(
                command=[
                    "CMD",
                    "python",
                    "-c",
                    f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/healthz', timeout=3)",
                ],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
        )
        task.add_volume(name="tmp")  # the only writable path: index cache and scratch under /tmp
        container.add_mount_points(ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False))
        suppress(
            task,
            {
                "AwsSolutions-ECS2": "The environment holds only non-secret settings (tenant names, endpoint and table "
                "names, the identity map); the link-signing key comes from Secrets Manager.",
            },
        )
        task.obtain_execution_role().add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[props.kms_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{config.env.region}.amazonaws.com"}},
            )
        )
        suppress(
            task,
            {
                "AwsSolutions-IAM5": "The execution role's ecr:GetAuthorizationToken cannot be scoped to a resource; "
                "its log and image permissions are CDK's, scoped to this task's group and image.",
                "HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON,
            },
            children=True,
        )

        self.service_security_group = ec2.SecurityGroup(
            self,
            "ServiceSg",
            vpc=props.vpc,
            allow_all_outbound=False,
            description="CareQA tasks: from the load balancer only; HTTPS out (the subnets are isolated)",
        )
        self.service_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC endpoints, S3/DynamoDB gateways and OpenSearch"
        )
        # The rule lives here, not in the data stack, so the data stack never refers to this one.
        ec2.CfnSecurityGroupIngress(
            self,
            "DomainIngress",
            group_id=props.domain_security_group.security_group_id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            source_security_group_id=self.service_security_group.security_group_id,
            description="CareQA service to OpenSearch",
        )

        cluster = ecs.Cluster(self, "Cluster", vpc=props.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            desired_count=size.min_tasks,
            vpc_subnets=props.app_subnets,
            security_groups=[self.service_security_group],
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            enable_execute_command=False,
        )

        self._load_balancer(props, production)
        self.key_function = self._key_function(props)
        self.key_function.grant_invoke(self.task_role)
        # Set once the load balancer exists: the service accepts OIDC tokens signed by this one only.
        for name, value in service_environment(
            config,
            embedding=props.embedding.props.model,
            llm=props.llm.props.model,
            opensearch_endpoint=f"https://{props.domain_endpoint}",
            feedback_table=props.feedback_table.table_name,
            kb_bucket=props.kb_bucket.bucket_name,
            load_balancer_arn=self.load_balancer.load_balancer_arn,
            key_function=self.key_function.function_name,
            llm_inference_component=props.llm.inference_component_name,
        ).items():
            container.add_environment(name, value)
        scaling = self.service.auto_scale_task_count(min_capacity=size.min_tasks, max_capacity=size.max_tasks)
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=config.fargate.cpu_target_percent,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=config.fargate.requests_per_target,
            target_group=self.target_group,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

    # -- load balancer ------------------------------------------------------------------------------
    def _load_balancer(self, props: ServiceProps, production: bool) -> None:
        config = props.config
        alb_sg = ec2.SecurityGroup(
            self,
            "AlbSg",
            vpc=props.vpc,
            allow_all_outbound=False,
            description="Internal load balancer: HTTPS from agent networks only",
        )
        for cidr in config.network.allowed_cidrs:
            alb_sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), f"agents in {cidr}")
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=props.vpc,
            internet_facing=False,
            vpc_subnets=props.ingress_subnets,
            security_group=alb_sg,
            drop_invalid_header_fields=True,
            deletion_protection=production,
        )
        self.load_balancer.log_access_logs(props.access_logs_bucket, prefix="alb")
        if not production:
            suppress(
                self.load_balancer,
                {
                    "HIPAA.Security-ELBDeletionProtectionEnabled": "Cheap profile (pilots): the load balancer holds no "
                    "data and must be removable with the stack; production "
                    "turns deletion protection on.",
                },
            )
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=props.vpc,
            port=PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            targets=[self.service],
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(path="/healthz", healthy_http_codes="200", interval=Duration.seconds(15)),
        )

        oidc = config.auth.oidc

        def authenticate(on_unauthenticated: elbv2.UnauthenticatedAction) -> elbv2.ListenerAction:
            return elbv2.ListenerAction.authenticate_oidc(
                issuer=oidc.issuer,
                authorization_endpoint=oidc.authorization_endpoint,
                token_endpoint=oidc.token_endpoint,
                user_info_endpoint=oidc.user_info_endpoint,
                client_id=oidc.client_id,
                client_secret=SecretValue.secrets_manager(oidc.client_secret_arn),
                scope=oidc.scope,
                session_cookie_name="careqa-session",
                session_timeout=Duration.minutes(config.auth.session_timeout_minutes),
                on_unauthenticated_request=on_unauthenticated,
                next=elbv2.ListenerAction.forward([self.target_group]),
            )

        self.listener = self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            open=False,
            certificates=[elbv2.ListenerCertificate.from_arn(config.auth.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.TLS13_RES,
            default_action=authenticate(elbv2.UnauthenticatedAction.AUTHENTICATE),
        )
        # Scripts and the page's fetch calls get a 401 instead of a redirect to the login page.
        self.listener.add_action(
            "Api",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(["/v1/*"])],
            action=authenticate(elbv2.UnauthenticatedAction.DENY),
        )
        CfnOutput(
            self,
            "LoadBalancerDns",
            value=self.load_balancer.load_balancer_dns_name,
            description="point the agents' DNS name (matching the certificate) here",
        )

    # -- the load balancer's public keys ---------------------------------------------------------------
    def _key_function(self, props: ServiceProps) -> lambda_.Function:
        """The key Lambda: fetches one ALB public key by id for the tasks (see the module docstring for why)."""
        config = props.config
        try:
            key_url = public_key_url(self.partition, config.env.region)
        except ValueError as exc:
            raise DeployConfigError(f"env.region: {exc}") from None
        role = iam.Role(
            self,
            "KeyFunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="CareQA key Lambda: write its own logs, nothing else",
        )
        log_group = encrypted_log_group(self, "KeyFunctionLogs", key=props.kms_key, days=config.log_retention_days)
        log_group.grant_write(role)
        function = lambda_.DockerImageFunction(
            self,
            "KeyFunction",
            # The ingestion image (same Dockerfile and context, so the same asset) with this handler as its command.
            code=lambda_.DockerImageCode.from_image_asset(
                str(props.repo_root), file="lambdas/Dockerfile", cmd=["alb_key_handler.handler"]
            ),
            architecture=lambda_.Architecture.X86_64,
            role=role,
            memory_size=KEY_FUNCTION_MEMORY_MB,
            timeout=Duration.seconds(10),  # its fetch is bounded at 3 s to connect and 3 s per read
            log_group=log_group,
            environment={"CAREQA_ALB_PUBLIC_KEY_URL": key_url},
            description="Fetches a load balancer public key by id from AWS's key endpoint for the CareQA service",
        )
        suppress(
            function,
            {
                "HIPAA.Security-LambdaInsideVPC": "Outside the VPC on purpose: it must reach AWS's public-key "
                "endpoint on the internet, and the VPC's service subnets must not. It receives only a key id, "
                "fetches only that public key from a URL fixed at deploy, and has no data access (no PHI).",
                "HIPAA.Security-LambdaDLQ": "Invoked synchronously by the service, which turns a failure into a "
                "503 with Retry-After for the caller; there is no asynchronous event to keep.",
                "HIPAA.Security-LambdaConcurrency": "Invoked once per new key id per task, so its concurrency is "
                "bounded by the task count; reserving concurrency would fail in accounts at the default limit.",
            },
        )
        suppress(
            role,
            {
                "HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON,
            },
            children=True,
        )
        return function

    # -- task role ----------------------------------------------------------------------------------
    def _task_role(self, props: ServiceProps) -> iam.Role:
        config = props.config
        role = iam.Role(
            self,
            "TaskRole",
            role_name=service_task_role_name(config.app_name),
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="CareQA service tasks: models, index, feedback, live-model records",
        )
        domain_arn = self.format_arn(service="es", resource="domain", resource_name=config.domain_name)
        grant_invoke(role, [props.embedding, props.llm], stream=True, sid="InvokeModels")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="SearchIndices",
                actions=["es:ESHttpGet", "es:ESHttpPost"],
                resources=[f"{domain_arn}/{INDEX_PATTERN}"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="Feedback",
                actions=["dynamodb:PutItem", "dynamodb:GetItem"],
                resources=[props.feedback_table.table_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LiveModelRecords",
                actions=["ssm:GetParameter"],
                resources=[
                    self.format_arn(service="ssm", resource="parameter", resource_name=f"{SSM_PATH.strip('/')}/*")
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DataKeyViaServices",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[props.kms_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{config.env.region}.amazonaws.com"}},
            )
        )
        self._grant_knowledge_base(role, props)
        suppress(
            role,
            {
                "AwsSolutions-IAM5": "Wildcards sit only below fixed prefixes: the careqa-* index paths of one domain, "
                "the parameters under /careqa/ (the swap tool's live-model records) and each "
                "tenant's knowledge-base prefix (<tenant>/*).",
                "HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON,
            },
            children=True,
        )
        return role

    def _grant_knowledge_base(self, role: iam.Role, props: ServiceProps) -> None:
        """Read access to the documents behind source links: each tenant's prefix of the bucket, nothing else."""
        tenants = props.config.tenants
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadKnowledgeBase",
                actions=["s3:GetObject"],
                resources=[props.kb_bucket.arn_for_objects(f"{t.kb_prefix}*") for t in tenants],
            )
        )
        # S3 answers GetObject on a missing key with 403 unless the caller may list it; listing limited to the
        # same prefixes turns a deleted document into the service's 404 instead of a 5xx.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListKnowledgeBase",
                actions=["s3:ListBucket"],
                resources=[props.kb_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{t.kb_prefix}*" for t in tenants]}},
            )
        )
        key = props.kb_bucket.encryption_key
        if key is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="KnowledgeBaseKeyViaS3",
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{props.config.env.region}.amazonaws.com"}},
                )
            )
