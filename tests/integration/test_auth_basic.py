"""Built-in users, personal access tokens, permissions and the MLflow-compatible admin API
(issue #5), against real labtrack servers with authentication on."""

from __future__ import annotations

import time

import pytest
from mlflow.exceptions import MlflowException

from auth_support import ADMIN, As, basic, bearer, make_user, start_auth_server
from conftest import BACKENDS, unique

pytestmark = pytest.mark.labtrack_only

PRIVATE = ["--auth-default-permission", "NO_PERMISSIONS"]


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request):
    server = start_auth_server(request.param, PRIVATE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(srv):
    client = As(srv, basic(*ADMIN))
    yield client
    client.close()


@pytest.fixture
def user(srv, admin):
    """A fresh user: (username, password, As-client)."""
    username, password = make_user(admin)
    client = As(srv, basic(username, password))
    yield username, password, client
    client.close()


@pytest.fixture
def other(srv, admin):
    username, password = make_user(admin)
    client = As(srv, basic(username, password))
    yield username, password, client
    client.close()


@pytest.fixture
def as_user(monkeypatch):
    """Point the stock client's credentials at one user (or a bearer token)."""

    def use(username=None, password=None, token=None):
        for var in (
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_TOKEN",
        ):
            monkeypatch.delenv(var, raising=False)
        if username is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        if token is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)

    return use


def _experiment(client: As, name: str | None = None) -> str:
    return client.post("experiments/create", {"name": name or unique("exp")})["experiment_id"]


def _run(client: As, experiment_id: str) -> str:
    body = {"experiment_id": experiment_id, "start_time": int(time.time() * 1000)}
    return client.post("runs/create", body)["run"]["info"]["run_id"]


def _metric(run_id: str) -> dict:
    return {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}


# --- authentication ---------------------------------------------------------------------------------
def test_no_credentials_is_401_json_with_challenge(srv):
    anon = As(srv)
    r = anon.call("POST", "experiments/search", {"max_results": 10})
    assert r.status_code == 401
    assert r.json()["error_code"] == "UNAUTHENTICATED"
    assert r.headers["www-authenticate"] == 'Basic realm="labtrack"'
    for path in ("/health", "/version", "/api/3.0/mlflow/server-info"):
        assert anon.status("GET", path) == 200, path
    anon.close()


def test_unknown_user_and_wrong_password_look_the_same(srv, user):
    username, _, _ = user
    wrong = As(srv, basic(username, "not-the-password")).call("GET", "users/current")
    unknown = As(srv, basic(unique("nobody"), "whatever-password")).call("GET", "users/current")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_bearer_garbage_is_401(srv):
    r = As(srv, bearer("some-token")).call("POST", "experiments/search", {"max_results": 1})
    assert r.status_code == 401


def test_stock_client_with_username_and_password(srv, user, as_user):
    import mlflow

    username, password, _ = user
    as_user(username, password)
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    exp = client.create_experiment(unique("exp"))
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.log_param(run.info.run_id, "lr", "0.1")
    got = client.get_run(run.info.run_id)
    assert got.data.metrics == {"loss": 0.5}
    assert [e.experiment_id for e in client.search_experiments()] == [exp]


def test_stock_client_with_token_as_password_and_as_bearer(srv, user, as_user):
    import mlflow

    username, _, me = user
    created = me.post("/api/2.0/labtrack/tokens/create", {"name": "ci"})
    token = created["token"]
    assert token.startswith("lt_") and created["token_info"]["name"] == "ci"
    assert token not in str(me.get("/api/2.0/labtrack/tokens/list"))  # shown only once

    as_user(username, token)
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    exp = client.create_experiment(unique("exp"))
    as_user(token=token)
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "acc", 0.9)
    assert client.get_experiment(exp).experiment_id == exp
    # A token is only good with its owner's username.
    assert As(srv, basic("admin", token)).status("GET", "users/current") == 401


def test_users_current_and_own_permissions(srv, user):
    username, _, me = user
    exp = _experiment(me)
    current = me.get("users/current")
    assert current["user"]["username"] == username
    assert current["user"]["is_admin"] is False
    perms = me.get("/api/3.0/mlflow/users/current/permissions")
    assert perms["is_admin"] is False
    entry = next(p for p in perms["permissions"] if p["resource_pattern"] == exp)
    assert entry["permission"] == "MANAGE"
    assert entry["resource_type"] == "experiment"
    assert entry["role_name"] == f"__user_{current['user']['id']}__"


# --- authorization ----------------------------------------------------------------------------------
def test_other_user_is_refused(srv, user, other, as_user):
    import mlflow

    _, _, alice = user
    bob_name, bob_password, bob = other
    exp = _experiment(alice)
    run = _run(alice, exp)
    assert bob.error("GET", "experiments/get", experiment_id=exp) == (403, "PERMISSION_DENIED")
    assert bob.error("POST", "runs/log-metric", _metric(run)) == (403, "PERMISSION_DENIED")
    assert bob.error("GET", "runs/get", run_id=run) == (403, "PERMISSION_DENIED")
    assert bob.error("GET", "runs/get", run_uuid=run) == (403, "PERMISSION_DENIED")
    assert bob.status("GET", "metrics/get-history", run_id=run, metric_key="m") == 403
    assert bob.status("POST", "runs/create", {"experiment_id": exp}) == 403
    assert bob.status("POST", "experiments/delete", {"experiment_id": exp}) == 403
    # runs/search over a foreign experiment is cut down to nothing, not an error.
    assert bob.post("runs/search", {"experiment_ids": [exp]}) == {}
    # Admin endpoints.
    assert bob.status("POST", "users/create", {"username": "x", "password": "y" * 12}) == 403
    assert bob.status("GET", "users/get", username=user[0]) == 403

    as_user(bob_name, bob_password)
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    with pytest.raises(MlflowException) as err:
        client.log_metric(run, "m", 1.0)
    assert err.value.error_code == "PERMISSION_DENIED"


def test_search_shows_only_readable_experiments_with_paging(srv, admin, user, other):
    _, _, alice = user
    _, _, bob = other
    tag = unique("batch")
    mine = {_experiment(alice, f"{tag}-a{i}") for i in range(5)}
    theirs = {_experiment(bob, f"{tag}-b{i}") for i in range(3)}

    def all_pages(client: As, page_size: int) -> list[str]:
        ids, token = [], None
        while True:
            body = {"max_results": page_size, "filter": f"name LIKE '{tag}%'"}
            if token:
                body["page_token"] = token
            resp = client.post("experiments/search", body)
            page = [e["experiment_id"] for e in resp.get("experiments", [])]
            assert len(page) == page_size or "next_page_token" not in resp
            ids += page
            token = resp.get("next_page_token")
            if not token:
                return ids

    assert sorted(all_pages(alice, 2)) == sorted(mine)
    assert sorted(all_pages(bob, 2)) == sorted(theirs)
    assert sorted(all_pages(admin, 3)) == sorted(mine | theirs)
    # Without a filter a page of one is full until the caller's experiments run out.
    first = bob.post("experiments/search", {"max_results": 1})
    assert len(first["experiments"]) == 1


def test_grant_and_revoke_take_effect(srv, user, other):
    from mlflow.server import get_app_client

    alice_name, alice_password, alice = user
    bob_name, _, bob = other
    exp = _experiment(alice)
    run = _run(alice, exp)
    # Alice manages her experiment, so she may grant on it (the 3.x client).
    import os

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
        alice_name,
        alice_password,
    )
    try:
        auth = get_app_client("basic-auth", tracking_uri=srv.url)
        auth.grant_user_permission(bob_name, "experiment", exp, "READ")
        assert bob.get("experiments/get", experiment_id=exp)["experiment"]["experiment_id"] == exp
        assert bob.status("POST", "runs/log-metric", _metric(run)) == 403
        auth.grant_user_permission(bob_name, "experiment", exp, "EDIT")
        bob.post("runs/log-metric", _metric(run))
        result = auth.get_user_permission(bob_name, "experiment", exp)
        assert (result.allowed, result.permission) == (True, "EDIT")
        assert bob.status("POST", "runs/delete", {"run_id": run}) == 403  # EDIT can't delete
        auth.revoke_user_permission(bob_name, "experiment", exp)
        assert bob.status("GET", "experiments/get", experiment_id=exp) == 403
        # Bob can't grant himself anything on Alice's experiment.
        body = {
            "username": bob_name,
            "resource_type": "experiment",
            "resource_id": exp,
            "permission": "MANAGE",
        }
        assert bob.status("POST", "/api/3.0/mlflow/users/permissions/grant", body) == 403
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")


def test_groups_and_deny(srv, admin, user, other):
    _, _, alice = user
    bob_name, _, bob = other
    exp = _experiment(alice)
    run = _run(alice, exp)
    team = unique("team")
    admin.post("/api/2.0/labtrack/groups/create", {"name": team})
    admin.post("/api/2.0/labtrack/groups/members/add", {"name": team, "username": bob_name})
    alice.post(
        "/api/2.0/labtrack/groups/permissions/grant",
        {"group": team, "resource_type": "experiment", "resource_id": exp, "permission": "EDIT"},
    )
    bob.post("runs/log-metric", _metric(run))
    # An explicit DENY vetoes every grant, the group's included.
    admin.post(
        "/api/3.0/mlflow/users/permissions/grant",
        {
            "username": bob_name,
            "resource_type": "experiment",
            "resource_id": exp,
            "permission": "DENY",
        },
    )
    assert bob.status("GET", "experiments/get", experiment_id=exp) == 403
    assert bob.post("runs/search", {"experiment_ids": [exp]}) == {}
    who = alice.get(
        "/api/2.0/labtrack/permissions/who-can-access", resource_type="experiment", resource_id=exp
    )
    held = {(g["principal_type"], g["principal"], g["permission"]) for g in who["grants"]}
    assert ("group", team, "EDIT") in held and ("user", bob_name, "DENY") in held
    assert "admin" in who["admins"]
    assert (
        bob.status(
            "GET",
            "/api/2.0/labtrack/permissions/who-can-access",
            resource_type="experiment",
            resource_id=exp,
        )
        == 403
    )


def test_reader_role_may_not_create(srv, admin, user):
    username, _, me = user
    admin.ok(
        "PATCH", "/api/2.0/labtrack/users/update-role", {"username": username, "role": "reader"}
    )
    assert me.error("POST", "experiments/create", {"name": unique("x")}) == (
        403,
        "PERMISSION_DENIED",
    )
    admin.ok(
        "PATCH", "/api/2.0/labtrack/users/update-role", {"username": username, "role": "creator"}
    )
    _experiment(me)


# --- credentials lifecycle -----------------------------------------------------------------------------
def test_revoked_and_expired_tokens_are_refused(srv, user):
    _, _, me = user
    token = me.post("/api/2.0/labtrack/tokens/create", {"name": "a"})
    short = me.post(
        "/api/2.0/labtrack/tokens/create",
        {"name": "short", "expires_at": int(time.time() * 1000) + 1500},
    )
    for t in (token, short):
        assert As(srv, bearer(t["token"])).status("GET", "users/current") == 200
    me.post("/api/2.0/labtrack/tokens/revoke", {"token_id": token["token_info"]["token_id"]})
    assert As(srv, bearer(token["token"])).status("GET", "users/current") == 401
    time.sleep(2.0)
    assert As(srv, bearer(short["token"])).status("GET", "users/current") == 401
    listed = {t["name"]: t for t in me.get("/api/2.0/labtrack/tokens/list")["tokens"]}
    assert "revoked_at" in listed["a"] and "expires_at" in listed["short"]


def test_cannot_revoke_someone_elses_token(srv, user, other):
    _, _, alice = user
    _, _, bob = other
    token = alice.post("/api/2.0/labtrack/tokens/create", {})
    body = {"token_id": token["token_info"]["token_id"]}
    assert bob.status("POST", "/api/2.0/labtrack/tokens/revoke", body) == 404
    assert As(srv, bearer(token["token"])).status("GET", "users/current") == 200


def test_password_change_stops_the_old_password(srv, user):
    username, password, me = user
    new = password + "-new"
    body = {"username": username, "password": new}
    assert me.error("PATCH", "users/update-password", body)[0] == 400  # current_password needed
    me.ok("PATCH", "users/update-password", {**body, "current_password": password})
    assert As(srv, basic(username, password)).status("GET", "users/current") == 401
    assert As(srv, basic(username, new)).status("GET", "users/current") == 200


def test_failed_sign_ins_are_slowed_down(srv, admin):
    username, password = make_user(admin)
    wrong = As(srv, basic(username, "wrong-password-!"))
    statuses = [wrong.status("GET", "users/current") for _ in range(5)]
    assert statuses == [401] * 5
    r = wrong.call("GET", "users/current")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    # Even the right password must wait now (the check isn't even run).
    assert As(srv, basic(username, password)).status("GET", "users/current") == 429
    time.sleep(1.1)
    assert As(srv, basic(username, password)).status("GET", "users/current") == 200


# --- admin API (the 3.x basic-auth client) ---------------------------------------------------------------
def test_app_client_user_admin(srv, monkeypatch):
    from mlflow.server import get_app_client

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    auth = get_app_client("basic-auth", tracking_uri=srv.url)
    name = unique("carol")
    user = auth.create_user(name, "carol-password-1")
    assert user.username == name and user.is_admin is False
    assert auth.get_user(name).id == user.id
    with pytest.raises(MlflowException) as err:
        auth.create_user(name, "carol-password-1")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    auth.update_user_password(name, "carol-password-2")
    assert As(srv, basic(name, "carol-password-2")).status("GET", "users/current") == 200
    auth.update_user_admin(name, True)
    assert As(srv, basic(name, "carol-password-2")).get("users/list")["users"]
    auth.update_user_admin(name, False)
    assert As(srv, basic(name, "carol-password-2")).status("GET", "users/list") == 403
    auth.delete_user(name)
    with pytest.raises(MlflowException) as err:
        auth.get_user(name)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert As(srv, basic(name, "carol-password-2")).status("GET", "users/current") == 401


def test_app_client_roles(srv, admin, user, other, monkeypatch):
    from mlflow.server import get_app_client

    _, _, alice = user
    bob_name, _, bob = other
    exp = _experiment(alice)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    auth = get_app_client("basic-auth", tracking_uri=srv.url)
    role = auth.create_role("default", unique("readers"), description="read one experiment")
    assert auth.get_role(role.id).name == role.name
    rp = auth.add_role_permission(role.id, "experiment", exp, "READ")
    assert (rp.resource_type, rp.resource_pattern, rp.permission) == ("experiment", exp, "READ")
    assert bob.status("GET", "experiments/get", experiment_id=exp) == 403
    assignment = auth.assign_role(bob_name, role.id)
    assert assignment.role_id == role.id
    assert bob.status("GET", "experiments/get", experiment_id=exp) == 200
    assert [r.id for r in auth.list_user_roles(bob_name)] == [role.id]
    assert [a.user_id for a in auth.list_role_users(role.id)] == [assignment.user_id]
    assert role.id in [r.id for r in auth.list_roles("default")]
    updated = auth.update_role_permission(rp.id, "EDIT")
    assert updated.permission == "EDIT"
    assert [p.permission for p in auth.list_role_permissions(role.id)] == ["EDIT"]
    assert auth.update_role(role.id, description="edit it").description == "edit it"
    auth.remove_role_permission(rp.id)
    assert bob.status("GET", "experiments/get", experiment_id=exp) == 403
    auth.unassign_role(bob_name, role.id)
    auth.delete_role(role.id)
    with pytest.raises(MlflowException):
        auth.get_role(role.id)


def test_legacy_2x_permission_endpoints(srv, admin, user, other):
    alice_name, _, alice = user
    bob_name, _, bob = other
    exp = _experiment(alice)
    base = "experiments/permissions/"
    created = alice.post(
        base + "create", {"experiment_id": exp, "username": bob_name, "permission": "READ"}
    )
    perm = created["experiment_permission"]
    assert perm["experiment_id"] == exp and perm["permission"] == "READ"
    assert isinstance(perm["user_id"], int)
    assert (
        alice.error(
            "POST",
            base + "create",
            {"experiment_id": exp, "username": bob_name, "permission": "READ"},
        )[1]
        == "RESOURCE_ALREADY_EXISTS"
    )
    got = alice.get(base + "get", experiment_id=exp, username=bob_name)
    assert got["experiment_permission"]["permission"] == "READ"
    alice.ok(
        "PATCH", base + "update", {"experiment_id": exp, "username": bob_name, "permission": "EDIT"}
    )
    assert bob.status("POST", "runs/create", {"experiment_id": exp}) == 200
    alice.ok("DELETE", base + "delete", {"experiment_id": exp, "username": bob_name})
    assert alice.error("GET", base + "get", experiment_id=exp, username=bob_name) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert bob.status("GET", base + "get", experiment_id=exp, username=bob_name) == 403

    model = unique("model")
    mbase = "registered-models/permissions/"
    made = admin.post(mbase + "create", {"name": model, "username": bob_name, "permission": "EDIT"})
    assert made["registered_model_permission"]["name"] == model
    assert (
        admin.get(mbase + "get", name=model, username=bob_name)["registered_model_permission"][
            "permission"
        ]
        == "EDIT"
    )
    admin.ok(
        "PATCH", mbase + "update", {"name": model, "username": bob_name, "permission": "MANAGE"}
    )
    admin.ok("DELETE", mbase + "delete", {"name": model, "username": bob_name})


def test_audit_log(srv, admin, user):
    username, _, me = user
    As(srv, basic(username, "definitely-wrong")).status("GET", "users/current")
    exp = _experiment(me)
    me.post("/api/2.0/labtrack/tokens/create", {"name": "audited"})
    events = admin.get("/api/2.0/labtrack/audit", max_results=200)["events"]
    mine = [(e["action"], e["outcome"]) for e in events if username in (e["actor"], e["target"])]
    assert ("sign_in", "success") in mine and ("sign_in", "failure") in mine
    assert ("token_create", "success") in mine and ("user_create", "success") in mine
    text = str(events)
    assert "definitely-wrong" not in text and "lt_" not in text.replace("'hint'", "")
    assert me.status("GET", "/api/2.0/labtrack/audit") == 403
    grants = [e for e in events if e["action"] == "grant"]
    assert grants == [] or all(e["outcome"] == "success" for e in grants)
    assert exp
    page = admin.get("/api/2.0/labtrack/audit", max_results=1)
    assert len(page["events"]) == 1 and page["next_page_token"]


def test_default_read_like_mlflow():
    """Without --auth-default-permission everybody reads everything, like MLflow."""
    srv = start_auth_server("sqlite")
    try:
        admin = As(srv, basic(*ADMIN))
        make_user(admin, "alice", "alice-password-123")
        alice = As(srv, basic("alice", "alice-password-123"))
        make_user(admin, "bob", "bob-password-1234")
        bob = As(srv, basic("bob", "bob-password-1234"))
        exp = _experiment(alice, "alice-exp")
        run = _run(alice, exp)
        assert bob.get("experiments/get", experiment_id=exp)["experiment"]["name"] == "alice-exp"
        assert bob.status("POST", "runs/log-metric", _metric(run)) == 403
        assert exp in [
            e["experiment_id"]
            for e in bob.post("experiments/search", {"max_results": 100})["experiments"]
        ]
        admin.post(
            "/api/3.0/mlflow/users/permissions/grant",
            {
                "username": "bob",
                "resource_type": "experiment",
                "resource_id": exp,
                "permission": "EDIT",
            },
        )
        bob.post("runs/log-metric", _metric(run))
        assert bob.status("POST", "runs/delete", {"run_id": run}) == 403
    finally:
        srv.stop()


def test_registry_permissions_and_search(srv, admin, user, other):
    _, _, alice = user
    bob_name, _, bob = other
    tag = unique("reg")
    exp = _experiment(alice)
    run = _run(alice, exp)
    mine = [f"{tag}-a{i}" for i in range(3)]
    for name in mine:
        alice.post("registered-models/create", {"name": name})
        alice.post("model-versions/create", {"name": name, "source": "s3://x/y", "run_id": run})
    theirs = f"{tag}-b"
    bob.post("registered-models/create", {"name": theirs})

    def names(client: As, path: str, key: str) -> list[str]:
        out, token = [], None
        while True:
            params = {"filter": f"name LIKE '{tag}%'", "max_results": 2}
            if token:
                params["page_token"] = token
            resp = client.get(path, **params)
            out += [m["name"] for m in resp.get(key, [])]
            token = resp.get("next_page_token")
            if not token:
                return sorted(out)

    assert names(alice, "registered-models/search", "registered_models") == mine
    assert names(bob, "registered-models/search", "registered_models") == [theirs]
    assert names(admin, "registered-models/search", "registered_models") == sorted(mine + [theirs])
    assert names(alice, "model-versions/search", "model_versions") == mine
    assert names(bob, "model-versions/search", "model_versions") == []
    assert bob.error("GET", "registered-models/get", name=mine[0]) == (403, "PERMISSION_DENIED")
    assert bob.status("GET", "model-versions/get", name=mine[0], version="1") == 403
    # Grants follow a renamed model.
    alice.post(
        "/api/3.0/mlflow/users/permissions/grant",
        {
            "username": bob_name,
            "resource_type": "registered_model",
            "resource_id": mine[0],
            "permission": "READ",
        },
    )
    assert bob.status("GET", "registered-models/get", name=mine[0]) == 200
    renamed = mine[0] + "-renamed"
    alice.post("registered-models/rename", {"name": mine[0], "new_name": renamed})
    assert bob.status("GET", "registered-models/get", name=renamed) == 200
    assert (
        alice.status(
            "PATCH", "registered-models/update", {"name": renamed, "description": "still mine"}
        )
        == 200
    )


def test_artifacts_and_logged_models_follow_their_experiment(srv, user, other):
    _, _, alice = user
    _, _, bob = other
    exp = _experiment(alice)
    run = _run(alice, exp)
    bob_exp = _experiment(bob)
    path = f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/notes.txt"
    assert alice.client.put(path, content=b"hello").status_code == 200
    assert alice.client.get(path).content == b"hello"
    assert bob.client.get(path).status_code == 403
    assert bob.client.put(path, content=b"overwrite").status_code == 403
    listing = "/api/2.0/mlflow-artifacts/artifacts"
    assert bob.client.get(listing, params={"path": f"{exp}/{run}/artifacts"}).status_code == 403
    assert bob.client.get(listing).status_code == 403  # the root lists every experiment
    # A path that climbs out of the caller's own experiment is refused, not resolved.
    sneaky = f"/api/2.0/mlflow-artifacts/artifacts/{bob_exp}/%2e%2e/{exp}/{run}/artifacts/notes.txt"
    assert bob.client.get(sneaky).status_code in (400, 403)
    assert bob.status("GET", "artifacts/list", run_id=run) == 403

    model = alice.post("/api/2.0/mlflow/logged-models", {"experiment_id": exp, "name": "m"})
    model_id = model["model"]["info"]["model_id"]
    assert alice.status("GET", f"/api/2.0/mlflow/logged-models/{model_id}") == 200
    assert bob.status("GET", f"/api/2.0/mlflow/logged-models/{model_id}") == 403
    assert bob.status("DELETE", f"/api/2.0/mlflow/logged-models/{model_id}") == 403
    assert bob.post("/api/2.0/mlflow/logged-models/search", {"experiment_ids": [exp]}) == {}
    found = alice.post("/api/2.0/mlflow/logged-models/search", {"experiment_ids": [exp]})
    assert [m["info"]["model_id"] for m in found["models"]] == [model_id]
