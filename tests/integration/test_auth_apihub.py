"""APIHub, forward-auth and trusted-proxy sign-in against stand-in services on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from auth_support import ADMIN, As, StandIn, basic, bearer, start_auth_server
from conftest import unique

pytestmark = pytest.mark.labtrack_only

HUB_SECRET = "stand-in-apihub-signing-secret-0123456789"
HUB_USERS = {
    "dana": {
        "password": "dana-password",
        "role": "data_scientist",
        "groups": ["ml"],
        "tokens": ["hub-token-dana"],
        "apikey": "key-dana",
    },
    "erin": {
        "password": "erin-password",
        "role": "user",
        "groups": [],
        "tokens": [],
        "apikey": None,
    },
    "root": {
        "password": "root-password",
        "role": "admin",
        "groups": [],
        "tokens": [],
        "apikey": None,
    },
}


def hub_jwt(username: str, **claims) -> str:
    payload = {"sub": username, "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, HUB_SECRET, algorithm="HS256")


def apihub_contract(method, path, headers, body):
    """The documented APIHub contract (docs/auth.md), as a stand-in."""
    data = json.loads(body or b"{}") if method == "POST" else {}
    if path == "/password/verify":
        user = HUB_USERS.get(data.get("username"))
        if data.get("username") == "flaky":
            return 502, {}, {"error": "upstream"}
        if user and user["password"] == data.get("password"):
            return 200, {}, {"role": user["role"], "groups": user["groups"]}
        return 401, {}, {"error": "invalid"}
    if path == "/token/verify":
        name, token = data.get("username"), data.get("token", "")
        user = HUB_USERS.get(name)
        if user and token in user["tokens"]:
            return 200, {}, {"username": name, "role": user["role"], "groups": user["groups"]}
        try:
            claims = jwt.decode(token, HUB_SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return 401, {}, {"valid": False}
        if claims["sub"] == name and name in HUB_USERS:
            return 200, {}, {"username": name, "role": HUB_USERS[name]["role"]}
        return 200, {}, {"valid": False}
    if path == "/keys/check":
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            name, _, key = base64.b64decode(auth[6:]).decode().partition(":")
            user = HUB_USERS.get(name)
            if user and user["apikey"] and user["apikey"] == key:
                return 200, {}, {"role": user["role"]}
        return 401, {}, None
    return 404, {}, None


@pytest.fixture(scope="module")
def hub():
    service = StandIn(apihub_contract)
    yield service
    service.close()


@pytest.fixture(scope="module")
def srv(hub):
    args = [
        "--apihub-url",
        hub.url,
        "--apihub-apikey-url",
        hub.url + "/keys/check",
        "--auth-default-permission",
        "NO_PERMISSIONS",
    ]
    server = start_auth_server("sqlite", args)
    yield server
    server.stop()


def test_password_sign_in_and_roles(srv, hub, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "dana")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "dana-password")
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    exp = client.create_experiment(unique("dana"))  # data_scientist -> may create
    run = client.create_run(exp)
    before = hub.count("/password/verify")
    for i in range(30):
        client.log_metric(run.info.run_id, "m", float(i))
    assert hub.count("/password/verify") - before <= 1, "verified credentials must be cached"

    erin = As(srv, basic("erin", "erin-password"))
    assert erin.error("POST", "experiments/create", {"name": unique("e")}) == (
        403,
        "PERMISSION_DENIED",
    )  # user -> read-only
    assert erin.status("GET", "experiments/get", experiment_id=exp) == 403
    root = As(srv, basic("root", "root-password"))
    assert root.get("users/current")["user"]["is_admin"] is True  # admin -> admin
    assert root.get("experiments/get", experiment_id=exp)
    assert As(srv, basic("dana", "wrong")).status("GET", "users/current") == 401


def test_apihub_token_and_api_key_as_basic_password(srv):
    assert (
        As(srv, basic("dana", "hub-token-dana")).get("users/current")["user"]["username"] == "dana"
    )
    assert As(srv, basic("dana", "key-dana")).get("users/current")["source"] == "apihub"
    assert As(srv, basic("erin", "key-dana")).status("GET", "users/current") == 401


def test_apihub_jwt_bearer(srv, monkeypatch):
    import mlflow

    token = hub_jwt("dana")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    client.create_experiment(unique("jwt"))
    forged = jwt.encode({"sub": "dana", "exp": int(time.time()) + 60}, "x" * 40)
    assert As(srv, bearer(forged)).status("GET", "users/current") == 401
    # The username comes from the claims APIHub vouched for.
    assert As(srv, bearer(token)).get("users/current")["user"]["username"] == "dana"


def test_apihub_outage_is_503_not_401(srv):
    r = As(srv, basic("flaky", "whatever")).call("GET", "users/current")
    assert r.status_code == 503 and r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_grant_to_apihub_user_before_first_sign_in(srv, hub):
    admin = As(srv, basic(*ADMIN))
    dana = As(srv, basic("dana", "dana-password"))
    exp = dana.post("experiments/create", {"name": unique("shared")})["experiment_id"]
    newcomer = unique("newcomer")
    HUB_USERS[newcomer] = {
        "password": "newcomer-password",
        "role": "user",
        "groups": [],
        "tokens": [],
        "apikey": None,
    }
    admin.post(
        "/api/3.0/mlflow/users/permissions/grant",
        {
            "username": newcomer,
            "resource_type": "experiment",
            "resource_id": exp,
            "permission": "READ",
        },
    )
    who = As(srv, basic(newcomer, "newcomer-password"))
    assert who.get("experiments/get", experiment_id=exp)["experiment"]["experiment_id"] == exp


def test_personal_token_of_an_apihub_user_keeps_their_role(srv):
    erin = As(srv, basic("erin", "erin-password"))
    token = erin.post("/api/2.0/labtrack/tokens/create", {"name": "nb"})["token"]
    as_token = As(srv, bearer(token))
    assert as_token.get("users/current")["role"] == "reader"
    assert as_token.status("POST", "experiments/create", {"name": unique("x")}) == 403


# --- forward-auth -------------------------------------------------------------------------------------
def forward_contract(method, path, headers, body):
    if path != "/auth":
        return 404, {}, None
    if headers.get("authorization") == "Basic " + base64.b64encode(b"fwd:fwd-secret").decode():
        return 200, {"X-Auth-Request-User": "fwd", "X-Auth-Request-Groups": "team-a"}, None
    if "session=good" in headers.get("cookie", ""):
        return 200, {"X-Auth-Request-User": "cookie-user"}, None
    return 401, {}, None


def test_forward_auth():
    gate = StandIn(forward_contract)
    srv = start_auth_server("sqlite", ["--forward-auth-url", gate.url + "/auth"], admin=False)
    try:
        me = As(srv, basic("fwd", "fwd-secret")).get("users/current")
        assert me["user"]["username"] == "fwd" and me["groups"] == ["team-a"]
        assert me["source"] == "forward"
        assert As(srv, basic("fwd", "nope")).status("GET", "users/current") == 401
        cookie = As(srv, {"Cookie": "session=good"}).get("users/current")
        assert cookie["user"]["username"] == "cookie-user"
        calls = len(gate.calls)
        for _ in range(10):
            As(srv, {"Cookie": "session=good"}).get("users/current")
        assert len(gate.calls) == calls  # cached
        assert gate.calls[0][2]["x-original-method"] == "GET"
    finally:
        srv.stop()
        gate.close()


# --- trusted proxy header ---------------------------------------------------------------------------
def test_trusted_proxy_header():
    srv = start_auth_server("sqlite", ["--trusted-proxies", "127.0.0.1/32"])
    try:
        me = As(srv, {"X-Forwarded-User": "pat", "X-Forwarded-Groups": "data,ops"})
        body = me.get("users/current")
        assert body["user"]["username"] == "pat" and body["groups"] == ["data", "ops"]
        assert As(srv).status("GET", "users/current") == 401
    finally:
        srv.stop()
    untrusted = start_auth_server("sqlite", ["--trusted-proxies", "192.0.2.10"])
    try:
        assert As(untrusted, {"X-Forwarded-User": "admin"}).status("GET", "users/list") == 401
    finally:
        untrusted.stop()
