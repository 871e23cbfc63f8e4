"""Streamed model responses: reassemble lines from arbitrary byte chunks and read the events they carry.

``InvokeEndpointWithResponseStream`` hands the container's output over as ``PayloadPart`` chunks whose
boundaries have nothing to do with the payload's: one server-sent event may arrive in three parts, three
events may arrive in one, and a multi-byte UTF-8 character may be cut in half. So the stream is buffered
as bytes and split on newlines first, and only whole lines are decoded and parsed.

Two line formats occur behind JumpStart containers and both are read here:

* server-sent events, as TGI and OpenAI-compatible servers write them: ``data:{...}`` lines separated by
  blank lines, with ``:`` comment lines and ``event:``/``id:``/``retry:`` fields that carry no payload,
  and an optional ``data: [DONE]`` terminator;
* JSON lines (one JSON object per line, no ``data:`` prefix), as LMI containers write them.

What an event *means* (a TGI token, a chat-completion delta) is the codec's business; this module only
turns chunks into JSON values, so every codec shares one tested piece of buffering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from endpoints.errors import ModelResponseError

#: the data of the event that ends an OpenAI-style stream
DONE = "[DONE]"
_IGNORED_FIELDS = ("event:", "id:", "retry:")


class LineBuffer:
    """Reassembles text lines from byte chunks cut at arbitrary offsets."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        """Add a chunk and return the lines it completed (without their line endings)."""
        self._pending.extend(chunk)
        *complete, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        # A newline byte never occurs inside a multi-byte UTF-8 sequence, so whole lines decode cleanly.
        return [_decode(bytes(line).rstrip(b"\r")) for line in complete]

    def flush(self) -> list[str]:
        """The last line when the stream ended without a newline (an empty list otherwise)."""
        rest, self._pending = bytes(self._pending).rstrip(b"\r"), bytearray()
        return [_decode(rest)] if rest else []


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelResponseError(f"malformed stream: a line is not UTF-8 ({exc.reason}): {line[:80]!r}") from exc


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a chunked byte stream, each yielded as soon as its newline arrives."""
    buffer = LineBuffer()
    for chunk in chunks:
        yield from buffer.feed(chunk)
    yield from buffer.flush()


def event_data(line: str) -> str | None:
    """The payload text of one stream line, or None for lines that carry none (blank, comment, other fields)."""
    text = line.strip()
    if not text or text.startswith(":") or text.startswith(_IGNORED_FIELDS):
        return None
    if text.startswith("data:"):
        return text[len("data:") :].strip()
    return text  # a JSON-lines stream: the whole line is the payload


def iter_events(chunks: Iterable[bytes], *, what: str = "stream") -> Iterator[Any]:
    """Each event's JSON payload from an SSE or JSON-lines byte stream, stopping at ``[DONE]``.

    Each ``data:`` line is one event: the containers this reads never split one JSON payload over
    several ``data:`` lines.
    """
    for line in iter_lines(chunks):
        data = event_data(line)
        if data is None or data == "":
            continue
        if data == DONE:
            return
        try:
            yield json.loads(data)
        except json.JSONDecodeError as exc:
            raise ModelResponseError(f"malformed {what}: an event is not JSON ({exc.msg}): {data[:120]!r}") from exc


def sse_event(payload: Any) -> bytes:
    """One server-sent event carrying ``payload`` as JSON (container side, for local and test streams)."""
    return b"data:" + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"


def sse_done() -> bytes:
    """The event that ends an OpenAI-style stream."""
    return f"data: {DONE}\n\n".encode()


def pseudo_tokens(text: str) -> list[str]:
    """Split text into word-sized pieces that join back to exactly ``text``.

    Stand-in containers have the whole answer at once; streaming it in pieces (rather than as one event)
    keeps consumers honest about concatenating tokens.
    """
    return re.findall(r"\s*\S+|\s+", text)
