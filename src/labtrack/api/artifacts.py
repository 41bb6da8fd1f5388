"""Artifact routes: the ``mlflow-artifacts`` proxy, multipart uploads, UI downloads, run listings.

Everything streams: uploads go from the socket to storage and downloads from storage to the
socket in bounded chunks (see :mod:`labtrack.artifacts.base`), never whole files in memory.
Paths are checked by :mod:`labtrack.artifacts.paths` before storage sees them.

Multipart uploads: the stock client uploads each part with a bare ``PUT`` to the URL we hand
out, without its credentials (it expects a presigned cloud URL). Our part URLs point back at
this server (``/mlflow-artifacts/mpu/part/<upload id>/<n>``) and the upload id is the
capability: 32 random bytes, known only to whoever was allowed to create the upload. So parts
flow through labtrack too, and clients never need storage credentials or a route to storage.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from labtrack.artifacts import paths
from labtrack.artifacts.base import ArtifactStore
from labtrack.artifacts.serve import download
from labtrack.http import Access, Request, Response, RouteTable, read_params
from labtrack.store import artifacts as artifact_db
from labtrack.wire import MlflowError, Params, invalid, missing

if TYPE_CHECKING:
    from labtrack.app import App

routes = RouteTable()

ARTIFACTS = "/mlflow-artifacts/artifacts"
MPU = "/mlflow-artifacts/mpu"
MAX_PARTS = 10_000
UI_UPLOAD_LIMIT = 10 * 1024 * 1024
# The stock client falls back to a single PUT when the message starts with this sentence.
MPU_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")

READ = Access("artifact", "READ", "path")
EDIT = Access("artifact", "EDIT", "path")


# --- helpers --------------------------------------------------------------------------------------
def multipart_uploads_enabled(app: App) -> bool:
    """What /server-info advertises: the stock client then sends files >= 500 MB in parts."""
    settings = app.settings
    store = getattr(app, "artifacts", None)
    return bool(
        settings.serve_artifacts
        and getattr(settings, "multipart_uploads", True)
        and store is not None
        and store.supports_multipart
    )


def _proxy(req: Request) -> ArtifactStore:
    """The store behind the mlflow-artifacts routes, which exist only when proxying is on."""
    if not req.app.settings.serve_artifacts:
        # 501, not the stock 503: the client would retry a 503 for minutes.
        raise MlflowError(
            "This server does not proxy artifacts (started with --no-serve-artifacts)",
            "NOT_IMPLEMENTED",
        )
    return req.app.artifacts


def store_path(app: App, uri: str) -> str | None:
    """Where an artifact URI lives in our store (None: somewhere we do not serve)."""
    for root in (app.settings.artifacts_destination, app.artifacts.location):
        found = paths.store_path(uri, root)
        if found is not None:
            return found
    return None


def _outside(uri: str) -> MlflowError:
    return MlflowError(
        f"The artifacts at '{uri}' are outside this server's artifact store; "
        "read them from their storage directly",
        "NOT_IMPLEMENTED",
    )


def _size_hint(req: Request) -> int | None:
    raw = req.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


async def _refuse_deleted_run(req: Request, path: str) -> None:
    run_id = paths.run_of(path)
    if run_id is None:
        return
    stage = await req.app.db.read(artifact_db.run_stage, run_id)
    if stage is not None and stage != "active":
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is {stage}.")


def _file_info(path: str, entry) -> dict:
    info = {"path": path, "is_dir": entry.is_dir}
    if not entry.is_dir:
        info["file_size"] = entry.size
    return info


def _public_base(req: Request) -> str:
    """The server's URL as this client reaches it (behind a proxy: its X-Forwarded-* headers).

    Only the caller ever sees the URLs built from this, so trusting its headers is safe.
    """
    headers = req.headers
    scheme = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if scheme not in ("http", "https"):
        scheme = req.scope.get("scheme", "http")
    host = headers.get("x-forwarded-host", "").split(",")[0].strip() or headers.get("host", "")
    if not _HOST.match(host):
        server = req.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}{req.app.prefix}"


# --- the mlflow-artifacts service -------------------------------------------------------------------
@routes.api("PUT", ARTIFACTS + "/", prefix=True, access=EDIT)
async def upload(req: Request) -> Response:
    store = _proxy(req)
    path = paths.clean_file(req.path_params["rest"])
    await _refuse_deleted_run(req, path)
    writer = await store.call(store.open_writer, path, _size_hint(req))
    await store.write_stream(writer, req.stream())
    return Response(b"")


@routes.api("GET", ARTIFACTS + "/", prefix=True, access=READ)
async def download_artifact(req: Request):
    store = _proxy(req)
    return await download(req, store, paths.clean(req.path_params["rest"]))


@routes.api("DELETE", ARTIFACTS + "/", prefix=True, access=Access("artifact", "MANAGE", "path"))
async def delete_artifact(req: Request) -> dict:
    store = _proxy(req)
    path = paths.clean(req.path_params["rest"])
    await store.call(store.delete, path)
    return {}


@routes.api("GET", ARTIFACTS, access=READ)
async def list_artifacts(req: Request) -> dict:
    """Basenames only; a file or a missing path lists as ``{}`` (stock behaviour)."""
    store = _proxy(req)
    params = await read_params(req)
    path = paths.clean(params.str("path") or "", allow_root=True)
    entries = await store.call(store.list, path)
    if not entries:
        return {}
    return {"files": [_file_info(e.name, e) for e in entries]}


@routes.api("GET", "/mlflow-artifacts/presigned/", prefix=True, access=READ)
async def presigned_download(req: Request) -> dict:
    # Presigned URLs would hand out direct storage access; downloads always stream through us.
    raise MlflowError(
        "Multipart download is not supported for the current artifact repository",
        "NOT_IMPLEMENTED",
    )


# --- multipart uploads --------------------------------------------------------------------------------
def _mpu_store(req: Request) -> ArtifactStore:
    store = _proxy(req)
    if not multipart_uploads_enabled(req.app):
        raise MlflowError(MPU_UNSUPPORTED, "NOT_IMPLEMENTED")
    return store


def _mpu_target(req: Request, params: Params) -> str:
    """The file a multipart call is about: the URL names the folder, the body's ``path`` (the
    client's local file) gives the file name, as with the stock server."""
    local_file = params.str("path", required=True)
    name = re.split(r"[\\/]", local_file)[-1]
    return paths.clean_file(paths.join(paths.clean(req.path_params["rest"], allow_root=True), name))


def _part_number(raw: str | int | None) -> int:
    number = int(raw) if isinstance(raw, int) or (raw or "").isdigit() else 0
    if not 1 <= number <= MAX_PARTS:
        raise invalid(f"Part numbers go from 1 to {MAX_PARTS}, not {raw!r}")
    return number


@routes.api("POST", MPU + "/create/", prefix=True, access=EDIT)
async def mpu_create(req: Request) -> dict:
    store = _mpu_store(req)
    params = await read_params(req)
    path = _mpu_target(req, params)
    num_parts = params.int("num_parts", default=1)
    if not 1 <= num_parts <= MAX_PARTS:
        raise invalid(f"num_parts must be between 1 and {MAX_PARTS}, not {num_parts}")
    await _refuse_deleted_run(req, path)
    upload_id = await store.call(store.mpu_create, path)
    base = f"{_public_base(req)}/api/2.0{MPU}/part/{upload_id}"
    return {
        "upload_id": upload_id,
        "credentials": [{"url": f"{base}/{n}", "part_number": n} for n in range(1, num_parts + 1)],
    }


@routes.api("PUT", MPU + "/part/", prefix=True, public=True)
async def mpu_part(req: Request) -> Response:
    """One part, sent by the client without credentials: the upload id is the capability."""
    store = _mpu_store(req)
    upload_id, _, number = req.path_params["rest"].partition("/")
    writer = await store.call(
        store.mpu_part_writer, upload_id, _part_number(number), _size_hint(req)
    )
    _, etag = await store.write_stream(writer, req.stream())
    if not etag.startswith('"'):
        etag = f'"{etag}"'
    return Response(b"", headers=[(b"etag", etag.encode("latin-1"))])


async def _own_upload(req: Request, store: ArtifactStore, params: Params) -> tuple[str, str]:
    """(path, upload id) after checking that the upload was created for this very path."""
    path = _mpu_target(req, params)
    upload_id = params.str("upload_id", required=True)
    target = await store.call(store.mpu_target, upload_id)
    if target != path:
        raise invalid(f"Multipart upload {upload_id} was not created for '{path}'")
    return path, upload_id


@routes.api("POST", MPU + "/complete/", prefix=True, access=EDIT)
async def mpu_complete(req: Request) -> dict:
    store = _mpu_store(req)
    params = await read_params(req)
    path, upload_id = await _own_upload(req, store, params)
    parts = [
        (_part_number(p.int("part_number")), p.str("etag") or "") for p in params.objects("parts")
    ]
    if not parts:
        raise missing("parts")
    numbers = [n for n, _ in parts]
    if numbers != sorted(set(numbers)):
        raise invalid("Parts must be listed once each, in increasing part_number order")
    await _refuse_deleted_run(req, path)
    await store.call(store.mpu_complete, upload_id, parts)
    return {}


@routes.api("POST", MPU + "/abort/", prefix=True, access=EDIT)
async def mpu_abort(req: Request) -> dict:
    store = _mpu_store(req)
    params = await read_params(req)
    try:
        _, upload_id = await _own_upload(req, store, params)
    except MlflowError as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}  # already gone: aborting twice is fine
        raise
    await store.call(store.mpu_abort, upload_id)
    return {}


# --- tracking-service routes: run listings and UI downloads ------------------------------------------
def _run_id(params: Params) -> str:
    run_id = params.str("run_id") or params.str("run_uuid")
    if not run_id:
        raise missing("run_id")
    return run_id


@routes.api("GET", "/mlflow/artifacts/list", access=Access("run", "READ", "run_id"))
async def list_run_artifacts(req: Request) -> dict:
    """Run-relative paths with sizes, plus the run's ``root_uri``."""
    params = await read_params(req)
    run_id = _run_id(params)
    rel = paths.clean(params.str("path") or "", allow_root=True)
    root_uri = await req.app.db.read(artifact_db.run_artifact_uri, run_id)
    result: dict = {"root_uri": root_uri}
    base = store_path(req.app, root_uri)
    if base is not None:
        store = req.app.artifacts
        entries = await store.call(store.list, paths.join(base, rel))
        if entries:
            result["files"] = [_file_info(paths.join(rel, e.name), e) for e in entries]
    return result


@routes.raw("GET", "/get-artifact", access=Access("run", "READ", "run_id"))
async def get_artifact(req: Request):
    """The UI's (and 1.x clients') download of one run artifact."""
    params = Params(req.query, from_query=True)
    run_id = _run_id(params)
    rel = paths.clean(params.str("path", required=True))
    root_uri = await req.app.db.read(artifact_db.run_artifact_uri, run_id)
    base = store_path(req.app, root_uri)
    if base is None:
        raise _outside(root_uri)
    return await download(req, req.app.artifacts, paths.join(base, rel))


@routes.raw(
    "GET", "/model-versions/get-artifact", access=Access("registered_model", "READ", "name")
)
async def get_model_version_artifact(req: Request):
    """The UI's download of one file of a registered model version."""
    params = Params(req.query, from_query=True)
    name = params.str("name", required=True)
    version = params.str("version", required=True)
    rel = paths.clean(params.str("path", required=True))
    try:
        from labtrack.store.registry import download_location
    except ImportError:
        raise MlflowError(
            "Model version artifacts cannot be served: this server has no model registry yet",
            "NOT_IMPLEMENTED",
        ) from None
    location = await req.app.db.read(download_location, name, version)
    base = store_path(req.app, location) if urlsplit(location).scheme else None
    if base is None and not urlsplit(location).scheme:
        base = paths.clean(location, allow_root=True)
    if base is None:
        raise _outside(location)
    return await download(req, req.app.artifacts, paths.join(base, rel))


@routes.raw(
    "POST", "/ajax-api/2.0/mlflow/upload-artifact", access=Access("run", "EDIT", "run_uuid")
)
async def ui_upload(req: Request) -> dict:
    """The UI's small-file upload into a run (10 MB at most, like the stock server)."""
    params = Params(req.query, from_query=True)
    run_id = params.str("run_uuid")
    if not run_id:
        raise invalid("Request must specify run_uuid.")
    raw_path = params.str("path")
    if not raw_path:
        raise invalid("Request must specify path.")
    rel = paths.clean_file(raw_path)
    size = _size_hint(req)
    if size is not None and size > UI_UPLOAD_LIMIT:
        raise invalid("Artifact size is too large. Max size is 10MB.")
    if size == 0:
        raise invalid("Request must specify data.")
    root_uri = await req.app.db.read(artifact_db.run_artifact_uri, run_id)
    if await req.app.db.read(artifact_db.run_stage, run_id) != "active":
        raise invalid(f"The run {run_id} must be in the 'active' state.")
    base = store_path(req.app, root_uri)
    if base is None:
        raise _outside(root_uri)
    store = req.app.artifacts
    writer = await store.call(store.open_writer, paths.join(base, rel), size)
    await store.write_stream(writer, _limited(req, UI_UPLOAD_LIMIT))
    return {}


async def _limited(req: Request, limit: int):
    seen = 0
    async for chunk in req.stream():
        seen += len(chunk)
        if seen > limit:
            raise invalid("Artifact size is too large. Max size is 10MB.")
        yield chunk


# --- presigned URLs (tracking service) ---------------------------------------------------------------
async def _presigned(req: Request, what: str) -> dict:
    params = await read_params(req)
    params.str("path", required=True)
    run_id = params.str("run_id")
    if run_id:
        root_uri = await req.app.db.read(artifact_db.run_artifact_uri, run_id)
        scheme = urlsplit(root_uri).scheme
        if scheme in ("http", "https", "mlflow-artifacts"):
            raise invalid(
                f"Presigned {what} is not supported for proxied artifact storage "
                f"(artifact URI scheme: {scheme}). "
                "This endpoint requires a direct cloud storage artifact URI."
            )
    # labtrack never hands out direct storage access.
    raise MlflowError(
        f"Presigned {what} is not supported for the current artifact repository",
        "NOT_IMPLEMENTED",
    )


@routes.api(
    "POST", "/mlflow/artifacts/presigned-upload-url", access=Access("run", "EDIT", "run_id")
)
async def presigned_upload_url(req: Request) -> dict:
    return await _presigned(req, "upload")


@routes.api(
    "POST", "/mlflow/artifacts/presigned-download-url", access=Access("run", "READ", "run_id")
)
async def presigned_download_url(req: Request) -> dict:
    return await _presigned(req, "download")
