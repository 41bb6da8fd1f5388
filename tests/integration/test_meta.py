"""Health, version, server-info, the /ajax-api mirror, --static-prefix, and the labtrack CLI (§2.1, §4.12, §4.13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from packaging.version import Version


def test_health(server):
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    assert r.text.strip() == "OK"


def test_version(server, is_mlflow):
    r = httpx.get(f"{server.url}/version")
    assert r.status_code == 200
    version = Version(r.text.strip())  # the 3.x client parses it with packaging
    if is_mlflow:
        assert version == Version("3.17.2")


@pytest.mark.parametrize("prefix", ["/api", "/ajax-api"])
def test_server_info(server, prefix):
    r = httpx.get(f"{server.url}{prefix}/3.0/mlflow/server-info")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    info = r.json()
    for key in ("workspaces_enabled", "multipart_uploads_enabled", "multipart_downloads_enabled"):
        assert isinstance(info[key], bool), info
    assert info["workspaces_enabled"] is False
    assert isinstance(info.get("store_type", ""), str)


def test_ajax_api_mirrors_api(api, unique_name):
    assert api.get("/ajax-api/2.0/mlflow/experiments/get", experiment_id="0") == api.get(
        "experiments/get", experiment_id="0"
    )
    exp_id = api.post("/ajax-api/2.0/mlflow/experiments/create", {"name": unique_name("ajax")})[
        "experiment_id"
    ]
    run = api.post("/ajax-api/2.0/mlflow/runs/create", {"experiment_id": exp_id, "start_time": 1})[
        "run"
    ]
    run_id = run["info"]["run_id"]
    api.post(
        "/ajax-api/2.0/mlflow/runs/log-batch",
        {"run_id": run_id, "params": [{"key": "p", "value": "1"}]},
    )
    found = api.post("/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})
    assert [r["info"]["run_id"] for r in found["runs"]] == [run_id]
    assert api.get("runs/get", run_id=run_id) == api.get(
        "/ajax-api/2.0/mlflow/runs/get", run_id=run_id
    )
    exps = api.get(
        "/ajax-api/2.0/mlflow/experiments/search",
        max_results=5,
        filter=f"attribute.experiment_id = '{exp_id}'",
    )
    assert [e["experiment_id"] for e in exps["experiments"]] == [exp_id]


def test_json_responses_have_json_content_type(api):
    r = api("GET", "experiments/get", params={"experiment_id": "0"})
    assert r.headers["content-type"].startswith("application/json")
    r = api("POST", "runs/search", json={"experiment_ids": ["0"], "max_results": 1})
    assert r.headers["content-type"].startswith("application/json")


def test_empty_results_are_empty_objects(api):
    exp_id = api.create_experiment()
    assert api.post("runs/search", {"experiment_ids": [exp_id]}) == {}
    run_id = api.create_run(exp_id)["info"]["run_id"]
    assert api.get("metrics/get-history", run_id=run_id, metric_key="none") == {}


# --------------------------------------------------------------------------------------------
# --static-prefix
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefixed(server, server_factory):
    """A second server on a fresh backend of the same kind, started with --static-prefix /mlp."""
    return server_factory(server.backend, static_prefix="/mlp")


def test_static_prefix_routes(prefixed):
    root = prefixed.root_url
    assert prefixed.url == f"{root}/mlp"
    for path in (
        "/mlp/health",
        "/mlp/version",
        "/mlp/api/2.0/mlflow/experiments/get?experiment_id=0",
        "/mlp/ajax-api/2.0/mlflow/experiments/get?experiment_id=0",
        "/mlp/api/3.0/mlflow/server-info",
        "/mlp/ajax-api/3.0/mlflow/server-info",
    ):
        r = httpx.get(root + path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    # the API is not served outside the prefix
    for path in (
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
        "/ajax-api/2.0/mlflow/experiments/get?experiment_id=0",
    ):
        assert httpx.get(root + path).status_code == 404, path


def test_static_prefix_client_flow(prefixed, unique_name):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=prefixed.url)
    exp_id = client.create_experiment(unique_name("prefixed"))
    run = client.create_run(exp_id, run_name="behind-prefix")
    client.log_param(run.info.run_id, "p", "1")
    for step in range(3):
        client.log_metric(run.info.run_id, "m", float(step), step=step)
    client.set_terminated(run.info.run_id)
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"p": "1"}
    assert got.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "m")] == [0, 1, 2]
    assert [
        r.info.run_name for r in client.search_runs([exp_id], filter_string="params.p = '1'")
    ] == ["behind-prefix"]


def test_static_prefix_fluent(prefixed, unique_name, monkeypatch):
    import mlflow
    import mlflow.tracking.fluent as fluent_mod

    monkeypatch.setenv("MLFLOW_TRACKING_URI", prefixed.url)
    monkeypatch.setattr(fluent_mod, "_active_experiment_id", None, raising=False)
    mlflow.set_tracking_uri(prefixed.url)
    try:
        mlflow.set_experiment(unique_name("prefixed-fluent"))
        with mlflow.start_run() as run:
            mlflow.log_metrics({"a": 1.0, "b": 2.0})
            mlflow.log_params({"x": "y"})
        got = mlflow.MlflowClient().get_run(run.info.run_id)
        assert got.data.metrics == {"a": 1.0, "b": 2.0}
        assert got.data.params == {"x": "y"}
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


# --------------------------------------------------------------------------------------------
# labtrack CLI
# --------------------------------------------------------------------------------------------


def _server_python():
    return os.environ.get("LABTRACK_SERVER_PYTHON") or sys.executable


@pytest.mark.labtrack_only
def test_cli_version():
    out = subprocess.run(
        [_server_python(), "-m", "labtrack", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert any(ch.isdigit() for ch in out.stdout + out.stderr)


@pytest.mark.labtrack_only
def test_cli_db_upgrade_is_idempotent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'upgrade.db'}"
    for _ in range(2):
        out = subprocess.run(
            [_server_python(), "-m", "labtrack", "db", "upgrade", "--backend-store-uri", uri],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "upgrade.db").exists()


@pytest.mark.labtrack_only
def test_cli_env_vars_mirror_flags(tmp_path):
    """LABTRACK_<FLAG> env vars configure the server like the flags do."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABTRACK_")}
    env.update(
        LABTRACK_HOST="127.0.0.1",
        LABTRACK_PORT=str(port),
        LABTRACK_BACKEND_STORE_URI=f"sqlite:///{tmp_path / 'env.db'}",
        LABTRACK_ARTIFACTS_DESTINATION=str(tmp_path / "art"),
    )
    proc = subprocess.Popen(
        [_server_python(), "-m", "labtrack", "server"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("server configured through LABTRACK_* env vars never became healthy")
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}
        )
        assert r.status_code == 200 and r.json()["experiment"]["name"] == "Default"
        assert (tmp_path / "env.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.labtrack_only
@pytest.mark.parametrize("workers", [1, 2])
def test_keep_alive_requests_do_not_wait_on_nagle(server, server_factory, workers):
    """TCP_NODELAY in every mode: with Nagle on, a response written in two parts (headers, then
    body) waits for the client's delayed ACK, ~40 ms on every request after the first on a
    keep-alive connection. Several workers is the mode where uvicorn used to leave it on."""
    srv = server if workers == 1 else server_factory(server.backend, extra_args=["--workers", "2"])
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        times = []
        for _ in range(40):
            start = time.perf_counter()
            r = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"})
            times.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
    times.sort()
    assert times[len(times) // 2] < 0.02, f"median {times[len(times) // 2] * 1000:.1f} ms"
