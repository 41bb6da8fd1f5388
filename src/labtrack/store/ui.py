"""Queries for the web UI that the MLflow API has no endpoint for.

The runs table needs the metric, param and tag keys of an experiment (filter completion and the
column chooser). A DISTINCT over every run of a 10,000-run experiment with 100 metrics reads a
million rows, so the keys come from the experiment's most recent ``KEY_RUNS`` runs: the keys
people are working with, in tens of milliseconds at any size.
"""

from __future__ import annotations

from typing import Any

from labtrack.store import runs as run_store
from labtrack.store.db import Conn

KEY_RUNS = 2000
MAX_KEYS = 5000
PARENT_TAG = "mlflow.parentRunId"
MAX_CHILDREN = 1000

_TABLES = {"metrics": "latest_metrics", "params": "params", "tags": "run_tags"}


def experiment_keys(conn: Conn, experiment_id: int) -> dict[str, Any]:
    recent = (
        "SELECT run_pk FROM runs WHERE experiment_id = ? AND lifecycle_stage = 'active'"
        " ORDER BY start_time DESC LIMIT ?"
    )
    result: dict[str, Any] = {}
    for name, table in _TABLES.items():
        rows = conn.all(
            f"SELECT DISTINCT x.key FROM {table} x WHERE x.run_pk IN ({recent})"
            " ORDER BY x.key LIMIT ?",
            (experiment_id, KEY_RUNS, MAX_KEYS + 1),
        )
        keys = [r[0] for r in rows]
        result[name] = keys[:MAX_KEYS]
        if len(keys) > MAX_KEYS:
            result["truncated"] = True
    total = conn.scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE experiment_id = ?"
        " AND lifecycle_stage = 'active' LIMIT ?) AS sample",
        (experiment_id, KEY_RUNS + 1),
    )
    result["sampled"] = total > KEY_RUNS
    return result


def child_runs(
    conn: Conn, experiment_id: int, parent_ids: list[str], stages: tuple[str, ...]
) -> dict[str, Any]:
    """Runs of the experiment whose ``mlflow.parentRunId`` is one of ``parent_ids``."""
    if not parent_ids:
        return {}
    parent_sql, parent_args = conn.in_clause("t.value", parent_ids)
    stage_sql, stage_args = conn.in_clause("r.lifecycle_stage", stages)
    columns = run_store._prefixed("r.")  # the info columns load() expects, in its order
    rows = conn.all(
        f"SELECT {columns} FROM runs r JOIN run_tags t ON t.run_pk = r.run_pk AND t.key = ?"
        f" WHERE r.experiment_id = ? AND {parent_sql} AND {stage_sql}"
        " ORDER BY r.start_time DESC, r.run_uuid LIMIT ?",
        (PARENT_TAG, experiment_id, *parent_args, *stage_args, MAX_CHILDREN + 1),
    )
    result: dict[str, Any] = {"runs": run_store.load(conn, rows[:MAX_CHILDREN])}
    if len(rows) > MAX_CHILDREN:
        result["truncated"] = True
    return result
