"""The network stack: isolated tiers for service, data and models; endpoints; encrypted flow logs."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from careqa_deploy.names import INTERFACE_ENDPOINTS

from .conftest import Synth

ISOLATED_TIERS = {"app", "data", "models"}


def _subnet_tiers(resources: dict[str, dict[str, Any]]) -> dict[str, str]:
    tiers = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::EC2::Subnet":
            tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
            tiers[logical_id] = tags["aws-cdk:subnet-name"]
    return tiers


def _tiers_routed_to_internet(resources: dict[str, dict[str, Any]]) -> set[str]:
    """Subnet tiers whose route table has a default route through an internet gateway or a NAT gateway."""
    tiers = _subnet_tiers(resources)
    table_tiers: dict[str, set[str]] = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::EC2::SubnetRouteTableAssociation":
            props = resource["Properties"]
            table_tiers.setdefault(props["RouteTableId"]["Ref"], set()).add(tiers[props["SubnetId"]["Ref"]])
    routed: set[str] = set()
    for resource in resources.values():
        props = resource.get("Properties", {})
        if (
            resource["Type"] == "AWS::EC2::Route"
            and props.get("DestinationCidrBlock") == "0.0.0.0/0"
            and ("GatewayId" in props or "NatGatewayId" in props)
        ):
            routed |= table_tiers[props["RouteTableId"]["Ref"]]
    return routed


def test_service_data_and_model_subnets_have_no_route_out_of_the_vpc(synth: Synth) -> None:
    resources = synth.jsons["network"]["Resources"]
    tiers = set(_subnet_tiers(resources).values())
    assert tiers >= ISOLATED_TIERS
    assert not _tiers_routed_to_internet(resources) & ISOLATED_TIERS
    for logical_id, tier in _subnet_tiers(resources).items():
        if tier in ISOLATED_TIERS:
            assert resources[logical_id]["Properties"].get("MapPublicIpOnLaunch") is not True


def test_only_the_load_balancer_tier_reaches_the_identity_provider_through_nat(synth: Synth) -> None:
    assert _tiers_routed_to_internet(synth.jsons["network"]["Resources"]) == {"ingress", "public"}


def test_without_alb_egress_the_vpc_has_no_internet_gateway_or_nat() -> None:
    from aws_cdk import App
    from aws_cdk.assertions import Template
    from careqa_cdk.network import NetworkProps, NetworkStack

    app = App()
    stack = NetworkStack(
        app,
        "Private",
        props=NetworkProps(
            app_name="careqa", cidr="10.40.0.0/16", availability_zones=(), nat_gateways=0, log_retention_days=30
        ),
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    assert not _tiers_routed_to_internet(template.to_json()["Resources"])


def test_vpc_spans_two_availability_zones(synth: Synth) -> None:
    zones = {str(s["Properties"]["AvailabilityZone"]) for s in synth.resources("network", "AWS::EC2::Subnet").values()}
    assert len(zones) == 2


def test_interface_endpoints_cover_every_aws_api_the_workloads_call(synth: Synth) -> None:
    endpoints = synth.resources("network", "AWS::EC2::VPCEndpoint").values()
    interface = {
        e["Properties"]["ServiceName"].rsplit(".us-east-1.", 1)[1]
        for e in endpoints
        if e["Properties"]["VpcEndpointType"] == "Interface"
    }
    assert interface == set(INTERFACE_ENDPOINTS.values())
    assert {
        "sagemaker.runtime",
        "sagemaker.api",
        "ecr.api",
        "ecr.dkr",
        "logs",
        "sts",
        "ssm",
        "secretsmanager",
        "monitoring",
        "lambda",
    } <= interface
    gateways = [
        str(e["Properties"]["ServiceName"]) for e in endpoints if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    assert len(gateways) == 2 and any(".s3" in g for g in gateways) and any(".dynamodb" in g for g in gateways)
    for e in endpoints:
        if e["Properties"]["VpcEndpointType"] == "Interface":
            assert e["Properties"]["PrivateDnsEnabled"] is True


def test_interface_endpoints_accept_https_from_the_vpc_only(synth: Synth) -> None:
    synth.templates["network"].has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Interface VPC endpoints"),
            "SecurityGroupIngress": [Match.object_like({"CidrIp": "10.40.0.0/16", "FromPort": 443, "ToPort": 443})],
        },
    )


def test_flow_logs_record_all_traffic_into_an_encrypted_log_group(synth: Synth) -> None:
    template = synth.templates["network"]
    template.has_resource_properties(
        "AWS::EC2::FlowLog", {"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value()})


@pytest.mark.parametrize("profile,nats", [("cheap", 1), ("production", 2)])
def test_nat_gateways_follow_the_profile(profile: str, nats: int, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(profile).templates["network"].resource_count_is("AWS::EC2::NatGateway", nats)
