"""/mlflow/webhooks*: manage registry webhooks (admin only); delivery is in labtrack.webhooks."""

from __future__ import annotations

import re
from typing import Any

from labtrack import webhooks
from labtrack.api import now_ms
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import webhooks as store
from labtrack.wire import MlflowError, Params, bad_value, invalid, missing, not_found

routes = RouteTable()

ADMIN = Access("server", "ADMIN")
STATUSES = ("ACTIVE", "DISABLED")
DEFAULT_MAX_RESULTS, MAX_RESULTS = 100, 1000
MAX_DESCRIPTION_LENGTH = 1000
MAX_SECRET_LENGTH = 1000

_NAME = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9._-]*[a-z0-9])?$", re.IGNORECASE)


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise invalid(
            f"Webhook name {value!r} is invalid: use 1 to 63 letters, digits, dots, underscores "
            "or hyphens, starting and ending with a letter or digit."
        )
    return value


def _events(params: Params, *, required: bool) -> list[str] | None:
    raw = params.raw("events")
    extra = params.raw("labtrack_events")
    if raw is None and extra is None:
        if required:
            raise missing("events")
        return None
    for field, value in (("events", raw), ("labtrack_events", extra)):
        if value is not None and not isinstance(value, list):
            raise bad_value(field, value)
    events = [webhooks.parse_event(e) for e in raw or []]
    for name in extra or []:
        if name not in webhooks.LABTRACK_EVENTS:
            valid = list(webhooks.LABTRACK_EVENTS)
            raise invalid(f"Invalid labtrack event {name!r}. Valid values are {valid}")
        events.append(name)
    if not events:
        raise invalid("Webhook events must be a non-empty list.")
    return events


def _status(params: Params) -> str | None:
    value = params.raw("status")
    if value is None:
        return None
    if isinstance(value, str) and value.upper() in STATUSES:
        return value.upper()
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(STATUSES):
        return STATUSES[value - 1]
    raise invalid(f"Invalid webhook status {value!r}. Valid values are {list(STATUSES)}")


def _text(params: Params, field: str, limit: int) -> str | None:
    value = params.str(field)
    if value is not None and len(value) > limit:
        raise invalid(f"'{field}' exceeds the maximum length of {limit} characters")
    return value


def to_wire(webhook: dict[str, Any]) -> dict[str, Any]:
    """A stored webhook as the stock client parses it; labtrack's own events on the side."""
    out: dict[str, Any] = {"webhook_id": webhook["webhook_id"], "name": webhook["name"]}
    if webhook["description"]:
        out["description"] = webhook["description"]
    out["url"] = webhook["url"]
    standard = [e for e in webhook["events"] if e in webhooks.MLFLOW_EVENTS]
    out["events"] = [webhooks.event_to_wire(e) for e in standard]
    extra = [e for e in webhook["events"] if e in webhooks.LABTRACK_EVENTS]
    if extra:
        out["labtrack_events"] = extra
    out["status"] = webhook["status"]
    out["creation_timestamp"] = webhook["creation_timestamp"]
    out["last_updated_timestamp"] = webhook["last_updated_timestamp"]
    return out


async def _check_url(req: Request, url: str) -> webhooks.Policy:
    policy = webhooks.dispatcher(req.app).policy
    webhooks.check_url(url, policy)
    await webhooks.check_url_resolves_public(url, policy)
    return policy


@routes.api("POST", "/mlflow/webhooks", access=ADMIN)
async def create(req: Request) -> dict:
    params = await read_params(req)
    name = _name(params.str("name", required=True))
    url = params.str("url", required=True)
    events = _events(params, required=True)
    await _check_url(req, url)
    secret = _text(params, "secret", MAX_SECRET_LENGTH)
    d = webhooks.dispatcher(req.app)
    webhook = await req.app.db.write(
        store.create,
        name=name,
        url=url,
        events=events,
        description=_text(params, "description", MAX_DESCRIPTION_LENGTH) or None,
        sealed_secret=webhooks.seal(secret, d.secret_key),
        status=_status(params) or "ACTIVE",
        now=now_ms(),
    )
    d.invalidate()
    return {"webhook": to_wire(webhook)}


@routes.api("GET", "/mlflow/webhooks", access=ADMIN)
async def list_webhooks(req: Request) -> dict:
    params = await read_params(req)
    max_results = params.int("max_results") or DEFAULT_MAX_RESULTS
    if not 1 <= max_results <= MAX_RESULTS:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS}.")
    page = await req.app.db.read(
        store.list_webhooks, max_results=max_results, page_token=params.str("page_token")
    )
    out: dict[str, Any] = {}
    if page["webhooks"]:
        out["webhooks"] = [to_wire(w) for w in page["webhooks"]]
    if "next_page_token" in page:
        out["next_page_token"] = page["next_page_token"]
    return out


def _no_endpoint(req: Request) -> MlflowError:
    return MlflowError(f"No API endpoint at {req.path}", "ENDPOINT_NOT_FOUND")


def _webhook_path(req: Request) -> tuple[str, str]:
    """Split ``<webhook_id>`` or ``<webhook_id>/test`` from the path remainder."""
    rest = req.path_params.get("rest", "")
    webhook_id, _, tail = rest.partition("/")
    if not webhook_id:
        raise not_found("Webhook with ID '' not found.")
    return webhook_id, tail


@routes.api("GET", "/mlflow/webhooks/", access=ADMIN, prefix=True)
async def get(req: Request) -> dict:
    webhook_id, tail = _webhook_path(req)
    if tail:
        raise _no_endpoint(req)
    return {"webhook": to_wire(await req.app.db.read(store.get, webhook_id))}


@routes.api("PATCH", "/mlflow/webhooks/", access=ADMIN, prefix=True)
async def update(req: Request) -> dict:
    webhook_id, tail = _webhook_path(req)
    if tail:
        raise _no_endpoint(req)
    params = await read_params(req)
    name = params.str("name") or None
    url = params.str("url") or None
    if url is not None:
        await _check_url(req, url)
    changes: dict[str, Any] = {}
    if params.has("description"):
        changes["description"] = _text(params, "description", MAX_DESCRIPTION_LENGTH) or None
    d = webhooks.dispatcher(req.app)
    if params.has("secret"):
        changes["sealed_secret"] = webhooks.seal(
            _text(params, "secret", MAX_SECRET_LENGTH), d.secret_key
        )
    raw_events = params.raw("events")
    events = None if raw_events == [] else _events(params, required=False)
    webhook = await req.app.db.write(
        store.update,
        webhook_id,
        now=now_ms(),
        name=_name(name) if name else None,
        url=url,
        events=events,
        status=_status(params),
        **changes,
    )
    d.invalidate()
    return {"webhook": to_wire(webhook)}


@routes.api("DELETE", "/mlflow/webhooks/", access=ADMIN, prefix=True)
async def delete(req: Request) -> dict:
    webhook_id, tail = _webhook_path(req)
    if tail:
        raise _no_endpoint(req)
    await req.app.db.write(store.delete, webhook_id, now_ms())
    webhooks.dispatcher(req.app).invalidate()
    return {}


@routes.api("POST", "/mlflow/webhooks/", access=ADMIN, prefix=True)
async def test(req: Request) -> dict:
    webhook_id, tail = _webhook_path(req)
    if tail != "test":
        raise _no_endpoint(req)
    params = await read_params(req)
    url, sealed, events = await req.app.db.read(store.delivery_target, webhook_id)
    raw = params.raw("event")
    if raw:
        event = webhooks.parse_event(raw)
    elif events:
        event = events[0]
    else:
        raise invalid("The webhook has no events to test.")
    return {"result": await webhooks.test_delivery(req.app, url, sealed, event)}
