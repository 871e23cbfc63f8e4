"""NetworkStack: a two-AZ VPC whose service, data and model subnets have no route out of AWS.

Subnet tiers (one subnet per tier per AZ):

* ``app`` (isolated): the Fargate service, the Lambdas, and the interface endpoints;
* ``data`` (isolated): the OpenSearch domain;
* ``models`` (isolated): the SageMaker endpoints' network interfaces;
* ``ingress``: the internal load balancer. Its authenticate-oidc action calls the identity provider's
  token and userinfo endpoints from the load balancer's own nodes, so with ``alb_egress: nat`` this tier
  routes through a NAT gateway (and a ``public`` tier exists only to hold it). With ``alb_egress: none``
  (a provider reachable through VPN or Direct Connect) it is isolated too and the VPC has no internet
  gateway at all.

AWS APIs are reached through interface endpoints (SageMaker runtime and API, ECR, CloudWatch Logs and
metrics, STS, SSM, Secrets Manager, and Lambda for the key Lambda that fetches the load balancer's public
keys, see service.py) and gateway endpoints (S3, DynamoDB); all traffic is recorded by VPC flow logs in a
KMS-encrypted log group.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from careqa_cdk.common import allow_cloudwatch_logs, encrypted_log_group
from careqa_cdk.nag import INLINE_POLICY_REASON, suppress
from careqa_deploy.names import INTERFACE_ENDPOINTS

APP, DATA, MODELS, INGRESS, PUBLIC = "app", "data", "models", "ingress", "public"


@dataclass(frozen=True)
class NetworkProps:
    app_name: str
    cidr: str
    availability_zones: tuple[str, ...]
    nat_gateways: int
    log_retention_days: int


class NetworkStack(Stack):
    """The VPC, its endpoints and flow logs. Exposes subnet selections for the other stacks."""

    def __init__(self, scope: Construct, construct_id: str, *, props: NetworkProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        egress = props.nat_gateways > 0
        subnets = [
            ec2.SubnetConfiguration(name=APP, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22),
            ec2.SubnetConfiguration(name=DATA, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ec2.SubnetConfiguration(name=MODELS, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ec2.SubnetConfiguration(
                name=INGRESS,
                cidr_mask=26,
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if egress else ec2.SubnetType.PRIVATE_ISOLATED,
            ),
        ]
        if egress:
            subnets.append(
                ec2.SubnetConfiguration(
                    name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=27, map_public_ip_on_launch=False
                )
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(props.cidr),
            availability_zones=list(props.availability_zones) or None,
            max_azs=None if props.availability_zones else 2,
            nat_gateways=props.nat_gateways,
            nat_gateway_subnets=ec2.SubnetSelection(subnet_group_name=PUBLIC) if egress else None,
            subnet_configuration=subnets,
            restrict_default_security_group=True,
            enable_dns_hostnames=True,
            enable_dns_support=True,
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name=APP)
        self.data_subnets = ec2.SubnetSelection(subnet_group_name=DATA)
        self.model_subnets = ec2.SubnetSelection(subnet_group_name=MODELS)
        self.ingress_subnets = ec2.SubnetSelection(subnet_group_name=INGRESS)

        # Flow logs get their own key: this stack deploys first, before the data key exists.
        self.logs_key = kms.Key(
            self,
            "FlowLogsKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            description=f"{props.app_name}: VPC flow logs",
        )
        allow_cloudwatch_logs(self.logs_key)
        flow_logs = encrypted_log_group(self, "FlowLogs", key=self.logs_key, days=props.log_retention_days)
        flow_log = self.vpc.add_flow_log(
            "AllTraffic",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointsSg",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Interface VPC endpoints: HTTPS from inside the VPC only",
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(props.cidr), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=ec2.InterfaceVpcEndpointAwsService(service),
                subnets=self.app_subnets,
                private_dns_enabled=True,
                open=False,
                security_groups=[self.endpoint_security_group],
            )
        private = [ec2.SubnetSelection(subnet_group_name=g) for g in (APP, DATA, MODELS, INGRESS)]
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=private)
        self.vpc.add_gateway_endpoint("DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=private)

        if egress:
            for subnet in self.vpc.public_subnets:
                suppress(
                    subnet,
                    {
                        "HIPAA.Security-VPCNoUnrestrictedRouteToIGW": "The public subnets hold only the NAT "
                        "gateways that "
                        "let the internal load balancer reach the OIDC provider; no workload runs in them, and the "
                        "app, data and model subnets have no route to the internet gateway or NAT.",
                    },
                    children=True,
                )
        suppress(flow_log, {"HIPAA.Security-IAMNoInlinePolicy": INLINE_POLICY_REASON}, children=True)
