"""Search filter and order_by compilation.

Most tests execute the compiled SQL against an in-memory SQLite database seeded with a few runs
and experiments and assert which rows match or in what order: that checks semantics, not SQL
spelling. Property tests check that arbitrary input fails only with MlflowError, that user text
never reaches the SQL text, and that compiled filters agree with a small reference evaluator.
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labtrack.store import filters
from labtrack.store.filters import (
    Sql,
    experiment_filter,
    experiment_order,
    run_filter,
    run_order,
)
from labtrack.store.schema import TRACKING, statements
from labtrack.wire import MlflowError

NAN = float("nan")

# run_uuid -> everything the reference evaluator needs; also what gets inserted.
RUNS = {
    "r1": {
        "name": "alpha",
        "user_id": "alice",
        "status": "FINISHED",
        "start_time": 100,
        "end_time": 200,
        "artifact_uri": "s3://bucket/1/artifacts",
        "metrics": {"acc": 0.9, "loss": 0.25},
        "params": {"lr": "0.1", "opt": "adam"},
        "tags": {"team": "ML", "my key": "v 1", "mlflow.runName": "alpha"},
        "datasets": [("train", "d1", "training")],
    },
    "r2": {
        "name": "beta",
        "user_id": "bob",
        "status": "RUNNING",
        "start_time": 200,
        "end_time": None,
        "artifact_uri": "s3://bucket/2/artifacts",
        "metrics": {"acc": 0.5, "loss": NAN},
        "params": {"lr": "0.01"},
        "tags": {"team": "ml"},
        "datasets": [("train", "d2", "eval"), ("test", "d3", None)],
    },
    "r3": {
        "name": "Gamma",
        "user_id": "alice",
        "status": "FAILED",
        "start_time": 300,
        "end_time": 400,
        "artifact_uri": "s3://bucket/3/artifacts",
        "metrics": {"acc": -1.0},
        "params": {},
        "tags": {"it's": "quote'd", "a.b": "dotted"},
        "datasets": [],
    },
    "r4": {
        "name": "alpha",
        "user_id": "carol",
        "status": "FINISHED",
        "start_time": 300,
        "end_time": 350,
        "artifact_uri": "s3://bucket/4/artifacts",
        "metrics": {"loss": 2.0},
        "params": {"opt": "sgd", "a b": "spaced"},
        "tags": {"team": "DS"},
        "datasets": [],
    },
}

# experiment_id -> (name, creation_time, last_update_time, tags)
EXPERIMENTS = {
    1: ("Default", 1000, 5000, {}),
    2: ("vision-models", 2000, 3000, {"team": "cv", "prio": "high"}),
    3: ("NLP_models", 3000, 4000, {"team": "nlp"}),
    10: ("x'q", 3000, 3000, {"note": "it's"}),
}


@functools.cache
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("PRAGMA case_sensitive_like=ON")
    for sql in statements(TRACKING[0], "sqlite"):
        conn.execute(sql)
    for exp_id, (name, created, updated, tags) in EXPERIMENTS.items():
        conn.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, "
            "last_update_time) VALUES (?, ?, ?, ?, ?)",
            (exp_id, name, f"/a/{exp_id}", created, updated),
        )
        for key, value in tags.items():
            conn.execute("INSERT INTO experiment_tags VALUES (?, ?, ?)", (exp_id, key, value))
    for run_id, run in RUNS.items():
        cur = conn.execute(
            "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, "
            "end_time, artifact_uri) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
            (run_id, run["name"], run["user_id"], run["status"], run["start_time"])
            + (run["end_time"], run["artifact_uri"]),
        )
        pk = cur.lastrowid
        for key, value in run["metrics"].items():
            is_nan = math.isnan(value)
            conn.execute(
                "INSERT INTO latest_metrics VALUES (?, ?, ?, 0, 0, ?)",
                (pk, key, 0.0 if is_nan else value, int(is_nan)),
            )
        for key, value in run["params"].items():
            conn.execute("INSERT INTO params VALUES (?, ?, ?)", (pk, key, value))
        for key, value in run["tags"].items():
            conn.execute("INSERT INTO run_tags VALUES (?, ?, ?)", (pk, key, value))
        for name, digest, context in run["datasets"]:
            row = conn.execute(
                "SELECT dataset_pk FROM datasets WHERE name = ? AND digest = ?", (name, digest)
            ).fetchone()
            if row is None:
                row = (
                    conn.execute(
                        "INSERT INTO datasets (experiment_id, name, digest, source_type, source) "
                        "VALUES (1, ?, ?, 'local', 'x')",
                        (name, digest),
                    ).lastrowid,
                )
            conn.execute("INSERT INTO run_inputs VALUES (?, ?)", (pk, row[0]))
            if context is not None:
                conn.execute(
                    "INSERT INTO input_tags VALUES (?, ?, 'mlflow.data.context', ?)",
                    (pk, row[0], context),
                )
    return conn


def check_shape(sql: Sql) -> None:
    assert sql.sql.count("?") == len(sql.params)


def runs_matching(filter_string: str | None) -> set[str]:
    compiled = run_filter(filter_string, "sqlite")
    if compiled is None:
        return set(RUNS)
    check_shape(compiled)
    rows = db().execute(f"SELECT r.run_uuid FROM runs r WHERE {compiled.sql}", compiled.params)
    return {row[0] for row in rows}


def ordered_query(
    select: str, terms: list[Sql], tie_breakers: tuple[str, ...] = ()
) -> tuple[str, tuple]:
    """``select`` plus the terms' joins and ORDER BY, as runs.search assembles them."""
    joins = [t.join for t in terms if t.join is not None]
    for fragment in [*terms, *joins]:
        check_shape(fragment)
    clause = ", ".join([t.sql for t in terms] + list(tie_breakers)) or "1"
    sql = f"{select} {' '.join(j.sql for j in joins)} ORDER BY {clause}"
    return sql, tuple(p for fragment in [*joins, *terms] for p in fragment.params)


def runs_ordered(order_by: list[str]) -> list[str]:
    terms = run_order(order_by, "sqlite")
    sql, params = ordered_query(
        "SELECT r.run_uuid FROM runs r", terms, ("r.start_time DESC", "r.run_uuid ASC")
    )
    return [row[0] for row in db().execute(sql, params)]


def experiments_matching(filter_string: str) -> set[int]:
    compiled = experiment_filter(filter_string, "sqlite")
    assert compiled is not None
    check_shape(compiled)
    rows = db().execute(
        f"SELECT e.experiment_id FROM experiments e WHERE {compiled.sql}", compiled.params
    )
    return {row[0] for row in rows}


def experiments_ordered(order_by: list[str]) -> list[int]:
    terms = experiment_order(order_by, "sqlite")
    clause = ", ".join([t.sql for t in terms] + ["e.experiment_id ASC"])
    params = tuple(p for t in terms for p in t.params)
    sql = f"SELECT e.experiment_id FROM experiments e ORDER BY {clause}"
    return [row[0] for row in db().execute(sql, params)]


def error_of(fn, *args) -> str:
    with pytest.raises(MlflowError) as info:
        fn(*args)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.status == 400
    return info.value.message


# ----------------------------------------------------------------------------------------------
# Run filters: semantics


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        # metrics: numeric, NaN only satisfies !=, runs without the metric never match
        ("metrics.acc > 0.6", {"r1"}),
        ("metrics.acc >= 0.5", {"r1", "r2"}),
        ("metric.acc = -1", {"r3"}),
        ("metrics.acc > -1e1", {"r1", "r2", "r3"}),
        ("metrics.acc<=.5", {"r2", "r3"}),
        ("metrics.loss != 0.25", {"r2", "r4"}),
        ("metrics.loss = 0", set()),
        ("metrics.loss < 1", {"r1"}),
        ("metrics.loss > 1", {"r4"}),
        ("metrics.1x > 0", set()),
        # params and tags
        ("params.lr = '0.1'", {"r1"}),
        ("params.lr != '0.1'", {"r2"}),
        ("param.lr LIKE '0.%'", {"r1", "r2"}),
        ("parameters.opt IS NULL", {"r2", "r3"}),
        ("parameter.opt is not null", {"r1", "r4"}),
        ("params.`a b` = 'spaced'", {"r4"}),
        ('params."a b" = "spaced"', {"r4"}),
        ("tags.team = 'ml'", {"r2"}),
        ("tags.team LIKE 'm%'", {"r2"}),
        ("tags.team ILIKE 'M%'", {"r1", "r2"}),
        ("tag.team ilike 'ds'", {"r4"}),
        ("tags.`my key` = 'v 1'", {"r1"}),
        ("tags.\"it's\" = 'quote''d'", {"r3"}),
        ("tags.`it's` = \"quote'd\"", {"r3"}),
        ("tags.`it's` = 'quote\\'d'", {"r3"}),
        ("tags.a.b = 'dotted'", {"r3"}),
        ("tags.`a.b` = 'dotted'", {"r3"}),
        ("tags.mlflow.runName = 'alpha'", {"r1"}),
        ("tags.team IS NULL", {"r3"}),
        ("tags.nope != 'x'", set()),
        # string attributes
        ("attributes.status = 'FINISHED'", {"r1", "r4"}),
        ("status != 'FINISHED'", {"r2", "r3"}),
        ("attribute.status LIKE 'F%'", {"r1", "r3", "r4"}),
        ("attr.status ILIKE 'run%'", {"r2"}),
        ("run_name = 'alpha'", {"r1", "r4"}),
        ("`Run name` = 'Gamma'", {"r3"}),
        ("\"run name\" = 'beta'", {"r2"}),
        ("attributes.`Run Name` ILIKE 'gamma'", {"r3"}),
        ("attr.run_name LIKE 'g%'", set()),
        ("run_id IN ('r1', 'r3')", {"r1", "r3"}),
        ('run_id in ("r2",)', {"r2"}),
        ("attributes.run_id NOT IN ('r1')", {"r2", "r3", "r4"}),
        ('run.run_id = "r2"', {"r2"}),
        ("user_id = 'alice'", {"r1", "r3"}),
        ("artifact_uri LIKE 's3://bucket/1%'", {"r1"}),
        # numeric attributes; a NULL end_time matches nothing
        ("start_time >= 300", {"r3", "r4"}),
        ("created < 200", {"r1"}),
        ("Created = 200", {"r2"}),
        ("end_time > 300", {"r3", "r4"}),
        ("end_time != 200", {"r3", "r4"}),
        ("attributes.start_time > 1.5e2", {"r2", "r3", "r4"}),
        ("start_time < 99999999999999999999999", {"r1", "r2", "r3", "r4"}),
        # datasets: true when any of the run's inputs matches
        ("datasets.name = 'train'", {"r1", "r2"}),
        ("datasets.digest IN ('d3')", {"r2"}),
        ("dataset.context = 'eval'", {"r2"}),
        ("datasets.context LIKE '%ing'", {"r1"}),
        ("datasets.context ILIKE 'EVAL'", {"r2"}),
        ("datasets.name NOT IN ('train')", {"r2"}),
        ("datasets.name != 'train'", {"r2"}),
        # empty filters
        (None, {"r1", "r2", "r3", "r4"}),
        ("", {"r1", "r2", "r3", "r4"}),
    ],
)
def test_run_filter_matches(filter_string, expected):
    assert runs_matching(filter_string) == expected


def test_blank_filter_is_none():
    assert run_filter(None, "sqlite") is None
    assert run_filter("  \n\t", "sqlite") is None
    assert experiment_filter("", "postgresql") is None


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > -5 and params.lr is null", {"r3"}),
        ("params.lr = '0.1' OR tags.team = 'DS'", {"r1", "r4"}),
        # AND binds tighter than OR, on either side
        ("status = 'RUNNING' OR status = 'FAILED' AND user_id = 'bob'", {"r2"}),
        ("user_id = 'alice' AND status = 'FAILED' OR status = 'RUNNING'", {"r2", "r3"}),
        ("(status = 'RUNNING' OR status = 'FAILED') AND user_id = 'alice'", {"r3"}),
        ("status = 'FAILED' AND (user_id = 'bob' OR user_id = 'alice')", {"r3"}),
        ("((tags.team = 'ml') or (tags.team = 'DS')) AnD start_time > 150", {"r2", "r4"}),
        ("(((metrics.acc > 0)))", {"r1", "r2"}),
        ("tags.team ILIKE 'ml' OR tags.team ILIKE 'ds' OR run_id = 'r3'", set(RUNS)),
        ("metrics.acc > 0 AND metrics.acc < 0.6 AND params.lr = '0.01'", {"r2"}),
        ("metrics.acc>0 AND(params.lr='0.1'OR params.lr='0.01')", {"r1", "r2"}),
    ],
)
def test_boolean_structure(filter_string, expected):
    assert runs_matching(filter_string) == expected


# ----------------------------------------------------------------------------------------------
# Run filters: SQL shape


def test_metric_sql_shape():
    assert run_filter("metrics.acc > 0.5", "sqlite") == Sql(
        "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_pk = r.run_pk AND m.key = ? "
        "AND m.is_nan = 0 AND m.value > ?)",
        ("acc", 0.5),
    )
    not_equal = run_filter("metrics.acc != 1", "postgresql")
    assert "m.is_nan = 1" in not_equal.sql and not_equal.params == ("acc", 1.0)


def test_tag_null_and_ilike_per_dialect():
    assert run_filter("tags.x IS NULL", "sqlite") == Sql(
        "NOT EXISTS (SELECT 1 FROM run_tags t WHERE t.run_pk = r.run_pk AND t.key = ?)", ("x",)
    )
    assert "lower(t.value) LIKE lower(?)" in run_filter("tags.x ILIKE 'a'", "sqlite").sql
    assert "t.value ILIKE ?" in run_filter("tags.x ILIKE 'a'", "postgresql").sql
    assert run_filter("status ILIKE 'a'", "postgresql") == Sql("r.status ILIKE ?", ("a",))


def test_or_is_parenthesised_and_params_in_order():
    sql = run_filter("run_id IN ('a', 'b') OR datasets.context = 'train'", "sqlite")
    assert sql.sql.startswith("(r.run_uuid IN (?, ?) OR EXISTS (")
    assert sql.sql.endswith(")")
    assert sql.params == ("a", "b", "mlflow.data.context", "train")


def test_unknown_dialect_is_a_programming_error():
    with pytest.raises(ValueError):
        run_filter("tags.x = 'a'", "oracle")
    with pytest.raises(ValueError):
        run_order(["start_time"], "oracle")


def test_numbers_are_typed():
    assert run_filter("start_time > 5", "sqlite").params == (5,)
    assert run_filter("start_time > 5.5", "sqlite").params == (5.5,)
    assert run_filter("metrics.x > 5", "sqlite").params == ("x", 5.0)
    huge = run_filter("start_time > 99999999999999999999", "sqlite").params[0]
    assert isinstance(huge, float)


# ----------------------------------------------------------------------------------------------
# Run filters: errors


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("metrics.acc > '0.5'", "Expected numeric value type for metric 'acc'. Found '0.5'"),
        ("start_time > '1'", "Expected numeric value type for attribute 'start_time'"),
        ("params.lr = 0.1", "Expected a quoted string value for parameter 'lr'"),
        ("status = 1", "Expected a quoted string value for attribute 'status'"),
        ("datasets.name = 1", "Expected a quoted string value for dataset 'name'"),
        ("tags.x = abc", "value 'abc' is not quoted"),
        ("metrics.acc LIKE '%'", "Invalid comparator 'LIKE' for metric 'acc'"),
        ("start_time ILIKE '1'", "Invalid comparator 'ILIKE' for attribute 'start_time'"),
        ("status > 'a'", "Invalid comparator '>' for attribute 'status'"),
        ("tags.x < 'a'", "Invalid comparator '<' for tag 'x'"),
        ("datasets.name > 'a'", "Invalid comparator '>' for dataset 'name'"),
        ("metrics.x == 1", "Invalid comparator '=='"),
        ("metrics.x <> 1", "Invalid comparator '<>'"),
        ("tags.x NOT LIKE 'a'", "Invalid comparator 'NOT LIKE'"),
        ("metrics.acc IS NULL", "only supported for parameters and tags, not for metric 'acc'"),
        ("end_time IS NOT NULL", "only supported for parameters and tags, not for attribute"),
        ("datasets.name IS NULL", "IS NULL / IS NOT NULL is only supported"),
        ("status IN ('a')", "Only ['run_id'] attributes support comparison with a list"),
        ("tags.x IN ('a')", "Only ['run_id'] attributes support comparison with a list"),
        ("run_id = ('a')", "a parenthesised list is only allowed after IN or NOT IN"),
        ("run_id IN 'a'", "expected a parenthesised list of strings after IN at position 10"),
        ("run_id NOT IN ()", "expected a non-empty list after NOT IN"),
        ("run_id IN (1)", "expected a quoted string in the list, found '1'"),
        ("run_id IN ('a' 'b')", "expected ',' or ')' in the list, found ''b''"),
        ("foo.x = 'a'", "Invalid entity type 'foo'"),
        ("Metrics.x > 1", "Invalid entity type 'Metrics'"),
        ("x = 'a'", "Invalid attribute key 'x' specified"),
        ("START_TIME > 1", "Invalid attribute key 'START_TIME'"),
        ("mlflow.runName = 'a'", "Invalid entity type 'mlflow'"),
        ("datasets.foo = 'a'", "Invalid dataset key 'foo'"),
        ("tags.x = 'a' OR", "found end of input at position 15"),
        ("tags.x = 'a' AND AND tags.y = 'b'", "found 'AND' at position 17"),
        ("AND tags.x = 'a'", "found 'AND' at position 0"),
        ("metrics.x > 1 metrics.y > 2", "expected AND, OR or the end of the filter"),
        ("(tags.x = 'a'", "missing ')' for the '(' opened at position 0"),
        ("tags.x = 'a')", "unbalanced ')' at position 12"),
        ("()", "found ')' at position 1"),
        ("tags.x = 'abc", "unterminated '-quoted text at position 9"),
        ("tags.`x = 'a'", "unterminated `-quoted text at position 5"),
        ("tags.x ~ 'a'", "unexpected character '~' at position 7"),
        ("tags.x = 'a'; DROP TABLE runs", "unexpected character ';' at position 12"),
        ("tags.x 'a'", "expected a comparator"),
        ("tags.x", "expected a comparator"),
        ("tags.x IS 'a'", "expected IS NULL or IS NOT NULL"),
        ("tags.x NOT 'a'", "expected IN, LIKE or ILIKE after NOT"),
        ("tags. = 'a'", "expected a key after '.'"),
        ("tags.a.`b` = 'x'", "a quoted key must be the whole key"),
        ("metrics.x > 1.0.0", "found '.0'"),
        ("metrics . x > 1", "unexpected character '.'"),
        ("tags.x = 'a\x00'", "NUL character"),
    ],
)
def test_run_filter_errors(filter_string, message):
    assert message in error_of(run_filter, filter_string, "sqlite")


def test_syntax_errors_quote_the_filter():
    message = error_of(run_filter, "tags.x = 'a' OR", "sqlite")
    assert message.startswith("Invalid filter 'tags.x = 'a' OR': ")


def test_limits_give_clean_errors():
    deep = "(" * 60 + "tags.x = 'a'" + ")" * 60
    assert "nested deeper than" in error_of(run_filter, deep, "sqlite")
    many = " OR ".join(["tags.x = 'a'"] * (filters.MAX_COMPARISONS + 1))
    assert "comparisons" in error_of(run_filter, many, "sqlite")
    values = ", ".join(["'a'"] * (filters.MAX_LIST_VALUES + 1))
    assert "IN lists" in error_of(run_filter, f"run_id IN ({values})", "sqlite")
    # right at the limits the SQL still runs on SQLite
    assert runs_matching(" OR ".join(["tags.x = 'a'"] * filters.MAX_COMPARISONS)) == set()
    nested = "(" * filters.MAX_NESTING + "run_id = 'r1'" + ")" * filters.MAX_NESTING
    assert runs_matching(nested) == {"r1"}


# ----------------------------------------------------------------------------------------------
# Run ordering


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        # runs without the metric come last in both directions; NaN sorts after numbers
        (["metrics.acc DESC"], ["r1", "r2", "r3", "r4"]),
        (["metrics.acc ASC"], ["r3", "r2", "r1", "r4"]),
        (["metric.acc"], ["r3", "r2", "r1", "r4"]),
        (["metrics.loss asc"], ["r1", "r4", "r2", "r3"]),
        (["metrics.loss Desc"], ["r4", "r1", "r2", "r3"]),
        # params / tags: missing last, then the caller's tie-breakers (start_time DESC, run_id)
        (["params.opt"], ["r1", "r4", "r3", "r2"]),
        (["params.opt DESC"], ["r4", "r1", "r3", "r2"]),
        (["tags.team"], ["r4", "r1", "r2", "r3"]),
        (["tags.team DESC"], ["r2", "r1", "r4", "r3"]),
        (["params.`a b`"], ["r4", "r3", "r2", "r1"]),
        # attributes; a NULL end_time is last both ways
        (["end_time DESC"], ["r3", "r4", "r1", "r2"]),
        (["attributes.end_time"], ["r1", "r4", "r3", "r2"]),
        (["start_time ASC"], ["r1", "r2", "r3", "r4"]),
        (["created DESC"], ["r3", "r4", "r2", "r1"]),
        (["Created"], ["r1", "r2", "r3", "r4"]),
        (["attributes.run_name", "user_id desc"], ["r3", "r4", "r1", "r2"]),  # binary: G < a
        (["status", "metrics.acc desc"], ["r3", "r1", "r4", "r2"]),
        (["run_id DESC"], ["r4", "r3", "r2", "r1"]),
        (["artifact_uri DESC"], ["r4", "r3", "r2", "r1"]),
        ([], ["r3", "r4", "r2", "r1"]),
    ],
)
def test_run_order(order_by, expected):
    assert runs_ordered(order_by) == expected


def test_run_order_terms():
    assert run_order(None, "sqlite") == []
    terms = run_order(["tags.`a b` DESC", "metrics.m"], "postgresql")
    tag_join = Sql("LEFT JOIN run_tags o_t0 ON o_t0.run_pk = r.run_pk AND o_t0.key = ?", ("a b",))
    metric_join = Sql(
        "LEFT JOIN latest_metrics o_m2 ON o_m2.run_pk = r.run_pk AND o_m2.key = ?", ("m",)
    )
    assert terms == [
        Sql("(o_t0.value IS NULL) ASC", join=tag_join, first_rank="o_t0.value IS NOT NULL"),
        Sql("o_t0.value DESC"),
        Sql("COALESCE(o_m2.is_nan, 2) ASC", join=metric_join, first_rank="o_m2.is_nan = 0"),
        Sql("o_m2.value ASC"),
    ]
    assert run_order(["status desc"], "sqlite") == [Sql("r.status DESC")]


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        (["metrics.acc up"], "Invalid ordering key in order_by clause 'metrics.acc up'"),
        (["Run name"], "Invalid ordering key in order_by clause 'Run name'"),
        ([""], "Invalid order_by clause ''"),
        (["metrics.acc desc extra"], "Invalid order_by clause 'metrics.acc desc extra'"),
        (["metrics.acc, params.x"], "found ',' at position 11"),
        (["datasets.name"], "Invalid order_by entity type 'dataset'"),
        (["`Run name`"], "Invalid attribute key 'Run name'"),
        (["foo"], "Invalid attribute key 'foo'"),
        (["bar.x"], "Invalid entity type 'bar'"),
        (["metrics.acc", "metrics.acc DESC"], "duplicate fields"),
        (["created", "start_time"], "duplicate fields"),
        (["tags.`x"], "unterminated"),
    ],
)
def test_run_order_errors(order_by, message):
    assert message in error_of(run_order, order_by, "sqlite")


# ----------------------------------------------------------------------------------------------
# Experiments


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'Default'", {1}),
        ("attribute.name LIKE '%models'", {2, 3}),
        ("name ILIKE 'nlp%'", {3}),
        ("name != 'Default'", {2, 3, 10}),
        ("name = 'x''q'", {10}),
        ("tags.team = 'cv'", {2}),
        ("tag.team IS NULL", {1, 10}),
        ("tags.team IS NOT NULL", {2, 3}),
        ('tags.note = "it\'s"', {10}),
        ("tags.team ILIKE 'CV' OR tags.prio = 'high'", {2}),
        ("creation_time >= 2000 AND last_update_time < 4000", {2, 10}),
        ("creation_time = 3000", {3, 10}),
        ("experiment_id = '2'", {2}),
        ("experiment_id IN ('1', '3')", {1, 3}),
        ("experiment_id NOT IN ('1')", {2, 3, 10}),
        ("experiment_id != '10'", {1, 2, 3}),
        ("experiment_id = '99999999999'", set()),
        ("tags.team = 'cv' OR name = 'Default'", {1, 2}),
        ("(tags.team = 'cv' OR name = 'Default') AND creation_time > 1000", {2}),
    ],
)
def test_experiment_filter_matches(filter_string, expected):
    assert experiments_matching(filter_string) == expected


def test_experiment_sql_shape():
    assert experiment_filter("experiment_id IN ('1', '2')", "postgresql") == Sql(
        "e.experiment_id IN (?, ?)", (1, 2)
    )
    assert experiment_filter("tags.a IS NOT NULL", "sqlite") == Sql(
        "EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id "
        "AND t.key = ?)",
        ("a",),
    )


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("attributes.name = 'a'", "Invalid entity type 'attributes'"),
        ("metrics.x > 1", "Invalid entity type 'metrics'"),
        ("name IN ('a')", "Only ['experiment_id'] attributes support comparison with a list"),
        ("experiment_id = 'abc'", "it must be a valid integer"),
        ("experiment_id IN ('1', 'x')", "Invalid value 'x' for attribute 'experiment_id'"),
        ("experiment_id > '1'", "Invalid comparator '>' for attribute 'experiment_id'"),
        ("experiment_id = 1", "Expected a quoted string value for attribute 'experiment_id'"),
        ("creation_time > 1.5", "Invalid value for attribute 'creation_time': '1.5'"),
        ("creation_time > '1'", "Expected numeric value type for attribute 'creation_time'"),
        ("name IS NULL", "IS NULL / IS NOT NULL is only supported for tags, not for attribute"),
        ("name > 'a'", "Invalid comparator '>' for attribute 'name'"),
        ("lifecycle_stage = 'active'", "Invalid attribute key 'lifecycle_stage'"),
        ("tags.x IN ('a')", "support comparison with a list"),
    ],
)
def test_experiment_filter_errors(filter_string, message):
    assert message in error_of(experiment_filter, filter_string, "sqlite")


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["name"], [1, 3, 2, 10]),
        (["name DESC"], [10, 2, 3, 1]),
        (["creation_time DESC"], [3, 10, 2, 1]),
        (["last_update_time", "name DESC"], [10, 2, 3, 1]),
        (["attribute.experiment_id desc"], [10, 3, 2, 1]),
        (None, [1, 2, 3, 10]),
    ],
)
def test_experiment_order(order_by, expected):
    assert experiments_ordered(order_by) == expected


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        (["tags.team"], "Invalid order_by entity type 'tag'"),
        (["attributes.name"], "Invalid entity type 'attributes'"),
        (["foo"], "Invalid attribute key 'foo'"),
        (["name up"], "Invalid ordering key in order_by clause 'name up'"),
    ],
)
def test_experiment_order_errors(order_by, message):
    assert message in error_of(experiment_order, order_by, "sqlite")


# ----------------------------------------------------------------------------------------------
# Property tests

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SOUP = [
    "metrics.acc", "params.lr", "tags.team", "tags.`a b`", 'tags."x"', "datasets.name",
    "dataset.context", "status", "run_id", "start_time", "end_time", "name", "experiment_id",
    "creation_time", "attribute.name", "tag.x", "foo.bar", "`Run name`",
    "=", "!=", ">", ">=", "<", "<=", "==", "<>", "LIKE", "ilike", "IN", "NOT", "IS", "NULL",
    "AND", "or", "(", ")", ",", ".", "'v'", '"v"', "'%a_'", "''", "1", "-2.5e3", ".5", "1e999",
    "'", '"', "`", "\\", ";", "-", "x", "9" * 30,
]  # fmt: skip


def run_everything(text: str) -> None:
    """Compile ``text`` as every kind of filter and order_by; run whatever compiles."""
    for compile_filter, table in ((run_filter, "runs r"), (experiment_filter, "experiments e")):
        for dialect in ("sqlite", "postgresql"):
            try:
                sql = compile_filter(text, dialect)
            except MlflowError:
                continue
            if sql is not None:
                check_shape(sql)
                if dialect == "sqlite":
                    db().execute(f"SELECT 1 FROM {table} WHERE {sql.sql}", sql.params).fetchall()
    for compile_order, table in ((run_order, "runs r"), (experiment_order, "experiments e")):
        try:
            terms = compile_order([text], "sqlite")
        except MlflowError:
            continue
        sql, params = ordered_query(f"SELECT 1 FROM {table}", terms)
        db().execute(sql, params).fetchall()


@FAST
@given(st.text(max_size=60))
def test_random_text_only_raises_mlflow_error(text):
    run_everything(text)


@FAST
@given(st.lists(st.sampled_from(SOUP), max_size=12), st.sampled_from([" ", ""]))
def test_token_soup_only_raises_mlflow_error(tokens, sep):
    run_everything(sep.join(tokens))


# Keys and values carry a marker that must never show up in the SQL text.
MARK = "\u00a7"
nasty_text = st.text(
    alphabet=st.sampled_from("ab '\"`\\%_.;-()?=\u00e9\u4e2d")
    | st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=12,
).map(lambda s: MARK + s)


def quote(text: str, quote_char: str, backslash_style: bool) -> str:
    escaped = text.replace("\\", "\\\\")
    escaped = escaped.replace(quote_char, ("\\" if backslash_style else quote_char) + quote_char)
    return quote_char + escaped + quote_char


@FAST
@given(
    entity=st.sampled_from(["params", "tags", "metrics", "datasets"]),
    key=nasty_text,
    value=nasty_text,
    key_quote=st.sampled_from(["`", '"']),
    value_quote=st.sampled_from(["'", '"']),
    backslash_style=st.booleans(),
    op=st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
    dialect=st.sampled_from(["sqlite", "postgresql"]),
)
def test_user_text_only_travels_as_parameters(
    entity, key, value, key_quote, value_quote, backslash_style, op, dialect
):
    if entity == "metrics":
        text = f"metrics.{quote(key, key_quote, backslash_style)} > 1.5"
        expected = (key, 1.5)
    elif entity == "datasets":
        text = f"datasets.name {op} {quote(value, value_quote, backslash_style)}"
        expected = (value,)
    else:
        text = f"{entity}.{quote(key, key_quote, backslash_style)} {op} "
        text += quote(value, value_quote, backslash_style)
        expected = (key, value)
    sql = run_filter(text, dialect)
    assert sql.params == expected  # quoting round-trips exactly
    assert MARK not in sql.sql
    check_shape(sql)
    if dialect == "sqlite":
        db().execute(f"SELECT 1 FROM runs r WHERE {sql.sql}", sql.params).fetchall()
    order = run_order(
        [f"{entity if entity != 'datasets' else 'tags'}.{quote(key, '`', False)}"], dialect
    )
    joins = [t.join for t in order if t.join is not None]
    assert len(joins) == 1
    assert all(MARK not in t.sql for t in [*order, *joins])
    assert joins[0].params == (key,)
    assert all(t.params == () for t in order)


# A reference evaluator: each generated clause comes with the predicate it should mean.


def like(value: str, pattern: str, fold: bool) -> bool:
    if fold:
        value, pattern = value.lower(), pattern.lower()
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S) is not None


def compare(left, op: str, right) -> bool:
    if op == "LIKE":
        return like(left, right, False)
    if op == "ILIKE":
        return like(left, right, True)
    return {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
    }[op]


def metric_clause(key: str, op: str, value: float):
    def check(run) -> bool:
        found = run["metrics"].get(key)
        if found is None:
            return False
        if math.isnan(found):
            return op == "!="
        return compare(found, op, value)

    return f"metrics.{key} {op} {value!r}", check


def keyed_clause(entity: str, store: str, key: str, op: str, value: str):
    def check(run) -> bool:
        found = run[store].get(key)
        if op == "IS NULL":
            return found is None
        if op == "IS NOT NULL":
            return found is not None
        return found is not None and compare(found, op, value)

    tail = op if op.startswith("IS") else f"{op} '{value}'"
    return f"{entity}.`{key}` {tail}", check


def attr_clause(key: str, op: str, value):
    column = {"created": "start_time", "run_name": "name"}.get(key, key)

    def check(run) -> bool:
        found = run[column]
        return found is not None and compare(found, op, value)

    shown = repr(value) if isinstance(value, str) else str(value)
    return f"{key} {op} {shown}", check


def run_id_clause(op: str, ids: list[str]):
    listed = ", ".join(f"'{i}'" for i in ids)
    return f"run_id {op} ({listed})", lambda run: (run["id"] in ids) == (op == "IN")


def dataset_clause(key: str, op: str, value: str):
    index = {"name": 0, "digest": 1, "context": 2}[key]

    def check(run) -> bool:
        return any(d[index] is not None and compare(d[index], op, value) for d in run["datasets"])

    return f"datasets.{key} {op} '{value}'", check


STRING_OPS = ["=", "!=", "LIKE", "ILIKE"]
STRINGS = ["0.1", "0.01", "adam", "ML", "ml", "DS", "%", "m%", "%a%", "_l", "a_", "train", "eval"]
clauses = st.one_of(
    st.builds(
        metric_clause,
        st.sampled_from(["acc", "loss", "nope"]),
        st.sampled_from(["=", "!=", ">", ">=", "<", "<="]),
        st.sampled_from([-1.0, 0.0, 0.25, 0.5, 0.9, 2.0, -2.5, 1e10]),
    ),
    st.builds(
        keyed_clause,
        st.just("params"),
        st.just("params"),
        st.sampled_from(["lr", "opt", "a b", "nope"]),
        st.sampled_from(STRING_OPS + ["IS NULL", "IS NOT NULL"]),
        st.sampled_from(STRINGS),
    ),
    st.builds(
        keyed_clause,
        st.just("tags"),
        st.just("tags"),
        st.sampled_from(["team", "my key", "a.b", "nope"]),
        st.sampled_from(STRING_OPS + ["IS NULL", "IS NOT NULL"]),
        st.sampled_from(STRINGS),
    ),
    st.builds(
        attr_clause,
        st.sampled_from(["status", "user_id", "run_name"]),
        st.sampled_from(STRING_OPS),
        st.sampled_from(["FINISHED", "RUNNING", "alice", "alpha", "%a%", "F%", "r_", "BOB"]),
    ),
    st.builds(
        attr_clause,
        st.sampled_from(["start_time", "end_time", "created"]),
        st.sampled_from(["=", "!=", ">", ">=", "<", "<="]),
        st.sampled_from([100, 200, 300, 350, 400, 150.5]),
    ),
    st.builds(
        run_id_clause,
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(st.sampled_from(list(RUNS) + ["zz"]), min_size=1, max_size=3),
    ),
    st.builds(
        dataset_clause,
        st.sampled_from(["name", "digest", "context"]),
        st.sampled_from(STRING_OPS),
        st.sampled_from(["train", "test", "d1", "d3", "eval", "%ing", "T%", "_val"]),
    ),
)


def combine(op: str, parts):
    texts = [text for text, _ in parts]
    checks = [check for _, check in parts]
    joiner = any if op == "OR" else all
    return (
        "(" + f" {op} ".join(texts) + ")",
        lambda run: joiner(check(run) for check in checks),
    )


expressions = st.recursive(
    clauses,
    lambda children: st.builds(
        combine, st.sampled_from(["AND", "OR"]), st.lists(children, min_size=2, max_size=3)
    ),
    max_leaves=8,
)


@FAST
@given(expressions)
def test_compiled_filters_agree_with_reference(expression):
    text, check = expression
    expected = {run_id for run_id, run in RUNS.items() if check({**run, "id": run_id})}
    assert runs_matching(text) == expected, text


@FAST
@given(st.lists(clauses, min_size=2, max_size=4))
def test_and_without_parentheses_binds_tighter_than_or(parts):
    # a OR b AND c OR d  ==  a OR (b AND c) OR d
    texts = [text for text, _ in parts]
    flat = " OR ".join(texts[:1] + [" AND ".join(texts[1:3])] + texts[3:])
    grouped = " OR ".join(texts[:1] + ["(" + " AND ".join(texts[1:3]) + ")"] + texts[3:])
    assert runs_matching(flat) == runs_matching(grouped)
