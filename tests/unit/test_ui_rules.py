"""The web UI's security rules, without a browser: session cookies and CSRF tokens, the
sign-in redirect target, static files (issue #6)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labtrack.auth.identity import PermissionDenied
from labtrack.auth.sessions import Sessions, cookie_header, cookies, is_https
from labtrack.ui.pages import _safe_next
from labtrack.ui.render import ASSETS, PLOTLY_PATH, plotly_file


def _sessions(secret: str = "a-test-secret") -> Sessions:
    return Sessions(None, SimpleNamespace(secret_key=secret, session_hours=12))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/experiments/3?filter=x", "/experiments/3?filter=x"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("experiments", "/"),
    ],
)
def test_sign_in_only_returns_to_pages_of_this_server(value, expected):
    assert _safe_next(value) == expected


def test_session_cookies_are_signed_with_the_server_secret():
    sessions = _sessions()
    signed = f"abc123.{sessions._mac('session', 'abc123')}"
    assert sessions._unsign(signed) == "abc123"
    assert sessions._unsign("abc124." + signed.split(".", 1)[1]) is None
    assert sessions._unsign(signed + "x") is None
    assert sessions._unsign("abc123") is None
    assert _sessions("another-secret")._unsign(signed) is None
    header = {"cookie": f"theme=dark; labtrack_session={signed}"}
    assert sessions.session_id(header) == "abc123"
    assert sessions.session_id({"cookie": "labtrack_session=forged.value"}) is None


def test_csrf_tokens_belong_to_one_session():
    sessions = _sessions()
    token = sessions.csrf_token("session-a")
    assert token != sessions.csrf_token("session-b")
    request = SimpleNamespace(headers={"x-csrf-token": token})
    sessions.check_csrf(request, "session-a")
    sessions.check_csrf(SimpleNamespace(headers={}), "session-a", submitted=token)
    for headers, session in (({}, "session-a"), ({"x-csrf-token": token}, "session-b")):
        with pytest.raises(PermissionDenied):
            sessions.check_csrf(SimpleNamespace(headers=headers), session)


def test_cookie_attributes():
    name, value = cookie_header("n", "v", path="/mlflow", secure=True, max_age=60, same_site="Lax")
    text = value.decode()
    assert name == b"set-cookie"
    for part in ("n=v", "Path=/mlflow", "HttpOnly", "SameSite=Lax", "Max-Age=60", "Secure"):
        assert part in text
    plain = cookie_header("n", "v", path="", secure=False, max_age=None, same_site="Strict")
    assert "Secure" not in plain[1].decode() and "Path=/" in plain[1].decode()
    assert cookies('bad"cookie; =; x') == {} or isinstance(cookies('bad"cookie; =; x'), dict)
    assert is_https({"scheme": "http"}, {"x-forwarded-proto": "https"})
    assert not is_https({"scheme": "http"}, {})


def test_static_files_come_only_from_the_package():
    assert ASSETS.get("css/labtrack.css") is not None
    assert ASSETS.get("js/core.js").content_type.startswith("text/javascript")
    for bad in ("../pages.py", "/etc/passwd", "css/../../render.py", "", "css"):
        assert ASSETS.get(bad) is None
    if plotly_file() is not None:  # Plotly.js comes from the installed plotly package
        assert ASSETS.get(PLOTLY_PATH).body.startswith(b"/**")
