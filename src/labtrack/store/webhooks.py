"""Webhook subscriptions: CRUD and the "who listens to this event" lookup.

Secrets arrive here already sealed (labtrack.webhooks.seal) and leave only through
:func:`subscribers`, for delivery; the API never returns them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from labtrack.store import paging
from labtrack.store.db import Conn
from labtrack.wire import not_found

_COLUMNS = "webhook_id, name, description, url, status, creation_timestamp, last_updated_timestamp"


def _events(conn: Conn, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    id_sql, args = conn.in_clause("webhook_id", list(ids))
    for webhook_id, event in conn.all(
        f"SELECT webhook_id, event FROM webhook_events WHERE {id_sql} ORDER BY position",
        args,
    ):
        out[webhook_id].append(event)
    return out


def _to_dict(row: tuple, events: list[str]) -> dict[str, Any]:
    return {
        "webhook_id": row[0],
        "name": row[1],
        "description": row[2],
        "url": row[3],
        "status": row[4],
        "creation_timestamp": row[5],
        "last_updated_timestamp": row[6],
        "events": events,
    }


def _row(conn: Conn, webhook_id: str) -> tuple:
    row = conn.one(
        f"SELECT {_COLUMNS} FROM webhooks WHERE webhook_id = ? AND deleted_timestamp IS NULL",
        (webhook_id,),
    )
    if row is None:
        raise not_found(f"Webhook with ID {webhook_id} not found.")
    return row


def get(conn: Conn, webhook_id: str) -> dict[str, Any]:
    row = _row(conn, webhook_id)
    return _to_dict(row, _events(conn, [webhook_id])[webhook_id])


def create(
    conn: Conn,
    *,
    name: str,
    url: str,
    events: list[str],
    description: str | None,
    sealed_secret: str | None,
    status: str,
    now: int,
) -> dict[str, Any]:
    webhook_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO webhooks (webhook_id, name, description, url, status, secret,"
        " creation_timestamp, last_updated_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (webhook_id, name, description, url, status, sealed_secret, now, now),
    )
    _set_events(conn, webhook_id, events)
    return get(conn, webhook_id)


def _set_events(conn: Conn, webhook_id: str, events: list[str]) -> None:
    conn.execute("DELETE FROM webhook_events WHERE webhook_id = ?", (webhook_id,))
    conn.executemany(
        "INSERT INTO webhook_events (webhook_id, event, position) VALUES (?, ?, ?)",
        [(webhook_id, e, i) for i, e in enumerate(dict.fromkeys(events))],
    )


_UNSET = object()


def update(
    conn: Conn,
    webhook_id: str,
    *,
    now: int,
    name: str | None = None,
    url: str | None = None,
    events: list[str] | None = None,
    description: Any = _UNSET,
    sealed_secret: Any = _UNSET,
    status: str | None = None,
) -> dict[str, Any]:
    _row(conn, webhook_id)
    sets: list[str] = ["last_updated_timestamp = ?"]
    args: list[Any] = [now]
    for column, value in (("name", name), ("url", url), ("status", status)):
        if value is not None:
            sets.append(f"{column} = ?")
            args.append(value)
    if description is not _UNSET:
        sets.append("description = ?")
        args.append(description)
    if sealed_secret is not _UNSET:
        sets.append("secret = ?")
        args.append(sealed_secret)
    conn.execute(f"UPDATE webhooks SET {', '.join(sets)} WHERE webhook_id = ?", (*args, webhook_id))
    if events is not None:
        _set_events(conn, webhook_id, events)
    return get(conn, webhook_id)


def delete(conn: Conn, webhook_id: str, now: int) -> None:
    """Soft delete; the secret is wiped at once, as nothing may use it any more."""
    _row(conn, webhook_id)
    conn.execute(
        "UPDATE webhooks SET deleted_timestamp = ?, last_updated_timestamp = ?, secret = NULL"
        " WHERE webhook_id = ?",
        (now, now, webhook_id),
    )


def list_webhooks(conn: Conn, *, max_results: int, page_token: str | None) -> dict[str, Any]:
    offset = paging.decode(page_token)
    rows = conn.all(
        f"SELECT {_COLUMNS} FROM webhooks WHERE deleted_timestamp IS NULL"
        " ORDER BY creation_timestamp DESC, webhook_id ASC LIMIT ? OFFSET ?",
        (max_results + 1, offset),
    )
    page = rows[:max_results]
    events = _events(conn, [r[0] for r in page])
    result: dict[str, Any] = {"webhooks": [_to_dict(r, events[r[0]]) for r in page]}
    if len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def subscribers(conn: Conn, event: str) -> list[tuple[str, str, str | None]]:
    """(webhook_id, url, sealed secret) of the active webhooks subscribed to ``event``."""
    return conn.all(
        "SELECT w.webhook_id, w.url, w.secret FROM webhooks w"
        " JOIN webhook_events e ON e.webhook_id = w.webhook_id"
        " WHERE e.event = ? AND w.status = 'ACTIVE' AND w.deleted_timestamp IS NULL"
        " ORDER BY w.creation_timestamp, w.webhook_id",
        (event,),
    )


def delivery_target(conn: Conn, webhook_id: str) -> tuple[str, str | None, list[str]]:
    """(url, sealed secret, events) of one webhook, for the test endpoint."""
    row = conn.one(
        "SELECT url, secret FROM webhooks WHERE webhook_id = ? AND deleted_timestamp IS NULL",
        (webhook_id,),
    )
    if row is None:
        raise not_found(f"Webhook with ID {webhook_id} not found.")
    return row[0], row[1], _events(conn, [webhook_id])[webhook_id]
