"""Shared fixtures: a real server process per backend, clients, and a raw-HTTP helper.

Targets (``LABTRACK_TEST_TARGET``):

* ``labtrack`` (default): ``python -m labtrack server ...``
* ``mlflow``: the stock ``python -m mlflow server ...`` from the same venv. Used to prove that
  the integration tests encode real MLflow behaviour. Tests marked ``labtrack_only`` skip there.

Backends: every test that uses ``server`` (directly or through ``client``/``api``/``fluent``)
runs once per backend, ``sqlite`` and ``postgresql``. PostgreSQL comes from
``LABTRACK_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``); each
server gets a fresh ``labtrack_test_<random>`` database that is dropped afterwards. If PostgreSQL
cannot be reached the postgresql tests fail when ``CI`` is set and skip otherwise.

Other knobs: ``LABTRACK_SERVER_PYTHON`` (interpreter that runs the server, default: this one),
``LABTRACK_TEST_STARTUP_TIMEOUT`` (seconds to wait for ``/health``), ``LABTRACK_TEST_WORKERS``
(``--workers`` passed to the server; default: the server's own default for labtrack, 1 for mlflow),
``LABTRACK_TEST_KEEP=1`` (keep each server's temp dir: database, artifacts, ``server.log``).

This file must stay importable without labtrack installed and without psycopg (psycopg is
imported only when a PostgreSQL server is needed).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

# The client retries 5xx answers for ~4 minutes by default. A server that answers 500 must fail a
# test quickly instead, so keep a couple of fast retries (for dropped keep-alive connections) only.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

TARGET = os.environ.get("LABTRACK_TEST_TARGET", "labtrack").strip().lower() or "labtrack"
if TARGET not in ("labtrack", "mlflow"):
    raise RuntimeError(f"LABTRACK_TEST_TARGET must be 'labtrack' or 'mlflow', not {TARGET!r}")
IS_MLFLOW = TARGET == "mlflow"

SERVER_PYTHON = os.environ.get("LABTRACK_SERVER_PYTHON") or sys.executable
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_ADMIN_URL = os.environ.get("LABTRACK_TEST_POSTGRES_URL") or DEFAULT_PG_URL
STARTUP_TIMEOUT = float(
    os.environ.get("LABTRACK_TEST_STARTUP_TIMEOUT") or (120 if IS_MLFLOW else 30)
)
API = "/api/2.0/mlflow/"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


# --------------------------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------------------------

MARKERS = {
    "integration": "talks to a real server process (tests/integration)",
    "postgres": "runs against the PostgreSQL backend",
    "slow": "takes more than a few seconds (bulk data)",
    "labtrack_only": "labtrack behaviour stricter than or beyond MLflow; skipped with LABTRACK_TEST_TARGET=mlflow",
}


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml registers these too; registering here keeps --strict-markers happy either way.
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    what = "stock `mlflow server`" if IS_MLFLOW else "`labtrack server`"
    return [
        f"server under test: {TARGET} ({what}, python {SERVER_PYTHON})",
        f"postgres: {_redact(PG_ADMIN_URL)}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration_dir = Path(__file__).parent / "integration"
    skip_mlflow = pytest.mark.skip(reason="labtrack-only behaviour (LABTRACK_TEST_TARGET=mlflow)")
    for item in items:
        if integration_dir in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
        if IS_MLFLOW and item.get_closest_marker("labtrack_only"):
            item.add_marker(skip_mlflow)


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(message)


@dataclass
class PgDatabase:
    name: str
    admin_url: str

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{self.name}"))

    @classmethod
    def create(cls) -> PgDatabase:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the venv
            _unreachable(
                f"psycopg is not installed, cannot create a PostgreSQL test database: {exc}"
            )
        name = f"labtrack_test_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            _unreachable(
                f"PostgreSQL is unreachable at {_redact(PG_ADMIN_URL)} (set LABTRACK_TEST_POSTGRES_URL, "
                f"or start it: pg_ctlcluster <version> main start): {str(exc).strip()}"
            )
        return cls(name=name, admin_url=PG_ADMIN_URL)

    def drop(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                )
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
        except psycopg.Error as exc:  # pragma: no cover - best effort cleanup
            print(f"warning: could not drop test database {self.name}: {exc}", file=sys.stderr)


@dataclass
class ServerProcess:
    """A running server. ``url`` already includes the static prefix, if any."""

    url: str
    backend: str
    target: str
    backend_uri: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen
    static_prefix: str = ""
    pg: PgDatabase | None = None
    _http: Any = field(default=None, repr=False)

    @property
    def root_url(self) -> str:
        """scheme://host:port without the static prefix."""
        return (
            self.url[: len(self.url) - len(self.static_prefix)] if self.static_prefix else self.url
        )

    @property
    def is_mlflow(self) -> bool:
        return self.target == "mlflow"

    def log_tail(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no server log>"
        return text[-limit:]

    @property
    def http(self):
        """A keep-alive httpx client bound to this server's base URL (prefix included)."""
        if self._http is None:
            import httpx

            self._http = httpx.Client(base_url=self.url, timeout=120.0)
        return self._http

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc.poll() is None:
            # The server was started in its own session: signal its whole process group
            # (mlflow server has uvicorn and job-runner children).
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        # Children may outlive the leader after SIGTERM; make sure the group is gone.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.pg is not None:
            self.pg.drop()
            self.pg = None
        _LIVE.pop(id(self), None)
        if not os.environ.get("LABTRACK_TEST_KEEP"):
            shutil.rmtree(self.data_dir, ignore_errors=True)


# Servers still running, so that an interrupted session (SIGTERM, e.g. a CI time limit) does not
# leave server processes or test databases behind.
_LIVE: dict[int, ServerProcess] = {}


def _stop_all_live() -> None:
    for srv in list(_LIVE.values()):
        try:
            srv.stop()
        except Exception as exc:  # pragma: no cover - best effort
            print(f"warning: could not stop server {srv.url}: {exc}", file=sys.stderr)


def _on_sigterm(signum, frame) -> None:  # pragma: no cover - only on interruption
    _stop_all_live()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


atexit.register(_stop_all_live)
if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
    signal.signal(signal.SIGTERM, _on_sigterm)


def _server_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("LABTRACK_TEST_") or k in ("LABTRACK_SERVER_PYTHON", "PYTEST_ADDOPTS"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    return env


def start_server(
    backend: str,
    *,
    target: str = TARGET,
    static_prefix: str = "",
    extra_args: list[str] | None = None,
    python: str = SERVER_PYTHON,
    timeout: float = STARTUP_TIMEOUT,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start a server on a fresh backend (new sqlite file / new PostgreSQL database).

    ``env`` adds environment variables for the server process only.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"labtrack-test-{backend}-"))
    artifacts = data_dir / "artifacts"
    artifacts.mkdir()
    pg = None
    if backend == "sqlite":
        backend_uri = f"sqlite:///{data_dir / 'store.db'}"
    elif backend == "postgresql":
        pg = PgDatabase.create()
        backend_uri = pg.url
        if target == "mlflow":
            # SQLAlchemy's default postgresql driver is psycopg2; the venv has psycopg 3.
            backend_uri = backend_uri.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        raise ValueError(f"unknown backend {backend!r}")

    port = free_port()
    common = ["--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", backend_uri]
    common += ["--artifacts-destination", str(artifacts)]
    workers = os.environ.get("LABTRACK_TEST_WORKERS")
    if target == "mlflow":
        cmd = [python, "-m", "mlflow", "server", *common, "--workers", workers or "1"]
    else:
        cmd = [python, "-m", "labtrack", "server", *common]
        if workers:
            cmd += ["--workers", workers]
    prefix = ""
    if static_prefix:
        prefix = "/" + static_prefix.strip("/")
        cmd += ["--static-prefix", prefix]
    cmd += list(extra_args or [])

    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env={**_server_env(), **(env or {})},
            start_new_session=True,
        )
    srv = ServerProcess(
        url=f"http://127.0.0.1:{port}{prefix}",
        backend=backend,
        target=target,
        backend_uri=backend_uri,
        data_dir=data_dir,
        log_path=log_path,
        proc=proc,
        static_prefix=prefix,
        pg=pg,
    )
    _LIVE[id(srv)] = srv
    try:
        _wait_healthy(srv, cmd, timeout)
    except BaseException:
        srv.stop()
        raise
    return srv


def _wait_healthy(srv: ServerProcess, cmd: list[str], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    health = f"{srv.url}/health"
    while time.monotonic() < deadline:
        code = srv.proc.poll()
        if code is not None:
            pytest.fail(
                f"server exited with code {code} before answering {health}\n"
                f"command: {' '.join(cmd)}\n--- server output ---\n{srv.log_tail()}",
                pytrace=False,
            )
        try:
            r = httpx.get(health, timeout=2.0)
            if r.status_code == 200:
                return
            last_error = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.1)
    pytest.fail(
        f"server did not answer 200 on {health} within {timeout:.0f}s (last: {last_error})\n"
        f"command: {' '.join(cmd)}\n--- server output ---\n{srv.log_tail()}",
        pytrace=False,
    )


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A real server process for one backend, shared by the whole session."""
    srv = start_server(request.param)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers (e.g. with ``static_prefix``); all are stopped at session end."""
    started: list[ServerProcess] = []

    def factory(backend: str, **kwargs: Any) -> ServerProcess:
        srv = start_server(backend, **kwargs)
        started.append(srv)
        return srv

    try:
        yield factory
    finally:
        for srv in reversed(started):
            srv.stop()


@pytest.fixture(scope="session")
def target() -> str:
    return TARGET


@pytest.fixture(scope="session")
def is_mlflow() -> bool:
    return IS_MLFLOW


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


class Api:
    """Raw HTTP against a server. ``api("POST", "runs/create", json={...})``.

    A path without a leading slash is relative to ``/api/2.0/mlflow/``; one with a leading slash
    is relative to the server URL (which includes the static prefix, if any).
    """

    def __init__(self, srv: ServerProcess):
        self.server = srv

    def url(self, path: str) -> str:
        return path if path.startswith("/") else API + path

    def __call__(self, method: str, path: str, json: Any = None, params: Any = None, **kwargs: Any):
        if json is not None:
            kwargs["json"] = json
        return self.server.http.request(method, self.url(path), params=params, **kwargs)

    # -- conveniences --------------------------------------------------------------------
    def ok(
        self, method: str, path: str, json: Any = None, params: Any = None, **kwargs: Any
    ) -> dict:
        r = self(method, path, json=json, params=params, **kwargs)
        assert r.status_code == 200, f"{method} {path} -> {r.status_code}: {r.text[:1000]}"
        return r.json() if r.content else {}

    def get(self, path: str, **params: Any) -> dict:
        return self.ok("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> dict:
        return self.ok("POST", path, json=body if body is not None else {})

    def error(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Any = None,
        *,
        status: int,
        code: str | None = None,
    ) -> dict:
        """Assert a JSON error answer with this status (and error_code); return the body."""
        r = self(method, path, json=json, params=params)
        assert r.status_code == status, (
            f"{method} {path} -> {r.status_code} (wanted {status}): {r.text[:1000]}"
        )
        body = r.json()
        if code is not None:
            assert body.get("error_code") == code, body
            assert isinstance(body.get("message"), str), body
        return body

    def create_experiment(self, name: str | None = None, **fields: Any) -> str:
        body = {"name": name or unique("exp"), **fields}
        return self.post("experiments/create", body)["experiment_id"]

    def create_run(self, experiment_id: str, **fields: Any) -> dict:
        body = {"experiment_id": experiment_id, "start_time": now_ms(), **fields}
        return self.post("runs/create", body)["run"]

    def get_run(self, run_id: str) -> dict:
        return self.get("runs/get", run_id=run_id)["run"]

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> dict:
        body: dict[str, Any] = {"run_id": run_id}
        if metrics:
            body["metrics"] = list(metrics)
        if params:
            body["params"] = list(params)
        if tags:
            body["tags"] = list(tags)
        return self.post("runs/log-batch", body)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Api:
    """Raw HTTP helper (stateless, so session-scoped: module fixtures may seed data with it)."""
    return Api(server)


@pytest.fixture
def client(server: ServerProcess):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=server.url)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("exp")`` → ``"exp-<12 hex>"``: experiment names never collide between tests."""
    return unique


@pytest.fixture
def experiment_id(api: Api) -> str:
    """A fresh experiment created over raw HTTP."""
    return api.create_experiment()


@pytest.fixture
def fluent(server: ServerProcess, monkeypatch: pytest.MonkeyPatch):
    """The ``mlflow`` module pointed at the server, for fluent-API tests (``mlflow.start_run`` ...)."""
    import mlflow
    import mlflow.tracking.fluent as fluent_mod

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(server.url)
    # The fluent API remembers the last set_experiment() in a module global; another server
    # (other backend) may not have that id.
    monkeypatch.setattr(fluent_mod, "_active_experiment_id", None, raising=False)
    try:
        yield mlflow
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        # Back to "read MLFLOW_TRACKING_URI from the environment", which monkeypatch restores.
        mlflow.set_tracking_uri(None)
