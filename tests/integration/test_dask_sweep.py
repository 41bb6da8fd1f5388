"""Notebook and Dask workflows (issue #7): a hyperparameter sweep fanned out over a
``distributed.LocalCluster`` with 2 worker processes x 4 threads, every task a child run of the
notebook's run, logged through ``labtrack.dask`` against a real labtrack server with
authentication on, on SQLite and PostgreSQL.

The cluster is created before any credential is in the environment, so the workers can only log
through what the worker plugin gives them.
"""

from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cloudpickle
import mlflow
import mlflow.tracking.fluent as fluent_mod
import pytest
from mlflow import MlflowClient

import dask_tasks
from auth_support import ADMIN, As, basic, make_user, start_auth_server
from conftest import BACKENDS, unique

distributed = pytest.importorskip("distributed")
labtrack_dask = pytest.importorskip("labtrack.dask")
DaskTracking = labtrack_dask.DaskTracking

pytestmark = [pytest.mark.labtrack_only, pytest.mark.slow, pytest.mark.timeout(900)]

TASKS = 200
CREDENTIAL_VARS = labtrack_dask.CREDENTIAL_VARS


@pytest.fixture(scope="module")
def dask_client():
    for name in CREDENTIAL_VARS:
        assert not os.environ.get(name), f"{name} is set in the test process"
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=4,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request):
    server = start_auth_server(request.param)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def account(srv):
    admin = As(srv, basic(*ADMIN))
    try:
        yield make_user(admin)
    finally:
        admin.close()


@pytest.fixture
def notebook(srv, account, monkeypatch):
    """This process as the notebook: the user's tracking settings and a fresh experiment."""
    username, password = account
    for name in (
        *CREDENTIAL_VARS,
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setattr(fluent_mod, "_active_experiment_id", None, raising=False)
    mlflow.set_tracking_uri(None)
    experiment = mlflow.set_experiment(unique("dask"))
    try:
        yield experiment.experiment_id
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


def worker_env(client) -> dict[str, dict[str, bool]]:
    return client.run(dask_tasks.worker_auth_env)


def children(parent_run_id: str, experiment_id: str) -> list:
    client = MlflowClient()
    found, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        found.extend(page)
        token = page.token
        if not token:
            return found


def assert_server_log_clean(srv) -> None:
    text = srv.log_path.read_text(errors="replace")
    for bad in ("database is locked", "Traceback", "ERROR"):
        assert bad not in text, f"server log has {bad!r}:\n{srv.log_tail()}"


def assert_secrets_hidden(client, secrets: list[str], tracking, futures, tmp_path: Path) -> None:
    """No secret, nor its Basic-auth encoding, in what Dask shows, logs, stores or dumps."""
    secrets = [s for s in secrets if s]
    assert secrets
    forms = set(secrets)
    forms |= {base64.b64encode(s.encode()).decode() for s in secrets}
    username = tracking.settings.username
    if username:
        forms |= {
            base64.b64encode(f"{username}:{s}".encode()).decode().rstrip("=") for s in secrets
        }

    def check(what: str, blob) -> None:
        text = blob.decode("latin-1") if isinstance(blob, bytes) else str(blob)
        for form in forms:
            assert form not in text, f"a credential appears in {what}"

    scheduler = client.cluster.scheduler
    plugin = labtrack_dask.TrackingPlugin(tracking.worker_settings)
    check("the plugin's repr", repr(plugin))
    check("the settings' repr", repr(tracking.settings) + repr(tracking.worker_settings))
    check("the tracking object's repr", repr(tracking))
    check("the pickled plugin", cloudpickle.dumps(plugin))
    check("the scheduler's stored plugins", b"".join(scheduler.worker_plugins.values()))
    deadline = time.monotonic() + 30  # the client sends the graph asynchronously
    while not any(f.key in scheduler.tasks for f in futures) and time.monotonic() < deadline:
        time.sleep(0.01)
    specs = [scheduler.tasks[f.key].run_spec for f in futures if f.key in scheduler.tasks]
    assert specs, "no task of the sweep is on the scheduler"
    for spec in specs:
        check("a task spec", repr(spec))
        check("a pickled task spec", cloudpickle.dumps(spec))
    check("worker logs", client.get_worker_logs())
    check("nanny logs", client.get_worker_logs(nanny=True))
    check("scheduler logs", client.get_scheduler_logs())
    check(
        "the workers' plugin reprs",
        client.run(lambda dask_worker: repr(dask_worker.plugins)),
    )
    check(
        "the workers' settings",
        client.run(lambda: repr(labtrack_dask.current_settings())),
    )
    dump = tmp_path / "cluster-state"
    client.dump_cluster_state(str(dump), format="yaml")
    check("the cluster state dump", Path(f"{dump}.yaml").read_bytes())


def test_sweep_of_200_child_runs_lands_exactly(
    srv, notebook, account, dask_client, tmp_path, capsys
):
    username, password = account
    assert not any(any(env.values()) for env in worker_env(dask_client).values())
    started = time.monotonic()
    with mlflow.start_run(run_name="sweep") as parent:
        with DaskTracking(dask_client) as tracking:
            # Against labtrack the workers get a token minted for the sweep, not the password.
            assert tracking.worker_settings.auth == "token"
            token = tracking.worker_settings.token.reveal()
            assert token.startswith("lt_")
            for env in worker_env(dask_client).values():
                assert env == {
                    "MLFLOW_TRACKING_USERNAME": False,
                    "MLFLOW_TRACKING_PASSWORD": False,
                    "MLFLOW_TRACKING_TOKEN": True,
                }
            futures = tracking.map(dask_tasks.train, range(TASKS), run_name=dask_tasks.trial_name)
            assert_secrets_hidden(dask_client, [password, token], tracking, futures, tmp_path)
            results = dask_client.gather(futures)
        elapsed = time.monotonic() - started
    assert results == [dask_tasks.metric_value(t, dask_tasks.STEPS - 1) for t in range(TASKS)]
    # The plugin is gone from the workers, and so are the credentials.
    assert not any(any(env.values()) for env in worker_env(dask_client).values())

    runs = children(parent.info.run_id, notebook)
    names = sorted(r.info.run_name for r in runs)
    assert names == [dask_tasks.trial_name(t) for t in range(TASKS)], "lost or duplicated runs"
    for run in runs:
        trial = int(run.info.run_name.split("-")[1])
        assert run.info.status == "FINISHED", run.info
        assert run.info.experiment_id == notebook
        assert run.info.end_time and run.info.end_time >= run.info.start_time
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["mlflow.user"] == parent.data.tags["mlflow.user"]
        assert run.data.tags[labtrack_dask.SWEEP_TAG] == tracking.sweep_id
        assert run.data.params == {f"p{k}": f"{trial}-{k}" for k in range(dask_tasks.PARAMS)}
        assert run.data.metrics == {"loss": dask_tasks.metric_value(trial, dask_tasks.STEPS - 1)}

    client = MlflowClient()

    def history(run):
        return run, client.get_metric_history(run.info.run_id, "loss")

    with ThreadPoolExecutor(8) as pool:
        for run, points in pool.map(history, runs):
            trial = int(run.info.run_name.split("-")[1])
            got = sorted((m.step, m.value) for m in points)
            want = [(s, dask_tasks.metric_value(trial, s)) for s in range(dask_tasks.STEPS)]
            assert got == want, f"{run.info.run_name}: {len(points)} points"

    # The token the workers had is revoked.
    me = As(srv, basic(username, password))
    try:
        tokens = me.get("/api/2.0/labtrack/tokens/list")["tokens"]
    finally:
        me.close()
    minted = [t for t in tokens if tracking.sweep_id[:12] in t["name"]]
    assert len(minted) == 1 and minted[0].get("revoked_at"), minted
    assert_server_log_clean(srv)
    with capsys.disabled():
        print(f"\n[dask sweep] {srv.backend}: {TASKS} child runs in {elapsed:.1f}s")


def test_failing_task_ends_failed_with_the_error(srv, notebook, dask_client):
    with mlflow.start_run(run_name="sweep") as parent:
        with DaskTracking(dask_client) as tracking:
            ok = tracking.submit(dask_tasks.train, 1, run_name="fine")
            bad = tracking.submit(dask_tasks.fail, 7, run_name="diverges")
            distributed.wait([ok, bad])
            assert ok.status == "finished"
            error = bad.exception()
            assert isinstance(error, ValueError) and str(error) == "trial 7 diverged"
    runs = {r.info.run_name: r for r in children(parent.info.run_id, notebook)}
    assert sorted(runs) == ["diverges", "fine"]
    assert runs["fine"].info.status == "FINISHED"
    failed = runs["diverges"]
    assert failed.info.status == "FAILED"
    assert failed.info.end_time
    assert failed.data.params == {"trial": "7"}
    assert failed.data.tags[labtrack_dask.ERROR_TAG] == "ValueError: trial 7 diverged"
    trace = failed.data.tags[labtrack_dask.TRACEBACK_TAG]
    assert trace.startswith("Traceback") and "dask_tasks.py" in trace
    assert trace.rstrip().endswith("ValueError: trial 7 diverged")
    assert_server_log_clean(srv)


def test_token_auth_passed_through_stays_hidden(
    srv, notebook, account, dask_client, tmp_path, monkeypatch
):
    """The notebook signs in with a token and passes it on as it is (delegate=False)."""
    username, password = account
    me = As(srv, basic(username, password))
    try:
        token = me.post("/api/2.0/labtrack/tokens/create", {"name": "notebook"})["token"]
    finally:
        me.close()
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    with mlflow.start_run(run_name="sweep") as parent:
        with DaskTracking(dask_client, delegate=False) as tracking:
            assert tracking.worker_settings.token.reveal() == token
            futures = tracking.map(dask_tasks.train, range(8))
            assert_secrets_hidden(dask_client, [token], tracking, futures, tmp_path)
            dask_client.gather(futures)
    runs = children(parent.info.run_id, notebook)
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}


def test_run_of_a_lost_worker_is_marked_killed(srv, notebook, tmp_path):
    """A worker dies mid-task: Dask reruns the task elsewhere (a new child run), and closing the
    sweep ends the run the dead worker left RUNNING as KILLED.

    Own cluster: the nanny restarts the dead worker from this process, whose environment holds
    the notebook's credentials now, and the shared cluster's workers must not inherit them."""
    marker = tmp_path / "died-once"
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    dask_client = distributed.Client(cluster)
    try:
        with mlflow.start_run(run_name="sweep") as parent:
            with DaskTracking(dask_client) as tracking:
                run_id = tracking.submit(dask_tasks.die_once, str(marker)).result(timeout=120)
    finally:
        dask_client.close()
        cluster.close()
    runs = {r.info.run_id: r for r in children(parent.info.run_id, notebook)}
    assert len(runs) == 2
    assert runs[run_id].info.status == "FINISHED"
    assert runs[run_id].data.params == {"attempt": "second"}
    (lost,) = [r for r in runs.values() if r.info.run_id != run_id]
    assert lost.data.params == {"attempt": "first"}
    assert lost.info.status == "KILLED"
    assert "abandoned" in lost.data.tags[labtrack_dask.ERROR_TAG]
