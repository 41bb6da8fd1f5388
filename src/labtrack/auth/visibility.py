"""What a listing may show the caller, as SQL, for store search functions.

Handlers pass ``readable(req, "experiment", "e.experiment_id")`` to the store; the fragment goes
into the WHERE clause, so filtering happens before LIMIT/OFFSET and paging stays correct.
"""

from __future__ import annotations


def readable(req, resource_type: str, column: str) -> tuple[str, list] | None:
    """A ``(sql, params)`` fragment, or None when the caller may see everything (auth off,
    admins)."""
    caller = req.scope.get("labtrack.caller")
    if caller is None:
        return None
    return caller.readable_sql(resource_type, column, req.app.db.dialect)
