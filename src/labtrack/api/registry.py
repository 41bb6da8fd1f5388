"""/mlflow/registered-models/* and /mlflow/model-versions/*: the model registry, plus our history.

Each write is one store transaction that also records its history entry; registry webhooks are
queued after the transaction commits and delivered in the background (labtrack.webhooks), so a
slow receiver never slows the request that caused the event.
"""

from __future__ import annotations

import posixpath
import re

from labtrack import webhooks
from labtrack.api import now_ms
from labtrack.auth.visibility import readable
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import registry as store
from labtrack.store import registry_history, registry_search
from labtrack.store.registry import Actor
from labtrack.validation import check_key
from labtrack.wire import Params, bad_value, invalid, missing

routes = RouteTable()

MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_NAME_LENGTH = 256
SEARCH_MODELS_DEFAULT, SEARCH_MODELS_MAX = 100, 1000
SEARCH_VERSIONS_DEFAULT, SEARCH_VERSIONS_MAX = 200_000, 200_000
HISTORY_DEFAULT, HISTORY_MAX = 1000, 10_000

_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")

RM = "registered_model"


def current_user(req: Request) -> str:
    """The signed-in user as the auth layer recorded it in the ASGI scope, else ''."""
    user = req.scope.get("labtrack.user")
    if user is None:
        return ""
    if isinstance(user, str):
        return user
    if isinstance(user, dict):
        return str(user.get("username") or user.get("name") or "")
    return str(getattr(user, "username", None) or getattr(user, "name", None) or user)


def actor(req: Request) -> Actor:
    return Actor(current_user(req), now_ms())


# --- validation -------------------------------------------------------------------------------
def model_name(params: Params, field: str = "name") -> str:
    name = params.str(field, required=True)
    if not name.strip():
        raise missing(field)
    if "/" in name or ":" in name:
        raise invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    normalized = posixpath.normpath(name)
    if normalized != name or name in (".", "..") or name.startswith(".."):
        raise invalid(
            f"Invalid value \"{name}\" for parameter '{field}' supplied: Names may be treated as "
            f"files in certain cases, and must not resolve to other names when treated as such. "
            f"This name would resolve to '{normalized}'"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(f"'{field}' exceeds the maximum length of {MAX_NAME_LENGTH} characters")
    return name


def _tag_key(key: str) -> str:
    check_key(key, "Tag")
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise invalid(f"'key' exceeds the maximum length of {MAX_TAG_KEY_LENGTH} characters")
    return key


def _tag_value(value: str) -> str:
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise invalid(f"'value' exceeds the maximum length of {MAX_TAG_VALUE_LENGTH} characters")
    return value


def _tags(params: Params) -> list[tuple[str, str]]:
    tags = []
    for tag in params.objects("tags"):
        key = _tag_key(tag.str("key", required=True))
        tags.append((key, _tag_value(tag.str("value", default=""))))
    return tags


def _alias(params: Params, *, reserved: bool) -> str:
    alias = params.str("alias", required=True)
    if not _ALIAS.match(alias):
        raise invalid(
            f"Invalid alias name: '{alias}'. Aliases may only contain alphanumerics, "
            "underscores (_) and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise invalid(
            f"'Registered model alias name' exceeds the maximum length of {MAX_ALIAS_LENGTH}"
            " characters"
        )
    if reserved:
        if alias.lower() == "latest":
            raise invalid("'latest' alias name (case insensitive) is reserved.")
        if _VERSION_ALIAS.match(alias):
            raise invalid(f"Version alias name '{alias}' is reserved.")
    return alias


def _version(params: Params) -> str:
    version = params.raw("version")
    if version is None or version == "":
        raise missing("version")
    if not isinstance(version, str | int) or isinstance(version, bool):
        raise bad_value("version", version)
    store.parse_version(version)
    return str(version)


def _max_results(params: Params, default: int, limit: int) -> int:
    value = params.int("max_results", default=default)
    if value > limit:
        raise invalid(
            "Invalid value for request parameter max_results. It must be at most "
            f"{limit}, but got value {value}"
        )
    if value < 1:
        raise invalid(f"Invalid value for max_results. It must be a positive integer, got {value}")
    return value


# --- registered models ------------------------------------------------------------------------
@routes.api("POST", "/mlflow/registered-models/create", access=Access("server", "CREATE"))
async def create_registered_model(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    tags = _tags(params)
    description = params.str("description")
    rm = await req.app.db.write(store.create_registered_model, actor(req), name, tags, description)
    prompt = dict(tags).get(store.PROMPT_TAG, "").lower() == "true"
    internal = (store.PROMPT_TAG, "_mlflow_prompt_type") if prompt else ()
    plain_tags = {k: v for k, v in tags if k not in internal}
    webhooks.emit(
        req.app,
        "prompt.created" if prompt else "registered_model.created",
        {"name": name, "tags": plain_tags, "description": description},
    )
    return {"registered_model": rm}


@routes.api("GET", "/mlflow/registered-models/get", access=Access(RM, "READ", "name"))
async def get_registered_model(req: Request) -> dict:
    params = await read_params(req)
    return {
        "registered_model": await req.app.db.read(store.get_registered_model, model_name(params))
    }


@routes.api("POST", "/mlflow/registered-models/rename", access=Access(RM, "MANAGE", "name"))
async def rename_registered_model(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    if not (params.str("new_name") or "").strip():
        raise missing("new_name")
    new_name = model_name(params, "new_name")
    rm = await req.app.db.write(store.rename_registered_model, actor(req), name, new_name)
    return {"registered_model": rm}


@routes.api("PATCH", "/mlflow/registered-models/update", access=Access(RM, "EDIT", "name"))
async def update_registered_model(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    description = params.str("description")
    rm = await req.app.db.write(store.update_registered_model, actor(req), name, description)
    return {"registered_model": rm}


@routes.api("DELETE", "/mlflow/registered-models/delete", access=Access(RM, "MANAGE", "name"))
async def delete_registered_model(req: Request) -> dict:
    params = await read_params(req)
    await req.app.db.write(store.delete_registered_model, actor(req), model_name(params))
    return {}


@routes.api("GET", "/mlflow/registered-models/search", access=Access("server", "AUTHENTICATED"))
async def search_registered_models(req: Request) -> dict:
    params = await read_params(req)
    return await req.app.db.read(
        registry_search.search_registered_models,
        filter_string=params.str("filter"),
        order_by=params.str_list("order_by"),
        max_results=_max_results(params, SEARCH_MODELS_DEFAULT, SEARCH_MODELS_MAX),
        page_token=params.str("page_token"),
        readable=readable(req, "registered_model", "rm.name"),
    )


@routes.api(
    "POST", "/mlflow/registered-models/get-latest-versions", access=Access(RM, "READ", "name")
)
@routes.api(
    "GET", "/mlflow/registered-models/get-latest-versions", access=Access(RM, "READ", "name")
)
async def get_latest_versions(req: Request) -> dict:
    params = await read_params(req)
    versions = await req.app.db.read(
        store.get_latest_versions, model_name(params), params.str_list("stages")
    )
    return {"model_versions": versions} if versions else {}


@routes.api("POST", "/mlflow/registered-models/set-tag", access=Access(RM, "EDIT", "name"))
async def set_registered_model_tag(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    key = _tag_key(params.str("key", required=True))
    value = _tag_value(params.str("value", default=""))
    prompt = await req.app.db.write(store.set_registered_model_tag, actor(req), name, key, value)
    if prompt:
        webhooks.emit(req.app, "prompt_tag.set", {"name": name, "key": key, "value": value})
    return {}


@routes.api("DELETE", "/mlflow/registered-models/delete-tag", access=Access(RM, "EDIT", "name"))
async def delete_registered_model_tag(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    key = _tag_key(params.str("key", required=True))
    prompt = await req.app.db.write(store.delete_registered_model_tag, actor(req), name, key)
    if prompt:
        webhooks.emit(req.app, "prompt_tag.deleted", {"name": name, "key": key})
    return {}


@routes.api("POST", "/mlflow/registered-models/alias", access=Access(RM, "EDIT", "name"))
async def set_alias(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    alias = _alias(params, reserved=True)
    version = _version(params)
    prompt = await req.app.db.write(store.set_alias, actor(req), name, alias, version)
    webhooks.emit(
        req.app,
        "prompt_alias.created" if prompt else "model_version_alias.created",
        {"name": name, "alias": alias, "version": version},
    )
    return {}


@routes.api("DELETE", "/mlflow/registered-models/alias", access=Access(RM, "EDIT", "name"))
async def delete_alias(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    alias = _alias(params, reserved=False)
    prompt = await req.app.db.write(store.delete_alias, actor(req), name, alias)
    webhooks.emit(
        req.app,
        "prompt_alias.deleted" if prompt else "model_version_alias.deleted",
        {"name": name, "alias": alias},
    )
    return {}


@routes.api("GET", "/mlflow/registered-models/alias", access=Access(RM, "READ", "name"))
async def get_model_version_by_alias(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    alias = _alias(params, reserved=False)
    return {"model_version": await req.app.db.read(store.get_model_version_by_alias, name, alias)}


# --- model versions ---------------------------------------------------------------------------
@routes.api("POST", "/mlflow/model-versions/create", access=Access(RM, "EDIT", "name"))
async def create_model_version(req: Request) -> dict:
    params = await read_params(req)
    name = model_name(params)
    source = params.str("source", required=True)
    tags = _tags(params)
    description = params.str("description")
    created = await req.app.db.write(
        store.create_model_version,
        actor(req),
        name=name,
        source=source,
        run_id=params.str("run_id"),
        model_id=params.str("model_id") or None,
        tags=tags,
        run_link=params.str("run_link"),
        description=description,
    )
    mv = created.model_version
    tag_dict = dict(tags)
    if created.is_prompt:
        template = tag_dict.pop("mlflow.prompt.text", None)
        for internal in (store.PROMPT_TAG, "_mlflow_prompt_type"):
            tag_dict.pop(internal, None)
        webhooks.emit(
            req.app,
            "prompt_version.created",
            {
                "name": name,
                "version": mv["version"],
                "template": template,
                "tags": tag_dict,
                "description": description or None,
            },
        )
    else:
        webhooks.emit(
            req.app,
            "model_version.created",
            {
                "name": name,
                "version": mv["version"],
                "source": created.source,
                "run_id": created.run_id or None,
                "tags": tag_dict,
                "description": description or None,
            },
        )
    return {"model_version": mv}


@routes.api("GET", "/mlflow/model-versions/get", access=Access(RM, "READ", "name"))
async def get_model_version(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    return {"model_version": await req.app.db.read(store.get_model_version, name, version)}


@routes.api("PATCH", "/mlflow/model-versions/update", access=Access(RM, "EDIT", "name"))
async def update_model_version(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    mv = await req.app.db.write(
        store.update_model_version, actor(req), name, version, params.str("description")
    )
    return {"model_version": mv}


@routes.api("POST", "/mlflow/model-versions/transition-stage", access=Access(RM, "EDIT", "name"))
async def transition_stage(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    stage = params.str("stage", required=True)
    archive = params.bool("archive_existing_versions")
    mv, old_stage = await req.app.db.write(
        store.transition_stage, actor(req), name, version, stage, archive
    )
    webhooks.emit(
        req.app,
        webhooks.STAGE_TRANSITIONED,
        {
            "name": name,
            "version": mv["version"],
            "from_stage": old_stage,
            "to_stage": mv["current_stage"],
            "archive_existing_versions": archive,
        },
    )
    return {"model_version": mv}


@routes.api("DELETE", "/mlflow/model-versions/delete", access=Access(RM, "MANAGE", "name"))
async def delete_model_version(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    await req.app.db.write(store.delete_model_version, actor(req), name, version)
    return {}


@routes.api("GET", "/mlflow/model-versions/search", access=Access("server", "AUTHENTICATED"))
async def search_model_versions(req: Request) -> dict:
    params = await read_params(req)
    return await req.app.db.read(
        registry_search.search_model_versions,
        filter_string=params.str("filter"),
        order_by=params.str_list("order_by"),
        max_results=_max_results(params, SEARCH_VERSIONS_DEFAULT, SEARCH_VERSIONS_MAX),
        page_token=params.str("page_token"),
        readable=readable(req, "registered_model", "mv.name"),
    )


@routes.api("GET", "/mlflow/model-versions/get-download-uri", access=Access(RM, "READ", "name"))
async def get_download_uri(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    return {"artifact_uri": await req.app.db.read(store.get_download_uri, name, version)}


@routes.api("POST", "/mlflow/model-versions/set-tag", access=Access(RM, "EDIT", "name"))
async def set_model_version_tag(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    key = _tag_key(params.str("key", required=True))
    value = _tag_value(params.str("value", default=""))
    prompt = await req.app.db.write(
        store.set_model_version_tag, actor(req), name, version, key, value
    )
    webhooks.emit(
        req.app,
        "prompt_version_tag.set" if prompt else "model_version_tag.set",
        {"name": name, "version": version, "key": key, "value": value},
    )
    return {}


@routes.api("DELETE", "/mlflow/model-versions/delete-tag", access=Access(RM, "EDIT", "name"))
async def delete_model_version_tag(req: Request) -> dict:
    params = await read_params(req)
    name, version = model_name(params), _version(params)
    key = _tag_key(params.str("key", required=True))
    prompt = await req.app.db.write(store.delete_model_version_tag, actor(req), name, version, key)
    webhooks.emit(
        req.app,
        "prompt_version_tag.deleted" if prompt else "model_version_tag.deleted",
        {"name": name, "version": version, "key": key},
    )
    return {}


# --- history (labtrack) -----------------------------------------------------------------------
def _timestamp(params: Params, field: str) -> int | None:
    value = params.int(field)
    if value is not None and value < 0:
        raise bad_value(field, value)
    return value


@routes.api("GET", "/labtrack/registered-models/history", access=Access(RM, "READ", "name"))
async def history(req: Request) -> dict:
    """Alias, stage, tag and lifecycle changes of one model; see docs/registry.md."""
    params = await read_params(req)
    name = params.str("name", required=True)
    kinds = params.str_list("kind")
    for kind in kinds:
        if kind not in registry_history.HISTORY_KINDS:
            valid = list(registry_history.HISTORY_KINDS)
            raise invalid(f"Invalid kind '{kind}'. Valid kinds are {valid}")
    alias = params.str("alias")
    key = params.str("key")
    if alias is not None:
        if key is not None and key != alias:
            raise invalid("Send either 'alias' or 'key', not both.")
        kinds, key = ["alias"], alias
    version = params.raw("version")
    return await req.app.db.read(
        registry_history.history,
        name=name,
        kinds=kinds,
        key=key,
        version=None if version in (None, "") else store.parse_version(version),
        since=_timestamp(params, "since"),
        until=_timestamp(params, "until"),
        newest_first=params.bool("newest_first"),
        max_results=_max_results(params, HISTORY_DEFAULT, HISTORY_MAX),
        page_token=params.str("page_token"),
    )


@routes.api(
    "GET", "/labtrack/registered-models/history/alias-at", access=Access(RM, "READ", "name")
)
async def alias_at(req: Request) -> dict:
    """Which version an alias pointed to at a moment (ms since the epoch)."""
    params = await read_params(req)
    name = params.str("name", required=True)
    alias = params.str("alias", required=True)
    timestamp = _timestamp(params, "timestamp")
    if timestamp is None:
        raise missing("timestamp")
    return await req.app.db.read(registry_history.alias_at, name, alias, timestamp)
