"""The service stack: HTTPS-only internal ALB with OIDC, Fargate in isolated subnets, least privilege."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from .conftest import Synth


def _container(synth: Synth) -> dict[str, Any]:
    (task,) = synth.resources("service", "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return dict(container)


def _environment(synth: Synth) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in _container(synth)["Environment"]}


def _task_role_statements(synth: Synth) -> list[dict[str, Any]]:
    (policy,) = [p for k, p in synth.resources("service", "AWS::IAM::Policy").items() if k.startswith("TaskRole")]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_the_only_listener_is_https_443_with_the_configured_certificate_and_a_tls12_policy(synth: Synth) -> None:
    listeners = synth.resources("service", "AWS::ElasticLoadBalancingV2::Listener").values()
    assert len(listeners) == 1
    (listener,) = listeners
    props = listener["Properties"]
    assert (props["Protocol"], props["Port"]) == ("HTTPS", 443)
    assert props["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
    assert props["Certificates"] == [
        {"CertificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"}
    ]


def test_every_request_is_authenticated_by_oidc_before_it_is_forwarded(synth: Synth) -> None:
    (listener,) = synth.resources("service", "AWS::ElasticLoadBalancingV2::Listener").values()
    actions = sorted(listener["Properties"]["DefaultActions"], key=lambda a: a["Order"])
    assert [a["Type"] for a in actions] == ["authenticate-oidc", "forward"]
    oidc = actions[0]["AuthenticateOidcConfig"]
    assert oidc["Issuer"] == "https://login.example-health.com"
    assert "resolve:secretsmanager" in oidc["ClientSecret"]
    synth.templates["service"].has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/v1/*"]}}],
            "Actions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Type": "authenticate-oidc",
                            "AuthenticateOidcConfig": Match.object_like({"OnUnauthenticatedRequest": "deny"}),
                        }
                    )
                ]
            ),
        },
    )


def test_load_balancer_is_internal_logs_access_and_drops_invalid_headers(synth: Synth) -> None:
    (alb,) = synth.resources("service", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    props = alb["Properties"]
    assert props["Scheme"] == "internal"
    attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert "ingressSubnet" in json.dumps(props["Subnets"])


def test_deletion_protection_follows_the_profile(cheap: Synth, production: Synth) -> None:
    def protected(synth: Synth) -> str:
        (alb,) = synth.resources("service", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        return {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}[
            "deletion_protection.enabled"
        ]

    assert (protected(cheap), protected(production)) == ("false", "true")


def test_load_balancer_accepts_only_the_agent_networks(synth: Synth) -> None:
    groups = synth.resources("service", "AWS::EC2::SecurityGroup")
    alb_sg = next(g for k, g in groups.items() if k.startswith("AlbSg"))
    assert [(r["CidrIp"], r["FromPort"]) for r in alb_sg["Properties"]["SecurityGroupIngress"]] == [("10.0.0.0/8", 443)]


def test_tasks_run_in_isolated_app_subnets_without_public_ips(synth: Synth) -> None:
    (service,) = synth.resources("service", "AWS::ECS::Service").values()
    network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert "appSubnet" in json.dumps(network["Subnets"])


def test_container_is_built_from_the_repository_dockerfile_with_a_read_only_root(synth: Synth) -> None:
    container = _container(synth)
    assert container["ReadonlyRootFilesystem"] is True
    assert container["PortMappings"][0]["ContainerPort"] == 8000
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert [s["Name"] for s in container["Secrets"]] == ["CAREQA_LINK_SECRET"]
    assert "container-assets" in json.dumps(container["Image"])
    (image,) = [
        i for i in synth.assets("service")["dockerImages"].values() if i["source"]["dockerFile"] == "Dockerfile"
    ]
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "careqa" / "cli.py").is_file() and not (staged / ".venv").exists()


def test_the_service_image_carries_the_deployment_package_its_command_line_imports(synth: Synth) -> None:
    (image,) = [
        i for i in synth.assets("service")["dockerImages"].values() if i["source"]["dockerFile"] == "Dockerfile"
    ]
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "careqa_deploy" / "cli.py").is_file()  # careqa.cli mounts `careqa cost` from it
    assert "COPY careqa_deploy ./careqa_deploy" in (staged / "Dockerfile").read_text()


def test_service_config_maps_each_identity_to_its_tenant(synth: Synth) -> None:
    environment = _environment(synth)
    assert environment["CAREQA_AUTH__MODE"] == "alb-oidc"
    identities = json.loads(environment["CAREQA_AUTH__ALB_OIDC__IDENTITIES"])
    assert {(i["claim"], i["value"], i["tenant"]) for i in identities} == {
        ("group", "northwind-care-agents", "pharmacy"),
        ("sub", "00u1northwindsupervisor", "pharmacy"),
        ("group", "lakeside-front-desk", "clinic"),
    }
    assert environment["CAREQA_AUTH__ALB_OIDC__GROUP_CLAIM"] == "groups"
    assert "Alb" in json.dumps(environment["CAREQA_AUTH__ALB_OIDC__LOAD_BALANCER_ARN"])
    assert [t["id"] for t in json.loads(environment["CAREQA_TENANTS"])] == ["pharmacy", "clinic"]
    assert environment["CAREQA_IDENTITIES"] == "[]"  # no bearer tokens on AWS
    models = json.loads(environment["CAREQA_MODELS"])
    assert models["llm"]["transport"] == "sagemaker" and models["llm"]["endpoint_name"] == "careqa-llm"


def test_service_stores_feedback_in_the_table_and_searches_the_domain(synth: Synth) -> None:
    environment = _environment(synth)
    assert environment["CAREQA_FEEDBACK__DRIVER"] == "dynamodb"
    assert "Feedback" in json.dumps(environment["CAREQA_FEEDBACK__TABLE"])
    assert environment["CAREQA_INDEX__DRIVER"] == "opensearch"
    assert (
        environment["CAREQA_INDEX__OPENSEARCH__AUTH"],
        environment["CAREQA_INDEX__OPENSEARCH__REGION"],
        environment["CAREQA_INDEX__OPENSEARCH__INDEX_PREFIX"],
    ) == ("sigv4", "us-east-1", "careqa-")
    endpoint = json.dumps(environment["CAREQA_INDEX__OPENSEARCH__ENDPOINT"])
    assert endpoint.startswith('{"Fn::Join": ["", ["https://"') and "DomainEndpoint" in endpoint


def test_only_the_load_balancer_reaches_the_tasks(synth: Synth) -> None:
    ingress = synth.resources("service", "AWS::EC2::SecurityGroupIngress")
    to_tasks = [r["Properties"] for r in ingress.values() if "ServiceSg" in json.dumps(r["Properties"]["GroupId"])]
    assert len(to_tasks) == 1
    assert "AlbSg" in json.dumps(to_tasks[0]["SourceSecurityGroupId"]) and to_tasks[0]["FromPort"] == 8000
    groups = synth.resources("service", "AWS::EC2::SecurityGroup")
    service_sg = next(g for k, g in groups.items() if k.startswith("ServiceSg"))
    assert "SecurityGroupIngress" not in service_sg["Properties"]


def test_service_log_group_is_encrypted(synth: Synth) -> None:
    synth.templates["service"].has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value()})


def test_service_scales_on_cpu_and_request_count(synth: Synth) -> None:
    policies = synth.resources("service", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for p in policies
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_task_role_invokes_only_its_two_endpoints(synth: Synth) -> None:
    invoke = next(s for s in _task_role_statements(synth) if s.get("Sid") == "InvokeModels")
    assert sorted(invoke["Action"]) == ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
    resources = json.dumps(invoke["Resource"])
    assert "endpoint/careqa-embedding" in resources and "endpoint/careqa-llm" in resources
    assert len(invoke["Resource"]) == 2


def test_task_role_reaches_only_the_careqa_index_paths_of_its_domain(synth: Synth) -> None:
    search = next(s for s in _task_role_statements(synth) if s.get("Sid") == "SearchIndices")
    assert sorted(search["Action"]) == ["es:ESHttpGet", "es:ESHttpPost"]
    assert json.dumps(search["Resource"]).endswith(':domain/careqa-kb/careqa-*"]]}')


def test_task_role_writes_feedback_and_reads_live_model_records_only(synth: Synth) -> None:
    statements = {s.get("Sid"): s for s in _task_role_statements(synth)}
    assert sorted(statements["Feedback"]["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert "Feedback" in json.dumps(statements["Feedback"]["Resource"])
    assert statements["LiveModelRecords"]["Action"] == "ssm:GetParameter"
    assert ":parameter/careqa/*" in json.dumps(statements["LiveModelRecords"]["Resource"])
    s3_actions = {(sid, json.dumps(s["Action"])) for sid, s in statements.items() if "s3:" in json.dumps(s["Action"])}
    assert s3_actions == {("ReadKnowledgeBase", '"s3:GetObject"'), ("ListKnowledgeBase", '"s3:ListBucket"')}


def _tenant_objects(tenant: str) -> dict[str, Any]:
    """``<knowledge-base bucket ARN>/<tenant>/*``, the bucket's ARN imported from the data stack."""
    bucket_arn = Match.object_like({"Fn::ImportValue": Match.string_like_regexp("KnowledgeBase.*Arn")})
    return {"Fn::Join": ["", [bucket_arn, f"/{tenant}/*"]]}


def test_task_role_reads_knowledge_base_objects_only_under_its_tenants_prefixes(synth: Synth) -> None:
    synth.templates["service"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": Match.string_like_regexp("^TaskRole")}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Sid": "ReadKnowledgeBase",
                            "Effect": "Allow",
                            "Action": "s3:GetObject",
                            "Resource": [_tenant_objects("pharmacy"), _tenant_objects("clinic")],
                        },
                        {
                            "Sid": "ListKnowledgeBase",
                            "Effect": "Allow",
                            "Action": "s3:ListBucket",
                            "Resource": {"Fn::ImportValue": Match.string_like_regexp("KnowledgeBase.*Arn")},
                            "Condition": {"StringLike": {"s3:prefix": ["pharmacy/*", "clinic/*"]}},
                        },
                    ]
                )
            },
        },
    )


def test_task_role_decrypts_the_knowledge_base_key_only_through_s3(synth: Synth) -> None:
    synth.templates["service"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": Match.string_like_regexp("^TaskRole")}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Sid": "KnowledgeBaseKeyViaS3",
                            "Effect": "Allow",
                            "Action": "kms:Decrypt",
                            "Resource": {"Fn::ImportValue": Match.string_like_regexp("DataKey.*Arn")},
                            "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
                        }
                    ]
                )
            },
        },
    )
    # the bucket is encrypted with that key (the data stack's), so the grant is the one S3 needs to decrypt
    synth.templates["data"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": {"Fn::GetAtt": [Match.string_like_regexp("^DataKey"), "Arn"]},
                            }
                        }
                    )
                ]
            },
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
        },
    )


def test_task_role_can_write_or_delete_no_knowledge_base_object(synth: Synth) -> None:
    actions = json.dumps([s["Action"] for s in _task_role_statements(synth)])
    for verb in ("s3:Put", "s3:Delete", "s3:*", "s3:GetObjectVersion"):
        assert verb not in actions


def test_service_reads_source_documents_from_the_knowledge_base_bucket(synth: Synth) -> None:
    environment = _environment(synth)
    assert environment["CAREQA_SOURCES__DRIVER"] == "s3"
    assert environment["CAREQA_SOURCES__REGION"] == "us-east-1"
    bucket = environment["CAREQA_SOURCES__BUCKET"]
    assert list(bucket) == ["Fn::ImportValue"] and "RefKnowledgeBase" in bucket["Fn::ImportValue"]


# -- the load balancer's public keys ------------------------------------------------------------------------------


def _key_function(synth: Synth) -> dict[str, Any]:
    functions = synth.resources("service", "AWS::Lambda::Function")
    (function,) = [f for k, f in functions.items() if k.startswith("KeyFunction")]
    return dict(function["Properties"])


def test_the_key_lambda_runs_outside_the_vpc_and_fetches_only_from_the_regions_key_endpoint(synth: Synth) -> None:
    function = _key_function(synth)
    assert "VpcConfig" not in function
    assert function["Environment"]["Variables"] == {
        "CAREQA_ALB_PUBLIC_KEY_URL": "https://public-keys.auth.elb.us-east-1.amazonaws.com/{kid}"
    }
    assert function["ImageConfig"]["Command"] == ["alb_key_handler.handler"]
    assert function["PackageType"] == "Image" and function["Timeout"] == 10
    assert "KeyFunctionLogs" in json.dumps(function["LoggingConfig"])


def test_the_key_lambda_reuses_the_ingestion_image(synth: Synth) -> None:
    def images(stack: str) -> set[tuple[str, str]]:
        return {
            (image["source"]["directory"], image["source"]["dockerFile"])
            for image in synth.assets(stack)["dockerImages"].values()
        }

    ingestion = images("ingestion")
    assert ingestion == {(next(iter(ingestion))[0], "lambdas/Dockerfile")}
    assert ingestion <= images("service")  # same staged context and Dockerfile: the same image, built once
    (image,) = [i for i in synth.assets("ingestion")["dockerImages"].values()]
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "lambdas" / "alb_key_handler.py").is_file()
    assert "alb_key_handler.py" in (staged / "lambdas" / "Dockerfile").read_text()


def test_the_key_lambdas_role_may_only_write_its_own_logs(synth: Synth) -> None:
    role_policies = [
        p for k, p in synth.resources("service", "AWS::IAM::Policy").items() if k.startswith("KeyFunctionRole")
    ]
    statements = [s for p in role_policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert {a for s in statements for a in _as_list(s["Action"])} == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert all("KeyFunctionLogs" in json.dumps(s["Resource"]) for s in statements)
    (role,) = [r for k, r in synth.resources("service", "AWS::IAM::Role").items() if k.startswith("KeyFunctionRole")]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_the_tasks_may_invoke_the_key_lambda_and_are_told_its_name(synth: Synth) -> None:
    invoke = [s for s in _task_role_statements(synth) if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert len(invoke) == 1 and _as_list(invoke[0]["Action"]) == ["lambda:InvokeFunction"]
    assert all("KeyFunction" in json.dumps(r) for r in invoke[0]["Resource"])
    environment = _environment(synth)
    assert "KeyFunction" in json.dumps(environment["CAREQA_AUTH__ALB_OIDC__KEY_FUNCTION"])


def test_the_tasks_gain_no_internet_route_for_the_keys(synth: Synth) -> None:
    # The keys come through the Lambda interface endpoint in the app subnets, not through NAT.
    endpoints = synth.resources("network", "AWS::EC2::VPCEndpoint").values()
    (lambda_endpoint,) = [e for e in endpoints if str(e["Properties"]["ServiceName"]).endswith(".lambda")]
    assert lambda_endpoint["Properties"]["PrivateDnsEnabled"] is True
    assert "appSubnet" in json.dumps(lambda_endpoint["Properties"]["SubnetIds"])
    (service,) = synth.resources("service", "AWS::ECS::Service").values()
    assert "appSubnet" in json.dumps(service["Properties"]["NetworkConfiguration"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
