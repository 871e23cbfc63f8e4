"""Read knowledge-base files into records, rejecting bad ones with a reason per file and line.

Formats: Q&A pairs as JSONL or CSV (``question``, ``answer``, ``source_url``, optional ``id``,
``title``, ``tenant``); documents as Markdown, HTML or plain text, with an optional YAML front
matter (``title``, ``source_url``, ``tenant``). A document without ``source_url`` is its own source.
A ``source_url`` is an absolute http(s) URL or a path inside the tenant's knowledge-base folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from bs4 import BeautifulSoup

from careqa.types import KBRecord

QA_SUFFIXES = {".jsonl", ".csv"}
DOC_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "text"}
SUPPORTED_SUFFIXES = QA_SUFFIXES | set(DOC_SUFFIXES)
MAX_FILE_BYTES = 20 * 1024 * 1024
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}{f':{self.line}' if self.line else ''}: {self.reason}"


@dataclass
class LoadResult:
    records: list[KBRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def files_with_rejections(self) -> set[str]:
        return {r.file for r in self.rejections}


class _Reject(Exception):
    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise _Reject(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in data[:8192]:
        raise _Reject("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Reject(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise _Reject("empty file")
    return text


def check_source_url(url: Any, root: Path) -> str:
    """Validate a source URL: absolute http(s), or a relative path to an existing file under ``root``."""
    if not isinstance(url, str) or not url.strip():
        raise _Reject("missing source_url")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme:
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise _Reject(f"source_url must be an http(s) URL or a relative path, got {url!r}")
        return url
    target = (root / parts.path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise _Reject(f"source_url {url!r} points outside the knowledge base")
    if not target.is_file():
        raise _Reject(f"source_url {url!r} names a file that does not exist")
    return url


def _text_field(obj: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Reject(f"missing {name}")
        return None
    if not isinstance(value, (str, int)):
        raise _Reject(f"{name} must be text")
    return str(value).strip()


def _qa_record(obj: dict[str, Any], *, tenant: str, rel: str, line: int, root: Path) -> KBRecord:
    question = _text_field(obj, "question", required=True)
    answer = _text_field(obj, "answer", required=True)
    assert question is not None and answer is not None
    record_tenant = _text_field(obj, "tenant", required=False)
    if record_tenant and record_tenant != tenant:
        raise _Reject(f"record is for tenant {record_tenant!r}, not {tenant!r}")
    source_url = check_source_url(obj.get("source_url"), root)
    record_id = _text_field(obj, "id", required=False)
    if record_id is None:
        record_id = "qa-" + hashlib.sha1(" ".join(question.lower().split()).encode()).hexdigest()[:16]
    return KBRecord(
        doc_id=f"{tenant}/{record_id}",
        tenant=tenant,
        kind="qa",
        title=_text_field(obj, "title", required=False) or question,
        source_url=source_url,
        source_file=rel,
        question=question,
        text=answer,
        fmt="qa",
        location=f"{rel}:{line}",
    )


def _jsonl_records(text: str, **ctx: Any) -> Iterator[KBRecord | _Reject]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield _Reject(f"invalid JSON: {exc.msg} (column {exc.colno})", number)
            continue
        if not isinstance(obj, dict):
            yield _Reject("each line must be a JSON object", number)
            continue
        try:
            yield _qa_record(obj, line=number, **ctx)
        except _Reject as rej:
            yield _Reject(rej.reason, number)


def _csv_records(text: str, **ctx: Any) -> Iterator[KBRecord | _Reject]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise _Reject(f"unreadable CSV header: {exc}", 1) from None
    missing = [c for c in ("question", "answer", "source_url") if c not in header]
    if missing:
        raise _Reject(f"CSV header lacks column(s) {', '.join(missing)}", 1)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Reject(f"malformed CSV row: {exc}", start)
            return  # the csv reader cannot resynchronise after a quoting error
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield _Reject(f"row has {len(row)} fields, header has {len(header)}", start)
            continue
        try:
            yield _qa_record(dict(zip(header, row, strict=True)), line=start, **ctx)
        except _Reject as rej:
            yield _Reject(rej.reason, start)


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise _Reject(f"invalid front matter: {exc.__class__.__name__}", 1) from None
    if not isinstance(meta, dict):
        raise _Reject("front matter must be a mapping", 1)
    return meta, text[match.end() :]


def html_to_markdown(html: str) -> tuple[str | None, str | None, str]:
    """Title, declared source URL and a Markdown-like body (headings kept for splitting) of an HTML page."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    meta = soup.find("meta", attrs={"name": "careqa:source_url"})
    source = meta.get("content") if meta else None
    lines: list[str] = []
    body = soup.body or soup
    for el in body.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "pre"]):
        if el.find_parent(["li", "td", "pre"]) and el.name != "pre":
            continue
        # inline tags are joined with a space, which lands before punctuation ("<strong>Filling</strong>: ...")
        text = re.sub(r" (?=[,.;:!?)])", "", " ".join(el.get_text(" ", strip=True).split()))
        if not text:
            continue
        if el.name in {"h1", "h2", "h3", "h4"}:
            lines.append(f"\n{'#' * int(el.name[1])} {text}\n")
        elif el.name == "li":
            lines.append(f"- {text}")
        else:
            lines.append(f"{text}\n")
    return title, str(source) if source else None, "\n".join(lines).strip()


def _document_record(text: str, *, fmt: str, tenant: str, rel: str, root: Path) -> KBRecord:
    declared_source: str | None = None
    if fmt == "html":
        title, declared_source, body = html_to_markdown(text)
        meta: dict[str, Any] = {}
        if not title:
            h1 = re.search(r"^# (.+)$", body, re.MULTILINE)
            title = h1.group(1) if h1 else None
    else:
        meta, body = _front_matter(text)
        title = meta.get("title")
        if not title and fmt == "markdown":
            h1 = re.search(r"^# (.+)$", body, re.MULTILINE)
            title = h1.group(1).strip() if h1 else None
        if not title:
            title = next((ln.strip() for ln in body.splitlines() if ln.strip()), None)
        declared_source = meta.get("source_url")
    if meta.get("tenant") and meta["tenant"] != tenant:
        raise _Reject(f"document is for tenant {meta['tenant']!r}, not {tenant!r}")
    if not body.strip():
        raise _Reject("document has no text")
    if not title:
        raise _Reject("document has no title")
    source_url = check_source_url(declared_source, root) if declared_source else rel
    return KBRecord(
        doc_id=f"{tenant}/{rel}",
        tenant=tenant,
        kind="document",
        title=str(title).strip(),
        source_url=source_url,
        source_file=rel,
        text=body.strip(),
        fmt=fmt,  # type: ignore[arg-type]
        location=rel,
    )


def load_file(path: Path, root: Path, tenant: str) -> tuple[list[KBRecord], list[Rejection]]:
    """Records of one file, and the rejections (per line for Q&A files, whole file otherwise)."""
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return [], [
            Rejection(rel, None, f"unsupported file type {suffix or '(none)'}; supported: {sorted(SUPPORTED_SUFFIXES)}")
        ]
    records: list[KBRecord] = []
    rejections: list[Rejection] = []
    try:
        text = _read_text(path)
        ctx = {"tenant": tenant, "rel": rel, "root": root}
        if suffix in QA_SUFFIXES:
            items = _jsonl_records(text, **ctx) if suffix == ".jsonl" else _csv_records(text, **ctx)
            for item in items:
                if isinstance(item, _Reject):
                    rejections.append(Rejection(rel, item.line, item.reason))
                else:
                    records.append(item)
            if not records and not rejections:
                rejections.append(Rejection(rel, None, "no records in file"))
        else:
            records.append(_document_record(text, fmt=DOC_SUFFIXES[suffix], **ctx))
    except _Reject as rej:
        rejections.append(Rejection(rel, rej.line, rej.reason))
    except OSError as exc:
        rejections.append(Rejection(rel, None, f"cannot read file: {exc.strerror}"))
    return records, rejections


def load_folder(root: Path, tenant: str) -> LoadResult:
    """Every record under ``root`` (recursively, hidden files skipped), with duplicate ids rejected."""
    root = root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"knowledge-base folder {root} does not exist")
    result = LoadResult()
    seen: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        records, rejections = load_file(path, root, tenant)
        result.files.append(path.relative_to(root).as_posix())
        result.rejections.extend(rejections)
        result.records.extend(reject_duplicates(records, seen, result.rejections))
    return result


def reject_duplicates(records: list[KBRecord], seen: dict[str, str], rejections: list[Rejection]) -> list[KBRecord]:
    """The records whose id is not in ``seen`` (id → first location, updated); each repeat becomes a rejection."""
    unique = []
    for record in records:
        if record.doc_id in seen:
            file, _, line = record.location.rpartition(":")
            rejections.append(
                Rejection(
                    file or record.location,
                    int(line) if line.isdigit() else None,
                    f"duplicate id {record.doc_id.split('/', 1)[1]!r} (first at {seen[record.doc_id]})",
                )
            )
            continue
        seen[record.doc_id] = record.location
        unique.append(record)
    return unique
