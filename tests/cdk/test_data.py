"""The data stack: one rotated key, locked-down buckets, PITR table, an encrypted OpenSearch domain."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from careqa.index.opensearch_mapping import index_name
from careqa_deploy.names import KMS_KEYS, OPENSEARCH_SERVICE_ROLE
from endpoints.config import load_model_config

from .conftest import Synth

TENANTS = ("pharmacy", "clinic")


def _buckets(synth: Synth) -> dict[str, dict[str, Any]]:
    return synth.resources("data", "AWS::S3::Bucket")


def _data_buckets(synth: Synth) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _buckets(synth).items() if not k.startswith("AccessLogs")}


def test_every_customer_managed_key_rotates_and_is_kept(synth: Synth) -> None:
    keys = synth.all_resources("AWS::KMS::Key")
    assert len(keys) == len(KMS_KEYS)  # the cost estimate counts the same keys
    for key in keys.values():
        assert key["Properties"]["EnableKeyRotation"] is True
        assert key["DeletionPolicy"] == "Retain"


def test_knowledge_base_and_export_buckets_are_versioned_kms_encrypted_private_and_logged(synth: Synth) -> None:
    buckets = _data_buckets(synth)
    assert any(k.startswith("KnowledgeBase") for k in buckets) and any(k.startswith("Exports") for k in buckets)
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert rule["SSEAlgorithm"] == "aws:kms" and "KMSMasterKeyID" in rule
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert "DestinationBucketName" in props["LoggingConfiguration"]
        assert bucket["DeletionPolicy"] == "Retain"


def test_every_bucket_refuses_plain_http_and_old_tls(synth: Synth) -> None:
    policies = synth.resources("data", "AWS::S3::BucketPolicy").values()
    assert len(policies) == len(_buckets(synth))
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in statements
        )
        assert any(
            s["Effect"] == "Deny" and "s3:TlsVersion" in s.get("Condition", {}).get("NumericLessThan", {})
            for s in statements
        )


def test_knowledge_base_bucket_sends_object_events_to_eventbridge(synth: Synth) -> None:
    synth.templates["data"].has_resource_properties(
        "AWS::S3::Bucket", {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}}
    )
    synth.templates["data"].resource_count_is("Custom::S3BucketNotifications", 0)


def test_each_tenant_has_its_own_knowledge_base_prefix(synth: Synth) -> None:
    outputs = synth.jsons["data"]["Outputs"]
    prefixes = {name: json.dumps(o["Value"]) for name, o in outputs.items() if name.startswith("KbPrefix")}
    assert set(prefixes) == {"KbPrefixPharmacy", "KbPrefixClinic"}
    assert "/pharmacy/" in prefixes["KbPrefixPharmacy"] and "/clinic/" in prefixes["KbPrefixClinic"]


def test_feedback_table_has_point_in_time_recovery_and_the_customer_key(synth: Synth) -> None:
    synth.templates["data"].has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": Match.object_like(
                {
                    "BillingMode": "PAY_PER_REQUEST",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": Match.object_like(
                        {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()}
                    ),
                }
            ),
            "DeletionPolicy": "Retain",
        },
    )


def _domain(synth: Synth) -> dict[str, Any]:
    (domain,) = synth.resources("data", "AWS::OpenSearchService::Domain").values()
    return dict(domain["Properties"])


def test_opensearch_encrypts_at_rest_and_between_nodes_and_enforces_https_tls12(synth: Synth) -> None:
    domain = _domain(synth)
    assert domain["EncryptionAtRestOptions"]["Enabled"] is True and "KmsKeyId" in domain["EncryptionAtRestOptions"]
    assert domain["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert domain["DomainEndpointOptions"]["TLSSecurityPolicy"].startswith("Policy-Min-TLS-1-2")
    assert "VPCOptions" in domain


def test_opensearch_uses_fine_grained_access_control_with_the_master_password_in_secrets_manager(synth: Synth) -> None:
    security = _domain(synth)["AdvancedSecurityOptions"]
    assert security["Enabled"] is True and security["InternalUserDatabaseEnabled"] is True
    password = json.dumps(security["MasterUserOptions"]["MasterUserPassword"])
    assert "resolve:secretsmanager" in password
    synth.templates["data"].has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Description": Match.string_like_regexp("OpenSearch fine-grained-access master user"),
            "KmsKeyId": Match.any_value(),
        },
    )


def test_opensearch_publishes_audit_slow_and_application_logs(synth: Synth) -> None:
    options = _domain(synth)["LogPublishingOptions"]
    assert set(options) == {"AUDIT_LOGS", "ES_APPLICATION_LOGS", "SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS"}
    assert all(o["Enabled"] is True for o in options.values())


def test_production_domain_is_zone_aware_with_dedicated_masters(production: Synth) -> None:
    cluster = _domain(production)["ClusterConfig"]
    assert cluster["ZoneAwarenessEnabled"] is True
    assert cluster["ZoneAwarenessConfig"] == {"AvailabilityZoneCount": 2}
    assert cluster["DedicatedMasterEnabled"] is True and cluster["DedicatedMasterCount"] == 3
    assert cluster["InstanceCount"] == 2


def test_cheap_domain_is_a_single_node(cheap: Synth) -> None:
    domain = _domain(cheap)
    assert domain["ClusterConfig"]["InstanceCount"] == 1
    assert domain["ClusterConfig"].get("ZoneAwarenessEnabled") is not True
    assert len(domain["VPCOptions"]["SubnetIds"]) == 1


def _tenant_indices(synth: Synth) -> dict[str, Any]:
    (resource,) = synth.resources("data", "Custom::CareQATenantIndices").values()
    return dict(resource["Properties"])


def test_two_tenants_get_two_knn_indices_built_from_the_embedding_config(synth: Synth) -> None:
    props = _tenant_indices(synth)
    indices = json.loads(props["Indices"])
    assert [(i["tenant"], i["name"]) for i in indices] == [(t, index_name(t)) for t in TENANTS]
    minilm = load_model_config("huggingface-textembedding-all-MiniLM-L6-v2")
    for index in indices:
        vector = index["body"]["mappings"]["properties"]["vector"]
        assert vector["type"] == "knn_vector" and vector["dimension"] == minilm.embedding_dimension
        assert vector["method"]["name"] == "hnsw"
        assert vector["method"]["space_type"] == "innerproduct"  # MiniLM's vectors are normalised
        assert index["body"]["mappings"]["properties"]["tenant"] == {"type": "keyword"}
        assert index["body"]["mappings"]["properties"]["text"]["type"] == "text"
    assert props["ServiceRole"] == OPENSEARCH_SERVICE_ROLE
    roles = json.dumps(props["BackendRoles"])
    assert "role/careqa-service-task" in roles and "role/careqa-ingest" in roles


def test_replicas_follow_the_node_count(cheap: Synth, production: Synth) -> None:
    def replicas(synth: Synth) -> set[int]:
        return {
            i["body"]["settings"]["index"]["number_of_replicas"] for i in json.loads(_tenant_indices(synth)["Indices"])
        }

    assert replicas(cheap) == {0} and replicas(production) == {1}


def test_index_setup_function_runs_in_the_vpc_and_reads_only_the_master_secret(synth: Synth) -> None:
    functions = synth.resources("data", "AWS::Lambda::Function")
    (setup,) = [f for k, f in functions.items() if k.startswith("IndexSetup")]
    assert "VpcConfig" in setup["Properties"]
    policies = [p for k, p in synth.resources("data", "AWS::IAM::Policy").items() if k.startswith("IndexSetup")]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert all("secretsmanager" in json.dumps(s["Action"]) or "kms" in json.dumps(s["Action"]) for s in statements)
