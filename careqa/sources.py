"""Source links that work from a browser: signed, expiring, tenant-bound URLs to knowledge-base files.

A citation to an external page is returned as it is. A citation to a file of the tenant's own
knowledge base becomes ``/sources/<tenant>/<path>?exp=…&sig=…#section``: the HMAC binds tenant, path
and expiry, so a link can be opened in a new tab (no Authorization header) yet never reveals another
tenant's file, and it stops working after ``limits.source_link_ttl_s``.

The files themselves come from a ``SourceStore`` chosen by ``sources.driver``: each tenant's ``kb_path``
folder locally (``LocalSourceStore``), the knowledge-base bucket on AWS (``S3SourceStore``, objects under
``<tenant>/<path>``, the layout the ingestion Lambda reads). Both refuse the same paths, cap what they
read at ``sources.max_bytes``, and hand back bytes that ``render_source`` turns into the same page.

Errors: ``NotFoundError`` (404) for a missing file, an unknown tenant or a refused path, alike, so a
link reveals nothing about what else exists; ``SourceTooLargeError`` (502) over the cap;
``SourceStoreError`` (502) when the store cannot be read. The last two never carry the bucket, key or
AWS error to the browser; the log gets the error code.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import markdown

from careqa.errors import CareQAError, NotFoundError
from careqa.knowledge import _FRONT_MATTER, html_to_markdown

if TYPE_CHECKING:
    from careqa.config import Settings

log = logging.getLogger("careqa.sources")


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
        # compare_digest refuses non-ASCII strings (a TypeError, so a 500); no valid signature has such characters
        if not sig.isascii() or not hmac.compare_digest(self._sig(tenant, path, exp), sig):
            raise NotFoundError("invalid source link")


# ---------------------------------------------------------------------------------------------------
# Stores


class SourceStoreError(CareQAError):
    """The knowledge-base store could not be read (denied, unreachable, misconfigured)."""

    code = "source_unavailable"


class SourceTooLargeError(CareQAError):
    """The document is larger than ``sources.max_bytes``."""

    code = "source_too_large"


class SourceStore(Protocol):
    """Where the knowledge-base files behind source links are read from."""

    def read(self, tenant: str, path: str) -> bytes:
        """The file ``path`` of ``tenant``'s knowledge base; raises the errors in this module's docstring."""
        ...


_NOT_FOUND = "no such source document"


def checked_path(path: str) -> str:
    """``path`` if it names a file inside a tenant's knowledge base, else ``NotFoundError``.

    The same rule as the ingestion Lambda's for object keys: relative, '/'-separated, no empty, '.' or '..'
    segment, no backslash or control character. So nothing can climb out of a tenant's folder or prefix,
    and every document the Lambda indexed under ``<tenant>/<path>`` passes.
    """
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(ord(c) < 32 or ord(c) == 127 for c in path)
        or any(part in {"", ".", ".."} for part in parts)
    ):
        raise NotFoundError(_NOT_FOUND)
    return path


class LocalSourceStore:
    """Each tenant's ``kb_path`` folder (local runs)."""

    def __init__(self, roots: dict[str, Path], *, max_bytes: int) -> None:
        self._roots = {tenant: root.resolve() for tenant, root in roots.items()}
        self.max_bytes = max_bytes

    def read(self, tenant: str, path: str) -> bytes:
        root = self._roots.get(tenant)
        if root is None:
            raise NotFoundError("this tenant has no local knowledge-base folder")
        target = (root / checked_path(path)).resolve()
        # resolve() follows symlinks: a link inside the folder must not lead outside it.
        if not target.is_relative_to(root) or not target.is_file():
            raise NotFoundError(_NOT_FOUND)
        if target.stat().st_size > self.max_bytes:
            raise SourceTooLargeError(f"this source document is larger than {self.max_bytes} bytes")
        return target.read_bytes()


#: S3 error codes for a key that does not exist (GetObject answers NoSuchKey; HEAD-style answers 404)
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3SourceStore:
    """The knowledge-base bucket: ``<tenant>/<path>`` objects, as the ingestion Lambda reads them.

    A missing key is a 404 only if the caller may list the prefix (S3 answers 403 otherwise), which is why
    the service's task role has ``s3:ListBucket`` limited to its tenants' prefixes beside ``s3:GetObject``.
    """

    def __init__(self, bucket: str, *, tenants: frozenset[str] | set[str], max_bytes: int, client: Any) -> None:
        self.bucket = bucket
        self.tenants = frozenset(tenants)
        self.max_bytes = max_bytes
        self._s3 = client

    def read(self, tenant: str, path: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        if tenant not in self.tenants:
            raise NotFoundError(_NOT_FOUND)
        key = f"{tenant}/{checked_path(path)}"
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                if int(response.get("ContentLength", 0)) > self.max_bytes:
                    raise SourceTooLargeError(f"this source document is larger than {self.max_bytes} bytes")
                # Read one byte past the cap: a length header that understates the object still cannot
                # pull more than that into memory.
                data: bytes = body.read(self.max_bytes + 1)
            finally:
                body.close()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            if code in _MISSING:
                raise NotFoundError(_NOT_FOUND) from None
            log.warning("source store: GetObject failed for tenant=%s path_chars=%d: %s", tenant, len(path), code)
            raise SourceStoreError(
                "the knowledge-base store could not be read; try again, and tell your administrator if it persists"
            ) from None
        except BotoCoreError as exc:
            log.warning("source store: S3 unreachable for tenant=%s: %s", tenant, type(exc).__name__)
            raise SourceStoreError("the knowledge-base store could not be reached; please try again later") from None
        if len(data) > self.max_bytes:
            raise SourceTooLargeError(f"this source document is larger than {self.max_bytes} bytes")
        return data


def open_source_store(settings: Settings) -> LocalSourceStore | S3SourceStore:
    """The store ``settings.sources`` names."""
    config = settings.sources
    if config.driver == "s3":
        import boto3
        from botocore.config import Config

        assert config.bucket is not None, "validated by SourcesConfig"
        client = boto3.client(
            "s3",
            region_name=config.region,
            # A source page is opened by a person waiting for it: fail within seconds, retry a little.
            config=Config(
                connect_timeout=config.timeout_s,
                read_timeout=config.timeout_s,
                retries={"total_max_attempts": 3, "mode": "standard"},
            ),
        )
        return S3SourceStore(
            config.bucket, tenants={t.id for t in settings.tenants}, max_bytes=config.max_bytes, client=client
        )
    roots = {t.id: t.kb_path for t in settings.tenants if t.kb_path is not None}
    return LocalSourceStore(roots, max_bytes=config.max_bytes)


# ---------------------------------------------------------------------------------------------------
# Rendering


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2733}}
h1,h2,h3{{line-height:1.25}} :target{{background:#fff6c8}} pre{{white-space:pre-wrap}}</style></head>
<body><article>{body}</article></body></html>"""


def render_source(path: str, data: bytes) -> tuple[str, str]:
    """A knowledge-base file (its path, for the format and the fallback title, and its bytes) as a standalone
    HTML page. The file's own markup is never served as is."""
    # Ingestion accepts only UTF-8; a file replaced since by one that is not still renders, with U+FFFD.
    text = data.decode("utf-8-sig", errors="replace")
    name = PurePosixPath(path)
    suffix = name.suffix.lower()
    if suffix in {".html", ".htm"}:
        title, _, text = html_to_markdown(text)
        suffix = ".md"
        title = title or name.stem
    else:
        match = _FRONT_MATTER.match(text)
        title = name.stem
        if match:
            import yaml

            try:
                meta = yaml.safe_load(match.group(1)) or {}
            except yaml.YAMLError:  # ingestion rejects such a file; one replaced since still renders, untitled
                meta = {}
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
