"""PostgreSQL drops the server's connections (a restart, a failover, an idle reaper).

The server must come back by itself: requests after the drop succeed on new connections, a
database that cannot be reached answers 503 TEMPORARILY_UNAVAILABLE (which the stock client
retries), and nothing is lost or written twice.
"""

from __future__ import annotations

import psycopg
import pytest
from mlflow.tracking import MlflowClient

from conftest import Api, now_ms

pytestmark = [pytest.mark.postgres, pytest.mark.labtrack_only]


@pytest.fixture(scope="module")
def pg_server(server_factory):
    return server_factory("postgresql")


def _admin(pg_server, sql: str) -> None:
    with psycopg.connect(pg_server.pg.admin_url, autocommit=True) as conn:
        conn.execute(sql.replace("{db}", pg_server.pg.name))


def _drop_connections(pg_server) -> None:
    _admin(
        pg_server,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = '{db}' AND pid <> pg_backend_pid()",
    )


def test_requests_after_postgresql_drops_every_connection_succeed(pg_server) -> None:
    api = Api(pg_server)
    run_id = api.create_run(api.create_experiment())["info"]["run_id"]
    logged = 0
    for _round in range(3):
        _drop_connections(pg_server)
        for _ in range(10):  # more requests than the pool has connections
            api.post(
                "runs/log-metric",
                {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": now_ms(), "step": logged},
            )
            logged += 1
            assert api.get_run(run_id)["info"]["status"] == "RUNNING"
        _drop_connections(pg_server)
        MlflowClient(pg_server.url).log_metric(run_id, "m", 2.0, step=logged)
        logged += 1
    history = api.get("metrics/get-history", run_id=run_id, metric_key="m")["metrics"]
    assert sorted(int(p["step"]) for p in history) == list(range(logged))


def test_unreachable_database_is_a_503_until_it_is_back(pg_server) -> None:
    api = Api(pg_server)
    run_id = api.create_run(api.create_experiment())["info"]["run_id"]
    _admin(pg_server, 'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS false')
    try:
        _drop_connections(pg_server)
        api.error(
            "GET", "runs/get", params={"run_id": run_id}, status=503, code="TEMPORARILY_UNAVAILABLE"
        )
        api.error(
            "POST",
            "runs/set-tag",
            json={"run_id": run_id, "key": "k", "value": "v"},
            status=503,
            code="TEMPORARILY_UNAVAILABLE",
        )
    finally:
        _admin(pg_server, 'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true')
    api.post("runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"})
    assert {"key": "k", "value": "v"} in api.get_run(run_id)["data"]["tags"]


def test_statement_cancelled_by_the_database_is_a_503(pg_server) -> None:
    """A statement PostgreSQL cancels (statement_timeout here, behind a held lock) leaves the
    connection healthy: the request gets 503 with the database's reason, the next one works."""
    api = Api(pg_server)
    run_id = api.create_run(api.create_experiment())["info"]["run_id"]
    _admin(pg_server, "ALTER DATABASE \"{db}\" SET statement_timeout = '300ms'")
    try:
        _drop_connections(pg_server)  # new sessions take the setting
        with psycopg.connect(pg_server.pg.url) as locker:
            locker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
            body = api.error(
                "GET",
                "runs/get",
                params={"run_id": run_id},
                status=503,
                code="TEMPORARILY_UNAVAILABLE",
            )
            assert "statement timeout" in body["message"], body
            locker.rollback()
        assert api.get_run(run_id)["info"]["run_id"] == run_id
    finally:
        _admin(pg_server, 'ALTER DATABASE "{db}" RESET statement_timeout')
        _drop_connections(pg_server)
