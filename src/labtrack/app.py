"""Builds the ASGI application: routes, error handling and start-up (migrations)."""

from __future__ import annotations

import logging
from typing import Any

from labtrack.api import (
    artifacts,
    auth,
    experiments,
    logged_models,
    meta,
    metrics,
    now_ms,
    registry,
    runs,
    ui,
    webhooks,
)
from labtrack.artifacts import open_store
from labtrack.auth import setup as auth_setup
from labtrack.auth.enforce import Enforcer
from labtrack.config import Settings
from labtrack.http import (
    MethodNotAllowed,
    Request,
    Response,
    Router,
    error_response,
    json_response,
)
from labtrack.server import tune_gc
from labtrack.store import experiments as experiment_store
from labtrack.store.db import Database
from labtrack.store.migrate import upgrade
from labtrack.ui import pages as ui_pages
from labtrack.wire import MlflowError

log = logging.getLogger("labtrack")

ROUTE_TABLES = [
    meta.routes,
    experiments.routes,
    runs.routes,
    metrics.routes,
    artifacts.routes,
    registry.routes,
    logged_models.routes,
    webhooks.routes,
    auth.routes,
    ui.routes,
    ui_pages.routes,
]

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
]


class App:
    """The labtrack ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.backend_store_uri)
        self.artifacts = open_store(settings.artifacts_destination, settings.s3_endpoint_url)
        self.router = Router()
        for table in ROUTE_TABLES:
            self.router.include(table)
        self.prefix = settings.normalized_prefix
        # The auth Enforcer once start-up decided authentication is on (labtrack.auth.setup).
        self.auth: Enforcer | None = None

    def startup(self) -> None:
        """Migrate the schema and make sure the Default experiment exists."""
        upgrade(self.db)
        self.db.run_write(
            experiment_store.ensure_default,
            self.settings.experiment_artifact_location("0"),
            now_ms(),
        )
        self.auth = auth_setup.start(self)
        tune_gc()

    def shutdown(self) -> None:
        self.db.close()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope["path"]
        route = request = None
        try:
            if self.prefix:
                if path != self.prefix and not path.startswith(self.prefix + "/"):
                    raise MlflowError(f"No API endpoint at {path}", "ENDPOINT_NOT_FOUND")
                path = path[len(self.prefix) :] or "/"
            route, rest = self.router.match(scope["method"], path)
            request = Request(scope, receive, self, path)
            if rest is not None:
                request.path_params["rest"] = rest
            if self.auth is not None and not route.public:
                await self.auth.check(request, route)
            result = await route.handler(request)
            if self.auth is not None and not route.public:
                await self.auth.after(request, route, result)
            response = json_response(result) if isinstance(result, dict) else result
        except MethodNotAllowed as exc:
            response = error_response(exc)
            response.headers.append((b"allow", ", ".join(exc.allowed).encode()))
        except MlflowError as exc:
            response = error_response(exc)
            # WWW-Authenticate on 401, Retry-After on throttled sign-ins.
            response.headers.extend(getattr(exc, "headers", ()))
            if route is not None and route.meta.get("page"):
                # Web UI pages answer with HTML, and with a sign-in redirect instead of a 401.
                response = ui_pages.error_page(request, exc)
        except Exception:
            log.exception("Unhandled error on %s %s", scope["method"], scope["path"])
            response = error_response(
                MlflowError("Internal server error; the server log has details.", "INTERNAL_ERROR")
            )
        if isinstance(response, Response):
            response.headers.extend(_SECURITY_HEADERS)
        await response.send(send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.startup()
                except Exception as exc:
                    log.exception("Start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings | None = None) -> App:
    return App(settings or Settings.from_env())
