"""Personal access tokens: ``lt_`` + 43 URL-safe characters (32 random bytes).

The prefix makes a leaked token easy to recognise (secret scanners, logs) and tells the server
which check to run. Tokens are stored only as their SHA-256: with 256 bits of entropy a fast
hash cannot be brute-forced, so verifying a token costs microseconds, not a KDF.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "lt_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hint(token: str) -> str:
    """What listings show to tell tokens apart: the prefix and a few characters."""
    return token[: len(PREFIX) + 4] + "…"


def issue(conn, username: str, name: str, now: int, expires_at: int | None) -> tuple[str, dict]:
    """Create a token for a user: the secret (shown once, never stored) and its description."""
    from labtrack.store import auth as store

    token = new_token()
    info = store.create_token(conn, username, name, token_hash(token), hint(token), now, expires_at)
    return token, info


def looks_like_token(secret: str) -> bool:
    return secret.startswith(PREFIX) and len(secret) > len(PREFIX) + 20
