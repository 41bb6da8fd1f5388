"""/mlflow/logged-models*: MLflow 3 logged models, and the 2.x ``runs/log-model`` call.

The ids live in the path (``/logged-models/<model_id>[/tags[/<key>]|/params|/artifacts/...]``),
so each method has one prefix route that splits the remainder itself.
"""

from __future__ import annotations

from typing import Any

from labtrack.api import now_ms
from labtrack.api.registry import current_user
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import logged_models as store
from labtrack.validation import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    check_key,
    parse_experiment_id,
    truncate,
)
from labtrack.wire import MlflowError, Params, bad_value, invalid, missing

routes = RouteTable()

BASE = "/mlflow/logged-models"
MODEL_READ = Access("logged_model", "READ", "path")
MODEL_EDIT = Access("logged_model", "EDIT", "path")
# One DELETE route serves both model and tag deletion; the stricter permission guards both.
MODEL_MANAGE = Access("logged_model", "MANAGE", "path")


def _pairs(params: Params, field: str, what: str, limit: int) -> list[tuple[str, str]]:
    out = []
    for item in params.objects(field):
        key = item.str("key", required=True)
        check_key(key, what)
        out.append((key, truncate(item.str("value", default=""), limit)))
    return out


def _split(req: Request) -> tuple[str, list[str]]:
    rest = req.path_params.get("rest", "")
    model_id, *tail = rest.split("/")
    if not model_id:
        raise _no_endpoint(req)
    return model_id, tail


def _no_endpoint(req: Request) -> MlflowError:
    return MlflowError(f"No API endpoint at {req.path}", "ENDPOINT_NOT_FOUND")


def _body_model_id(params: Params, model_id: str) -> None:
    """The stock handlers read the id from the body too; a different one is refused."""
    body_id = params.str("model_id")
    if body_id and body_id != model_id:
        raise invalid(f"model_id '{body_id}' in the body does not match '{model_id}' in the path")


# --- create and search ------------------------------------------------------------------------
@routes.api("POST", BASE, access=Access("experiment", "EDIT", "experiment_id"))
async def create(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    name = params.str("name") or None
    store.check_name(name)
    model = await req.app.db.write(
        store.create,
        experiment_id=experiment_id,
        name=name,
        model_type=params.str("model_type"),
        source_run_id=params.str("source_run_id"),
        params=_pairs(params, "params", "Param", MAX_PARAM_VALUE_LENGTH),
        tags=_pairs(params, "tags", "Tag", MAX_TAG_VALUE_LENGTH),
        creator=current_user(req),
        now=now_ms(),
    )
    return {"model": model}


@routes.api("POST", BASE + "/search", access=Access("experiment", "READ", "experiment_ids"))
async def search(req: Request) -> dict:
    params = await read_params(req)
    raw_ids = params.str_list("experiment_ids")
    if not raw_ids and params.raw("experiment_ids") is None:
        raise missing("experiment_ids")
    experiment_ids = [parse_experiment_id(e) for e in raw_ids]
    max_results = params.int("max_results") or store.DEFAULT_MAX_RESULTS
    if not 1 <= max_results <= store.MAX_RESULTS:
        raise bad_value("max_results", max_results)
    datasets = []
    for d in params.objects("datasets"):
        name = d.str("dataset_name")
        if not name:
            raise invalid("`dataset_name` in the `datasets` clause must be specified.")
        datasets.append((name, d.str("dataset_digest") or None))
    order_by: list[dict[str, Any]] = []
    for o in params.objects("order_by"):
        order_by.append(
            {
                "field_name": o.str("field_name", required=True),
                "ascending": o.bool("ascending", default=True),
                "dataset_name": o.str("dataset_name"),
                "dataset_digest": o.str("dataset_digest"),
            }
        )
    if not experiment_ids:
        return {}
    return await req.app.db.read(
        store.search,
        experiment_ids=experiment_ids,
        filter_string=params.str("filter"),
        datasets=datasets,
        order_by=order_by,
        max_results=max_results,
        page_token=params.str("page_token"),
    )


# --- one model --------------------------------------------------------------------------------
@routes.api("GET", BASE + "/", access=MODEL_READ, prefix=True)
async def get_routes(req: Request):
    model_id, tail = _split(req)
    if not tail:
        params = await read_params(req)
        allow_deleted = params.bool("allow_deleted")
        return {"model": await req.app.db.read(store.get, model_id, allow_deleted=allow_deleted)}
    if tail == ["artifacts", "directories"]:
        return await _list_artifacts(req, model_id)
    if tail == ["artifacts", "files"]:
        return await _download_artifact(req, model_id)
    raise _no_endpoint(req)


@routes.api("PATCH", BASE + "/", access=MODEL_EDIT, prefix=True)
async def patch_routes(req: Request) -> dict:
    model_id, tail = _split(req)
    params = await read_params(req)
    _body_model_id(params, model_id)
    if not tail:
        if params.raw("status") is None:
            raise missing("status")
        status = store.parse_status(params.raw("status"))
        return {"model": await req.app.db.write(store.finalize, model_id, status, now_ms())}
    if tail == ["tags"]:
        tags = _pairs(params, "tags", "Tag", MAX_TAG_VALUE_LENGTH)
        await req.app.db.write(store.set_tags, model_id, tags, now_ms())
        return {}
    raise _no_endpoint(req)


@routes.api("DELETE", BASE + "/", access=MODEL_MANAGE, prefix=True)
async def delete_routes(req: Request) -> dict:
    model_id, tail = _split(req)
    if not tail:
        await req.app.db.write(store.delete, model_id, now_ms())
        return {}
    if len(tail) >= 2 and tail[0] == "tags":
        key = "/".join(tail[1:])  # tag keys may contain '/'
        await req.app.db.write(store.delete_tag, model_id, key)
        return {}
    raise _no_endpoint(req)


@routes.api("POST", BASE + "/", access=MODEL_EDIT, prefix=True)
async def post_routes(req: Request) -> dict:
    model_id, tail = _split(req)
    if tail != ["params"]:
        raise _no_endpoint(req)
    params = await read_params(req)
    _body_model_id(params, model_id)
    logged = _pairs(params, "params", "Param", MAX_PARAM_VALUE_LENGTH)
    await req.app.db.write(store.log_params, model_id, logged, now_ms())
    return {}


# --- artifacts ----------------------------------------------------------------------------------
async def _model_root(req: Request, model_id: str) -> tuple[str, str | None]:
    """(artifact location, its path in our artifact store or None when stored elsewhere)."""
    from labtrack.api.artifacts import store_path

    location = await req.app.db.read(store.artifact_location, model_id)
    return location, store_path(req.app, location)


async def _list_artifacts(req: Request, model_id: str) -> dict:
    from labtrack.artifacts import paths

    params = await read_params(req)
    rel = paths.clean(params.str("artifact_directory_path") or "", allow_root=True)
    location, base = await _model_root(req, model_id)
    result: dict[str, Any] = {"root_uri": location}
    if base is not None:
        artifacts = req.app.artifacts
        entries = await artifacts.call(artifacts.list, paths.join(base, rel))
        if entries:
            files = []
            for entry in entries:
                info: dict[str, Any] = {"path": paths.join(rel, entry.name), "is_dir": entry.is_dir}
                if not entry.is_dir:
                    info["file_size"] = entry.size
                files.append(info)
            result["files"] = files
    return result


async def _download_artifact(req: Request, model_id: str):
    from labtrack.artifacts import paths
    from labtrack.artifacts.serve import download

    params = await read_params(req)
    raw = params.str("artifact_file_path")
    if not raw:
        raise MlflowError(
            'Request must include the "artifact_file_path" query parameter.', "BAD_REQUEST"
        )
    rel = paths.clean_file(raw)
    location, base = await _model_root(req, model_id)
    if base is None:
        raise invalid(
            f"The artifacts at '{location}' are outside this server's artifact store; "
            "read them from their storage directly"
        )
    return await download(req, req.app.artifacts, paths.join(base, rel))


# --- 2.x clients ----------------------------------------------------------------------------------
@routes.api("POST", "/mlflow/runs/log-model", access=Access("run", "EDIT", "run_id"))
async def log_model(req: Request) -> dict:
    """Record an MLmodel in the run tag ``mlflow.log-model.history`` (2.x ``log_model``)."""
    params = await read_params(req)
    run_id = params.str("run_id", required=True)
    model_json = params.str("model_json", required=True)
    await req.app.db.write(store.record_run_log_model, run_id, model_json)
    return {}
