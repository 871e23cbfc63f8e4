"""``careqa tune embeddings``: fine-tune the embedding model's local stand-in on a tenant's knowledge base.

Exit codes: 0 a tuned model and its config were written; 1 tuning ran but did not beat the base model on
validation (nothing written); 2 refused before training (unknown tenant, unreadable KB or ratings, a model
that cannot be tuned).
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from careqa.errors import CareQAError

app = typer.Typer(help="Tune models on a tenant's own knowledge base and agents' ratings.", no_args_is_help=True)


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "tenant"


@app.command("embeddings")
def tune_embeddings(
    tenants: Annotated[
        list[str],
        typer.Option(
            "--tenant",
            "-t",
            help="whose knowledge base (and ratings) to tune on; repeat it for a model that serves several tenants",
        ),
    ],
    kb: Annotated[
        Path | None, typer.Option("--kb", help="knowledge base: folder or file (default: the tenant's kb_path)")
    ] = None,
    feedback: Annotated[
        Path | None, typer.Option("--feedback", help="ratings exported by `careqa feedback export` (JSONL)")
    ] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", min=0.01, help="passes over the pairs (default: 1, 3 for a small KB)")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=2, help="pairs per step, in-batch negatives (default: 64 / 8)")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", min=0.0, help="default: 5e-5, 1e-4 for a small KB")
    ] = None,
    symmetric: Annotated[
        bool, typer.Option("--symmetric/--one-way", help="also rank questions for each answer in the batch")
    ] = True,
    hard_negatives: Annotated[
        int,
        typer.Option(
            "--hard-negatives", min=0, max=10, help="negatives per pair mined from the base model's ranking (default 0)"
        ),
    ] = 0,
    validation_fraction: Annotated[
        float | None,
        typer.Option("--validation-fraction", min=0.01, max=0.5, help="documents held out (default: 0.1 / 0.3)"),
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", min=0.1, help="stop (keeping the best checkpoint) after this")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for the model and its config (default: <data_dir>/models/…)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="config name (default: <base>-<tenant>-<date>)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    json_out: Annotated[str | None, typer.Option("--json", help="write the report as JSON to PATH or - ")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="config YAML")] = None,
) -> None:
    """Fine-tune the configured embedding model's local stand-in; write the tuned model and a model config for it.

    Serve the result locally by setting models.embedding.config to the written YAML (then `careqa ingest
    --reembed`), or deploy it with `careqa models package` and `careqa models swap`.
    """
    from careqa.config import load_settings
    from careqa.evaluate import stage_kb
    from careqa.knowledge import load_folder
    from careqa.tuning import TuneOptions, TuningError, kb_pairs, rated_pairs, read_feedback, tune
    from endpoints import load_model_config
    from endpoints.custom import tuned_config, write_config
    from endpoints.local import _weights_path

    try:
        settings = load_settings(config)
        sources: list[tuple[str, Path]] = []
        if kb is not None:
            if len(tenants) != 1:
                raise _fail("--kb is the knowledge base of one tenant: give one --tenant with it", 2)
            sources.append((tenants[0], kb))
        for tenant in tenants if kb is None else []:
            configured = settings.tenant(tenant)
            if configured.kb_path is None:
                raise _fail(f"tenant {tenant!r} has no kb_path; give the knowledge base with --kb", 2)
            sources.append((configured.id, configured.kb_path))
        base = load_model_config(settings.models.embedding.config)
        if base.task != "embedding" or base.local is None:
            raise _fail(f"{base.name} has no local stand-in to tune", 2)
        rows = read_feedback(feedback) if feedback is not None else []
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None
    except ValueError as exc:  # a model config error
        raise _fail(str(exc), 2) from None

    records = []
    rated = []
    for tenant, folder_or_file in sources:
        with tempfile.TemporaryDirectory(prefix="careqa-tune-") as staging:
            try:
                loaded = load_folder(stage_kb(folder_or_file, Path(staging)), tenant)
            except FileNotFoundError as exc:
                raise _fail(str(exc), 2) from None
        for rejection in loaded.rejections[:10]:
            typer.secho(f"  skipped {rejection}", fg=typer.colors.YELLOW, err=True)
        records += loaded.records
        rated += rated_pairs(rows, loaded.records, tenant)
    pairs = kb_pairs(records)
    today = datetime.now(UTC).date()
    short = re.sub(r"^(huggingface|meta|local)-(textembedding|sentencesimilarity)-", "", base.name.lower())
    who = "-".join(_slug(t) for t, _ in sources)
    config_name = name or f"{_slug(short)}-{who}-{today.isoformat()}"
    folder = out or settings.data_dir / "models" / config_name
    typer.echo(
        f"tuning {base.name} on {', '.join(t for t, _ in sources)}: {len(records)} records -> {len(pairs)} pairs, "
        f"{len(rated)} rated pairs from {len(rows)} ratings",
        err=True,
    )
    options = TuneOptions(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_fraction=validation_fraction,
        symmetric=symmetric,
        hard_negatives=hard_negatives,
        max_minutes=max_minutes,
        progress=progress,
    )
    try:
        result = tune(_weights_path(base), pairs, folder / "model", rated=rated, base_name=base.name, options=options)
    except TuningError as exc:
        raise _fail(exc.message, 1 if "validation MRR" in exc.message else 2) from None
    record = {
        "tenants": [t for t, _ in sources],
        "records": len(records),
        "train_pairs": result.train_pairs,
        "rated_pairs": result.rated_pairs,
        "validation_queries": result.validation_queries,
        "validation_mrr_at_10": {"base": result.validation_mrr_base, "tuned": result.validation_mrr_tuned},
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
        "options": result.options,
    }
    data = tuned_config(
        base, name=config_name, model_dir=folder / "model", config_dir=folder, tuned=record, today=today
    )
    config_path = folder / f"{config_name}.yaml"
    written = write_config(data, config_path)
    (folder / "training.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    typer.echo(
        f"validation MRR@10 {result.validation_mrr_base:.4f} -> {result.validation_mrr_tuned:.4f} "
        f"({result.steps} steps{', stopped early' if result.stopped_early else ''}, {result.seconds:.0f}s)"
    )
    typer.echo(f"model config: {config_path}  (identity {written.identity})")
    typer.echo(
        "next: set models.embedding.config to that file and run `careqa ingest --reembed`, "
        "or `careqa models package` it for SageMaker"
    )
    if json_out:
        text = json.dumps(result.to_dict() | {"config": str(config_path), "identity": written.identity}, indent=2)
        if json_out == "-":
            typer.echo(text)
        else:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
