"""Database access: one small layer over sqlite3 and psycopg.

Store functions are plain synchronous functions ``fn(conn, *args)`` that run inside one
transaction. Handlers call them through :meth:`Database.read` and :meth:`Database.write`, which
run them on worker threads so the event loop never blocks on SQL.

SQLite allows one writer at a time, so writes go to a single writer thread that applies *group
commit*: it takes every write waiting in its queue and commits them together, so concurrent
clients share one commit instead of queueing behind each other's. A failing write rolls back
alone: the batch then runs again with each write inside its own SAVEPOINT. A second thread
checkpoints the WAL beside the writer, so commits do not stall on copying pages back into the
database. PostgreSQL handles concurrent writers itself; each write there is its own transaction
from a connection pool, except small writes that a store function marks
:func:`pg_group_commit`: concurrent ones share one statement and one commit.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from math import isfinite
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from labtrack.wire import MlflowError, invalid

T = TypeVar("T")

log = logging.getLogger(__name__)
_savepoint_ids = itertools.count()


@lru_cache(maxsize=4096)
def _to_pyformat(sql: str) -> str:
    """Turn '?' placeholders into psycopg's '%s' (our SQL never holds literal '%' or '?')."""
    return sql.replace("?", "%s")


# Rows per multi-row INSERT (see Conn.insert_many): 128 rows is past the point where the per-
# statement cost stops mattering; _MAX_VARIABLES is SQLite's limit before 3.32, so it is safe on
# any build (PostgreSQL allows 65535).
_INSERT_CHUNK = 128
_MAX_VARIABLES = 999


@lru_cache(maxsize=512)
def _multi_insert_sql(head: str, tail: str, width: int, rows: int) -> str:
    """``head VALUES (?,..),(?,..) tail``; cached so the driver's statement cache sees one text."""
    group = "(" + ",".join("?" * width) + ")"
    return f"{head} VALUES {','.join([group] * rows)}{tail and ' ' + tail}"


_PG_ARRAY_TYPES = {int: "bigint", float: "float8", str: "text", bool: "boolean"}


def pg_array(values: list[Any]) -> tuple[str, str] | None:
    """One column as a PostgreSQL array literal and its element type; None if no type fits.

    The literal is one text parameter (``'{1,2,3}'``) that the statement casts (``?::bigint[]``).
    psycopg adapts a Python list element by element, about 1.5 us per int and 3 us per float:
    0.7 ms for the columns of 100 metric rows, a fifth of a log-batch. ``str.join`` builds the
    literal in a fraction of that, and PostgreSQL parses it as fast as the binary form. Numbers
    go through orjson, which writes the shortest text that reads back as the same double (as
    ``repr`` does) 20 times faster: ``repr`` of 1,000 floats was 0.8 ms, 6% of a 1,000-point
    log-batch. INSERT then casts the elements to the column's own type, as it would a VALUES
    list.
    """
    kinds = set(map(type, values))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    if kinds == {int, float}:  # a metric value sent as 1 beside 0.5
        kinds = {float}
    if len(kinds) != 1 or (name := _PG_ARRAY_TYPES.get(kind := kinds.pop())) is None:
        return None
    if kind is str:
        if not nulls:
            joined = "".join(values)
            if '"' not in joined and "\\" not in joined:  # the usual keys: quote, don't escape
                return name, '{"' + '","'.join(values) + '"}'
        items = ("NULL" if v is None else _quoted(v) for v in values)
        return name, "{" + ",".join(items) + "}"
    if nulls:
        return name, "{" + ",".join("NULL" if v is None else repr(v) for v in values) + "}"
    # orjson writes NaN and infinity as null and refuses ints past 64 bits: those keep repr.
    if kind is not bool:
        with contextlib.suppress(TypeError, OverflowError):
            if kind is int or isfinite(sum(values)):
                return name, "{" + orjson.dumps(values)[1:-1].decode() + "}"
    return name, "{" + ",".join(map(repr, values)) + "}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_autocommit(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark a store function that opens its own transaction on PostgreSQL, where it needs one.

    The Database runs it there in autocommit mode, where one statement is atomic by itself and
    needs no BEGIN and COMMIT, two of the three round trips of a small write. So the function
    writes with one statement, or wraps several in ``conn.transaction()``; reads before that
    see committed data, as in any READ COMMITTED transaction. On SQLite it runs in the writer's
    transaction like any other write, where ``conn.transaction()`` does nothing.
    """
    fn.pg_autocommit = True  # type: ignore[attr-defined]
    return fn


class PgGroup:
    """How concurrent calls of one store function are written together (see pg_group_commit)."""

    def __init__(
        self,
        accepts: Callable[..., bool],
        write_together: Callable[[Conn, list[tuple[tuple, dict]]], list[bool]],
    ) -> None:
        self.accepts = accepts
        self.write_together = write_together


def pg_group_commit(
    accepts: Callable[..., bool],
    write_together: Callable[[Conn, list[tuple[tuple, dict]]], list[bool]],
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Let concurrent small calls of a store function share one PostgreSQL statement and commit.

    A commit is most of what PostgreSQL spends on a small write (WAL record, flush, snapshot),
    and a round trip most of what the server spends; with many clients logging one metric each,
    neither needs to be paid per request. Calls that ``accepts(*args, **kwargs)`` go to one
    thread that takes every such call waiting and hands two or more of them to
    ``write_together(conn, [(args, kwargs), ...])``, which writes them with one statement and
    says which it wrote (returns None for them). The others, and all of them if that statement
    fails, then run one by one as usual, each with its own outcome. Calls not accepted (large
    batches, which gain more from PostgreSQL's parallel backends than from sharing a commit)
    never wait for that thread.
    """

    def mark(fn: Callable[..., T]) -> Callable[..., T]:
        fn.pg_group = PgGroup(accepts, write_together)  # type: ignore[attr-defined]
        return fn

    return mark


class Conn:
    """A connection with the few helpers store code needs, identical for every dialect."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self._pg = dialect == "postgresql"
        # Rows this write added, by table, for PostgreSQL's statistics thread (see wrote()).
        self.written: collections.Counter[str] = collections.Counter()
        self._cursor: Any = None

    def execute(self, sql: str, params: Sequence[Any] = (), *, replan: bool = False) -> Any:
        """Run one statement; read its result before the next statement on this connection.

        On PostgreSQL every statement runs on the connection's one cursor: psycopg's
        ``Connection.execute`` makes a cursor per call, a quarter of the client's CPU for a
        small statement (90 -> 68 us). Results come in binary: psycopg reads a bigint or a
        double from its 8 bytes, not from text, a third faster on long reads (25,000 history
        points: 33 -> 22 ms).

        Statements are prepared, and after five calls PostgreSQL may keep a generic plan, made
        for average parameter values. ``replan=True`` plans each call with its own values
        instead, for statements whose best plan depends on them: a window of a metric series
        that may hold ten points or ten million (a generic plan made for the average series of
        59 points walked a 10,000,000-point one from its start, 1.2 s per chart read).
        """
        if self._pg:
            if self._cursor is None:
                self._cursor = self.raw.cursor(binary=True)
            return self._cursor.execute(_to_pyformat(sql), params, prepare=not replan)
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._pg:
            with self.raw.cursor() as cur:
                cur.executemany(_to_pyformat(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def insert_many(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """Insert rows with multi-row ``INSERT ... VALUES (...), (...)`` statements on SQLite.

        ``head`` is the statement up to VALUES ("INSERT INTO t (a, b)"), ``tail`` what follows
        the rows ("ON CONFLICT ..."); every row has the same width. This is executemany's job,
        done in one statement per chunk of rows instead of one per row: SQLite runs the rows
        about a third faster, and the sqlite3 module releases and retakes the GIL once per
        chunk instead of once per row, which matters when the event loop wants it too. Statement
        texts come in a few fixed sizes only (full chunks, then powers of two for the rest), so
        the statement cache keeps hitting.

        PostgreSQL gets the rows as one array per column, in a single ``INSERT ... SELECT FROM
        unnest(...)``: one statement with a handful of parameters, which both psycopg and the
        server handle faster than executemany's row-by-row statements (1.3 vs 2 ms for 100
        metric rows) or a multi-row VALUES list (600 parameters to plan). With an ``ON CONFLICT
        DO UPDATE`` tail, pass each conflict key once, so the rows may share a statement on any
        backend (PostgreSQL refuses to update a row twice in one).
        """
        n = len(rows)
        if not n:
            return
        width = len(rows[0])
        if n == 1:  # log-metric, set-tag: the plain statement
            self.execute(_multi_insert_sql(head, tail, width, 1), rows[0])
            return
        if self._pg:
            arrays = self.unnest(list(zip(*rows, strict=True)))
            if arrays is None:
                self.executemany(_multi_insert_sql(head, tail, width, 1), rows)
            else:
                self.execute(f"{head} SELECT * FROM {arrays[0]}{tail and ' ' + tail}", arrays[1])
            return
        per = _INSERT_CHUNK
        while per * width > _MAX_VARIABLES:
            per >>= 1
        chain = itertools.chain.from_iterable
        start = 0
        while start < n:
            size = per
            while size > n - start:
                size >>= 1
            self.execute(
                _multi_insert_sql(head, tail, width, size),
                list(chain(rows[start : start + size])),
            )
            start += size

    @staticmethod
    def unnest(columns: Sequence[Sequence[Any]]) -> tuple[str, list[str]] | None:
        """PostgreSQL ``unnest(?::type[], ...)`` over columns of values, and its parameters.

        A table of rows from one array per column (see :func:`pg_array`); None when a column
        has no array type (only NULLs, or mixed types), for the caller to insert row by row.
        """
        arrays = [pg_array(list(column)) for column in columns]
        if None in arrays:
            return None
        sql = ", ".join(f"?::{name}[]" for name, _ in arrays)  # type: ignore[misc]
        return f"unnest({sql})", [literal for _, literal in arrays]  # type: ignore[misc]

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (a :func:`pg_autocommit` function called by another)."""
        if self._pg:
            from psycopg.pq import TransactionStatus

            return self.raw.info.transaction_status != TransactionStatus.IDLE
        return self.raw.in_transaction

    def transaction(self) -> contextlib.AbstractContextManager:
        """A transaction around several statements of a :func:`pg_autocommit` function.

        Inside a transaction already (always, on SQLite) it is a savepoint or nothing.
        """
        return self.raw.transaction() if self._pg else contextlib.nullcontext()

    def wrote(self, table: str, rows: int) -> None:
        """Note rows added to a table whose growth changes query plans (see ``_PgAnalyzer``)."""
        if self._pg and rows:
            self.written[table] += rows

    def one(self, sql: str, params: Sequence[Any] = (), *, replan: bool = False) -> tuple | None:
        return self.execute(sql, params, replan=replan).fetchone()

    def all(self, sql: str, params: Sequence[Any] = (), *, replan: bool = False) -> list[tuple]:
        return self.execute(sql, params, replan=replan).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = (), *, replan: bool = False) -> Any:
        row = self.one(sql, params, replan=replan)
        return row[0] if row else None

    def insert_returning_id(self, sql: str, params: Sequence[Any], id_column: str) -> int:
        """Run an INSERT and return the generated integer key."""
        if self._pg:
            return self.execute(f"{sql} RETURNING {id_column}", params).fetchone()[0]
        return self.execute(sql, params).lastrowid

    def in_clause(self, column: str, values: Sequence[Any]) -> tuple[str, tuple]:
        """``column IN (...)`` for any number of values, as SQL text plus parameters.

        One value is ``column = ?``: PostgreSQL plans ``= ANY(array)`` as a filter that can't
        give index order, so a runs page (experiment and lifecycle stage, newest first) sorted
        every run of the experiment: 16 ms for a page of 10,000 runs, 0.9 ms with equalities.
        """
        if len(values) == 1:
            return f"{column} = ?", (values[0],)
        if self._pg:
            array = pg_array(list(values))
            if array is None:  # empty, or of mixed types
                return f"{column} = ANY(?)", (list(values),)
            return f"{column} = ANY(?::{array[0]}[])", (array[1],)
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


def is_unique_violation(exc: BaseException, constraint: str) -> bool:
    """Whether ``exc`` is PostgreSQL refusing a duplicate key of ``constraint``."""
    diag = getattr(exc, "diag", None)
    return getattr(exc, "sqlstate", None) == "23505" and diag.constraint_name == constraint


def _database_unavailable() -> MlflowError:
    return MlflowError(
        "The metadata database cannot be reached right now; retry the request.",
        "TEMPORARILY_UNAVAILABLE",
    )


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


# PostgreSQL's default random_page_cost (4) prices an index read as four sequential ones, as
# on a spinning disk. labtrack's reads fetch a page of runs' params, metrics and tags by run,
# from tables PostgreSQL mostly has in memory; at 4 the planner read all of each table and
# sorted it instead of using its primary key (1,000 runs of 10,000: 61 -> 10 ms for the three
# tables). 1.1 is the usual setting for SSDs and cached data. A value set by the operator (in
# postgresql.conf, for the database or the role) is left alone.
_PG_RANDOM_PAGE_COST = (
    "SELECT set_config('random_page_cost', '1.1', false) FROM pg_settings"
    " WHERE name = 'random_page_cost' AND source = 'default'"
)


class Database:
    """Runs store functions on the right threads for the configured backend."""

    # Threads (each with its own connection) that run PostgreSQL reads and writes. Past four
    # the threads spend more on handing the GIL to each other than they gain by waiting on
    # PostgreSQL side by side: W2 (8 clients, log-metric) 1,138 req/s with 8, 1,388 with 4
    # (748 vs 616 us of server CPU per request; 2 and 3 threads did as well as 4).
    PG_THREADS = 4

    def __init__(self, uri: str, *, readers: int = 4, pg_pool_size: int = PG_THREADS) -> None:
        self.uri = uri
        self.dialect, self._target = parse_backend_uri(uri)
        self._local = threading.local()
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=readers if self.dialect == "sqlite" else pg_pool_size,
            thread_name_prefix="labtrack-db",
        )
        self._writer: _SqliteWriter | None = None
        self._analyzer: _PgAnalyzer | None = None
        self._grouper: _PgGroupWriter | None = None
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

        # A database host that has vanished would otherwise hold a request for the kernel's TCP
        # timeout (minutes); a connect_timeout in the URI wins.
        timeout = {} if "connect_timeout" in self._target else {"connect_timeout": 10}
        raw = psycopg.connect(self._target, autocommit=True, **timeout)
        raw.execute(_PG_RANDOM_PAGE_COST)
        return Conn(raw, "postgresql")

    def _thread_conn(self) -> Conn:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.dialect != "sqlite" and conn.raw.closed:  # see _on_pg_conn
            self._forget_thread_conn()
            conn = None
        if conn is None:
            conn = self.connect() if self.dialect == "sqlite" else self._pg_connect()
            self._local.conn = conn
            with self._lock:
                self._all_conns.append(conn.raw)
        return conn

    def _forget_thread_conn(self) -> None:
        conn = self._local.conn
        self._local.conn = None
        with self._lock, contextlib.suppress(ValueError):
            self._all_conns.remove(conn.raw)
        with contextlib.suppress(Exception):
            conn.raw.close()

    def _pg_connect(self) -> Conn:
        import psycopg

        try:
            return self.connect()
        except psycopg.OperationalError as exc:
            log.warning("cannot connect to PostgreSQL: %s", exc)
            raise _database_unavailable() from exc

    def _on_pg_conn(self, call: Callable[[Conn], T], *, retry: Callable[[Exception], bool]) -> T:
        """``call(conn)`` on this thread's PostgreSQL connection, surviving a dropped connection.

        PostgreSQL restarts, failovers and idle-connection reapers close pooled connections
        while they sit unused; the next statement on one fails. The connection is then replaced
        and the call made again on the new one if ``retry`` says the failed call cannot have
        done anything; otherwise the client gets TEMPORARILY_UNAVAILABLE (503), which the stock
        client retries.
        """
        import psycopg

        for attempt in (0, 1):
            conn = self._thread_conn()
            try:
                return call(conn)
            except psycopg.DataError as exc:
                # A value PostgreSQL cannot hold (text with a NUL byte, say); the transaction
                # was rolled back whole, and the client can fix the request.
                log.warning("PostgreSQL refused a value: %s", exc)
                raise invalid(f"The database cannot store a value of this request: {exc}") from exc
            except psycopg.OperationalError as exc:
                if not conn.raw.closed:
                    # The statement failed, the connection is fine: cancelled by
                    # statement_timeout or lock_timeout, or the server short of memory, disk or
                    # connections. Nothing was committed; the client may try again later.
                    log.warning("PostgreSQL could not run a statement: %s", exc)
                    reason = next(iter(str(exc).strip().splitlines()), "no reason given")
                    raise MlflowError(
                        f"The metadata database could not complete the request ({reason});"
                        " retry it later.",
                        "TEMPORARILY_UNAVAILABLE",
                    ) from exc
                self._forget_thread_conn()
                log.warning("lost a PostgreSQL connection: %s", exc)
                if attempt or not retry(exc):
                    raise _database_unavailable() from exc
        raise AssertionError("unreachable")

    # -- running store functions ------------------------------------------------------------------
    def run_read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a read-only store function on this thread's connection.

        SQLite reads run in one transaction, a snapshot across their statements. PostgreSQL
        reads run in autocommit mode: under READ COMMITTED a transaction would give each
        statement its own snapshot anyway, so BEGIN and COMMIT would be two round trips for
        nothing. A read is safe to repeat on a new connection if the old one was dropped.
        """
        if self.dialect == "sqlite":
            conn = self._thread_conn()
            conn.execute("BEGIN")
            try:
                return fn(conn, *args, **kwargs)
            finally:
                conn.execute("COMMIT")
        return self._on_pg_conn(lambda conn: fn(conn, *args, **kwargs), retry=lambda exc: True)

    def run_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store function in one write transaction, synchronously (CLI, migrations)."""
        if self.dialect == "sqlite":
            return self._sqlite_writer().submit(fn, args, kwargs).result()
        return self._pg_write(fn, *args, **kwargs)

    def _pg_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # A write is repeated on a new connection only if its backend was shut down by the
        # server (57P01 admin, 57P02 crash), which aborts an unfinished transaction: a write
        # cut off by a network failure may have committed, so the client decides.
        return self._on_pg_conn(
            lambda conn: self._pg_write_on(conn, fn, *args, **kwargs),
            retry=lambda exc: getattr(exc, "sqlstate", None) in ("57P01", "57P02"),
        )

    def _pg_write_on(self, conn: Conn, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import psycopg

        for attempt in range(5):
            conn.written.clear()
            try:
                if getattr(fn, "pg_autocommit", False):
                    result = fn(conn, *args, **kwargs)
                else:
                    with conn.transaction():
                        result = fn(conn, *args, **kwargs)
                self._pg_analyzer().wrote(conn.written)
                return result
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
        group: PgGroup | None = getattr(fn, "pg_group", None)
        if group is not None and group.accepts(*args, **kwargs):
            return await asyncio.wrap_future(self._pg_grouper().submit(fn, args, kwargs))
        loop = asyncio.get_running_loop()
        call = functools.partial(self._pg_write, fn, *args, **kwargs)
        return await loop.run_in_executor(self._readers, call)

    def _pg_grouper(self) -> _PgGroupWriter:
        if self._grouper is None:
            self._grouper = self._start_once("_grouper", _PgGroupWriter)
        return self._grouper

    def _pg_analyzer(self) -> _PgAnalyzer:
        if self._analyzer is None:
            self._analyzer = self._start_once("_analyzer", _PgAnalyzer)
        return self._analyzer

    def _sqlite_writer(self) -> _SqliteWriter:
        if self._writer is None:
            self._writer = self._start_once("_writer", _SqliteWriter)
        return self._writer

    def _start_once(self, attr: str, make: Callable[[Database], Any]) -> Any:
        """The thread kept in ``attr``, made and started by whichever caller comes first."""
        with self._lock:
            thread = getattr(self, attr)
            if thread is None:
                thread = make(self)
                thread.start()
            return thread

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        if self._grouper is not None:
            self._grouper.stop()
        if self._analyzer is not None:
            self._analyzer.stop()
        self._readers.shutdown(wait=True)
        with self._lock:
            for raw in self._all_conns:
                with contextlib.suppress(Exception):
                    raw.close()
            self._all_conns.clear()


class _CallQueue(threading.Thread):
    """A thread that runs submitted store calls, taking all those waiting at once as a batch."""

    MAX_BATCH = 512

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
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

    def batches(self) -> Iterator[list[tuple]]:
        """``(fn, args, kwargs, future)`` calls, every one waiting, until stop() (after the rest)."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, stopping = [item], False
            while len(batch) < self.MAX_BATCH and not stopping:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                else:
                    batch.append(nxt)
            yield batch
            if stopping:
                return


class _SqliteWriter(_CallQueue):
    """The single SQLite writer: drains its queue and commits each batch once."""

    # Settings of the writer's connection only (readers never write):
    # - Inside a transaction SQLite journals the pages a statement changes (to undo just that
    #   statement) and those a savepoint changes; past 64 KiB these journals move to temp files,
    #   and a log-batch's latest_metrics upsert alone changed ~100 pages (with the index that
    #   schema migration 4 dropped), so each log-batch created and deleted a file.
    #   temp_store=MEMORY keeps them in memory.
    # - The commit that takes the WAL past wal_autocheckpoint pages checkpoints it (copies it
    #   back into the database and fsyncs) on this thread, while all writes wait. A run's
    #   metrics dirtied ~140 pages then, so at the default of 1000 pages that was every few
    #   runs, 30-50 ms each. _Checkpointer now does that work beside the writer; the writer's
    #   own checkpoint, at 10000 pages (~40 MiB), is what restarts the WAL from its beginning,
    #   and finds little left to copy by then.
    PRAGMAS = ("PRAGMA temp_store=MEMORY", "PRAGMA wal_autocheckpoint=10000")

    def __init__(self, db: Database) -> None:
        super().__init__("labtrack-sqlite-writer")
        self._db = db
        self._checkpointer: _Checkpointer | None = None

    def run(self) -> None:
        conn = self._db.connect()
        for pragma in self.PRAGMAS:
            conn.execute(pragma)
        if self._db._target != ":memory:":  # an in-memory database has no WAL
            self._checkpointer = _Checkpointer(self._db)
            self._checkpointer.start()
        try:
            for batch in self.batches():
                self._run_batch(conn, batch)
        finally:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            conn.raw.close()

    def _run_batch(self, conn: Conn, batch: list) -> None:
        if self._run_without_savepoints(conn, batch):
            return
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
                if self._checkpointer is not None:
                    self._checkpointer.wake.set()
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

    def _run_without_savepoints(self, conn: Conn, batch: list) -> bool:
        """The usual case: every unit succeeds, so none needs a savepoint of its own.

        A savepoint makes SQLite copy every page its unit changes into a sub-journal (a
        log-batch changes ~140), only to undo a unit that fails, which is rare. So the batch
        first runs in one plain transaction; if a unit fails, it is rolled back and False tells
        the caller to run it again unit by unit (store functions already run again on
        SQLITE_BUSY). A single unit needs no second run: rolling back is its savepoint.
        """
        results = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, kwargs, _ in batch:
                results.append(fn(conn, *args, **kwargs))
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - reported below or by the second run
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if len(batch) == 1 and len(results) == 0 and not isinstance(exc, sqlite3.Error):
                batch[0][-1].set_exception(exc)
                return True
            return False
        if self._checkpointer is not None:
            self._checkpointer.wake.set()
        for (*_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
        return True


class _PgGroupWriter(_CallQueue):
    """Runs the calls of :func:`pg_group_commit` functions, those waiting together by one statement."""

    MAX_BATCH = 256

    def __init__(self, db: Database) -> None:
        super().__init__("labtrack-pg-group-writer")
        self._db = db

    def run(self) -> None:
        for batch in self.batches():
            by_fn: dict[Callable, list] = {}
            for call in batch:
                by_fn.setdefault(call[0], []).append(call)
            for fn, calls in by_fn.items():
                self._write(fn, calls)

    def _write(self, fn: Callable[..., Any], calls: list) -> None:
        written = [False] * len(calls)
        if len(calls) > 1:
            together = [(args, kwargs) for _, args, kwargs, _ in calls]
            try:
                written = self._db._pg_write(_write_together, fn.pg_group, together)
            except Exception as exc:  # noqa: BLE001 - each call runs again alone, below
                log.debug("a grouped write failed, its calls run one by one: %s", exc)
        for (_, args, kwargs, future), done in zip(calls, written, strict=True):
            if done:
                future.set_result(None)
                continue
            try:
                result = self._db._pg_write(fn, *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to that caller only
                future.set_exception(exc)
            else:
                future.set_result(result)


@pg_autocommit
def _write_together(conn: Conn, group: PgGroup, calls: list[tuple[tuple, dict]]) -> list[bool]:
    """The group's calls by its one statement (atomic by itself: no transaction around it)."""
    return group.write_together(conn, calls)


class _Housekeeper(threading.Thread):
    """A daemon thread that does one piece of upkeep on its own connection each time it is woken.

    Upkeep is never fatal: a failure is logged, the connection dropped and opened again next time.
    """

    def __init__(self, db: Database, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._db = db
        self.wake = threading.Event()
        self._stopping = False

    def work(self, conn: Conn) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        self.join(timeout=10)

    def run(self) -> None:
        conn: Conn | None = None
        try:
            while True:
                self.wake.wait()
                if self._stopping:
                    return
                self.wake.clear()
                try:
                    conn = conn or self._db.connect()
                    self.work(conn)
                except Exception as exc:  # noqa: BLE001 - see the class docstring
                    log.debug("%s failed: %s", self.name, exc)
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.raw.close()
                    conn = None
        finally:
            if conn is not None:
                conn.raw.close()


class _Checkpointer(_Housekeeper):
    """Checkpoints the WAL on its own connection, beside the writer instead of inside a commit.

    A PASSIVE checkpoint copies committed pages back into the database file without blocking
    the writer or readers, and SQLite runs it with the GIL released, so it overlaps the
    writer's work. Each commit wakes this thread; it then sleeps ``PAUSE``, so under load one
    checkpoint covers many commits, and a page changed by all of them is copied once. (The
    writer's own checkpoints still happen if this one fails.)
    """

    PAUSE = 0.05

    def __init__(self, db: Database) -> None:
        super().__init__(db, "labtrack-sqlite-checkpointer")

    def work(self, conn: Conn) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        time.sleep(self.PAUSE)


class _PgAnalyzer(_Housekeeper):
    """Refreshes PostgreSQL's planner statistics of the tracking tables soon after they grow.

    Autovacuum analyzes a table once a tenth of it changed, but looks only once a minute: a
    sweep that fills a new database meanwhile gets search plans made for empty tables (nested
    loops over "1 row"), several times slower than with statistics, and a long series logged
    into a new table is read back with a sort instead of its primary key (46 vs 18 ms per
    25,000 points). So every ``EVERY`` writes this thread analyzes the tables that changed by
    500 rows and a tenth: by pg_stat_user_tables, which counts every process's writes but learns
    of them up to 10 s late (a busy backend reports its counters once a second at most, an idle
    one after ``PGSTAT_IDLE_INTERVAL``), and by the rows this process wrote itself (``Conn.wrote``)
    against the table's size at its last analysis. ANALYZE is a sampled read, milliseconds here.
    After each look it rests ``PAUSE``, so a busy server looks twice a second at most (a W1 run
    writes 128 rows: without the pause, a look every four runs). An idle server never looks; if
    a look fails, autovacuum still does the job, later.
    """

    EVERY = 500
    PAUSE = 0.5
    TABLES = ("runs", "latest_metrics", "params", "run_tags", "metrics")

    def __init__(self, db: Database) -> None:
        super().__init__(db, "labtrack-pg-analyzer")
        self._writes = 0
        self._rows: collections.Counter[str] = collections.Counter()

    def wrote(self, rows: collections.Counter[str]) -> None:
        """Count one write and the rows it added (a lost update under a race only delays)."""
        self._writes += 1 + sum(rows.values())
        if rows:
            self._rows.update(rows)
        if self._writes >= self.EVERY:
            self._writes = 0
            self.wake.set()

    def work(self, conn: Conn) -> None:
        rows, self._rows = self._rows, collections.Counter()
        stale = {
            table
            for table, n_mod, n_tup in conn.all(
                "SELECT s.relname, n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s"
                " JOIN pg_class c ON c.oid = s.relid WHERE s.relname = ANY(?)"
                " AND schemaname = current_schema()",
                (list(self.TABLES),),
            )
            if max(n_mod, rows[table]) > 500 + 0.1 * max(n_tup, 0)
        }
        for table in stale:
            conn.execute(f"ANALYZE {table}")  # a name from TABLES, never input
            rows.pop(table, None)
        self._rows.update(rows)  # not yet enough: they count toward the next look
        time.sleep(self.PAUSE)
