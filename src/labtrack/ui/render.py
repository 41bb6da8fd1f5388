"""Rendering pages and serving the UI's static files.

Static files are read once per process and served from memory, gzip-compressed for browsers
that accept it, with an ETag. Their URLs carry a content hash (``?v=``), so they can be cached
for a year and a new labtrack version is never mixed with an old script.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import mimetypes
import threading
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2

from labtrack import __version__
from labtrack.http import Request, Response

PLOTLY_PATH = "vendor/plotly.min.js"
_gzip_lock = threading.Lock()
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

# A strict policy: scripts and styles from this server only, data only from this server. Plotly
# sets inline styles on its SVG; its WebGL traces (parallel coordinates) compile shaders with
# `new Function`, hence 'unsafe-eval' on the pages that draw charts.
_CSP = (
    "default-src 'self'; script-src 'self'{eval}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; frame-src 'self' blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)


@dataclass
class Asset:
    body: bytes
    content_type: str
    etag: str
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self, wait: bool = True) -> bytes | None:
        """The compressed body; None when ``wait`` is false and another thread is making it
        (a request then gets the plain body rather than block the event loop)."""
        if self._gzipped is None:
            if not _gzip_lock.acquire(blocking=wait):
                return None
            try:
                if self._gzipped is None:
                    self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
            finally:
                _gzip_lock.release()
        return self._gzipped


class Assets:
    """The UI's static files by relative path (plus Plotly.js), loaded on first use."""

    def __init__(self) -> None:
        self._files: dict[str, Asset] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Asset]:
        files: dict[str, Asset] = {}
        root = resources.files("labtrack.ui") / "static"
        stack = [(root, "")]
        while stack:
            folder, prefix = stack.pop()
            for entry in folder.iterdir():
                rel = prefix + entry.name
                if entry.is_dir():
                    stack.append((entry, rel + "/"))
                elif not entry.name.startswith("."):
                    files[rel] = _asset(rel, entry.read_bytes())
        return files

    @property
    def files(self) -> dict[str, Asset]:
        if self._files is None:
            with self._lock:
                if self._files is None:
                    self._files = self._load()
        return self._files

    def get(self, rel: str) -> Asset | None:
        if rel == PLOTLY_PATH:
            return _plotly()
        return self.files.get(rel)

    def version_of(self, rel: str) -> str:
        if rel == PLOTLY_PATH:
            return _plotly_version()
        asset = self.files.get(rel)
        return asset.etag[:12] if asset else __version__


def _asset(rel: str, body: bytes) -> Asset:
    suffix = Path(rel).suffix
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(rel)[0] or "application/octet-stream"
    return Asset(body, content_type, hashlib.sha256(body).hexdigest()[:24])


_plotly_asset: Asset | None = None
_plotly_lock = threading.Lock()


def plotly_file() -> Path | None:
    """plotly.min.js inside the installed ``plotly`` Python package, if it is installed."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    return None


def _plotly_version() -> str:
    try:
        return "plotly-" + version("plotly")
    except PackageNotFoundError:
        return "missing"


def _plotly() -> Asset | None:
    global _plotly_asset
    if _plotly_asset is None:
        with _plotly_lock:
            if _plotly_asset is None:
                path = plotly_file()
                if path is None:
                    return None
                _plotly_asset = _asset(PLOTLY_PATH, path.read_bytes())
    return _plotly_asset


ASSETS = Assets()
_warmed = threading.Event()


def _warm_plotly() -> None:
    """Compress Plotly.js (4.8 MB) once per process in the background, when the first page is
    rendered, so that the first chart page does not wait for it."""
    if _warmed.is_set():
        return
    _warmed.set()

    def work() -> None:
        asset = _plotly()
        if asset is not None:
            asset.gzipped()

    threading.Thread(target=work, name="labtrack-warm-plotly", daemon=True).start()


def serve_asset(req: Request, rel: str) -> Response | None:
    asset = ASSETS.get(rel)
    if asset is None:
        return None
    etag = f'"{asset.etag}"'.encode()
    headers = [(b"etag", etag), (b"vary", b"accept-encoding")]
    if req.query.get("v"):
        headers.append((b"cache-control", b"public, max-age=31536000, immutable"))
    else:
        headers.append((b"cache-control", b"no-cache"))
    if req.headers.get("if-none-match") == etag.decode():
        return Response(b"", 304, headers=headers)
    body = asset.body
    if "gzip" in req.headers.get("accept-encoding", "") and len(body) > 1024:
        compressed = asset.gzipped(wait=False)
        if compressed is not None:
            body = compressed
            headers.append((b"content-encoding", b"gzip"))
    return Response(body, 200, asset.content_type, headers)


# --- templates ----------------------------------------------------------------------------------
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("labtrack.ui", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def page_response(
    req: Request, template: str, context: dict[str, Any], *, status: int = 200, charts: bool = False
) -> Response:
    _warm_plotly()
    html = _env.get_template(template).render(**context).encode()
    headers = [
        (b"content-security-policy", _CSP.format(eval=" 'unsafe-eval'" if charts else "").encode()),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"same-origin"),
    ]
    return Response(html, status, "text/html; charset=utf-8", headers)


def static_url(prefix: str, rel: str) -> str:
    return f"{prefix}/static/{rel}?v={ASSETS.version_of(rel)}"
