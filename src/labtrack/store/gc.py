"""Permanent removal of deleted runs and experiments (the database half of ``labtrack gc``).

:func:`plan` decides what may go: runs and experiments in the ``deleted`` state, old enough,
and not backing a registered model version. A run backs a version when the version names it
(``run_id``), or when the version's ``source``/``storage_location`` is ``runs:/<run>/...`` or
lies under the run's artifact URI; an experiment backs one when one of its runs or logged models
does, or the version's files lie under the experiment's artifact location. Soft-deleted versions
(``Deleted_Internal``) protect nothing. Registry tables are optional (they may not exist yet).

The ``remove_*`` functions delete rows, children first, each batch in one transaction, and
only rows still in the deleted state (a run restored meanwhile is left alone).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from labtrack.store.db import Conn
from labtrack.wire import invalid

DELETED_VERSION = "Deleted_Internal"


@dataclass(frozen=True)
class Run:
    pk: int
    run_id: str
    experiment_id: int
    artifact_uri: str


@dataclass(frozen=True)
class Experiment:
    experiment_id: int
    name: str
    artifact_location: str


@dataclass(frozen=True)
class LoggedModel:
    model_id: str
    experiment_id: int
    artifact_location: str


@dataclass
class Plan:
    runs: list[Run] = field(default_factory=list)
    experiments: list[Experiment] = field(default_factory=list)
    # Logged models of the experiments above, which go with them.
    logged_models: list[LoggedModel] = field(default_factory=list)
    # Why something that was asked for (or is deleted) stays, one sentence each.
    kept: list[str] = field(default_factory=list)


def table_exists(conn: Conn, table: str) -> bool:
    if conn.dialect == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_name = ?"
    return conn.one(sql, (table,)) is not None


def _under(location: str | None, root: str) -> bool:
    """Whether ``location`` is ``root`` or inside it (whole path segments only)."""
    if not location or not root:
        return False
    root = root.rstrip("/")
    return location == root or location.startswith(root + "/")


@dataclass(frozen=True)
class _Version:
    label: str
    run_id: str | None
    locations: tuple[str, ...]
    model_id: str | None


def _versions(conn: Conn) -> list[_Version]:
    if not table_exists(conn, "model_versions"):
        return []
    rows = conn.all(
        "SELECT name, version, run_id, source, storage_location, model_id FROM model_versions"
        " WHERE current_stage <> ?",
        (DELETED_VERSION,),
    )
    return [
        _Version(f"'{name}' version {version}", run_id, tuple(x for x in (src, loc) if x), mid)
        for name, version, run_id, src, loc, mid in rows
    ]


def _run_backs(run: Run, versions: list[_Version]) -> _Version | None:
    for v in versions:
        if v.run_id == run.run_id:
            return v
        for loc in v.locations:
            if _under(loc, f"runs:/{run.run_id}") or _under(loc, run.artifact_uri):
                return v
    return None


def plan(
    conn: Conn,
    *,
    older_than_ms: int | None,
    now_ms: int,
    run_ids: Sequence[str] = (),
    experiment_ids: Sequence[str] = (),
) -> Plan:
    """What ``gc`` would remove now; explicit ids that are not deleted are an error."""
    cutoff = None if older_than_ms is None else now_ms - older_than_ms
    result = Plan()
    exp_rows = _pick_experiments(conn, experiment_ids, everything=not (run_ids or experiment_ids))
    run_rows = _pick_runs(conn, run_ids, everything=not (run_ids or experiment_ids))

    versions = _versions(conn)
    has_models = table_exists(conn, "logged_models")
    protected_models = {v.model_id for v in versions if v.model_id}

    chosen_exps: list[Experiment] = []
    for eid, name, location, _stage, updated in exp_rows:
        if cutoff is not None and updated > cutoff:
            result.kept.append(f"Kept experiment {eid} ('{name}'): deleted too recently")
            continue
        exp = Experiment(eid, name, location)
        reason = _experiment_kept(conn, exp, versions, protected_models, has_models)
        if reason:
            result.kept.append(reason)
            continue
        chosen_exps.append(exp)
    chosen_ids = {e.experiment_id for e in chosen_exps}

    runs: dict[int, Run] = {}
    for pk, run_id, eid, uri, _stage, deleted_time in run_rows:
        if cutoff is not None and (deleted_time or 0) > cutoff:
            result.kept.append(f"Kept run {run_id}: deleted too recently")
            continue
        runs[pk] = Run(pk, run_id, eid, uri)
    if chosen_ids:
        id_sql, args = conn.in_clause("experiment_id", sorted(chosen_ids))
        for pk, run_id, eid, uri in conn.all(
            f"SELECT run_pk, run_uuid, experiment_id, artifact_uri FROM runs WHERE {id_sql}", args
        ):
            runs[pk] = Run(pk, run_id, eid, uri)

    for run in sorted(runs.values(), key=lambda r: r.pk):
        backing = _run_backs(run, versions)
        if backing is not None:
            result.kept.append(
                f"Kept run {run.run_id}: its artifacts back registered model {backing.label}"
            )
            continue
        result.runs.append(run)
    result.experiments = chosen_exps
    if has_models and chosen_ids:
        id_sql, args = conn.in_clause("experiment_id", sorted(chosen_ids))
        result.logged_models = [
            LoggedModel(mid, eid, loc)
            for mid, eid, loc in conn.all(
                "SELECT model_id, experiment_id, artifact_location FROM logged_models"
                f" WHERE {id_sql} ORDER BY model_id",
                args,
            )
        ]
    return result


def _pick_experiments(conn: Conn, ids: Sequence[str], everything: bool) -> list[tuple]:
    cols = "experiment_id, name, artifact_location, lifecycle_stage, last_update_time"
    if everything:
        return conn.all(
            f"SELECT {cols} FROM experiments WHERE lifecycle_stage = 'deleted'"
            " ORDER BY experiment_id"
        )
    rows = []
    for raw in ids:
        if not str(raw).isdigit():
            raise invalid(f"Invalid experiment id '{raw}'")
        row = conn.one(f"SELECT {cols} FROM experiments WHERE experiment_id = ?", (int(raw),))
        if row is None:
            raise invalid(f"Experiment {raw} does not exist")
        if row[3] != "deleted":
            raise invalid(f"Experiment {raw} is not in the deleted state; delete it first")
        rows.append(row)
    return rows


def _pick_runs(conn: Conn, ids: Sequence[str], everything: bool) -> list[tuple]:
    cols = "run_pk, run_uuid, experiment_id, artifact_uri, lifecycle_stage, deleted_time"
    if everything:
        return conn.all(
            f"SELECT {cols} FROM runs WHERE lifecycle_stage = 'deleted' ORDER BY run_pk"
        )
    rows = []
    for run_id in ids:
        row = conn.one(f"SELECT {cols} FROM runs WHERE run_uuid = ?", (run_id,))
        if row is None:
            raise invalid(f"Run {run_id} does not exist")
        if row[4] != "deleted":
            raise invalid(f"Run {run_id} is not in the deleted state; delete it first")
        rows.append(row)
    return rows


def _experiment_kept(
    conn: Conn,
    exp: Experiment,
    versions: list[_Version],
    protected_models: set[str],
    has_models: bool,
) -> str | None:
    """Why an experiment must stay, or None."""
    label = f"Kept experiment {exp.experiment_id} ('{exp.name}')"
    active = conn.scalar(
        "SELECT run_uuid FROM runs WHERE experiment_id = ? AND lifecycle_stage <> 'deleted'",
        (exp.experiment_id,),
    )
    if active:
        return f"{label}: its run {active} is not deleted"
    for pk, run_id, uri in conn.all(
        "SELECT run_pk, run_uuid, artifact_uri FROM runs WHERE experiment_id = ?",
        (exp.experiment_id,),
    ):
        backing = _run_backs(Run(pk, run_id, exp.experiment_id, uri), versions)
        if backing is not None:
            return f"{label}: its run {run_id} backs registered model {backing.label}"
    for v in versions:
        if any(_under(loc, exp.artifact_location) for loc in v.locations):
            return f"{label}: its artifacts back registered model {v.label}"
    if has_models and protected_models:
        for (model_id,) in conn.all(
            "SELECT model_id FROM logged_models WHERE experiment_id = ?", (exp.experiment_id,)
        ):
            if model_id in protected_models:
                return f"{label}: its logged model {model_id} backs a registered model version"
    return None


def locations(conn: Conn) -> list[tuple[str, str]]:
    """(location, "kind id") of every run, experiment and logged model, for :class:`Locations`."""
    sources = [
        ("run", "runs", "run_uuid", "artifact_uri"),
        ("experiment", "experiments", "experiment_id", "artifact_location"),
    ]
    if table_exists(conn, "logged_models"):
        sources.append(("logged model", "logged_models", "model_id", "artifact_location"))
    found = []
    for kind, table, key, column in sources:
        for ident, location in conn.all(f"SELECT {key}, {column} FROM {table}"):
            if location:
                found.append((location.rstrip("/"), f"{kind} {ident}"))
    return found


class Locations:
    """Who stores files where: answers "whose files lie under this location?" by bisection,
    so checking every item of a large gc stays cheap."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.items = sorted(pairs)

    def _range(self, low: str, high: str) -> list[tuple[str, str]]:
        return self.items[bisect_left(self.items, (low, "")) : bisect_left(self.items, (high, ""))]

    def sharers(self, location: str, removing: set[str]) -> list[str]:
        """Items other than ``removing`` whose files are at or under ``location``."""
        root = location.rstrip("/")
        if not root:
            return ["everything"]
        # Exactly ``root``, then everything starting with ``root/`` ("0" sorts right after "/").
        inside = self._range(root, root + "\0") + self._range(root + "/", root + "0")
        return [ident for _, ident in inside if ident not in removing]


def _delete_where(conn: Conn, tables: Sequence[str], column: str, values: Sequence) -> None:
    if not values:
        return
    sql, args = conn.in_clause(column, list(values))
    for table in tables:
        conn.execute(f"DELETE FROM {table} WHERE {sql}", args)


RUN_CHILDREN = (
    "metrics",
    "latest_metrics",
    "params",
    "run_tags",
    "input_tags",
    "run_inputs",
    "run_model_io",
)


def remove_runs(conn: Conn, run_pks: Sequence[int]) -> int:
    """Delete deleted runs and everything hanging off them; returns how many went."""
    if not run_pks:
        return 0
    sql, args = conn.in_clause("run_pk", list(run_pks))
    # FOR UPDATE waits for writes still adding rows to these runs (they hold FOR KEY SHARE, see
    # runs.active_pk), so their rows are among the children deleted below.
    lock = " FOR UPDATE" if conn.dialect == "postgresql" else ""
    still = [
        r[0]
        for r in conn.all(
            f"SELECT run_pk FROM runs WHERE {sql} AND lifecycle_stage = 'deleted'{lock}", args
        )
    ]
    _delete_where(conn, RUN_CHILDREN, "run_pk", still)
    _delete_where(conn, ("runs",), "run_pk", still)
    return len(still)


LOGGED_MODEL_CHILDREN = ("logged_model_params", "logged_model_tags", "logged_model_metrics")


def remove_logged_models(conn: Conn, model_ids: Sequence[str]) -> None:
    if not model_ids or not table_exists(conn, "logged_models"):
        return
    children = [t for t in LOGGED_MODEL_CHILDREN if table_exists(conn, t)]
    _delete_where(conn, children, "model_id", model_ids)
    _delete_where(conn, ("logged_models",), "model_id", model_ids)


def remove_experiment(conn: Conn, experiment_id: int) -> bool:
    """Delete a deleted experiment with its datasets and tags (its runs must be gone already)."""
    stage = conn.scalar(
        "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?", (experiment_id,)
    )
    if stage != "deleted":
        return False
    if conn.scalar("SELECT 1 FROM runs WHERE experiment_id = ?", (experiment_id,)):
        return False
    datasets = [
        r[0]
        for r in conn.all(
            "SELECT dataset_pk FROM datasets WHERE experiment_id = ?", (experiment_id,)
        )
    ]
    _delete_where(conn, ("input_tags", "run_inputs", "datasets"), "dataset_pk", datasets)
    conn.execute("DELETE FROM experiment_tags WHERE experiment_id = ?", (experiment_id,))
    conn.execute("DELETE FROM experiments WHERE experiment_id = ?", (experiment_id,))
    return True
