"""``careqa models swap`` and ``list`` against moto: deploy, smoke-test, record, prune, or roll back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from careqa.cli_models import build_app
from endpoints.codecs import CODECS
from endpoints.config import ModelConfig, load_model_config
from endpoints.sagemaker.builders import (
    TAG_ENDPOINT,
    TAG_MODEL_CONFIG,
    container_definition,
    endpoint_config_request,
    model_request,
    resource_name,
)
from endpoints.sagemaker.errors import EndpointNotFoundError, RollbackFailed, SwapFailed, SwapRefused
from endpoints.sagemaker.execute import SwapResult, execute_swap
from endpoints.sagemaker.plan import SwapPlan, plan_swap
from endpoints.sagemaker.policy import DeploymentOptions
from endpoints.sagemaker.prune import careqa_endpoint_configs
from endpoints.sagemaker.record import ActiveModel, active_model, record_active_model
from endpoints.sagemaker.smoke import SMOKE_TEXT

from .conftest import REGION, SageMakerFake, UpdateOutcome

ROLE = "arn:aws:iam::123456789012:role/careqa-sagemaker-execution"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
CAPTURE = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 20,
    "DestinationS3Uri": "s3://careqa-capture/llm",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
}
LLM, EMBED = "careqa-llm", "careqa-embed"
MISTRAL = load_model_config("huggingface-llm-mistral-7b-instruct")
FALCON = load_model_config("huggingface-llm-falcon-7b-instruct-bf16")
LLAMA = load_model_config("meta-textgeneration-llama-3-8b-instruct")
FLAN = load_model_config("huggingface-text2text-flan-t5-xl")
MINILM = load_model_config("huggingface-textembedding-all-MiniLM-L6-v2")
BGE = load_model_config("huggingface-sentencesimilarity-bge-large-en-v1-5")
# A same-size successor of MiniLM on a TEI image: a swap the index survives, with a codec change.
MINILM_TEI = MINILM.model_copy(
    update={"name": "minilm-tei", "model_version": "2.0.0", "payload_format": "tei_embedding"}
)


class Clock:
    """A clock that moves one minute per reading, so each swap's resources get distinct names."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def good_answer(config: ModelConfig) -> bytes:
    codec = CODECS[config.payload_format]()
    if config.task == "embedding":
        return codec.encode_response([[0.01] * (config.embedding_dimension or 0)])  # type: ignore[arg-type]
    return codec.encode_response("OK")  # type: ignore[arg-type]


def deploy(
    fake: SageMakerFake, endpoint: str, config: ModelConfig, clock: Clock, *, record: bool = True, tag: bool = True
) -> str:
    """Create an endpoint from a model config as the CDK stack does (KMS, data capture), recorded as a swap would."""
    sm, ssm = fake.client("sagemaker"), fake.client("ssm")
    at = clock()
    name = resource_name(endpoint, at)
    sm.create_model(**model_request(name, endpoint, config, REGION, execution_role_arn=ROLE, accept_eula=True))
    sm.create_endpoint_config(
        **endpoint_config_request(
            name,
            endpoint,
            config,
            model_name=name,
            variant_name="AllTraffic",
            instance_type=config.default_instance_type or "",
            instance_count=1,
            kms_key_id=KMS_KEY,
            data_capture=CAPTURE,
            carried={"ContainerStartupHealthCheckTimeoutInSeconds": 900},
        )
    )
    tags = [{"Key": TAG_MODEL_CONFIG, "Value": config.name}] if tag else []
    arn = sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=name, Tags=tags)["EndpointArn"]
    if record:
        record_active_model(ActiveModel.from_config(endpoint, config, name, at), arn, sagemaker=sm, ssm=ssm)
    return name


def plan(fake: SageMakerFake, endpoint: str, target: ModelConfig, clock: Clock, **kwargs) -> SwapPlan:
    kwargs.setdefault("options", DeploymentOptions(alarms=("careqa-llm-5xx", "careqa-llm-latency")))
    return plan_swap(
        endpoint, target, sagemaker=fake.client("sagemaker"), ssm=fake.client("ssm"), region=REGION, now=clock, **kwargs
    )


def swap(
    fake: SageMakerFake, endpoint: str, target: ModelConfig, clock: Clock, sleeps: list[float] | None = None, **kwargs
) -> SwapResult:
    the_plan = plan(fake, endpoint, target, clock, **kwargs)
    sleep = (sleeps if sleeps is not None else []).append
    return execute_swap(
        the_plan,
        sagemaker=fake.client("sagemaker"),
        ssm=fake.client("ssm"),
        runtime=fake.client("sagemaker-runtime"),
        sleep=sleep,
        now=clock,
    )


def live_config(fake: SageMakerFake, endpoint: str) -> str:
    return fake.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]


def recorded(fake: SageMakerFake, endpoint: str) -> ActiveModel | None:
    return active_model(endpoint, fake.client("ssm"))


def endpoint_tags(fake: SageMakerFake, endpoint: str) -> dict[str, str]:
    sm = fake.client("sagemaker")
    arn = sm.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def names(fake: SageMakerFake) -> tuple[set[str], set[str]]:
    sm = fake.client("sagemaker")
    return (
        {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]},
        {m["ModelName"] for m in sm.list_models()["Models"]},
    )


# --- success ----------------------------------------------------------------------------------------


def test_a_swap_moves_the_endpoint_to_the_new_config_and_records_the_model(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(FALCON))
    result = swap(sagemaker_fake, LLM, FALCON, clock)
    assert live_config(sagemaker_fake, LLM) == result.endpoint_config_name != old
    record = recorded(sagemaker_fake, LLM)
    assert record is not None and record.config_name == FALCON.name and record.model_version == FALCON.model_version
    assert record.endpoint_config_name == result.endpoint_config_name
    assert record.recorded_at.startswith("2026-11-25T09:")
    assert endpoint_tags(sagemaker_fake, LLM)[TAG_MODEL_CONFIG] == FALCON.name


def test_the_new_model_uses_the_target_pins_and_keeps_role_kms_capture_and_variant(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(FLAN))
    result = swap(sagemaker_fake, LLM, FLAN, clock)
    sm = sagemaker_fake.client("sagemaker")
    config = sm.describe_endpoint_config(EndpointConfigName=result.endpoint_config_name)
    variant = config["ProductionVariants"][0]
    assert (variant["VariantName"], variant["InstanceType"], variant["ModelName"]) == (
        "AllTraffic",
        FLAN.default_instance_type,
        result.model_name,
    )
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 900
    assert config["KmsKeyId"] == KMS_KEY and config["DataCaptureConfig"] == CAPTURE
    model = sm.describe_model(ModelName=result.model_name)
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == FLAN.image_uris[REGION]
    # Flan-T5 2.x weights are an uncompressed prefix, like every TGI/LMI model's.
    assert model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": FLAN.model_data_uris[REGION],
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    assert "ModelDataUrl" not in model["PrimaryContainer"]
    assert model["PrimaryContainer"]["Environment"] == FLAN.environment


def test_a_tarball_artifact_is_passed_as_the_model_data_url():
    """JumpStart's 1.x Hugging Face models (MiniLM here) ship a prepacked .tar.gz, not a prefix."""
    container = container_definition(MINILM, REGION, accept_eula=False)
    assert container["ModelDataUrl"] == MINILM.model_data_uris[REGION]
    assert MINILM.model_data_uris[REGION].endswith(".tar.gz") and "ModelDataSource" not in container


def test_the_update_is_a_canary_blue_green_deployment_with_alarm_rollback(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(FALCON))
    options = DeploymentOptions(percent=20, bake_seconds=600, alarms=("careqa-llm-5xx",), wait_minutes=30)
    swap(sagemaker_fake, LLM, FALCON, clock, options=options)
    described = sagemaker_fake.client("sagemaker").describe_endpoint(EndpointName=LLM)["LastDeploymentConfig"]
    policy = described["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 600,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
    }
    assert policy["MaximumExecutionTimeoutInSeconds"] == 1800
    assert described["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "careqa-llm-5xx"}]}


def test_a_linear_deployment_steps_by_the_given_share(sagemaker_fake, clock):
    options = DeploymentOptions(traffic="linear", percent=25, bake_seconds=120, wait_minutes=30)
    routing = options.deployment_config()["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "LINEAR",
        "WaitIntervalInSeconds": 120,
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
    }
    assert "AutoRollbackConfiguration" not in options.deployment_config()


def test_a_gated_model_is_deployed_with_its_licence_accepted(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(LLAMA))
    result = swap(sagemaker_fake, LLM, LLAMA, clock, accept_eula=True)
    model = sagemaker_fake.client("sagemaker").describe_model(ModelName=result.model_name)
    source = model["PrimaryContainer"]["ModelDataSource"]
    assert source["S3DataSource"] == {
        "S3Uri": LLAMA.model_data_uris[REGION],
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
        "ModelAccessConfig": {"AcceptEula": True},
    }


def test_the_smoke_test_speaks_the_new_models_payload_format(sagemaker_fake, clock):
    deploy(sagemaker_fake, EMBED, MINILM, clock)
    sagemaker_fake.queue_results(good_answer(MINILM_TEI))
    result = swap(sagemaker_fake, EMBED, MINILM_TEI, clock)
    operation, endpoint, body = sagemaker_fake.invocations[-1]
    assert (operation, endpoint) == ("invoke", EMBED)
    assert json.loads(body) == {"inputs": [SMOKE_TEXT], "truncate": True}  # TEI's request, not text_inputs
    assert result.smoke_check == "embedded one text: 384 dimensions"


def test_the_wait_polls_with_the_injected_sleep(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("InService", polls=3))
    sagemaker_fake.queue_results(good_answer(FALCON))
    sleeps: list[float] = []
    swap(sagemaker_fake, LLM, FALCON, clock, sleeps)
    assert sleeps == [30.0, 30.0, 30.0]


# --- failure and rollback ---------------------------------------------------------------------------


def test_an_update_that_fails_rolls_back_and_keeps_the_record(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    before = recorded(sagemaker_fake, LLM)
    sagemaker_fake.next_update(LLM, UpdateOutcome("Failed", "ping health check failed"))
    with pytest.raises(SwapFailed, match="ended Failed on .*ping health check failed.*Rolled back to") as info:
        swap(sagemaker_fake, LLM, FALCON, clock)
    assert not isinstance(info.value, RollbackFailed)
    assert live_config(sagemaker_fake, LLM) == old
    assert [r["EndpointConfigName"] for r in sagemaker_fake.update_requests][-1] == old
    assert recorded(sagemaker_fake, LLM) == before
    assert names(sagemaker_fake) == ({old}, {old})  # the failed swap's config and model are gone


def test_a_malformed_smoke_response_rolls_back(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results("<html>502 Bad Gateway</html>", content_type="text/html")
    with pytest.raises(SwapFailed, match="smoke test through the tgi codec failed: malformed"):
        swap(sagemaker_fake, LLM, FALCON, clock)
    assert live_config(sagemaker_fake, LLM) == old
    assert len(sagemaker_fake.update_requests) == 2
    assert recorded(sagemaker_fake, LLM).config_name == MISTRAL.name  # type: ignore[union-attr]
    assert endpoint_tags(sagemaker_fake, LLM)[TAG_MODEL_CONFIG] == MISTRAL.name


def test_a_vector_of_the_wrong_size_rolls_back(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, EMBED, MINILM, clock)
    sagemaker_fake.queue_results(json.dumps([[0.1] * 383]))
    with pytest.raises(SwapFailed, match="should return 384-dimensional vectors, the endpoint returned 383"):
        swap(sagemaker_fake, EMBED, MINILM_TEI, clock)
    assert live_config(sagemaker_fake, EMBED) == old


def test_empty_generated_text_rolls_back(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(CODECS["tgi"]().encode_response("  "))  # type: ignore[arg-type]
    with pytest.raises(SwapFailed, match="generated empty text"):
        swap(sagemaker_fake, LLM, FALCON, clock)
    assert live_config(sagemaker_fake, LLM) == old


def test_an_alarm_rollback_by_sagemaker_needs_no_second_update(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("RolledBack", "alarm careqa-llm-5xx in ALARM"))
    with pytest.raises(SwapFailed, match="alarm careqa-llm-5xx in ALARM.*already rolled back"):
        swap(sagemaker_fake, LLM, FALCON, clock)
    assert live_config(sagemaker_fake, LLM) == old and len(sagemaker_fake.update_requests) == 1


def test_an_update_that_never_finishes_gives_up_after_a_bounded_wait(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("Updating"))
    sleeps: list[float] = []
    options = DeploymentOptions(bake_seconds=60, wait_minutes=10)
    with pytest.raises(RollbackFailed, match="rollback to .* could not start .*Cannot update in-progress"):
        swap(sagemaker_fake, LLM, FALCON, clock, sleeps, options=options)
    assert sleeps == [30.0] * 20  # 10 minutes of 30-second polls, none real


def test_a_failed_rollback_leaves_the_new_resources_for_a_person(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("Failed"))
    sagemaker_fake.next_update(LLM, UpdateOutcome("Failed", "old fleet failed too"))
    with pytest.raises(RollbackFailed, match="ended Failed.*old fleet failed too"):
        swap(sagemaker_fake, LLM, FALCON, clock)
    configs, _ = names(sagemaker_fake)
    assert len(configs) == 2 and old in configs


# --- refusals ---------------------------------------------------------------------------------------


def test_a_different_embedding_dimension_is_refused(sagemaker_fake, clock):
    deploy(sagemaker_fake, EMBED, MINILM, clock)
    before = names(sagemaker_fake)
    with pytest.raises(SwapRefused, match="1024-dimensional.*384-dimensional.*re-ingest the knowledge base"):
        plan(sagemaker_fake, EMBED, BGE, clock)
    assert names(sagemaker_fake) == before and sagemaker_fake.update_requests == []


def test_a_gated_model_is_refused_without_accepting_its_licence(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    with pytest.raises(SwapRefused, match="gated model.*--accept-eula"):
        plan(sagemaker_fake, LLM, LLAMA, clock)


def test_a_change_of_task_is_refused(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    with pytest.raises(SwapRefused, match="task is embedding, but the endpoint serves .*task text-generation"):
        plan(sagemaker_fake, LLM, MINILM, clock)


def test_an_unrecorded_embedding_endpoint_is_refused_until_it_is_tagged(sagemaker_fake, clock):
    deploy(sagemaker_fake, EMBED, MINILM, clock, record=False, tag=False)
    with pytest.raises(SwapRefused, match="nothing records which embedding model"):
        plan(sagemaker_fake, EMBED, MINILM_TEI, clock)
    sm = sagemaker_fake.client("sagemaker")
    sm.add_tags(
        ResourceArn=sm.describe_endpoint(EndpointName=EMBED)["EndpointArn"],
        Tags=[{"Key": TAG_MODEL_CONFIG, "Value": MINILM.name}],
    )
    the_plan = plan(sagemaker_fake, EMBED, MINILM_TEI, clock)
    assert the_plan.live.record is not None and the_plan.live.record.source == "tag"


def test_an_endpoint_that_is_not_in_service_is_refused(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("Updating"))
    sm = sagemaker_fake.client("sagemaker")
    sm.update_endpoint(EndpointName=LLM, EndpointConfigName=live_config(sagemaker_fake, LLM))
    with pytest.raises(SwapRefused, match="the endpoint is Updating"):
        plan(sagemaker_fake, LLM, FALCON, clock)


def test_a_missing_endpoint_is_named(sagemaker_fake, clock):
    with pytest.raises(EndpointNotFoundError, match="careqa-nope: no such SageMaker endpoint"):
        plan(sagemaker_fake, "careqa-nope", FALCON, clock)


def test_a_region_without_pins_is_refused(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    unpinned = FALCON.model_copy(update={"image_uris": {"eu-west-1": FALCON.image_uris["eu-west-1"]}})
    with pytest.raises(SwapRefused, match="no image_uris pin for region 'us-east-1'"):
        plan(sagemaker_fake, LLM, unpinned, clock)


def test_deployment_options_outside_sagemakers_limits_are_refused():
    with pytest.raises(SwapRefused, match="--canary-percent must be 1-50"):
        DeploymentOptions(percent=80)
    with pytest.raises(SwapRefused, match="needs at least 3120 s"):
        DeploymentOptions(traffic="linear", percent=10, bake_seconds=300, wait_minutes=30)


# --- dry run, pruning, listing ----------------------------------------------------------------------


def test_a_dry_run_prints_the_plan_and_changes_nothing(sagemaker_fake, clock):
    old = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    before = (names(sagemaker_fake), recorded(sagemaker_fake, LLM), endpoint_tags(sagemaker_fake, LLM))
    app = build_app(client=sagemaker_fake.client, sleep=lambda _s: pytest.fail("a dry run must not wait"))
    result = CliRunner().invoke(
        app,
        [
            "swap",
            LLM,
            FALCON.name,
            "--dry-run",
            "--region",
            REGION,
            "--alarm",
            "careqa-llm-5xx",
            "--canary-percent",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"live:        {MISTRAL.name} {MISTRAL.model_version}" in result.output and old in result.output
    assert f"new:         {FALCON.name} {FALCON.model_version}" in result.output
    assert "instance:    ml.g5.2xlarge x 1" in result.output
    assert "canary 20% of capacity" in result.output and "rollback on: careqa-llm-5xx" in result.output
    assert "dry run: nothing was changed" in result.output
    assert (names(sagemaker_fake), recorded(sagemaker_fake, LLM), endpoint_tags(sagemaker_fake, LLM)) == before
    assert live_config(sagemaker_fake, LLM) == old and sagemaker_fake.update_requests == []


def tool_configs(fake: SageMakerFake, endpoint: str) -> list[str]:
    return [n for n, _ in careqa_endpoint_configs(endpoint, fake.client("sagemaker"))]


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_pruning_keeps_n_configs_and_never_the_live_or_previous_one(sagemaker_fake, clock, keep):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(FALCON), good_answer(MISTRAL))
    results = [swap(sagemaker_fake, LLM, target, clock, keep=keep) for target in (FALCON, MISTRAL, FALCON, MISTRAL)]
    remaining = tool_configs(sagemaker_fake, LLM)
    live, previous = results[-1].endpoint_config_name, results[-1].previous_endpoint_config
    assert remaining[:2] == [live, previous]
    assert len(remaining) == max(keep, 2)
    configs, models = names(sagemaker_fake)
    assert models == configs == set(remaining)  # each pruned config's model went with it


def test_the_plan_lists_what_pruning_will_delete(sagemaker_fake, clock):
    first = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(FALCON))
    swap(sagemaker_fake, LLM, FALCON, clock, keep=5)
    assert plan(sagemaker_fake, LLM, MISTRAL, clock, keep=2).prune == (first,)


def test_pruning_never_touches_configs_the_tool_did_not_make(sagemaker_fake, clock):
    cdk_made = deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sm = sagemaker_fake.client("sagemaker")
    sm.delete_tags(
        ResourceArn=sm.describe_endpoint_config(EndpointConfigName=cdk_made)["EndpointConfigArn"],
        TagKeys=[TAG_ENDPOINT],
    )
    sagemaker_fake.queue_results(good_answer(FALCON), good_answer(MISTRAL))
    for target in (FALCON, MISTRAL, FALCON):
        swap(sagemaker_fake, LLM, target, clock, keep=1)
    assert cdk_made in names(sagemaker_fake)[0]


def test_active_model_is_none_before_any_record_and_names_the_config_after(sagemaker_fake, clock):
    deploy(sagemaker_fake, EMBED, MINILM, clock, record=False)
    assert active_model(EMBED, sagemaker_fake.client("ssm")) is None
    sagemaker_fake.queue_results(good_answer(MINILM))
    swap(sagemaker_fake, EMBED, MINILM, clock)
    active = active_model(EMBED, sagemaker_fake.client("ssm"))
    assert active is not None and active.config().payload_format == "text_inputs_embedding"
    assert active.embedding_dimension == 384


def test_models_list_prints_each_endpoint_with_its_active_model(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    deploy(sagemaker_fake, EMBED, MINILM, clock, record=False)
    llm_model = resource_name(LLM, clock.now - timedelta(minutes=1))
    sagemaker_fake.client("sagemaker").create_endpoint_config(
        EndpointConfigName="other",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": llm_model, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sagemaker_fake.client("sagemaker").create_endpoint(EndpointName="not-careqa", EndpointConfigName="other")
    result = CliRunner().invoke(build_app(client=sagemaker_fake.client), ["list", "--region", REGION])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 and "not-careqa" not in result.output
    assert lines[0].startswith(f"{EMBED}  InService") and "from tag only" in lines[0] and "384 dims" in lines[0]
    assert lines[1].startswith(f"{LLM}  InService") and f"{MISTRAL.name} {MISTRAL.model_version}" in lines[1]


# --- the command's exit codes -----------------------------------------------------------------------


def run_swap(fake: SageMakerFake, *args: str):
    app = build_app(client=fake.client, sleep=lambda _s: None)
    return CliRunner().invoke(app, ["swap", *args, "--region", REGION])


def test_the_command_exits_0_and_reports_the_new_model(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.queue_results(good_answer(FALCON))
    result = run_swap(sagemaker_fake, LLM, FALCON.name)
    assert result.exit_code == 0, result.output
    assert f"now serving {FALCON.name}" in result.output


def test_the_command_exits_2_on_a_refusal(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    result = run_swap(sagemaker_fake, LLM, LLAMA.name)
    assert result.exit_code == 2 and "--accept-eula" in result.output


def test_the_command_exits_1_when_the_swap_rolled_back(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("Failed"))
    result = run_swap(sagemaker_fake, LLM, FALCON.name)
    assert result.exit_code == 1 and "Rolled back to" in result.output


def test_the_command_exits_3_when_the_rollback_failed(sagemaker_fake, clock):
    deploy(sagemaker_fake, LLM, MISTRAL, clock)
    sagemaker_fake.next_update(LLM, UpdateOutcome("Updating"))
    result = run_swap(sagemaker_fake, LLM, FALCON.name, "--wait-minutes", "10")
    assert result.exit_code == 3 and "could not start" in result.output
