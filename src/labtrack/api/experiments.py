"""/mlflow/experiments/*: create, read, search, rename, delete, restore, tags."""

from __future__ import annotations

from labtrack.api import now_ms
from labtrack.auth.visibility import readable
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import experiments as store
from labtrack.validation import (
    MAX_EXPERIMENT_TAG_VALUE_LENGTH,
    MAX_SEARCH_RESULTS,
    check_experiment_name,
    check_key,
    parse_experiment_id,
)
from labtrack.wire import Params, bad_value, invalid

routes = RouteTable()


def _tags(params: Params) -> list[tuple[str, str]]:
    tags = []
    for tag in params.objects("tags"):
        key = tag.str("key", required=True)
        value = tag.str("value", default="")
        check_key(key, "Tag")
        _check_tag_value(value)
        tags.append((key, value))
    return tags


def _check_tag_value(value: str) -> None:
    if len(value) > MAX_EXPERIMENT_TAG_VALUE_LENGTH:
        raise invalid(
            f"'Tag value' exceeds the maximum length of {MAX_EXPERIMENT_TAG_VALUE_LENGTH} characters"
        )


@routes.api("POST", "/mlflow/experiments/create", access=Access("server", "CREATE"))
async def create(req: Request) -> dict:
    params = await read_params(req)
    name = params.str("name", required=True)
    check_experiment_name(name)
    location = params.str("artifact_location")
    tags = _tags(params)
    settings = req.app.settings
    experiment_id = await req.app.db.write(
        store.create, name, location, tags, now_ms(), settings.experiment_artifact_location
    )
    return {"experiment_id": experiment_id}


@routes.api("GET", "/mlflow/experiments/get", access=Access("experiment", "READ", "experiment_id"))
async def get(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    return {"experiment": await req.app.db.read(store.get, experiment_id)}


@routes.api(
    "GET", "/mlflow/experiments/get-by-name", access=Access("experiment", "READ", "experiment_name")
)
async def get_by_name(req: Request) -> dict:
    params = await read_params(req)
    name = params.str("experiment_name", required=True)
    return {"experiment": await req.app.db.read(store.get_by_name, name)}


@routes.api(
    "POST", "/mlflow/experiments/delete", access=Access("experiment", "MANAGE", "experiment_id")
)
async def delete(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    await req.app.db.write(store.set_lifecycle, experiment_id, "deleted", now_ms())
    return {}


@routes.api(
    "POST", "/mlflow/experiments/restore", access=Access("experiment", "MANAGE", "experiment_id")
)
async def restore(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    await req.app.db.write(store.set_lifecycle, experiment_id, "active", now_ms())
    return {}


@routes.api(
    "POST", "/mlflow/experiments/update", access=Access("experiment", "EDIT", "experiment_id")
)
async def update(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    new_name = params.str("new_name")
    if new_name is not None:
        check_experiment_name(new_name)
        await req.app.db.write(store.rename, experiment_id, new_name, now_ms())
    return {}


@routes.api(
    "POST",
    "/mlflow/experiments/set-experiment-tag",
    access=Access("experiment", "EDIT", "experiment_id"),
)
async def set_tag(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    key = params.str("key", required=True)
    value = params.str("value", default="")
    check_key(key, "Tag")
    _check_tag_value(value)
    await req.app.db.write(store.set_tag, experiment_id, key, value, now_ms())
    return {}


@routes.api(
    "POST",
    "/mlflow/experiments/delete-experiment-tag",
    access=Access("experiment", "EDIT", "experiment_id"),
)
async def delete_tag(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    key = params.str("key", required=True)
    await req.app.db.write(store.delete_tag, experiment_id, key)
    return {}


@routes.api("GET", "/mlflow/experiments/search", access=Access("server", "AUTHENTICATED"))
@routes.api("POST", "/mlflow/experiments/search", access=Access("server", "AUTHENTICATED"))
async def search(req: Request) -> dict:
    params = await read_params(req)
    max_results = params.int("max_results")
    if max_results is None or max_results < 1 or max_results > MAX_SEARCH_RESULTS:
        raise bad_value("max_results", max_results if max_results is not None else 0)
    return await req.app.db.read(
        store.search,
        filter_string=params.str("filter"),
        order_by=params.str_list("order_by"),
        view_type=params.enum("view_type", store.VIEW_TYPES, default="ACTIVE_ONLY"),
        max_results=max_results,
        page_token=params.str("page_token"),
        readable=readable(req, "experiment", "e.experiment_id"),
    )
