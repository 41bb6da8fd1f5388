"""Model registry queries: registered models, versions, tags, aliases, stages and history.

Every write function runs inside one transaction (see store.db) and records what it changed in
``registry_history`` in that same transaction, so the history can never disagree with the state.
Write functions take an :class:`Actor` (who, when) instead of reading the clock themselves, so
the timestamps in the rows and in their history entries are identical.

Wire shapes follow the stock server: versions are strings, ``status`` is always ``READY`` (an
absent status reads as PENDING_REGISTRATION in the client, which then polls for minutes), and a
deleted version is kept as ``Deleted_Internal`` with its source redacted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labtrack.store.db import Conn, integrity_errors
from labtrack.store.sources import ModelRef, resolve_source
from labtrack.wire import already_exists, invalid, not_found

STAGES = ("None", "Staging", "Production", "Archived")
ACTIVE_STAGES = ("Staging", "Production")
DELETED = "Deleted_Internal"
PROMPT_TAG = "mlflow.prompt.is_prompt"
MODEL_VERSIONS_TAG = "mlflow.modelVersions"

_STAGE_BY_LOWER = {s.lower(): s for s in STAGES}


@dataclass(frozen=True)
class Actor:
    """Who makes a change and when (ms); one per request."""

    user: str
    now: int


# --- validation -------------------------------------------------------------------------------
def parse_version(value: str | int | None) -> int:
    """MLflow's rule: the version is an integer (sent as a string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise invalid(f"Parameter 'version' must be an integer, got '{value}'.") from None


def canonical_stage(stage: str) -> str:
    """Stage names are case-insensitive on input and canonical on output."""
    found = _STAGE_BY_LOWER.get((stage or "").lower())
    if found is None:
        raise invalid(
            f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(STAGES)}."
        )
    return found


# --- row helpers ------------------------------------------------------------------------------
MV_COLUMNS = (
    "name, version, creation_timestamp, last_updated_timestamp, description, user_id,"
    " current_stage, source, run_id, run_link, status, status_message, storage_location, model_id"
)
RM_COLUMNS = "name, creation_timestamp, last_updated_timestamp, description, user_id"


def mv_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in MV_COLUMNS.split(","))


def version_from_row(row: tuple, tags: list[dict] | None = None, aliases: list[str] | None = None):
    mv: dict[str, Any] = {
        "name": row[0],
        "version": str(row[1]),
        "creation_timestamp": row[2],
        "last_updated_timestamp": row[3],
    }
    if row[5]:
        mv["user_id"] = row[5]
    mv["current_stage"] = row[6]
    mv["description"] = row[4] if row[4] is not None else ""
    mv["source"] = row[7]
    mv["run_id"] = row[8] if row[8] is not None else ""
    mv["status"] = row[10] or "READY"
    if row[11]:
        mv["status_message"] = row[11]
    if tags:
        mv["tags"] = tags
    mv["run_link"] = row[9] if row[9] is not None else ""
    if aliases:
        mv["aliases"] = aliases
    return mv


def _model_row(conn: Conn, name: str, *, for_update: bool = False) -> tuple:
    sql = f"SELECT {RM_COLUMNS} FROM registered_models WHERE name = ?"
    if for_update and conn.dialect == "postgresql":
        sql += " FOR UPDATE"
    row = conn.one(sql, (name,))
    if row is None:
        raise not_found(f"Registered Model with name={name} not found")
    return row


def _lock_model(conn: Conn, name: str) -> None:
    """Serialise changes to one model (its history must record true old values); 404 if absent."""
    _model_row(conn, name, for_update=True)


def _version_row(conn: Conn, name: str, version: int) -> tuple:
    row = conn.one(
        f"SELECT {MV_COLUMNS} FROM model_versions WHERE name = ? AND version = ?"
        " AND current_stage != ?",
        (name, version, DELETED),
    )
    if row is None:
        raise not_found(f"Model Version (name={name}, version={version}) not found")
    return row


def _version_tags(conn: Conn, name: str, versions: Sequence[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for start in range(0, len(versions), 900):
        v_sql, v_args = conn.in_clause("version", list(versions[start : start + 900]))
        for version, key, value in conn.all(
            f"SELECT version, key, value FROM model_version_tags WHERE name = ? AND {v_sql}"
            " ORDER BY key",
            (name, *v_args),
        ):
            out.setdefault(version, []).append({"key": key, "value": value})
    return out


def tags_for(conn: Conn, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[dict]]:
    """Tags of the given (name, version) pairs, each list ordered by key."""
    wanted = set(pairs)
    out: dict[tuple[str, int], list[dict]] = {}
    names = sorted({n for n, _ in wanted})
    versions = sorted({v for _, v in wanted})
    for n_start in range(0, len(names), 500):
        n_sql, n_args = conn.in_clause("name", names[n_start : n_start + 500])
        for v_start in range(0, len(versions), 500):
            v_sql, v_args = conn.in_clause("version", versions[v_start : v_start + 500])
            for name, version, key, value in conn.all(
                f"SELECT name, version, key, value FROM model_version_tags WHERE {n_sql}"
                f" AND {v_sql} ORDER BY key",
                (*n_args, *v_args),
            ):
                if (name, version) in wanted:
                    out.setdefault((name, version), []).append({"key": key, "value": value})
    return out


def _aliases(conn: Conn, name: str) -> list[tuple[str, int]]:
    return conn.all(
        "SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias",
        (name,),
    )


def is_prompt(conn: Conn, name: str) -> bool:
    value = conn.scalar(
        "SELECT value FROM registered_model_tags WHERE name = ? AND key = ?", (name, PROMPT_TAG)
    )
    return (value or "").lower() == "true"


def _history(
    conn: Conn,
    actor: Actor,
    name: str,
    kind: str,
    key: str = "",
    *,
    version: int | None = None,
    old: str | None = None,
    new: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO registry_history (timestamp, user_id, name, version, kind, key, old_value,"
        " new_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (actor.now, actor.user, name, version, kind, key, old, new),
    )


def _history_many(conn: Conn, actor: Actor, rows: list[tuple]) -> None:
    """Several history entries at once: (name, version, kind, key, old, new) each."""
    conn.executemany(
        "INSERT INTO registry_history (timestamp, user_id, name, version, kind, key, old_value,"
        " new_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(actor.now, actor.user, n, v, kind, key, old, new) for n, v, kind, key, old, new in rows],
    )


def _touch_model(conn: Conn, name: str, now: int) -> None:
    conn.execute(
        "UPDATE registered_models SET last_updated_timestamp = ? WHERE name = ?", (now, name)
    )


# --- model versions: reads --------------------------------------------------------------------
def version_dict(conn: Conn, name: str, version: int) -> dict:
    row = _version_row(conn, name, version)
    tags = _version_tags(conn, name, [version]).get(version, [])
    aliases = [a for a, v in _aliases(conn, name) if v == version]
    return version_from_row(row, tags, aliases)


def get_model_version(conn: Conn, name: str, version: str) -> dict:
    return version_dict(conn, name, parse_version(version))


_STAGE_TABLE = " UNION ALL ".join(f"SELECT '{stage}' AS stage" for stage in STAGES)


def _latest_rows(conn: Conn, names: Sequence[str]) -> dict[str, list[tuple]]:
    """The newest version per stage of each model, in ascending version order.

    One indexed MAX per (model, stage), so the cost does not grow with the number of versions.
    """
    out: dict[str, list[tuple]] = {n: [] for n in names}
    for start in range(0, len(names), 500):
        n_sql, n_args = conn.in_clause("rm.name", list(names[start : start + 500]))
        pairs = conn.all(
            "SELECT rm.name, (SELECT MAX(v.version) FROM model_versions v"
            " WHERE v.name = rm.name AND v.current_stage = st.stage)"
            f" FROM registered_models rm CROSS JOIN ({_STAGE_TABLE}) st WHERE {n_sql}",
            n_args,
        )
        wanted = {(n, v) for n, v in pairs if v is not None}
        if not wanted:
            continue
        w_names, w_args = conn.in_clause("name", sorted({n for n, _ in wanted}))
        v_sql, v_args = conn.in_clause("version", sorted({v for _, v in wanted}))
        for row in conn.all(
            f"SELECT {MV_COLUMNS} FROM model_versions WHERE {w_names} AND {v_sql}"
            " ORDER BY name, version",
            (*w_args, *v_args),
        ):
            if (row[0], row[1]) in wanted:
                out[row[0]].append(row)
    return out


def model_dicts(conn: Conn, rows: Sequence[tuple]) -> list[dict]:
    """Full RegisteredModel objects (latest versions, tags, aliases) for rows, in order."""
    if not rows:
        return []
    names = [r[0] for r in rows]
    latest = _latest_rows(conn, names)
    tags: dict[str, list[dict]] = {}
    aliases: dict[str, list[dict]] = {}
    for start in range(0, len(names), 900):
        n_sql, n_args = conn.in_clause("name", names[start : start + 900])
        for name, key, value in conn.all(
            f"SELECT name, key, value FROM registered_model_tags WHERE {n_sql} ORDER BY key",
            n_args,
        ):
            tags.setdefault(name, []).append({"key": key, "value": value})
        for name, alias, version in conn.all(
            f"SELECT name, alias, version FROM registered_model_aliases WHERE {n_sql}"
            " ORDER BY alias",
            n_args,
        ):
            aliases.setdefault(name, []).append({"alias": alias, "version": str(version)})
    version_tags = tags_for(conn, [(r[0], r[1]) for rs in latest.values() for r in rs])
    out = []
    for row in rows:
        name = row[0]
        rm: dict[str, Any] = {"name": name, "creation_timestamp": row[1]}
        if row[2]:
            rm["last_updated_timestamp"] = row[2]
        if row[4]:
            rm["user_id"] = row[4]
        if row[3]:
            rm["description"] = row[3]
        if latest[name]:
            rm["latest_versions"] = [
                version_from_row(mv, version_tags.get((name, mv[1]))) for mv in latest[name]
            ]
        if name in tags:
            rm["tags"] = tags[name]
        if name in aliases:
            rm["aliases"] = aliases[name]
        out.append(rm)
    return out


def get_registered_model(conn: Conn, name: str) -> dict:
    return model_dicts(conn, [_model_row(conn, name)])[0]


def get_latest_versions(conn: Conn, name: str, stages: list[str]) -> list[dict]:
    _model_row(conn, name)
    wanted = {canonical_stage(s) for s in stages} if stages else set(STAGES)
    rows = [r for r in _latest_rows(conn, [name])[name] if r[6] in wanted]
    if not rows:
        return []
    tags = _version_tags(conn, name, [r[1] for r in rows])
    by_version: dict[int, list[str]] = {}
    for alias, version in _aliases(conn, name):
        by_version.setdefault(version, []).append(alias)
    return [version_from_row(r, tags.get(r[1]), by_version.get(r[1])) for r in rows]


def get_model_version_by_alias(conn: Conn, name: str, alias: str) -> dict:
    _model_row(conn, name)
    if alias.lower() == "latest":
        version = conn.scalar(
            "SELECT MAX(version) FROM model_versions WHERE name = ? AND current_stage != ?",
            (name, DELETED),
        )
        if version is None:
            raise not_found(f"Latest version not found for model {name}.")
        return version_dict(conn, name, version)
    version = conn.scalar(
        "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)
    )
    if version is None:
        # MLflow answers an unknown alias with 400, not 404; clients depend on the code.
        raise invalid(f"Registered model alias {alias} not found.")
    return version_dict(conn, name, version)


def get_download_uri(conn: Conn, name: str, version: str) -> str:
    """What the client downloads from (the stock server's rule: storage location, else source)."""
    row = _version_row(conn, name, parse_version(version))
    return row[12] or row[7]


def download_location(conn: Conn, name: str, version: str | int) -> str:
    """The artifact location of a version, resolved for the server's own downloads.

    ``models:/m-...`` sources resolve to the logged model's artifact location, ``runs:/<run>/p``
    to the run's artifact URI plus ``p``; anything else is the storage location or the source.
    """
    row = _version_row(conn, name, parse_version(version))
    source, storage, model_id = row[7], row[12], row[13]
    location = storage or source
    if source.startswith("models:/") and model_id and not storage:
        location = (
            conn.scalar(
                "SELECT artifact_location FROM logged_models WHERE model_id = ?", (model_id,)
            )
            or location
        )
    if location.startswith("runs:/"):
        run_id, _, path = location[len("runs:/") :].partition("/")
        root = conn.scalar("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))
        if root is None:
            raise not_found(f"Run with id={run_id} not found")
        return f"{root.rstrip('/')}/{path}".rstrip("/") if path else root
    return location


# --- registered models: writes ----------------------------------------------------------------
def create_registered_model(
    conn: Conn,
    actor: Actor,
    name: str,
    tags: list[tuple[str, str]],
    description: str | None,
) -> dict:
    existing = conn.one("SELECT name FROM registered_models WHERE name = ?", (name,))
    if existing is not None:
        _raise_exists(name, is_prompt(conn, name), dict(tags).get(PROMPT_TAG) is not None)
    try:
        with conn.savepoint():
            conn.execute(
                "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp,"
                " description, user_id, last_version) VALUES (?, ?, ?, ?, ?, 0)",
                (name, actor.now, actor.now, description or None, actor.user),
            )
    except integrity_errors():  # created concurrently by another request
        _raise_exists(name, is_prompt(conn, name), dict(tags).get(PROMPT_TAG) is not None)
    merged = dict(tags)
    conn.executemany(
        "INSERT INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)",
        [(name, k, v) for k, v in merged.items()],
    )
    _history(conn, actor, name, "model", "created")
    for key, value in merged.items():
        _history(conn, actor, name, "model_tag", key, new=value)
    return get_registered_model(conn, name)


def _raise_exists(name: str, existing_prompt: bool, new_prompt: bool) -> None:
    old = "prompt" if existing_prompt else "registered model"
    new = "prompt" if new_prompt else "registered model"
    if old != new:
        raise already_exists(
            f"Tried to create a {new} with name {name!r}, but the name is already taken by a "
            f"{old}. MLflow does not allow creating a model and a prompt with the same name."
        )
    raise already_exists(
        f"{'Prompt' if new_prompt else 'Registered Model'} (name={name}) already exists."
    )


def update_registered_model(conn: Conn, actor: Actor, name: str, description: str | None) -> dict:
    row = _model_row(conn, name, for_update=True)
    conn.execute(
        "UPDATE registered_models SET description = ?, last_updated_timestamp = ? WHERE name = ?",
        (description, actor.now, name),
    )
    if (row[3] or "") != (description or ""):
        _history(conn, actor, name, "description", old=row[3], new=description)
    return get_registered_model(conn, name)


_CHILD_TABLES = (
    "registered_model_tags",
    "registered_model_aliases",
    "model_version_tags",
    "model_versions",
)


def rename_registered_model(conn: Conn, actor: Actor, name: str, new_name: str) -> dict:
    _model_row(conn, name, for_update=True)
    if new_name != name:
        if conn.one("SELECT 1 FROM registered_models WHERE name = ?", (new_name,)):
            raise already_exists(f"Registered Model (name={new_name}) already exists.")
        conn.execute(
            "UPDATE registered_models SET name = ?, last_updated_timestamp = ? WHERE name = ?",
            (new_name, actor.now, name),
        )
        for table in _CHILD_TABLES:
            conn.execute(f"UPDATE {table} SET name = ? WHERE name = ?", (new_name, name))
        conn.execute(
            "UPDATE model_versions SET last_updated_timestamp = ? WHERE name = ?",
            (actor.now, new_name),
        )
        # The history follows the model: "what was champion" is asked of the current name.
        conn.execute("UPDATE registry_history SET name = ? WHERE name = ?", (new_name, name))
        _history(conn, actor, new_name, "model", "renamed", old=name, new=new_name)
    return get_registered_model(conn, new_name)


def delete_registered_model(conn: Conn, actor: Actor, name: str) -> None:
    """Delete a model with its versions, tags and aliases (MLflow cascades the same way)."""
    _model_row(conn, name, for_update=True)
    for alias, version in _aliases(conn, name):
        _history(conn, actor, name, "alias", alias, old=str(version))
    for table in _CHILD_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
    conn.execute("DELETE FROM registered_models WHERE name = ?", (name,))
    _history(conn, actor, name, "model", "deleted")


def set_registered_model_tag(conn: Conn, actor: Actor, name: str, key: str, value: str) -> bool:
    """Set a tag; returns whether the model is a prompt (which picks the webhook event)."""
    _lock_model(conn, name)
    old = conn.scalar(
        "SELECT value FROM registered_model_tags WHERE name = ? AND key = ?", (name, key)
    )
    conn.execute(
        "INSERT INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        (name, key, value),
    )
    if old != value:
        _history(conn, actor, name, "model_tag", key, old=old, new=value)
    return is_prompt(conn, name)


def delete_registered_model_tag(conn: Conn, actor: Actor, name: str, key: str) -> bool:
    """Delete a tag (a missing tag is not an error, as in MLflow); returns is_prompt."""
    _lock_model(conn, name)
    prompt = is_prompt(conn, name)
    old = conn.scalar(
        "SELECT value FROM registered_model_tags WHERE name = ? AND key = ?", (name, key)
    )
    if old is not None:
        conn.execute("DELETE FROM registered_model_tags WHERE name = ? AND key = ?", (name, key))
        _history(conn, actor, name, "model_tag", key, old=old)
    return prompt


# --- aliases ----------------------------------------------------------------------------------
def set_alias(conn: Conn, actor: Actor, name: str, alias: str, version: str) -> bool:
    _lock_model(conn, name)
    number = parse_version(version)
    _version_row(conn, name, number)
    old = conn.scalar(
        "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)
    )
    conn.execute(
        "INSERT INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?)"
        " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        (name, alias, number),
    )
    if old != number:
        _history(
            conn,
            actor,
            name,
            "alias",
            alias,
            version=number,
            old=None if old is None else str(old),
            new=str(number),
        )
    return is_prompt(conn, name)


def delete_alias(conn: Conn, actor: Actor, name: str, alias: str) -> bool:
    _lock_model(conn, name)
    old = conn.scalar(
        "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)
    )
    if old is not None:
        conn.execute(
            "DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)
        )
        _history(conn, actor, name, "alias", alias, version=old, old=str(old))
    return is_prompt(conn, name)


# --- model versions: writes -------------------------------------------------------------------
@dataclass(frozen=True)
class CreatedVersion:
    model_version: dict
    source: str
    run_id: str
    is_prompt: bool


def create_model_version(
    conn: Conn,
    actor: Actor,
    *,
    name: str,
    source: str,
    run_id: str | None,
    model_id: str | None,
    tags: list[tuple[str, str]],
    run_link: str | None,
    description: str | None,
) -> CreatedVersion:
    merged_tags = dict(tags)
    prompt = merged_tags.get(PROMPT_TAG, "false").lower() == "true"
    resolved = resolve_source(
        conn,
        source=source,
        run_id=run_id,
        model_id=model_id,
        prompt=prompt,
        lookup_version=_lookup_version_source,
    )
    if conn.one("SELECT 1 FROM registered_models WHERE name = ?", (name,)) is None:
        raise not_found(f"Registered Model with name={name} not found")
    if resolved.model_id and not prompt:
        # Before the counter: this row lock must not be held while the counter's is.
        _lock_logged_model(conn, resolved.model_id)
    # The counter row is the lock that serialises concurrent registrations of one model; it is
    # taken last and held only for the few inserts below.
    version = _next_version(conn, name, actor.now)
    row = (
        name,
        version,
        actor.now,
        actor.now,
        description or "",
        actor.user,
        "None",
        resolved.source,
        resolved.run_id or "",
        run_link or "",
        "READY",
        None,
        resolved.storage_location,
        resolved.model_id,
    )
    conn.execute(f"INSERT INTO model_versions ({MV_COLUMNS}) VALUES ({', '.join('?' * 14)})", row)
    conn.executemany(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)",
        [(name, version, k, v) for k, v in merged_tags.items()],
    )
    _history_many(
        conn,
        actor,
        [(name, version, "version", "created", None, resolved.source)]
        + [(name, version, "version_tag", k, None, v) for k, v in merged_tags.items()],
    )
    if resolved.model_id and not prompt:
        _append_model_versions_tag(conn, resolved.model_id, name, version)
    tags_out = [{"key": k, "value": v} for k, v in sorted(merged_tags.items())]
    mv = version_from_row(row, tags_out)
    return CreatedVersion(mv, resolved.source, resolved.run_id or "", prompt)


def _next_version(conn: Conn, name: str, now: int) -> int:
    sql = (
        "UPDATE registered_models SET last_version = last_version + 1,"
        " last_updated_timestamp = ? WHERE name = ?"
    )
    if conn.dialect == "postgresql":
        return conn.one(sql + " RETURNING last_version", (now, name))[0]
    conn.execute(sql, (now, name))
    return conn.scalar("SELECT last_version FROM registered_models WHERE name = ?", (name,))


def _lock_logged_model(conn: Conn, model_id: str) -> None:
    if conn.dialect == "postgresql":
        conn.execute("SELECT 1 FROM logged_models WHERE model_id = ? FOR UPDATE", (model_id,))


def _lookup_version_source(conn: Conn, ref: ModelRef) -> tuple[str, int, str, str | None, str]:
    """Resolve ``models:/name/<version|stage|latest>`` or ``models:/name@alias``.

    Returns (name, version, run_id, model_id, download location).
    """
    _model_row(conn, ref.name)
    if is_prompt(conn, ref.name):
        raise invalid(
            f"Invalid model version source: '{ref.uri}'. Prompt versions cannot be used as "
            "model version sources."
        )
    if ref.alias is not None:
        version = int(get_model_version_by_alias(conn, ref.name, ref.alias)["version"])
    elif ref.version is not None:
        version = ref.version
    else:
        stage_sql, args = "", [ref.name, DELETED]
        if ref.stage is not None:
            stage_sql = " AND current_stage = ?"
            args.append(canonical_stage(ref.stage))
        version = conn.scalar(
            "SELECT MAX(version) FROM model_versions WHERE name = ? AND current_stage != ?"
            + stage_sql,
            args,
        )
        if version is None:
            raise invalid(f"No versions of model with name '{ref.name}' found")
    row = _version_row(conn, ref.name, version)
    return ref.name, version, row[8] or "", row[13], row[12] or row[7]


def _append_model_versions_tag(conn: Conn, model_id: str, name: str, version: int) -> None:
    """Record the registration on the logged model, as the stock server does."""
    old = conn.scalar(
        "SELECT value FROM logged_model_tags WHERE model_id = ? AND key = ?",
        (model_id, MODEL_VERSIONS_TAG),
    )
    entry = {"name": name, "version": version}
    entries = []
    if old:
        try:
            entries = json.loads(old)
        except ValueError:
            entries = []
        if not isinstance(entries, list):
            entries = []
    if entry not in entries:
        entries.append(entry)
    conn.execute(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
        (model_id, MODEL_VERSIONS_TAG, json.dumps(entries)),
    )


def update_model_version(
    conn: Conn, actor: Actor, name: str, version: str, description: str | None
) -> dict:
    _lock_model(conn, name)
    number = parse_version(version)
    row = _version_row(conn, name, number)
    if description is not None:
        conn.execute(
            "UPDATE model_versions SET description = ?, last_updated_timestamp = ?"
            " WHERE name = ? AND version = ?",
            (description, actor.now, name, number),
        )
        if (row[4] or "") != description:
            _history(conn, actor, name, "description", version=number, old=row[4], new=description)
    return version_dict(conn, name, number)


def transition_stage(
    conn: Conn, actor: Actor, name: str, version: str, stage: str, archive_existing: bool
) -> tuple[dict, str]:
    """Move a version to a stage; returns the version and its previous stage."""
    number = parse_version(version)
    target = canonical_stage(stage)
    if archive_existing and target not in ACTIVE_STAGES:
        raise invalid(
            "Model version transition cannot archive existing model versions because "
            f"'{stage}' is not an Active stage. Valid stages are {list(ACTIVE_STAGES)}"
        )
    _model_row(conn, name, for_update=True)
    row = _version_row(conn, name, number)
    if archive_existing:
        for (other,) in conn.all(
            "SELECT version FROM model_versions WHERE name = ? AND version != ?"
            " AND current_stage = ? ORDER BY version",
            (name, number, target),
        ):
            conn.execute(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = ?"
                " WHERE name = ? AND version = ?",
                (actor.now, name, other),
            )
            _history(conn, actor, name, "stage", version=other, old=target, new="Archived")
    conn.execute(
        "UPDATE model_versions SET current_stage = ?, last_updated_timestamp = ?"
        " WHERE name = ? AND version = ?",
        (target, actor.now, name, number),
    )
    _touch_model(conn, name, actor.now)
    if row[6] != target:
        _history(conn, actor, name, "stage", version=number, old=row[6], new=target)
    return version_dict(conn, name, number), row[6]


def delete_model_version(conn: Conn, actor: Actor, name: str, version: str) -> None:
    """Soft delete: the row stays (version numbers are never reused), its details are redacted."""
    _lock_model(conn, name)
    number = parse_version(version)
    _version_row(conn, name, number)
    for (alias,) in conn.all(
        "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?",
        (name, number),
    ):
        _history(conn, actor, name, "alias", alias, version=number, old=str(number))
    conn.execute(
        "DELETE FROM registered_model_aliases WHERE name = ? AND version = ?", (name, number)
    )
    conn.execute(
        "UPDATE model_versions SET current_stage = ?, last_updated_timestamp = ?,"
        " description = NULL, user_id = '', source = 'REDACTED-SOURCE-PATH',"
        " run_id = 'REDACTED-RUN-ID', run_link = 'REDACTED-RUN-LINK', status_message = NULL,"
        " storage_location = NULL WHERE name = ? AND version = ?",
        (DELETED, actor.now, name, number),
    )
    _touch_model(conn, name, actor.now)
    _history(conn, actor, name, "version", "deleted", version=number)


def set_model_version_tag(
    conn: Conn, actor: Actor, name: str, version: str, key: str, value: str
) -> bool:
    _lock_model(conn, name)
    number = parse_version(version)
    _version_row(conn, name, number)
    old = conn.scalar(
        "SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
        (name, number, key),
    )
    conn.execute(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        (name, number, key, value),
    )
    if old != value:
        _history(conn, actor, name, "version_tag", key, version=number, old=old, new=value)
    return is_prompt(conn, name)


def delete_model_version_tag(conn: Conn, actor: Actor, name: str, version: str, key: str) -> bool:
    _lock_model(conn, name)
    number = parse_version(version)
    _version_row(conn, name, number)
    old = conn.scalar(
        "SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
        (name, number, key),
    )
    if old is not None:
        conn.execute(
            "DELETE FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
            (name, number, key),
        )
        _history(conn, actor, name, "version_tag", key, version=number, old=old)
    return is_prompt(conn, name)
