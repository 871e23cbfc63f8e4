"""The feedback store is durable and tenant-scoped; signed source links expire and bind their tenant."""

import json
from datetime import UTC, datetime

import pytest

from careqa.errors import NotFoundError
from careqa.feedback import SQLiteFeedbackStore
from careqa.sources import LinkSigner, LocalSourceStore, SourceTooLargeError, render_source
from careqa.types import Answer, Timings


def answer(tenant: str = "pharmacy") -> Answer:
    return Answer(
        answer_id=datetime.now(UTC).strftime("%f").ljust(32, "a"),
        tenant=tenant,
        status="answered",
        mode="curated",
        text="Code 75 means prior authorization required. [1]",
        sentences=[],
        sources=[],
        models={"embedding": "e", "llm": "l"},
        timings=Timings(),
    )


def test_feedback_survives_a_restart_and_exports_as_jsonl(tmp_path):
    path = tmp_path / "fb.sqlite3"
    store = SQLiteFeedbackStore(path)
    a = answer()
    store.record_answer(a, question="What does code 75 mean?", subject="agent-1")
    store.add_feedback(tenant="pharmacy", subject="agent-1", answer_id=a.answer_id, rating="down", comment="too short")
    store.close()
    rows = list(SQLiteFeedbackStore(path).export())
    assert len(rows) == 1
    assert json.loads(json.dumps(rows[0]))["question"] == "What does code 75 mean?"
    assert rows[0]["rating"] == "down" and rows[0]["models"] == {"embedding": "e", "llm": "l"}


def test_feedback_on_another_tenants_answer_is_refused_and_nothing_is_written(tmp_path):
    store = SQLiteFeedbackStore(tmp_path / "fb.sqlite3")
    a = answer("pharmacy")
    store.record_answer(a, question="q", subject="s")
    with pytest.raises(NotFoundError):
        store.add_feedback(tenant="clinic", subject="x", answer_id=a.answer_id, rating="up", comment="")
    assert list(store.export()) == []


def test_export_filters_by_tenant(tmp_path):
    store = SQLiteFeedbackStore(tmp_path / "fb.sqlite3")
    for tenant in ("pharmacy", "clinic"):
        a = answer(tenant)
        store.record_answer(a, question="q", subject="s")
        store.add_feedback(tenant=tenant, subject="s", answer_id=a.answer_id, rating="up", comment="")
    assert [r["tenant"] for r in store.export("clinic")] == ["clinic"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def parse(link: str) -> tuple[str, str, int, str]:
    path, query = link.split("#")[0].split("?")
    _, _, tenant, rest = path.split("/", 3)
    params = dict(p.split("=") for p in query.split("&"))
    return tenant, rest, int(params["exp"]), params["sig"]


def test_signed_links_verify_then_expire():
    clock = Clock()
    signer = LinkSigner(b"k", 60, clock=clock)
    link = signer.link("pharmacy", "procedures/refills.md#auto-refill")
    assert link.endswith("#auto-refill")
    tenant, path, exp, sig = parse(link)
    signer.verify(tenant, path, exp, sig)
    clock.now += 61
    with pytest.raises(NotFoundError, match="expired"):
        signer.verify(tenant, path, exp, sig)


def test_a_link_signed_for_one_tenant_fails_for_another():
    signer = LinkSigner(b"k", 60)
    _, path, exp, sig = parse(signer.link("clinic", "procedures/appointments.md"))
    with pytest.raises(NotFoundError, match="invalid"):
        signer.verify("pharmacy", path, exp, sig)


def test_a_signature_with_non_ascii_characters_is_an_invalid_link_not_a_crash():
    signer = LinkSigner(b"k", 60)
    _, path, exp, _ = parse(signer.link("clinic", "procedures/appointments.md"))
    with pytest.raises(NotFoundError, match="invalid"):  # found by fuzzing: hmac.compare_digest raised TypeError
        signer.verify("clinic", path, exp, "\u00d7")


def test_external_urls_are_returned_unchanged():
    assert LinkSigner(b"k", 60).link("pharmacy", "https://example.org/a#b") == "https://example.org/a#b"


def test_rendered_sources_escape_embedded_html():
    title, page = render_source("x.md", b"---\ntitle: X\n---\n## Part\nHello <script>alert(1)</script>\n")
    assert title == "X" and "<script>" not in page and 'id="part"' in page


def test_an_html_source_is_rendered_from_its_text_never_served_as_is():
    title, page = render_source(
        "guides/hours.html", b"<title>Hours</title><h2>Weekend</h2><p>9 to 6</p><script>x()</script>"
    )
    assert title == "Hours" and 'id="weekend"' in page and "<script>" not in page


@pytest.mark.parametrize(
    "path", ["../secret.txt", "/etc/passwd", "a/../../secret.txt", "./x.md", "a//x.md", "a\\x.md", ""]
)
def test_the_local_store_refuses_paths_that_could_leave_the_folder(tmp_path, path):
    (tmp_path / "kb" / "a").mkdir(parents=True)
    (tmp_path / "kb" / "x.md").write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    store = LocalSourceStore({"pharmacy": tmp_path / "kb"}, max_bytes=1000)
    with pytest.raises(NotFoundError):
        store.read("pharmacy", path)


def test_the_local_store_refuses_a_symlink_out_of_the_folder(tmp_path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "secret.txt").write_text("s")
    (tmp_path / "kb" / "link.md").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(NotFoundError):
        LocalSourceStore({"pharmacy": tmp_path / "kb"}, max_bytes=1000).read("pharmacy", "link.md")


def test_the_local_store_reads_only_the_tenants_own_folder_and_caps_the_size(tmp_path):
    for tenant in ("pharmacy", "clinic"):
        (tmp_path / tenant).mkdir()
        (tmp_path / tenant / "hours.md").write_text(f"# {tenant} hours\n")
    store = LocalSourceStore({"pharmacy": tmp_path / "pharmacy"}, max_bytes=20)
    assert store.read("pharmacy", "hours.md") == b"# pharmacy hours\n"
    with pytest.raises(NotFoundError):
        store.read("clinic", "hours.md")
    (tmp_path / "pharmacy" / "big.md").write_text("x" * 21)
    with pytest.raises(SourceTooLargeError):
        store.read("pharmacy", "big.md")
