"""Web UI sign-in sessions and the shared cookie-signing secret (tables in schema_auth #2).

A session row is keyed by the SHA-256 of the random session id, so the table holds nothing a
reader could put in a cookie. Each row remembers the credential it was opened with; a session is
valid only while that credential is: the user still exists, the password is unchanged, the
token is neither revoked nor expired. Every change here bumps the ``credentials`` generation so
that other worker processes drop cached sessions within a second (see auth.enforce).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from labtrack.store.auth import CREDENTIALS, bump
from labtrack.store.db import Conn


def shared_secret(conn: Conn, name: str, candidate: str) -> str:
    """The secret called ``name``: the stored one, or ``candidate`` stored by the first worker."""
    conn.execute(
        "INSERT INTO auth_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, candidate),
    )
    return conn.scalar("SELECT value FROM auth_secrets WHERE name = ?", (name,))


def password_fingerprint(password_hash: str) -> str:
    """What a session keeps of the password it was opened with: changes when the password does."""
    return "pw:" + hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def credential_of(conn: Conn, username: str, source: str, token_hash: str | None) -> str | None:
    """The credential fingerprint a new session of this identity is tied to."""
    if source == "token" and token_hash:
        return "tk:" + token_hash
    if source == "builtin":
        password_hash = conn.scalar(
            "SELECT password_hash FROM auth_users WHERE username = ?", (username,)
        )
        return password_fingerprint(password_hash) if password_hash else None
    return None


def create(
    conn: Conn,
    session_hash: str,
    *,
    username: str,
    source: str,
    groups: list[str],
    role: str | None,
    credential: str | None,
    now: int,
    expires_at: int,
) -> None:
    conn.execute("DELETE FROM auth_sessions WHERE expires_at <= ?", (now,))
    conn.execute(
        "INSERT INTO auth_sessions (session_hash, username, source, groups_json, role,"
        " credential, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            session_hash,
            username,
            source,
            orjson.dumps(sorted(groups)).decode() if groups else None,
            role,
            credential,
            now,
            expires_at,
        ),
    )


def find(conn: Conn, session_hash: str, now: int) -> dict[str, Any] | None:
    """The live session, or None when it expired or its credential no longer holds."""
    row = conn.one(
        "SELECT s.username, s.source, s.groups_json, s.role, s.credential, s.expires_at,"
        " u.password_hash FROM auth_sessions s JOIN auth_users u ON u.username = s.username"
        " WHERE s.session_hash = ? AND s.expires_at > ?",
        (session_hash, now),
    )
    if row is None:
        return None
    username, source, groups_json, role, credential, expires_at, password_hash = row
    if credential and credential.startswith("pw:"):
        if not password_hash or password_fingerprint(password_hash) != credential:
            return None
    elif credential and credential.startswith("tk:"):
        token = conn.one(
            "SELECT expires_at FROM auth_tokens WHERE token_hash = ? AND username = ?"
            " AND revoked_at IS NULL",
            (credential[3:], username),
        )
        if token is None or (token[0] is not None and token[0] <= now):
            return None
        if token[0] is not None:
            expires_at = min(expires_at, token[0])
    elif source == "builtin":
        return None  # a built-in session always carries its password's fingerprint
    return {
        "username": username,
        "source": source,
        "groups": orjson.loads(groups_json) if groups_json else [],
        "role": role,
        "expires_at": expires_at,
    }


def delete(conn: Conn, session_hash: str) -> None:
    conn.execute("DELETE FROM auth_sessions WHERE session_hash = ?", (session_hash,))
    bump(conn, CREDENTIALS)
