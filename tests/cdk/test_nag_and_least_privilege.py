"""cdk-nag's AWS Solutions and HIPAA packs pass with written suppressions; no data-plane action on "*"."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match
from careqa_cdk.nag import MIN_REASON_CHARS, suppress

from .conftest import Synth

STACKS = ("network", "data", "models", "service", "ingestion", "monitoring")
#: actions that touch tenants' data or models: never on every resource
DATA_PLANE = re.compile(
    r"^(sagemaker:InvokeEndpoint.*|dynamodb:.*|es:ESHttp.*|s3:(Get|Put|Delete)Object.*|s3:ListBucket|"
    r"sqs:(ReceiveMessage|SendMessage|DeleteMessage)|secretsmanager:GetSecretValue|ssm:GetParameters?|"
    r"kms:(Decrypt|Encrypt|GenerateDataKey.*|ReEncrypt.*))$"
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(synth: Synth) -> list[dict[str, Any]]:
    statements = []
    for stack in STACKS:
        for policy in synth.resources(stack, "AWS::IAM::Policy").values():
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        for role in synth.resources(stack, "AWS::IAM::Role").values():
            for inline in role["Properties"].get("Policies", []):
                statements.extend(inline["PolicyDocument"]["Statement"])
    return statements


@pytest.mark.parametrize("stack", STACKS)
def test_no_unsuppressed_cdk_nag_errors(synth: Synth, stack: str) -> None:
    errors = Annotations.from_stack(getattr(synth.stacks, stack)).find_error("*", Match.string_like_regexp(".*"))
    assert [f"{e.id}: {str(e.entry.data)[:160]}" for e in errors] == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_cdk_nag_rule_failed_to_evaluate(synth: Synth, stack: str) -> None:
    warnings = Annotations.from_stack(getattr(synth.stacks, stack)).find_warning(
        "*", Match.string_like_regexp("CdkNagValidationFailure")
    )
    assert [str(w.entry.data)[:160] for w in warnings] == []


def test_every_suppression_in_every_template_carries_a_written_reason(synth: Synth) -> None:
    count = 0
    for stack in STACKS:
        for logical_id, resource in synth.jsons[stack]["Resources"].items():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                count += 1
                assert len(rule["reason"].strip()) >= MIN_REASON_CHARS, (stack, logical_id, rule)
    assert count > 0


def test_a_suppression_without_a_real_reason_is_refused() -> None:
    from aws_cdk import App, Stack

    with pytest.raises(ValueError, match="reason of at least"):
        suppress(Stack(App(), "S"), {"AwsSolutions-IAM5": "needed"})


def test_no_data_plane_action_is_granted_on_every_resource(synth: Synth) -> None:
    offending = []
    for statement in _statements(synth):
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in _as_list(statement.get("Action", [])) if DATA_PLANE.match(a)]
        if actions and "*" in _as_list(statement.get("Resource")):
            offending.append(statement)
    assert offending == []


def test_no_wildcard_service_actions(synth: Synth) -> None:
    actions = [a for s in _statements(synth) for a in _as_list(s.get("Action", []))]
    assert not [a for a in actions if a in {"*", "s3:*", "dynamodb:*", "es:*", "sagemaker:*", "kms:*"}]


def test_least_privilege_check_would_catch_a_wildcard_grant() -> None:
    fake = Synth(
        stacks=None,
        templates={},
        outdir=None,  # type: ignore[arg-type]
        jsons={s: {"Resources": {}} for s in STACKS},
    )
    fake.jsons["service"]["Resources"]["P"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Query", "Resource": "*"}]}
        },
    }
    with pytest.raises(AssertionError):
        test_no_data_plane_action_is_granted_on_every_resource(fake)


def test_templates_hold_no_plaintext_secret(synth: Synth) -> None:
    for stack in STACKS:
        text = json.dumps(synth.jsons[stack])
        assert 'ClientSecret": "{{resolve:secretsmanager:' in text or "ClientSecret" not in text


def test_the_nag_packs_report_an_unencrypted_bucket_as_an_error() -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3
    from careqa_cdk.nag import add_nag_packs

    app = App()
    stack = Stack(app, "Probe")
    s3.Bucket(stack, "Plain")
    add_nag_packs(app, reports=False)
    app.synth()
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(".*"))
    assert any("S3" in str(e.entry.data) for e in errors)
