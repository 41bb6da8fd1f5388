"""Users, permissions, roles, tokens, groups and the audit log.

Compatible with MLflow's basic-auth app, both generations, so ``get_app_client("basic-auth")``
works against labtrack: the 2.x user and per-resource permission endpoints and the 3.x
role-based ones. Beyond MLflow, under ``/api/2.0/labtrack/``: personal access tokens, groups,
"who can access this resource", roles of users, and the audit log (docs/auth.md).

Every handler here needs authentication to be on; with it off they answer 404, like a stock
server without the auth app.
"""

from __future__ import annotations

import time
from typing import Any

from labtrack.auth import tokens as token_util
from labtrack.auth.identity import PermissionDenied
from labtrack.auth.passwords import check_policy, hash_password_async, verify_password_async
from labtrack.auth.permissions import (
    EXPERIMENT,
    MANAGE,
    REGISTERED_MODEL,
    ROLES,
    allows,
    check_permission,
)
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import auth as store
from labtrack.store import paging
from labtrack.validation import parse_experiment_id
from labtrack.wire import MlflowError, Params, already_exists, bad_value, invalid, not_found

routes = RouteTable()

ADMIN = Access("server", "ADMIN")
SIGNED_IN = Access("server", "AUTHENTICATED")
SELF_READ = Access("user", "READ", "username")
SELF_EDIT = Access("user", "EDIT", "username")
MAX_AUDIT_RESULTS = 1000


def _now() -> int:
    return int(time.time() * 1000)


def _enforcer(req: Request):
    enforcer = getattr(req.app, "auth", None)
    if enforcer is None:
        raise MlflowError(
            "Authentication is off on this server, so there are no users or permissions to "
            "manage (see docs/auth.md).",
            "ENDPOINT_NOT_FOUND",
        )
    return enforcer


def _caller(req: Request):
    _enforcer(req)
    return req.scope["labtrack.caller"]


_CREDENTIAL_ACTIONS = {"password_change", "user_delete", "admin_change", "token_revoke"}


async def _audited(req: Request, fn, *args: Any, action: str, target: str, detail=None):
    """Run a change and its audit record in one transaction, then drop stale caches."""
    enforcer = _enforcer(req)
    caller = req.scope["labtrack.caller"]
    from labtrack.auth.identity import client_address

    address = client_address(req.scope, enforcer.authn.proxies)

    def run(conn):
        result = fn(conn, *args)
        store.audit(conn, _now(), caller.username, action, target, "success", address, detail)
        return result

    result = await req.app.db.write(run)
    enforcer.changed(credentials=action in _CREDENTIAL_ACTIONS)
    return result


def _required(params: Params, name: str) -> str:
    return params.str(name, required=True)  # type: ignore[return-value]


def _resource(params: Params, type_field: str, id_field: str) -> tuple[str, str]:
    resource_type = _required(params, type_field)
    resource_id = _required(params, id_field)
    if resource_type == EXPERIMENT and resource_id != "*":
        resource_id = str(parse_experiment_id(resource_id, id_field))
    return resource_type, resource_id


def _require_manage(caller, resource_type: str, resource_id: str) -> None:
    if caller.is_admin:
        return
    if resource_id == "*" or not caller.can(resource_type, resource_id, MANAGE):
        raise PermissionDenied(
            f"Permission denied: managing permissions of {resource_type} {resource_id} "
            "needs MANAGE on it."
        )


def _ensure_user(external: bool):
    """A store step: the user must exist, except that with external identity sources a user
    who has not signed in yet is remembered so they can be granted access in advance."""

    def ensure(conn, username: str) -> dict:
        user = store.find_user(conn, username)
        if user is None and external:
            store.sync_external_user(conn, username, "external", None, [], _now())
            user = store.find_user(conn, username)
        if user is None:
            raise not_found(f"User with username={username} not found")
        return user

    return ensure


# --- users (2.x and 3.x) ------------------------------------------------------------------------
def _user_json(user: dict) -> dict:
    return store.public_user(user)


def _user_with_grants(conn, username: str) -> dict:
    """The user as MLflow shows it: 2.x clients also read the user's direct grants."""
    user = store.get_user(conn, username)
    own_role = f"__user_{user['id']}__"
    experiments, models = [], []
    for row in store.permissions_of(conn, store.USER, username):
        if row["role_name"] != own_role:
            continue
        if row["resource_type"] == EXPERIMENT:
            experiments.append(
                {
                    "experiment_id": row["resource_pattern"],
                    "user_id": user["id"],
                    "permission": row["permission"],
                }
            )
        elif row["resource_type"] == REGISTERED_MODEL:
            models.append(
                {
                    "name": row["resource_pattern"],
                    "user_id": user["id"],
                    "permission": row["permission"],
                }
            )
    return {
        **_user_json(user),
        "experiment_permissions": experiments,
        "registered_model_permissions": models,
    }


@routes.api("POST", "/mlflow/users/create", access=ADMIN)
async def create_user(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    username = params.str("username")
    password = params.str("password")
    if not username or not password:
        raise invalid("Username and password cannot be empty.")
    check_policy(password)
    password_hash = await hash_password_async(password)
    await _audited(
        req,
        store.create_user,
        username,
        password_hash,
        _now(),
        action="user_create",
        target=username,
    )
    return {"user": await req.app.db.read(_user_with_grants, username)}


@routes.api("GET", "/mlflow/users/get", access=SELF_READ)
async def get_user(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    return {"user": await req.app.db.read(_user_with_grants, _required(params, "username"))}


@routes.api("GET", "/mlflow/users/list", access=ADMIN)
async def list_users(req: Request) -> dict:
    _enforcer(req)

    def load(conn) -> list[dict]:
        users = []
        for user in store.list_users(conn):
            entry = _user_json(user)
            entry["roles"] = [
                r
                for r in store.member_roles(conn, store.USER, user["username"])
                if not r["name"].startswith("__")
            ]
            users.append(entry)
        return users

    return {"users": await req.app.db.read(load)}


@routes.api("GET", "/mlflow/users/current", access=SIGNED_IN)
async def current_user(req: Request) -> dict:
    caller = _caller(req)
    return {
        "user": {"id": caller.user_id, "username": caller.username, "is_admin": caller.is_admin},
        "is_basic_auth": caller.identity.source == "builtin",
        "role": caller.role,
        "groups": list(caller.groups),
        "source": caller.identity.source,
    }


@routes.api("PATCH", "/mlflow/users/update-password", access=SELF_EDIT)
async def update_password(req: Request) -> dict:
    caller = _caller(req)
    params = await read_params(req)
    username = _required(params, "username")
    password = params.str("password")
    check_policy(password)
    if username == caller.username:
        current = params.str("current_password")
        if not current:
            raise invalid("Current password is required when changing your own password.")
        user = await req.app.db.read(store.get_user, username)
        if user["password_hash"] is None:
            raise invalid(
                f"{username} signs in through {user['source']}; change the password there."
            )
        if not await verify_password_async(user["password_hash"], current):
            raise invalid("Current password does not match.")
        if password == current:
            raise invalid("New password must differ from the current password.")
    elif not caller.is_admin:
        raise PermissionDenied("Permission denied.")
    password_hash = await hash_password_async(password)  # type: ignore[arg-type]
    await _audited(
        req,
        store.set_password,
        username,
        password_hash,
        _now(),
        action="password_change",
        target=username,
    )
    return {}


@routes.api("PATCH", "/mlflow/users/update-admin", access=ADMIN)
async def update_admin(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    username = _required(params, "username")
    is_admin = params.bool("is_admin")
    await _audited(
        req,
        store.set_admin,
        username,
        is_admin,
        _now(),
        action="admin_change",
        target=username,
        detail={"is_admin": is_admin},
    )
    return {}


@routes.api("DELETE", "/mlflow/users/delete", access=ADMIN)
async def delete_user(req: Request) -> dict:
    caller = _caller(req)
    params = await read_params(req)
    username = _required(params, "username")
    if username == caller.username:
        raise MlflowError(
            "Users cannot delete their own account. Ask another admin to delete this user.",
            "BAD_REQUEST",
        )
    await _audited(req, store.delete_user, username, action="user_delete", target=username)
    return {}


@routes.api("PATCH", "/labtrack/users/update-role", access=ADMIN)
async def update_role_of_user(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    username = _required(params, "username")
    role = params.str("role")
    if role is not None and role not in ROLES:
        raise invalid(f"Invalid role '{role}'; use one of {', '.join(ROLES)}.")
    await _audited(
        req,
        store.set_role,
        username,
        role or None,
        _now(),
        action="role_change",
        target=username,
        detail={"role": role},
    )
    return {}


# --- per-user grants (3.x) ----------------------------------------------------------------------
@routes.api("GET", "/mlflow/users/current/permissions", version="3.0", access=SIGNED_IN)
async def current_permissions(req: Request) -> dict:
    caller = _caller(req)
    rows = await req.app.db.read(store.permissions_of, store.USER, caller.username)
    return {"is_admin": caller.is_admin, "permissions": rows}


@routes.api("GET", "/mlflow/users/permissions/list", version="3.0", access=SELF_READ)
async def list_user_permissions(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    username = _required(params, "username")
    user = await req.app.db.read(store.get_user, username)
    rows = await req.app.db.read(store.permissions_of, store.USER, username)
    return {"is_admin": user["is_admin"], "permissions": rows}


async def _grant(req: Request, principal_type: str, principal: str, resource, permission: str):
    enforcer = _enforcer(req)
    resource_type, resource_id = resource
    _require_manage(_caller(req), resource_type, resource_id)
    ensure = _ensure_user(enforcer.authn.external)

    def run(conn) -> None:
        if principal_type == store.USER:
            ensure(conn, principal)
        else:
            store.get_group(conn, principal)
        store.grant(conn, principal_type, principal, resource_type, resource_id, permission)

    await _audited(
        req,
        run,
        action="grant",
        target=f"{resource_type}:{resource_id}",
        detail={principal_type: principal, "permission": permission},
    )


async def _revoke(req: Request, principal_type: str, principal: str, resource) -> bool:
    resource_type, resource_id = resource
    _require_manage(_caller(req), resource_type, resource_id)
    return await _audited(
        req,
        store.revoke,
        principal_type,
        principal,
        resource_type,
        resource_id,
        action="revoke",
        target=f"{resource_type}:{resource_id}",
        detail={principal_type: principal},
    )


@routes.api("POST", "/mlflow/users/permissions/grant", version="3.0", access=SIGNED_IN)
async def grant_user_permission(req: Request) -> dict:
    params = await read_params(req)
    username = _required(params, "username")
    resource = _resource(params, "resource_type", "resource_id")
    permission = check_permission(_required(params, "permission"))
    await _grant(req, store.USER, username, resource, permission)
    return {}


@routes.api("POST", "/mlflow/users/permissions/revoke", version="3.0", access=SIGNED_IN)
async def revoke_user_permission(req: Request) -> dict:
    params = await read_params(req)
    username = _required(params, "username")
    resource = _resource(params, "resource_type", "resource_id")
    await req.app.db.read(store.get_user, username)
    await _revoke(req, store.USER, username, resource)
    return {}


@routes.api("GET", "/mlflow/users/permissions/get", version="3.0", access=SIGNED_IN)
async def get_user_permission(req: Request) -> dict:
    enforcer = _enforcer(req)
    caller = _caller(req)
    params = await read_params(req)
    username = _required(params, "username")
    resource_type, resource_id = _resource(params, "resource_type", "resource_id")
    if username != caller.username and not caller.is_admin:
        _require_manage(caller, resource_type, resource_id)
    await req.app.db.read(store.get_user, username)
    target = await enforcer.caller_for(username)
    permission = target.permission(resource_type, resource_id)
    return {"allowed": allows(permission, "USE"), "permission": permission}


# --- per-resource grants (2.x) ------------------------------------------------------------------
def _legacy(kind: str):
    """The 2.x experiment and registered-model permission endpoints share one shape."""
    if kind == EXPERIMENT:
        id_field, key, access = "experiment_id", "experiment_permission", "experiment_id"
    else:
        id_field, key, access = "name", "registered_model_permission", "name"

    def resource(params: Params) -> tuple[str, str]:
        value = _required(params, id_field)
        if kind == EXPERIMENT:
            value = str(parse_experiment_id(value))
        return kind, value

    async def body(req: Request, permission: str) -> dict:
        params = await read_params(req)
        user = await req.app.db.read(store.get_user, _required(params, "username"))
        return {
            key: {id_field: resource(params)[1], "user_id": user["id"], "permission": permission}
        }

    async def current(req: Request, params: Params) -> str | None:
        _enforcer(req)
        username = _required(params, "username")
        await req.app.db.read(store.get_user, username)
        return await req.app.db.read(store.direct_grant, store.USER, username, *resource(params))

    def missing_grant(params: Params) -> MlflowError:
        return not_found(
            f"Permission for {kind} {params.str(id_field)} and user {params.str('username')}"
            " not found"
        )

    async def create(req: Request) -> dict:
        params = await read_params(req)
        permission = check_permission(_required(params, "permission"))
        if await current(req, params) is not None:
            raise already_exists(
                f"Permission for {kind} {params.str(id_field)} and user "
                f"{params.str('username')} already exists"
            )
        await _grant(req, store.USER, _required(params, "username"), resource(params), permission)
        return await body(req, permission)

    async def get(req: Request) -> dict:
        params = await read_params(req)
        permission = await current(req, params)
        if permission is None:
            raise missing_grant(params)
        return await body(req, permission)

    async def update(req: Request) -> dict:
        params = await read_params(req)
        permission = check_permission(_required(params, "permission"))
        if await current(req, params) is None:
            raise missing_grant(params)
        await _grant(req, store.USER, _required(params, "username"), resource(params), permission)
        return {}

    async def delete(req: Request) -> dict:
        params = await read_params(req)
        if await current(req, params) is None:
            raise missing_grant(params)
        await _revoke(req, store.USER, _required(params, "username"), resource(params))
        return {}

    prefix = (
        "/mlflow/experiments/permissions"
        if kind == EXPERIMENT
        else ("/mlflow/registered-models/permissions")
    )
    manage = Access(kind, MANAGE, access)
    routes.api("POST", f"{prefix}/create", access=manage)(create)
    routes.api("GET", f"{prefix}/get", access=manage)(get)
    routes.api("PATCH", f"{prefix}/update", access=manage)(update)
    routes.api("DELETE", f"{prefix}/delete", access=manage)(delete)


_legacy(EXPERIMENT)
_legacy(REGISTERED_MODEL)


# --- roles (3.x) ----------------------------------------------------------------------------------
@routes.api("POST", "/mlflow/roles/create", version="3.0", access=ADMIN)
async def create_role(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    name = (params.str("name") or "").strip()
    workspace = (params.str("workspace") or "").strip()
    if not name:
        raise invalid("Role name cannot be empty.")
    if not workspace:
        raise invalid("Workspace cannot be empty.")
    role = await _audited(
        req,
        store.create_role,
        name,
        workspace,
        params.str("description"),
        action="role_create",
        target=name,
    )
    return {"role": role}


@routes.api("GET", "/mlflow/roles/get", version="3.0", access=ADMIN)
async def get_role(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    return {"role": await req.app.db.read(store.get_role, params.int("role_id", required=True))}


@routes.api("GET", "/mlflow/roles/list", version="3.0", access=ADMIN)
async def list_roles(req: Request) -> dict:
    _enforcer(req)
    workspaces = req.query.get("workspace") or None
    return {"roles": await req.app.db.read(store.list_roles, workspaces)}


@routes.api("PATCH", "/mlflow/roles/update", version="3.0", access=ADMIN)
async def update_role(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    role_id = params.int("role_id", required=True)
    name, description = params.str("name"), params.str("description")
    if name is None and description is None:
        raise invalid("At least one of 'name' or 'description' must be provided to update a role.")
    if name is not None and not name.strip():
        raise invalid("Role name cannot be empty.")
    role = await _audited(
        req,
        store.update_role,
        role_id,
        name,
        description,
        action="role_update",
        target=str(role_id),
    )
    return {"role": role}


@routes.api("DELETE", "/mlflow/roles/delete", version="3.0", access=ADMIN)
async def delete_role(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    role_id = params.int("role_id", required=True)
    await _audited(req, store.delete_role, role_id, action="role_delete", target=str(role_id))
    return {}


@routes.api("POST", "/mlflow/roles/permissions/add", version="3.0", access=ADMIN)
async def add_role_permission(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    role_id = params.int("role_id", required=True)
    resource_type, pattern = _resource(params, "resource_type", "resource_pattern")
    permission = check_permission(_required(params, "permission"))
    rp = await _audited(
        req,
        store.add_role_permission,
        role_id,
        resource_type,
        pattern,
        permission,
        action="role_permission_add",
        target=f"{resource_type}:{pattern}",
        detail={"role_id": role_id, "permission": permission},
    )
    return {"role_permission": rp}


@routes.api("DELETE", "/mlflow/roles/permissions/remove", version="3.0", access=ADMIN)
async def remove_role_permission(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    permission_id = params.int("role_permission_id", required=True)
    await _audited(
        req,
        store.remove_role_permission,
        permission_id,
        action="role_permission_remove",
        target=str(permission_id),
    )
    return {}


@routes.api("GET", "/mlflow/roles/permissions/list", version="3.0", access=ADMIN)
async def list_role_permissions(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    role = await req.app.db.read(store.get_role, params.int("role_id", required=True))
    return {"role_permissions": role["permissions"]}


@routes.api("PATCH", "/mlflow/roles/permissions/update", version="3.0", access=ADMIN)
async def update_role_permission(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    permission_id = params.int("role_permission_id", required=True)
    permission = check_permission(_required(params, "permission"))
    rp = await _audited(
        req,
        store.update_role_permission,
        permission_id,
        permission,
        action="role_permission_update",
        target=str(permission_id),
        detail={"permission": permission},
    )
    return {"role_permission": rp}


def _member(params: Params) -> tuple[str, str]:
    """A role is assigned to a user (``username``, MLflow) or to a group (``group``, labtrack)."""
    group = params.str("group")
    if group:
        return store.GROUP, group
    return store.USER, _required(params, "username")


@routes.api("POST", "/mlflow/roles/assign", version="3.0", access=ADMIN)
async def assign_role(req: Request) -> dict:
    enforcer = _enforcer(req)
    params = await read_params(req)
    principal_type, principal = _member(params)
    role_id = params.int("role_id", required=True)
    ensure = _ensure_user(enforcer.authn.external)

    def run(conn) -> dict:
        if principal_type == store.USER:
            user_id = ensure(conn, principal)["id"]
        else:
            store.get_group(conn, principal)
            user_id = None
        assignment = store.assign_role(conn, principal_type, principal, role_id)
        if user_id is not None:
            assignment["user_id"] = user_id
        else:
            assignment["group"] = principal
        return assignment

    assignment = await _audited(
        req, run, action="role_assign", target=str(role_id), detail={principal_type: principal}
    )
    return {"assignment": assignment}


@routes.api("DELETE", "/mlflow/roles/unassign", version="3.0", access=ADMIN)
async def unassign_role(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    principal_type, principal = _member(params)
    role_id = params.int("role_id", required=True)
    await _audited(
        req,
        store.unassign_role,
        principal_type,
        principal,
        role_id,
        action="role_unassign",
        target=str(role_id),
        detail={principal_type: principal},
    )
    return {}


@routes.api("GET", "/mlflow/users/roles/list", version="3.0", access=SELF_READ)
async def list_user_roles(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    username = _required(params, "username")
    await req.app.db.read(store.get_user, username)
    roles = await req.app.db.read(store.member_roles, store.USER, username)
    return {"roles": [r for r in roles if not r["name"].startswith("__")]}


@routes.api("GET", "/mlflow/roles/users/list", version="3.0", access=ADMIN)
async def list_role_users(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    role_id = params.int("role_id", required=True)

    def load(conn) -> tuple[list[dict], list[str]]:
        users, groups = [], []
        for member_id, principal_type, principal in store.role_members(conn, role_id):
            if principal_type == store.USER:
                user = store.find_user(conn, principal)
                if user is not None:
                    users.append({"id": member_id, "user_id": user["id"], "role_id": role_id})
            else:
                groups.append(principal)
        return users, groups

    assignments, groups = await req.app.db.read(load)
    return {"assignments": assignments, "groups": groups}


# --- personal access tokens (labtrack) -------------------------------------------------------------
def _owner(req: Request, params: Params) -> str:
    """Whose tokens: your own; an admin may name another user."""
    caller = _caller(req)
    username = params.str("username") or caller.username
    if username != caller.username and not caller.is_admin:
        raise PermissionDenied("Permission denied: only admins manage other users' tokens.")
    return username


@routes.api("POST", "/labtrack/tokens/create", access=SIGNED_IN)
async def create_token(req: Request) -> dict:
    params = await read_params(req)
    username = _owner(req, params)
    name = (params.str("name") or "").strip() or "token"
    if len(name) > 200:
        raise invalid("Token names are at most 200 characters long.")
    days = params.int("expires_in_days")
    expires_at = params.int("expires_at")
    if days is not None:
        if days < 1:
            raise bad_value("expires_in_days", days)
        expires_at = _now() + days * 86_400_000
    if expires_at is not None and expires_at <= _now():
        raise invalid("expires_at must be in the future (milliseconds since the epoch).")
    token, info = await _audited(
        req,
        token_util.issue,
        username,
        name,
        _now(),
        expires_at,
        action="token_create",
        target=username,
        detail={"name": name},
    )
    return {"token": token, "token_info": info}


@routes.api("GET", "/labtrack/tokens/list", access=SIGNED_IN)
async def list_tokens(req: Request) -> dict:
    params = await read_params(req)
    caller = _caller(req)
    if caller.is_admin and params.bool("all_users"):
        return {"tokens": await req.app.db.read(store.list_tokens, None)}
    return {"tokens": await req.app.db.read(store.list_tokens, _owner(req, params))}


@routes.api("POST", "/labtrack/tokens/revoke", access=SIGNED_IN)
async def revoke_token(req: Request) -> dict:
    caller = _caller(req)
    params = await read_params(req)
    raw_id = _required(params, "token_id")
    if not raw_id.isdigit():
        raise bad_value("token_id", raw_id)
    token = await req.app.db.read(store.get_token, int(raw_id))
    if token["username"] != caller.username and not caller.is_admin:
        raise not_found(f"Token {raw_id} not found")  # don't confirm other users' token ids
    await _audited(
        req,
        store.revoke_token,
        int(raw_id),
        _now(),
        action="token_revoke",
        target=token["username"],
        detail={"token_id": raw_id, "name": token["name"]},
    )
    return {}


# --- groups (labtrack) ------------------------------------------------------------------------------
@routes.api("POST", "/labtrack/groups/create", access=ADMIN)
async def create_group(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    name = _required(params, "name").strip()
    group = await _audited(
        req,
        store.create_group,
        name,
        params.str("description"),
        _now(),
        action="group_create",
        target=name,
    )
    return {"group": group}


@routes.api("GET", "/labtrack/groups/list", access=ADMIN)
async def list_groups(req: Request) -> dict:
    _enforcer(req)
    return {"groups": await req.app.db.read(store.list_groups)}


@routes.api("DELETE", "/labtrack/groups/delete", access=ADMIN)
async def delete_group(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    name = _required(params, "name")
    await _audited(req, store.delete_group, name, action="group_delete", target=name)
    return {}


@routes.api("POST", "/labtrack/groups/members/add", access=ADMIN)
async def add_group_member(req: Request) -> dict:
    enforcer = _enforcer(req)
    params = await read_params(req)
    name, username = _required(params, "name"), _required(params, "username")
    ensure = _ensure_user(enforcer.authn.external)

    def run(conn) -> None:
        ensure(conn, username)
        store.add_group_member(conn, name, username)

    await _audited(req, run, action="group_member_add", target=name, detail={"user": username})
    return {}


@routes.api("POST", "/labtrack/groups/members/remove", access=ADMIN)
async def remove_group_member(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    name, username = _required(params, "name"), _required(params, "username")
    await _audited(
        req,
        store.remove_group_member,
        name,
        username,
        action="group_member_remove",
        target=name,
        detail={"user": username},
    )
    return {}


@routes.api("POST", "/labtrack/groups/permissions/grant", access=SIGNED_IN)
async def grant_group_permission(req: Request) -> dict:
    params = await read_params(req)
    group = _required(params, "group")
    resource = _resource(params, "resource_type", "resource_id")
    permission = check_permission(_required(params, "permission"))
    await _grant(req, store.GROUP, group, resource, permission)
    return {}


@routes.api("POST", "/labtrack/groups/permissions/revoke", access=SIGNED_IN)
async def revoke_group_permission(req: Request) -> dict:
    params = await read_params(req)
    group = _required(params, "group")
    await _revoke(req, store.GROUP, group, _resource(params, "resource_type", "resource_id"))
    return {}


# --- who can access a resource (labtrack) -----------------------------------------------------------
@routes.api("GET", "/labtrack/permissions/who-can-access", access=SIGNED_IN)
async def who_can_access(req: Request) -> dict:
    enforcer = _enforcer(req)
    params = await read_params(req)
    resource_type, resource_id = _resource(params, "resource_type", "resource_id")
    _require_manage(_caller(req), resource_type, resource_id)

    def load(conn) -> tuple[list[dict], list[str]]:
        grants = store.who_can_access(conn, resource_type, resource_id)
        admins = [u["username"] for u in store.list_users(conn) if u["is_admin"]]
        return grants, admins

    grants, admins = await req.app.db.read(load)
    return {
        "resource_type": resource_type,
        "resource_id": resource_id,
        "default_permission": enforcer.default_permission,
        "grants": grants,
        "admins": admins,
    }


# --- audit log (labtrack) -----------------------------------------------------------------------------
@routes.api("GET", "/labtrack/audit", access=ADMIN)
async def audit_log(req: Request) -> dict:
    _enforcer(req)
    params = await read_params(req)
    max_results = params.int("max_results", default=100)
    if max_results < 1 or max_results > MAX_AUDIT_RESULTS:
        raise bad_value("max_results", max_results)
    offset = paging.decode(params.str("page_token"))
    events, more = await req.app.db.read(
        lambda conn: store.list_audit(
            conn,
            max_results=max_results,
            offset=offset,
            actor=params.str("username"),
            action=params.str("action"),
        )
    )
    result: dict[str, Any] = {"events": events}
    if more:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result
