"""Model version sources: what a new version may point at, and where its files really are.

A source must name something its registration request can vouch for, or the registry becomes a
way to read other runs' files through the server: a ``runs:/`` source must match ``run_id``, a
``models:/m-...`` source must match ``model_id``, and a source inside the server's artifact store
(``mlflow-artifacts:``, or the same through an http URL) must lie under that run's or logged
model's artifact root. Relative segments, NUL bytes and percent-encoded tricks are refused before
any of that. Sources elsewhere (``s3://``, ``gs://``...) are recorded as given: the client reads
them with its own credentials.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from labtrack.store.db import Conn
from labtrack.wire import invalid

PROMPT_SOURCES = ("dummy-source", "prompt-template")
_PROXY_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")


@dataclass(frozen=True)
class ModelRef:
    """A ``models:/`` URI that names a registered model version (not a logged model)."""

    uri: str
    name: str
    version: int | None = None
    stage: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class ResolvedSource:
    source: str
    run_id: str | None
    model_id: str | None
    storage_location: str | None


# (conn, ref) -> (name, version, run_id, model_id, download location)
VersionLookup = Callable[[Conn, ModelRef], tuple[str, int, str, "str | None", str]]


def _bad(source: str, why: str) -> Exception:
    return invalid(f"Invalid model version source: '{source}'. {why}")


def _must_identify(source: str, field: str) -> Exception:
    return _bad(
        source,
        f"The {field} request parameter must identify the run or logged model whose artifacts "
        "contain the source.",
    )


def _fully_unquoted(value: str) -> str:
    while (once := unquote(value)) != value:
        value = once
    return value


def _check_no_traversal(source: str) -> None:
    """Refuse relative segments and NUL bytes, however they are encoded."""
    decoded = _fully_unquoted(source)
    path = re.sub(r"/+", "/", urlsplit(decoded).path).rstrip("/")
    segments = decoded.split("/")
    if (
        "\x00" in decoded
        or ".." in segments
        or any(seg in ("..", ".") for seg in path.split("/"))
        or (path and posixpath.normpath(path) != path)
    ):
        raise _bad(
            source,
            "Sources must be absolute URIs or paths without '.' or '..' segments.",
        )


def _parts(uri: str) -> tuple[str, str, tuple[str, ...]]:
    parsed = urlsplit(uri)
    parts = tuple(_fully_unquoted(p) for p in parsed.path.split("/") if p)
    return parsed.scheme.lower(), parsed.netloc.lower(), parts


def is_proxied(source: str) -> bool:
    """A source in the server's own artifact store (mlflow-artifacts:, or its http route)."""
    scheme, _, parts = _parts(source)
    if scheme == "mlflow-artifacts":
        return True
    n = len(_PROXY_ROUTE)
    return scheme in ("http", "https") and any(
        parts[i : i + n] == _PROXY_ROUTE for i in range(len(parts) - n + 1)
    )


def within(source: str, root: str) -> bool:
    s_scheme, s_host, s_parts = _parts(source)
    r_scheme, r_host, r_parts = _parts(root)
    return (
        s_scheme == r_scheme
        and s_host == r_host
        and bool(r_parts)
        and s_parts[: len(r_parts)] == r_parts
    )


def _is_local(uri: str) -> bool:
    scheme = urlsplit(uri).scheme.lower()
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local_path(uri: str) -> str:
    return os.path.realpath(urlsplit(uri).path if uri.startswith("file:") else uri)


def _local_within(source: str, root: str | None) -> bool:
    if not root or not _is_local(root):
        return False
    src, base = _local_path(source), _local_path(root)
    return src == base or src.startswith(base.rstrip(os.sep) + os.sep)


def parse_models_uri(source: str) -> ModelRef | str:
    """A ``models:/`` URI: a ModelRef for registry references, the id string for logged models."""
    parsed = urlsplit(source)
    path = parsed.path
    parts = path.lstrip("/").split("/") if path.startswith("/") and len(path) > 1 else []
    if not parts or len(parts) > 2 or not parts[0].strip():
        raise _bad(
            source,
            "models:/ URIs are models:/<model_id>, models:/<name>/<version|stage|latest> or "
            "models:/<name>@<alias>.",
        )
    if len(parts) == 2:
        name, suffix = parts
        if not suffix.strip():
            raise _bad(source, "The part after the model name is empty.")
        if suffix.isdigit():
            return ModelRef(source, name, version=int(suffix))
        if suffix.lower() == "latest":
            return ModelRef(source, name)
        return ModelRef(source, name, stage=suffix)
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name or not alias.strip():
            raise _bad(source, "An alias URI is models:/<name>@<alias>.")
        return ModelRef(source, name, alias=alias)
    return parts[0]


def resolve_source(
    conn: Conn,
    *,
    source: str,
    run_id: str | None,
    model_id: str | None,
    prompt: bool,
    lookup_version: VersionLookup,
) -> ResolvedSource:
    """Validate a new version's source against its run or logged model; resolve its location.

    ``run_id``/``model_id`` are None when the request did not send them.
    """
    if "\x00" in source:
        raise _bad(source.replace("\x00", "\\0"), "NUL bytes are not allowed.")
    if prompt:
        if source not in PROMPT_SOURCES:
            raise invalid(
                f"Invalid prompt source: '{source}'. Prompt versions use one of the placeholder "
                f"sources {list(PROMPT_SOURCES)}."
            )
        return ResolvedSource(source, run_id, model_id or None, None)
    parsed = urlsplit(source)
    scheme = parsed.scheme.lower()
    if scheme == "models":
        if parsed.netloc:
            raise _bad(source, "models:/ sources must refer to this server's registry.")
        ref = parse_models_uri(source)
        if isinstance(ref, ModelRef):
            return _from_registered_version(conn, ref, run_id, model_id, lookup_version)
    if model_id:
        return _from_logged_model(conn, source, scheme, run_id, model_id)
    return _from_run(conn, source, scheme, run_id)


def _from_registered_version(
    conn: Conn,
    ref: ModelRef,
    run_id: str | None,
    model_id: str | None,
    lookup_version: VersionLookup,
) -> ResolvedSource:
    name, version, ref_run, ref_model, location = lookup_version(conn, ref)
    if (run_id is not None and run_id != ref_run) or (
        model_id is not None and model_id != (ref_model or "")
    ):
        raise _bad(ref.uri, "run_id and model_id must match those of the referenced model version.")
    return ResolvedSource(
        f"models:/{name}/{version}",
        run_id if run_id is not None else ref_run,
        (model_id if model_id is not None else ref_model) or None,
        location,
    )


def _from_logged_model(
    conn: Conn, source: str, scheme: str, run_id: str | None, model_id: str
) -> ResolvedSource:
    row = conn.one(
        "SELECT artifact_location, source_run_id FROM logged_models"
        " WHERE model_id = ? AND lifecycle_stage = 'active'",
        (model_id,),
    )
    if row is None:
        raise _must_identify(source, "model_id")
    location, source_run = row
    if _is_local(source):
        if _local_within(source, location):
            return ResolvedSource(source, run_id or source_run, model_id, source)
        raise _bad(
            source,
            "A local path is accepted only inside the artifact directory of the logged model "
            "named by model_id.",
        )
    _check_no_traversal(source)
    storage = source
    if scheme == "models":
        if parse_models_uri(source) != model_id:
            raise _must_identify(source, "model_id")
        storage = location
    elif scheme == "runs" or (is_proxied(source) and not within(source, location)):
        raise _must_identify(source, "model_id")
    return ResolvedSource(source, run_id or source_run or "", model_id, storage)


def _run_artifact_uri(conn: Conn, run_id: str | None) -> str | None:
    if not run_id:
        return None
    return conn.scalar("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))


def _from_run(conn: Conn, source: str, scheme: str, run_id: str | None) -> ResolvedSource:
    if _is_local(source):
        if _local_within(source, _run_artifact_uri(conn, run_id)):
            return ResolvedSource(source, run_id, None, source)
        raise _bad(
            source,
            "To use a local path as a model version source, send the run_id of the run whose "
            "artifact directory contains it.",
        )
    _check_no_traversal(source)
    parsed = urlsplit(source)
    if scheme == "runs":
        source_run = parsed.path.lstrip("/").split("/", 1)[0]
        if parsed.netloc or not run_id or source_run != run_id:
            raise _must_identify(source, "run_id")
    elif scheme == "models":
        raise _must_identify(source, "model_id")
    elif is_proxied(source):
        root = _run_artifact_uri(conn, run_id)
        if root is None or not within(source, root):
            raise _must_identify(source, "run_id")
    return ResolvedSource(source, run_id, None, source)
