"""Helpers for the auth tests: servers started with auth settings, authenticated HTTP, and
small stand-in HTTP services (APIHub, JWKS, forward-auth) served by the test on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from conftest import ServerProcess, start_server, unique

ADMIN = ("admin", "admin-password-123")
API = "/api/2.0/mlflow/"


def start_auth_server(
    backend: str, extra_args: list[str] | None = None, *, admin: bool = True, **kwargs: Any
) -> ServerProcess:
    """A labtrack server with the bootstrap admin (``ADMIN``) unless ``admin=False``."""
    env = dict(kwargs.pop("env", None) or {})
    if admin:
        env.update({"LABTRACK_ADMIN_USERNAME": ADMIN[0], "LABTRACK_ADMIN_PASSWORD": ADMIN[1]})
    return start_server(backend, extra_args=extra_args, env=env, **kwargs)


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class As:
    """Raw HTTP against a server as one caller: ``As(srv, basic(...)).post("runs/create", {...})``."""

    def __init__(self, srv: ServerProcess, headers: dict[str, str] | None = None) -> None:
        self.srv = srv
        self.client = httpx.Client(base_url=srv.url, headers=headers or {}, timeout=60)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        url = path if path.startswith("/") else API + path
        if method in ("GET", "HEAD"):
            return self.client.request(method, url, params=params or None)
        return self.client.request(method, url, json=body if body is not None else {})

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> dict:
        r = self.call(method, path, body, **params)
        assert r.status_code == 200, f"{method} {path} -> {r.status_code}: {r.text[:500]}"
        return r.json() if r.content else {}

    def post(self, path: str, body: Any = None) -> dict:
        return self.ok("POST", path, body)

    def get(self, path: str, **params: Any) -> dict:
        return self.ok("GET", path, **params)

    def status(self, method: str, path: str, body: Any = None, **params: Any) -> int:
        return self.call(method, path, body, **params).status_code

    def error(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, str]:
        r = self.call(method, path, body, **params)
        assert r.status_code != 200, f"{method} {path} unexpectedly succeeded"
        return r.status_code, r.json().get("error_code", "")

    def close(self) -> None:
        self.client.close()


def make_user(admin: As, username: str | None = None, password: str | None = None):
    username = username or unique("user")
    password = password or f"pw-{username}-secret"
    admin.post("users/create", {"username": username, "password": password})
    return username, password


# --- stand-in HTTP services -------------------------------------------------------------------------
Handler = Callable[[str, str, dict, bytes], tuple[int, dict, Any]]


class StandIn:
    """A tiny HTTP server on 127.0.0.1; ``handle(method, path, headers, body)`` answers
    ``(status, headers, json_body)``. Every call is recorded in ``calls``."""

    def __init__(self, handle: Handler) -> None:
        self.calls: list[tuple[str, str, dict, bytes]] = []
        outer = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.calls.append((self.command, self.path, headers, body))
                status, out_headers, payload = handle(self.command, self.path, headers, body)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path_part: str) -> int:
        return sum(1 for c in self.calls if path_part in c[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
