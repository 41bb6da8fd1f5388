"""The permission model: MLflow's permission names, how grants combine, and what they allow.

A caller's grants on one resource are *folded*: an explicit ``DENY`` from any source (the user's
own grants, any group's, any role's, a ``*`` pattern) vetoes everything; otherwise the strongest
grant wins; with no grant at all the server's default permission applies. Admins bypass this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

READ, USE, EDIT, MANAGE = "READ", "USE", "EDIT", "MANAGE"
NO_PERMISSIONS, DENY = "NO_PERMISSIONS", "DENY"

# Strength of each permission; DENY never wins a max(), the fold checks it first.
PRIORITY = {DENY: -1, NO_PERMISSIONS: 0, READ: 1, USE: 2, EDIT: 3, MANAGE: 4}
PERMISSIONS = tuple(PRIORITY)

# What a route may ask for (http.Access.permission) -> the weakest permission that gives it.
REQUIRED = {READ: READ, USE: USE, EDIT: EDIT, MANAGE: MANAGE}

# Resource types that carry grants. Runs, metrics, artifacts and logged models follow their
# experiment; model versions and aliases follow their registered model.
EXPERIMENT, REGISTERED_MODEL = "experiment", "registered_model"
GRANTABLE = (EXPERIMENT, REGISTERED_MODEL)

# labtrack roles: what a user may do besides what their grants give them.
ADMIN_ROLE, CREATOR_ROLE, READER_ROLE = "admin", "creator", "reader"
ROLES = (ADMIN_ROLE, CREATOR_ROLE, READER_ROLE)


def allows(permission: str | None, needed: str) -> bool:
    """Whether ``permission`` gives the capability ``needed`` (READ, USE, EDIT or MANAGE)."""
    if permission is None or permission in (DENY, NO_PERMISSIONS):
        return False
    return PRIORITY[permission] >= PRIORITY[needed]


def fold(permissions: Iterable[str | None]) -> str | None:
    """Combine grants on one resource: DENY vetoes, else the strongest; None without any."""
    best: str | None = None
    for p in permissions:
        if p is None:
            continue
        if p == DENY:
            return DENY
        if best is None or PRIORITY[p] > PRIORITY[best]:
            best = p
    return best


def check_permission(name: str) -> str:
    from labtrack.wire import invalid

    upper = (name or "").upper()
    if upper not in PRIORITY:
        raise invalid(
            f"Invalid permission '{name}'. Valid permissions are: {', '.join(PERMISSIONS)}"
        )
    return upper


@dataclass
class Grants:
    """Every grant one caller holds (through their user, groups and roles), folded per resource.

    ``star[t]`` is the fold of the ``*`` patterns for resource type ``t``; ``specific[t][id]``
    the fold of the grants naming that resource.
    """

    star: dict[str, str | None] = field(default_factory=dict)
    specific: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]]) -> Grants:
        star: dict[str, list[str]] = {}
        specific: dict[str, dict[str, list[str]]] = {}
        for resource_type, pattern, permission in rows:
            if pattern == "*":
                star.setdefault(resource_type, []).append(permission)
            else:
                specific.setdefault(resource_type, {}).setdefault(pattern, []).append(permission)
        return cls(
            star={t: fold(ps) for t, ps in star.items()},
            specific={
                t: {rid: fold(ps) for rid, ps in by_id.items()}  # type: ignore[misc]
                for t, by_id in specific.items()
            },
        )

    def effective(self, resource_type: str, resource_id: str, default: str) -> str:
        """The permission this caller has on one resource."""
        own = self.specific.get(resource_type, {}).get(resource_id)
        return fold((self.star.get(resource_type), own)) or default

    def visibility(self, resource_type: str, default: str) -> tuple[bool, list[str]]:
        """What a listing may show: ``(True, ids)`` = everything except ``ids``;
        ``(False, ids)`` = only ``ids``. Lets search filter in SQL with correct paging."""
        base = fold((self.star.get(resource_type),)) or default
        base_readable = allows(base, READ)
        ids = []
        for rid in self.specific.get(resource_type, {}):
            readable = allows(self.effective(resource_type, rid, default), READ)
            if readable != base_readable:
                ids.append(rid)
        return base_readable, ids
