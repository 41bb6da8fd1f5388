"""Apply schema migrations, safely when several worker processes start at once."""

from __future__ import annotations

from labtrack.store.db import Conn, Database
from labtrack.store.schema import _areas, statements

_PG_LOCK_ID = 7_361_204  # any constant; serialises concurrent upgrades on PostgreSQL


def current_versions(conn: Conn) -> dict[str, int]:
    rows = conn.all("SELECT area, MAX(version) FROM labtrack_schema GROUP BY area")
    return {area: version for area, version in rows}


def upgrade(db: Database) -> list[str]:
    """Bring every area's schema to its latest version; return what was applied ("area:N")."""
    conn = db.connect()
    try:
        if db.dialect == "sqlite":
            conn.execute("BEGIN EXCLUSIVE")
        else:
            conn.raw.autocommit = False
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS labtrack_schema"
                " (area TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (area, version))"
            )
            have = current_versions(conn)
            applied = []
            for area, migrations in _areas().items():
                for version, migration in enumerate(migrations, start=1):
                    if version <= have.get(area, 0):
                        continue
                    for sql in statements(migration, db.dialect):
                        conn.execute(sql)
                    conn.execute(
                        "INSERT INTO labtrack_schema (area, version) VALUES (?, ?)", (area, version)
                    )
                    applied.append(f"{area}:{version}")
            conn.execute("COMMIT") if db.dialect == "sqlite" else conn.raw.commit()
            return applied
        except BaseException:
            conn.execute("ROLLBACK") if db.dialect == "sqlite" else conn.raw.rollback()
            raise
    finally:
        conn.raw.close()
