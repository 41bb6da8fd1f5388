"""Enforcement: every request is authenticated, then authorized against its route's ``Access``.

``App._http`` calls :meth:`Enforcer.check` before the handler and :meth:`Enforcer.after` once
it succeeded. The check is cheap on the hot path: a cached credential (one HMAC, one dict
lookup), the caller's grants from memory, and for runs one cached run -> experiment lookup.

Caches are per worker process. Every change of users, tokens or grants bumps a generation
counter in the database (store.auth); each worker reads the counters at most once per
``SYNC_INTERVAL`` and drops what went stale, so a revoked token, a changed password or a
revoked grant stops working in every worker within about a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from labtrack.auth.cache import TtlCache
from labtrack.auth.identity import (
    Authenticator,
    Identity,
    PermissionDenied,
    RoleMap,
    Unauthenticated,
)
from labtrack.auth.permissions import (
    ADMIN_ROLE,
    CREATOR_ROLE,
    EXPERIMENT,
    GRANTABLE,
    MANAGE,
    NO_PERMISSIONS,
    READ,
    REGISTERED_MODEL,
    REQUIRED,
    Grants,
    allows,
)
from labtrack.auth.sessions import SAFE_METHODS
from labtrack.http import Access, Request, Route, read_params
from labtrack.wire import MlflowError, missing

log = logging.getLogger("labtrack.auth")

SYNC_INTERVAL = 1.0
# Other spellings a handler accepts for the same field.
ALIASES = {"run_id": ("run_uuid",), "run_ids": ("run_uuid",)}
_DENY = ("deny", "")  # a target no grant can open (admins only)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Caller:
    """The signed-in caller as authorization sees them (``req.scope["labtrack.caller"]``)."""

    identity: Identity
    user_id: int | None
    is_admin: bool
    role: str
    groups: tuple[str, ...]
    grants: Grants
    default_permission: str

    @property
    def username(self) -> str:
        return self.identity.username

    @property
    def can_create(self) -> bool:
        return self.is_admin or self.role in (ADMIN_ROLE, CREATOR_ROLE)

    def permission(self, resource_type: str, resource_id: str) -> str:
        if self.is_admin:
            return MANAGE
        if resource_type not in GRANTABLE:
            return NO_PERMISSIONS  # e.g. an artifact path outside any experiment
        return self.grants.effective(resource_type, resource_id, self.default_permission)

    def can(self, resource_type: str, resource_id: str, needed: str) -> bool:
        return self.is_admin or allows(self.permission(resource_type, resource_id), needed)

    def readable_sql(
        self, resource_type: str, column: str, dialect: str
    ) -> tuple[str, list] | None:
        """A WHERE fragment keeping the rows this caller may read (None: everything)."""
        if self.is_admin:
            return None
        everything_but, ids = self.grants.visibility(resource_type, self.default_permission)
        values: list = ids
        if resource_type == EXPERIMENT:
            values = [int(i) for i in ids if i.isdigit()]
        if not values:
            return ("1 = 1", []) if everything_but else ("1 = 0", [])
        if dialect == "postgresql":
            sql = f"{column} = ANY(?)"
            args: list = [values]
            return (f"NOT ({sql})", args) if everything_but else (sql, args)
        marks = ",".join("?" * len(values))
        return f"{column} {'NOT IN' if everything_but else 'IN'} ({marks})", list(values)


class Enforcer:
    def __init__(self, app) -> None:
        from labtrack.auth.permissions import check_permission

        self.app = app
        self.db = app.db
        settings = app.settings
        self.default_permission = check_permission(settings.auth_default_permission)
        self.default_role = settings.auth_default_role
        self.role_map = RoleMap(settings.auth_role_map)
        self.authn = Authenticator(
            db=self.db, settings=settings, role_map=self.role_map, audit=self.audit_later
        )
        self._callers: TtlCache[Caller] = TtlCache(300.0)
        self._run_experiments: TtlCache[int] = TtlCache(86400.0, 100_000)
        self._model_experiments: TtlCache[int] = TtlCache(86400.0, 100_000)
        self._generations: tuple[int, int] | None = None
        self._synced_at = 0.0
        self._tasks: set[asyncio.Future] = set()

    # -- cache coherence across workers -----------------------------------------------------------
    async def sync(self) -> None:
        now = time.monotonic()
        if now - self._synced_at < SYNC_INTERVAL:
            return
        self._synced_at = now
        from labtrack.store import auth as store

        generations = await self.db.read(store.generations)
        if self._generations is not None:
            if generations[0] != self._generations[0]:
                self.authn.cache.clear()
            if generations != self._generations:
                self._callers.clear()
        self._generations = generations

    def changed(self, credentials: bool = False) -> None:
        """This worker changed grants (or ``credentials``: passwords, tokens, users): drop its
        own caches now rather than at the next sync."""
        if credentials:
            self.authn.cache.clear()
        self._callers.clear()

    # -- audit ----------------------------------------------------------------------------------------
    def audit_later(
        self,
        actor: str | None,
        action: str,
        target: str | None,
        outcome: str,
        address: str | None = None,
        detail: dict | None = None,
    ) -> None:
        """Record a sign-in without making the request wait for the write."""
        from labtrack.store import auth as store

        future = asyncio.ensure_future(
            self.db.write(store.audit, _now_ms(), actor, action, target, outcome, address, detail)
        )
        self._tasks.add(future)
        future.add_done_callback(self._audit_done)

    def _audit_done(self, future: asyncio.Future) -> None:
        self._tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("Could not write an audit event: %s", future.exception())

    # -- the caller --------------------------------------------------------------------------------
    async def caller(self, ident: Identity) -> Caller:
        key = (ident.username, ident.groups, ident.role, ident.source)
        cached = self._callers.get(key)
        if cached is not None:
            return cached
        from labtrack.store import auth as store

        data = await self.db.read(store.principal, ident.username, ident.groups)
        user = data["user"]
        if ident.source not in ("builtin", "token") and self._needs_sync(user, ident):
            await self.db.write(
                store.sync_external_user,
                ident.username,
                ident.source,
                ident.role,
                list(ident.groups),
                _now_ms(),
            )
            data = await self.db.read(store.principal, ident.username, ident.groups)
            user = data["user"]
        role = ident.role or (user["role"] if user else None) or self.default_role
        caller = Caller(
            identity=ident,
            user_id=user["id"] if user else None,
            is_admin=bool(user and user["is_admin"]) or role == ADMIN_ROLE,
            role=role,
            groups=tuple(data["groups"]),
            grants=Grants.from_rows(data["grants"]),
            default_permission=self.default_permission,
        )
        self._callers.put(key, caller)
        return caller

    @staticmethod
    def _needs_sync(user: dict | None, ident: Identity) -> bool:
        if user is None:
            return True
        if user["password_hash"] is not None:
            return False
        return (
            user["role"] != ident.role
            or user["external_groups"] != sorted(ident.groups)
            or user["source"] != ident.source
        )

    async def caller_for(self, username: str) -> Caller:
        """Another user's permissions as a request of theirs would see them (admin views)."""
        return await self.caller(Identity(username, "builtin"))

    # -- the check -----------------------------------------------------------------------------------
    async def check(self, req: Request, route: Route) -> None:
        await self.sync()
        try:
            ident = await self.authn.authenticate(req)
        except Unauthenticated as exc:
            if req.headers.get("x-requested-with"):
                exc.headers = []  # the web UI's fetches: no browser password dialog, it signs in
            raise
        caller = await self.caller(ident)
        req.scope["labtrack.user"] = caller.username
        req.scope["labtrack.caller"] = caller
        session_id = req.scope.get("labtrack.session")
        if session_id and req.method not in SAFE_METHODS and not route.meta.get("form"):
            # The UI's fetches carry the session's CSRF token; its forms check their own field.
            self.authn.sessions.check_csrf(req, session_id)
        if caller.is_admin:
            return
        access = route.access
        if access is None:
            raise PermissionDenied("Permission denied: this endpoint is for administrators.")
        await self._authorize(req, route, access, caller)

    async def _authorize(self, req: Request, route: Route, access: Access, caller: Caller) -> None:
        resource, permission = access.resource, access.permission
        if resource == "server":
            if permission in ("AUTHENTICATED", READ):
                return
            if permission == "CREATE" and caller.can_create:
                return
            raise PermissionDenied(
                f"Permission denied: {caller.username} may not "
                + ("create experiments or models." if permission == "CREATE" else "do this.")
            )
        if resource == "user":
            if permission == "ADMIN":
                raise PermissionDenied("Permission denied: this endpoint is for administrators.")
            for value in await self._values(req, route, access):
                if value != caller.username:
                    raise PermissionDenied(
                        f"Permission denied: {caller.username} may only act on their own account."
                    )
            return
        needed = REQUIRED.get(permission)
        if needed is None:
            raise PermissionDenied("Permission denied: this endpoint is for administrators.")
        values = await self._values(req, route, access)
        is_search = route.path.endswith("/search")
        if not values:
            if resource == "artifact":
                raise PermissionDenied("Permission denied: only admins list the artifact root.")
            if is_search or access.field is None:
                return
            raise missing(access.field)
        targets = await self._targets(resource, access.field, values)
        if is_search and needed == READ:
            # Like MLflow: a search over several experiments is cut down to the readable ones.
            keep = {
                v for v, t in zip(values, targets, strict=True) if t is None or caller.can(*t, READ)
            }
            if len(keep) < len(values):
                await self._cut_down(req, access.field, keep)
            return
        for target in targets:
            if target is not None and not caller.can(target[0], target[1], needed):
                what = "this artifact path" if target is _DENY else f"{target[0]} {target[1]}"
                raise PermissionDenied(
                    f"Permission denied: {caller.username} lacks {needed} on {what}."
                )

    # -- request fields ------------------------------------------------------------------------------
    @staticmethod
    def _names(field: str) -> tuple[str, ...]:
        return (field, _camel(field), *ALIASES.get(field, ()))

    async def _values(self, req: Request, route: Route, access: Access) -> list[str]:
        """Every value the request gives for the access field, wherever a handler may read it
        (query string *and* JSON body): checking more values can only make the check stricter."""
        field = access.field
        if field is None:
            return []
        if field == "path" and route.prefix:
            return [req.path_params.get("rest", "")]
        names = self._names(field)
        raw: list = []
        query = req.query
        for name in names:
            raw.extend(query.get(name, ()))
        method = req.method
        content_type = req.headers.get("content-type", "").lower()
        if method in ("PATCH", "DELETE") or (
            method in ("POST", "PUT") and content_type.startswith("application/json")
        ):
            params = await read_params(req)
            for name in names:
                value = params.data.get(name)
                if isinstance(value, list):
                    raw.extend(value)
                elif value is not None:
                    raw.append(value)
        values = []
        for value in raw:
            if isinstance(value, bool):
                continue
            if isinstance(value, str | int):
                values.append(str(value))
        return values

    async def _cut_down(self, req: Request, field: str, keep: set[str]) -> None:
        names = self._names(field)
        containers = [req.query]
        if req.method not in ("GET", "HEAD"):
            try:
                containers.append((await read_params(req)).data)
            except MlflowError:
                pass
        for data in containers:
            for name in names:
                value = data.get(name)
                if isinstance(value, list):
                    data[name] = [v for v in value if str(v) in keep]

    # -- resources -----------------------------------------------------------------------------------
    async def _targets(
        self, resource: str, field: str | None, values: list[str]
    ) -> list[tuple[str, str] | None]:
        """The grant each value is judged by: (resource type, id) or None when the object
        doesn't exist (the handler then answers 404 or 400 itself)."""
        if resource == "experiment":
            if field == "experiment_name":
                return [await self._experiment_by_name(v) for v in values]
            return [self._experiment(v) for v in values]
        if resource == "registered_model":
            return [(REGISTERED_MODEL, v) for v in values]
        if resource == "run":
            experiments = await self._run_experiment_ids(values)
            return [(EXPERIMENT, str(e)) if e is not None else None for e in experiments]
        if resource == "logged_model":
            return [await self._logged_model(v.split("/", 1)[0]) for v in values]
        if resource == "artifact":
            return [self._artifact(v) for v in values]
        return [_DENY for _ in values]

    @staticmethod
    def _experiment(value: str) -> tuple[str, str] | None:
        try:
            return EXPERIMENT, str(int(value))
        except ValueError:
            return None

    async def _experiment_by_name(self, name: str) -> tuple[str, str] | None:
        experiment_id = await self.db.read(_experiment_id_by_name, name)
        return (EXPERIMENT, str(experiment_id)) if experiment_id is not None else None

    async def _run_experiment_ids(self, run_ids: list[str]) -> list[int | None]:
        found = {r: self._run_experiments.get(r) for r in run_ids}
        misses = [r for r, e in found.items() if e is None]
        if misses:
            for run_id, experiment_id in await self.db.read(_experiments_of_runs, misses):
                self._run_experiments.put(run_id, experiment_id)
                found[run_id] = experiment_id
        return [found[r] for r in run_ids]

    async def _logged_model(self, model_id: str) -> tuple[str, str] | None:
        experiment_id = self._model_experiments.get(model_id)
        if experiment_id is None:
            experiment_id = await self.db.read(_experiment_of_logged_model, model_id)
            if experiment_id is None:
                return None
            self._model_experiments.put(model_id, experiment_id)
        return EXPERIMENT, str(experiment_id)

    @staticmethod
    def _artifact(path: str) -> tuple[str, str]:
        """Proxied artifact paths start with the experiment id: ``<exp>/<run>/artifacts/...``."""
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts or not parts[0].isdigit():
            return _DENY
        return EXPERIMENT, str(int(parts[0]))

    # -- after a successful request -----------------------------------------------------------------
    async def after(self, req: Request, route: Route, result) -> None:
        """Creators get MANAGE on what they created; grants follow a renamed model."""
        caller = req.scope.get("labtrack.caller")
        if caller is None or not isinstance(result, dict):
            return
        path = route.path
        from labtrack.store import auth as store

        if path.endswith("/mlflow/experiments/create") and result.get("experiment_id"):
            await self._grant_creator(caller, EXPERIMENT, str(result["experiment_id"]))
        elif path.endswith("/mlflow/registered-models/create"):
            model = result.get("registered_model")
            if isinstance(model, dict) and model.get("name"):
                await self._grant_creator(caller, REGISTERED_MODEL, model["name"])
        elif path.endswith("/mlflow/registered-models/rename"):
            params = await read_params(req)
            old, new = params.str("name"), params.str("new_name")
            if old and new and old != new:
                await self.db.write(store.rename_resource, REGISTERED_MODEL, old, new)
                self.changed()
        elif path.endswith("/mlflow/registered-models/delete"):
            name = (await read_params(req)).str("name")
            if name:
                await self.db.write(store.forget_resource, REGISTERED_MODEL, name)
                self.changed()

    async def _grant_creator(self, caller: Caller, resource_type: str, resource_id: str) -> None:
        from labtrack.store import auth as store

        await self.db.write(
            store.grant, store.USER, caller.username, resource_type, resource_id, MANAGE
        )
        self.changed()


# --- lookups (run on a database thread) -----------------------------------------------------------
def _experiment_id_by_name(conn, name: str) -> int | None:
    return conn.scalar("SELECT experiment_id FROM experiments WHERE name = ?", (name,))


def _experiments_of_runs(conn, run_ids: list[str]) -> list[tuple[str, int]]:
    sql, args = conn.in_clause("run_uuid", run_ids)
    return conn.all(f"SELECT run_uuid, experiment_id FROM runs WHERE {sql}", args)


def _experiment_of_logged_model(conn, model_id: str) -> int | None:
    return conn.scalar("SELECT experiment_id FROM logged_models WHERE model_id = ?", (model_id,))
