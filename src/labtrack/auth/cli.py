"""Command-line parts of identity and access: the server's auth flags and the ``users``,
``tokens``, ``groups`` and ``audit`` commands, which work directly on the database (a running
server picks the changes up within a second, see auth.enforce)."""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator

import click

from labtrack.auth.permissions import PERMISSIONS, ROLES


def _env(name: str) -> str:
    return f"LABTRACK_{name}"


_PERMISSION_CHOICE = click.Choice([p for p in PERMISSIONS if p != "DENY"], case_sensitive=False)

_SERVER_OPTIONS = [
    click.option(
        "--auth/--no-auth",
        "auth",
        default=None,
        envvar=_env("AUTH"),
        help="Force authentication on or off. [default: on when an identity source is "
        "configured; off on a loopback address without one; elsewhere, refuse to start]",
    ),
    click.option(
        "--auth-default-permission",
        type=_PERMISSION_CHOICE,
        default="READ",
        show_default=True,
        envvar=_env("AUTH_DEFAULT_PERMISSION"),
        help="Permission on experiments and models for users without a grant "
        "(READ like MLflow, NO_PERMISSIONS for private-by-default).",
    ),
    click.option(
        "--auth-default-role",
        type=click.Choice(ROLES),
        default="creator",
        show_default=True,
        envvar=_env("AUTH_DEFAULT_ROLE"),
        help="Role of users whose identity source gives none (creator: may create "
        "experiments and models; reader: may not).",
    ),
    click.option(
        "--auth-role-map",
        default="admin=admin,data_scientist=creator,user=reader",
        show_default=True,
        envvar=_env("AUTH_ROLE_MAP"),
        help="External role or group name -> labtrack role (admin, creator, reader).",
    ),
    click.option(
        "--auth-cache-ttl",
        type=int,
        default=30,
        show_default=True,
        envvar=_env("AUTH_CACHE_TTL"),
        help="Seconds a verified credential is remembered (external sources are asked again "
        "after this; local changes apply within ~1 s regardless).",
    ),
    click.option("--apihub-url", envvar=_env("APIHUB_URL"), help="APIHub base URL (preset paths)."),
    click.option(
        "--apihub-password-url",
        envvar=_env("APIHUB_PASSWORD_URL"),
        help="URL checking username+password. [default: <apihub-url>/password/verify]",
    ),
    click.option(
        "--apihub-token-url",
        envvar=_env("APIHUB_TOKEN_URL"),
        help="URL checking username+token and JWTs. [default: <apihub-url>/token/verify]",
    ),
    click.option(
        "--apihub-apikey-url",
        envvar=_env("APIHUB_APIKEY_URL"),
        help="A protected APIHub URL; an API key is valid if Basic username:key may GET it.",
    ),
    click.option(
        "--apihub-checks",
        default="password,token,apikey",
        show_default=True,
        envvar=_env("APIHUB_CHECKS"),
        help="Which APIHub checks a Basic password goes through, in order.",
    ),
    click.option(
        "--forward-auth-url",
        envvar=_env("FORWARD_AUTH_URL"),
        help="Forward-auth endpoint (nginx auth_request style): 2xx = signed in.",
    ),
    click.option(
        "--forward-auth-user-header",
        default="X-Auth-Request-User",
        show_default=True,
        envvar=_env("FORWARD_AUTH_USER_HEADER"),
        help="Response header of the forward-auth endpoint naming the user.",
    ),
    click.option(
        "--forward-auth-groups-header",
        default="X-Auth-Request-Groups",
        show_default=True,
        envvar=_env("FORWARD_AUTH_GROUPS_HEADER"),
        help="Response header of the forward-auth endpoint listing groups (comma-separated).",
    ),
    click.option("--oidc-issuer", envvar=_env("OIDC_ISSUER"), help="OIDC issuer (iss) to trust."),
    click.option(
        "--oidc-jwks-url",
        envvar=_env("OIDC_JWKS_URL"),
        help="JWKS URL. [default: jwks_uri of <issuer>/.well-known/openid-configuration]",
    ),
    click.option(
        "--oidc-audience", envvar=_env("OIDC_AUDIENCE"), help="Required aud claim, if any."
    ),
    click.option(
        "--oidc-username-claim",
        default="preferred_username",
        show_default=True,
        envvar=_env("OIDC_USERNAME_CLAIM"),
        help="Claim holding the username.",
    ),
    click.option(
        "--oidc-groups-claim",
        default="groups",
        show_default=True,
        envvar=_env("OIDC_GROUPS_CLAIM"),
        help="Claim holding the user's groups.",
    ),
    click.option(
        "--trusted-proxies",
        envvar=_env("TRUSTED_PROXIES"),
        help="Comma-separated addresses/CIDRs of proxies whose user header is believed.",
    ),
    click.option(
        "--proxy-user-header",
        default="X-Forwarded-User",
        show_default=True,
        envvar=_env("PROXY_USER_HEADER"),
        help="Header naming the user, set by a trusted proxy.",
    ),
    click.option(
        "--proxy-groups-header",
        default="X-Forwarded-Groups",
        show_default=True,
        envvar=_env("PROXY_GROUPS_HEADER"),
        help="Header listing the user's groups (comma-separated), set by a trusted proxy.",
    ),
]


def server_options(fn: Callable) -> Callable:
    """Adds the auth flags to ``labtrack server``; the command receives them as Settings
    fields in ``**auth_settings`` (plus the admin bootstrap pair, from the environment only)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        auth = kwargs.pop("auth")
        kwargs["auth"] = "auto" if auth is None else ("on" if auth else "off")
        kwargs["auth_default_permission"] = kwargs["auth_default_permission"].upper()
        kwargs["admin_username"] = os.environ.get(_env("ADMIN_USERNAME")) or None
        kwargs["admin_password"] = os.environ.get(_env("ADMIN_PASSWORD")) or None
        return fn(*args, **kwargs)

    for option in reversed(_SERVER_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def prepare_server(settings) -> None:
    """Before the server starts: bootstrap the admin, decide whether auth is on (or refuse)."""
    from labtrack.auth.setup import AuthConfigError, resolve
    from labtrack.store.db import Database

    db = Database(settings.backend_store_uri)
    try:
        settings.auth = resolve(settings, db)
    except AuthConfigError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close()
    state = "on" if settings.auth == "on" else "OFF (anyone who can connect has full access)"
    click.echo(f"labtrack authentication: {state}", err=True)


# --- database commands ------------------------------------------------------------------------------
_store_option = click.option(
    "--backend-store-uri",
    envvar=_env("BACKEND_STORE_URI"),
    help="Metadata database. [default: sqlite in ./labtrack-data]",
)


@contextlib.contextmanager
def _database(uri: str | None) -> Iterator:
    from labtrack.config import default_backend_store_uri
    from labtrack.store.db import Database
    from labtrack.store.migrate import upgrade

    db = Database(uri or default_backend_store_uri())
    try:
        upgrade(db)
        yield db
    finally:
        db.close()


def _now() -> int:
    return int(time.time() * 1000)


def _write(uri: str | None, fn: Callable, *args, action: str, target: str, detail=None):
    """Run a change and its audit record (actor "cli") in one transaction."""
    from labtrack.store import auth as store
    from labtrack.wire import MlflowError

    def run(conn):
        result = fn(conn, *args)
        store.audit(conn, _now(), "cli", action, target, "success", None, detail)
        return result

    with _database(uri) as db:
        try:
            return db.run_write(run)
        except MlflowError as exc:
            raise click.ClickException(exc.message) from None


def _read(uri: str | None, fn: Callable, *args):
    from labtrack.wire import MlflowError

    with _database(uri) as db:
        try:
            return db.run_read(fn, *args)
        except MlflowError as exc:
            raise click.ClickException(exc.message) from None


def _password(from_stdin: bool) -> str:
    from labtrack.auth.passwords import check_policy
    from labtrack.wire import MlflowError

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_policy(password)
    except MlflowError as exc:
        raise click.ClickException(exc.message) from None


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def users() -> None:
    """Manage labtrack's built-in users."""


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--role", type=click.Choice(ROLES), help="labtrack role. [default: server's]")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_store_option
def users_create(
    username: str, admin: bool, role: str | None, password_stdin: bool, backend_store_uri
) -> None:
    """Create a user (prompts for the password, at least 12 characters)."""
    from labtrack.auth.passwords import hash_password
    from labtrack.store import auth as store

    password_hash = hash_password(_password(password_stdin))
    _write(
        backend_store_uri,
        lambda conn: store.create_user(
            conn, username, password_hash, _now(), is_admin=admin, role=role
        ),
        action="user_create",
        target=username,
        detail={"admin": admin},
    )
    click.echo(f"Created {'admin ' if admin else ''}user {username}")


@users.command("list")
@_store_option
def users_list(backend_store_uri) -> None:
    """List users."""
    from labtrack.store import auth as store

    for user in _read(backend_store_uri, store.list_users):
        flags = ["admin"] if user["is_admin"] else []
        flags += [f"role={user['role']}"] if user["role"] else []
        flags += [f"source={user['source']}"]
        click.echo(f"{user['username']}\t{' '.join(flags)}")


@users.command("delete")
@click.argument("username")
@_store_option
def users_delete(username: str, backend_store_uri) -> None:
    """Delete a user, their tokens and their grants."""
    from labtrack.store import auth as store

    _write(backend_store_uri, store.delete_user, username, action="user_delete", target=username)
    click.echo(f"Deleted user {username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_store_option
def users_set_password(username: str, password_stdin: bool, backend_store_uri) -> None:
    """Set a user's password (signed-in sessions with the old one end within a second)."""
    from labtrack.auth.passwords import hash_password
    from labtrack.store import auth as store

    password_hash = hash_password(_password(password_stdin))
    _write(
        backend_store_uri,
        store.set_password,
        username,
        password_hash,
        _now(),
        action="password_change",
        target=username,
    )
    click.echo(f"Password of {username} changed")


@users.command("set-admin")
@click.argument("username")
@click.option("--admin/--no-admin", default=True, show_default=True)
@_store_option
def users_set_admin(username: str, admin: bool, backend_store_uri) -> None:
    """Grant or take away administrator rights."""
    from labtrack.store import auth as store

    _write(
        backend_store_uri,
        store.set_admin,
        username,
        admin,
        _now(),
        action="admin_change",
        target=username,
        detail={"is_admin": admin},
    )
    click.echo(f"{username} is {'now' if admin else 'no longer'} an admin")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice([*ROLES, "default"]))
@_store_option
def users_set_role(username: str, role: str, backend_store_uri) -> None:
    """Set a user's labtrack role (default: the server's --auth-default-role)."""
    from labtrack.store import auth as store

    value = None if role == "default" else role
    _write(
        backend_store_uri,
        store.set_role,
        username,
        value,
        _now(),
        action="role_change",
        target=username,
        detail={"role": value},
    )
    click.echo(f"{username}: role {role}")


@click.group()
def tokens() -> None:
    """Manage personal access tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="token", show_default=True, help="What the token is for.")
@click.option("--expires-days", type=int, help="Expire after this many days. [default: never]")
@_store_option
def tokens_create(username: str, name: str, expires_days: int | None, backend_store_uri) -> None:
    """Create a token for a user and print it (it is shown only this once)."""
    from labtrack.auth import tokens as token_util

    expires_at = _now() + expires_days * 86_400_000 if expires_days else None
    token, info = _write(
        backend_store_uri,
        token_util.issue,
        username,
        name,
        _now(),
        expires_at,
        action="token_create",
        target=username,
        detail={"name": name},
    )
    click.echo(f"Token {info['token_id']} for {username} (expires {_time(expires_at)}):", err=True)
    click.echo(token)


@tokens.command("list")
@click.argument("username", required=False)
@_store_option
def tokens_list(username: str | None, backend_store_uri) -> None:
    """List tokens (of one user, or of everyone)."""
    from labtrack.store import auth as store

    for t in _read(backend_store_uri, store.list_tokens, username):
        state = "revoked" if "revoked_at" in t else f"expires {_time(t.get('expires_at'))}"
        click.echo(f"{t['token_id']}\t{t['username']}\t{t['hint']}\t{t['name']}\t{state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@_store_option
def tokens_revoke(token_id: int, backend_store_uri) -> None:
    """Revoke a token (it stops working within a second)."""
    from labtrack.store import auth as store

    _write(
        backend_store_uri,
        store.revoke_token,
        token_id,
        _now(),
        action="token_revoke",
        target=str(token_id),
    )
    click.echo(f"Revoked token {token_id}")


@click.group()
def groups() -> None:
    """Manage labtrack groups (teams) for grants."""


@groups.command("create")
@click.argument("name")
@click.option("--description")
@_store_option
def groups_create(name: str, description: str | None, backend_store_uri) -> None:
    from labtrack.store import auth as store

    _write(
        backend_store_uri,
        store.create_group,
        name,
        description,
        _now(),
        action="group_create",
        target=name,
    )
    click.echo(f"Created group {name}")


@groups.command("add")
@click.argument("name")
@click.argument("username")
@_store_option
def groups_add(name: str, username: str, backend_store_uri) -> None:
    from labtrack.store import auth as store

    _write(
        backend_store_uri,
        store.add_group_member,
        name,
        username,
        action="group_member_add",
        target=name,
        detail={"user": username},
    )
    click.echo(f"Added {username} to {name}")


@groups.command("remove")
@click.argument("name")
@click.argument("username")
@_store_option
def groups_remove(name: str, username: str, backend_store_uri) -> None:
    from labtrack.store import auth as store

    _write(
        backend_store_uri,
        store.remove_group_member,
        name,
        username,
        action="group_member_remove",
        target=name,
        detail={"user": username},
    )
    click.echo(f"Removed {username} from {name}")


@groups.command("list")
@_store_option
def groups_list(backend_store_uri) -> None:
    from labtrack.store import auth as store

    for group in _read(backend_store_uri, store.list_groups):
        click.echo(f"{group['name']}\t{','.join(group['members'])}")


@click.command()
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--user", "actor", help="Only events of this user.")
@click.option("--action", help="Only this action (sign_in, grant, token_create, ...).")
@_store_option
def audit(limit: int, actor: str | None, action: str | None, backend_store_uri) -> None:
    """Show the audit log: sign-ins and changes of users, tokens and permissions."""
    from labtrack.store import auth as store

    events, _ = _read(
        backend_store_uri,
        lambda conn: store.list_audit(
            conn, max_results=limit, offset=0, actor=actor, action=action
        ),
    )
    for e in events:
        detail = " ".join(f"{k}={v}" for k, v in e["detail"].items())
        click.echo(
            f"{_time(e['at'])}\t{e['actor'] or '-'}\t{e['action']}\t{e['outcome']}\t"
            f"{e['target'] or '-'}\t{e['address'] or '-'}\t{detail}"
        )


COMMANDS = [users, tokens, groups, audit]
