"""Sending an artifact to a browser or client: content type, range requests, streaming.

Content types: text files (by extension, like MLflow's list, plus a few) are ``text/plain``
and images are their image type, both *inline*, so the UI and a browser tab can show them.
Everything else is an attachment. Types that can run script in our origin (HTML, SVG, XML,
JavaScript) are always attachments, and every artifact response carries ``nosniff`` and a
``Content-Security-Policy: sandbox`` so that even a mislabelled file cannot run script here.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import posixpath
import unicodedata
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from urllib.parse import quote

from labtrack.artifacts.base import ArtifactStore, Stat
from labtrack.http import Request
from labtrack.wire import MlflowError, dumps

_TEXT_EXTENSIONS = {
    "txt", "log", "err", "out", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon",
    "toml", "yaml", "yml", "json", "jsonl", "py", "py3", "csv", "tsv", "md", "rst", "ipynb",
    "sql", "sh", "r", "env", "lock", "mlmodel", "mlproject",
}  # fmt: skip
_TEXT_NAMES = {"mlmodel", "mlproject", "license", "readme", "dockerfile", "makefile"}
_INLINE_IMAGES = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif",
    "image/x-icon", "image/vnd.microsoft.icon", "image/tiff",
}  # fmt: skip
# Never shown inline, whatever the extension list above says: a browser would run their script.
_ACTIVE = {
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
    "text/javascript", "application/javascript", "application/x-javascript",
}  # fmt: skip

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", b"sandbox"),
    (b"cache-control", b"no-cache"),
]


def content_type(name: str) -> tuple[str, bool]:
    """(Content-Type, inline?) for a file name."""
    base = name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    guessed = mimetypes.guess_type(base, strict=False)[0]
    if guessed in _ACTIVE:
        return guessed, False
    if (dot and ext.lower() in _TEXT_EXTENSIONS) or (not dot and base.lower() in _TEXT_NAMES):
        return "text/plain; charset=utf-8", True
    if guessed in _INLINE_IMAGES:
        return guessed, True
    if guessed and guessed.startswith("text/"):
        return "text/plain; charset=utf-8", True
    return guessed or "application/octet-stream", False


def disposition(name: str, inline: bool) -> str:
    """A Content-Disposition value that survives any file name (RFC 6266 / 5987)."""
    kind = "inline" if inline else "attachment"
    fallback = (
        unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii") or "download"
    )
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in fallback)
    if fallback == name:
        return f'{kind}; filename="{name}"'
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


UNSATISFIABLE = "unsatisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as [start, end), "unsatisfiable", or None to send everything.

    Malformed or multi-part ranges are ignored (the whole file is sent), as RFC 9110 allows.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


async def download(req: Request, store: ArtifactStore, path: str, info: Stat | None = None):
    """The response for GET/HEAD of the file ``path``: 200, 206, 304 or 416."""
    from labtrack.artifacts.base import is_a_directory, no_such_artifact

    if info is None:
        info = await store.call(store.stat, path)
    if info is None:
        raise no_such_artifact(path)
    if info.is_dir:
        raise is_a_directory(path)
    name = posixpath.basename(path)
    ctype, inline = content_type(name)
    headers = [
        (b"content-type", ctype.encode()),
        (b"content-disposition", disposition(name, inline).encode("latin-1")),
        (b"accept-ranges", b"bytes"),
        *SECURITY_HEADERS,
    ]
    if info.etag:
        headers.append((b"etag", info.etag.encode("latin-1")))
    if info.mtime:
        headers.append((b"last-modified", formatdate(info.mtime, usegmt=True).encode()))

    if info.etag and req.headers.get("if-none-match") == info.etag:
        return FileResponse(None, 304, headers)
    wanted = req.headers.get("range")
    if_range = req.headers.get("if-range")
    if wanted and if_range and if_range != info.etag:
        wanted = None  # the client's copy is stale: send the whole current file
    chosen = parse_range(wanted, info.size)
    if chosen == UNSATISFIABLE:
        body = dumps(
            {"error_code": "INVALID_PARAMETER_VALUE", "message": "Requested range not satisfiable"}
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-range", f"bytes */{info.size}".encode()),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
        ]
        return FileResponse(None, 416, headers, body=body)
    status = 200
    start, end = 0, info.size
    if chosen is not None:
        start, end = chosen  # type: ignore[misc]
        status = 206
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{info.size}".encode()))
    headers.append((b"content-length", str(end - start).encode()))
    if req.method == "HEAD" or end == start:
        return FileResponse(None, status, headers)
    return FileResponse(
        lambda: store.read_stream(path, start, end), status, headers, watch=req.stream
    )


class FileResponse:
    """Streams a body produced on demand, and stops reading storage if the client goes away.

    ``watch`` is the request's body stream: once the (empty) request body is drained, waiting on
    it again returns only when the client disconnects, which is how we notice an abandoned
    download without touching the server's internals.
    """

    def __init__(
        self,
        chunks: Callable[[], AsyncIterator[bytes]] | None,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        body: bytes = b"",
        watch: Callable[[], AsyncIterator[bytes]] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = headers
        self.body = body
        self.watch = watch

    async def send(self, send: Callable) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        if self.chunks is None:
            await send({"type": "http.response.body", "body": self.body})
            return
        gone = asyncio.Event()
        watcher = asyncio.create_task(self._watch(gone)) if self.watch else None
        stream = self.chunks()
        try:
            async for chunk in stream:
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _watch(self, gone: asyncio.Event) -> None:
        assert self.watch is not None
        try:
            async for _ in self.watch():
                pass
            async for _ in self.watch():
                pass
        except MlflowError:
            gone.set()
