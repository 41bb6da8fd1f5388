"""OIDC bearer tokens: JWTs verified locally against the issuer's published keys (JWKS).

Checked: the signature (asymmetric algorithms only, so a token can never be "signed" with the
public key as an HMAC secret, and ``alg: none`` is refused), ``iss``, ``aud`` when an audience
is configured, ``exp`` (required) and ``nbf``, with 30 s of clock leeway. The JWKS is fetched
once and again when a token names a key id we don't know (key rotation), at most every 5 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from labtrack.auth.apihub import SourceUnavailable, _groups, _Remote

if TYPE_CHECKING:
    from labtrack.auth.identity import Identity, RoleMap

log = logging.getLogger("labtrack.auth")

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
LEEWAY = 30
REFETCH_AFTER = 5.0


class Oidc(_Remote):
    what = "OIDC JWKS"

    def __init__(self, settings, role_map: RoleMap) -> None:
        super().__init__()
        self.issuer = (settings.oidc_issuer or "").rstrip("/") or None
        self.jwks_url = settings.oidc_jwks_url
        self.audience = settings.oidc_audience or None
        self.username_claim = settings.oidc_username_claim
        self.groups_claim = settings.oidc_groups_claim
        self.role_map = role_map
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings, role_map: RoleMap) -> Oidc | None:
        if not (settings.oidc_issuer or settings.oidc_jwks_url):
            return None
        return cls(settings, role_map)

    def claims_issuer(self, token: str) -> bool:
        """Whether an (unverified) JWT says it comes from our issuer: then it is ours to check."""
        import jwt

        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        if self.issuer is None:
            return True
        return str(claims.get("iss", "")).rstrip("/") == self.issuer

    async def _fetch(self) -> None:
        import jwt

        url = self.jwks_url
        if not url:
            response = await self._call("GET", self.issuer + "/.well-known/openid-configuration")
            url = response.json().get("jwks_uri") if response.status_code == 200 else None
            if not url:
                raise SourceUnavailable(self.what)
            self.jwks_url = url
        response = await self._call("GET", url)
        if response.status_code != 200:
            raise SourceUnavailable(self.what)
        keys: dict[str | None, Any] = {}
        for data in response.json().get("keys", []):
            if data.get("use", "sig") != "sig":
                continue
            try:
                keys[data.get("kid")] = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue  # a key type or algorithm we don't support
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str | None) -> Any | None:
        if kid not in self._keys and (
            not self._keys or time.monotonic() - self._fetched_at > REFETCH_AFTER
        ):
            async with self._lock:
                if kid not in self._keys:
                    await self._fetch()
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return None

    async def verify(self, token: str) -> Identity | None:
        import jwt

        from labtrack.auth.identity import Identity

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if header.get("alg") not in ALGORITHMS:
            return None
        key = await self._key(header.get("kid"))
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={
                    "require": ["exp"] + (["iss"] if self.issuer else []),
                    "verify_aud": self.audience is not None,
                },
            )
        except jwt.PyJWTError as exc:
            log.info("OIDC token refused: %s", type(exc).__name__)
            return None
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username:
            log.info("OIDC token refused: no %r claim", self.username_claim)
            return None
        groups = _groups(claims.get(self.groups_claim))
        return Identity(
            username,
            "oidc",
            groups,
            self.role_map.role_of(*groups),
            expires_at=float(claims["exp"]),
        )
