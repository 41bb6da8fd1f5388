"""Registry searches: registered models and model versions, with MLflow's prompt scoping.

The filter grammar and its SQL come from store.filters (kinds REGISTERED_MODELS and
MODEL_VERSIONS); this module adds what is specific to the registry: prompts are hidden unless
asked for, deleted versions never appear, and the stock default orders and tie-breakers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from labtrack.store import filters, paging
from labtrack.store.db import Conn
from labtrack.store.registry import (
    DELETED,
    PROMPT_TAG,
    RM_COLUMNS,
    model_dicts,
    mv_columns,
    tags_for,
    version_from_row,
)

_IS_PROMPT = (
    "EXISTS (SELECT 1 FROM registered_model_tags pt WHERE pt.name = {alias}.name"
    " AND pt.key = 'mlflow.prompt.is_prompt' AND lower(pt.value) = 'true')"
)


def _is_prompt_comparison(node: filters.Node) -> bool:
    return (
        isinstance(node, filters.Comparison)
        and node.ident.prefix in ("tag", "tags")
        and node.ident.key == PROMPT_TAG
        and node.op in ("=", "!=")
        and isinstance(node.value, filters.Literal)
    )


def _prompt_scope(filter_string: str | None) -> tuple[filters.Node | None, str | None]:
    """Split the prompt condition off a registry filter, as MLflow does.

    Prompts are registered models tagged ``mlflow.prompt.is_prompt``. A search returns models
    only, unless it compares that tag with 'true'; the comparison selects the kind and is not
    a tag filter (the client adds ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every model
    search, which must match models that have no such tag). Returns (rest of the filter,
    "prompts" | "models" | None when the filter uses the tag in some other way).
    """
    node = filters.parse_filter(filter_string or "")
    if node is None:
        return None, "models"
    items = list(node.items) if isinstance(node, filters.BoolOp) and node.op == "AND" else [node]
    scope = [c for c in items if _is_prompt_comparison(c)]
    if not scope:
        return node, None if PROMPT_TAG in (filter_string or "") else "models"
    wanted = {
        "prompts"
        if (c.op == "=") == (c.value.value.lower() == "true")  # type: ignore[union-attr]
        else "models"
        for c in scope
    }
    rest = [c for c in items if not _is_prompt_comparison(c)]
    remaining = (
        None if not rest else rest[0] if len(rest) == 1 else filters.BoolOp("AND", tuple(rest))
    )
    if len(wanted) > 1:
        return filters.parse_filter("name = '' AND name != ''"), "models"  # contradictory
    return remaining, wanted.pop()


def _scoped_where(
    compile_fn, filter_string: str | None, alias: str, dialect: str
) -> tuple[str, list]:
    node, scope = _prompt_scope(filter_string)
    sql, args = "", []
    if scope == "models":
        sql += " AND NOT " + _IS_PROMPT.format(alias=alias)
    elif scope == "prompts":
        sql += " AND " + _IS_PROMPT.format(alias=alias)
    where = compile_fn(node, dialect) if node is not None else None
    if where is not None:
        sql += f" AND ({where.sql})"
        args += where.params
    return sql, args


def search_registered_models(
    conn: Conn,
    *,
    filter_string: str | None,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
    readable: tuple[str, list] | None = None,
) -> dict:
    """``readable``: a WHERE fragment on ``rm.name`` keeping the models the caller may read
    (labtrack.auth.visibility), applied before paging."""
    offset = paging.decode(page_token)
    where_sql, args = _scoped_where(
        filters.registered_model_filter, filter_string, "rm", conn.dialect
    )
    order = filters.registered_model_order(order_by, conn.dialect)
    sql = f"SELECT {_prefixed_rm('rm.')} FROM registered_models rm WHERE 1 = 1" + where_sql
    if readable is not None:
        sql += f" AND ({readable[0]})"
        args += readable[1]
    order_sql = [t.sql for t in order]
    for term in order:
        args += term.params
    if not any("rm.name" in t.sql for t in order):
        order_sql.append("rm.name ASC")
    sql += " ORDER BY " + ", ".join(order_sql) + " LIMIT ? OFFSET ?"
    args += [max_results + 1, offset]
    rows = conn.all(sql, args)
    result: dict[str, Any] = {}
    if rows[:max_results]:
        result["registered_models"] = model_dicts(conn, rows[:max_results])
    if len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def _prefixed_rm(prefix: str) -> str:
    return ", ".join(prefix + c.strip() for c in RM_COLUMNS.split(","))


def search_model_versions(
    conn: Conn,
    *,
    filter_string: str | None,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
    readable: tuple[str, list] | None = None,
) -> dict:
    """``readable``: a WHERE fragment on ``mv.name`` (versions follow their model's grants)."""
    offset = paging.decode(page_token)
    where_sql, where_args = _scoped_where(
        filters.model_version_filter, filter_string, "mv", conn.dialect
    )
    order = filters.model_version_order(
        order_by or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"],
        conn.dialect,
    )
    sql = f"SELECT {mv_columns('mv')} FROM model_versions mv WHERE mv.current_stage != ?"
    sql += where_sql
    args: list[Any] = [DELETED, *where_args]
    if readable is not None:
        sql += f" AND ({readable[0]})"
        args += readable[1]
    order_sql = [t.sql for t in order]
    for term in order:
        args += term.params
    if not any(re.search(r"\bmv\.name\b", t.sql) for t in order):
        order_sql.append("mv.name ASC")
    if not any("mv.version " in t.sql for t in order):
        order_sql.append("mv.version DESC")
    sql += " ORDER BY " + ", ".join(order_sql) + " LIMIT ? OFFSET ?"
    args += [max_results + 1, offset]
    rows = conn.all(sql, args)
    result: dict[str, Any] = {}
    page = rows[:max_results]
    if page:
        result["model_versions"] = _version_dicts(conn, page)
    if len(rows) > max_results:
        result["next_page_token"] = paging.encode(offset + max_results)
    return result


def _version_dicts(conn: Conn, rows: Sequence[tuple]) -> list[dict]:
    """Versions of possibly many models with their tags and aliases, in row order."""
    tags = tags_for(conn, [(r[0], r[1]) for r in rows])
    names = sorted({r[0] for r in rows})
    aliases: dict[tuple[str, int], list[str]] = {}
    for start in range(0, len(names), 900):
        n_sql, n_args = conn.in_clause("name", names[start : start + 900])
        for name, alias, version in conn.all(
            f"SELECT name, alias, version FROM registered_model_aliases WHERE {n_sql}"
            " ORDER BY alias",
            n_args,
        ):
            aliases.setdefault((name, version), []).append(alias)
    return [version_from_row(r, tags.get((r[0], r[1])), aliases.get((r[0], r[1]))) for r in rows]
