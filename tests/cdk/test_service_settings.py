"""The container the service stack starts is configured for the app it runs.

The task definition's environment, as synthesized, is loaded into ``careqa.config.Settings`` the way the
container loads it (the Dockerfile's config file underneath, the secret stubbed, CloudFormation references
replaced by plausible values): every ``CAREQA_*`` name must be a Settings field (pydantic-settings would
silently ignore a misspelt one) and the whole must validate. The ingestion Lambda's variables get the same
check against the Lambda's ``IngestSettings``.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from careqa.alb_keys import LambdaKeyFetcher
from careqa.auth import AlbOidcAuthenticator, authenticator_for, key_fetcher_for
from careqa.config import Settings, load_settings
from careqa.feedback import DynamoDBFeedbackStore, open_feedback_store
from careqa.sources import S3SourceStore, open_source_store

from .conftest import REPO, Synth

ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/careqa-alb/0123456789abcdef"
DOMAIN_HOST = "vpc-careqa-kb-abc123.us-east-1.es.amazonaws.com"
TABLE = "Careqa-Data-Feedback0123"
KB_BUCKET = "careqa-data-knowledgebaseb1c941bd-0123abcd"
#: what each CloudFormation reference in the environment stands for, by a word in the referenced name
KEY_FUNCTION = "Careqa-Service-KeyFunction0123"
STUBS = {
    "Alb": ALB_ARN,
    "Feedback": TABLE,
    "Domain": DOMAIN_HOST,
    "KeyFunction": KEY_FUNCTION,
    "KnowledgeBase": KB_BUCKET,
}


def resolve(value: Any) -> str:
    """A template value with its intrinsics (Ref, GetAtt, ImportValue, Join) replaced by stub values."""
    if isinstance(value, str):
        return value
    (function, argument), *_ = value.items()
    if function == "Fn::Join":
        separator, parts = argument
        return str(separator).join(resolve(p) for p in parts)
    name = argument[0] if isinstance(argument, list) else argument  # GetAtt: [logical id, attribute]
    for word, stub in STUBS.items():
        if word in str(name):
            return stub
    raise AssertionError(f"no stub for {function} {argument!r}: add one to STUBS")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def is_settings_field(model: type[BaseModel], variable: str) -> bool:
    """Whether ``CAREQA_A__B__C`` names the field ``a.b.c`` of ``model``."""
    parts = variable.removeprefix("CAREQA_").lower().split("__")
    current: type[BaseModel] | None = model
    for part in parts:
        if current is None or part not in current.model_fields:
            return False
        current = _model_of(current.model_fields[part].annotation)
    return True


def container_environment(synth: Synth) -> dict[str, str]:
    (task,) = synth.resources("service", "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return {e["Name"]: resolve(e["Value"]) for e in container["Environment"]}


def lambda_environment(synth: Synth) -> dict[str, str]:
    functions = synth.resources("ingestion", "AWS::Lambda::Function")
    (function,) = [f for k, f in functions.items() if k.startswith("Ingest")]
    return {k: resolve(v) for k, v in function["Properties"]["Environment"]["Variables"].items()}


@pytest.fixture()
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("CAREQA_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_service_variable_names_a_settings_field(synth: Synth) -> None:
    environment = container_environment(synth)
    careqa = [name for name in environment if name.startswith("CAREQA_")]
    assert careqa, "the container has no CAREQA_ settings"
    assert [name for name in careqa if not is_settings_field(Settings, name)] == []
    assert is_settings_field(Settings, "CAREQA_INDEX__OPENSEARCH__ENDPOINT")
    assert not is_settings_field(Settings, "CAREQA_INDEX__OPENSEARCH__ENDPIONT")


def test_the_service_environment_loads_into_valid_settings_for_aws(synth: Synth, clean_environment) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    config_file = re.search(r"CAREQA_CONFIG_FILE=/app/(\S+)", dockerfile)
    assert config_file, "the Dockerfile names the config file the container reads"
    for name, value in container_environment(synth).items():
        clean_environment.setenv(name, value)
    clean_environment.setenv("CAREQA_LINK_SECRET", "stub-from-secrets-manager")

    settings = load_settings(REPO / config_file.group(1))

    assert [t.id for t in settings.tenants] == ["pharmacy", "clinic"]
    assert settings.identities == []  # no bearer tokens, and so no published demo token, on AWS
    assert settings.auth.mode == "alb-oidc" and settings.auth.alb_oidc is not None
    assert settings.auth.alb_oidc.load_balancer_arn == ALB_ARN
    assert settings.auth.alb_oidc.key_function == KEY_FUNCTION
    assert settings.auth.alb_oidc.key_url_template == "https://public-keys.auth.elb.us-east-1.amazonaws.com/{kid}"
    assert {(i.claim, i.value, i.tenant) for i in settings.auth.alb_oidc.identities} == {
        ("group", "northwind-care-agents", "pharmacy"),
        ("sub", "00u1northwindsupervisor", "pharmacy"),
        ("group", "lakeside-front-desk", "clinic"),
    }
    assert isinstance(authenticator_for(settings), AlbOidcAuthenticator)
    assert isinstance(key_fetcher_for(settings.auth.alb_oidc), LambdaKeyFetcher)
    assert (settings.feedback.driver, settings.feedback.table, settings.feedback.region) == (
        "dynamodb",
        TABLE,
        "us-east-1",
    )
    assert isinstance(open_feedback_store(settings), DynamoDBFeedbackStore)
    assert (settings.sources.driver, settings.sources.bucket, settings.sources.region) == ("s3", KB_BUCKET, "us-east-1")
    sources = open_source_store(settings)
    assert isinstance(sources, S3SourceStore)
    assert (sources.bucket, sources.tenants) == (KB_BUCKET, frozenset({"pharmacy", "clinic"}))
    opensearch = settings.index.opensearch
    assert settings.index.driver == "opensearch" and opensearch is not None
    assert (opensearch.endpoint, opensearch.auth, opensearch.region, opensearch.index_prefix) == (
        f"https://{DOMAIN_HOST}",
        "sigv4",
        "us-east-1",
        "careqa-",
    )
    models = settings.models
    assert (models.embedding.transport, models.embedding.endpoint_name) == ("sagemaker", "careqa-embedding")
    assert (models.llm.transport, models.llm.endpoint_name) == ("sagemaker", "careqa-llm")
    # cheap: the LLM is an inference component (scale to zero), invoked by name; production: the endpoint itself
    expected = "careqa-llm-component" if synth.stacks.config.profile == "cheap" else None
    assert models.llm.inference_component == expected


def test_the_ingestion_lambda_environment_loads_into_its_settings(synth: Synth, clean_environment) -> None:
    from lambdas.ingest_handler import IngestSettings

    environment = lambda_environment(synth)
    careqa = [name for name in environment if name.startswith("CAREQA_")]
    assert [name for name in careqa if not is_settings_field(IngestSettings, name)] == []
    assert [name for name in careqa if not is_settings_field(Settings, name)] == []  # the service's names too
    for name, value in environment.items():
        clean_environment.setenv(name, value)

    settings = IngestSettings()  # type: ignore[call-arg]

    assert [t.id for t in settings.tenants] == ["pharmacy", "clinic"]
    assert settings.models.embedding.endpoint_name == "careqa-embedding"
    assert settings.index.driver == "opensearch" and settings.index.opensearch is not None
    assert settings.index.opensearch.endpoint == f"https://{DOMAIN_HOST}"
    assert settings.index.opensearch.auth == "sigv4"
