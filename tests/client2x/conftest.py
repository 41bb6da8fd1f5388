"""Fixtures for the mlflow 2.x client suite.

Runs in its own venv (``.venv-mlflow2``: pytest + mlflow-skinny 2.22.5) and never imports labtrack:
the server is started with the interpreter in ``LABTRACK_SERVER_PYTHON`` (the main venv's python),
as ``-m labtrack server`` or, with ``LABTRACK_TEST_TARGET=mlflow``, as ``-m mlflow server`` (3.17.2).
PostgreSQL databases are created and dropped through that interpreter too (psycopg lives there).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

TARGET = os.environ.get("LABTRACK_TEST_TARGET", "labtrack").strip().lower() or "labtrack"
SERVER_PYTHON = os.environ.get("LABTRACK_SERVER_PYTHON") or sys.executable
PG_ADMIN_URL = (
    os.environ.get("LABTRACK_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
)
STARTUP_TIMEOUT = float(
    os.environ.get("LABTRACK_TEST_STARTUP_TIMEOUT") or (120 if TARGET == "mlflow" else 30)
)


def pytest_configure(config):
    # mlflow 2.22.5 on a current protobuf warns on every request (FieldDescriptor.label()).
    config.addinivalue_line("filterwarnings", "ignore:label\\(\\) is deprecated:DeprecationWarning")
    for name, doc in {
        "postgres": "runs against the PostgreSQL backend",
        "slow": "takes more than a few seconds",
        "labtrack_only": "labtrack behaviour beyond MLflow",
    }.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_report_header(config):
    import mlflow

    return [f"mlflow client {mlflow.__version__}; server: {TARGET} via {SERVER_PYTHON}"]


def pytest_collection_modifyitems(config, items):
    import mlflow

    if not mlflow.__version__.startswith("2."):
        skip = pytest.mark.skip(
            reason=f"2.x client suite; this venv has mlflow {mlflow.__version__} (use .venv-mlflow2)"
        )
        for item in items:
            item.add_marker(skip)


def _run_server_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SERVER_PYTHON, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


_PG_CREATE = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as c:
    c.execute('CREATE DATABASE "%s"' % sys.argv[2])
"""
_PG_DROP = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as c:
    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (sys.argv[2],))
    c.execute('DROP DATABASE IF EXISTS "%s"' % sys.argv[2])
"""


@dataclass
class Server:
    url: str
    backend: str
    proc: subprocess.Popen
    log_path: Path
    pg_db: str | None = None

    def log_tail(self, limit: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "<no server log>"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.pg_db:
            _run_server_python(_PG_DROP, PG_ADMIN_URL, self.pg_db)
            self.pg_db = None
        if not os.environ.get("LABTRACK_TEST_KEEP"):
            shutil.rmtree(self.log_path.parent, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(backend: str) -> Server:
    data = Path(tempfile.mkdtemp(prefix=f"labtrack-client2x-{backend}-"))
    (data / "artifacts").mkdir()
    pg_db = None
    if backend == "sqlite":
        uri = f"sqlite:///{data / 'store.db'}"
    else:
        pg_db = f"labtrack_test_{uuid.uuid4().hex[:12]}"
        out = _run_server_python(_PG_CREATE, PG_ADMIN_URL, pg_db)
        if out.returncode != 0:
            msg = f"PostgreSQL unavailable at {PG_ADMIN_URL}: {out.stderr.strip()[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(msg, pytrace=False)
            pytest.skip(msg)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        uri = f"{base}/{pg_db}"
        if TARGET == "mlflow":
            uri = uri.replace("postgresql://", "postgresql+psycopg://", 1)
    port = _free_port()
    module = "mlflow" if TARGET == "mlflow" else "labtrack"
    cmd = [
        SERVER_PYTHON,
        "-m",
        module,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        str(data / "artifacts"),
    ]
    if TARGET == "mlflow":
        cmd += ["--workers", "1"]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LABTRACK_TEST_") and k != "LABTRACK_SERVER_PYTHON"
    }
    env["PYTHONUNBUFFERED"] = "1"
    log_path = data / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data,
            env=env,
            start_new_session=True,
        )
    srv = Server(
        url=f"http://127.0.0.1:{port}", backend=backend, proc=proc, log_path=log_path, pg_db=pg_db
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = srv.log_tail()
            srv.stop()
            pytest.fail(
                f"server exited ({proc.returncode}): {' '.join(cmd)}\n{tail}", pytrace=False
            )
        try:
            with urllib.request.urlopen(f"{srv.url}/health", timeout=2) as r:
                if r.status == 200:
                    return srv
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    tail = srv.log_tail()
    srv.stop()
    pytest.fail(
        f"server not healthy after {STARTUP_TIMEOUT:.0f}s: {' '.join(cmd)}\n{tail}", pytrace=False
    )


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def server(request):
    srv = _start(request.param)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=server.url)


@pytest.fixture
def fluent(server, monkeypatch):
    import mlflow
    import mlflow.tracking.fluent as fluent_mod

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(server.url)
    monkeypatch.setattr(fluent_mod, "_active_experiment_id", None, raising=False)
    try:
        yield mlflow
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


@pytest.fixture
def unique_name():
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:12]}"
