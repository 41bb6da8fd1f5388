"""labtrack.dask without a cluster or a server: secrets stay hidden, settings map to the right
worker environment, the plugin sets and restores it, and the module needs none of the server."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from labtrack.dask import (  # noqa: E402
    ChildRun,
    Secret,
    TrackingPlugin,
    TrackingSettings,
    current_settings,
)

SECRET = "lt_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg"


def test_importing_the_helper_loads_none_of_the_server():
    code = (
        "import sys, labtrack.dask\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('uvicorn', 'psycopg', 'mlflow')"
        " or m.startswith(('labtrack.app', 'labtrack.store', 'labtrack.api', 'labtrack.auth'))]\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_secret_never_shows_itself():
    s = Secret(SECRET)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), repr({"token": s})):
        assert SECRET not in text and "********" in text
    assert s.reveal() == SECRET


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickled_secret_is_masked_and_round_trips(dumps):
    blob1, blob2 = dumps(Secret(SECRET)), dumps(Secret(SECRET))
    for blob in (blob1, blob2):
        assert SECRET.encode() not in blob
        assert SECRET[3:20].encode() not in blob
    assert blob1 != blob2  # a fresh key each time
    assert pickle.loads(blob1).reveal() == SECRET


def test_tampered_secret_is_refused():
    reducer, (key, masked) = Secret(SECRET).__reduce__()
    flipped = bytes([masked[0] ^ 1]) + masked[1:]
    with pytest.raises(ValueError):
        reducer(key, flipped)


def test_settings_need_a_server_and_move_credentials_out_of_the_uri():
    with pytest.raises(ValueError, match="tracking server"):
        TrackingSettings(tracking_uri="sqlite:///mlflow.db")
    s = TrackingSettings(tracking_uri="https://alice:s%40cret@labtrack.example.org/mlflow")
    assert s.tracking_uri == "https://labtrack.example.org/mlflow"
    assert s.username == "alice" and s.password.reveal() == "s@cret"
    assert "s@cret" not in repr(s) and "cret" not in repr(s)
    with pytest.raises(ValueError, match="username"):
        TrackingSettings(tracking_uri="http://h", password="x")


def test_worker_environment_per_auth_kind():
    base = {"tracking_uri": "http://h:5000", "experiment_id": "7", "parent_run_id": "abc"}
    token = TrackingSettings(**base, token=SECRET).worker_env()
    assert token["MLFLOW_TRACKING_URI"] == "http://h:5000"
    assert token["MLFLOW_EXPERIMENT_ID"] == "7"
    assert token["MLFLOW_TRACKING_TOKEN"] == SECRET
    assert token["MLFLOW_TRACKING_USERNAME"] is None and token["MLFLOW_TRACKING_PASSWORD"] is None
    assert token["MLFLOW_RUN_ID"] is None and token["MLFLOW_EXPERIMENT_NAME"] is None
    basic = TrackingSettings(**base, username="bob", password="pw-123456789012").worker_env()
    assert basic["MLFLOW_TRACKING_USERNAME"] == "bob"
    assert basic["MLFLOW_TRACKING_PASSWORD"] == "pw-123456789012"
    assert basic["MLFLOW_TRACKING_TOKEN"] is None
    extra = TrackingSettings(**base, extra_env={"MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert extra.auth == "none"
    assert extra.worker_env()["MLFLOW_TRACKING_INSECURE_TLS"] == "true"


@pytest.mark.parametrize("mlflow_loaded", [False, True])
def test_plugin_sets_the_environment_and_restores_it(monkeypatch, mlflow_loaded):
    if mlflow_loaded:  # then the plugin also aligns mlflow's in-process tracking URI
        import mlflow
    else:
        monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "inherited-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "inherited-password")
    monkeypatch.setenv("MLFLOW_RUN_ID", "notebook-run")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://before")
    settings = TrackingSettings(tracking_uri="http://h:1", experiment_id="3", token=SECRET)
    # As a worker gets it: through pickle.
    plugin = pickle.loads(pickle.dumps(TrackingPlugin(settings)))
    assert SECRET not in repr(plugin)
    try:
        plugin.setup(None)
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://h:1"
        assert os.environ["MLFLOW_TRACKING_TOKEN"] == SECRET
        assert os.environ["MLFLOW_EXPERIMENT_ID"] == "3"
        for gone in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_RUN_ID"):
            assert gone not in os.environ
        assert current_settings() is plugin.settings
        if mlflow_loaded:
            assert mlflow.get_tracking_uri() == "http://h:1"
    finally:
        plugin.teardown(None)
    assert current_settings() is None
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://before"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "inherited-user"
    assert os.environ["MLFLOW_RUN_ID"] == "notebook-run"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert "MLFLOW_EXPERIMENT_ID" not in os.environ


def _square(x):
    return x * x


def test_child_run_wrapper_is_picklable_and_named_after_the_function():
    wrapped = ChildRun(_square, run_name=lambda x: f"x={x}", parent_run_id="p", sweep_id="s")
    assert wrapped.__name__ == "_square"
    copy = cloudpickle.loads(cloudpickle.dumps(wrapped))
    assert copy.fn(3) == 9 and copy.run_name(3) == "x=3" and copy.parent_run_id == "p"
