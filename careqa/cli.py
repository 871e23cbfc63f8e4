"""The ``careqa`` command line: ingest, ask, serve, export feedback, check config, manage tokens."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from careqa.cli_models import app as models_app
from careqa.cli_tune import app as tune_app
from careqa.config import Settings, hash_token, load_settings
from careqa.errors import CareQAError
from careqa_deploy.cli import answer_cost
from careqa_deploy.cli import app as cost_app
from endpoints.errors import ModelInvocationError

app = typer.Typer(
    help="CareQA: grounded, cited answers from a knowledge base for customer-care agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
feedback_app = typer.Typer(help="Agents' ratings of answers.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for agents (stored in the config as SHA-256 only).", no_args_is_help=True)
config_app = typer.Typer(help="The deployment configuration.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")
app.add_typer(token_app, name="token")
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(cost_app, name="cost")
app.add_typer(tune_app, name="tune")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="config YAML (default: $CAREQA_CONFIG_FILE or config/local.yaml)")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _write_json(payload: Any, json_out: str) -> None:
    """``--json PATH`` writes the results to PATH; ``--json -`` prints them (the tables then go to stderr)."""
    text = json.dumps(payload, indent=2)
    if json_out == "-":
        typer.echo(text)
    else:
        Path(json_out).write_text(text + "\n", encoding="utf-8")


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None


def _runtime(settings: Settings) -> Any:
    from careqa.runtime import Runtime

    try:
        return Runtime(settings)
    except CareQAError as exc:  # model config errors included
        raise _fail(str(exc), 2) from None


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="knowledge-base folder (default: each tenant's kb_path)")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="tenant the folder belongs to")] = None,
    sync: Annotated[bool, typer.Option("--sync", help="remove documents whose files disappeared")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    reembed: Annotated[
        bool,
        typer.Option(
            "--reembed",
            help="build the tenants' index copy for --model (default: the configured embedding model) beside the "
            "serving index, which keeps serving; each tenant is marked complete when its copy is whole",
        ),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="with --reembed: the embedding model config (name or YAML path)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate, split, embed and index a knowledge base; re-running changes only what changed."""
    from datetime import UTC, datetime

    from careqa.ingest import ingest_folder

    settings = _settings(config)
    if model is not None and not reembed:
        raise _fail("--model is only used with --reembed", 2)
    try:
        if path is not None:
            if tenant is None:
                raise _fail("--tenant is required with a path")
            targets = [(settings.tenant(tenant).id, path)]
        else:
            chosen = [settings.tenant(tenant)] if tenant else settings.tenants
            targets = [(t.id, t.kb_path) for t in chosen if t.kb_path is not None]
            if not targets:
                raise _fail("no tenant has a kb_path; give a folder and --tenant")
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None
    runtime = _runtime(settings)
    try:
        if reembed:
            # the copy for the new model is written beside the serving index, which is not touched
            model_config, embeddings = runtime.embeddings_for(model or settings.models.embedding.config)
            index = runtime.open_index(model_config, reembed=True)
        else:
            index, embeddings = runtime.index, runtime.embeddings
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None
    reports = []
    failed = False
    for tenant_id, folder in targets:
        if not folder.is_dir():
            raise _fail(f"{folder} is not a folder", 2)
        try:
            report = ingest_folder(folder, tenant_id, index=index, embeddings=embeddings, sync=sync or reembed)
            if reembed:  # whole: every file was read (rejected ones are reported, as by any ingest)
                index.mark_complete(tenant_id, datetime.now(UTC).isoformat(timespec="seconds"))
        except (CareQAError, ModelInvocationError) as exc:
            raise _fail(str(exc)) from None
        reports.append(report)
        failed = failed or bool(report.rejected)
        if reembed and not as_json:
            typer.echo(f"{tenant_id}: re-embedded with {model_config.name} ({model_config.identity}): complete")
        if not as_json:
            c = report.counts()
            typer.echo(
                f"{tenant_id}: {c['added']} added, {c['updated']} updated, {c['unchanged']} unchanged, "
                f"{c['deleted']} deleted, {c['rejected']} rejected "
                f"({c['chunks_written']} chunks written, {report.seconds:.1f}s)"
            )
            for rejection in report.rejected:
                typer.secho(f"  rejected {rejection}", fg=typer.colors.YELLOW)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    raise typer.Exit(3 if failed else 0)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question, in plain language")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="whose knowledge base to ask")],
    as_json: Annotated[bool, typer.Option("--json", help="print the full answer as JSON")] = False,
    config: ConfigOpt = None,
) -> None:
    """Answer a question from a tenant's knowledge base and print it with numbered sources."""
    settings = _settings(config)
    runtime = _runtime(settings)
    try:
        answer = runtime.engine.ask(tenant, question)
    except ModelInvocationError as exc:  # a CareQAError too, but a failure (1), not a refusal (2)
        raise _fail(str(exc)) from None
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    typer.echo(answer.text)
    if answer.sources:
        typer.echo("\nClosest documents:" if answer.status == "not_found" else "\nSources:")
        for s in answer.sources:
            typer.echo(f"  [{s.n}] {s.title} — {s.url} (score {s.score:.2f})")
    t = answer.timings
    typer.secho(
        f"\n{answer.mode}; embed {t.embed_ms:.0f} ms, retrieve {t.retrieve_ms:.0f} ms, "
        f"generate {t.generate_ms:.0f} ms, check {t.check_ms:.0f} ms, total {t.total_ms:.0f} ms",
        dim=True,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    config: ConfigOpt = None,
) -> None:
    """Serve the agent web page and the JSON API."""
    import uvicorn

    from careqa.auth import is_loopback
    from careqa.service.app import create_app

    settings = _settings(config)
    if not is_loopback(host) and any(i.demo for i in settings.identities):
        raise _fail(f"refusing to listen on {host}: the config contains published demo tokens; remove them first", 2)
    application = create_app(settings, runtime=_runtime(settings))
    typer.echo(f"CareQA on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(application, host=host, port=port, log_level=settings.log_level.lower())


@feedback_app.command("export")
def feedback_export(
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="JSONL file, or s3://bucket/key (default: stdout)")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="only this tenant")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write stored feedback (SQLite or DynamoDB, per feedback.driver) with its question, answer, sources and model
    ids as JSONL."""
    from careqa.feedback import export_to_s3, open_feedback_store, write_jsonl

    settings = _settings(config)
    try:
        if tenant:
            settings.tenant(tenant)
        store = open_feedback_store(settings)
        if output and output.startswith("s3://"):
            count = export_to_s3(store.export(tenant), output, region=settings.feedback.region)
        elif output:
            with Path(output).open("w", encoding="utf-8") as out:
                count = write_jsonl(store.export(tenant), out)
        else:
            count = write_jsonl(store.export(tenant), sys.stdout)
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None
    typer.echo(f"exported {count} feedback record(s)", err=True)


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and both model configs, and print a summary."""
    settings = _settings(config)
    runtime = _runtime(settings)
    typer.echo(f"config ok: {settings.config_file}")
    typer.echo(f"  tenants: {', '.join(t.id for t in settings.tenants)}; identities: {len(settings.identities)}")
    typer.echo(f"  embedding: {runtime.embedding_config.model_id} via {settings.models.embedding.transport}")
    typer.echo(f"  llm: {runtime.llm_config.model_id} via {settings.models.llm.transport}")
    where = settings.index.opensearch.endpoint if settings.index.opensearch is not None else settings.index_path
    typer.echo(f"  index: {settings.index.driver} at {where}")


@token_app.command("new")
def token_new(
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    subject: Annotated[str, typer.Option("--subject", "-s", help="the agent's identity")],
    config: ConfigOpt = None,
) -> None:
    """Create a random token and print it with the config entry that grants it."""
    settings = _settings(config)
    try:
        settings.tenant(tenant)
    except CareQAError as exc:
        raise _fail(exc.message, 2) from None
    token = secrets.token_urlsafe(32)
    while token.startswith("-"):  # one in 64 would read as an option to `careqa token hash` and other shell tools
        token = secrets.token_urlsafe(32)
    typer.echo(f"token (give it to the agent, it is not stored): {token}")
    typer.echo(f"config entry:\n  - subject: {subject}\n    tenant: {tenant}\n    token_sha256: {hash_token(token)}")


@token_app.command("hash")
def token_hash(token: Annotated[str, typer.Argument(help="the token to hash")]) -> None:
    """Print the SHA-256 under which a token is listed in the config."""
    typer.echo(hash_token(token))


eval_app = typer.Typer(
    help="Measure retrieval (ranked documents) and answers (what the agent reads) on judged questions.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
def eval_retrieval(
    kb: Annotated[Path, typer.Option("--kb", help="knowledge base: a Q&A file (JSONL, CSV), a document or a folder")],
    questions: Annotated[
        Path, typer.Option("--questions", help="judged questions, JSONL: id, subject, message, paraphrase, relevance")
    ],
    json_out: Annotated[
        str | None, typer.Option("--json", help="also write the results as JSON to PATH, or - for stdout")
    ] = None,
    configs: Annotated[
        str | None,
        typer.Option("--configs", help="comma-separated presets, each optionally with :field=value overrides"),
    ] = None,
    forms: Annotated[str, typer.Option("--forms", help="query forms: message (subject + message), paraphrase")] = (
        "message,paraphrase"
    ),
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="where the evaluation index lives (default: <data_dir>/eval)")
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="tenant the knowledge base is indexed as")] = "eval",
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="configuration the others are compared with, question by question (default: the first)"
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="comma-separated embedding model configs (names or YAML paths) to compare, e.g. the base and a "
            "tuned model; each gets its own index and every configuration runs as <model>/<configuration>",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Ingest a knowledge base once and score retrieval configurations on judged questions, side by side.

    Each configuration's nDCG@10 is also compared with the baseline's question by question: the mean
    difference, its 95% paired-bootstrap interval, and the questions won and lost.
    """
    from careqa.evaluate import DEFAULT_CONFIGS, EvalInputError, format_table, parse_config_spec, run_eval
    from careqa.index.factory import open_index
    from careqa.index.lance import LanceIndex

    settings = _settings(config)
    runtime = _runtime(settings)
    folder = data_dir or settings.data_dir / "eval"
    dimension = runtime.embedding_config.embedding_dimension
    specs = [c for c in (configs or ",".join(DEFAULT_CONFIGS)).split(",") if c.strip()]
    try:
        for spec in specs:  # refuse a bad spec or baseline before an index is opened or anything ingested
            parse_config_spec(spec, settings.retrieval)
        if baseline is not None and not models and baseline not in specs:
            raise EvalInputError(f"--baseline {baseline!r} is not one of the configurations: {', '.join(specs)}")
        compared = []
        for name in [m.strip() for m in (models or "").split(",") if m.strip()]:
            model_config, model_embeddings = runtime.embeddings_for(name)
            model_index = open_index(
                "lancedb",
                dimension=model_config.embedding_dimension or 0,
                embedding_model=model_config.identity,
                path=folder / "index",
                reembed=True,  # each model in its own copy beside the first
            )
            compared.append((model_config.name, model_index, model_embeddings))
        index = (
            compared[0][1]
            if compared
            else LanceIndex(folder / "index", dimension=dimension, embedding_model=runtime.embedding_config.identity)
        )
        result = run_eval(
            kb,
            questions,
            folder,
            index=index,
            embeddings=runtime.embeddings,
            base=settings.retrieval,
            specs=specs,
            forms=[f.strip() for f in forms.split(",") if f.strip()],
            tenant=tenant,
            baseline=baseline,
            models=compared,
        )
    except ModelInvocationError as exc:  # a CareQAError too, but a failure (1), not a refusal (2)
        raise _fail(str(exc)) from None
    except (CareQAError, FileNotFoundError) as exc:
        raise _fail(getattr(exc, "message", str(exc)), 2) from None
    report = result.to_dict()
    ingest = report["ingest"]
    summary = (
        f"{result.n_questions} questions; ingest {ingest['added']} added, {ingest['updated']} updated, "
        f"{ingest['unchanged']} unchanged, {ingest['rejected']} rejected ({ingest['seconds']:.1f}s)"
    )
    to_stdout = json_out == "-"
    typer.echo(summary, err=to_stdout)
    typer.echo(format_table(result.results), err=to_stdout)
    if json_out:
        _write_json(report, json_out)


@eval_app.command("answers")
def eval_answers(
    questions: Annotated[
        Path,
        typer.Option(
            "--questions",
            help="judged answer set, JSONL (sample_kb/README.md); with --kb, graded questions "
            "(id, subject, message, paraphrase, relevance) as for `careqa eval retrieval`",
        ),
    ],
    configs: Annotated[
        str | None,
        typer.Option(
            "--configs",
            help="comma-separated answer configurations: reader, generate, auto, each optionally with "
            ":key=value overrides (settings paths such as reader.min_score, or llm=<model config>, "
            "llm_endpoint=<SageMaker endpoint>, embedding=<embedding model config, e.g. a tuned one>)",
        ),
    ] = None,
    kb: Annotated[
        Path | None, typer.Option("--kb", help="a knowledge base to ingest as --tenant (graded questions)")
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="with --kb: the tenant it is indexed as")] = "eval",
    forms: Annotated[str, typer.Option("--forms", help="with --kb: query forms (message, paraphrase)")] = (
        "message,paraphrase"
    ),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="where the evaluation index lives (default: <data_dir>/eval)"),
    ] = None,
    live_index: Annotated[
        bool, typer.Option("--live-index", help="ask the configured index as it is (no ingest), e.g. on AWS")
    ] = False,
    guard: Annotated[
        bool, typer.Option("--guard/--no-guard", help="also run the guard on scripted adversarial outputs")
    ] = True,
    with_answers: Annotated[bool, typer.Option("--answers", help="include each answer's text in the JSON")] = False,
    deploy_config: Annotated[
        Path | None,
        typer.Option("--deploy-config", help="deploy config whose `careqa cost` prices give the cost per answer"),
    ] = None,
    profile: Annotated[str, typer.Option("--profile", help="cheap or production, for the cost")] = "cheap",
    json_out: Annotated[
        str | None, typer.Option("--json", help="also write the results as JSON to PATH, or - for stdout")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Ask judged questions with each answer configuration and score what the agent would read, side by side.

    Judged answer sets: correct / wrong / abstained on answerable questions, abstained / harmless / forbidden on
    unanswerable ones, the mode mix, latency and cost per 1,000 answers; and the guard on scripted wrong
    sentences. Graded questions (--kb): the share answered with a useful source, a wrong one, or abstained.
    """
    from careqa import answer_eval as ae
    from careqa.evaluate import EvalInputError, ingest_kb, load_questions
    from careqa.ingest import ingest_folder
    from endpoints import load_model_config

    settings = _settings(config)
    to_stdout = json_out == "-"
    try:
        specs = [ae.parse_answer_config(c) for c in (configs or ",".join(ae.DEFAULT_CONFIGS)).split(",") if c.strip()]
        if not specs:
            raise ae.AnswerEvalError("--configs names no configuration")
        for spec in specs:  # bad settings paths fail now, before a model loads
            if spec.overrides:
                ae.apply_overrides(settings, spec.overrides)
        if profile not in {"cheap", "production"}:
            raise ae.AnswerEvalError(f"--profile must be cheap or production, not {profile!r}")
        problems: list[str] = []
        if kb is not None:
            graded = load_questions(questions)
            if tenant not in {t.id for t in settings.tenants}:
                from careqa.config import TenantConfig

                settings = settings.model_copy(
                    update={"tenants": [*settings.tenants, TenantConfig(id=tenant, name=tenant)]}
                )
        else:
            judged, problems = ae.load_judged(questions, tenants=[t.id for t in settings.tenants])
    except (CareQAError, EvalInputError) as exc:
        raise _fail(exc.message, 2) from None
    for problem in problems:
        typer.secho(f"skipped {problem}", fg=typer.colors.YELLOW, err=True)
    if not live_index:
        settings = settings.model_copy(
            update={
                "data_dir": data_dir or settings.data_dir / "eval",
                "index": settings.index.model_copy(update={"driver": "lancedb", "path": None}),
            }
        )
    runtime = _runtime(settings)
    try:
        if kb is not None and not live_index:
            ingest_kb(kb, settings.data_dir, index=runtime.index, embeddings=runtime.embeddings, tenant=tenant)
        elif not live_index:
            for tenant_id in sorted({q.tenant for q in judged}):
                folder = settings.tenant(tenant_id).kb_path
                if folder is None:
                    raise ae.AnswerEvalError(f"tenant {tenant_id!r} has no kb_path to ingest; use --live-index")
                ingest_folder(folder, tenant_id, index=runtime.index, embeddings=runtime.embeddings, sync=True)
                for name in sorted({spec.embedding for spec in specs if spec.embedding}):
                    _, model_embeddings, model_index = runtime.embedding_model(name)
                    ingest_folder(folder, tenant_id, index=model_index, embeddings=model_embeddings, sync=True)
        if kb is not None and not live_index:
            for name in sorted({spec.embedding for spec in specs if spec.embedding}):
                _, model_embeddings, model_index = runtime.embedding_model(name)
                ingest_kb(kb, settings.data_dir, index=model_index, embeddings=model_embeddings, tenant=tenant)
        engines = [(spec, ae.engine_for(runtime, spec)) for spec in specs]
        # latency is measured per answer, not per model load; the LLM loads only if a configuration calls it
        runtime.warm_up(llm=any(spec.answer_mode != "reader" for spec in specs))
    except ModelInvocationError as exc:  # a CareQAError too, but a failure (1), not a refusal (2)
        raise _fail(str(exc)) from None
    except (CareQAError, FileNotFoundError) as exc:
        raise _fail(getattr(exc, "message", str(exc)), 2) from None

    failures = (ModelInvocationError,)
    if kb is not None:
        rows = [
            ae.run_graded(spec.name, engine.ask, graded, tenant, form.strip(), errors=failures)
            for spec, engine in engines
            for form in forms.split(",")
            if form.strip()
        ]
        typer.echo(ae.format_graded(rows), err=to_stdout)
        payload: dict[str, Any] = {"questions": len(graded), "results": rows}
    else:
        results = []
        for spec, engine in engines:
            score = ae.run_config(spec.name, engine.answer_mode, engine.ask, judged, errors=failures)
            calls_llm = any(s.called_llm for s in score.per_question.values())
            llm = runtime.llm_config if spec.llm is None else load_model_config(spec.llm)
            try:
                score.cost_per_1000, score.cost_basis = answer_cost(
                    deploy_config, profile, llm=llm.name if llm.deployable else None, calls_llm=calls_llm
                )
                if calls_llm and not llm.deployable:
                    score.cost_basis += f"; quality measured with the local stand-in {llm.name}"
            except (CareQAError, ValueError) as exc:
                score.cost_basis = f"no cost: {exc}"
            results.append(score)
        typer.echo(ae.format_table(results, judged), err=to_stdout)
        payload = ae.report(results, judged, with_answers=with_answers)
        if problems:
            payload["skipped"] = problems
        if guard:
            # the guard of the first configuration (its settings), fed what generate mode would feed it
            first = engines[0][1]
            tallies = ae.guard_eval(
                runtime, judged, engine=runtime.answer_engine(first.settings, answer_mode="generate")
            )
            typer.echo(ae.format_guard(tallies), err=to_stdout)
            payload["guard"] = {k: {"n": t.n, "kept": t.kept, "examples": t.examples} for k, t in tallies.items()}
    if json_out:
        _write_json(payload, json_out)


if __name__ == "__main__":
    app()
