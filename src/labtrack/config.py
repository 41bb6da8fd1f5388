"""One settings object for the whole server.

Every setting has a default, an environment variable ``LABTRACK_<NAME>`` and (for the server)
a command-line flag; the CLI builds a :class:`Settings` and hands it to :func:`labtrack.app.create_app`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("labtrack-data")


def default_backend_store_uri() -> str:
    return f"sqlite:///{(DEFAULT_DATA_DIR / 'labtrack.db').resolve()}"


def default_artifacts_destination() -> str:
    return str((DEFAULT_DATA_DIR / "artifacts").resolve())


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str = field(default_factory=default_backend_store_uri)
    # Where the server itself stores proxied artifacts (a local folder or s3://bucket/prefix).
    artifacts_destination: str = field(default_factory=default_artifacts_destination)
    # What new experiments get as artifact_location when artifacts are not proxied.
    default_artifact_root: str | None = None
    serve_artifacts: bool = True
    # S3 endpoint for an s3:// artifacts destination (MinIO, ...); falls back to
    # MLFLOW_S3_ENDPOINT_URL, then AWS's own default.
    s3_endpoint_url: str | None = None
    # Advertise and accept multipart uploads (the stock client uses them for files >= 500 MB).
    multipart_uploads: bool = True
    workers: int = 1
    static_prefix: str = ""
    # --- identity and access (docs/auth.md describes each) ---------------------------------------
    # "auto": on when an identity source is configured, off on loopback without one, and a
    # refusal to start on another address; "on" / "off" force it (--auth / --no-auth).
    auth: str = "auto"
    auth_default_permission: str = "READ"
    auth_default_role: str = "creator"
    auth_role_map: str = "admin=admin,data_scientist=creator,user=reader"
    auth_cache_ttl: int = 30
    # First-start admin (environment only, never a flag: command lines are visible to all).
    admin_username: str | None = None
    admin_password: str | None = None
    apihub_url: str | None = None
    apihub_password_url: str | None = None
    apihub_token_url: str | None = None
    apihub_apikey_url: str | None = None
    apihub_checks: str = "password,token,apikey"
    forward_auth_url: str | None = None
    forward_auth_user_header: str = "X-Auth-Request-User"
    forward_auth_groups_header: str = "X-Auth-Request-Groups"
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str | None = None
    oidc_username_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    trusted_proxies: str | None = None
    proxy_user_header: str = "X-Forwarded-User"
    proxy_groups_header: str = "X-Forwarded-Groups"
    # --- registry webhooks (docs/registry.md) -----------------------------------------------------
    # URL schemes webhooks may use (comma-separated), and whether they may target private,
    # loopback or link-local addresses (off: the server's own network is unreachable).
    webhook_allowed_schemes: str = "https"
    webhook_allow_private_ips: bool = False
    # Key that seals stored webhook secrets (environment only, never a flag).
    webhook_secret_key: str | None = None
    # --- web UI (docs/ui.md) ----------------------------------------------------------------------
    # Key that signs UI session cookies and CSRF tokens (environment only); when unset, one is
    # generated and kept in the database so every worker shares it.
    secret_key: str | None = None
    # How long a UI sign-in lasts.
    session_hours: int = 12

    def experiment_artifact_location(self, experiment_id: str) -> str:
        """The artifact_location a new experiment gets when the client doesn't choose one."""
        if self.serve_artifacts:
            return f"mlflow-artifacts:/{experiment_id}"
        root = self.default_artifact_root or self.artifacts_destination
        return f"{root.rstrip('/')}/{experiment_id}"

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from LABTRACK_* variables (how worker processes receive the CLI's flags)."""
        settings = cls()
        for name, current in vars(settings).items():
            raw = env(name.upper())
            if raw is None:
                continue
            if isinstance(current, bool):
                setattr(settings, name, raw.strip().lower() in ("1", "true", "yes", "on"))
            elif isinstance(current, int):
                setattr(settings, name, int(raw))
            else:
                setattr(settings, name, raw)
        return settings

    def to_env(self) -> dict[str, str]:
        return {
            f"LABTRACK_{name.upper()}": str(value)
            for name, value in vars(self).items()
            if value is not None
        }

    @property
    def normalized_prefix(self) -> str:
        prefix = self.static_prefix.strip()
        if not prefix or prefix == "/":
            return ""
        return "/" + prefix.strip("/")


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"LABTRACK_{name}", default)
