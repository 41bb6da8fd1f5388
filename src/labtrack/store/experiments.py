"""Experiment queries. Every function runs inside one transaction (see store.db)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labtrack.store import filters, paging
from labtrack.store.db import Conn, integrity_errors
from labtrack.wire import already_exists, invalid, not_found

_COLUMNS = (
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time"
)


def _to_dict(row: tuple, tags: list[dict]) -> dict[str, Any]:
    exp = {
        "experiment_id": str(row[0]),
        "name": row[1],
        "artifact_location": row[2],
        "lifecycle_stage": row[3],
        "last_update_time": row[5],
        "creation_time": row[4],
    }
    if tags:
        exp["tags"] = tags
    exp["workspace"] = "default"
    return exp


def _tags(conn: Conn, experiment_id: int) -> list[dict]:
    rows = conn.all(
        "SELECT key, value FROM experiment_tags WHERE experiment_id = ? ORDER BY key",
        (experiment_id,),
    )
    return [{"key": k, "value": v} for k, v in rows]


def row_by_id(conn: Conn, experiment_id: int) -> tuple:
    row = conn.one(f"SELECT {_COLUMNS} FROM experiments WHERE experiment_id = ?", (experiment_id,))
    if row is None:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    return row


def get(conn: Conn, experiment_id: int) -> dict:
    return _to_dict(row_by_id(conn, experiment_id), _tags(conn, experiment_id))


def get_by_name(conn: Conn, name: str) -> dict:
    row = conn.one(f"SELECT {_COLUMNS} FROM experiments WHERE name = ?", (name,))
    if row is None:
        raise not_found(f"Could not find experiment with name '{name}'")
    return _to_dict(row, _tags(conn, row[0]))


def require_active(conn: Conn, experiment_id: int) -> tuple:
    row = row_by_id(conn, experiment_id)
    if row[3] != "active":
        raise invalid(
            f"The experiment {experiment_id} must be in the 'active' state. "
            f"Current state is {row[3]}."
        )
    return row


def create(
    conn: Conn,
    name: str,
    artifact_location: str | None,
    tags: list[tuple[str, str]],
    now: int,
    default_location: Callable[[str], str],
) -> str:
    if conn.one("SELECT 1 FROM experiments WHERE name = ?", (name,)):
        raise already_exists(f"Experiment(name={name}) already exists.")
    try:
        with conn.savepoint():
            experiment_id = conn.insert_returning_id(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time,"
                " last_update_time) VALUES (?, ?, 'active', ?, ?)",
                (name, artifact_location or "", now, now),
                "experiment_id",
            )
    except integrity_errors():
        raise already_exists(f"Experiment(name={name}) already exists.") from None
    if not artifact_location:
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
            (default_location(str(experiment_id)), experiment_id),
        )
    conn.executemany(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        [(experiment_id, k, v) for k, v in tags],
    )
    return str(experiment_id)


def ensure_default(conn: Conn, location: str, now: int) -> None:
    """Experiment 0, "Default", must exist: the client logs there when no experiment is set."""
    conn.execute(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
        " creation_time, last_update_time) VALUES (0, 'Default', ?, 'active', ?, ?)"
        " ON CONFLICT DO NOTHING",
        (location, now, now),
    )


def rename(conn: Conn, experiment_id: int, new_name: str, now: int) -> None:
    row = row_by_id(conn, experiment_id)
    if row[3] != "active":
        raise invalid("Cannot rename a non-active experiment.")
    if row[1] == new_name:
        return
    if conn.one("SELECT 1 FROM experiments WHERE name = ?", (new_name,)):
        raise already_exists(f"Experiment(name={new_name}) already exists.")
    conn.execute(
        "UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?",
        (new_name, now, experiment_id),
    )


def set_lifecycle(conn: Conn, experiment_id: int, stage: str, now: int) -> None:
    """Delete or restore an experiment and, like MLflow, all of its runs with it."""
    row = conn.one(
        "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?", (experiment_id,)
    )
    wanted_before = "active" if stage == "deleted" else "deleted"
    if row is None or row[0] != wanted_before:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    if experiment_id == 0 and stage == "deleted":
        raise invalid(
            "Cannot delete the default experiment '0'. This is an internally reserved ID."
        )
    conn.execute(
        "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? WHERE experiment_id = ?",
        (stage, now, experiment_id),
    )
    conn.execute(
        "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE experiment_id = ?",
        (stage, now if stage == "deleted" else None, experiment_id),
    )


def set_tag(conn: Conn, experiment_id: int, key: str, value: str, now: int) -> None:
    require_active(conn, experiment_id)
    conn.execute(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        (experiment_id, key, value),
    )
    conn.execute(
        "UPDATE experiments SET last_update_time = ? WHERE experiment_id = ?", (now, experiment_id)
    )


def delete_tag(conn: Conn, experiment_id: int, key: str) -> None:
    require_active(conn, experiment_id)
    deleted = conn.execute(
        "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?", (experiment_id, key)
    ).rowcount
    if not deleted:
        raise not_found(f"No tag with name: {key} in experiment with id {experiment_id}")


# View types in their proto order (ACTIVE_ONLY = 1, DELETED_ONLY = 2, ALL = 3) and the
# lifecycle stages each one shows.
VIEW_STAGES = {
    "ACTIVE_ONLY": ("active",),
    "DELETED_ONLY": ("deleted",),
    "ALL": ("active", "deleted"),
}
VIEW_TYPES = tuple(VIEW_STAGES)


def search(
    conn: Conn,
    *,
    filter_string: str | None,
    order_by: list[str],
    view_type: str,
    max_results: int,
    page_token: str | None,
    readable: tuple[str, list] | None = None,
) -> dict:
    """``readable``: a WHERE fragment on ``e.experiment_id`` keeping what the caller may read
    (labtrack.auth.visibility), applied before paging so pages stay full and correct."""
    offset = paging.decode(page_token)
    where = filters.experiment_filter(filter_string, conn.dialect)
    order = filters.experiment_order(order_by, conn.dialect)
    stage_sql, params = conn.in_clause("e.lifecycle_stage", VIEW_STAGES[view_type])
    sql = f"SELECT e.experiment_id FROM experiments e WHERE {stage_sql}"
    args: list = list(params)
    if readable is not None:
        sql += f" AND ({readable[0]})"
        args += readable[1]
    if where is not None:
        sql += f" AND ({where.sql})"
        args += where.params
    order_sql = [o.sql for o in order] + ["e.creation_time DESC", "e.experiment_id ASC"]
    for o in order:
        args += o.params
    sql += " ORDER BY " + ", ".join(order_sql) + " LIMIT ? OFFSET ?"
    args += [max_results + 1, offset]
    ids = [row[0] for row in conn.all(sql, args)]
    result: dict[str, Any] = {}
    page = ids[:max_results]
    if page:
        result["experiments"] = _load_many(conn, page)
    if len(ids) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def _load_many(conn: Conn, ids: list[int]) -> list[dict]:
    id_sql, params = conn.in_clause("experiment_id", ids)
    rows = {r[0]: r for r in conn.all(f"SELECT {_COLUMNS} FROM experiments WHERE {id_sql}", params)}
    tags: dict[int, list[dict]] = {}
    for eid, k, v in conn.all(
        f"SELECT experiment_id, key, value FROM experiment_tags WHERE {id_sql} ORDER BY key", params
    ):
        tags.setdefault(eid, []).append({"key": k, "value": v})
    return [_to_dict(rows[i], tags.get(i, [])) for i in ids]
