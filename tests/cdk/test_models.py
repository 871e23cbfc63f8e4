"""The models stack: JumpStart endpoints hosted as the profile says, and swaps kept across deploys."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Annotations, Match

from endpoints.config import load_model_config
from endpoints.sagemaker.builders import TAG_MODEL_CONFIG, container_definition

from .conftest import SWAPPED_LLM, Synth

MINILM = "huggingface-textembedding-all-MiniLM-L6-v2"
MISTRAL = "huggingface-llm-mistral-7b-instruct"


def _by_prefix(resources: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    (found,) = [r for k, r in resources.items() if k.startswith(prefix)]
    return dict(found["Properties"])


def _variant(synth: Synth, prefix: str) -> dict[str, Any]:
    return dict(
        _by_prefix(synth.resources("models", "AWS::SageMaker::EndpointConfig"), prefix)["ProductionVariants"][0]
    )


def test_models_are_built_from_the_pinned_config_with_the_swap_tools_container_builder(synth: Synth) -> None:
    models = synth.resources("models", "AWS::SageMaker::Model")
    embedding = _by_prefix(models, "EmbeddingModel")
    assert embedding["PrimaryContainer"] == container_definition(
        load_model_config(MINILM), "us-east-1", accept_eula=False
    )


def test_endpoints_have_fixed_names_and_say_which_model_they_serve(synth: Synth) -> None:
    endpoints = synth.resources("models", "AWS::SageMaker::Endpoint")
    by_name = {e["Properties"]["EndpointName"]: e for e in endpoints.values()}
    assert set(by_name) == {"careqa-embedding", "careqa-llm"}
    tags = {t["Key"]: t["Value"] for t in by_name["careqa-embedding"]["Properties"]["Tags"]}
    assert tags[TAG_MODEL_CONFIG] == MINILM


def test_cheap_profile_serves_embeddings_serverless(cheap: Synth) -> None:
    variant = _variant(cheap, "EmbeddingConfig")
    assert variant["ServerlessConfig"] == {"MaxConcurrency": 10, "MemorySizeInMB": 3072}
    assert "InstanceType" not in variant


def test_cheap_profile_scales_the_llm_to_zero_copies_and_zero_instances(cheap: Synth) -> None:
    variant = _variant(cheap, "LlmConfig")
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 1}
    component = _by_prefix(cheap.resources("models", "AWS::SageMaker::InferenceComponent"), "LlmComponent")
    assert component["Specification"]["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"] == 1
    template = cheap.templates["models"]
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"ScalableDimension": "sagemaker:inference-component:DesiredCopyCount", "MinCapacity": 0, "MaxCapacity": 1},
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"
                    }
                }
            ),
        },
    )
    # With no copy there is nothing to track: a request that finds none must bring the first one back.
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "NoCapacityInvocationFailures", "AlarmActions": [Match.any_value()]}
    )
    template.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {"PolicyType": "StepScaling"})


def test_production_profile_keeps_at_least_one_instance_behind_each_endpoint(production: Synth) -> None:
    for prefix in ("EmbeddingConfig", "LlmConfig"):
        variant = _variant(production, prefix)
        assert variant["InitialInstanceCount"] >= 1 and "ServerlessConfig" not in variant
        assert "ManagedInstanceScaling" not in variant
    targets = production.resources("models", "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert len(targets) == 2
    for target in targets:
        assert target["Properties"]["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
        assert target["Properties"]["MinCapacity"] >= 1
    production.templates["models"].resource_count_is("AWS::SageMaker::InferenceComponent", 0)
    policies = production.resources("models", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for p in policies
    }
    assert metrics == {"SageMakerVariantInvocationsPerInstance"}


def test_instance_backed_models_run_in_the_model_subnets_with_network_isolation(production: Synth) -> None:
    for model in production.resources("models", "AWS::SageMaker::Model").values():
        props = model["Properties"]
        assert len(props["VpcConfig"]["Subnets"]) == 2
        assert "modelsSubnet" in json.dumps(props["VpcConfig"]["Subnets"])
        assert props["EnableNetworkIsolation"] is True


def test_volume_key_is_set_where_sagemaker_accepts_one(production: Synth) -> None:
    configs = production.resources("models", "AWS::SageMaker::EndpointConfig")
    assert "KmsKeyId" in _by_prefix(configs, "EmbeddingConfig")  # ml.c6i: EBS volume
    assert "KmsKeyId" not in _by_prefix(configs, "LlmConfig")  # ml.g5: local NVMe, encrypted in hardware


def test_execution_role_can_pull_only_pinned_registries_and_jumpstart_buckets(synth: Synth) -> None:
    policy = _by_prefix(synth.resources("models", "AWS::IAM::Policy"), "ExecutionRole")
    statements = policy["PolicyDocument"]["Statement"]
    s3 = next(s for s in statements if "s3:GetObject" in s["Action"])
    assert all("jumpstart" in r for r in json.dumps(s3["Resource"]).split(",") if "s3:::" in r)
    ecr = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    # One registry account gives one resource, which the template writes as a value rather than a list.
    resources = ecr["Resource"] if isinstance(ecr["Resource"], list) else [ecr["Resource"]]
    assert all(":repository/*" in json.dumps(r) for r in resources)


def test_a_deploy_keeps_the_model_the_swap_tool_recorded_as_live(swapped: Synth) -> None:
    llm = _by_prefix(swapped.resources("models", "AWS::SageMaker::Model"), "LlmModel")
    falcon = load_model_config(SWAPPED_LLM)
    assert llm["PrimaryContainer"]["Environment"] == falcon.environment
    assert falcon.model_id in json.dumps(llm["PrimaryContainer"])
    endpoint = next(
        e
        for e in swapped.resources("models", "AWS::SageMaker::Endpoint").values()
        if e["Properties"]["EndpointName"] == "careqa-llm"
    )
    assert {t["Key"]: t["Value"] for t in endpoint["Properties"]["Tags"]}[TAG_MODEL_CONFIG] == SWAPPED_LLM
    warnings = Annotations.from_stack(swapped.stacks.models).find_warning(
        "*", Match.string_like_regexp(f"swap tool recorded {SWAPPED_LLM} as live")
    )
    assert warnings and MISTRAL in str(warnings[0].entry.data)
