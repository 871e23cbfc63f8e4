"""Split records into chunks with LangChain's text splitters.

Q&A pairs get a *question* chunk, embedded from the question alone (so an agent's question finds a
pair by the similarity of the two questions), plus answer chunks embedded from question and answer.
Documents are split on Markdown headings first, so each chunk knows its section and can link to it.
"""

from __future__ import annotations

import hashlib
import json

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter
from markdown.extensions.toc import slugify

from careqa.types import Chunk, KBRecord

#: bump when chunking changes, so re-ingesting re-chunks every document
CHUNKER_VERSION = "1"
CHUNK_CHARS = 900
CHUNK_OVERLAP = 120

_splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_CHARS, chunk_overlap=CHUNK_OVERLAP)
_headers = MarkdownHeaderTextSplitter(
    headers_to_split_on=[("#", "h1"), ("##", "h2"), ("###", "h3")], strip_headers=True
)


def content_hash(record: KBRecord) -> str:
    """A hash of everything that shapes a record's chunks: unchanged hash, nothing to re-embed."""
    payload = json.dumps(
        [CHUNKER_VERSION, record.kind, record.title, record.source_url, record.question, record.text, record.fmt]
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _with_anchor(url: str, heading: str | None) -> str:
    if not heading or "#" in url:
        return url
    return f"{url}#{slugify(heading, '-')}"


def chunk_record(record: KBRecord, digest: str | None = None) -> list[Chunk]:
    """The chunks of one record; chunk ids embed the content hash so a new version never overwrites in place."""
    digest = digest or content_hash(record)
    base = {
        "doc_id": record.doc_id,
        "tenant": record.tenant,
        "title": record.title,
        "source_file": record.source_file,
        "content_hash": digest,
    }
    chunks: list[Chunk] = []

    def add(kind: str, text: str, embed_text: str, url: str) -> None:
        chunks.append(
            Chunk(
                chunk_id=f"{record.doc_id}::{digest[:12]}::{len(chunks)}",
                kind=kind,  # type: ignore[arg-type]
                text=text,
                embed_text=embed_text,
                question=record.question,
                position=len(chunks),
                source_url=url,
                **base,
            )
        )

    if record.kind == "qa":
        assert record.question is not None
        parts = _splitter.split_text(record.text) or [record.text]
        add("question", f"{record.question}\n{parts[0]}", record.question, record.source_url)
        for part in parts:
            text = f"{record.question}\n{part}"
            add("answer", text, text, record.source_url)
        return chunks

    # Plain text has no headings to split on: one section, no anchor.
    sections: list[tuple[str | None, str]] = [
        (s.metadata.get("h3") or s.metadata.get("h2") or s.metadata.get("h1"), s.page_content)
        for s in (_headers.split_text(record.text) if record.fmt in {"markdown", "html"} else [])
    ] or [(None, record.text)]
    for heading, body in sections:
        for part in _splitter.split_text(body):
            label = f"{record.title} — {heading}" if heading and heading != record.title else record.title
            text = f"{label}\n{part}"
            add("section", text, text, _with_anchor(record.source_url, heading))
    return chunks
