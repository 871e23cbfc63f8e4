"""The careqa command line: help everywhere, clear errors, the ingest report and ask's numbered sources."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from careqa.cli import app
from tests.conftest import REPO

runner = CliRunner()
SUBCOMMANDS = [
    [],
    ["ingest"],
    ["ask"],
    ["serve"],
    ["feedback"],
    ["feedback", "export"],
    ["config"],
    ["config", "check"],
    ["token"],
    ["token", "new"],
    ["token", "hash"],
]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: " ".join(c) or "careqa")
def test_every_subcommand_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def env_for(settings):
    return {"CAREQA_DATA_DIR": str(settings.data_dir), "CAREQA_LINK_SECRET": "x"}


def test_ask_prints_the_answer_with_numbered_sources(settings, runtime):
    result = runner.invoke(
        app, ["ask", "--tenant", "pharmacy", "What does rejection code 75 mean?"], env=env_for(settings)
    )
    assert result.exit_code == 0, result.output
    assert "prior authorization" in result.output.lower()
    assert "[1] " in result.output and "claim-rejection-codes.md" in result.output


def test_ask_json_is_the_api_answer(settings, runtime):
    result = runner.invoke(
        app, ["ask", "-t", "clinic", "--json", "How do I cancel an appointment?"], env=env_for(settings)
    )
    body = json.loads(result.output)
    assert body["tenant"] == "clinic" and body["sources"]


def test_ask_for_an_unknown_tenant_fails_clearly(settings, runtime):
    result = runner.invoke(app, ["ask", "--tenant", "hospital", "hi"], env=env_for(settings))
    assert result.exit_code == 2
    assert "unknown tenant 'hospital'" in result.output


def test_ingest_reports_rejections_per_file_and_line_and_exits_3(settings, runtime, tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "faq.jsonl").write_text('{"question": "q?", "answer": "a.", "source_url": "https://example.org/a"}\n{oops\n')
    (kb / "blob.md").write_bytes(b"\x00\x00")
    result = runner.invoke(
        app, ["ingest", str(kb), "--tenant", "pharmacy", "--json"], env={"CAREQA_DATA_DIR": str(tmp_path / "data")}
    )
    assert result.exit_code == 3
    [report] = json.loads(result.output)
    assert report["added"] == 1 and report["rejected"] == 2
    assert {(r["file"], r["line"]) for r in report["rejections"]} == {("faq.jsonl", 2), ("blob.md", None)}


def test_ingest_a_path_needs_a_tenant(tmp_path):
    result = runner.invoke(app, ["ingest", str(tmp_path)])
    assert result.exit_code != 0 and "--tenant is required" in result.output


def test_a_bad_config_fails_fast_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants:\n  - id: pharmacy\n    name: P\nretrieval:\n  top_k: -1\n")
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "retrieval.top_k" in result.output


def test_token_new_prints_a_token_that_hashes_to_the_printed_entry(settings):
    result = runner.invoke(app, ["token", "new", "--tenant", "clinic", "--subject", "agent-7"])
    token = result.output.split("not stored): ")[1].split()[0]
    digest = runner.invoke(app, ["token", "hash", token]).output.strip()
    assert f"token_sha256: {digest}" in result.output


def test_a_new_token_never_opens_with_a_dash(settings, monkeypatch):
    # "-FZr6..." was taken for an option by `careqa token hash` (one token in 64)
    drawn = iter(["-FZr6GuSWi7TBjSMmzI3ozJGJGhTimpXNTz1CwAeric", "FZr6GuSWi7TBjSMmzI3ozJGJGhTimpXNTz1CwAeric"])
    monkeypatch.setattr("careqa.cli.secrets.token_urlsafe", lambda n: next(drawn))
    result = runner.invoke(app, ["token", "new", "--tenant", "clinic", "--subject", "agent-7"])
    assert "not stored): FZr6GuSWi7TBjSMmzI3ozJGJGhTimpXNTz1CwAeric" in result.output


def test_the_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "careqa.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "ingest" in out.stdout
