"""Reading knowledge-base files: every malformed input is rejected with its file, line and reason."""

import json
from pathlib import Path

from careqa.knowledge import load_folder

DOC = "---\ntitle: Refills\n---\n## Refill requests\nAsk for refills online or by phone.\n"


def kb(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp_path / "kb"
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def qa(**fields) -> str:
    record = {"question": "How do refills work?", "answer": "Ask online.", "source_url": "refills.md"} | fields
    return json.dumps(record)


def reasons(result):
    return {(r.file, r.line): r.reason for r in result.rejections}


def test_all_formats_load(tmp_path):
    root = kb(
        tmp_path,
        {
            "refills.md": DOC,
            "faq.jsonl": qa(id="a1", title="Refills") + "\n",
            "claims.csv": "id,question,answer,title,source_url\n"
            'c1,"What is 75, exactly?","PA, required",Code 75,refills.md\n',
            "status.html": "<html><head><title>Order status</title></head><body><h2>Shipped</h2><p>On its way.</p>"
            "<script>alert(1)</script></body></html>",
            "billing.txt": "---\ntitle: Billing\n---\nCOPAYS\nCopays depend on the plan.\n",
        },
    )
    result = load_folder(root, "pharmacy")
    assert result.rejections == []
    by_id = {r.doc_id: r for r in result.records}
    assert set(by_id) == {
        "pharmacy/refills.md",
        "pharmacy/a1",
        "pharmacy/c1",
        "pharmacy/status.html",
        "pharmacy/billing.txt",
    }
    assert by_id["pharmacy/c1"].question == "What is 75, exactly?"
    assert by_id["pharmacy/status.html"].title == "Order status"
    assert "alert" not in by_id["pharmacy/status.html"].text
    assert "## Shipped" in by_id["pharmacy/status.html"].text
    assert by_id["pharmacy/refills.md"].source_url == "refills.md"  # a document is its own source


def test_invalid_json_lines_are_rejected_and_the_rest_kept(tmp_path):
    root = kb(tmp_path, {"refills.md": DOC, "faq.jsonl": "\n".join([qa(id="a"), "{not json", "[1, 2]", qa(id="b")])})
    result = load_folder(root, "pharmacy")
    assert {r.doc_id for r in result.records if r.kind == "qa"} == {"pharmacy/a", "pharmacy/b"}
    assert reasons(result)[("faq.jsonl", 2)].startswith("invalid JSON")
    assert reasons(result)[("faq.jsonl", 3)] == "each line must be a JSON object"


def test_records_missing_fields_are_rejected_per_line(tmp_path):
    root = kb(
        tmp_path,
        {
            "refills.md": DOC,
            "faq.jsonl": "\n".join(
                [
                    qa(id="a", answer=""),
                    qa(id="b", source_url=None),
                    qa(id="c", source_url="missing.md"),
                    qa(id="d", source_url="javascript:alert(1)"),
                    qa(id="e", source_url="../../etc/passwd"),
                ]
            ),
        },
    )
    r = reasons(load_folder(root, "pharmacy"))
    assert r[("faq.jsonl", 1)] == "missing answer"
    assert r[("faq.jsonl", 2)] == "missing source_url"
    assert "does not exist" in r[("faq.jsonl", 3)]
    assert "http(s) URL" in r[("faq.jsonl", 4)]
    assert "outside the knowledge base" in r[("faq.jsonl", 5)]


def test_bad_csv_rows_are_rejected_with_their_line(tmp_path):
    csv_text = (
        "id,question,answer,source_url\n"
        "c1,Q one?,A one.,refills.md\n"
        "c2,Q two?,A two.\n"
        "c3,Q three?,A three.,refills.md,extra\n"
        "c4,Q four?,A four.,refills.md\n"
    )
    root = kb(tmp_path, {"refills.md": DOC, "claims.csv": csv_text})
    result = load_folder(root, "pharmacy")
    assert {r.doc_id for r in result.records if r.kind == "qa"} == {"pharmacy/c1", "pharmacy/c4"}
    assert reasons(result)[("claims.csv", 3)] == "row has 3 fields, header has 4"
    assert reasons(result)[("claims.csv", 4)] == "row has 5 fields, header has 4"


def test_csv_without_required_columns_is_rejected(tmp_path):
    root = kb(tmp_path, {"claims.csv": "q,a\nx,y\n"})
    assert "lacks column(s) question, answer, source_url" in reasons(load_folder(root, "pharmacy"))[("claims.csv", 1)]


def test_binary_empty_and_unsupported_files_are_rejected(tmp_path):
    root = kb(
        tmp_path,
        {
            "scan.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR",
            "latin1.txt": "caf\xe9".encode("latin-1"),
            "empty.md": "   \n",
            "empty.jsonl": "",
            "notes.docx": "x",
        },
    )
    r = {k[0]: v for k, v in reasons(load_folder(root, "pharmacy")).items()}
    assert r["scan.md"] == "binary file (contains NUL bytes)"
    assert r["latin1.txt"].startswith("not UTF-8 text")
    assert r["empty.md"] == "empty file"
    assert r["empty.jsonl"] == "empty file"
    assert r["notes.docx"].startswith("unsupported file type .docx")


def test_a_record_for_another_tenant_is_rejected(tmp_path):
    root = kb(tmp_path, {"refills.md": DOC, "faq.jsonl": qa(id="a", tenant="clinic")})
    assert reasons(load_folder(root, "pharmacy"))[("faq.jsonl", 1)] == "record is for tenant 'clinic', not 'pharmacy'"


def test_duplicate_ids_keep_the_first(tmp_path):
    root = kb(tmp_path, {"refills.md": DOC, "faq.jsonl": qa(id="a") + "\n" + qa(id="a", answer="Other.")})
    result = load_folder(root, "pharmacy")
    assert [r.text for r in result.records if r.kind == "qa"] == ["Ask online."]
    assert "duplicate id 'a'" in reasons(result)[("faq.jsonl", 2)]


def test_invalid_front_matter_is_rejected(tmp_path):
    root = kb(tmp_path, {"bad.md": "---\ntitle: [unclosed\n---\nbody\n"})
    assert reasons(load_folder(root, "pharmacy"))[("bad.md", 1)].startswith("invalid front matter")


def test_hidden_files_are_skipped(tmp_path):
    root = kb(tmp_path, {"refills.md": DOC, ".DS_Store": b"\x00\x01", ".git/config": "x"})
    result = load_folder(root, "pharmacy")
    assert result.rejections == [] and len(result.records) == 1


def test_an_html_list_item_with_a_bold_term_reads_as_the_term_and_its_definition():
    # get_text joins inline elements with a space; "Filling : the medicine" is not how the page reads
    from careqa.knowledge import html_to_markdown

    _, _, body = html_to_markdown(
        "<html><body><ul><li><strong>Filling</strong>: being prepared, <em>checked</em>.</li></ul>"
        "<p>Call <a href='tel:1'>us</a>, or write.</p></body></html>"
    )
    assert body.splitlines() == ["- Filling: being prepared, checked.", "Call us, or write."]
