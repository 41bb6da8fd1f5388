"""Every route declares who may call it (issue #5): a new route can't be left open by accident.

The integration twin (tests/integration/test_auth_routes.py) sends each route a request without
credentials to a real server and expects 401.
"""

from __future__ import annotations

import pytest

from labtrack.app import App
from labtrack.auth.permissions import GRANTABLE
from labtrack.config import Settings

# Routes anyone may call. Keep this list short and justify every entry.
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/version"),
    ("GET", "/api/3.0/mlflow/server-info"),
    ("GET", "/ajax-api/3.0/mlflow/server-info"),
    # The web UI's sign-in form (it checks the credentials itself) and its static files
    # (scripts, styles, Plotly.js: nothing secret). Every UI page needs sign-in (issue #6).
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("GET", "/static/"),
}
# Capability URLs: the unguessable id in the path is the credential (the stock client uploads
# multipart parts to the URLs the server handed out, without credentials). Creating and
# completing the upload needs EDIT on the experiment.
CAPABILITY = {
    ("PUT", "/api/2.0/mlflow-artifacts/mpu/part/"),
    ("PUT", "/ajax-api/2.0/mlflow-artifacts/mpu/part/"),
}
RESOURCES = {"experiment", "run", "registered_model", "logged_model", "artifact", "user", "server"}
PERMISSIONS = {"READ", "USE", "EDIT", "MANAGE", "CREATE", "ADMIN", "AUTHENTICATED"}


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("routes")
    settings = Settings(
        backend_store_uri=f"sqlite:///{folder / 'db.sqlite'}",
        artifacts_destination=str(folder / "artifacts"),
    )
    return App(settings).router.routes


def test_only_the_allowed_routes_are_public(routes):
    public = {(r.method, r.path) for r in routes if r.public}
    assert public <= PUBLIC | CAPABILITY, (
        f"unexpected public routes: {public - PUBLIC - CAPABILITY}"
    )
    assert PUBLIC <= public


def test_every_other_route_declares_its_access(routes):
    problems = []
    for r in routes:
        if r.public:
            continue
        a = r.access
        name = f"{r.method} {r.path}"
        if a is None:
            problems.append(f"{name}: no access declaration")
            continue
        if a.resource not in RESOURCES or a.permission not in PERMISSIONS:
            problems.append(f"{name}: unknown resource/permission {a}")
        if a.resource in ("experiment", "run", "registered_model", "logged_model", "artifact"):
            if not a.field:
                problems.append(f"{name}: {a.resource} access without the field naming it")
            if a.permission not in ("READ", "USE", "EDIT", "MANAGE"):
                problems.append(f"{name}: {a.permission} makes no sense on one {a.resource}")
        if a.field == "path" and not r.prefix and a.resource != "artifact":
            problems.append(f"{name}: field 'path' on a route without a path remainder")
    assert not problems, "\n".join(problems)


def test_grants_exist_for_every_resource_that_needs_them():
    assert set(GRANTABLE) == {"experiment", "registered_model"}
