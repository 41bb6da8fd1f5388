"""store.db: Conn.insert_many against in-memory SQLite, and the SQLite writer's batches.

On PostgreSQL insert_many sends one array per column; those tests need the test PostgreSQL.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labtrack.store import db
from labtrack.store.db import Conn, Database, pg_array
from labtrack.wire import MlflowError


class RecordingConn(Conn):
    """A Conn that remembers the SQL text and parameter count of every statement."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        super().__init__(raw, "sqlite")
        self.statements: list[tuple[str, int]] = []

    def execute(self, sql, params=(), *, replan=False):
        self.statements.append((sql, len(params)))
        return super().execute(sql, params, replan=replan)


def _conn(width: int) -> RecordingConn:
    raw = sqlite3.connect(":memory:", isolation_level=None)
    columns = ", ".join(f"c{i}" for i in range(width))
    raw.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {columns})")
    return RecordingConn(raw)


def _insert(conn: RecordingConn, rows: list[tuple]) -> None:
    width = len(rows[0]) if rows else 1
    columns = ", ".join(f"c{i}" for i in range(width))
    conn.insert_many(f"INSERT INTO t (id, {columns})", [(n, *row) for n, row in enumerate(rows)])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 127, 128, 129, 255, 256, 300, 1000])
def test_every_row_is_inserted_once_in_bounded_statements(n: int) -> None:
    conn = _conn(5)
    rows = [(i, f"k{i % 4}", i * 0.5, -i, None) for i in range(n)]
    _insert(conn, rows)
    # Full chunks, then at most one statement per power of two for the rest.
    full, rest = divmod(n, db._INSERT_CHUNK)
    assert len(conn.statements) == full + bin(rest).count("1")
    assert conn.all("SELECT c0, c1, c2, c3, c4 FROM t ORDER BY id") == rows


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 700), width=st.integers(1, 40))
def test_statements_stay_under_the_variable_limit_and_reuse_their_text(n: int, width: int) -> None:
    conn = _conn(width)
    rows = [tuple(range(i, i + width)) for i in range(n)]
    _insert(conn, rows)
    inserts = list(conn.statements)
    assert conn.all("SELECT COUNT(*) FROM t")[0][0] == n
    assert all(count <= db._MAX_VARIABLES for _, count in inserts)
    # Sizes are the chunk size and powers of two below it, so few texts ever exist per table.
    sizes = {count // (width + 1) for _, count in inserts}
    assert all(size & (size - 1) == 0 for size in sizes)


def test_the_tail_follows_the_rows() -> None:
    conn = _conn(2)
    _insert(conn, [("a", 1), ("b", 2)])
    conn.statements.clear()
    conn.insert_many(
        "INSERT INTO t (id, c0, c1)",
        [(0, "a", 10), (1, "b", 20), (5, "c", 30)],
        "ON CONFLICT (id) DO UPDATE SET c1 = excluded.c1 WHERE excluded.c1 > 15",
    )
    tail = " ON CONFLICT (id) DO UPDATE SET c1 = excluded.c1 WHERE excluded.c1 > 15"
    assert [sql for sql, _ in conn.statements] == [
        "INSERT INTO t (id, c0, c1) VALUES (?,?,?),(?,?,?)" + tail,
        "INSERT INTO t (id, c0, c1) VALUES (?,?,?)" + tail,
    ]
    assert conn.all("SELECT id, c0, c1 FROM t ORDER BY id") == [
        (0, "a", 1),
        (1, "b", 20),
        (5, "c", 30),
    ]


def test_a_failing_chunk_raises() -> None:
    conn = _conn(1)
    _insert(conn, [("a",)])
    with pytest.raises(sqlite3.IntegrityError):
        conn.insert_many("INSERT INTO t (id, c0)", [(1, "b"), (0, "again")])


@pytest.fixture(scope="module")
def pg_conn() -> Iterator[Conn]:
    from tests.conftest import PgDatabase

    database = PgDatabase.create()
    conn = Database(f"postgresql://{database.url.split('://', 1)[1]}").connect()
    try:
        yield conn
    finally:
        conn.raw.close()
        database.drop()


@pytest.mark.postgres
@pytest.mark.parametrize("n", [1, 2, 300])
def test_postgresql_inserts_column_arrays_in_one_statement(pg_conn: Conn, n: int) -> None:
    pg_conn.execute("DROP TABLE IF EXISTS t")
    pg_conn.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, k TEXT, v DOUBLE PRECISION, flag SMALLINT)"
    )
    # Ints in a float column, as a metric value may arrive.
    rows = [(i, f"k{i}", float(i) / 2 if i % 2 else i, i % 2) for i in range(n)]
    pg_conn.insert_many("INSERT INTO t (id, k, v, flag)", rows)
    again = [(i, "new", 0.0, 0) for i in range(n)]
    pg_conn.insert_many(
        "INSERT INTO t (id, k, v, flag)", again, "ON CONFLICT (id) DO UPDATE SET k = excluded.k"
    )
    got = pg_conn.all("SELECT id, k, v, flag FROM t ORDER BY id")
    assert got == [(i, "new", float(v), flag) for i, _, v, flag in rows]


AWKWARD_TEXT = ['"', "\\", 'a "quoted" \\ value', "NULL", "", " ", "{,}", "é ✓", "x\ny", "'"]
AWKWARD_FLOATS = [0.1, -0.0, 1e-310, 1.7976931348623157e308, 2.0**53 + 1, 1 / 3, 5, float("inf")]


@pytest.mark.postgres
def test_postgresql_array_literals_read_back_exactly(pg_conn: Conn) -> None:
    """pg_array writes text literals; every value must come back as it went in."""
    pg_conn.execute("DROP TABLE IF EXISTS t")
    pg_conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, s TEXT, f DOUBLE PRECISION, b BOOL)")
    n = len(AWKWARD_TEXT)
    rows = [
        (-(2**63) + i, AWKWARD_TEXT[i], AWKWARD_FLOATS[i % len(AWKWARD_FLOATS)], i % 2 == 0)
        for i in range(n)
    ]
    rows.append((2**63 - 1, None, None, None))  # NULLs beside values
    pg_conn.insert_many("INSERT INTO t (id, s, f, b)", rows)
    got = pg_conn.all("SELECT id, s, f, b FROM t ORDER BY id")
    assert got == sorted(rows)
    nan = pg_conn.one(
        "SELECT f[1] FROM (SELECT ?::float8[] AS f) x", (pg_array([float("nan")])[1],)
    )
    assert math.isnan(nan[0])


@pytest.mark.postgres
@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
        min_size=1,
    ),
    floats=st.lists(st.floats(allow_nan=False) | st.integers(-(2**53), 2**53), min_size=1),
    ints=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1),
)
def test_postgresql_array_literals_round_trip(
    pg_conn: Conn, texts: list, floats: list, ints: list
) -> None:
    text_type, text_literal = pg_array(texts)
    float_type, float_literal = pg_array(floats)
    int_type, int_literal = pg_array(ints)
    got = pg_conn.one(
        f"SELECT ?::{text_type}[], ?::{float_type}[], ?::{int_type}[]",
        (text_literal, float_literal, int_literal),
    )
    expected_floats = floats if float_type == "bigint" else [float(f) for f in floats]
    assert got == (texts, expected_floats, ints)


@pytest.mark.postgres
def test_postgresql_falls_back_when_a_column_has_no_array_type(pg_conn: Conn) -> None:
    pg_conn.execute("DROP TABLE IF EXISTS t")
    pg_conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, note TEXT, n BIGINT)")
    # A column of only NULLs has no element type to name: the rows go one statement each.
    pg_conn.insert_many("INSERT INTO t (id, note, n)", [(1, None, 5), (2, None, 6)])
    assert pg_conn.all("SELECT id, note, n FROM t ORDER BY id") == [(1, None, 5), (2, None, 6)]


# --- the SQLite writer --------------------------------------------------------------------------
def _add(conn: Conn, name: str) -> str:
    conn.execute("INSERT INTO t (name) VALUES (?)", (name,))
    return name


def _add_then_fail(conn: Conn, name: str) -> None:
    conn.execute("INSERT INTO t (name) VALUES (?)", (name,))
    raise MlflowError(f"no {name}")


def _names(database: Database) -> list[str]:
    return [r[0] for r in database.run_read(lambda c: c.all("SELECT name FROM t ORDER BY name"))]


@pytest.fixture
def database(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/w.db")
    database.run_write(lambda c: c.execute("CREATE TABLE t (name TEXT PRIMARY KEY)"))
    yield database
    database.close()


def _batch(database: Database, units: list) -> list:
    """Queue units before the writer thread starts, so it takes them as one batch."""
    writer = db._SqliteWriter(database)
    futures = [writer.submit(fn, args, {}) for fn, *args in units]
    writer.start()
    try:
        return [f.exception(timeout=10) or f.result() for f in futures]
    finally:
        writer.stop()


def test_a_batch_commits_every_unit(database: Database) -> None:
    assert _batch(database, [(_add, "a"), (_add, "b"), (_add, "c")]) == ["a", "b", "c"]
    assert _names(database) == ["a", "b", "c"]


def test_a_failing_unit_is_undone_alone(database: Database) -> None:
    outcomes = _batch(database, [(_add, "a"), (_add_then_fail, "b"), (_add, "a"), (_add, "c")])
    assert outcomes[0] == "a" and outcomes[3] == "c"
    assert isinstance(outcomes[1], MlflowError) and str(outcomes[1]) == "no b"
    assert isinstance(outcomes[2], sqlite3.IntegrityError)  # "a" again, within the same batch
    assert _names(database) == ["a", "c"]


def test_a_failing_single_unit_runs_once(database: Database) -> None:
    calls = []

    def fail(conn: Conn) -> None:
        calls.append(1)
        _add_then_fail(conn, "x")

    assert isinstance(_batch(database, [(fail,)])[0], MlflowError)
    assert calls == [1]
    assert _names(database) == []


# --- PostgreSQL planner statistics ------------------------------------------------------------
def _create_runs(conn: Conn, n: int) -> None:
    conn.insert_many(
        "INSERT INTO runs (run_uuid, experiment_id, artifact_uri)",
        [(f"run-{time.time_ns()}-{i}", 0, "x") for i in range(n)],
    )


@pytest.mark.postgres
def test_postgresql_tables_are_analyzed_soon_after_they_grow(monkeypatch) -> None:
    from tests.conftest import PgDatabase

    from labtrack.store import experiments
    from labtrack.store.migrate import upgrade

    monkeypatch.setattr(db._PgAnalyzer, "EVERY", 2)
    database = PgDatabase.create()
    store = Database(f"postgresql://{database.url.split('://', 1)[1]}")
    try:
        upgrade(store)
        store.run_write(experiments.ensure_default, "/tmp/art", 0)
        store.run_write(_create_runs, 2000)
        deadline = time.monotonic() + 20
        analyzed = None
        while analyzed is None and time.monotonic() < deadline:
            # Statistics counters reach pg_stat_user_tables up to a second late: keep writing
            # (each write counts toward the analyzer's next look) until runs was analyzed.
            store.run_write(_create_runs, 1)
            time.sleep(0.2)
            analyzed = store.run_read(
                lambda c: c.scalar(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'runs'"
                )
            )
        assert analyzed is not None
    finally:
        store.close()
        database.drop()


@pytest.fixture
def pg_run() -> Iterator[tuple[Database, str]]:
    """A Database on a fresh, migrated PostgreSQL database, and the id of one active run."""
    from tests.conftest import PgDatabase

    from labtrack.store import experiments, runs
    from labtrack.store.migrate import upgrade

    database = PgDatabase.create()
    store = Database(f"postgresql://{database.url.split('://', 1)[1]}")
    try:
        upgrade(store)
        store.run_write(experiments.ensure_default, "/tmp/art", 0)
        run = store.run_write(
            runs.create, experiment_id=0, user_id="u", run_name="r", start_time=0, tags=[]
        )
        yield store, run["info"]["run_uuid"]
    finally:
        store.close()
        database.drop()


@pytest.mark.postgres
def test_postgresql_long_series_is_analyzed_before_the_server_reports_its_counters(
    pg_run: tuple[Database, str],
) -> None:
    """A few big log-batches into a new table: PostgreSQL's own counters may reach
    pg_stat_user_tables 10 s later, so the analyzer also counts the rows this process wrote."""
    from labtrack.store import runs

    store, run_id = pg_run
    points = [("h", 0.5, 1, step) for step in range(2000)]
    store.run_write(runs.log_batch, run_id, metrics=points)
    deadline = time.monotonic() + 5
    analyzed = None
    while analyzed is None and time.monotonic() < deadline:
        time.sleep(0.05)
        analyzed = store.run_read(
            lambda c: c.scalar(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'metrics'"
            )
        )
    assert analyzed is not None


@pytest.mark.postgres
def test_postgresql_history_pages_come_off_the_primary_key_without_a_sort(
    pg_run: tuple[Database, str],
) -> None:
    """The history read's ORDER BY is the primary key's order, so PostgreSQL needs no sort:
    that breaks if the point's value column is named like the stored column it hides."""
    from labtrack.store import metrics as metric_store
    from labtrack.store import runs

    store, run_id = pg_run
    points = [("h", step / 7, 1, step) for step in range(5000)]
    store.run_write(runs.log_batch, run_id, metrics=points)

    def plan(conn: Conn) -> str:
        conn.execute("ANALYZE metrics")
        sql = (
            f"EXPLAIN SELECT {metric_store._POINT} FROM metrics WHERE run_pk = ? AND key = ?"
            f"{metric_store._HISTORY_ORDER} LIMIT ?"
        )
        return "\n".join(row[0] for row in conn.all(sql, (1, "h", 2500)))

    text = store.run_read(plan)
    assert "metrics_pkey" in text and "Sort" not in text, text


@pytest.mark.postgres
def test_postgresql_search_page_children_come_off_the_primary_key(
    pg_run: tuple[Database, str],
) -> None:
    """A page of 900 runs out of 10,000 reads its params by primary key, not by reading the
    whole table and sorting it, which PostgreSQL's default random_page_cost (4) chose."""
    store, _ = pg_run

    def plan(conn: Conn) -> tuple[str, str]:
        conn.execute(
            "INSERT INTO params (run_pk, key, value)"
            " SELECT r, 'p' || k, 'v' FROM generate_series(1000, 10999) r, generate_series(0, 9) k"
        )
        conn.execute("ANALYZE params")
        pk_sql, args = conn.in_clause("run_pk", list(range(5000, 5900)))
        sql = f"EXPLAIN SELECT run_pk, key, value FROM params WHERE {pk_sql} ORDER BY run_pk, key"
        setting = conn.scalar("SHOW random_page_cost")
        return setting, "\n".join(row[0] for row in conn.all(sql, args))

    setting, text = store.run_read(plan)
    assert setting == "1.1"
    assert "params_pkey" in text and "Seq Scan" not in text, text


# --- PostgreSQL log-batch -------------------------------------------------------------------
@pytest.mark.postgres
def test_postgresql_repeated_point_inside_a_callers_transaction(
    pg_run: tuple[Database, str],
) -> None:
    """A batch that repeats a stored point goes again with ON CONFLICT (runs._pg_log_batch);
    inside another write's transaction the failed try must not abort that transaction."""
    from labtrack.store import runs

    store, run_id = pg_run
    point = ("m", 0.5, 1, 0)

    def log_twice(conn: Conn) -> None:
        runs.log_batch(conn, run_id, metrics=[point])
        runs.log_batch(conn, run_id, metrics=[point, ("m", 0.7, 2, 1)])
        conn.execute(
            "INSERT INTO run_tags (run_pk, key, value) SELECT run_pk, 'after', 'x'"
            " FROM runs WHERE run_uuid = ?",
            (run_id,),
        )

    store.run_write(log_twice)
    store.run_write(runs.log_batch, run_id, metrics=[point])  # again, on its own
    history = store.run_read(lambda c: c.all("SELECT step, value FROM metrics ORDER BY step"))
    assert history == [(0, 0.5), (1, 0.7)]
    tags = store.run_read(lambda c: c.all("SELECT key FROM run_tags WHERE key = 'after'"))
    assert tags == [("after",)]


def _run_state(store: Database, run_id: str) -> tuple[list, list, list, str]:
    """A run's params, tags, metric history and name."""

    def read(conn: Conn) -> tuple[list, list, list, str]:
        pk, name = conn.one("SELECT run_pk, name FROM runs WHERE run_uuid = ?", (run_id,))
        return (
            conn.all("SELECT key, value FROM params WHERE run_pk = ? ORDER BY key", (pk,)),
            conn.all("SELECT key, value FROM run_tags WHERE run_pk = ? ORDER BY key", (pk,)),
            conn.all("SELECT key, step FROM metrics WHERE run_pk = ? ORDER BY key", (pk,)),
            name,
        )

    return store.run_read(read)


@pytest.mark.postgres
def test_postgresql_batch_with_a_changed_param_writes_nothing(
    pg_run: tuple[Database, str],
) -> None:
    """A log-batch with params is one autocommitted statement: when one param was logged
    before with another value, none of its rows may land (metrics, tags, new params, a rename)."""
    from labtrack.store import runs

    store, run_id = pg_run
    store.run_write(runs.log_batch, run_id, params=[("a", "1"), ("b", "2")])
    before = _run_state(store, run_id)
    with pytest.raises(MlflowError, match="Changing param values is not allowed") as refused:
        store.run_write(
            runs.log_batch,
            run_id,
            metrics=[("m", 0.5, 1, 0)],
            params=[("a", "1"), ("b", "changed"), ("c", "3")],
            tags=[("t", "x"), (runs.RUN_NAME_TAG, "renamed")],
        )
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "key='b'" not in str(refused.value)  # two params sent: the list wording
    assert _run_state(store, run_id) == before

    store.run_write(
        runs.log_batch,
        run_id,
        metrics=[("m", 0.5, 1, 0)],
        params=[("a", "1"), ("c", "3")],
        tags=[("t", "x"), (runs.RUN_NAME_TAG, "renamed")],
    )
    params, tags, history, name = _run_state(store, run_id)
    assert params == [("a", "1"), ("b", "2"), ("c", "3")]
    assert ("t", "x") in tags and (runs.RUN_NAME_TAG, "renamed") in tags
    assert history == [("m", 0)] and name == "renamed"


@pytest.mark.postgres
def test_postgresql_param_logged_meanwhile_with_another_value_is_refused(
    pg_run: tuple[Database, str],
) -> None:
    """Another writer logs the same param, with another value, while the batch's statement
    runs: the statement fails on the primary key, and the batch goes again in a transaction
    that sees that value and refuses the change, writing nothing."""
    import concurrent.futures

    from labtrack.store import runs

    store, run_id = pg_run
    waiting = (  # read on the store's own connections: each read sees the activity anew
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database()"
    )
    other = store.connect()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            with other.raw.transaction():
                other.execute(
                    "INSERT INTO params (run_pk, key, value) SELECT run_pk, 'p', 'theirs'"
                    " FROM runs WHERE run_uuid = ?",
                    (run_id,),
                )
                batch = pool.submit(
                    store.run_write,
                    runs.log_batch,
                    run_id,
                    metrics=[("m", 0.5, 1, 0)],
                    params=[("p", "mine")],
                    tags=[("t", "x")],
                )
                deadline = time.monotonic() + 10
                while not store.run_read(lambda c: c.scalar(waiting)):
                    assert time.monotonic() < deadline and not batch.done(), batch
                    time.sleep(0.01)
            with pytest.raises(MlflowError, match="Param with key='p' was already logged"):
                batch.result(timeout=10)
    finally:
        other.raw.close()
    params, tags, history, _ = _run_state(store, run_id)
    assert params == [("p", "theirs")]
    assert ("t", "x") not in tags and history == []


# --- PostgreSQL group commit of small metric writes ----------------------------------------------
def _new_run(store: Database, name: str) -> str:
    from labtrack.store import runs

    run = store.run_write(
        runs.create, experiment_id=0, user_id="u", run_name=name, start_time=0, tags=[]
    )
    return run["info"]["run_uuid"]


def _grouped(store: Database, calls: list[tuple[str, list | dict]]) -> list:
    """Queue log-batch calls (their metrics, or all their arguments) before the group writer
    starts, so it takes them as one group."""
    from labtrack.store import runs

    writer = db._PgGroupWriter(store)
    futures = [
        writer.submit(runs.log_batch, (run_id,), c if isinstance(c, dict) else {"metrics": c})
        for run_id, c in calls
    ]
    writer.start()
    try:
        return [f.exception(timeout=10) or f.result() for f in futures]
    finally:
        writer.stop()


def _series(store: Database, run_id: str) -> tuple[list, list]:
    history = store.run_read(
        lambda c: c.all(
            "SELECT key, timestamp, step, is_nan, value FROM metrics JOIN runs USING (run_pk)"
            " WHERE run_uuid = ? ORDER BY key, step, timestamp, value",
            (run_id,),
        )
    )
    latest = store.run_read(
        lambda c: c.all(
            "SELECT key, value, timestamp, step, is_nan FROM latest_metrics"
            " JOIN runs USING (run_pk) WHERE run_uuid = ? ORDER BY key",
            (run_id,),
        )
    )
    return history, latest


def _group_and_one_by_one(store: Database, a_calls: list, b_calls: list) -> tuple:
    """Write the calls for runs a and b as one group, and again one by one for two other runs;
    both pairs must end the same. Returns run a's params, tags and series."""
    from labtrack.store import runs

    a, b, a_alone, b_alone = (_new_run(store, n) for n in ("a", "b", "a1", "b1"))
    group = [(a, c) for c in a_calls] + [(b, c) for c in b_calls]
    assert _grouped(store, group) == [None] * len(group)
    for run_id, calls in ((a_alone, a_calls), (b_alone, b_calls)):
        for c in calls:
            store.run_write(runs.log_batch, run_id, **c)

    def state(run_id: str) -> tuple:
        params, tags, _, _ = _run_state(store, run_id)
        return params, [t for t in tags if t[0] != runs.RUN_NAME_TAG], _series(store, run_id)

    assert state(a) == state(a_alone) and state(b) == state(b_alone)
    return state(a)


@pytest.mark.postgres
def test_postgresql_grouped_metric_writes_leave_what_one_by_one_writes_leave(
    pg_run: tuple[Database, str],
) -> None:
    """The latest value of a key logged by several calls of one group is the newest of all."""
    store, _ = pg_run
    a_calls = [
        {"metrics": [("m", 1.0, 10, 1)]},
        {"metrics": [("m", 0.5, 5, 3), ("n", math.inf, 7, 0)]},
        {"metrics": [("m", math.nan, 1, 2), ("n", -1.0, 8, 0)]},
    ]
    b_calls = [{"metrics": [("m", 2.0, 1, 0)]}, {"metrics": [("m", 3.0, 1, 0)]}]
    _, _, (_, latest) = _group_and_one_by_one(store, a_calls, b_calls)
    assert latest[0][:2] == ("m", 0.5)


@pytest.mark.postgres
@pytest.mark.parametrize("sent_twice", [False, True])
def test_postgresql_grouped_write_gives_each_caller_its_own_outcome(
    pg_run: tuple[Database, str], sent_twice: bool
) -> None:
    """A missing or deleted run fails its own call only. A point sent twice (a client retrying)
    fails the group's statement: every call then runs alone, and the point is stored once."""
    from labtrack.store import runs

    store, run_id = pg_run
    deleted = _new_run(store, "gone")
    store.run_write(runs.set_lifecycle, deleted, "deleted", 1)
    point = ("m", 0.5, 1, 0)
    calls = [(run_id, [point]), ("no-such-run", [point]), (deleted, [point])]
    outcomes = _grouped(store, calls + [(run_id, [point])] * sent_twice)
    assert outcomes[0] is None and outcomes[3:] == [None] * sent_twice
    assert isinstance(outcomes[1], MlflowError)
    assert outcomes[1].error_code == "RESOURCE_DOES_NOT_EXIST"
    assert isinstance(outcomes[2], MlflowError)
    assert outcomes[2].error_code == "INVALID_PARAMETER_VALUE"
    assert _series(store, run_id)[0] == [("m", 1, 0, 0, 0.5)]
    assert _series(store, deleted) == ([], [])


@pytest.mark.postgres
def test_postgresql_grouped_batches_with_params_and_tags_leave_what_one_by_one_writes_leave(
    pg_run: tuple[Database, str],
) -> None:
    """Params, tags (a tag set twice keeps the later value) and metrics of several calls."""
    store, _ = pg_run
    a_calls = [
        {
            "metrics": [("m", 1.0, 1, 0)],
            "params": [("lr", "0.1"), ("depth", "3")],
            "tags": [("t", "1")],
        },
        {"params": [("seed", "7")], "tags": [("t", "2"), ("u", "x")]},
        {"metrics": [("m", 2.0, 2, 1)], "params": [("lr", "0.1")]},
    ]
    b_calls = [{"params": [("lr", "0.2")], "tags": [("t", "b")]}]
    params, tags, _ = _group_and_one_by_one(store, a_calls, b_calls)
    assert params == [("depth", "3"), ("lr", "0.1"), ("seed", "7")]
    assert tags == [("t", "2"), ("u", "x")]


@pytest.mark.postgres
def test_postgresql_grouped_batch_with_a_changed_param_is_refused_alone(
    pg_run: tuple[Database, str],
) -> None:
    """A param logged before with another value refuses its call, which writes nothing, and no
    one else's. One param logged by two calls of a group: every call runs alone, in order."""
    from labtrack.store import runs

    store, run_id = pg_run
    other = _new_run(store, "other")
    store.run_write(runs.log_batch, run_id, params=[("p", "1")])
    outcomes = _grouped(
        store,
        [
            (run_id, {"params": [("p", "2")], "metrics": [("m", 1.0, 1, 0)]}),
            (run_id, {"tags": [("t", "x")]}),
            (other, {"params": [("p", "3")]}),
        ],
    )
    assert isinstance(outcomes[0], MlflowError)
    assert "Param with key='p' was already logged with value='1'" in str(outcomes[0])
    assert outcomes[1:] == [None, None]
    params, tags, history, _ = _run_state(store, run_id)
    assert params == [("p", "1")] and ("t", "x") in tags and history == []
    assert _run_state(store, other)[0] == [("p", "3")]

    outcomes = _grouped(
        store,
        [
            (other, {"params": [("p", "3")], "metrics": [("m", 1.0, 1, 0)]}),
            (other, {"params": [("p", "5")]}),
        ],
    )
    assert outcomes[0] is None and isinstance(outcomes[1], MlflowError)
    params, _, history, _ = _run_state(store, other)
    assert params == [("p", "3")] and history == [("m", 0)]


@pytest.mark.postgres
def test_postgresql_concurrent_small_metric_writes_share_statements(
    pg_run: tuple[Database, str], monkeypatch
) -> None:
    """Through Database.write: small metrics-only batches are grouped; others never wait."""
    import asyncio

    from labtrack.store import runs

    store, _ = pg_run
    run_ids = [_new_run(store, f"c{i}") for i in range(4)]
    group = runs.log_batch.pg_group
    sizes: list[int] = []

    def counting(conn: Conn, calls: list) -> list[bool]:
        sizes.append(len(calls))
        return runs._pg_log_batches_together(conn, calls)

    monkeypatch.setattr(group, "write_together", counting)
    big = [("big", 1.0, 1, step) for step in range(runs.GROUPED_ROWS + 1)]
    assert group.accepts(run_ids[0], metrics=[("m", 1.0, 1, 0)])
    assert not group.accepts(run_ids[0], metrics=big)
    assert group.accepts(run_ids[0], metrics=[("m", 1.0, 1, 0)], params=[("p", "1")])
    assert not group.accepts(run_ids[0], tags=[(runs.RUN_NAME_TAG, "renamed")])
    assert not group.accepts(run_ids[0], metrics=[("m", 1.0, 1, 0)], model_metrics=[("x",)])

    async def write_all() -> None:
        writes = [
            store.write(runs.log_batch, run_ids[i % 4], metrics=[("m", float(i), 1, i)])
            for i in range(400)
        ]
        writes.append(store.write(runs.log_batch, run_ids[0], metrics=big))
        await asyncio.gather(*writes)

    asyncio.run(write_all())
    assert sum(sizes) >= 2 and max(sizes) > 1
    for i, run_id in enumerate(run_ids):
        history, latest = _series(store, run_id)
        assert len([h for h in history if h[0] == "m"]) == 100
        assert ("m", float(396 + i), 1, 396 + i, 0) in latest


def test_sqlite_log_batch_of_a_new_run_writes_few_pages(tmp_path) -> None:
    """A run's metrics go to a few pages of each table, not one page per metric key.

    SQLite's WAL takes every page a commit dirties; an index ordered by (key, value) put each of
    a run's 100 metrics on its own page (schema migration 4 dropped it on SQLite).
    """
    import random

    from labtrack.store import experiments, runs
    from labtrack.store.migrate import upgrade

    store = Database(f"sqlite:///{tmp_path}/t.db")
    try:
        upgrade(store)
        store.run_write(experiments.ensure_default, "/tmp/art", 0)

        def one_run(i: int) -> None:
            run = store.run_write(
                runs.create, experiment_id=0, user_id="u", run_name=f"r{i}", start_time=i, tags=[]
            )
            metrics = [(f"m{k}", random.random(), i, 0) for k in range(100)]
            store.run_write(runs.log_batch, run["info"]["run_uuid"], metrics=metrics)

        for i in range(300):
            one_run(i)
        wal = tmp_path / "t.db-wal"
        side = store.connect()
        for _ in range(100):  # busy while the server's checkpointer thread is at work
            side.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # outside any transaction
            if wal.stat().st_size == 0:
                break
            time.sleep(0.02)
        side.raw.close()
        assert wal.stat().st_size == 0
        one_run(300)
        page_size = store.run_read(lambda c: c.scalar("PRAGMA page_size"))
        frames = wal.stat().st_size // (page_size + 24)
        assert frames < 40, f"one run with 100 metrics wrote {frames} pages"
    finally:
        store.close()


@pytest.mark.postgres
def test_postgresql_runs_page_walks_the_experiment_index_newest_first(
    pg_run: tuple[Database, str],
) -> None:
    """A page of runs (one experiment, active, newest first) reads the experiment's index
    backwards and stops after the page. ``= ANY(array)`` for the one experiment and stage made
    PostgreSQL read and sort every run of the experiment for each page."""
    from labtrack.store import runs

    store, _ = pg_run
    statements: list[tuple[str, list]] = []

    def plan(conn: Conn) -> str:
        conn.execute(
            "INSERT INTO runs (run_uuid, experiment_id, start_time, artifact_uri)"
            " SELECT md5(i::text), 0, i, 'a' FROM generate_series(1, 5000) i"
        )
        conn.execute("ANALYZE runs")
        first_query = conn.all

        def recording_all(sql: str, args: tuple | list = ()) -> list:
            if not statements:
                statements.append((sql, list(args)))
            return first_query(sql, args)

        conn.all = recording_all  # type: ignore[method-assign]
        try:
            runs.search(
                conn,
                experiment_ids=[0],
                filter_string=None,
                order_by=[],
                view_type="ACTIVE_ONLY",
                max_results=100,
                page_token=None,
            )
        finally:
            del conn.all  # the thread keeps this Conn: back to the class's method
        sql, args = statements[0]
        return "\n".join(row[0] for row in first_query("EXPLAIN ANALYZE " + sql, args))

    text = store.run_read(plan)
    assert "Index Scan Backward using runs_by_experiment" in text, text
    assert "rows=5001 loops" not in text and "Seq Scan" not in text, text


@pytest.mark.postgres
def test_postgresql_chart_reads_seek_each_step_even_with_a_generic_plan(
    pg_run: tuple[Database, str],
) -> None:
    """bulk-interval's reads must not depend on the planner guessing a series' length. After
    five calls PostgreSQL may reuse a generic plan made for the average series; among many
    short series, that plan walked a 10,000,000-point series from its first step to reach the
    middle (1.2 s) and turned min(step) into an aggregate over the whole window (3 s)."""
    from labtrack.store import metrics as metric_store
    from labtrack.store import runs

    store, run_id = pg_run
    store.run_write(runs.log_batch, run_id, metrics=[("c", 0.5, 1, s) for s in range(3000)])

    def generic_plan(conn: Conn, sql: str, args: tuple) -> str:
        numbered = iter(range(1, len(args) + 1))
        text = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
        values = ", ".join(f"'{a}'" for a in args)
        conn.raw.execute(f"PREPARE q AS {text}")
        try:
            return "\n".join(r[0] for r in conn.raw.execute(f"EXPLAIN EXECUTE q({values})"))
        finally:
            conn.raw.execute("DEALLOCATE q")

    def plans(conn: Conn) -> tuple[str, str]:
        # Many short series beside the long one: the average series is a few points.
        conn.execute(
            "INSERT INTO metrics (run_pk, key, timestamp, step, is_nan, value)"
            " SELECT r, 'c', 1, s, 0, 0.5 FROM generate_series(1000, 4999) r,"
            " generate_series(0, 2) s"
        )
        conn.execute("ANALYZE metrics")
        conn.raw.execute("SET plan_cache_mode = force_generic_plan")
        run_pk = conn.scalar("SELECT run_pk FROM runs WHERE run_uuid = ?", (run_id,))
        points_sql, points_args = metric_store._points_at_steps(conn, run_pk, "c", [5, 1500], 9)
        ends = "SELECT step FROM metrics WHERE run_pk = ? AND key = ? AND step >= ? ORDER BY step"
        return (
            generic_plan(conn, points_sql, points_args),
            generic_plan(conn, f"{ends} LIMIT 1", (run_pk, "c", 1000)),
        )

    points_plan, ends_plan = store.run_read(plans)
    assert "Merge Join" not in points_plan and "Nested Loop" in points_plan, points_plan
    assert "Limit" in ends_plan and "Aggregate" not in ends_plan, ends_plan
