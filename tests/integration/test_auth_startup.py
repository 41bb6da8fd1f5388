"""Secure by default: when authentication is on or off, refusing unsafe start-ups, and the
``labtrack users/tokens/audit`` commands acting on a running multi-worker server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from auth_support import As, basic, bearer
from conftest import free_port, start_server

pytestmark = pytest.mark.labtrack_only


def _labtrack(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABTRACK_")}
    return subprocess.run(
        [sys.executable, "-m", "labtrack", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _server_args(db: str, host: str = "127.0.0.1") -> list[str]:
    folder = tempfile.mkdtemp(prefix="labtrack-auth-start-")
    return [
        "server",
        "--host",
        host,
        "--port",
        str(free_port()),
        "--backend-store-uri",
        db,
        "--artifacts-destination",
        folder,
    ]


def test_loopback_without_identity_source_runs_open():
    srv = start_server("sqlite")
    try:
        anon = As(srv)
        assert anon.status("POST", "experiments/search", {"max_results": 1}) == 200
        assert anon.call("GET", "users/current").json()["error_code"] == "ENDPOINT_NOT_FOUND"
    finally:
        srv.stop()


def test_refuses_non_loopback_without_identity_source(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is never ours: the server must refuse before trying to bind it.
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = _labtrack(*_server_args(db, "192.0.2.1"))
    assert result.returncode != 0
    assert "Refusing to listen on 192.0.2.1 without authentication" in result.stderr
    assert "--no-auth" in result.stderr


def test_no_auth_is_an_explicit_choice(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = _labtrack(*_server_args(db, "192.0.2.1"), "--no-auth")
    assert "Refusing" not in result.stderr
    assert "authentication: OFF" in result.stderr  # then binding 192.0.2.1 fails, as it must


def test_auth_flag_without_identity_source_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = _labtrack(*_server_args(db), "--auth")
    assert result.returncode != 0 and "no identity source" in result.stderr


def test_cli_users_and_tokens_against_a_running_multi_worker_server(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    made = _labtrack(
        "users",
        "create",
        "ops",
        "--admin",
        "--password-stdin",
        "--backend-store-uri",
        db,
        stdin="ops-password-123\n",
    )
    assert made.returncode == 0, made.stderr
    short = _labtrack(
        "users", "create", "x", "--password-stdin", "--backend-store-uri", db, stdin="short\n"
    )
    assert short.returncode != 0 and "at least 12" in short.stderr
    token = _labtrack("tokens", "create", "ops", "--name", "ci", "--backend-store-uri", db)
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip()
    assert secret.startswith("lt_")

    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABTRACK_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labtrack",
                "server",
                "--port",
                str(port),
                "--backend-store-uri",
                db,
                "--artifacts-destination",
                str(tmp_path / "a"),
                "--workers",
                "2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

        def status(headers: dict, times: int = 12) -> set[int]:
            # New connections each time, so both workers are asked.
            return {
                httpx.get(url + "/api/2.0/mlflow/users/current", headers=headers).status_code
                for _ in range(times)
            }

        assert status(bearer(secret)) == {200}
        assert status(basic("ops", "ops-password-123")) == {200}
        revoke = _labtrack("tokens", "revoke", "1", "--backend-store-uri", db)
        assert revoke.returncode == 0, revoke.stderr
        changed = _labtrack(
            "users",
            "set-password",
            "ops",
            "--password-stdin",
            "--backend-store-uri",
            db,
            stdin="ops-password-456\n",
        )
        assert changed.returncode == 0, changed.stderr
        time.sleep(1.5)
        assert status(bearer(secret)) == {401}
        # Few tries: more failures would (rightly) throttle this user for a while.
        assert status(basic("ops", "ops-password-123"), times=4) == {401}
        assert status(basic("ops", "ops-password-456")) == {200}
        audit = _labtrack("audit", "--backend-store-uri", db)
        assert "token_revoke" in audit.stdout and "sign_in" in audit.stdout
        assert "ops-password" not in audit.stdout and secret not in audit.stdout
        listed = _labtrack("tokens", "list", "--backend-store-uri", db)
        assert "revoked" in listed.stdout and secret not in listed.stdout
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert Path(log).exists()
