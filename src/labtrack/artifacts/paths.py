"""Artifact path safety and the mapping from artifact URIs to paths inside our store.

Every path a client names is checked here before any backend sees it, so backends only ever
join *clean* relative paths (``a/b/c``) onto their root. What is refused, and why:

- ``..`` segments, absolute paths and backslashes (so ``C:\\...`` too): they climb out of the
  root on some platform or another;
- NUL and other control characters: they truncate or confuse file-system calls and logs;
- ``%`` escapes: the router has already decoded the path once, so a second escape (``%2F``,
  ``%2e%2e``) is an attempt to smuggle a separator past this check;
- ``#``: the stock client refuses names with it in listings, so they could never be read back;
- the reserved top-level folder :data:`RESERVED`, where backends keep multipart staging.

Symlinks cannot be judged from the text; the local backend checks them on disk.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from labtrack.wire import MlflowError, invalid

# Backends keep their own bookkeeping (multipart staging, temp files) under this folder.
RESERVED = ".labtrack"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")

INVALID_PATH = "Invalid path"


def clean(raw: str | None, *, allow_root: bool = False) -> str:
    """A client-supplied artifact path as ``a/b/c``, or a 400 "Invalid path".

    Empty and ``.`` segments are dropped (``a//b/./c`` is ``a/b/c``); the root (``""``) is only
    accepted where ``allow_root`` says so (listings).
    """
    path = raw or ""
    if (
        _CONTROL.search(path)
        or "\\" in path
        or "#" in path
        or path.startswith("/")
        or ("%" in path and unquote(path) != path)
    ):
        raise invalid(INVALID_PATH)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts or (parts and parts[0] == RESERVED):
        raise invalid(INVALID_PATH)
    if not parts and not allow_root:
        raise invalid(INVALID_PATH)
    return "/".join(parts)


def clean_file(raw: str | None) -> str:
    """A path that names a file to write: like :func:`clean`, and not ending in ``/``."""
    if raw and raw.endswith("/"):
        raise invalid(f"Artifact path must name a file, not a directory: '{raw}'")
    return clean(raw)


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def run_of(path: str) -> str | None:
    """The run id when ``path`` lies in a run's default artifact folder ``<exp>/<run>/artifacts``."""
    parts = path.split("/", 3)
    if (
        len(parts) >= 3
        and parts[0].isdigit()
        and _RUN_ID.match(parts[1])
        and parts[2] == "artifacts"
    ):
        return parts[1]
    return None


_PROXY_MARK = "/mlflow-artifacts/artifacts"


def store_path(uri: str, destination: str) -> str | None:
    """Where an artifact URI lives inside our store, or None when it lives elsewhere.

    ``mlflow-artifacts:/<p>`` (with or without a host) and ``http(s)://.../mlflow-artifacts/
    artifacts/<p>`` are the proxied forms the server hands out; a plain URI under the configured
    destination (``s3://bucket/prefix/<p>``, ``/data/artifacts/<p>``, ``file:///data/...``) is
    ours too. The result is cleaned like any client path (``""`` for the root itself).
    """
    if not uri:
        return None
    parsed = urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "mlflow-artifacts":
        rel = parsed.path
    elif scheme in ("http", "https") and _PROXY_MARK in parsed.path:
        rel = parsed.path.split(_PROXY_MARK, 1)[1]
    else:
        rel = _under(uri, destination)
        if rel is None:
            return None
    try:
        return clean(unquote(rel).strip("/"), allow_root=True)
    except MlflowError:
        return None  # a location we could not address safely is not ours to serve or delete


def _under(uri: str, destination: str) -> str | None:
    """The part of ``uri`` below ``destination`` (both plain locations), if it is below it."""
    dest = _plain(destination)
    target = _plain(uri)
    if target == dest:
        return ""
    if target.startswith(dest + "/"):
        return target[len(dest) + 1 :]
    return None


def _plain(location: str) -> str:
    """Compare locations without trailing slashes and with ``file://`` spelled as a path."""
    if location.startswith("file://"):
        location = urlsplit(location).path
    return location.rstrip("/")
