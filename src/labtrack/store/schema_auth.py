"""Schema migrations of the identity and access area (see store.schema for the conventions).

Design notes (why the tables look like this):
- Grants are stored the way MLflow 3 stores them: as *roles* holding permissions on resource
  patterns (an id or name, or ``*``), with users and groups as role members. A per-user grant
  goes into the user's synthetic role ``__user_<id>__`` and a group grant into
  ``__group_<name>__``, so one query collects everything a caller holds.
- Principals are referred to by name (username, group name), not by id: users of external
  identity sources (APIHub, OIDC, a proxy) can be granted access before their first sign-in.
- Personal access tokens are stored only as the SHA-256 of the token; a token is 32 random
  bytes, so a fast hash is as good as a slow one and verifying one costs microseconds.
- ``auth_state`` holds two counters that every change bumps in the same transaction:
  ``credentials`` (passwords, tokens, users) and ``grants`` (permissions, roles, groups).
  Worker processes poll them to drop their in-memory caches, so a revoked token or a changed
  grant stops working everywhere within about a second.
- ``auth_audit`` is append-only: sign-ins and every change of users, tokens and permissions.
- ``auth_sessions`` are web UI sign-ins, stored as the SHA-256 of the random session id (the
  cookie holds the id, signed). A session remembers the credential it was opened with (a
  fingerprint of the password hash, or the token's hash), so changing the password or revoking
  the token ends it. ``auth_secrets`` holds the generated cookie-signing key that every worker
  shares when ``LABTRACK_SECRET_KEY`` is not set.
"""

from __future__ import annotations

AUTH: list[list[str]] = [
    # 1: users, tokens, roles and grants, groups, audit log, cache generations
    [
        """CREATE TABLE auth_users (
            user_id {pk},
            username {text} NOT NULL UNIQUE,
            password_hash {text},
            is_admin SMALLINT NOT NULL DEFAULT 0,
            role {text},
            source {text} NOT NULL DEFAULT 'builtin',
            external_groups {text},
            created_at {bigint} NOT NULL,
            updated_at {bigint} NOT NULL
        )""",
        """CREATE TABLE auth_tokens (
            token_id {pk},
            username {text} NOT NULL,
            name {text} NOT NULL,
            token_hash {text} NOT NULL UNIQUE,
            hint {text} NOT NULL,
            created_at {bigint} NOT NULL,
            expires_at {bigint},
            revoked_at {bigint}
        )""",
        "CREATE INDEX auth_tokens_by_user ON auth_tokens (username)",
        """CREATE TABLE auth_roles (
            role_id {pk},
            name {text} NOT NULL,
            workspace {text} NOT NULL DEFAULT 'default',
            description {text},
            UNIQUE (workspace, name)
        )""",
        """CREATE TABLE auth_role_permissions (
            id {pk},
            role_id {bigint} NOT NULL REFERENCES auth_roles(role_id),
            resource_type {text} NOT NULL,
            resource_pattern {text} NOT NULL,
            permission {text} NOT NULL,
            UNIQUE (role_id, resource_type, resource_pattern)
        )""",
        """CREATE INDEX auth_role_permissions_by_resource
            ON auth_role_permissions (resource_type, resource_pattern)""",
        """CREATE TABLE auth_role_members (
            id {pk},
            role_id {bigint} NOT NULL REFERENCES auth_roles(role_id),
            principal_type {text} NOT NULL,
            principal {text} NOT NULL,
            UNIQUE (role_id, principal_type, principal)
        )""",
        "CREATE INDEX auth_role_members_by_principal ON auth_role_members (principal_type, principal)",
        """CREATE TABLE auth_groups (
            group_name {text} NOT NULL PRIMARY KEY,
            description {text},
            created_at {bigint} NOT NULL
        )""",
        """CREATE TABLE auth_group_members (
            group_name {text} NOT NULL,
            username {text} NOT NULL,
            PRIMARY KEY (group_name, username)
        ){without_rowid}""",
        "CREATE INDEX auth_group_members_by_user ON auth_group_members (username)",
        """CREATE TABLE auth_audit (
            audit_id {pk},
            at {bigint} NOT NULL,
            actor {text},
            action {text} NOT NULL,
            target {text},
            outcome {text} NOT NULL,
            address {text},
            detail {text}
        )""",
        "CREATE INDEX auth_audit_by_time ON auth_audit (at)",
        """CREATE TABLE auth_state (
            name {text} NOT NULL PRIMARY KEY,
            generation {bigint} NOT NULL
        )""",
        "INSERT INTO auth_state (name, generation) VALUES ('credentials', 0), ('grants', 0)",
    ],
    # 2: web UI sign-in sessions and server secrets (see labtrack.auth.sessions)
    [
        """CREATE TABLE auth_sessions (
            session_hash {text} NOT NULL PRIMARY KEY,
            username {text} NOT NULL,
            source {text} NOT NULL,
            groups_json {text},
            role {text},
            credential {text},
            created_at {bigint} NOT NULL,
            expires_at {bigint} NOT NULL
        )""",
        "CREATE INDEX auth_sessions_by_user ON auth_sessions (username)",
        """CREATE TABLE auth_secrets (
            name {text} NOT NULL PRIMARY KEY,
            value {text} NOT NULL
        )""",
    ],
]
