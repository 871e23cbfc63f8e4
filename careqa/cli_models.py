"""``careqa models``: list the models live on CareQA's SageMaker endpoints, swap one safely, and check
the model configs' pins against JumpStart.

The commands are thin: they build boto3 clients, call the SageMaker control plane (``endpoints/sagemaker/``)
or ``careqa.jumpstart_pins`` and turn its errors into exit codes. ``swap``: 0 done, 1 swap failed and rolled
back, 2 refused before any change, 3 rollback failed: the endpoint needs a person. ``verify``: 0 every pin
matches JumpStart, 1 drift, 2 a lookup failed. ``refresh``: 0 written (or nothing to write), 2 a lookup or
edit failed. ``build_app`` takes the client factory, the sleep function and the SDK loader, so tests run
the real commands against moto and recorded JumpStart specs without waiting or a network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from careqa.errors import CareQAError

ClientFactory = Callable[[str, str], Any]

EXIT_FAILED, EXIT_REFUSED, EXIT_ROLLBACK_FAILED = 1, 2, 3
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region (default: your AWS configuration's)")]
EndpointArg = Annotated[str, typer.Argument(help="the SageMaker endpoint to change")]
ConfigArg = Annotated[str, typer.Argument(help="target model config: a jumpstart_configs/ name or a YAML path")]
KeepOpt = Annotated[int, typer.Option("--keep", help="tool-made EndpointConfigs to keep (never the live or previous)")]
PercentOpt = Annotated[int, typer.Option("--canary-percent", help="capacity share of the canary (or of a linear step)")]
BakeOpt = Annotated[int, typer.Option("--bake-seconds", help="how long each traffic step is watched")]
WaitOpt = Annotated[int, typer.Option("--wait-minutes", help="give up (and roll back) after this long")]
AlarmOpt = Annotated[list[str] | None, typer.Option("--alarm", help="CloudWatch alarm that rolls back (repeatable)")]
InstanceTypeOpt = Annotated[str | None, typer.Option("--instance-type", help="override the config's instance type")]
InstanceCountOpt = Annotated[int | None, typer.Option("--instance-count", help="override the instance count")]
ConfigsArg = Annotated[
    list[str] | None, typer.Argument(help="model configs (jumpstart_configs/ names or YAML paths); default: all")
]
PinRegionsOpt = Annotated[
    list[str] | None, typer.Option("--region", help="region to resolve (repeatable; default: the regions pinned)")
]
ConfigsDirOpt = Annotated[Path | None, typer.Option("--configs-dir", help="folder of model configs")]
SettingsOpt = Annotated[
    Path | None,
    typer.Option("--config", help="the CareQA config of the service the endpoint serves (its index is checked)"),
]


class Traffic(StrEnum):
    canary = "canary"
    linear = "linear"
    all_at_once = "all-at-once"


TrafficOpt = Annotated[Traffic, typer.Option("--traffic", help="how traffic moves to the new fleet")]


def boto3_client(service: str, region: str) -> Any:
    """A boto3 client; boto3 is imported here so ``careqa --help`` does not pay for it."""
    import boto3

    return boto3.client(service, region_name=region)


def configured_region() -> str | None:
    """The region from the AWS environment variables or config file, as boto3 resolves it."""
    import boto3

    return boto3.session.Session().region_name


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def jumpstart_sdk() -> Any:
    """The SageMaker SDK's JumpStart lookups (imported here: the SDK is slow to import and not needed elsewhere)."""
    from careqa.jumpstart_pins import load_sdk

    return load_sdk()


def build_app(
    client: ClientFactory = boto3_client,
    sleep: Callable[[float], None] = time.sleep,
    default_region: Callable[[], str | None] = configured_region,
    sdk: Callable[[], Any] = jumpstart_sdk,
    today: Callable[[], Any] = lambda: datetime.now(UTC).date(),
) -> typer.Typer:
    """The ``models`` command group, over the given AWS client factory, sleep function and JumpStart SDK."""
    app = typer.Typer(
        help="Models on SageMaker endpoints: see what is live, swap with canary and rollback.", no_args_is_help=True
    )

    def region_of(region: str | None) -> str:
        resolved = region or default_region()
        if not resolved:
            raise _fail("no AWS region: pass --region or set AWS_DEFAULT_REGION", EXIT_REFUSED)
        return resolved

    @app.command("list")
    def list_models(region: RegionOpt = None) -> None:
        """Print each CareQA endpoint with the model recorded as live on it."""
        from botocore.exceptions import BotoCoreError, ClientError

        from endpoints.sagemaker.errors import ModelAdminError
        from endpoints.sagemaker.listing import list_careqa_endpoints

        region = region_of(region)
        try:
            endpoints = list_careqa_endpoints(sagemaker=client("sagemaker", region), ssm=client("ssm", region))
        except (ClientError, BotoCoreError, ModelAdminError) as exc:
            raise _fail(str(exc), EXIT_FAILED) from None
        if not endpoints:
            typer.echo(f"no CareQA endpoints in {region}")
            return
        for e in endpoints:
            a = e.active
            model = (
                (
                    f"{a.config_name} {a.model_version} ({a.task}"
                    f"{f', {a.embedding_dimension} dims' if a.embedding_dimension else ''}; "
                    f"{'since ' + a.recorded_at if a.source == 'ssm' else 'from tag only'})"
                )
                if a
                else "no record"
            )
            typer.echo(f"{e.endpoint_name}  {e.status}  {e.endpoint_config_name or '-'}  {model}")

    @app.command("swap")
    def swap(
        endpoint: EndpointArg,
        config: ConfigArg,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; change nothing")] = False,
        keep: KeepOpt = 2,
        region: RegionOpt = None,
        canary_percent: PercentOpt = 10,
        traffic: TrafficOpt = Traffic.canary,
        bake_seconds: BakeOpt = 300,
        wait_minutes: WaitOpt = 60,
        alarm: AlarmOpt = None,
        accept_eula: Annotated[bool, typer.Option("--accept-eula", help="accept a gated model's licence")] = False,
        instance_type: InstanceTypeOpt = None,
        instance_count: InstanceCountOpt = None,
        settings_file: SettingsOpt = None,
    ) -> None:
        """Move ENDPOINT to the model in CONFIG: blue/green update, smoke test, record; roll back on failure.

        An embedding swap to another model needs --config (the CareQA config of the service this endpoint
        serves): the swap is refused until that index holds a complete copy of the new model's vectors for
        every tenant (careqa ingest --reembed).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from endpoints.config import load_model_config
        from endpoints.errors import ModelConfigError
        from endpoints.sagemaker.errors import ModelAdminError, RollbackFailed, SwapFailed
        from endpoints.sagemaker.execute import execute_swap
        from endpoints.sagemaker.plan import plan_swap
        from endpoints.sagemaker.policy import DeploymentOptions

        region = region_of(region)
        try:
            target = load_model_config(config)
            options = DeploymentOptions(
                traffic=traffic.value,
                percent=canary_percent,  # type: ignore[arg-type]
                bake_seconds=bake_seconds,
                alarms=tuple(alarm or ()),
                wait_minutes=wait_minutes,
            )
            sagemaker, ssm = client("sagemaker", region), client("ssm", region)
            plan = plan_swap(
                endpoint,
                target,
                sagemaker=sagemaker,
                ssm=ssm,
                region=region,
                options=options,
                keep=keep,
                accept_eula=accept_eula,
                instance_type=instance_type,
                instance_count=instance_count,
                index_check=index_check(settings_file) if settings_file is not None else None,
            )
        except (ModelConfigError, ModelAdminError) as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
        except (ClientError, BotoCoreError) as exc:  # nothing was changed yet, so this too is a refusal
            raise _fail(f"{endpoint}: {exc}", EXIT_REFUSED) from None
        except CareQAError as exc:  # the service config or its index could not be read
            raise _fail(f"--config: {exc.message}", EXIT_REFUSED) from None
        typer.echo(plan.summary())
        if dry_run:
            typer.echo("dry run: nothing was changed")
            return
        try:
            result = execute_swap(
                plan,
                sagemaker=sagemaker,
                ssm=ssm,
                runtime=client("sagemaker-runtime", region),
                sleep=sleep,
                report=lambda line: typer.echo(line, err=True),
            )
        except RollbackFailed as exc:
            raise _fail(str(exc), EXIT_ROLLBACK_FAILED) from None
        except SwapFailed as exc:
            raise _fail(str(exc), EXIT_FAILED) from None
        except (ClientError, BotoCoreError) as exc:
            raise _fail(f"{endpoint}: {exc}", EXIT_FAILED) from None
        typer.echo(
            f"{endpoint}: now serving {target.name} {target.model_version} on {result.endpoint_config_name} "
            f"({result.smoke_check})"
        )
        if result.pruned:
            typer.echo(f"pruned: {', '.join(result.pruned)}")
        for warning in result.warnings:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)

    def pinned_configs(configs: list[str] | None, configs_dir: Path | None) -> tuple[Any, list[Any]]:
        from careqa.jumpstart_pins import SDK_MISSING, PinError, deployable_configs
        from endpoints.errors import ModelConfigError

        try:
            chosen = deployable_configs(configs or [], configs_dir)
        except (ModelConfigError, PinError) as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
        try:
            return sdk(), chosen
        except ImportError:
            raise _fail(SDK_MISSING, EXIT_REFUSED) from None

    @app.command("verify")
    def verify(configs: ConfigsArg = None, region: PinRegionsOpt = None, configs_dir: ConfigsDirOpt = None) -> None:
        """Compare each config's pins with JumpStart's spec (needs AWS credentials); exit 1 on any drift."""
        from careqa.jumpstart_pins import verify_configs

        loaded, chosen = pinned_configs(configs, configs_dir)
        outcome = verify_configs(loaded, chosen, region or ())
        for _path, config in chosen:
            name = config.name
            if name in outcome.errors:
                typer.secho(f"{name}: error: {outcome.errors[name]}", fg=typer.colors.RED, err=True)
            elif outcome.drifts[name]:
                typer.echo(f"{name} {config.model_version}: {len(outcome.drifts[name])} pinned field(s) differ")
                for drift in outcome.drifts[name]:
                    typer.echo(f"  {drift}")
            else:
                typer.echo(f"{name} {config.model_version}: pins match JumpStart")
        if outcome.errors:
            raise typer.Exit(EXIT_REFUSED)
        if not outcome.ok:
            raise typer.Exit(EXIT_FAILED)

    @app.command("refresh")
    def refresh(
        configs: ConfigsArg = None,
        region: PinRegionsOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print a diff per file; write nothing")] = False,
        configs_dir: ConfigsDirOpt = None,
    ) -> None:
        """Write JumpStart's image, artifact, environment and instance type into each config (needs AWS
        credentials), and mark those pins verified today."""
        from careqa.jumpstart_pins import refresh_configs

        loaded, chosen = pinned_configs(configs, configs_dir)
        outcome = refresh_configs(loaded, chosen, region or (), today=today(), dry_run=dry_run)
        for _path, config in chosen:
            name = config.name
            if name in outcome.errors:
                typer.secho(f"{name}: error: {outcome.errors[name]}", fg=typer.colors.RED, err=True)
            elif name not in outcome.changed:
                typer.echo(f"{name}: pins unchanged")
            elif dry_run:
                typer.echo(outcome.changed[name], nl=False)
            else:
                typer.echo(f"{name}: pins updated")
        if outcome.errors:
            raise typer.Exit(EXIT_REFUSED)

    @app.command("package")
    def package(
        config: Annotated[Path, typer.Argument(help="a tuned model's config (the YAML careqa tune wrote)")],
        bucket: Annotated[str, typer.Option("--bucket", help="S3 bucket for the artifact (the knowledge-base bucket)")],
        prefix: Annotated[str, typer.Option("--prefix", help="key prefix in the bucket")] = "models/",
        region: RegionOpt = None,
        kms_key_id: Annotated[
            str | None, typer.Option("--kms-key-id", help="encrypt with this KMS key (default: the bucket's)")
        ] = None,
    ) -> None:
        """Build a tuned model's SageMaker artifact (model.tar.gz for the Hugging Face inference image), upload it
        and pin it in the config for REGION, so that `careqa models swap` can deploy it."""
        import tempfile

        from botocore.exceptions import BotoCoreError, ClientError

        from endpoints.config import load_model_config
        from endpoints.custom import build_artifact, record_model_data
        from endpoints.errors import ModelConfigError

        region = region_of(region)
        try:
            target = load_model_config(config)
            if target.custom is None:
                raise ModelConfigError(f"{target.name} is a JumpStart model; only tuned models are packaged")
            key = f"{prefix.strip('/')}/{target.name}/{target.custom.weights_sha256[:16]}/model.tar.gz".lstrip("/")
            with tempfile.TemporaryDirectory(prefix="careqa-package-") as tmp:
                artifact = build_artifact(target, Path(tmp) / "model.tar.gz")
                size = artifact.stat().st_size
                extra: dict[str, str] = {"ServerSideEncryption": "aws:kms"}
                if kms_key_id:
                    extra["SSEKMSKeyId"] = kms_key_id
                client("s3", region).upload_file(str(artifact), bucket, key, ExtraArgs=extra)
        except ModelConfigError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
        except (ClientError, BotoCoreError) as exc:
            raise _fail(f"uploading to s3://{bucket}/{key}: {exc}", EXIT_FAILED) from None
        uri = f"s3://{bucket}/{key}"
        record_model_data(config, region, uri, today())
        typer.echo(f"{target.name}: uploaded {size / 1e6:.1f} MB to {uri}; pinned for {region} in {config}")
        typer.echo(f"next: careqa models swap <endpoint> {config} --config <the service's CareQA config>")

    return app


def index_check(settings_file: Path) -> Callable[[Any], list[str]]:
    """For ``swap --config``: which tenants of that service have no complete index copy for a model."""
    from careqa.config import load_settings
    from careqa.index.factory import open_index

    settings = load_settings(settings_file)
    tenants = [t.id for t in settings.tenants]

    def check(target: Any) -> list[str]:
        from careqa.errors import IndexMismatchError

        if settings.index.driver == "lancedb":
            from careqa.index.lance import recorded_model

            if recorded_model(settings.index_path) is None:
                return []  # no index yet: nothing to mismatch
        try:
            index = open_index(
                settings.index.driver,
                dimension=target.embedding_dimension,
                embedding_model=target.identity,
                path=settings.index_path,
                opensearch=settings.index.opensearch,
                normalized_embeddings=target.normalize_embeddings,
            )
        except IndexMismatchError:
            return tenants  # only the other model's index: no copy at all
        return index.incomplete_tenants(tenants)

    return check


app = build_app()
