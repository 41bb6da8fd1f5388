"""The few database look-ups the artifact routes need (runs' artifact roots and states)."""

from __future__ import annotations

from labtrack.store.db import Conn
from labtrack.wire import not_found


def run_stage(conn: Conn, run_id: str) -> str | None:
    """A run's lifecycle stage, or None when there is no such run."""
    return conn.scalar("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,))


def run_artifact_uri(conn: Conn, run_id: str) -> str:
    uri = conn.scalar("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))
    if uri is None:
        raise not_found(f"Run with id={run_id} not found")
    return uri
