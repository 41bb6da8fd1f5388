"""Metric history reads: full history with paging, and downsampled series for charts."""

from __future__ import annotations

import bisect
import operator
from typing import Any

import orjson

from labtrack.store import paging
from labtrack.wire import encode_double, not_found


def _run_pk(conn, run_id: str) -> int:
    pk = conn.scalar("SELECT run_pk FROM runs WHERE run_uuid = ?", (run_id,))
    if pk is None:
        raise not_found(f"Run with id={run_id} not found")
    return pk


def _point(key: str, ts: int, step: int, is_nan: int, value: float) -> dict[str, Any]:
    return {
        "key": key,
        "value": "NaN" if is_nan else encode_double(value),
        "timestamp": ts,
        "step": step,
    }


def history(conn, run_id: str, key: str, max_results: int | None, page_token: str | None) -> dict:
    """The whole series ordered by (timestamp, step, value): the primary key's own order.

    An unknown run has an empty history, as with the stock server.
    """
    run_pk = conn.scalar("SELECT run_pk FROM runs WHERE run_uuid = ?", (run_id,))
    if run_pk is None:
        return {}
    offset, after = paging.decode_with_key(page_token)
    where, args = "run_pk = ? AND key = ?", [run_pk, key]
    if after is not None and len(after) == 4:
        # Seek past the last row sent: the primary key makes this an index range scan.
        where += " AND (timestamp, step, is_nan, value) > (?, ?, ?, ?)"
        args += after
        skip = 0
    else:
        skip = offset
    sql = (
        f"SELECT timestamp, step, is_nan, value FROM metrics WHERE {where}"
        " ORDER BY timestamp, step, is_nan, value"
    )
    if max_results is not None:
        sql += " LIMIT ? OFFSET ?"
        args += [max_results + 1, skip]
    elif skip:
        sql += " LIMIT -1 OFFSET ?" if conn.dialect == "sqlite" else " OFFSET ?"
        args.append(skip)
    rows = conn.all(sql, args)
    result: dict[str, Any] = {}
    page = rows if max_results is None else rows[:max_results]
    if page:
        # Values were clamped to finite doubles on insert, so only NaN needs encoding here.
        result["metrics"] = [
            {"key": key, "value": v, "timestamp": ts, "step": st}
            if not nan
            else {"key": key, "value": "NaN", "timestamp": ts, "step": st}
            for ts, st, nan, v in page
        ]
    if max_results is not None and len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results, list(page[-1]))
    return result


def _sample_steps(steps: list[int], limit: int) -> set[int]:
    """At most ``limit`` steps spread evenly over the series, always keeping the first and last."""
    if len(steps) <= limit:
        return set(steps)
    if limit == 1:
        return {steps[-1]}
    last = len(steps) - 1
    return {steps[round(i * last / (limit - 1))] for i in range(limit)}


def bulk_interval(
    conn,
    run_ids: list[str],
    key: str,
    start_step: int | None,
    end_step: int | None,
    max_results: int,
) -> dict:
    """Downsampled history of one metric for several runs: bounded however long the series.

    A series may have millions of points, so they never travel to Python row by row: the steps
    come back aggregated into one JSON array (what the sampling needs), then only the rows at
    the sampled steps are read. A 1,000,000-point series takes ~0.3 s on SQLite, not seconds.
    """
    points: list[dict] = []
    for run_id in run_ids:
        run_pk = _run_pk(conn, run_id)
        where, args = "run_pk = ? AND key = ?", [run_pk, key]
        if start_step is not None and end_step is not None:
            where += " AND step >= ? AND step <= ?"
            args += [start_step, end_step]
        sample = _sample_sqlite if conn.dialect == "sqlite" else _sample_postgresql
        for row in sample(conn, where, args, max_results):
            point = _point(key, *row)
            point["run_id"] = run_id
            points.append(point)
    return {"metrics": points} if points else {}


_ROWS = "SELECT timestamp, step, is_nan, value FROM metrics WHERE {where} AND {more}"
_ORDER = " ORDER BY step, timestamp, is_nan, value"


def _sample_sqlite(conn, where: str, args: list, max_results: int) -> list[tuple]:
    raw_steps, raw_times = conn.one(
        f"SELECT json_group_array(step), json_group_array(timestamp) FROM metrics WHERE {where}",
        args,
    )
    steps = orjson.loads(raw_steps) if raw_steps else []
    if not steps:
        return []
    if all(map(operator.lt, steps, steps[1:])):
        # One row per step (the usual series): each sampled step is one row at a known
        # position, read by a primary-key seek on its timestamp instead of a scan.
        wanted = _sample_steps(steps, max_results)
        times = orjson.loads(raw_times)
        stamps = sorted({times[bisect.bisect_left(steps, s)] for s in wanted})
        rows = conn.all(
            _ROWS.format(where=where, more="timestamp IN (SELECT value FROM json_each(?))")
            + _ORDER,
            [*args, orjson.dumps(stamps).decode()],
        )
        return [row for row in rows if row[1] in wanted]
    wanted_steps = sorted(_sample_steps(sorted(set(steps)), max_results))
    return conn.all(
        _ROWS.format(where=where, more="step IN (SELECT value FROM json_each(?))") + _ORDER,
        [*args, orjson.dumps(wanted_steps).decode()],
    )


def _sample_postgresql(conn, where: str, args: list, max_results: int) -> list[tuple]:
    raw = conn.scalar(
        f"SELECT json_agg(DISTINCT step ORDER BY step)::text FROM metrics WHERE {where}", args
    )
    wanted = sorted(_sample_steps(orjson.loads(raw), max_results)) if raw else []
    if not wanted:
        return []
    return conn.all(_ROWS.format(where=where, more="step = ANY(?)") + _ORDER, [*args, wanted])


def bulk_history(conn, run_ids: list[str], key: str, max_results: int) -> dict:
    """The UI's several-runs history: each run's series, capped at ``max_results`` points."""
    points: list[dict] = []
    for run_id in run_ids:
        run_pk = _run_pk(conn, run_id)
        for row in conn.all(
            "SELECT timestamp, step, is_nan, value FROM metrics WHERE run_pk = ? AND key = ?"
            " ORDER BY timestamp, step, is_nan, value LIMIT ?",
            (run_pk, key, max_results),
        ):
            point = _point(key, *row)
            point["run_id"] = run_id
            points.append(point)
    return {"metrics": points} if points else {}
