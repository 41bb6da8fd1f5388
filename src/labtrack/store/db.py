"""Database access: one small layer over sqlite3 and psycopg.

Store functions are plain synchronous functions ``fn(conn, *args)`` that run inside one
transaction. Handlers call them through :meth:`Database.read` and :meth:`Database.write`, which
run them on worker threads so the event loop never blocks on SQL.

SQLite allows one writer at a time, so writes go to a single writer thread that applies *group
commit*: it takes every write waiting in its queue, runs each inside its own SAVEPOINT (a failing
write rolls back alone) and commits them together. Concurrent clients then share one fsync
instead of queueing behind each other's. PostgreSQL handles concurrent writers itself; each write
there is its own transaction from a connection pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from labtrack.wire import MlflowError

T = TypeVar("T")

_savepoint_ids = itertools.count()


@lru_cache(maxsize=4096)
def _to_pyformat(sql: str) -> str:
    """Turn '?' placeholders into psycopg's '%s' (our SQL never holds literal '%' or '?')."""
    return sql.replace("?", "%s")


class Conn:
    """A connection with the few helpers store code needs, identical for every dialect."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self._pg = dialect == "postgresql"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._pg:
            return self.raw.execute(_to_pyformat(sql), params, prepare=True)
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._pg:
            with self.raw.cursor() as cur:
                cur.executemany(_to_pyformat(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def insert_returning_id(self, sql: str, params: Sequence[Any], id_column: str) -> int:
        """Run an INSERT and return the generated integer key."""
        if self._pg:
            return self.execute(f"{sql} RETURNING {id_column}", params).fetchone()[0]
        return self.execute(sql, params).lastrowid

    def in_clause(self, column: str, values: Sequence[Any]) -> tuple[str, tuple]:
        """``column IN (...)`` for any number of values, as SQL text plus parameters."""
        if self._pg:
            return f"{column} = ANY(?)", (list(values),)
        return f"{column} IN ({','.join('?' * len(values))})", tuple(values)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: on error only the work inside it is undone."""
        name = f"sp{next(_savepoint_ids)}"
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")


def integrity_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def _is_sqlite_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def parse_backend_uri(uri: str) -> tuple[str, str]:
    """Return (dialect, connect target) for a backend store URI."""
    scheme = urlsplit(uri).scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        # SQLAlchemy's convention, which MLflow users know: sqlite:///relative.db,
        # sqlite:////absolute/path.db, and sqlite:// (or sqlite:///:memory:) for memory.
        path = uri.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path
        return "sqlite", path or ":memory:"
    if scheme in ("postgresql", "postgres"):
        return "postgresql", re.sub(r"^[a-z+]+://", "postgresql://", uri)
    raise ValueError(
        f"Unsupported backend store URI {uri!r}: use sqlite:///path/to/file.db "
        "or postgresql://user@host:port/dbname"
    )


class Database:
    """Runs store functions on the right threads for the configured backend."""

    def __init__(self, uri: str, *, readers: int = 4, pg_pool_size: int = 8) -> None:
        self.uri = uri
        self.dialect, self._target = parse_backend_uri(uri)
        self._local = threading.local()
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=readers if self.dialect == "sqlite" else pg_pool_size,
            thread_name_prefix="labtrack-db",
        )
        self._writer: _SqliteWriter | None = None
        if self.dialect == "sqlite":
            if self._target != ":memory:":
                Path(self._target).parent.mkdir(parents=True, exist_ok=True)
        self._all_conns: list[Any] = []
        self._lock = threading.Lock()

    # -- connections ---------------------------------------------------------------------------
    def connect(self) -> Conn:
        """Open a new connection (the caller owns it)."""
        if self.dialect == "sqlite":
            raw = sqlite3.connect(
                self._target,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
                timeout=30,
            )
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA busy_timeout=30000")
            raw.execute("PRAGMA case_sensitive_like=ON")
            raw.execute("PRAGMA cache_size=-65536")
            return Conn(raw, "sqlite")
        import psycopg

        raw = psycopg.connect(self._target, autocommit=True)
        return Conn(raw, "postgresql")

    def _thread_conn(self) -> Conn:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._lock:
                self._all_conns.append(conn.raw)
        return conn

    # -- running store functions ------------------------------------------------------------------
    def run_read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a read-only store function on this thread's connection."""
        conn = self._thread_conn()
        if self.dialect == "sqlite":
            conn.execute("BEGIN")
            try:
                return fn(conn, *args, **kwargs)
            finally:
                conn.execute("COMMIT")
        with conn.raw.transaction():
            return fn(conn, *args, **kwargs)

    def run_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store function in one write transaction, synchronously (CLI, migrations)."""
        if self.dialect == "sqlite":
            return self._sqlite_writer().submit(fn, args, kwargs).result()
        return self._pg_write(fn, *args, **kwargs)

    def _pg_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import psycopg

        conn = self._thread_conn()
        for attempt in range(5):
            try:
                with conn.raw.transaction():
                    return fn(conn, *args, **kwargs)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(self.run_read, fn, *args, **kwargs)
        return await loop.run_in_executor(self._readers, call)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.dialect == "sqlite":
            return await asyncio.wrap_future(self._sqlite_writer().submit(fn, args, kwargs))
        loop = asyncio.get_running_loop()
        call = functools.partial(self._pg_write, fn, *args, **kwargs)
        return await loop.run_in_executor(self._readers, call)

    def _sqlite_writer(self) -> _SqliteWriter:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = _SqliteWriter(self)
                    self._writer.start()
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        self._readers.shutdown(wait=True)
        with self._lock:
            for raw in self._all_conns:
                with contextlib.suppress(Exception):
                    raw.close()
            self._all_conns.clear()


class _SqliteWriter(threading.Thread):
    """The single SQLite writer: drains its queue and commits each batch once."""

    MAX_BATCH = 512

    def __init__(self, db: Database) -> None:
        super().__init__(name="labtrack-sqlite-writer", daemon=True)
        self._db = db
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def submit(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict
    ) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, args, kwargs, future))
        return future

    def stop(self) -> None:
        self._queue.put(None)
        self.join(timeout=10)

    def run(self) -> None:
        conn = self._db.connect()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                batch = [item]
                while len(batch) < self.MAX_BATCH:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._run_batch(conn, batch)
                        return
                    batch.append(nxt)
                self._run_batch(conn, batch)
        finally:
            conn.raw.close()

    def _run_batch(self, conn: Conn, batch: list) -> None:
        outcomes: list[tuple[concurrent.futures.Future, Any, BaseException | None]] = []
        for attempt in range(20):
            outcomes = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for fn, args, kwargs, future in batch:
                    conn.execute("SAVEPOINT unit")
                    try:
                        result = fn(conn, *args, **kwargs)
                    except BaseException as exc:  # noqa: BLE001 - reported to that caller only
                        if _is_sqlite_busy(exc):
                            raise
                        conn.execute("ROLLBACK TO SAVEPOINT unit")
                        conn.execute("RELEASE SAVEPOINT unit")
                        outcomes.append((future, None, exc))
                    else:
                        conn.execute("RELEASE SAVEPOINT unit")
                        outcomes.append((future, result, None))
                conn.execute("COMMIT")
                break
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if _is_sqlite_busy(exc) and attempt < 19:
                    time.sleep(min(0.005 * 2**attempt, 0.5))
                    continue
                error = MlflowError(
                    f"The database is busy, try again: {exc}", "TEMPORARILY_UNAVAILABLE"
                )
                outcomes = [(item[-1], None, error) for item in batch]
                break
        for future, result, exc in outcomes:
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)
