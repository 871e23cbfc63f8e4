"""The ingestion stack: S3 events through EventBridge to an encrypted queue with a DLQ, to the Lambda."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from .conftest import Synth


def _queues(synth: Synth) -> dict[str, dict[str, Any]]:
    return synth.resources("ingestion", "AWS::SQS::Queue")


def test_queue_and_dead_letter_queue_are_kms_encrypted(synth: Synth) -> None:
    queues = _queues(synth)
    assert len(queues) == 2
    for queue in queues.values():
        assert "KmsMasterKeyId" in queue["Properties"]


def test_failed_messages_are_redriven_to_the_dead_letter_queue(synth: Synth) -> None:
    main = next(q for k, q in _queues(synth).items() if k.startswith("Events"))
    redrive = main["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 3
    assert "DeadLetters" in json.dumps(redrive["deadLetterTargetArn"])
    assert main["Properties"]["VisibilityTimeout"] == 6 * 300


def test_knowledge_base_object_events_are_routed_to_the_queue(synth: Synth) -> None:
    (rule,) = synth.resources("ingestion", "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and set(pattern["detail-type"]) == {"Object Created", "Object Deleted"}
    assert "KnowledgeBase" in json.dumps(pattern["detail"]["bucket"]["name"])
    assert "Events" in json.dumps(rule["Properties"]["Targets"][0]["Arn"])


def test_lambda_reports_partial_batch_failures(synth: Synth) -> None:
    synth.templates["ingestion"].has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BatchSize": 5,
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )


def test_lambda_is_a_container_image_in_the_vpc_with_an_encrypted_log_group(synth: Synth) -> None:
    functions = synth.resources("ingestion", "AWS::Lambda::Function")
    (function,) = [f for k, f in functions.items() if k.startswith("Ingest")]
    props = function["Properties"]
    assert props["PackageType"] == "Image" and "VpcConfig" in props
    env = props["Environment"]["Variables"]
    assert [t["id"] for t in json.loads(env["CAREQA_TENANTS"])] == ["pharmacy", "clinic"]
    assert json.loads(env["CAREQA_MODELS__EMBEDDING"])["endpoint_name"] == "careqa-embedding"
    # the index settings the OpenSearch driver reads (careqa.config.IndexConfig), as the service gets them
    assert env["CAREQA_INDEX__DRIVER"] == "opensearch"
    assert (
        env["CAREQA_INDEX__OPENSEARCH__AUTH"],
        env["CAREQA_INDEX__OPENSEARCH__REGION"],
        env["CAREQA_INDEX__OPENSEARCH__INDEX_PREFIX"],
    ) == ("sigv4", "us-east-1", "careqa-")
    assert "DomainEndpoint" in json.dumps(env["CAREQA_INDEX__OPENSEARCH__ENDPOINT"])
    synth.templates["ingestion"].has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value()})


def test_ingest_role_reads_only_tenant_prefixes_and_embeds_with_its_endpoint(synth: Synth) -> None:
    policies = [p for k, p in synth.resources("ingestion", "AWS::IAM::Policy").items() if k.startswith("Role")]
    statements = {s.get("Sid"): s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]}
    read = json.dumps(statements["ReadKnowledgeBase"]["Resource"])
    assert "/pharmacy/*" in read and "/clinic/*" in read
    assert statements["Embed"]["Action"] == "sagemaker:InvokeEndpoint"
    assert "endpoint/careqa-embedding" in json.dumps(statements["Embed"]["Resource"])
