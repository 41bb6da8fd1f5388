"""Asking someone else who the caller is: the platform's APIHub, or a forward-auth endpoint.

APIHub contract (the preset; every URL can be overridden, see docs/auth.md):
- ``POST {apihub}/password/verify`` with ``{"username", "password"}``;
- ``POST {apihub}/token/verify`` with ``{"username", "token"}`` (APIHub tokens and JWTs);
- API keys: ``GET <apikey url>`` with HTTP Basic ``username:apikey`` (any protected endpoint).
A 2xx answer means valid; its optional JSON body may carry ``role`` (``admin``,
``data_scientist``, ``user``, mapped by the role map), ``groups`` (a list of names) and, for
tokens, ``username``. ``{"valid": false}``, 401, 403 and 404 mean invalid. Anything else (5xx,
timeouts) is reported to the client as 503, so a flaky APIHub never reads as a wrong password.

Forward-auth (nginx ``auth_request``): ``GET <url>`` with the caller's ``Authorization`` and
``Cookie`` headers plus ``X-Original-URI``/``X-Original-Method``; 2xx = valid, the username in
a response header (``X-Auth-Request-User`` by default), groups in another.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

import orjson

from labtrack.wire import MlflowError

if TYPE_CHECKING:
    from labtrack.auth.identity import Identity, RoleMap

log = logging.getLogger("labtrack.auth")

TIMEOUT = 5.0
_INVALID = (401, 403, 404)


class SourceUnavailable(MlflowError):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"The identity provider ({what}) did not answer; try again shortly.",
            "TEMPORARILY_UNAVAILABLE",
        )


def _client():
    import httpx

    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)


def _body(response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return ()
    return tuple(str(g) for g in value if isinstance(g, str | int) and str(g))


class _Remote:
    what = "remote"

    def __init__(self) -> None:
        self._http = None

    @property
    def http(self):
        if self._http is None:
            self._http = _client()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _call(self, method: str, url: str, **kwargs: Any):
        import httpx

        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("%s check failed: %s", self.what, type(exc).__name__)
            raise SourceUnavailable(self.what) from None
        if response.status_code in _INVALID or 200 <= response.status_code < 300:
            return response
        log.warning("%s answered HTTP %s", self.what, response.status_code)
        raise SourceUnavailable(self.what)


class ApiHub(_Remote):
    what = "APIHub"

    def __init__(self, settings, role_map: RoleMap) -> None:
        super().__init__()
        base = (settings.apihub_url or "").rstrip("/")
        self.password_url = settings.apihub_password_url or (base and base + "/password/verify")
        self.token_url = settings.apihub_token_url or (base and base + "/token/verify")
        self.apikey_url = settings.apihub_apikey_url or None
        checks = [c.strip() for c in (settings.apihub_checks or "").split(",") if c.strip()]
        self.checks = [c for c in checks if self._url_of(c)]
        self.role_map = role_map

    @classmethod
    def from_settings(cls, settings, role_map: RoleMap) -> ApiHub | None:
        if not (
            settings.apihub_url
            or settings.apihub_password_url
            or settings.apihub_token_url
            or settings.apihub_apikey_url
        ):
            return None
        return cls(settings, role_map)

    def _url_of(self, check: str) -> str | None:
        return {
            "password": self.password_url,
            "token": self.token_url,
            "apikey": self.apikey_url,
        }.get(check) or None

    def _identity(self, username: str, data: dict) -> Identity | None:
        from labtrack.auth.identity import Identity

        if data.get("valid") is False:
            return None
        groups = _groups(data.get("groups"))
        role = data.get("role") if isinstance(data.get("role"), str) else None
        return Identity(username, "apihub", groups, self.role_map.role_of(role, *groups))

    async def verify_basic(self, username: str, secret: str) -> Identity | None:
        """Username + password, + APIHub token, or + API key, in the configured order."""
        for check in self.checks:
            url = self._url_of(check)
            if check == "apikey":
                raw = f"{username}:{secret}".encode()
                auth = "Basic " + base64.b64encode(raw).decode()
                response = await self._call("GET", url, headers={"Authorization": auth})
            else:
                field = "password" if check == "password" else "token"
                response = await self._call("POST", url, json={"username": username, field: secret})
            if response.status_code in _INVALID:
                continue
            ident = self._identity(username, _body(response))
            if ident is not None:
                return ident
        return None

    async def verify_jwt(self, token: str) -> Identity | None:
        """An APIHub JWT, checked by APIHub itself (token/verify); the username is its claim."""
        import jwt

        if not self.token_url:
            return None
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        claimed = next(
            (claims[c] for c in ("preferred_username", "username", "sub") if claims.get(c)), None
        )
        if not isinstance(claimed, str):
            return None
        response = await self._call(
            "POST", self.token_url, json={"username": claimed, "token": token}
        )
        if response.status_code in _INVALID:
            return None
        data = _body(response)
        username = data.get("username") if isinstance(data.get("username"), str) else claimed
        ident = self._identity(username, data)
        if ident is not None and isinstance(claims.get("exp"), int | float):
            from dataclasses import replace

            ident = replace(ident, expires_at=float(claims["exp"]))
        return ident


class ForwardAuth(_Remote):
    what = "forward-auth"

    def __init__(self, settings, role_map: RoleMap) -> None:
        super().__init__()
        self.url = settings.forward_auth_url
        self.user_header = settings.forward_auth_user_header
        self.groups_header = settings.forward_auth_groups_header
        self.role_map = role_map

    @classmethod
    def from_settings(cls, settings, role_map: RoleMap) -> ForwardAuth | None:
        return cls(settings, role_map) if settings.forward_auth_url else None

    async def verify(self, req) -> Identity | None:
        from labtrack.auth.identity import Identity, parse_basic

        headers = {
            "X-Original-URI": req.scope.get("raw_path", b"").decode("latin-1") or req.path,
            "X-Original-Method": req.method,
        }
        for name in ("authorization", "cookie"):
            if req.headers.get(name):
                headers[name.title()] = req.headers[name]
        response = await self._call("GET", self.url, headers=headers)
        if response.status_code in _INVALID:
            return None
        username = response.headers.get(self.user_header, "").strip()
        if not username and req.headers.get("authorization", "").lower().startswith("basic "):
            username = parse_basic(req.headers["authorization"][6:])[0]
        if not username:
            log.warning("forward-auth accepted a request without naming the user; refused")
            return None
        groups = _groups(response.headers.get(self.groups_header, ""))
        return Identity(username, "forward", groups, self.role_map.role_of(*groups))
