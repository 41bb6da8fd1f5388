"""Registry and logged-model search filters (store.filters kinds REGISTERED_MODELS,
MODEL_VERSIONS, LOGGED_MODELS).

The compiled SQL runs against an in-memory SQLite database built from the real registry
migration, so the tests check which rows match and in what order, not SQL spelling. A property
test checks that arbitrary filter text fails only with MlflowError and never reaches the SQL.
"""

from __future__ import annotations

import functools
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labtrack.store.filters import (
    logged_model_filter,
    model_version_filter,
    model_version_order,
    registered_model_filter,
    registered_model_order,
)
from labtrack.store.schema import statements
from labtrack.store.schema_registry import REGISTRY
from labtrack.wire import MlflowError

# name -> (created, updated, tags)
MODELS = {
    "churn": (100, 900, {"team": "growth", "prod": "yes"}),
    "Churn-v2": (200, 800, {"team": "Growth"}),
    "fraud": (300, 700, {"team": "risk"}),
    "pricing": (400, 600, {}),
}
# (name, version) -> (run_id, source, created, updated, tags)
VERSIONS = {
    ("churn", 1): ("r1", "s3://b/churn/1", 10, 10, {"stage": "old"}),
    ("churn", 2): ("r2", "s3://b/churn/2", 20, 50, {"stage": "new", "owner": "ann"}),
    ("churn", 3): ("r3", "mlflow-artifacts:/1/r3/artifacts/model", 30, 30, {}),
    ("fraud", 1): ("r1", "s3://b/fraud/1", 40, 40, {"owner": "bob"}),
    ("pricing", 10): ("r9", "models:/m-1", 50, 60, {}),
}
# model_id -> (name, status, created, metrics [(key, value, dataset)], params, tags)
LOGGED = {
    "m-1": ("model", "LOGGED_MODEL_READY", 10, [("acc", 0.9, "eval")], {"lr": "0.1"}, {"t": "a"}),
    "m-2": ("model", "LOGGED_MODEL_PENDING", 20, [("acc", 0.5, "train")], {"lr": "0.2"}, {}),
    "m-3": ("other", "LOGGED_MODEL_READY", 30, [], {}, {"t": "b"}),
}


@functools.cache
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("PRAGMA case_sensitive_like=ON")
    for sql in statements(REGISTRY[0], "sqlite"):
        conn.execute(sql)
    for name, (created, updated, tags) in MODELS.items():
        conn.execute(
            "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp)"
            " VALUES (?, ?, ?)",
            (name, created, updated),
        )
        conn.executemany(
            "INSERT INTO registered_model_tags VALUES (?, ?, ?)",
            [(name, k, v) for k, v in tags.items()],
        )
    for (name, version), (run_id, source, created, updated, tags) in VERSIONS.items():
        conn.execute(
            "INSERT INTO model_versions (name, version, creation_timestamp,"
            " last_updated_timestamp, source, run_id) VALUES (?, ?, ?, ?, ?, ?)",
            (name, version, created, updated, source, run_id),
        )
        conn.executemany(
            "INSERT INTO model_version_tags VALUES (?, ?, ?, ?)",
            [(name, version, k, v) for k, v in tags.items()],
        )
    for model_id, (name, status, created, metrics, params, tags) in LOGGED.items():
        conn.execute(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location,"
            " creation_timestamp_ms, last_updated_timestamp_ms, status) VALUES (?, 1, ?, 'x', ?,"
            " ?, ?)",
            (model_id, name, created, created, status),
        )
        for key, value, dataset in metrics:
            conn.execute(
                "INSERT INTO logged_model_metrics (model_id, key, value, timestamp, step,"
                " dataset_name) VALUES (?, ?, ?, 1, 0, ?)",
                (model_id, key, value, dataset),
            )
        conn.executemany(
            "INSERT INTO logged_model_params VALUES (?, ?, ?)",
            [(model_id, k, v) for k, v in params.items()],
        )
        conn.executemany(
            "INSERT INTO logged_model_tags VALUES (?, ?, ?)",
            [(model_id, k, v) for k, v in tags.items()],
        )
    return conn


def _run(sql: str, params: tuple) -> list:
    assert sql.count("?") == len(params)
    return db().execute(sql, params).fetchall()


def models(filter_string: str) -> set[str]:
    where = registered_model_filter(filter_string, "sqlite")
    assert where is not None
    return {
        r[0]
        for r in _run(f"SELECT rm.name FROM registered_models rm WHERE {where.sql}", where.params)
    }


def versions(filter_string: str) -> set[tuple[str, int]]:
    where = model_version_filter(filter_string, "sqlite")
    assert where is not None
    rows = _run(
        f"SELECT mv.name, mv.version FROM model_versions mv WHERE {where.sql}", where.params
    )
    return {(r[0], r[1]) for r in rows}


def logged(filter_string: str) -> set[str]:
    where = logged_model_filter(filter_string, "sqlite")
    assert where is not None
    rows = _run(f"SELECT lm.model_id FROM logged_models lm WHERE {where.sql}", where.params)
    return {r[0] for r in rows}


def error(fn, *args) -> str:
    with pytest.raises(MlflowError) as info:
        fn(*args)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    return info.value.message


# --- registered models ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'churn'", {"churn"}),
        ("name != 'churn'", {"Churn-v2", "fraud", "pricing"}),
        ("name LIKE 'churn%'", {"churn"}),
        ("name ILIKE 'churn%'", {"churn", "Churn-v2"}),
        ("name IN ('fraud', 'pricing', 'nope')", {"fraud", "pricing"}),
        ("attribute.name = 'fraud'", {"fraud"}),
        ("tags.team = 'growth'", {"churn"}),
        ("tag.team ILIKE 'growth'", {"churn", "Churn-v2"}),
        ("tags.team != 'risk'", {"churn", "Churn-v2"}),  # a missing tag never matches
        ("tags.team LIKE '%o%' AND tags.prod = 'yes'", {"churn"}),
        ("tags.`prod` = 'yes' OR name = 'pricing'", {"churn", "pricing"}),
        ("tags.team IS NULL", {"pricing"}),
        ("creation_timestamp >= 300", {"fraud", "pricing"}),
        ("last_updated_timestamp < 800", {"fraud", "pricing"}),
    ],
)
def test_registered_model_filters(filter_string, expected):
    assert models(filter_string) == expected


def test_registered_model_filter_errors():
    assert "Invalid attribute key 'run_id'" in error(
        registered_model_filter, "run_id = 'x'", "sqlite"
    )
    assert "Invalid entity type 'metrics'" in error(
        registered_model_filter, "metrics.acc > 1", "sqlite"
    )
    assert "numeric" in error(registered_model_filter, "creation_timestamp > 'x'", "sqlite")
    assert registered_model_filter("", "sqlite") is None
    assert registered_model_filter("   ", "sqlite") is None


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ([], ["Churn-v2", "churn", "fraud", "pricing"]),
        (["name DESC"], ["pricing", "fraud", "churn", "Churn-v2"]),
        (["last_updated_timestamp DESC"], ["churn", "Churn-v2", "fraud", "pricing"]),
        (["timestamp ASC"], ["pricing", "fraud", "Churn-v2", "churn"]),
        (["creation_timestamp DESC"], ["pricing", "fraud", "Churn-v2", "churn"]),
    ],
)
def test_registered_model_order(order_by, expected):
    terms = registered_model_order(order_by, "sqlite")
    clause = ", ".join([t.sql for t in terms] + ["rm.name ASC"])
    params = tuple(p for t in terms for p in t.params)
    rows = _run(f"SELECT rm.name FROM registered_models rm ORDER BY {clause}", params)
    assert [r[0] for r in rows] == expected


def test_registered_model_order_errors():
    assert "entity type 'tag'" in error(registered_model_order, ["tags.team ASC"], "sqlite")
    assert "duplicate" in error(
        registered_model_order, ["timestamp ASC", "last_updated_timestamp DESC"], "sqlite"
    )
    assert "Invalid attribute key" in error(registered_model_order, ["run_id"], "sqlite")


# --- model versions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'churn'", {("churn", 1), ("churn", 2), ("churn", 3)}),
        ("name = 'churn' AND version_number > 1", {("churn", 2), ("churn", 3)}),
        ("version_number = '10'", {("pricing", 10)}),  # quoted, as MLflow accepts
        ("version_number <= 1", {("churn", 1), ("fraud", 1)}),
        ("run_id = 'r1'", {("churn", 1), ("fraud", 1)}),
        ("run_id IN ('r2', 'r9')", {("churn", 2), ("pricing", 10)}),
        ("name IN ('fraud') OR run_id = 'r3'", {("fraud", 1), ("churn", 3)}),
        ("source_path LIKE 's3://b/churn/%'", {("churn", 1), ("churn", 2)}),
        ("source_path = 'models:/m-1'", {("pricing", 10)}),
        ("tags.owner = 'ann'", {("churn", 2)}),
        ("tags.stage != 'old'", {("churn", 2)}),
        ("tag.owner ILIKE 'B%' AND name = 'fraud'", {("fraud", 1)}),
        ("tags.owner IS NOT NULL", {("churn", 2), ("fraud", 1)}),
    ],
)
def test_model_version_filters(filter_string, expected):
    assert versions(filter_string) == expected


def test_model_version_filter_errors():
    assert "list" in error(model_version_filter, "source_path IN ('a')", "sqlite")
    assert "Invalid value" in error(model_version_filter, "version_number = 1.5", "sqlite")
    assert "Invalid value" in error(model_version_filter, "version_number = 'x'", "sqlite")
    assert "Invalid attribute key 'stage'" in error(model_version_filter, "stage = 'x'", "sqlite")
    assert "Invalid comparator" in error(model_version_filter, "version_number LIKE '1'", "sqlite")


def test_model_version_order():
    terms = model_version_order(["version_number ASC", "name DESC"], "sqlite")
    clause = ", ".join(t.sql for t in terms)
    rows = _run(f"SELECT mv.name, mv.version FROM model_versions mv ORDER BY {clause}", ())
    assert rows == [("fraud", 1), ("churn", 1), ("churn", 2), ("churn", 3), ("pricing", 10)]
    terms = model_version_order(["last_updated_timestamp DESC"], "sqlite")
    rows = _run(f"SELECT mv.name, mv.version FROM model_versions mv ORDER BY {terms[0].sql}", ())
    assert rows[0] == ("pricing", 10)
    assert "Invalid attribute key" in error(model_version_order, ["run_id ASC"], "sqlite")


# --- logged models ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'model'", {"m-1", "m-2"}),
        ("attributes.name = 'other'", {"m-3"}),
        ("status = 'LOGGED_MODEL_READY'", {"m-1", "m-3"}),
        ("model_id IN ('m-1', 'm-3')", {"m-1", "m-3"}),
        ("creation_timestamp > 15", {"m-2", "m-3"}),
        ("creation_time <= 20", {"m-1", "m-2"}),
        ("metrics.acc > 0.6", {"m-1"}),
        ("metrics.acc >= 0.5 AND params.lr = '0.2'", {"m-2"}),
        ("params.lr IN ('0.1', '0.3')", {"m-1"}),
        ("tags.t = 'b'", {"m-3"}),
        ("tags.t LIKE '%'", {"m-1", "m-3"}),
    ],
)
def test_logged_model_filters(filter_string, expected):
    assert logged(filter_string) == expected


def test_logged_model_filter_errors():
    assert "Invalid entity type 'dataset'" in error(
        logged_model_filter, "dataset.x = 'a'", "sqlite"
    )
    assert "Invalid comparator" in error(logged_model_filter, "metrics.acc LIKE '1'", "sqlite")
    assert "numeric" in error(logged_model_filter, "metrics.acc > 'x'", "sqlite")


# --- robustness -------------------------------------------------------------------------------
_ALPHABET = st.sampled_from(list("abcnmeisuvrotg_.`'\"()=!<>%, 0123456789") + ["AND", " OR "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_arbitrary_filters_fail_cleanly(text):
    for compile_fn, table in (
        (registered_model_filter, "registered_models rm"),
        (model_version_filter, "model_versions mv"),
        (logged_model_filter, "logged_models lm"),
    ):
        try:
            where = compile_fn(text, "sqlite")
        except MlflowError as exc:
            assert exc.status == 400
            continue
        if where is None:
            continue
        # the user's literals travel as parameters, never in the SQL text
        for value in where.params:
            if isinstance(value, str) and len(value) > 3:
                assert value not in where.sql
        db().execute(f"SELECT 1 FROM {table} WHERE {where.sql}", where.params).fetchall()
