"""Identity and access queries: users, tokens, roles and grants, groups, audit log.

Every function runs inside one transaction (see store.db). Every change bumps the matching
``auth_state`` generation in the same transaction, which is how other worker processes learn
that their cached credentials or grants are stale (see labtrack.auth.enforce).
"""

from __future__ import annotations

from typing import Any

import orjson

from labtrack.store.db import Conn, integrity_errors
from labtrack.wire import already_exists, invalid, not_found

CREDENTIALS, GRANTS = "credentials", "grants"
USER, GROUP = "user", "group"
DEFAULT_WORKSPACE = "default"

_USER_COLUMNS = (
    "user_id, username, password_hash, is_admin, role, source, external_groups, created_at"
)


# --- generations ----------------------------------------------------------------------------------
def bump(conn: Conn, *names: str) -> None:
    sql, args = conn.in_clause("name", names)
    conn.execute(f"UPDATE auth_state SET generation = generation + 1 WHERE {sql}", args)


def generations(conn: Conn) -> tuple[int, int]:
    rows = dict(conn.all("SELECT name, generation FROM auth_state"))
    return rows.get(CREDENTIALS, 0), rows.get(GRANTS, 0)


# --- users ----------------------------------------------------------------------------------------
def _user(row: tuple) -> dict[str, Any]:
    return {
        "id": row[0],
        "username": row[1],
        "password_hash": row[2],
        "is_admin": bool(row[3]),
        "role": row[4],
        "source": row[5],
        "external_groups": orjson.loads(row[6]) if row[6] else [],
        "created_at": row[7],
    }


def public_user(user: dict) -> dict[str, Any]:
    """The user as the API shows it (MLflow's fields first; never the hash)."""
    return {
        "id": user["id"],
        "username": user["username"],
        "is_admin": user["is_admin"],
        "role": user["role"],
        "source": user["source"],
    }


def find_user(conn: Conn, username: str) -> dict | None:
    row = conn.one(f"SELECT {_USER_COLUMNS} FROM auth_users WHERE username = ?", (username,))
    return _user(row) if row else None


def get_user(conn: Conn, username: str) -> dict:
    user = find_user(conn, username)
    if user is None:
        raise not_found(f"User with username={username} not found")
    return user


def list_users(conn: Conn) -> list[dict]:
    rows = conn.all(f"SELECT {_USER_COLUMNS} FROM auth_users ORDER BY username")
    return [_user(r) for r in rows]


def has_password_users(conn: Conn) -> bool:
    """Whether built-in sign-in is in use (some user has a password)."""
    return conn.one("SELECT 1 FROM auth_users WHERE password_hash IS NOT NULL LIMIT 1") is not None


def create_user(
    conn: Conn,
    username: str,
    password_hash: str | None,
    now: int,
    *,
    is_admin: bool = False,
    role: str | None = None,
    source: str = "builtin",
) -> dict:
    if find_user(conn, username) is not None:
        raise already_exists(f"User '{username}' already exists.")
    try:
        with conn.savepoint():
            conn.execute(
                "INSERT INTO auth_users (username, password_hash, is_admin, role, source,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, password_hash, int(is_admin), role, source, now, now),
            )
    except integrity_errors():
        raise already_exists(f"User '{username}' already exists.") from None
    bump(conn, CREDENTIALS, GRANTS)
    return get_user(conn, username)


def sync_external_user(
    conn: Conn, username: str, source: str, role: str | None, groups: list[str], now: int
) -> None:
    """Remember an external user, with the role and groups their source gave at sign-in.

    Tokens of external users then carry the same role and groups. A built-in user of the same
    name (one with a password) is left alone.
    """
    user = find_user(conn, username)
    groups_json = orjson.dumps(sorted(groups)).decode() if groups else None
    if user is None:
        conn.execute(
            "INSERT INTO auth_users (username, password_hash, is_admin, role, source,"
            " external_groups, created_at, updated_at) VALUES (?, NULL, 0, ?, ?, ?, ?, ?)"
            " ON CONFLICT (username) DO NOTHING",
            (username, role, source, groups_json, now, now),
        )
        bump(conn, GRANTS)
        return
    if user["password_hash"] is not None:
        return
    if (
        user["role"] != role
        or user["external_groups"] != sorted(groups)
        or user["source"] != source
    ):
        conn.execute(
            "UPDATE auth_users SET role = ?, external_groups = ?, source = ?, updated_at = ?"
            " WHERE username = ?",
            (role, groups_json, source, now, username),
        )
        bump(conn, GRANTS)


def set_password(conn: Conn, username: str, password_hash: str, now: int) -> None:
    get_user(conn, username)
    conn.execute(
        "UPDATE auth_users SET password_hash = ?, updated_at = ? WHERE username = ?",
        (password_hash, now, username),
    )
    bump(conn, CREDENTIALS)


def set_admin(conn: Conn, username: str, is_admin: bool, now: int) -> None:
    get_user(conn, username)
    conn.execute(
        "UPDATE auth_users SET is_admin = ?, updated_at = ? WHERE username = ?",
        (int(is_admin), now, username),
    )
    bump(conn, CREDENTIALS, GRANTS)


def set_role(conn: Conn, username: str, role: str | None, now: int) -> None:
    get_user(conn, username)
    conn.execute(
        "UPDATE auth_users SET role = ?, updated_at = ? WHERE username = ?", (role, now, username)
    )
    bump(conn, CREDENTIALS, GRANTS)


def delete_user(conn: Conn, username: str) -> None:
    user = get_user(conn, username)
    role_id = conn.scalar(
        "SELECT role_id FROM auth_roles WHERE workspace = ? AND name = ?",
        (DEFAULT_WORKSPACE, _user_role_name(user["id"])),
    )
    if role_id is not None:
        _delete_role_rows(conn, role_id)
    conn.execute(
        "DELETE FROM auth_role_members WHERE principal_type = ? AND principal = ?", (USER, username)
    )
    conn.execute("DELETE FROM auth_group_members WHERE username = ?", (username,))
    conn.execute("DELETE FROM auth_tokens WHERE username = ?", (username,))
    conn.execute("DELETE FROM auth_users WHERE user_id = ?", (user["id"],))
    bump(conn, CREDENTIALS, GRANTS)


# --- personal access tokens ----------------------------------------------------------------------
_TOKEN_COLUMNS = "token_id, username, name, hint, created_at, expires_at, revoked_at"


def _token(row: tuple) -> dict[str, Any]:
    info = {
        "token_id": str(row[0]),
        "username": row[1],
        "name": row[2],
        "hint": row[3],
        "created_at": row[4],
    }
    if row[5] is not None:
        info["expires_at"] = row[5]
    if row[6] is not None:
        info["revoked_at"] = row[6]
    return info


def create_token(
    conn: Conn,
    username: str,
    name: str,
    token_hash: str,
    hint: str,
    now: int,
    expires_at: int | None,
) -> dict:
    get_user(conn, username)
    token_id = conn.insert_returning_id(
        "INSERT INTO auth_tokens (username, name, token_hash, hint, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (username, name, token_hash, hint, now, expires_at),
        "token_id",
    )
    return _token(
        conn.one(f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE token_id = ?", (token_id,))
    )


def token_owner(conn: Conn, token_hash: str, now: int) -> tuple[dict, int | None] | None:
    """The user behind a live token and the token's expiry, or None."""
    row = conn.one(
        "SELECT username, expires_at, revoked_at FROM auth_tokens WHERE token_hash = ?",
        (token_hash,),
    )
    if row is None or row[2] is not None or (row[1] is not None and row[1] <= now):
        return None
    user = find_user(conn, row[0])
    return (user, row[1]) if user else None


def list_tokens(conn: Conn, username: str | None) -> list[dict]:
    if username is None:
        rows = conn.all(f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens ORDER BY token_id")
    else:
        rows = conn.all(
            f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE username = ? ORDER BY token_id",
            (username,),
        )
    return [_token(r) for r in rows]


def get_token(conn: Conn, token_id: int) -> dict:
    row = conn.one(f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE token_id = ?", (token_id,))
    if row is None:
        raise not_found(f"Token {token_id} not found")
    return _token(row)


def revoke_token(conn: Conn, token_id: int, now: int) -> dict:
    token = get_token(conn, token_id)
    conn.execute(
        "UPDATE auth_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
        (now, token_id),
    )
    bump(conn, CREDENTIALS)
    return token


# --- the caller's grants --------------------------------------------------------------------------
def principal(conn: Conn, username: str, groups: tuple[str, ...]) -> dict[str, Any]:
    """Everything authorization needs about one caller, in one transaction."""
    user = find_user(conn, username)
    managed = [
        r[0]
        for r in conn.all(
            "SELECT group_name FROM auth_group_members WHERE username = ?", (username,)
        )
    ]
    all_groups = sorted(set(groups) | set(managed) | set(user["external_groups"] if user else ()))
    where = "(m.principal_type = ? AND m.principal = ?)"
    args: list = [USER, username]
    if all_groups:
        group_sql, group_args = conn.in_clause("m.principal", all_groups)
        where += f" OR (m.principal_type = ? AND {group_sql})"
        args += [GROUP, *group_args]
    rows = conn.all(
        "SELECT rp.resource_type, rp.resource_pattern, rp.permission FROM auth_role_members m"
        f" JOIN auth_role_permissions rp ON rp.role_id = m.role_id WHERE {where}",
        args,
    )
    return {"user": user, "groups": all_groups, "grants": rows}


# --- roles -----------------------------------------------------------------------------------------
def _user_role_name(user_id: int) -> str:
    return f"__user_{user_id}__"


def _group_role_name(group: str) -> str:
    return f"__group_{group}__"


def _role_permission(row: tuple) -> dict[str, Any]:
    return {
        "id": row[0],
        "role_id": row[1],
        "resource_type": row[2],
        "resource_pattern": row[3],
        "permission": row[4],
    }


def _role(conn: Conn, row: tuple) -> dict[str, Any]:
    perms = conn.all(
        "SELECT id, role_id, resource_type, resource_pattern, permission"
        " FROM auth_role_permissions WHERE role_id = ? ORDER BY id",
        (row[0],),
    )
    role = {"id": row[0], "name": row[1], "workspace": row[2], "description": row[3]}
    role["permissions"] = [_role_permission(p) for p in perms]
    return role


def get_role(conn: Conn, role_id: int) -> dict:
    row = conn.one(
        "SELECT role_id, name, workspace, description FROM auth_roles WHERE role_id = ?",
        (role_id,),
    )
    if row is None:
        raise not_found(f"Role with id={role_id} not found")
    return _role(conn, row)


def create_role(conn: Conn, name: str, workspace: str, description: str | None) -> dict:
    if name.startswith("__"):
        raise invalid("Role names starting with '__' are reserved.")
    if conn.one("SELECT 1 FROM auth_roles WHERE workspace = ? AND name = ?", (workspace, name)):
        raise already_exists(f"Role '{name}' already exists in workspace '{workspace}'.")
    role_id = conn.insert_returning_id(
        "INSERT INTO auth_roles (name, workspace, description) VALUES (?, ?, ?)",
        (name, workspace, description),
        "role_id",
    )
    bump(conn, GRANTS)
    return get_role(conn, role_id)


def list_roles(conn: Conn, workspaces: list[str] | None) -> list[dict]:
    # The synthetic per-user and per-group roles (``__user_1__``) are not listed as roles.
    sql = (
        "SELECT role_id, name, workspace, description FROM auth_roles"
        " WHERE substr(name, 1, 2) <> '__'"
    )
    args: tuple = ()
    if workspaces:
        ws_sql, args = conn.in_clause("workspace", workspaces)
        sql += f" AND {ws_sql}"
    return [_role(conn, r) for r in conn.all(sql + " ORDER BY role_id", args)]


def update_role(conn: Conn, role_id: int, name: str | None, description: str | None) -> dict:
    role = get_role(conn, role_id)
    if role["name"].startswith("__"):
        raise invalid("Built-in per-user and per-group roles cannot be renamed.")
    if name is not None and name != role["name"]:
        if name.startswith("__"):
            raise invalid("Role names starting with '__' are reserved.")
        if conn.one(
            "SELECT 1 FROM auth_roles WHERE workspace = ? AND name = ?", (role["workspace"], name)
        ):
            raise already_exists(f"Role '{name}' already exists.")
        conn.execute("UPDATE auth_roles SET name = ? WHERE role_id = ?", (name, role_id))
    if description is not None:
        conn.execute(
            "UPDATE auth_roles SET description = ? WHERE role_id = ?", (description, role_id)
        )
    bump(conn, GRANTS)
    return get_role(conn, role_id)


def _delete_role_rows(conn: Conn, role_id: int) -> None:
    conn.execute("DELETE FROM auth_role_permissions WHERE role_id = ?", (role_id,))
    conn.execute("DELETE FROM auth_role_members WHERE role_id = ?", (role_id,))
    conn.execute("DELETE FROM auth_roles WHERE role_id = ?", (role_id,))


def delete_role(conn: Conn, role_id: int) -> None:
    get_role(conn, role_id)
    _delete_role_rows(conn, role_id)
    bump(conn, GRANTS)


def _check_resource(resource_type: str, pattern: str) -> None:
    from labtrack.auth.permissions import GRANTABLE

    if resource_type not in GRANTABLE:
        raise invalid(
            f"Invalid resource_type '{resource_type}'. labtrack grants permissions on: "
            f"{', '.join(GRANTABLE)} (runs, metrics, artifacts and logged models follow their "
            "experiment; model versions follow their registered model)."
        )
    if not pattern:
        raise invalid("resource_pattern (resource_id) must not be empty.")


def add_role_permission(
    conn: Conn, role_id: int, resource_type: str, pattern: str, permission: str
) -> dict:
    get_role(conn, role_id)
    _check_resource(resource_type, pattern)
    conn.execute(
        "INSERT INTO auth_role_permissions (role_id, resource_type, resource_pattern, permission)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (role_id, resource_type, resource_pattern)"
        " DO UPDATE SET permission = excluded.permission",
        (role_id, resource_type, pattern, permission),
    )
    bump(conn, GRANTS)
    row = conn.one(
        "SELECT id, role_id, resource_type, resource_pattern, permission FROM"
        " auth_role_permissions WHERE role_id = ? AND resource_type = ? AND resource_pattern = ?",
        (role_id, resource_type, pattern),
    )
    return _role_permission(row)


def get_role_permission(conn: Conn, permission_id: int) -> dict:
    row = conn.one(
        "SELECT id, role_id, resource_type, resource_pattern, permission"
        " FROM auth_role_permissions WHERE id = ?",
        (permission_id,),
    )
    if row is None:
        raise not_found(f"Role permission with id={permission_id} not found")
    return _role_permission(row)


def remove_role_permission(conn: Conn, permission_id: int) -> dict:
    rp = get_role_permission(conn, permission_id)
    conn.execute("DELETE FROM auth_role_permissions WHERE id = ?", (permission_id,))
    bump(conn, GRANTS)
    return rp


def update_role_permission(conn: Conn, permission_id: int, permission: str) -> dict:
    get_role_permission(conn, permission_id)
    conn.execute(
        "UPDATE auth_role_permissions SET permission = ? WHERE id = ?", (permission, permission_id)
    )
    bump(conn, GRANTS)
    return get_role_permission(conn, permission_id)


def assign_role(conn: Conn, principal_type: str, principal: str, role_id: int) -> dict:
    get_role(conn, role_id)
    conn.execute(
        "INSERT INTO auth_role_members (role_id, principal_type, principal) VALUES (?, ?, ?)"
        " ON CONFLICT (role_id, principal_type, principal) DO NOTHING",
        (role_id, principal_type, principal),
    )
    bump(conn, GRANTS)
    member_id = conn.scalar(
        "SELECT id FROM auth_role_members WHERE role_id = ? AND principal_type = ?"
        " AND principal = ?",
        (role_id, principal_type, principal),
    )
    return {"id": member_id, "role_id": role_id}


def unassign_role(conn: Conn, principal_type: str, principal: str, role_id: int) -> None:
    get_role(conn, role_id)
    deleted = conn.execute(
        "DELETE FROM auth_role_members WHERE role_id = ? AND principal_type = ? AND principal = ?",
        (role_id, principal_type, principal),
    ).rowcount
    if not deleted:
        raise not_found(f"{principal_type} '{principal}' does not have role {role_id}")
    bump(conn, GRANTS)


def member_roles(conn: Conn, principal_type: str, principal: str) -> list[dict]:
    rows = conn.all(
        "SELECT r.role_id, r.name, r.workspace, r.description FROM auth_role_members m"
        " JOIN auth_roles r ON r.role_id = m.role_id"
        " WHERE m.principal_type = ? AND m.principal = ? ORDER BY r.role_id",
        (principal_type, principal),
    )
    return [_role(conn, r) for r in rows]


def role_members(conn: Conn, role_id: int) -> list[tuple[int, str, str]]:
    get_role(conn, role_id)
    return conn.all(
        "SELECT id, principal_type, principal FROM auth_role_members WHERE role_id = ? ORDER BY id",
        (role_id,),
    )


# --- direct grants (the synthetic per-user and per-group roles) ------------------------------------
def _own_role(conn: Conn, principal_type: str, principal: str, create: bool) -> int | None:
    if principal_type == USER:
        name = _user_role_name(get_user(conn, principal)["id"])
    else:
        name = _group_role_name(principal)
    role_id = conn.scalar(
        "SELECT role_id FROM auth_roles WHERE workspace = ? AND name = ?",
        (DEFAULT_WORKSPACE, name),
    )
    if role_id is None and create:
        role_id = conn.insert_returning_id(
            "INSERT INTO auth_roles (name, workspace, description) VALUES (?, ?, ?)",
            (name, DEFAULT_WORKSPACE, f"Direct grants of {principal_type} {principal}"),
            "role_id",
        )
        conn.execute(
            "INSERT INTO auth_role_members (role_id, principal_type, principal) VALUES (?, ?, ?)",
            (role_id, principal_type, principal),
        )
    return role_id


def grant(
    conn: Conn,
    principal_type: str,
    principal: str,
    resource_type: str,
    resource_id: str,
    permission: str,
) -> None:
    _check_resource(resource_type, resource_id)
    role_id = _own_role(conn, principal_type, principal, create=True)
    conn.execute(
        "INSERT INTO auth_role_permissions (role_id, resource_type, resource_pattern, permission)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (role_id, resource_type, resource_pattern)"
        " DO UPDATE SET permission = excluded.permission",
        (role_id, resource_type, resource_id, permission),
    )
    bump(conn, GRANTS)


def direct_grant(
    conn: Conn, principal_type: str, principal: str, resource_type: str, resource_id: str
) -> str | None:
    role_id = _own_role(conn, principal_type, principal, create=False)
    if role_id is None:
        return None
    return conn.scalar(
        "SELECT permission FROM auth_role_permissions WHERE role_id = ? AND resource_type = ?"
        " AND resource_pattern = ?",
        (role_id, resource_type, resource_id),
    )


def revoke(
    conn: Conn, principal_type: str, principal: str, resource_type: str, resource_id: str
) -> bool:
    _check_resource(resource_type, resource_id)
    role_id = _own_role(conn, principal_type, principal, create=False)
    if role_id is None:
        return False
    deleted = conn.execute(
        "DELETE FROM auth_role_permissions WHERE role_id = ? AND resource_type = ?"
        " AND resource_pattern = ?",
        (role_id, resource_type, resource_id),
    ).rowcount
    bump(conn, GRANTS)
    return bool(deleted)


def permissions_of(conn: Conn, principal_type: str, principal: str) -> list[dict]:
    """Every grant a user or group holds, one row per (role, resource pattern)."""
    rows = conn.all(
        "SELECT r.role_id, r.name, r.workspace, rp.resource_type, rp.resource_pattern,"
        " rp.permission FROM auth_role_members m JOIN auth_roles r ON r.role_id = m.role_id"
        " JOIN auth_role_permissions rp ON rp.role_id = r.role_id"
        " WHERE m.principal_type = ? AND m.principal = ? ORDER BY r.role_id, rp.id",
        (principal_type, principal),
    )
    return [
        {
            "permission": p,
            "resource_pattern": pattern,
            "resource_type": rtype,
            "role_id": role_id,
            "role_name": name,
            "workspace": ws,
        }
        for role_id, name, ws, rtype, pattern, p in rows
    ]


def who_can_access(conn: Conn, resource_type: str, resource_id: str) -> list[dict]:
    """Every grant that names this resource or ``*``, with the principals holding it."""
    rows = conn.all(
        "SELECT m.principal_type, m.principal, r.role_id, r.name, rp.resource_pattern,"
        " rp.permission FROM auth_role_permissions rp"
        " JOIN auth_roles r ON r.role_id = rp.role_id"
        " JOIN auth_role_members m ON m.role_id = rp.role_id"
        " WHERE rp.resource_type = ? AND rp.resource_pattern IN (?, '*')"
        " ORDER BY m.principal_type, m.principal, r.role_id",
        (resource_type, resource_id),
    )
    return [
        {
            "principal_type": pt,
            "principal": p,
            "role_id": role_id,
            "role_name": name,
            "resource_pattern": pattern,
            "permission": perm,
        }
        for pt, p, role_id, name, pattern, perm in rows
    ]


def rename_resource(conn: Conn, resource_type: str, old: str, new: str) -> None:
    """Grants follow a registered model when it is renamed."""
    conn.execute(
        "UPDATE auth_role_permissions SET resource_pattern = ?"
        " WHERE resource_type = ? AND resource_pattern = ?",
        (new, resource_type, old),
    )
    bump(conn, GRANTS)


def forget_resource(conn: Conn, resource_type: str, resource_id: str) -> None:
    conn.execute(
        "DELETE FROM auth_role_permissions WHERE resource_type = ? AND resource_pattern = ?",
        (resource_type, resource_id),
    )
    bump(conn, GRANTS)


# --- groups ----------------------------------------------------------------------------------------
def create_group(conn: Conn, name: str, description: str | None, now: int) -> dict:
    if conn.one("SELECT 1 FROM auth_groups WHERE group_name = ?", (name,)):
        raise already_exists(f"Group '{name}' already exists.")
    conn.execute(
        "INSERT INTO auth_groups (group_name, description, created_at) VALUES (?, ?, ?)",
        (name, description, now),
    )
    bump(conn, GRANTS)
    return get_group(conn, name)


def get_group(conn: Conn, name: str) -> dict:
    row = conn.one(
        "SELECT group_name, description, created_at FROM auth_groups WHERE group_name = ?",
        (name,),
    )
    if row is None:
        raise not_found(f"Group '{name}' not found")
    members = [
        r[0]
        for r in conn.all(
            "SELECT username FROM auth_group_members WHERE group_name = ? ORDER BY username",
            (name,),
        )
    ]
    return {"name": row[0], "description": row[1], "created_at": row[2], "members": members}


def list_groups(conn: Conn) -> list[dict]:
    names = [r[0] for r in conn.all("SELECT group_name FROM auth_groups ORDER BY group_name")]
    return [get_group(conn, n) for n in names]


def delete_group(conn: Conn, name: str) -> None:
    get_group(conn, name)
    role_id = conn.scalar(
        "SELECT role_id FROM auth_roles WHERE workspace = ? AND name = ?",
        (DEFAULT_WORKSPACE, _group_role_name(name)),
    )
    if role_id is not None:
        _delete_role_rows(conn, role_id)
    conn.execute("DELETE FROM auth_group_members WHERE group_name = ?", (name,))
    conn.execute("DELETE FROM auth_groups WHERE group_name = ?", (name,))
    bump(conn, GRANTS)


def add_group_member(conn: Conn, name: str, username: str) -> None:
    get_group(conn, name)
    get_user(conn, username)
    conn.execute(
        "INSERT INTO auth_group_members (group_name, username) VALUES (?, ?)"
        " ON CONFLICT DO NOTHING",
        (name, username),
    )
    bump(conn, GRANTS)


def remove_group_member(conn: Conn, name: str, username: str) -> None:
    get_group(conn, name)
    conn.execute(
        "DELETE FROM auth_group_members WHERE group_name = ? AND username = ?", (name, username)
    )
    bump(conn, GRANTS)


# --- audit log -------------------------------------------------------------------------------------
def audit(
    conn: Conn,
    at: int,
    actor: str | None,
    action: str,
    target: str | None,
    outcome: str,
    address: str | None = None,
    detail: dict | None = None,
) -> None:
    conn.execute(
        "INSERT INTO auth_audit (at, actor, action, target, outcome, address, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            actor,
            action,
            target,
            outcome,
            address,
            orjson.dumps(detail).decode() if detail else None,
        ),
    )


def list_audit(
    conn: Conn,
    *,
    max_results: int,
    offset: int,
    actor: str | None = None,
    action: str | None = None,
) -> tuple[list[dict], bool]:
    sql = "SELECT audit_id, at, actor, action, target, outcome, address, detail FROM auth_audit"
    where, args = [], []
    if actor:
        where.append("actor = ?")
        args.append(actor)
    if action:
        where.append("action = ?")
        args.append(action)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY audit_id DESC LIMIT ? OFFSET ?"
    rows = conn.all(sql, [*args, max_results + 1, offset])
    events = [
        {
            "id": r[0],
            "at": r[1],
            "actor": r[2],
            "action": r[3],
            "target": r[4],
            "outcome": r[5],
            "address": r[6],
            "detail": orjson.loads(r[7]) if r[7] else {},
        }
        for r in rows[:max_results]
    ]
    return events, len(rows) > max_results
