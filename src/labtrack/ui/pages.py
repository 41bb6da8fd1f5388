"""The web UI's routes: pages, sign-in and sign-out, static files (docs/ui.md).

Every page needs a signed-in caller when authentication is on (``Access("server",
"AUTHENTICATED")``; the admin pages need ADMIN). Pages are marked ``page=True``: the app then
answers their errors with an HTML page and a missing sign-in with a redirect to ``/signin``
instead of a 401 JSON body. Only ``/signin`` and ``/static/`` are public.

URLs are generated from the static prefix (``settings.normalized_prefix``), so everything works
under ``--static-prefix``. Nothing sensitive goes into a URL: tokens and passwords travel in
POST bodies, and the sign-in redirect carries only the page path to return to.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from labtrack import __version__
from labtrack.auth import tokens
from labtrack.auth.sessions import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    cookie_header,
    cookies,
    is_https,
)
from labtrack.http import Access, Request, Response, RouteTable
from labtrack.ui.render import page_response, serve_asset, static_url
from labtrack.wire import MlflowError

routes = RouteTable()

SIGNED_IN = Access("server", "AUTHENTICATED")
ADMIN = Access("server", "ADMIN")
MAX_FORM_BYTES = 64 * 1024
SIGNIN_MAX_AGE = 3600
_RUN_TABS = ("overview", "metrics", "artifacts")
_VERSION_PATH = re.compile(r"^(?P<name>.+)/versions/(?P<version>\d+)$")


# --- helpers ------------------------------------------------------------------------------------
def _prefix(req: Request) -> str:
    return req.app.prefix


def redirect(location: str, status: int = 303) -> Response:
    return Response(b"", status, headers=[(b"location", location.encode("latin-1"))])


def _context(req: Request, *, nav: str, title: str, data: dict | None = None) -> dict[str, Any]:
    """What every template sees: the prefix, the caller, the CSRF token, the page's data."""
    app = req.app
    prefix = _prefix(req)
    caller = req.scope.get("labtrack.caller")
    session_id = req.scope.get("labtrack.session")
    csrf = app.auth.authn.sessions.csrf_token(session_id) if session_id and app.auth else ""
    user = None
    if caller is not None:
        user = {"username": caller.username, "is_admin": caller.is_admin, "role": caller.role}
    auth_on = app.auth is not None
    page = {"prefix": prefix, "csrf": csrf, "auth": auth_on, "user": user, **(data or {})}
    return {
        "prefix": prefix,
        "title": title,
        "nav": nav,
        "user": user,
        "is_admin": bool(user and user["is_admin"]),
        "auth_on": auth_on,
        "session": bool(session_id),
        "csrf": csrf,
        "static": lambda rel: static_url(prefix, rel),
        "version": __version__,
        "page": page,
    }


def _page(
    req: Request,
    template: str,
    *,
    nav: str,
    title: str,
    data: dict | None = None,
    charts: bool = False,
) -> Response:
    context = _context(req, nav=nav, title=title, data=data)
    return page_response(req, template, context, charts=charts)


def error_page(req: Request | None, exc: MlflowError) -> Response:
    """How a page route answers an error: sign-in redirect for 401, else an HTML error page."""
    if req is None:
        return Response(exc.message.encode(), exc.status, "text/plain; charset=utf-8")
    prefix = _prefix(req)
    if exc.status == 401:
        target = req.path
        query = req.scope.get("query_string", b"").decode("latin-1")
        if query:
            target += "?" + query
        return redirect(f"{prefix}/signin?next={quote(target, safe='/')}")
    context = _context(req, nav="", title=f"Error {exc.status}")
    context["status"] = exc.status
    context["message"] = exc.message
    return page_response(req, "error.html", context, status=exc.status)


def _safe_next(value: str | None) -> str:
    """A path inside this server to go to after sign-in: never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 for c in value):
        return "/"
    return value


async def _form(req: Request) -> dict[str, str]:
    content_type = req.headers.get("content-type", "").lower()
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise MlflowError("Send the form as application/x-www-form-urlencoded.", "BAD_REQUEST")
    body = b""
    async for chunk in req.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise MlflowError("Form too large.", "BAD_REQUEST")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in fields.items()}


# --- pages --------------------------------------------------------------------------------------
@routes.raw("GET", "/", access=SIGNED_IN, page=True)
async def home(req: Request) -> Response:
    return _page(req, "experiments.html", nav="experiments", title="Experiments")


@routes.raw("GET", "/experiments", access=SIGNED_IN, page=True)
async def experiments(req: Request) -> Response:
    return _page(req, "experiments.html", nav="experiments", title="Experiments")


@routes.raw("GET", "/experiments/", access=SIGNED_IN, prefix=True, page=True)
async def experiment(req: Request) -> Response:
    rest = req.path_params["rest"].strip("/")
    if not rest.isdigit():
        raise MlflowError(f"No experiment with id {rest!r}", "RESOURCE_DOES_NOT_EXIST")
    return _page(
        req,
        "experiment.html",
        nav="experiments",
        title="Runs",
        data={"experiment_id": str(int(rest))},
    )


@routes.raw("GET", "/runs/", access=SIGNED_IN, prefix=True, page=True)
async def run(req: Request) -> Response:
    run_id, _, tab = req.path_params["rest"].strip("/").partition("/")
    if not run_id or (tab and tab not in _RUN_TABS):
        raise MlflowError("No such run page", "RESOURCE_DOES_NOT_EXIST")
    data = {"run_id": run_id, "tab": tab or "overview"}
    return _page(req, "run.html", nav="experiments", title="Run", data=data, charts=True)


@routes.raw("GET", "/compare", access=SIGNED_IN, page=True)
async def compare(req: Request) -> Response:
    return _page(req, "compare.html", nav="experiments", title="Compare runs", charts=True)


@routes.raw("GET", "/models", access=SIGNED_IN, page=True)
async def models(req: Request) -> Response:
    return _page(req, "models.html", nav="models", title="Models")


@routes.raw("GET", "/models/", access=SIGNED_IN, prefix=True, page=True)
async def model(req: Request) -> Response:
    rest = req.path_params["rest"].strip("/")
    if not rest:
        return redirect(f"{_prefix(req)}/models")
    match = _VERSION_PATH.match(rest)
    if match:
        data = {"name": match["name"], "version": match["version"]}
        title = f"{match['name']} v{match['version']}"
        return _page(req, "model_version.html", nav="models", title=title, data=data)
    return _page(req, "model.html", nav="models", title=rest, data={"name": rest})


@routes.raw("GET", "/account", access=SIGNED_IN, page=True)
async def account(req: Request) -> Response:
    return _page(req, "account.html", nav="account", title="Account")


@routes.raw("GET", "/admin/users", access=ADMIN, page=True)
async def admin_users(req: Request) -> Response:
    return _page(req, "admin_users.html", nav="admin", title="Users")


@routes.raw("GET", "/admin/groups", access=ADMIN, page=True)
async def admin_groups(req: Request) -> Response:
    return _page(req, "admin_groups.html", nav="admin", title="Groups")


# Managers of an experiment or model use this page too; the API checks MANAGE on the resource.
@routes.raw("GET", "/admin/permissions", access=SIGNED_IN, page=True)
async def admin_permissions(req: Request) -> Response:
    return _page(req, "admin_permissions.html", nav="admin", title="Permissions")


# --- sign-in and sign-out -----------------------------------------------------------------------
def _signin_page(
    req: Request, *, next_path: str, error: str | None = None, status: int = 200
) -> Response:
    """The form, with a fresh double-submit token in a cookie and a hidden field."""
    token = secrets.token_urlsafe(32)
    context = _context(req, nav="", title="Sign in")
    context.update(next=next_path, signin_token=token, error=error)
    response = page_response(req, "signin.html", context, status=status)
    response.headers.append(
        cookie_header(
            SIGNIN_COOKIE,
            token,
            path=_prefix(req) or "/",
            secure=is_https(req.scope, req.headers),
            max_age=SIGNIN_MAX_AGE,
            same_site="Strict",
        )
    )
    return response


@routes.raw("GET", "/signin", public=True, page=True)
async def signin_form(req: Request) -> Response:
    next_path = _safe_next((req.query.get("next") or ["/"])[-1])
    auth = req.app.auth
    if auth is None:
        return redirect(_prefix(req) + next_path)
    session_id = auth.authn.sessions.session_id(req.headers)
    if session_id and await auth.authn.sessions.identity(session_id) is not None:
        return redirect(_prefix(req) + next_path)
    return _signin_page(req, next_path=next_path)


@routes.raw("POST", "/signin", public=True, page=True)
async def signin(req: Request) -> Response:
    auth = req.app.auth
    prefix = _prefix(req)
    if auth is None:
        return redirect(prefix + "/")
    form = await _form(req)
    next_path = _safe_next(form.get("next"))
    expected = cookies(req.headers.get("cookie", "")).get(SIGNIN_COOKIE, "")
    submitted = form.get("signin_token", "")
    if not expected or not hmac.compare_digest(expected, submitted):
        return _signin_page(
            req,
            next_path=next_path,
            error="The sign-in form expired. Please sign in again.",
            status=400,
        )
    username = form.get("username", "").strip()
    password = form.get("password", "")
    if not username or not password:
        return _signin_page(
            req, next_path=next_path, error="Enter your username and password.", status=400
        )
    try:
        ident = await auth.authn.sign_in_form(req, username, password)
        await auth.caller(ident)  # external users are recorded (and synced) on first sign-in
        token_hash = tokens.token_hash(password) if ident.source == "token" else None
        value, max_age = await auth.authn.sessions.open(ident, token_hash)
    except MlflowError as exc:
        message = exc.message if exc.status in (429, 503) else "Invalid username or password."
        return _signin_page(req, next_path=next_path, error=message, status=exc.status)
    secure = is_https(req.scope, req.headers)
    response = redirect(prefix + next_path)
    path = prefix or "/"
    response.headers.append(
        cookie_header(
            SESSION_COOKIE, value, path=path, secure=secure, max_age=max_age, same_site="Lax"
        )
    )
    response.headers.append(
        cookie_header(SIGNIN_COOKIE, "", path=path, secure=secure, max_age=0, same_site="Strict")
    )
    return response


@routes.raw("POST", "/signout", access=SIGNED_IN, page=True, form=True)
async def signout(req: Request) -> Response:
    auth = req.app.auth
    prefix = _prefix(req)
    response = redirect(prefix + ("/signin" if auth else "/"))
    session_id = req.scope.get("labtrack.session")
    if auth is not None and session_id:
        form = await _form(req)
        auth.authn.sessions.check_csrf(req, session_id, form.get("csrf_token", ""))
        await auth.authn.sessions.close(session_id)
        auth.changed(credentials=True)
        response.headers.append(
            cookie_header(
                SESSION_COOKIE,
                "",
                path=prefix or "/",
                secure=is_https(req.scope, req.headers),
                max_age=0,
                same_site="Lax",
            )
        )
    return response


# --- static files -------------------------------------------------------------------------------
@routes.raw("GET", "/static/", public=True, prefix=True, example="css/labtrack.css")
async def static(req: Request) -> Response:
    response = serve_asset(req, req.path_params["rest"])
    if response is None:
        raise MlflowError("No such file", "RESOURCE_DOES_NOT_EXIST")
    return response
