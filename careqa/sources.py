"""Source links that work from a browser: signed, expiring, tenant-bound URLs to knowledge-base files.

A citation to an external page is returned as it is. A citation to a file of the tenant's own
knowledge base becomes ``/sources/<tenant>/<path>?exp=…&sig=…#section``: the HMAC binds tenant, path
and expiry, so a link can be opened in a new tab (no Authorization header) yet never reveals another
tenant's file, and it stops working after ``limits.source_link_ttl_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import markdown

from careqa.errors import NotFoundError
from careqa.knowledge import _FRONT_MATTER, html_to_markdown


class LinkSigner:
    def __init__(self, secret: bytes, ttl_s: int, *, clock: object = time.time) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock

    def _sig(self, tenant: str, path: str, exp: int) -> str:
        msg = f"{tenant}\n{path}\n{exp}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def link(self, tenant: str, source_url: str) -> str:
        parts = urlsplit(source_url)
        if parts.scheme:
            return source_url
        exp = int(self._clock()) + self.ttl_s  # type: ignore[operator]
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        return f"/sources/{tenant}/{quote(parts.path)}?exp={exp}&sig={self._sig(tenant, parts.path, exp)}{fragment}"

    def verify(self, tenant: str, path: str, exp: int, sig: str) -> None:
        if exp < self._clock():  # type: ignore[operator]
            raise NotFoundError("this source link has expired; ask the question again for a fresh link")
        if not hmac.compare_digest(self._sig(tenant, path, exp), sig):
            raise NotFoundError("invalid source link")


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2733}}
h1,h2,h3{{line-height:1.25}} :target{{background:#fff6c8}} pre{{white-space:pre-wrap}}</style></head>
<body><article>{body}</article></body></html>"""


def render_source(file: Path) -> tuple[str, str]:
    """A knowledge-base file as a standalone HTML page (its own markup is never served as is)."""
    text = file.read_text(encoding="utf-8-sig")
    suffix = file.suffix.lower()
    if suffix in {".html", ".htm"}:
        title, _, text = html_to_markdown(text)
        suffix = ".md"
        title = title or file.stem
    else:
        match = _FRONT_MATTER.match(text)
        title = file.stem
        if match:
            import yaml

            meta = yaml.safe_load(match.group(1)) or {}
            title = str(meta.get("title") or title) if isinstance(meta, dict) else title
            text = text[match.end() :]
    if suffix in {".md", ".markdown"}:
        # Raw HTML in the source is escaped, not rendered: a knowledge-base file cannot inject script.
        body = markdown.markdown(html.escape(text, quote=False), extensions=["toc", "tables", "sane_lists"])
        if not body.lstrip().startswith("<h1"):
            body = f"<h1>{html.escape(title)}</h1>\n{body}"
    else:
        body = f"<h1>{html.escape(title)}</h1>\n<pre>{html.escape(text)}</pre>"
    return title, PAGE.format(title=html.escape(title), body=body)


def resolve_source(kb_root: Path, path: str) -> Path:
    root = kb_root.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFoundError("no such source document")
    return target
