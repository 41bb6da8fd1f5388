"""The 2.x ``AuthServiceClient`` (mlflow 2.22.5) against labtrack with authentication on:
users and the per-resource experiment / registered-model permission endpoints.

mlflow-skinny has no Flask, and ``mlflow.server``'s package imports Flask, so the client module
is loaded with that package glue stubbed out; the client code itself is the real 2.x one.
"""

from __future__ import annotations

import os
import sys
import types
import uuid
from pathlib import Path

import pytest

from conftest import TARGET, _start

ADMIN = ("admin", "admin-password-123")

pytestmark = pytest.mark.skipif(TARGET != "labtrack", reason="labtrack's auth (mlflow needs ini)")


def _auth_client_class():
    import mlflow

    root = Path(mlflow.__file__).parent / "server"
    if "mlflow.server" not in sys.modules:
        server = types.ModuleType("mlflow.server")
        server.__path__ = [str(root)]
        sys.modules["mlflow.server"] = server
        handlers = types.ModuleType("mlflow.server.handlers")
        handlers._get_rest_path = lambda path, version=2: f"/api/{version}.0{path}"
        sys.modules["mlflow.server.handlers"] = handlers
        auth = types.ModuleType("mlflow.server.auth")
        auth.__path__ = [str(root / "auth")]
        sys.modules["mlflow.server.auth"] = auth
    from mlflow.server.auth.client import AuthServiceClient

    return AuthServiceClient


@pytest.fixture(scope="module")
def srv():
    saved = {k: os.environ.get(k) for k in ("LABTRACK_ADMIN_USERNAME", "LABTRACK_ADMIN_PASSWORD")}
    os.environ["LABTRACK_ADMIN_USERNAME"], os.environ["LABTRACK_ADMIN_PASSWORD"] = ADMIN
    try:
        server = _start("sqlite")
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    yield server
    server.stop()


@pytest.fixture
def as_user(monkeypatch):
    def use(username, password):
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)

    return use


def test_2x_auth_client(srv, as_user):
    import mlflow
    from mlflow.exceptions import MlflowException

    client_class = _auth_client_class()
    auth = client_class(srv.url)
    as_user(*ADMIN)
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    assert auth.create_user(alice, "alice-password-1").username == alice
    assert auth.create_user(bob, "bob-password-123").is_admin is False
    assert auth.get_user(bob).username == bob

    as_user(alice, "alice-password-1")
    tracking = mlflow.MlflowClient(tracking_uri=srv.url)
    exp = tracking.create_experiment(f"exp-{uuid.uuid4().hex[:6]}")
    run = tracking.create_run(exp)

    permission = auth.create_experiment_permission(exp, bob, "EDIT")
    assert (permission.experiment_id, permission.permission) == (exp, "EDIT")
    assert auth.get_experiment_permission(exp, bob).permission == "EDIT"
    as_user(bob, "bob-password-123")
    mlflow.MlflowClient(tracking_uri=srv.url).log_metric(run.info.run_id, "m", 1.0)
    as_user(alice, "alice-password-1")
    auth.update_experiment_permission(exp, bob, "READ")
    as_user(bob, "bob-password-123")
    with pytest.raises(MlflowException) as err:
        mlflow.MlflowClient(tracking_uri=srv.url).log_metric(run.info.run_id, "m", 2.0)
    assert "PERMISSION_DENIED" in str(err.value) or err.value.error_code == "PERMISSION_DENIED"
    as_user(alice, "alice-password-1")
    auth.delete_experiment_permission(exp, bob)
    with pytest.raises(MlflowException):
        auth.get_experiment_permission(exp, bob)

    as_user(*ADMIN)
    model = f"model-{uuid.uuid4().hex[:6]}"
    made = auth.create_registered_model_permission(model, bob, "MANAGE")
    assert (made.name, made.permission) == (model, "MANAGE")
    assert auth.get_registered_model_permission(model, bob).permission == "MANAGE"
    auth.update_registered_model_permission(model, bob, "READ")
    auth.delete_registered_model_permission(model, bob)
    auth.update_user_password(bob, "bob-password-456")
    auth.update_user_admin(bob, True)
    auth.delete_user(bob)
    with pytest.raises(MlflowException):
        auth.get_user(bob)
