"""Metric history reads: full history with paging, and downsampled series for charts."""

from __future__ import annotations

from typing import Any

import orjson

from labtrack.store import paging
from labtrack.store.db import pg_array
from labtrack.wire import not_found


def _run_pk(conn, run_id: str) -> int:
    pk = conn.scalar("SELECT run_pk FROM runs WHERE run_uuid = ?", (run_id,))
    if pk is None:
        raise not_found(f"Run with id={run_id} not found")
    return pk


# NaN is stored as value 0 with is_nan = 1; reading it back as NULL saves a column per row,
# which is most of the cost of a long read (the sqlite3 module pays per column, per row).
# The alias matters: unnamed, PostgreSQL would call this column "value" (after its ELSE), and
# an ORDER BY value would sort by it instead of the stored column, with a sort step on top of
# the primary-key scan (25,000 points: 12 -> 8 ms server-side).
_POINT = "timestamp, step, CASE WHEN is_nan = 1 THEN NULL ELSE value END AS point_value"
_HISTORY_ORDER = " ORDER BY timestamp, step, is_nan, value"

# A history read without max_results (what the stock client sends) is streamed in chunks of
# this many points, each chunk its own short read, so memory stays flat however long it is.
STREAM_CHUNK = 25_000


def history(conn, run_id: str, key: str, max_results: int | None, page_token: str | None) -> dict:
    """One page of the series ordered by (timestamp, step, value): the primary key's own order.

    With ``max_results`` None, the whole series is returned, up to :data:`STREAM_CHUNK` points;
    the caller streams the rest with :func:`history_chunk` (see ``api.metrics``).
    An unknown run has an empty history, as with the stock server.
    """
    run_pk = conn.scalar("SELECT run_pk FROM runs WHERE run_uuid = ?", (run_id,))
    if run_pk is None:
        return {}
    offset, after = paging.decode_with_key(page_token)
    limit = STREAM_CHUNK if max_results is None else max_results
    if after is not None and len(after) == 4:
        rows = history_chunk(conn, run_pk, key, after, limit + 1)
    else:
        rows = conn.all(
            f"SELECT {_POINT} FROM metrics WHERE run_pk = ? AND key = ?{_HISTORY_ORDER}"
            " LIMIT ? OFFSET ?",
            (run_pk, key, limit + 1, offset),
        )
    result: dict[str, Any] = {}
    page = rows[:limit]
    if page:
        result["metrics"] = points(key, page)
    if len(rows) > limit:
        result["next_page_token"] = paging.encode(offset + limit, seek_key(page[-1]))
        if max_results is None:
            result["run_pk"] = run_pk  # for the streaming caller; never sent
    return result


def history_chunk(conn, run_pk: int, key: str, after: list, limit: int) -> list[tuple]:
    """Up to ``limit`` points after the seek key ``after``: a primary-key range scan."""
    return conn.all(
        f"SELECT {_POINT} FROM metrics WHERE run_pk = ? AND key = ?"
        f" AND (timestamp, step, is_nan, value) > (?, ?, ?, ?){_HISTORY_ORDER} LIMIT ?",
        (run_pk, key, *after, limit),
    )


def seek_key(row: tuple) -> list:
    """The primary-key suffix of a point read with ``_POINT``: where the next page starts."""
    ts, step, value = row
    return [ts, step, 1, 0.0] if value is None else [ts, step, 0, value]


def points(key: str, rows: list[tuple]) -> list[dict[str, Any]]:
    """Wire metrics from ``_POINT`` rows; values were clamped to finite doubles on insert."""
    return [
        {"key": key, "value": "NaN" if v is None else v, "timestamp": ts, "step": st}
        for ts, st, v in rows
    ]


# --- downsampled series for charts --------------------------------------------------------------
# Up to this many points in the requested window, sampling is exact: every distinct step is read
# and the sample is spread over them by rank, as the stock server does. Above it, reading every
# step would cost ~1 s per 10M points, so the sample is spread over the step *values* instead,
# each sampled step found by one seek on the (run, key, step) index. On the usual series (one
# point per step, no gaps) both give the same steps.
EXACT_SAMPLE_MAX_POINTS = 25_000


def _sample_steps(steps: list[int], limit: int) -> list[int]:
    """At most ``limit`` of the sorted distinct ``steps``, spread evenly by rank, first and last
    always kept."""
    if len(steps) <= limit:
        return steps
    if limit == 1:
        return [steps[-1]]
    last = len(steps) - 1
    return sorted({steps[round(i * last / (limit - 1))] for i in range(limit)})


def _targets(lo: int, hi: int, limit: int) -> list[int]:
    """``limit`` step values spread evenly over [lo, hi], both ends included."""
    if limit == 1 or lo == hi:
        return [hi] if limit == 1 else [lo]
    return sorted({lo + round(i * (hi - lo) / (limit - 1)) for i in range(limit)})


def bulk_interval(
    conn,
    run_ids: list[str],
    key: str,
    start_step: int | None,
    end_step: int | None,
    max_results: int,
) -> dict:
    """Downsampled history of one metric for several runs, in bounded time however long.

    Per run: at most ``max_results`` steps of the window (the whole series by default), always
    with its first and last step, then the points at those steps ordered by (step, timestamp),
    at most ``max_results`` of them. A 10,000,000-point series answers in milliseconds: nothing
    is read in proportion to its length (see EXACT_SAMPLE_MAX_POINTS).
    """
    out: list[dict] = []
    for run_id in run_ids:
        run_pk = _run_pk(conn, run_id)
        lo, hi = start_step, end_step
        if lo is None or hi is None:
            lo, hi = -(2**63), 2**63 - 1
        args = (run_pk, key, lo, hi)
        where = "run_pk = ? AND key = ? AND step >= ? AND step <= ?"
        # Every read of the window is planned for this series (replan): see Conn.execute.
        counted = conn.scalar(
            f"SELECT count(*) FROM (SELECT 1 FROM metrics WHERE {where} LIMIT ?) AS window_rows",
            (*args, EXACT_SAMPLE_MAX_POINTS + 1),
            replan=True,
        )
        if not counted:
            continue
        if counted <= EXACT_SAMPLE_MAX_POINTS:
            steps = [
                s
                for (s,) in conn.all(
                    f"SELECT DISTINCT step FROM metrics WHERE {where} ORDER BY step",
                    args,
                    replan=True,
                )
            ]
            wanted = _sample_steps(steps, max_results)
        else:
            wanted = _seek_steps(conn, where, args, max_results)
        sql, sql_args = _points_at_steps(conn, run_pk, key, wanted, max(max_results, len(wanted)))
        rows = conn.all(sql, sql_args, replan=True)
        for point in points(key, rows):
            point["run_id"] = run_id
            out.append(point)
    return {"metrics": out} if out else {}


def _seek_steps(conn, where: str, args: tuple, limit: int) -> list[int]:
    """Sampled steps of a long window: the first step at or after each evenly spaced value.

    The window's ends are read as ``ORDER BY step LIMIT 1`` rather than ``min(step)``: planned
    for a short series, ``min`` became an aggregate over every point of the window (3 s for a
    million), where the ordered read stops at the first index entry whatever the estimate.
    """
    lo = conn.scalar(
        f"SELECT step FROM metrics WHERE {where} ORDER BY step LIMIT 1", args, replan=True
    )
    hi = conn.scalar(
        f"SELECT step FROM metrics WHERE {where} ORDER BY step DESC LIMIT 1", args, replan=True
    )
    run_pk, key = args[:2]
    # The seek's only lower bound must be t.v: given two, SQLite may range-scan from the other.
    found = conn.all(
        "SELECT (SELECT step FROM metrics WHERE run_pk = ? AND key = ? AND step >= t.v"
        f" ORDER BY step LIMIT 1) FROM {_values_table(conn)}",
        (run_pk, key, _list_arg(conn, _targets(lo, hi, limit))),
        replan=True,
    )
    return sorted({s for (s,) in found if s is not None and s <= hi})


def _points_at_steps(
    conn, run_pk: int, key: str, steps: list[int], limit: int
) -> tuple[str, tuple]:
    """The query (SQL, args) for one series' points at a list of steps, one index seek each.

    SQLite seeks each step of the IN list (given the window's range too, it would range-scan
    the window instead). PostgreSQL gets the steps as a LATERAL subquery, one seek per step:
    with ``step = ANY(...)`` and this ORDER BY ... LIMIT, its planner may walk the whole series
    in step order and filter, seconds for 10,000,000 points once statistics show a long series.
    The subquery has its own LIMIT so that it stays one seek per step: without it PostgreSQL
    may flatten it into a merge join that walks the series from its first step (1.2 s to the
    middle of 10,000,000 points, when it planned for a short series).
    """
    order = " ORDER BY step, timestamp, is_nan, value LIMIT ?"
    if conn.dialect == "sqlite":
        sql = (
            f"SELECT {_POINT} FROM metrics WHERE run_pk = ? AND key = ?"
            f" AND step IN (SELECT value FROM json_each(?)){order}"
        )
        return sql, (run_pk, key, _list_arg(conn, steps), limit)
    sql = (
        f"SELECT {_POINT} FROM unnest(?::bigint[]) AS t(v), LATERAL (SELECT * FROM metrics"
        " WHERE run_pk = ? AND key = ? AND step = t.v ORDER BY timestamp, is_nan, value"
        f" LIMIT ?) AS metrics{order}"
    )
    return sql, (_list_arg(conn, steps), run_pk, key, limit, limit)


def _values_table(conn) -> str:
    """A one-column table ``t(v)`` of the values in a list parameter."""
    if conn.dialect == "sqlite":
        return "(SELECT value AS v FROM json_each(?)) AS t"
    return "unnest(?::bigint[]) AS t(v)"


def _list_arg(conn, values: list[int]) -> Any:
    """A list of ints as one text parameter: JSON for SQLite's json_each, else an array literal."""
    if conn.dialect == "sqlite":
        return orjson.dumps(values).decode()
    return pg_array(values)[1] if values else "{}"


def bulk_history(conn, run_ids: list[str], key: str, max_results: int) -> dict:
    """The UI's several-runs history: each run's series, capped at ``max_results`` points."""
    out: list[dict] = []
    for run_id in run_ids:
        run_pk = _run_pk(conn, run_id)
        rows = conn.all(
            f"SELECT {_POINT} FROM metrics WHERE run_pk = ? AND key = ?{_HISTORY_ORDER} LIMIT ?",
            (run_pk, key, max_results),
        )
        for point in points(key, rows):
            point["run_id"] = run_id
            out.append(point)
    return {"metrics": out} if out else {}
