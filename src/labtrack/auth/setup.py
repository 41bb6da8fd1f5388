"""Deciding at start-up whether authentication is on, and bootstrapping the first admin.

The rule (docs/auth.md, "Secure by default"):
- ``--no-auth``: off, wherever the server listens (an explicit choice);
- ``--auth``: on; refuses to start when no identity source is configured (nobody could sign in);
- neither: on when an identity source is configured (built-in users exist or are bootstrapped,
  APIHub, forward-auth, OIDC or trusted proxies); otherwise off on a loopback address (the
  single-machine default) and a refusal to start on any other address.
"""

from __future__ import annotations

import ipaddress
import logging
import time

log = logging.getLogger("labtrack.auth")


class AuthConfigError(Exception):
    """The server must not start with this configuration."""


def external_sources(settings) -> list[str]:
    sources = []
    if (
        settings.apihub_url
        or settings.apihub_password_url
        or settings.apihub_token_url
        or settings.apihub_apikey_url
    ):
        sources.append("apihub")
    if settings.forward_auth_url:
        sources.append("forward-auth")
    if settings.oidc_issuer or settings.oidc_jwks_url:
        sources.append("oidc")
    if settings.trusted_proxies:
        sources.append("trusted-proxy")
    return sources


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_settings(settings) -> None:
    """Fail early on settings that can't work (bad permission names, role map, networks)."""
    from labtrack.auth.identity import RoleMap, parse_networks
    from labtrack.auth.permissions import ROLES, check_permission

    try:
        check_permission(settings.auth_default_permission)
        RoleMap(settings.auth_role_map)
        parse_networks(settings.trusted_proxies)
    except Exception as exc:  # noqa: BLE001 - reported as a configuration error
        raise AuthConfigError(str(getattr(exc, "message", exc))) from None
    if settings.auth_default_role not in ROLES:
        raise AuthConfigError(f"--auth-default-role must be one of {', '.join(ROLES)}")
    if settings.auth not in ("auto", "on", "off"):
        raise AuthConfigError("LABTRACK_AUTH must be auto, on or off")


def bootstrap_admin(settings, db) -> bool:
    """Create the admin from LABTRACK_ADMIN_USERNAME/PASSWORD if that user doesn't exist yet.

    Only on first start: an existing user's password is never overwritten from the environment.
    """
    from labtrack.auth.passwords import check_policy, hash_password
    from labtrack.store import auth as store
    from labtrack.wire import MlflowError

    username, password = settings.admin_username, settings.admin_password
    if not username:
        return False
    if db.run_read(store.find_user, username) is not None:
        return False
    if not password:
        raise AuthConfigError(
            "LABTRACK_ADMIN_USERNAME is set but LABTRACK_ADMIN_PASSWORD is not; "
            "there is no default admin password."
        )
    try:
        check_policy(password)
    except MlflowError as exc:
        raise AuthConfigError(f"LABTRACK_ADMIN_PASSWORD: {exc.message}") from None

    def create(conn) -> None:
        now = int(time.time() * 1000)
        if store.find_user(conn, username) is None:
            store.create_user(conn, username, hash_password(password), now, is_admin=True)
            store.audit(conn, now, None, "user_create", username, "success", None, {"admin": True})

    try:
        db.run_write(create)
    except Exception:  # noqa: BLE001 - another worker process created it at the same moment
        if db.run_read(store.find_user, username) is None:
            raise
        return False
    log.warning("Created the admin user %r from LABTRACK_ADMIN_USERNAME", username)
    return True


def resolve(settings, db) -> str:
    """Bootstrap the admin if asked, then decide: "on" or "off" (or raise AuthConfigError)."""
    from labtrack.store import auth as store

    check_settings(settings)
    if settings.auth == "off":
        return "off"
    bootstrap_admin(settings, db)
    sources = external_sources(settings)
    if db.run_read(store.has_password_users):
        sources.insert(0, "built-in users")
    if settings.auth == "on":
        if not sources:
            raise AuthConfigError(
                "--auth was given but no identity source is configured, so nobody could sign "
                "in: create an admin (labtrack users create NAME --admin, or set "
                "LABTRACK_ADMIN_USERNAME and LABTRACK_ADMIN_PASSWORD) or configure APIHub, "
                "OIDC, forward-auth or trusted proxies (docs/auth.md)."
            )
        return "on"
    if sources:
        return "on"
    if is_loopback(settings.host):
        return "off"
    raise AuthConfigError(
        f"Refusing to listen on {settings.host} without authentication: no identity source is "
        "configured. Create an admin (labtrack users create NAME --admin, or set "
        "LABTRACK_ADMIN_USERNAME and LABTRACK_ADMIN_PASSWORD), configure APIHub, OIDC, "
        "forward-auth or trusted proxies, or pass --no-auth to run an open server on purpose "
        "(docs/auth.md)."
    )


def start(app):
    """Called at App start-up: the Enforcer when authentication is on, else None."""
    settings = app.settings
    mode = resolve(settings, app.db) if settings.auth not in ("on", "off") else settings.auth
    if mode == "on" and settings.auth == "on":
        check_settings(settings)
        bootstrap_admin(settings, app.db)
    settings.auth = mode
    if mode == "off":
        log.info("Authentication is off")
        return None
    from labtrack.auth.enforce import Enforcer

    return Enforcer(app)
