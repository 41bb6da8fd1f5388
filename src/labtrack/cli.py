"""The ``labtrack`` command: ``server``, ``db upgrade`` and friends."""

from __future__ import annotations

import dataclasses
import os
import sys

import click

from labtrack import __version__
from labtrack.auth import cli as auth_cli
from labtrack.config import Settings, default_artifacts_destination, default_backend_store_uri
from labtrack.gc import gc as gc_command


def _env(name: str) -> str:
    return f"LABTRACK_{name}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labtrack")
def main() -> None:
    """labtrack: an experiment tracking server and model registry that speaks MLflow's REST API."""


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar=_env("HOST"),
    help="Address to listen on.",
)
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=int,
    envvar=_env("PORT"),
    help="Port to listen on.",
)
@click.option(
    "--backend-store-uri",
    envvar=_env("BACKEND_STORE_URI"),
    help="Metadata database: sqlite:///path.db or postgresql://user@host/db. "
    "[default: sqlite in ./labtrack-data]",
)
@click.option(
    "--artifacts-destination",
    envvar=_env("ARTIFACTS_DESTINATION"),
    help="Where proxied artifacts are stored: a folder or s3://bucket/prefix. "
    "[default: ./labtrack-data/artifacts]",
)
@click.option(
    "--default-artifact-root",
    envvar=_env("DEFAULT_ARTIFACT_ROOT"),
    help="artifact_location of new experiments when artifacts are not proxied "
    "(--no-serve-artifacts); with proxying, an alias of --artifacts-destination.",
)
@click.option(
    "--serve-artifacts/--no-serve-artifacts",
    default=True,
    show_default=True,
    envvar=_env("SERVE_ARTIFACTS"),
    help="Proxy artifact uploads and downloads through this server.",
)
@click.option(
    "--s3-endpoint-url",
    envvar=_env("S3_ENDPOINT_URL"),
    help="S3 endpoint for an s3:// artifacts destination (MinIO, RustFS, ...). "
    "[default: $MLFLOW_S3_ENDPOINT_URL, else AWS]",
)
@click.option(
    "--multipart-uploads/--no-multipart-uploads",
    default=True,
    show_default=True,
    envvar=_env("MULTIPART_UPLOADS"),
    help="Let clients upload large artifacts in parallel parts through this server.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    envvar=_env("WORKERS"),
    help="Number of worker processes.",
)
@click.option(
    "--static-prefix",
    default="",
    envvar=_env("STATIC_PREFIX"),
    help="Serve everything under this sub-path, e.g. /mlflow behind a reverse proxy.",
)
@click.option(
    "--webhook-allowed-schemes",
    default="https",
    show_default=True,
    envvar=_env("WEBHOOK_ALLOWED_SCHEMES"),
    help="URL schemes registry webhooks may use, comma-separated (e.g. https,http).",
)
@click.option(
    "--webhook-allow-private-ips/--no-webhook-allow-private-ips",
    default=False,
    show_default=True,
    envvar=_env("WEBHOOK_ALLOW_PRIVATE_IPS"),
    help="Let registry webhooks call loopback, private and link-local addresses.",
)
@auth_cli.server_options
def server(
    host: str,
    port: int,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    default_artifact_root: str | None,
    serve_artifacts: bool,
    s3_endpoint_url: str | None,
    multipart_uploads: bool,
    workers: int,
    static_prefix: str,
    webhook_allowed_schemes: str,
    webhook_allow_private_ips: bool,
    **auth_settings: object,
) -> None:
    """Run the tracking server."""
    import uvicorn

    if serve_artifacts and default_artifact_root and not artifacts_destination:
        artifacts_destination = default_artifact_root
    # Settings without a flag keep their LABTRACK_* value; flags (which read the same variables
    # through click) win for the rest.
    settings = dataclasses.replace(
        Settings.from_env(),
        host=host,
        port=port,
        backend_store_uri=backend_store_uri or default_backend_store_uri(),
        artifacts_destination=artifacts_destination or default_artifacts_destination(),
        default_artifact_root=default_artifact_root,
        serve_artifacts=serve_artifacts,
        s3_endpoint_url=s3_endpoint_url,
        multipart_uploads=multipart_uploads,
        workers=max(1, workers),
        static_prefix=static_prefix,
        webhook_allowed_schemes=webhook_allowed_schemes,
        webhook_allow_private_ips=webhook_allow_private_ips,
        **auth_settings,  # type: ignore[arg-type]
    )
    _migrate(settings)
    # Bootstraps the admin and decides whether authentication is on, or refuses to start.
    auth_cli.prepare_server(settings)
    # Workers are separate processes: they read the settings back from the environment.
    os.environ.update(settings.to_env())
    click.echo(
        f"labtrack {__version__} listening on http://{host}:{port}{settings.normalized_prefix} "
        f"(backend: {_redact(settings.backend_store_uri)}, workers: {settings.workers})",
        err=True,
    )
    uvicorn.run(
        "labtrack.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=settings.workers,
        http="labtrack.server:NoDelayHttpToolsProtocol",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=60,
        # labtrack reads X-Forwarded-For itself, only from --trusted-proxies (labtrack.auth).
        proxy_headers=False,
    )


def _migrate(settings: Settings) -> None:
    """Migrate once in the parent, so workers start on an up-to-date schema."""
    from labtrack.store.db import Database
    from labtrack.store.migrate import upgrade

    try:
        db = Database(settings.backend_store_uri)
        upgrade(db)
        db.close()
    except Exception as exc:  # connection refused, bad URI...
        raise click.ClickException(
            f"Cannot open the backend store {_redact(settings.backend_store_uri)}: {exc}"
        ) from exc


def _redact(uri: str) -> str:
    """Hide a password in a database URI before printing it."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return uri


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option(
    "--backend-store-uri",
    envvar=_env("BACKEND_STORE_URI"),
    help="Database to migrate. [default: sqlite in ./labtrack-data]",
)
def db_upgrade(backend_store_uri: str | None) -> None:
    """Apply pending schema migrations (the server also does this at start-up)."""
    from labtrack.store.db import Database
    from labtrack.store.migrate import upgrade

    uri = backend_store_uri or default_backend_store_uri()
    database = Database(uri)
    applied = upgrade(database)
    database.close()
    if applied:
        click.echo(f"Applied migrations {applied} to {_redact(uri)}")
    else:
        click.echo(f"{_redact(uri)} is up to date")


for _command in auth_cli.COMMANDS:
    main.add_command(_command)
main.add_command(gc_command)


if __name__ == "__main__":
    sys.exit(main())
