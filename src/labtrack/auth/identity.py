"""Who is calling: credentials from the request, checked against the configured sources.

Sources, several at once (docs/auth.md):
- ``builtin``: labtrack's own users, HTTP Basic with an argon2id-hashed password;
- ``token``: personal access tokens (``lt_...``), as ``Bearer`` or as the Basic password;
- ``apihub``: the platform's APIHub (password, token, API key, JWT bearer), see auth.apihub;
- ``forward``: a forward-auth endpoint, nginx ``auth_request`` style, see auth.apihub;
- ``oidc``: JWT bearer tokens checked against an issuer's JWKS, see auth.oidc;
- ``proxy``: a username header set by a gateway, believed only from trusted proxy addresses.

Every check that succeeds is cached (auth.cache) so that the next request with the same
credential costs one HMAC and a dict lookup; failures are never cached but are throttled.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from labtrack.auth import tokens
from labtrack.auth.cache import CredentialKeys, TtlCache
from labtrack.auth.passwords import verify_password_async
from labtrack.auth.permissions import ADMIN_ROLE, CREATOR_ROLE, READER_ROLE, ROLES
from labtrack.auth.throttle import Throttle
from labtrack.wire import MlflowError

REALM = b'Basic realm="labtrack"'


@dataclass(frozen=True)
class Identity:
    """A verified caller. ``role`` is a labtrack role when the source gave one (already mapped)."""

    username: str
    source: str
    groups: tuple[str, ...] = ()
    role: str | None = None
    # Epoch seconds after which the credential is no longer valid (tokens, JWTs).
    expires_at: float | None = None


class Unauthenticated(MlflowError):
    """401 with a Basic challenge, so browsers and curl know what to send."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "UNAUTHENTICATED")
        self.headers = [(b"www-authenticate", REALM)]


class PermissionDenied(MlflowError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "PERMISSION_DENIED")


# One message for every bad credential: an unknown user and a wrong password look the same.
BAD_CREDENTIALS = "Invalid username, password or token."
NO_CREDENTIALS = (
    "Authentication required: send HTTP Basic credentials (MLFLOW_TRACKING_USERNAME and "
    "MLFLOW_TRACKING_PASSWORD) or a bearer token (MLFLOW_TRACKING_TOKEN)."
)


class RoleMap:
    """Maps role and group names of external sources to labtrack roles.

    Parsed from ``name=role,...`` (e.g. ``admin=admin,data_scientist=creator,user=reader``).
    Of several matches the most powerful role wins.
    """

    _RANK = {READER_ROLE: 0, CREATOR_ROLE: 1, ADMIN_ROLE: 2}

    def __init__(self, spec: str) -> None:
        self.mapping: dict[str, str] = {}
        for item in (spec or "").split(","):
            if not item.strip():
                continue
            name, sep, role = item.partition("=")
            role = role.strip().lower()
            if not sep or role not in ROLES:
                raise ValueError(
                    f"Invalid role mapping {item!r}: use name=role with role one of {ROLES}"
                )
            self.mapping[name.strip()] = role

    def role_of(self, *names: str | None) -> str | None:
        best: str | None = None
        for name in names:
            role = self.mapping.get(name) if name else None
            if role and (best is None or self._RANK[role] > self._RANK[best]):
                best = role
        return best


def parse_networks(spec: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in (spec or "").split(","):
        if item.strip():
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
    return networks


def _in(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(scope: dict, proxies: list) -> str:
    """The caller's address: the peer, or behind trusted proxies the first untrusted hop."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not proxies or not _in(peer, proxies):
        return peer
    forwarded = ""
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _in(hop, proxies):
            return hop
    return peer


def parse_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Unauthenticated(BAD_CREDENTIALS) from None
    username, sep, secret = decoded.partition(":")
    if not sep or not username:
        raise Unauthenticated(BAD_CREDENTIALS)
    return username, secret


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


class Authenticator:
    """Turns a request's credentials into an Identity, or raises Unauthenticated."""

    def __init__(
        self,
        *,
        db,
        settings,
        role_map: RoleMap,
        audit: Callable[..., None],
    ) -> None:
        from labtrack.auth.apihub import ApiHub, ForwardAuth
        from labtrack.auth.oidc import Oidc

        self.db = db
        self.settings = settings
        self.role_map = role_map
        self.keys = CredentialKeys()
        self.cache: TtlCache[Identity] = TtlCache(float(settings.auth_cache_ttl))
        self.throttle = Throttle()
        self._audit = audit
        self.apihub = ApiHub.from_settings(settings, role_map)
        self.forward = ForwardAuth.from_settings(settings, role_map)
        self.oidc = Oidc.from_settings(settings, role_map)
        self.proxies = parse_networks(settings.trusted_proxies)
        self.proxy_user_header = (settings.proxy_user_header or "").lower()
        self.proxy_groups_header = (settings.proxy_groups_header or "").lower()
        from labtrack.auth.sessions import Sessions

        self.sessions = Sessions(db, settings)

    @property
    def external(self) -> bool:
        """Whether users may exist that labtrack did not create (external identity sources)."""
        return bool(self.apihub or self.forward or self.oidc or self.proxies)

    async def close(self) -> None:
        for source in (self.apihub, self.forward, self.oidc):
            if source is not None:
                await source.close()

    async def authenticate(self, req) -> Identity:
        headers = req.headers
        if self.proxies and self.proxy_user_header:
            ident = self._from_proxy(req.scope, headers)
            if ident is not None:
                return ident
        authz = headers.get("authorization", "")
        if not authz:
            session_id = self.sessions.session_id(headers)
            if session_id is not None:
                ident = await self._session(session_id)
                if ident is not None:
                    req.scope["labtrack.session"] = session_id
                    return ident
        cookie = headers.get("cookie", "") if self.forward else ""
        if not authz and not cookie:
            raise Unauthenticated(NO_CREDENTIALS)
        key = self.keys.key(authz, cookie)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        return await self._sign_in(req, key, authz)

    async def _session(self, session_id: str) -> Identity | None:
        """A web UI session (auth.sessions), cached like any other verified credential."""
        key = self.keys.key("session", session_id)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        ident = await self.sessions.identity(session_id)
        if ident is not None:
            self.cache.put(key, ident, ident.expires_at - time.time())
        return ident

    async def sign_in_form(self, req, username: str, secret: str) -> Identity:
        """The UI sign-in form: the same sources, throttling and audit as HTTP Basic."""
        raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
        authz = f"Basic {raw}"
        return await self._sign_in(req, self.keys.key(authz, ""), authz)

    def _from_proxy(self, scope: dict, headers: dict) -> Identity | None:
        client = scope.get("client")
        if not client or not _in(client[0], self.proxies):
            return None
        username = headers.get(self.proxy_user_header, "").strip()
        if not username:
            return None
        groups = tuple(
            g.strip() for g in headers.get(self.proxy_groups_header, "").split(",") if g.strip()
        )
        return Identity(username, "proxy", groups, self.role_map.role_of(*groups))

    async def _sign_in(self, req, key: bytes, authz: str) -> Identity:
        address = client_address(req.scope, self.proxies)
        scheme, _, credentials = authz.partition(" ")
        scheme = scheme.lower()
        username: str | None = None
        secret = ""
        if scheme == "basic":
            username, secret = parse_basic(credentials)
        elif authz and scheme != "bearer":
            raise Unauthenticated(BAD_CREDENTIALS)
        self.throttle.check(username, address)
        if scheme == "basic":
            ident = await self._basic(req, username, secret)  # type: ignore[arg-type]
        else:
            ident = await self._bearer(req, credentials.strip())
        method = scheme or "cookie"
        if ident is None:
            self.throttle.failed(username, address)
            self._audit(username, "sign_in", None, "failure", address, {"method": method})
            raise Unauthenticated(BAD_CREDENTIALS)
        self.throttle.succeeded(username, address)
        self._audit(
            ident.username,
            "sign_in",
            None,
            "success",
            address,
            {"method": method, "source": ident.source},
        )
        ttl = None
        if ident.expires_at is not None:
            ttl = ident.expires_at - time.time()
        self.cache.put(key, ident, ttl)
        return ident

    async def _basic(self, req, username: str, secret: str) -> Identity | None:
        if tokens.looks_like_token(secret):
            ident = await self._token(secret)
            if ident is not None and hmac.compare_digest(
                ident.username.encode(), username.encode()
            ):
                return ident
            return None
        from labtrack.store import auth as store

        user = await self.db.read(store.find_user, username)
        if user is not None and user["password_hash"] is not None:
            if await verify_password_async(user["password_hash"], secret):
                return Identity(username, "builtin")
            return None
        if self.apihub is not None:
            ident = await self.apihub.verify_basic(username, secret)
            if ident is not None:
                return ident
        if self.forward is not None:
            ident = await self.forward.verify(req)
            if ident is not None:
                return ident
        if self.apihub is None and self.forward is None:
            await verify_password_async(None, secret)  # as slow as a wrong password
        return None

    async def _bearer(self, req, token: str) -> Identity | None:
        if tokens.looks_like_token(token):
            return await self._token(token)
        if self.oidc is not None and looks_like_jwt(token) and self.oidc.claims_issuer(token):
            return await self.oidc.verify(token)
        if self.apihub is not None and looks_like_jwt(token):
            return await self.apihub.verify_jwt(token)
        if self.forward is not None:
            return await self.forward.verify(req)
        return None

    async def _token(self, token: str) -> Identity | None:
        from labtrack.store import auth as store

        now_ms = int(time.time() * 1000)
        found = await self.db.read(store.token_owner, tokens.token_hash(token), now_ms)
        if found is None:
            return None
        user, expires_at = found
        return Identity(
            user["username"],
            "token",
            expires_at=expires_at / 1000 if expires_at is not None else None,
        )
