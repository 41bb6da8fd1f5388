"""Apply schema migrations, safely when several worker processes start at once."""

from __future__ import annotations

from labtrack.store.db import Conn, Database
from labtrack.store.schema import MIGRATIONS, statements

_PG_LOCK_ID = 7_361_204  # any constant; serialises concurrent upgrades on PostgreSQL


def current_version(conn: Conn) -> int:
    return conn.scalar("SELECT COALESCE(MAX(version), 0) FROM labtrack_schema") or 0


def upgrade(db: Database) -> list[int]:
    """Bring the schema to the latest version; return the versions applied (may be empty)."""
    conn = db.connect()
    try:
        if db.dialect == "sqlite":
            conn.execute("BEGIN EXCLUSIVE")
        else:
            conn.raw.autocommit = False
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_ID,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS labtrack_schema (version INTEGER PRIMARY KEY)")
            have = current_version(conn)
            applied = []
            for version, migration in enumerate(MIGRATIONS, start=1):
                if version <= have:
                    continue
                for sql in statements(migration, db.dialect):
                    conn.execute(sql)
                conn.execute("INSERT INTO labtrack_schema (version) VALUES (?)", (version,))
                applied.append(version)
            conn.execute("COMMIT") if db.dialect == "sqlite" else conn.raw.commit()
            return applied
        except BaseException:
            conn.execute("ROLLBACK") if db.dialect == "sqlite" else conn.raw.rollback()
            raise
    finally:
        conn.raw.close()
