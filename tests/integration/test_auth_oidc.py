"""OIDC bearer tokens checked against a JWKS served by the test, with RSA keys made by the test."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth_support import ADMIN, As, StandIn, basic, bearer, start_auth_server
from conftest import unique

pytestmark = pytest.mark.labtrack_only

AUDIENCE = "labtrack"


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key, kid: str) -> dict:
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


class Issuer:
    def __init__(self) -> None:
        self.keys = {"k1": _key()}
        self.service = StandIn(self._handle)
        self.url = self.service.url

    def _handle(self, method, path, headers, body):
        if path == "/.well-known/openid-configuration":
            return 200, {}, {"issuer": self.url, "jwks_uri": self.url + "/jwks"}
        if path == "/jwks":
            return 200, {}, {"keys": [_jwk(k, kid) for kid, k in self.keys.items()]}
        return 404, {}, None

    def token(self, username="olivia", groups=("ml-team",), kid="k1", key=None, **claims) -> str:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "preferred_username": username,
            "groups": list(groups),
            **claims,
        }
        return jwt.encode(payload, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer():
    iss = Issuer()
    yield iss
    iss.service.close()


@pytest.fixture(scope="module")
def srv(issuer):
    args = [
        "--oidc-issuer",
        issuer.url,
        "--oidc-audience",
        AUDIENCE,
        "--auth-default-permission",
        "NO_PERMISSIONS",
    ]
    server = start_auth_server("sqlite", args)
    yield server
    server.stop()


def test_valid_token_with_the_stock_client(srv, issuer, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", issuer.token())
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    exp = client.create_experiment(unique("oidc"))
    client.log_metric(client.create_run(exp).info.run_id, "m", 1.0)
    me = As(srv, bearer(issuer.token())).get("users/current")
    assert me["user"]["username"] == "olivia" and me["groups"] == ["ml-team"]
    assert me["source"] == "oidc"


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "other_key",
        "alg_none",
        "hs256_with_public_key",
        "no_username",
        "tampered",
    ],
)
def test_bad_tokens_are_refused(srv, issuer, case):
    now = int(time.time())
    if case == "expired":
        token = issuer.token(exp=now - 120, iat=now - 600)
    elif case == "wrong_audience":
        token = issuer.token(aud="someone-else")
    elif case == "wrong_issuer":
        token = issuer.token(iss="https://evil.example")
    elif case == "other_key":
        token = issuer.token(key=_key())
    elif case == "alg_none":
        token = jwt.encode(
            {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 60, "preferred_username": "olivia"},
            None,
            algorithm="none",
        )
    elif case == "hs256_with_public_key":
        public = (
            issuer.keys["k1"]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
        import base64
        import hashlib
        import hmac

        def b64(data: bytes) -> bytes:
            return base64.urlsafe_b64encode(data).rstrip(b"=")

        payload = {
            "iss": issuer.url,
            "aud": AUDIENCE,
            "exp": now + 60,
            "preferred_username": "admin",
        }
        signing = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(payload).encode())
        signature = b64(hmac.new(public, signing, hashlib.sha256).digest())
        token = (signing + b"." + signature).decode()
    elif case == "no_username":
        token = issuer.token(preferred_username=None)
    else:
        head, body, sig = issuer.token().split(".")
        token = ".".join([head, body, sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")])
    r = As(srv, bearer(token)).call("GET", "users/current")
    assert r.status_code == 401, (case, r.text)


def test_key_rotation(srv, issuer):
    """A token signed with a new key works once the JWKS is fetched again (at most every 5 s,
    so unknown key ids can't make labtrack hammer the issuer)."""
    issuer.keys["k2"] = _key()
    deadline = time.monotonic() + 8
    while As(srv, bearer(issuer.token(kid="k2"))).status("GET", "users/current") != 200:
        assert time.monotonic() < deadline, "the new key was never picked up"
        time.sleep(0.5)


def test_group_grants_apply_to_oidc_users(srv, issuer):
    admin = As(srv, basic(*ADMIN))
    exp = admin.post("experiments/create", {"name": unique("team-exp")})["experiment_id"]
    member = As(srv, bearer(issuer.token("pia", groups=["vision"])))
    outsider = As(srv, bearer(issuer.token("quinn", groups=["audio"])))
    assert member.status("GET", "experiments/get", experiment_id=exp) == 403
    admin.post("/api/2.0/labtrack/groups/create", {"name": "vision"})
    admin.post(
        "/api/2.0/labtrack/groups/permissions/grant",
        {
            "group": "vision",
            "resource_type": "experiment",
            "resource_id": exp,
            "permission": "EDIT",
        },
    )
    assert member.status("GET", "experiments/get", experiment_id=exp) == 200
    assert member.status("POST", "runs/create", {"experiment_id": exp}) == 200
    assert outsider.status("GET", "experiments/get", experiment_id=exp) == 403
