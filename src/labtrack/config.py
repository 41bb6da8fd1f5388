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
    workers: int = 1
    static_prefix: str = ""

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
