"""Run queries: lifecycle, params, tags, metrics, inputs/outputs and search.

Functions run inside one transaction each (see store.db), so a log-batch is all or nothing.
Runs are addressed by ``run_uuid`` on the wire and by the integer ``run_pk`` inside the database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence, Sized
from itertools import groupby
from math import isfinite
from operator import itemgetter
from typing import Any

import orjson

from labtrack.store import experiments, filters, paging
from labtrack.store.db import Conn, is_unique_violation, pg_autocommit, pg_group_commit
from labtrack.store.names import generate_run_name
from labtrack.wire import MAX_DOUBLE, invalid, not_found

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
RUN_NAME_TAG = "mlflow.runName"
DATASET_CONTEXT_TAG = "mlflow.data.context"

_INFO_COLUMNS = (
    "run_pk, run_uuid, experiment_id, name, user_id, status, start_time, end_time, artifact_uri,"
    " lifecycle_stage"
)


# --- lookups ------------------------------------------------------------------------------------
def _row(conn, run_id: str) -> tuple:
    row = conn.one(f"SELECT {_INFO_COLUMNS} FROM runs WHERE run_uuid = ?", (run_id,))
    if row is None:
        raise not_found(f"Run with id={run_id} not found")
    return row


def active_pk(conn, run_id: str) -> int:
    """The run's key, refusing writes to a run that is not active (MLflow's rule).

    On PostgreSQL the row is locked FOR KEY SHARE until the transaction ends: it stands in for
    the foreign keys of the tables a write fills (see schema migration 3), so gc cannot remove
    the run while rows are being added to it.
    """
    lock = " FOR KEY SHARE" if conn.dialect == "postgresql" else ""
    row = conn.one(f"SELECT run_pk, lifecycle_stage FROM runs WHERE run_uuid = ?{lock}", (run_id,))
    if row is None:
        raise not_found(f"Run with id={run_id} not found")
    if row[1] != "active":
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is {row[1]}.")
    return row[0]


def _info(row: tuple) -> dict[str, Any]:
    info = {
        "run_uuid": row[1],
        "experiment_id": str(row[2]),
        "run_name": row[3],
        "user_id": row[4],
        "status": row[5],
        "start_time": row[6],
    }
    if row[7] is not None:
        info["end_time"] = row[7]
    info["artifact_uri"] = row[8]
    info["lifecycle_stage"] = row[9]
    info["run_id"] = row[1]
    return info


_first = itemgetter(0)  # a row's run_pk, to group child rows by run


def load(conn, rows: Sequence[tuple]) -> list[dict]:
    """Full Run objects (info, data, inputs, outputs) for info rows, in their order.

    A search page loads up to 50,000 runs, so this is the hot half of ``runs/search``. Each
    child query is ordered by run first: that is the primary key's order, so SQLite needs no
    sort, and each run's rows arrive together, to be turned into one list by ``groupby``.
    """
    if not rows:
        return []
    pks = [r[0] for r in rows]
    metrics: dict[int, list[dict]] = {}
    params: dict[int, list[dict] | orjson.Fragment] = {}
    tags: dict[int, list[dict] | orjson.Fragment] = {}
    inputs: dict[int, list[dict]] = {}
    model_io: dict[tuple[int, str], list[dict]] = {}
    for start in range(0, len(pks), 900):
        chunk = pks[start : start + 900]
        pk_sql, args = conn.in_clause("run_pk", chunk)
        for pk, group in groupby(
            conn.all(
                # Values are clamped to finite doubles on insert; only NaN needs encoding. It
                # comes back as NULL: one column fewer to convert per row.
                "SELECT run_pk, key, CASE WHEN is_nan = 1 THEN NULL ELSE value END,"
                f" timestamp, step FROM latest_metrics WHERE {pk_sql} ORDER BY run_pk, key",
                args,
            ),
            _first,
        ):
            metrics[pk] = [
                {
                    "key": key,
                    "value": "NaN" if value is None else value,
                    "timestamp": ts,
                    "step": step,
                }
                for _, key, value, ts, step in group
            ]
        _load_key_values(conn, "params", pk_sql, args, params)
        _load_key_values(conn, "run_tags", pk_sql, args, tags)
        _load_inputs(conn, pk_sql, args, inputs)
        for pk, direction, model_id, step in conn.all(
            f"SELECT run_pk, direction, model_id, step FROM run_model_io WHERE {pk_sql}"
            " ORDER BY model_id",
            args,
        ):
            model_io.setdefault((pk, direction), []).append({"model_id": model_id, "step": step})
    runs = []
    for row in rows:
        pk = row[0]
        data = {}
        if pk in metrics:
            data["metrics"] = metrics[pk]
        if pk in params:
            data["params"] = params[pk]
        if pk in tags:
            data["tags"] = tags[pk]
        run_inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        if model_io or inputs:  # rare: most runs log neither datasets nor models
            if pk in inputs:
                run_inputs["dataset_inputs"] = inputs[pk]
            if (pk, "in") in model_io:
                run_inputs["model_inputs"] = [
                    {"model_id": m["model_id"]} for m in model_io[(pk, "in")]
                ]
            if (pk, "out") in model_io:
                outputs["model_outputs"] = model_io[(pk, "out")]
        runs.append({"info": _info(row), "data": data, "inputs": run_inputs, "outputs": outputs})
    return runs


def _load_key_values(conn, table: str, pk_sql: str, args: tuple, into: dict) -> None:
    """Each run's rows of ``table`` (params or tags) as its list of ``{key, value}``, in key order.

    On SQLite the database writes each run's list as JSON (text is written exactly), which goes
    into the response as it is (``orjson.Fragment``): a search page of 1,000 runs with 10 params
    and 5 tags each took 26 ms to fetch as rows and as much again to turn into dicts, 18 ms this
    way. The rows arrive in primary-key order, (run, key), so no sort is needed. On PostgreSQL
    the same aggregate was slower than the rows (its JSON functions cost more than the fetch
    saves), so there Python builds the lists.
    """
    if conn.dialect == "sqlite":
        sql = (
            "SELECT run_pk, json_group_array(json_object('key', key, 'value', value))"
            f" FROM {table} WHERE {pk_sql} GROUP BY run_pk"
        )
        into.update((pk, orjson.Fragment(array)) for pk, array in conn.all(sql, args))
        return
    sql = f"SELECT run_pk, key, value FROM {table} WHERE {pk_sql} ORDER BY run_pk, key"
    for pk, group in groupby(conn.all(sql, args), _first):
        into[pk] = [{"key": key, "value": value} for _, key, value in group]


def _load_inputs(conn, pk_sql: str, params: tuple, inputs: dict[int, list[dict]]) -> None:
    rows = conn.all(
        "SELECT ri.run_pk, d.dataset_pk, d.name, d.digest, d.source_type, d.source, d.schema,"
        " d.profile FROM run_inputs ri JOIN datasets d ON d.dataset_pk = ri.dataset_pk"
        f" WHERE ri.{pk_sql} ORDER BY d.dataset_pk",
        params,
    )
    if not rows:
        return
    tags: dict[tuple[int, int], list[dict]] = {}
    for pk, dpk, key, value in conn.all(
        f"SELECT run_pk, dataset_pk, key, value FROM input_tags WHERE {pk_sql} ORDER BY key",
        params,
    ):
        tags.setdefault((pk, dpk), []).append({"key": key, "value": value})
    for pk, dpk, name, digest, source_type, source, schema, profile in rows:
        dataset = {"name": name, "digest": digest, "source_type": source_type, "source": source}
        if schema is not None:
            dataset["schema"] = schema
        if profile is not None:
            dataset["profile"] = profile
        entry: dict[str, Any] = {"dataset": dataset}
        if (pk, dpk) in tags:
            entry = {"tags": tags[(pk, dpk)], "dataset": dataset}
        inputs.setdefault(pk, []).append(entry)


def get(conn, run_id: str) -> dict:
    return load(conn, [_row(conn, run_id)])[0]


# --- lifecycle -----------------------------------------------------------------------------------
@pg_autocommit
def create(
    conn,
    *,
    experiment_id: int,
    user_id: str,
    run_name: str | None,
    start_time: int,
    tags: list[tuple[str, str]],
) -> dict:
    exp = experiments.require_active(conn, experiment_id)
    tag_name = next((v for k, v in tags if k == RUN_NAME_TAG), None)
    if run_name and tag_name and run_name != tag_name:
        raise invalid(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
            f"different values (run_name='{run_name}', mlflow.runName='{tag_name}')."
        )
    name = run_name or tag_name or generate_run_name()
    run_uuid = uuid.uuid4().hex
    artifact_uri = f"{exp[2].rstrip('/')}/{run_uuid}/artifacts"
    merged = dict(tags)
    merged[RUN_NAME_TAG] = name
    insert_run = (
        "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time,"
        " artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, 'RUNNING', ?, ?, 'active')"
    )
    run_args = (run_uuid, experiment_id, name, user_id, start_time, artifact_uri)
    tag_rows = (
        conn.unnest(list(zip(*merged.items(), strict=True)))
        if conn.dialect == "postgresql"
        else None
    )
    conn.wrote("runs", 1)
    if tag_rows is not None:  # PostgreSQL: the run and its tags in one statement (pg_autocommit)
        run_pk = conn.scalar(
            f"WITH run AS ({insert_run} RETURNING run_pk),"
            f" tags AS ({_TAG_INSERT}"
            f" SELECT run.run_pk, t.* FROM run, {tag_rows[0]} AS t)"
            " SELECT run_pk FROM run",
            (*run_args, *tag_rows[1]),
        )
    else:
        with conn.transaction():
            run_pk = conn.insert_returning_id(insert_run, run_args, "run_pk")
            _upsert_tags(conn, run_pk, merged.items())
    # A new run holds only these tags, so the answer is built here rather than read back: six
    # queries fewer on the path every training script takes first.
    row = (run_pk, run_uuid, experiment_id, name, user_id, "RUNNING", start_time, None)
    return {
        "info": _info((*row, artifact_uri, "active")),
        "data": {"tags": [{"key": k, "value": merged[k]} for k in sorted(merged)]},
        "inputs": {},
        "outputs": {},
    }


@pg_autocommit
def update(
    conn, run_id: str, *, status: str | None, end_time: int | None, run_name: str | None
) -> dict:
    sets, args = [], []
    if status is not None:
        sets.append("status = ?")
        args.append(status)
    if end_time is not None:
        sets.append("end_time = ?")
        args.append(end_time)
    if run_name:
        sets.append("name = ?")
        args.append(run_name)
    with conn.transaction() if run_name else contextlib.nullcontext():
        row = None
        if sets:
            # One statement updates and reads back (pg_autocommit: the whole write, usually);
            # no row means a missing or deleted run, which active_pk below words as MLflow does.
            row = conn.one(
                f"UPDATE runs SET {', '.join(sets)}"
                f" WHERE run_uuid = ? AND lifecycle_stage = 'active' RETURNING {_INFO_COLUMNS}",
                (*args, run_id),
            )
        if row is None:
            active_pk(conn, run_id)
            row = _row(conn, run_id)
        if run_name:
            _upsert_tags(conn, row[0], [(RUN_NAME_TAG, run_name)])
    return _info(row)


def set_lifecycle(conn, run_id: str, stage: str, now: int) -> None:
    row = _row(conn, run_id)
    conn.execute(
        "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_pk = ?",
        (stage, now if stage == "deleted" else None, row[0]),
    )


# --- params, tags, metrics ----------------------------------------------------------------------
def _log_params(conn, run_pk: int, run_id: str, params: Sequence[tuple[str, str]]) -> None:
    """Insert params; the same value again is fine, a different one is refused."""
    if not params:
        return
    existing = _refuse_changed_params(conn, run_pk, run_id, params)
    conn.insert_many(
        "INSERT INTO params (run_pk, key, value)",
        [(run_pk, k, v) for k, v in params if k not in existing],
    )


def _refuse_changed_params(
    conn, run_pk: int, run_id: str, params: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """The run's values of these params; refused if one of them differs (MLflow's wording)."""
    key_sql, key_args = conn.in_clause("key", [k for k, _ in params])
    existing = dict(
        conn.all(
            f"SELECT key, value FROM params WHERE run_pk = ? AND {key_sql}", (run_pk, *key_args)
        )
    )
    changed = [(k, existing[k], v) for k, v in params if k in existing and existing[k] != v]
    if len(changed) == 1 and len(params) == 1:
        key, old, new = changed[0]
        raise invalid(
            f"Changing param values is not allowed. Param with key='{key}' was already logged "
            f"with value='{old}' for run ID='{run_id}'. Attempted logging new value '{new}'."
        )
    if changed:
        listed = [{"key": k, "old_value": o, "new_value": n} for k, o, n in changed]
        raise invalid(
            f"Changing param values is not allowed. Params were already logged='{listed}' "
            f"for run ID='{run_id}'."
        )
    return existing


_TAG_COLUMNS = "key, value"
_TAG_INSERT = f"INSERT INTO run_tags (run_pk, {_TAG_COLUMNS})"
_TAG_CONFLICT = "ON CONFLICT (run_pk, key) DO UPDATE SET value = excluded.value"


def _upsert_tags(conn, run_pk: int, tags: Iterable[tuple[str, str]]) -> None:
    # One row per key, the last value winning as it would row by row: a multi-row upsert may
    # not name a key twice (PostgreSQL refuses it).
    conn.insert_many(_TAG_INSERT, [(run_pk, k, v) for k, v in dict(tags).items()], _TAG_CONFLICT)


def _set_tags(conn, run_pk: int, tags: Sequence[tuple[str, str]]) -> None:
    _upsert_tags(conn, run_pk, tags)
    # Setting mlflow.runName renames the run.
    for key, value in tags:
        if key == RUN_NAME_TAG:
            conn.execute("UPDATE runs SET name = ? WHERE run_pk = ?", (value, run_pk))


Metric = tuple[str, float, int, int]  # key, value, timestamp, step


# Metric rows go to the history and to each key's latest value, the latter moving forward only
# when the new point is newer (MLflow's latest value: the max of (step, timestamp, value)).
_HISTORY_COLUMNS = "key, timestamp, step, is_nan, value"
_HISTORY_INSERT = f"INSERT INTO metrics (run_pk, {_HISTORY_COLUMNS})"
_HISTORY_CONFLICT = "ON CONFLICT DO NOTHING"
_LATEST_COLUMNS = "key, value, timestamp, step, is_nan"
_LATEST_INSERT = f"INSERT INTO latest_metrics (run_pk, {_LATEST_COLUMNS})"
_LATEST_CONFLICT = (
    "ON CONFLICT (run_pk, key) DO UPDATE SET"
    " value = excluded.value, timestamp = excluded.timestamp, step = excluded.step,"
    " is_nan = excluded.is_nan"
    " WHERE (excluded.step, excluded.timestamp, excluded.value)"
    " > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)


def _log_metrics(conn, run_pk: int, metrics: Sequence[Metric]) -> None:
    """Append to the history and move each key's latest value forward when it is newer."""
    if not metrics:
        return
    history, latest = _metric_rows(run_pk, metrics)
    conn.insert_many(_HISTORY_INSERT, history, _HISTORY_CONFLICT)
    conn.insert_many(_LATEST_INSERT, latest, _LATEST_CONFLICT)


def _metric_rows(run_pk: int | str, metrics: Sequence[Metric]) -> tuple[list[tuple], list[tuple]]:
    """History rows and one latest row per key, in the column order of the INSERTs above.

    ``run_pk`` goes first in each row as it is: PostgreSQL's statements take the run's id there.
    """
    # A sum is NaN or infinite as soon as one value is, so this one C-level pass finds the usual
    # batch of finite values, which needs no per-value NaN and range handling. (A finite batch
    # whose sum overflows just takes the general path.)
    if not isfinite(sum([m[1] for m in metrics])):
        return _clamped_metrics(run_pk, metrics)
    history = [(run_pk, key, ts, step, 0, value) for key, value, ts, step in metrics]
    best: dict[str, tuple[int, int, float]] = {}
    get = best.get
    for key, value, ts, step in metrics:
        candidate = (step, ts, value)
        current = get(key)
        if current is None or candidate > current:
            best[key] = candidate
    return history, [(run_pk, k, v, ts, step, 0) for k, (step, ts, v) in best.items()]


def _clamped_metrics(
    run_pk: int | str, metrics: Sequence[Metric]
) -> tuple[list[tuple], list[tuple]]:
    """History and latest rows of a batch holding NaN or infinite values.

    NaN is stored as 0 with ``is_nan`` set (SQLite turns NaN into NULL), and +-inf as the
    largest finite double, which is what the stock server returns for them.
    """
    history = []
    latest: dict[str, tuple] = {}
    for key, value, timestamp, step in metrics:
        is_nan = 1 if value != value else 0
        if is_nan:
            value = 0.0
        elif value > MAX_DOUBLE or value < -MAX_DOUBLE:
            value = MAX_DOUBLE if value > 0 else -MAX_DOUBLE
        history.append((run_pk, key, timestamp, step, is_nan, value))
        candidate = (step, timestamp, value, is_nan)
        if key not in latest or candidate[:3] > latest[key][:3]:
            latest[key] = candidate
    return history, [(run_pk, k, v, ts, step, nan) for k, (step, ts, v, nan) in latest.items()]


# Batches of up to this many metrics, params and tags each (a training step's metrics, a run's
# first batch) share statements and commits with concurrent ones on PostgreSQL. Larger ones (a
# chunk of a long series) amortize their commit already and gain more from running beside each
# other on several connections, where the group is written by one.
GROUPED_ROWS = 100


def _groupable(
    run_id: str,
    *,
    metrics: Sequence[Metric] = (),
    params: Sequence[tuple[str, str]] = (),
    tags: Sequence[tuple[str, str]] = (),
    model_metrics: Sequence[tuple] = (),
) -> bool:
    """A small ``log_batch`` call that neither renames the run nor names a logged model."""
    sizes = (len(metrics), len(params), len(tags))
    return (
        0 < max(sizes) <= GROUPED_ROWS
        and not model_metrics
        and all(key != RUN_NAME_TAG for key, _ in tags)
    )


# One run's share of a log-batch statement: metrics, params and tags (one value per key).
_Batch = tuple[list[Metric], dict[str, str], dict[str, str]]


def _pg_log_batches_together(conn, calls: list[tuple[tuple, dict]]) -> list[bool]:
    """Several small ``log_batch`` calls, for any runs, with one statement.

    A run's calls are written when it is active and none of their params was logged before
    with another value. Each run's metrics from all calls go through ``_metric_rows`` together,
    so a key's latest value is the newest over all of them, and a tag set twice keeps the later
    value: what writing the calls one after the other would leave. The statement is atomic: if
    it fails (a point already stored, a param logged meanwhile), nothing was written, and every
    call then runs alone, as do the calls it left out, to get their own errors.
    """
    batches: dict[str, _Batch] = {}
    for (run_id,), kwargs in calls:
        metrics, params, tags = batches.setdefault(run_id, ([], {}, {}))
        metrics.extend(kwargs.get("metrics", ()))
        for key, value in kwargs.get("params", ()):
            if key in params:  # two calls log one param: the later may have to be refused
                return [False] * len(calls)
            params[key] = value
        tags.update(kwargs.get("tags", ()))
    statement = _pg_batches_statement(conn, batches, None, "")
    if statement is None:
        return [False] * len(calls)
    written = {run_id for run_id, _, ok in conn.all(*statement) if ok}
    for metrics, params, tags in batches.values():
        _note_written(conn, metrics, params, tags)
    return [call_args[0] in written for call_args, _ in calls]


@pg_group_commit(_groupable, _pg_log_batches_together)
@pg_autocommit
def log_batch(
    conn,
    run_id: str,
    *,
    metrics: Sequence[Metric] = (),
    params: Sequence[tuple[str, str]] = (),
    tags: Sequence[tuple[str, str]] = (),
    model_metrics: Sequence[tuple] = (),
) -> None:
    """Log everything or nothing: the whole batch is one transaction.

    ``model_metrics`` are the metrics that named a logged model (``model_id``); they are
    recorded on that model too, as ``logged_models.log_metrics`` rows.
    """
    _note_written(conn, metrics, params, tags)
    if conn.dialect == "postgresql" and not model_metrics:
        if _pg_log_batch(conn, run_id, metrics, params, tags):
            return
    with conn.transaction():
        run_pk = active_pk(conn, run_id)
        _log_params(conn, run_pk, run_id, params)
        _log_metrics(conn, run_pk, metrics)
        if model_metrics:
            from labtrack.store import logged_models

            logged_models.log_metrics(conn, model_metrics)
        _set_tags(conn, run_pk, tags)


def _note_written(conn, metrics: Sequence, params: Sized, tags: Sized) -> None:
    """Tell PostgreSQL's statistics thread how many rows a log-batch adds (``Conn.wrote``)."""
    conn.wrote("metrics", len(metrics))
    conn.wrote("latest_metrics", len(metrics))
    conn.wrote("params", len(params))
    conn.wrote("run_tags", len(tags))


def _pg_log_batch(conn, run_id: str, metrics, params, tags) -> bool:
    """``log_batch`` on PostgreSQL: one statement finds the run and writes the whole batch.

    Outside a caller's transaction the statement commits by itself: one round trip instead of
    BEGIN, statement and COMMIT (a run's first log-batch, with its params, is half of a
    training script's writes). It can: it writes nothing when a param was logged before with
    another value (then ``_refuse_changed_params`` words the error), and a param logged by
    someone else since the statement began fails it on the primary key, undone as a whole.
    False sends the call down the general path, in one transaction: that race, a run restored
    meanwhile, or a column with no array type (not expected of parsed input).

    History rows go in with a plain INSERT: ``ON CONFLICT DO NOTHING`` makes PostgreSQL insert
    each row speculatively (40% slower: 8.2 vs 5.1 ms for 1,000 points), to drop a point that
    is already stored, which only a client that sends a batch again does. Such a batch fails on
    the primary key, undone as a whole, and goes again with the conflict clause.
    """
    by_key = dict(tags)  # one row per key, the last value winning
    batch: dict[str, _Batch] = {run_id: (list(metrics), dict(params), by_key)}
    # Inside a caller's transaction, a savepoint: a failed statement must not abort it.
    nested = conn.in_transaction
    for history_conflict in ("", _HISTORY_CONFLICT):
        statement = _pg_batches_statement(conn, batch, by_key.get(RUN_NAME_TAG), history_conflict)
        if statement is None:
            return False
        try:
            with conn.transaction() if nested else contextlib.nullcontext():
                row = conn.one(*statement)
        except Exception as exc:
            if is_unique_violation(exc, "params_pkey"):
                return False
            if history_conflict or not is_unique_violation(exc, "metrics_pkey"):
                raise
            continue
        if row is None:
            active_pk(conn, run_id)  # raises: missing or not active
            return False
        if not row[2]:  # nothing was written
            _refuse_changed_params(conn, row[1], run_id, params)  # raises
            return False
        return True
    raise AssertionError("unreachable")


def _pg_batches_statement(
    conn, batches: dict[str, _Batch], rename: str | None, history_conflict: str
) -> tuple[str, list] | None:
    """One statement writing log-batches into one or several runs; None if no array type fits.

    The runs are locked as ``active_pk`` locks them. The statement answers one row per run
    that is active: its id, its key, and whether its rows were written, which they are not if
    one of its params was logged before with another value (every write reads its run from
    ``target``: the locked runs or, with params, ``accepted``: those whose params all keep
    their values). Rows name their run only when there are several: a chunk of a long series
    keeps one column fewer. ``rename`` (one run only) sets the run's name too.
    """
    keyed = len(batches) > 1
    history_rows: list[tuple] = []
    latest_rows: list[tuple] = []
    param_rows: list[tuple] = []
    tag_rows: list[tuple] = []
    for run_id, (metrics, params, tags) in batches.items():
        if metrics:
            history, latest = _metric_rows(run_id, metrics)
            history_rows += history
            latest_rows += latest
        param_rows += [(run_id, *item) for item in params.items()]
        tag_rows += [(run_id, *item) for item in tags.items()]
    run_sql, run_args = conn.in_clause("run_uuid", list(batches))
    ctes = [
        f"run AS (SELECT run_pk, run_uuid FROM runs WHERE {run_sql}"
        " AND lifecycle_stage = 'active' FOR KEY SHARE)"
    ]
    args: list = [*run_args]

    def rows_of(rows: list[tuple], columns: str) -> str | None:
        arrays = Conn.unnest(list(zip(*rows, strict=True))[0 if keyed else 1 :])
        if arrays is None:
            return None
        args.extend(arrays[1])
        return f"{arrays[0]} AS r({'run_uuid, ' if keyed else ''}{columns})"

    def same_run(alias: str) -> str:
        return f"r.run_uuid = {alias}.run_uuid AND " if keyed else ""

    target, written = "run", "true"
    if param_rows:
        if (given := rows_of(param_rows, "key, value")) is None:
            return None
        ctes += [
            f"given AS (SELECT * FROM {given})",
            "stored AS (SELECT run.run_uuid, p.key, p.value FROM run, given r, params p"
            f" WHERE {same_run('run')}p.run_pk = run.run_pk AND p.key = r.key)",
            "accepted AS (SELECT run_pk, run_uuid FROM run WHERE run_uuid NOT IN"
            " (SELECT s.run_uuid FROM stored s, given r"
            f" WHERE {same_run('s')}r.key = s.key AND r.value <> s.value))",
            # A plain INSERT: a key someone logged since this statement began fails it.
            "new_params AS (INSERT INTO params (run_pk, key, value)"
            " SELECT accepted.run_pk, r.key, r.value FROM accepted, given r"
            f" WHERE {same_run('accepted')}NOT EXISTS (SELECT 1 FROM stored s"
            " WHERE s.run_uuid = accepted.run_uuid AND s.key = r.key))",
        ]
        target, written = "accepted", "run.run_uuid IN (SELECT run_uuid FROM accepted)"
    for name, rows, head, columns, tail in (
        ("history", history_rows, _HISTORY_INSERT, _HISTORY_COLUMNS, history_conflict),
        ("latest", latest_rows, _LATEST_INSERT, _LATEST_COLUMNS, _LATEST_CONFLICT),
        ("tags", tag_rows, _TAG_INSERT, _TAG_COLUMNS, _TAG_CONFLICT),
    ):
        if not rows:
            continue
        if (table := rows_of(rows, columns)) is None:
            return None
        picked = ", ".join(f"r.{column}" for column in columns.split(", "))
        where = f" WHERE r.run_uuid = {target}.run_uuid" if keyed else ""
        ctes.append(
            f"{name} AS ({head} SELECT {target}.run_pk, {picked} FROM {target}, {table}{where}"
            f" {tail})"
        )
    if rename is not None:  # setting mlflow.runName renames the run
        assert not keyed, "a rename is never grouped"
        ctes.append(
            f"renamed AS (UPDATE runs SET name = ? FROM {target}"
            f" WHERE runs.run_pk = {target}.run_pk)"
        )
        args.append(rename)
    return f"WITH {', '.join(ctes)} SELECT run.run_uuid, run.run_pk, {written} FROM run", args


def delete_tag(conn, run_id: str, key: str) -> None:
    run_pk = active_pk(conn, run_id)
    deleted = conn.execute(
        "DELETE FROM run_tags WHERE run_pk = ? AND key = ?", (run_pk, key)
    ).rowcount
    if not deleted:
        raise not_found(f"No tag with name: {key} in run with id {run_id}")


# --- inputs and outputs ---------------------------------------------------------------------------
Dataset = dict[str, Any]


def log_inputs(
    conn,
    run_id: str,
    datasets: Sequence[tuple[Dataset, list[tuple[str, str]]]],
    model_ids: list[str],
) -> None:
    run_pk = active_pk(conn, run_id)
    experiment_id = conn.scalar("SELECT experiment_id FROM runs WHERE run_pk = ?", (run_pk,))
    for dataset, tags in datasets:
        conn.execute(
            "INSERT INTO datasets (experiment_id, name, digest, source_type, source, schema,"
            " profile) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                experiment_id,
                dataset["name"],
                dataset["digest"],
                dataset["source_type"],
                dataset["source"],
                dataset.get("schema"),
                dataset.get("profile"),
            ),
        )
        dataset_pk = conn.scalar(
            "SELECT dataset_pk FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
            (experiment_id, dataset["name"], dataset["digest"]),
        )
        conn.execute(
            "INSERT INTO run_inputs (run_pk, dataset_pk) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (run_pk, dataset_pk),
        )
        conn.executemany(
            "INSERT INTO input_tags (run_pk, dataset_pk, key, value) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (run_pk, dataset_pk, key) DO UPDATE SET value = excluded.value",
            [(run_pk, dataset_pk, k, v) for k, v in tags],
        )
    conn.executemany(
        "INSERT INTO run_model_io (run_pk, direction, model_id, step) VALUES (?, 'in', ?, 0)"
        " ON CONFLICT DO NOTHING",
        [(run_pk, m) for m in model_ids],
    )


def log_outputs(conn, run_id: str, models: Sequence[tuple[str, int]]) -> None:
    run_pk = active_pk(conn, run_id)
    conn.executemany(
        "INSERT INTO run_model_io (run_pk, direction, model_id, step) VALUES (?, 'out', ?, ?)"
        " ON CONFLICT (run_pk, direction, model_id) DO UPDATE SET step = excluded.step",
        [(run_pk, model_id, step) for model_id, step in models],
    )


# --- search ----------------------------------------------------------------------------------------
VIEW_STAGES = experiments.VIEW_STAGES


def search(
    conn,
    *,
    experiment_ids: list[int],
    filter_string: str | None,
    order_by: list[str],
    view_type: str,
    max_results: int,
    page_token: str | None,
) -> dict:
    """Filter, order and page entirely in SQL, then load only the page's runs."""
    offset = paging.decode(page_token)
    where = filters.run_filter(filter_string, conn.dialect)
    order = filters.run_order(order_by, conn.dialect)
    joins = [term.join for term in order if term.join is not None]
    exp_sql, exp_args = conn.in_clause("r.experiment_id", experiment_ids)
    stage_sql, stage_args = conn.in_clause("r.lifecycle_stage", VIEW_STAGES[view_type])

    def page(terms: list[filters.Sql], condition: str | None) -> list[tuple]:
        args = [*(p for join in joins for p in join.params), *exp_args, *stage_args]
        sql = (
            f"SELECT {_prefixed('r.')} FROM runs r {' '.join(join.sql for join in joins)}"
            f" WHERE {exp_sql} AND {stage_sql}"
        )
        if condition is not None:
            sql += f" AND {condition}"
        if where is not None:
            sql += f" AND ({where.sql})"
            args += where.params
        for term in terms:
            args += term.params
        order_sql = [t.sql for t in terms] + ["r.start_time DESC", "r.run_uuid ASC"]
        sql += " ORDER BY " + ", ".join(order_sql) + " LIMIT ? OFFSET ?"
        return conn.all(sql, [*args, max_results + 1, offset])

    rows = None
    if order and order[0].first_rank is not None:
        # Ordered by a metric (say): most pages lie among the runs that have a value, which the
        # (key, value) index returns in order, so this stops after the page instead of sorting
        # every candidate (PostgreSQL, 10,000 runs: 15 -> 2 ms). A page that reaches past them
        # comes back short and takes the full query.
        rows = page(order[1:], order[0].first_rank)
        if len(rows) <= max_results:
            rows = None
    if rows is None:
        rows = page(order, None)
    result: dict[str, Any] = {}
    if rows[:max_results]:
        result["runs"] = load(conn, rows[:max_results])
    if len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def _prefixed(alias: str) -> str:
    return ", ".join(alias + c.strip() for c in _INFO_COLUMNS.split(","))


def search_datasets(conn, experiment_ids: list[int]) -> dict:
    """The distinct (experiment, dataset, context) triples that runs of these experiments used."""
    exp_sql, args = conn.in_clause("d.experiment_id", experiment_ids)
    rows = conn.all(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, it.value FROM datasets d"
        " JOIN run_inputs ri ON ri.dataset_pk = d.dataset_pk"
        " LEFT JOIN input_tags it ON it.run_pk = ri.run_pk AND it.dataset_pk = ri.dataset_pk"
        f" AND it.key = ? WHERE {exp_sql} ORDER BY d.experiment_id, d.name, d.digest LIMIT 1000",
        (DATASET_CONTEXT_TAG, *args),
    )
    summaries = []
    for experiment_id, name, digest, context in rows:
        summary = {"experiment_id": str(experiment_id), "name": name, "digest": digest}
        if context is not None:
            summary["context"] = context
        summaries.append(summary)
    return {"dataset_summaries": summaries} if summaries else {}
