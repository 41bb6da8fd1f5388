"""A deliberately thin ASGI layer: requests, responses and a dict-based router.

The MLflow API is a fixed set of exact paths, so routing is one dict lookup instead of a scan
over patterns; only a few routes (artifact paths, logged-model ids) match by prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from labtrack.wire import MlflowError, Params, dumps, parse_json_body

if TYPE_CHECKING:
    from labtrack.app import App

Handler = Callable[["Request"], Awaitable[Any]]


class Request:
    """What a handler sees of one HTTP request."""

    __slots__ = (
        "scope",
        "_receive",
        "app",
        "path",
        "path_params",
        "_query",
        "_headers",
        "_body",
        "_params",
    )

    def __init__(self, scope: dict, receive: Callable, app: App, path: str) -> None:
        self.scope = scope
        self._receive = receive
        self.app = app
        self.path = path
        self.path_params: dict[str, str] = {}
        self._query: dict[str, list[str]] | None = None
        self._headers: dict[str, str] | None = None
        self._body: bytes | None = None
        # read_params' result, so the auth check and the handler parse the body once.
        self._params: Params | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased header names; repeated headers keep the last value."""
        if self._headers is None:
            self._headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope["headers"]
            }
        return self._headers

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True)
        return self._query

    async def body(self) -> bytes:
        if self._body is None:
            chunks = [chunk async for chunk in self.stream()]
            self._body = b"".join(chunks)
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        """The request body chunk by chunk, for uploads that must not be held in memory."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise MlflowError("Client disconnected", "BAD_REQUEST")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class Response:
    __slots__ = ("status", "body", "headers")

    def __init__(
        self,
        body: bytes = b"",
        status: int = 200,
        content_type: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        if content_type:
            self.headers.append((b"content-type", content_type.encode("latin-1")))

    async def send(self, send: Callable) -> None:
        headers = self.headers + [(b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class StreamingResponse:
    """A response whose body is produced chunk by chunk (artifact downloads)."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = headers or []

    async def send(self, send: Callable) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


JSON = "application/json"


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status, JSON)


def error_response(error: MlflowError) -> Response:
    return json_response(error.to_dict(), error.status)


@dataclass(frozen=True)
class Access:
    """What a route touches and the permission it needs; the auth layer enforces it.

    ``resource`` is the kind of object the request names: "experiment", "run",
    "registered_model", "logged_model", "artifact" (a path in the artifact store), "user", or
    "server" (no single object: creating experiments or models, listing, admin actions).
    ``permission`` is one of READ, USE, EDIT, MANAGE (MLflow's meanings), CREATE (may create a
    new experiment or model), ADMIN, or AUTHENTICATED (any signed-in user; listings filter their
    results themselves). ``field`` is the request field naming the object (query or JSON body;
    a list field names several), or "path" for the route's path remainder.
    """

    resource: str
    permission: str
    field: str | None = None


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    access: Access | None = None
    # Anyone may call it, signed in or not (only /health and /version-style routes).
    public: bool = False
    # The path is a prefix; the rest of the request path becomes path_params["rest"].
    prefix: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class RouteTable:
    """Collects a module's routes with decorators, e.g. ``@routes.api("POST", "/mlflow/runs/create")``."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def api(
        self,
        method: str,
        path: str,
        *,
        access: Access | None = None,
        public: bool = False,
        version: str = "2.0",
        ajax: bool = True,
        prefix: bool = False,
        **meta: Any,
    ):
        """An MLflow API route: served under /api/<version> and, for the UI, /ajax-api/<version>."""

        def decorate(handler: Handler) -> Handler:
            prefixes = [f"/api/{version}"] + ([f"/ajax-api/{version}"] if ajax else [])
            for p in prefixes:
                self.routes.append(
                    Route(method, p + path, handler, access, public, prefix=prefix, meta=meta)
                )
            return handler

        return decorate

    def raw(
        self,
        method: str,
        path: str,
        *,
        access: Access | None = None,
        public: bool = False,
        prefix: bool = False,
        **meta: Any,
    ):
        """A route at an exact path outside the /api tree (health, UI, legacy downloads)."""

        def decorate(handler: Handler) -> Handler:
            self.routes.append(
                Route(method, path, handler, access, public, prefix=prefix, meta=meta)
            )
            return handler

        return decorate


class Router:
    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Route]] = {}
        self._prefixes: list[tuple[str, dict[str, Route]]] = []

    def add(self, route: Route) -> None:
        if route.prefix:
            for prefix, methods in self._prefixes:
                if prefix == route.path:
                    methods[route.method] = route
                    break
            else:
                self._prefixes.append((route.path, {route.method: route}))
                self._prefixes.sort(key=lambda item: -len(item[0]))
        else:
            self._exact.setdefault(route.path, {})[route.method] = route

    def include(self, table: RouteTable) -> None:
        for route in table.routes:
            self.add(route)

    @property
    def routes(self) -> list[Route]:
        exact = [r for methods in self._exact.values() for r in methods.values()]
        return exact + [r for _, methods in self._prefixes for r in methods.values()]

    def match(self, method: str, path: str) -> tuple[Route, str | None]:
        """Find the route for a request; raise a 404/405 MlflowError when there is none."""
        methods = self._exact.get(path)
        rest = None
        if methods is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    methods, rest = candidate, unquote(path[len(prefix) :])
                    break
        if methods is None:
            raise MlflowError(f"No API endpoint at {path}", "ENDPOINT_NOT_FOUND")
        route = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
        if route is None:
            raise MethodNotAllowed(sorted(methods))
        return route, rest


class MethodNotAllowed(MlflowError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(f"Method not allowed; use {', '.join(allowed)}", "BAD_REQUEST")
        self.allowed = allowed

    @property
    def status(self) -> int:
        return 405


def loads(body: bytes) -> Any:
    return orjson.loads(body)


async def read_params(req: Request) -> Params:
    """The request's fields: query string for GET, JSON body otherwise (MLflow's rules).

    Parsed once per request: the auth check reads them before the handler does."""
    if req._params is None:
        req._params = await _parse_params(req)
    return req._params


async def _parse_params(req: Request) -> Params:
    if req.method in ("GET", "HEAD"):
        return Params(req.query, from_query=True)
    if req.method in ("POST", "PUT"):
        content_type = req.headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            raise MlflowError(
                "Bad Request. Content-Type must be one of ['application/json'].",
                "INVALID_PARAMETER_VALUE",
            )
    return Params(parse_json_body(await req.body()))
