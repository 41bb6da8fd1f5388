"""MLflow 3 logged models: create, finalize, tags, params, metrics and search.

A logged model is what ``mlflow.<flavor>.log_model`` creates in 3.x: an id ``m-<32 hex>`` with
its own artifact root ``<experiment artifact_location>/models/<model_id>/artifacts``, linked to
the run that produced it. Every function runs inside one transaction (see store.db).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from labtrack.store import experiments, filters, paging
from labtrack.store.db import Conn
from labtrack.store.names import generate_run_name
from labtrack.wire import MAX_DOUBLE, encode_double, invalid, not_found

STATUSES = (
    "LOGGED_MODEL_STATUS_UNSPECIFIED",
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
)
LOGGED_MODELS_RUN_TAG = "mlflow.log-model.history"
DEFAULT_MAX_RESULTS = 50
MAX_RESULTS = 10_000

_BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")
_COLUMNS = (
    "model_id, experiment_id, name, artifact_location, creation_timestamp_ms,"
    " last_updated_timestamp_ms, status, status_message, lifecycle_stage, model_type,"
    " source_run_id, creator_id"
)


def parse_status(value: Any) -> str:
    """A LoggedModelStatus by name or by number (0-based, as in the proto)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(STATUSES):
        return STATUSES[value]
    if isinstance(value, str) and value.upper() in STATUSES:
        return value.upper()
    raise invalid(f"Invalid logged model status: {value!r}. Expected one of {list(STATUSES)}.")


def check_name(name: str | None) -> None:
    if name is None:
        return
    if not name or any(c in name for c in _BAD_NAME_CHARS):
        raise invalid(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_BAD_NAME_CHARS}"
        )


# --- reads ------------------------------------------------------------------------------------
def _row(conn: Conn, model_id: str, *, allow_deleted: bool = False) -> tuple:
    """The model's row; writes accept a deleted model, as the stock server does."""
    row = conn.one(f"SELECT {_COLUMNS} FROM logged_models WHERE model_id = ?", (model_id,))
    if row is None or (row[8] != "active" and not allow_deleted):
        raise not_found(f"Logged model with ID '{model_id}' not found.")
    return row


def _load(conn: Conn, rows: Sequence[tuple]) -> list[dict]:
    if not rows:
        return []
    ids = [r[0] for r in rows]
    parts: dict[str, dict[str, list]] = {i: {"tags": [], "params": [], "metrics": []} for i in ids}
    for start in range(0, len(ids), 900):
        id_sql, args = conn.in_clause("model_id", ids[start : start + 900])
        for model_id, key, value in conn.all(
            f"SELECT model_id, key, value FROM logged_model_tags WHERE {id_sql} ORDER BY key", args
        ):
            parts[model_id]["tags"].append({"key": key, "value": value})
        for model_id, key, value in conn.all(
            f"SELECT model_id, key, value FROM logged_model_params WHERE {id_sql} ORDER BY key",
            args,
        ):
            parts[model_id]["params"].append({"key": key, "value": value})
        for row in conn.all(
            "SELECT model_id, key, value, is_nan, timestamp, step, run_id, dataset_name,"
            f" dataset_digest FROM logged_model_metrics WHERE {id_sql}"
            " ORDER BY key, timestamp, step",
            args,
        ):
            parts[row[0]]["metrics"].append(_metric(row))
    return [_to_dict(r, parts[r[0]]) for r in rows]


def _metric(row: tuple) -> dict:
    model_id, key, value, is_nan, ts, step, run_id, dataset_name, dataset_digest = row
    metric: dict[str, Any] = {
        "key": key,
        "value": "NaN" if is_nan else encode_double(value),
        "timestamp": ts,
        "step": step,
    }
    if dataset_name:
        metric["dataset_name"] = dataset_name
    if dataset_digest:
        metric["dataset_digest"] = dataset_digest
    metric["model_id"] = model_id
    if run_id:
        metric["run_id"] = run_id
    return metric


def _to_dict(row: tuple, parts: dict[str, list]) -> dict:
    info: dict[str, Any] = {
        "model_id": row[0],
        "experiment_id": str(row[1]),
        "name": row[2],
        "creation_timestamp_ms": row[4],
        "last_updated_timestamp_ms": row[5],
        "artifact_uri": row[3],
        "status": row[6],
        "model_type": row[9] or "",
    }
    if row[10]:
        info["source_run_id"] = row[10]
    if row[7]:
        info["status_message"] = row[7]
    if parts["tags"]:
        info["tags"] = parts["tags"]
    data = {k: parts[k] for k in ("params", "metrics") if parts[k]}
    return {"info": info, "data": data}


def get(conn: Conn, model_id: str, *, allow_deleted: bool = False) -> dict:
    return _load(conn, [_row(conn, model_id, allow_deleted=allow_deleted)])[0]


def artifact_location(conn: Conn, model_id: str) -> str:
    return _row(conn, model_id)[3]


# --- writes -----------------------------------------------------------------------------------
def create(
    conn: Conn,
    *,
    experiment_id: int,
    name: str | None,
    model_type: str | None,
    source_run_id: str | None,
    params: list[tuple[str, str]],
    tags: list[tuple[str, str]],
    creator: str,
    now: int,
) -> dict:
    exp = experiments.require_active(conn, experiment_id)
    model_id = f"m-{uuid.uuid4().hex}"
    location = f"{exp[2].rstrip('/')}/models/{model_id}/artifacts"
    conn.execute(
        f"INSERT INTO logged_models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 'active',"
        " ?, ?, ?)",
        (
            model_id,
            experiment_id,
            name or generate_run_name(),
            location,
            now,
            now,
            "LOGGED_MODEL_PENDING",
            model_type or "",
            source_run_id or None,
            creator,
        ),
    )
    _insert_params(conn, model_id, params)
    set_tags(conn, model_id, tags, now=None)
    return get(conn, model_id)


def _insert_params(conn: Conn, model_id: str, params: Sequence[tuple[str, str]]) -> None:
    """Params are write-once, like a run's: the same value again is fine, another is refused."""
    if not params:
        return
    merged: dict[str, str] = {}
    for key, value in params:
        if key in merged and merged[key] != value:
            raise invalid(f"Duplicate parameter key '{key}' with different values.")
        merged[key] = value
    key_sql, key_args = conn.in_clause("key", list(merged))
    existing = dict(
        conn.all(
            f"SELECT key, value FROM logged_model_params WHERE model_id = ? AND {key_sql}",
            (model_id, *key_args),
        )
    )
    for key, value in merged.items():
        if key in existing and existing[key] != value:
            raise invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already "
                f"logged with value='{existing[key]}' for logged model ID='{model_id}'. "
                f"Attempted logging new value '{value}'."
            )
    conn.executemany(
        "INSERT INTO logged_model_params (model_id, key, value) VALUES (?, ?, ?)",
        [(model_id, k, v) for k, v in merged.items() if k not in existing],
    )


def log_params(conn: Conn, model_id: str, params: list[tuple[str, str]], now: int) -> None:
    _row(conn, model_id, allow_deleted=True)
    _insert_params(conn, model_id, params)
    _touch(conn, model_id, now)


def _touch(conn: Conn, model_id: str, now: int) -> None:
    conn.execute(
        "UPDATE logged_models SET last_updated_timestamp_ms = ? WHERE model_id = ?",
        (now, model_id),
    )


def finalize(conn: Conn, model_id: str, status: str, now: int) -> dict:
    _row(conn, model_id, allow_deleted=True)
    conn.execute(
        "UPDATE logged_models SET status = ?, last_updated_timestamp_ms = ? WHERE model_id = ?",
        (status, now, model_id),
    )
    return get(conn, model_id, allow_deleted=True)


def delete(conn: Conn, model_id: str, now: int) -> None:
    """Soft delete, as MLflow: the row stays so registered versions keep their lineage."""
    _row(conn, model_id, allow_deleted=True)
    conn.execute(
        "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ?"
        " WHERE model_id = ?",
        (now, model_id),
    )


def set_tags(conn: Conn, model_id: str, tags: Sequence[tuple[str, str]], now: int | None) -> None:
    if now is not None:
        _row(conn, model_id, allow_deleted=True)
    merged = dict(tags)  # a repeated key keeps its last value
    conn.executemany(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
        [(model_id, k, v) for k, v in merged.items()],
    )


def delete_tag(conn: Conn, model_id: str, key: str) -> None:
    _row(conn, model_id, allow_deleted=True)
    deleted = conn.execute(
        "DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?", (model_id, key)
    ).rowcount
    if not deleted:
        raise not_found(f"No tag with key {key!r} found for model with ID {model_id!r}.")


# (model_id, key, value, timestamp, step, run_id, dataset_name, dataset_digest)
ModelMetric = tuple[str, str, float, int, int, str, str | None, str | None]


def log_metrics(conn: Conn, metrics: Sequence[ModelMetric]) -> None:
    """Attach metrics logged with a ``model_id`` to that logged model (a hook for log-batch).

    Unknown model ids are skipped, as the stock server does, so a metric logged against a
    deleted or foreign model never fails the run's own logging.
    """
    if not metrics:
        return
    ids = sorted({m[0] for m in metrics})
    id_sql, args = conn.in_clause("model_id", ids)
    known = {r[0] for r in conn.all(f"SELECT model_id FROM logged_models WHERE {id_sql}", args)}
    rows = []
    for model_id, key, value, ts, step, run_id, dataset_name, dataset_digest in metrics:
        if model_id not in known:
            continue
        is_nan = 1 if value != value else 0
        if is_nan:
            value = 0.0
        elif value > MAX_DOUBLE or value < -MAX_DOUBLE:
            value = MAX_DOUBLE if value > 0 else -MAX_DOUBLE
        rows.append(
            (
                model_id,
                key,
                value,
                is_nan,
                ts,
                step,
                run_id,
                dataset_name or "",
                dataset_digest or "",
            )
        )
    conn.executemany(
        "INSERT INTO logged_model_metrics (model_id, key, value, is_nan, timestamp, step, run_id,"
        " dataset_name, dataset_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (model_id, key, timestamp, step, run_id, dataset_name, dataset_digest)"
        " DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan",
        rows,
    )


def record_run_log_model(conn: Conn, run_id: str, model_json: str) -> None:
    """2.x ``runs/log-model``: append the MLmodel to the run tag ``mlflow.log-model.history``."""
    from labtrack.store import runs

    try:
        model = json.loads(model_json)
    except ValueError:
        raise invalid(f"Malformed model info. \n {model_json} \n is not a valid JSON.") from None
    if not isinstance(model, dict):
        raise invalid(f"Malformed model info. \n {model_json} \n is not a JSON object.")
    missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(model)
    if missing:
        raise invalid(f"Model json is missing mandatory fields: {sorted(missing)}")
    run_pk = runs.active_pk(conn, run_id)
    old = conn.scalar(
        "SELECT value FROM run_tags WHERE run_pk = ? AND key = ?", (run_pk, LOGGED_MODELS_RUN_TAG)
    )
    history: list = []
    if old:
        try:
            history = json.loads(old)
        except ValueError:
            history = []
        if not isinstance(history, list):
            history = []
    history.append(_mlmodel_tag_dict(model))
    runs.log_batch(conn, run_id, tags=[(LOGGED_MODELS_RUN_TAG, json.dumps(history))])


def _mlmodel_tag_dict(model: dict) -> dict:
    """What is kept of an MLmodel in the run tag: identity fields and flavors minus configs."""
    ids = ("run_id", "utc_time_created", "artifact_path", "model_uuid")
    kept = {k: v for k, v in model.items() if k in ids}
    flavors = model.get("flavors") or {}
    if isinstance(flavors, dict):
        kept["flavors"] = {
            name: {k: v for k, v in conf.items() if k != "config"}
            if isinstance(conf, dict)
            else conf
            for name, conf in flavors.items()
        }
    return kept


# --- search -----------------------------------------------------------------------------------
_ORDER_COLUMNS = {
    key: attr.column for key, attr in filters.LOGGED_MODELS.attributes.items() if attr.orderable
}


def search(
    conn: Conn,
    *,
    experiment_ids: list[int],
    filter_string: str | None,
    datasets: list[tuple[str, str | None]],
    order_by: list[dict],
    max_results: int,
    page_token: str | None,
) -> dict:
    offset = paging.decode(page_token)
    where = filters.logged_model_filter(filter_string, conn.dialect)
    exp_sql, args = conn.in_clause("lm.experiment_id", experiment_ids)
    sql = f"SELECT {_prefixed('lm.')} FROM logged_models lm WHERE {exp_sql}"
    sql += " AND lm.lifecycle_stage = 'active'"
    args = list(args)
    if where is not None:
        sql += f" AND ({where.sql})"
        args += where.params
    if datasets:
        ds_sql, ds_args = _dataset_condition("dm", datasets)
        sql += (
            " AND EXISTS (SELECT 1 FROM logged_model_metrics dm WHERE dm.model_id = lm.model_id"
            f" AND ({ds_sql}))"
        )
        args += ds_args
    order_sql, order_args = _order(order_by)
    sql += " ORDER BY " + ", ".join(order_sql) + " LIMIT ? OFFSET ?"
    args += order_args + [max_results + 1, offset]
    rows = conn.all(sql, args)
    result: dict[str, Any] = {}
    if rows[:max_results]:
        result["models"] = _load(conn, rows[:max_results])
    if len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def _dataset_condition(alias: str, datasets: list[tuple[str, str | None]]) -> tuple[str, list]:
    terms, args = [], []
    for name, digest in datasets:
        if digest:
            terms.append(f"({alias}.dataset_name = ? AND {alias}.dataset_digest = ?)")
            args += [name, digest]
        else:
            terms.append(f"{alias}.dataset_name = ?")
            args.append(name)
    return " OR ".join(terms), args


def _order(order_by: list[dict]) -> tuple[list[str], list]:
    """ORDER BY for structured ``order_by`` entries; missing values sort last."""
    terms: list[str] = []
    args: list = []
    seen: set[str] = set()
    for entry in order_by:
        field = entry.get("field_name") or ""
        direction = "ASC" if entry.get("ascending", True) else "DESC"
        if field.startswith("metrics."):
            key = field[len("metrics.") :]
            cond, cond_args = "", []
            if entry.get("dataset_name"):
                cond, cond_args = _dataset_condition(
                    "om", [(entry["dataset_name"], entry.get("dataset_digest"))]
                )
                cond = f" AND ({cond})"
            value = (
                "(SELECT om.value FROM logged_model_metrics om WHERE om.model_id = lm.model_id"
                f" AND om.key = ?{cond} ORDER BY om.timestamp DESC, om.step DESC, om.run_id ASC"
                " LIMIT 1)"
            )
            terms += [f"({value} IS NULL) ASC", f"{value} {direction}"]
            args += [key, *cond_args, key, *cond_args]
            identity = field
        else:
            column = _ORDER_COLUMNS.get(field)
            if column is None:
                raise invalid(f"Invalid order by field name: {field}")
            terms += [f"({column} IS NULL) ASC", f"{column} {direction}"]
            identity = column
        if identity in seen:
            raise invalid(f"`order_by` contains duplicate fields: {field}")
        seen.add(identity)
    if "lm.creation_timestamp_ms" not in seen:
        terms.append("lm.creation_timestamp_ms DESC")
    if "lm.model_id" not in seen:
        terms.append("lm.model_id ASC")
    return terms, args


def _prefixed(prefix: str) -> str:
    return ", ".join(prefix + c.strip() for c in _COLUMNS.split(","))
