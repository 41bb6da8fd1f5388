"""Reading the registry history (beyond MLflow): what changed on a model, and when.

Entries are written by store.registry in the transaction of each change; see docs/registry.md
for the endpoints that read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labtrack.store import paging
from labtrack.store.db import Conn

# What an entry is about (its ``kind``), as documented in docs/registry.md.
HISTORY_KINDS = ("model", "version", "alias", "stage", "model_tag", "version_tag", "description")


def _event_dict(row: tuple) -> dict:
    event_id, ts, user, name, version, kind, key, old, new = row
    out: dict[str, Any] = {"event_id": str(event_id), "timestamp": ts, "user_id": user}
    out["name"] = name
    out["kind"] = kind
    if version is not None:
        out["version"] = str(version)
    if key:
        out["key"] = key
    if old is not None:
        out["old_value"] = old
    if new is not None:
        out["new_value"] = new
    return out


def history(
    conn: Conn,
    *,
    name: str,
    kinds: Iterable[str] = (),
    key: str | None = None,
    version: int | None = None,
    since: int | None = None,
    until: int | None = None,
    newest_first: bool = False,
    max_results: int,
    page_token: str | None,
) -> dict:
    """Changes to one model (kept after the model is deleted), oldest first by default."""
    offset = paging.decode(page_token)
    sql = (
        "SELECT event_id, timestamp, user_id, name, version, kind, key, old_value, new_value"
        " FROM registry_history WHERE name = ?"
    )
    args: list[Any] = [name]
    kinds = list(kinds)
    if kinds:
        kind_sql, kind_args = conn.in_clause("kind", kinds)
        sql += f" AND {kind_sql}"
        args += kind_args
    if key is not None:
        sql += " AND key = ?"
        args.append(key)
    if version is not None:
        sql += " AND version = ?"
        args.append(version)
    if since is not None:
        sql += " AND timestamp >= ?"
        args.append(since)
    if until is not None:
        sql += " AND timestamp <= ?"
        args.append(until)
    direction = "DESC" if newest_first else "ASC"
    sql += f" ORDER BY timestamp {direction}, event_id {direction} LIMIT ? OFFSET ?"
    args += [max_results + 1, offset]
    rows = conn.all(sql, args)
    result: dict[str, Any] = {"events": [_event_dict(r) for r in rows[:max_results]]}
    if len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def alias_at(conn: Conn, name: str, alias: str, timestamp: int) -> dict:
    """Which version ``alias`` pointed to at ``timestamp`` (ms), from the history."""
    row = conn.one(
        "SELECT event_id, timestamp, user_id, name, version, kind, key, old_value, new_value"
        " FROM registry_history WHERE name = ? AND kind = 'alias' AND key = ? AND timestamp <= ?"
        " ORDER BY timestamp DESC, event_id DESC LIMIT 1",
        (name, alias, timestamp),
    )
    out: dict[str, Any] = {"name": name, "alias": alias, "timestamp": timestamp}
    if row is not None and row[8] is not None:
        out["version"] = row[8]
        out["since"] = row[1]
        out["set_by"] = row[2]
    return out
