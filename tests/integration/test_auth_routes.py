"""Walk the whole route table against a real server with authentication on: every route that
is not public answers 401 without credentials, and every admin route 403 to a plain user."""

from __future__ import annotations

import pytest

from auth_support import ADMIN, As, basic, make_user, start_auth_server
from labtrack.app import App
from labtrack.config import Settings

pytestmark = pytest.mark.labtrack_only


@pytest.fixture(scope="module")
def srv():
    server = start_auth_server("sqlite")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def routes(srv):
    settings = Settings(
        backend_store_uri=srv.backend_uri, artifacts_destination=str(srv.data_dir / "artifacts")
    )
    return App(settings).router.routes


def _path(route) -> str:
    return route.path + (route.meta.get("example", "0/x") if route.prefix else "")


def test_every_non_public_route_needs_credentials(srv, routes):
    anon = As(srv)
    wrong = As(srv, basic("admin", "wrong-password-xyz"))
    open_routes = []
    for route in routes:
        if route.public:
            continue
        r = anon.client.request(
            route.method, _path(route), json={} if route.method != "GET" else None
        )
        if route.meta.get("page"):  # web UI pages send the browser to the sign-in form
            if r.status_code != 303 or "/signin?next=" not in r.headers.get("location", ""):
                open_routes.append(f"{route.method} {route.path} -> {r.status_code}")
            continue
        if r.status_code != 401 or r.json().get("error_code") != "UNAUTHENTICATED":
            open_routes.append(f"{route.method} {route.path} -> {r.status_code}")
        elif r.headers.get("www-authenticate") != 'Basic realm="labtrack"':
            open_routes.append(f"{route.method} {route.path}: no Basic challenge")
    assert not open_routes, "routes answering without credentials:\n" + "\n".join(open_routes)
    # A wrong password is refused the same way (a couple of routes are enough for that).
    assert wrong.status("GET", "users/current") == 401


def test_public_routes_answer_without_credentials(srv, routes):
    anon = As(srv)
    for route in routes:
        if route.public and route.method == "GET":
            assert anon.client.get(_path(route)).status_code == 200, route.path


def test_admin_routes_refuse_plain_users(srv, routes):
    admin = As(srv, basic(*ADMIN))
    username, password = make_user(admin)
    plain = As(srv, basic(username, password))
    leaks = []
    for route in routes:
        if route.public or route.access is None or route.access.permission != "ADMIN":
            continue
        r = plain.client.request(
            route.method, _path(route), json={} if route.method != "GET" else None
        )
        if route.meta.get("page"):  # web UI admin pages answer with an HTML 403 page
            if r.status_code != 403 or "text/html" not in r.headers.get("content-type", ""):
                leaks.append(f"{route.method} {route.path} -> {r.status_code}")
            continue
        if r.status_code != 403 or r.json().get("error_code") != "PERMISSION_DENIED":
            leaks.append(f"{route.method} {route.path} -> {r.status_code}")
    assert not leaks, "admin routes open to a plain user:\n" + "\n".join(leaks)
