"""``labtrack gc``: permanently remove deleted runs and experiments, with their artifacts.

Deleting a run or an experiment through the API only marks it deleted (it can be restored).
This command is the point of no return: it removes the rows, the artifacts in whichever backend
holds them, and frees the experiments' names. It refuses to touch anything that backs a
registered model version, and says so. Order matters for safety: a run's artifacts go first
and its rows after, so an interrupted gc leaves rows that the next gc finishes, never files that
nothing points to.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass

import click

from labtrack.artifacts import ArtifactStore, open_store, paths
from labtrack.config import default_artifacts_destination, default_backend_store_uri
from labtrack.store import gc as store
from labtrack.store.db import Database
from labtrack.wire import MlflowError

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Abandoned multipart uploads and temp files are swept when older than this (or --older-than).
SWEEP_AGE_S = 86_400
_BATCH = 200


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``1d2h30m``, ``90s`` -> seconds."""
    spec = text.strip().lower()
    parts = re.findall(r"(\d+)\s*([dhms])", spec)
    if not parts or re.sub(r"(\d+)\s*([dhms])", "", spec).strip():
        raise click.BadParameter(f"{text!r}: use a duration like 30d, 12h, 1d2h30m or 90s")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def _ids(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@dataclass
class Item:
    """One thing to remove: rows, plus its artifact folder when that is ours to delete."""

    kind: str  # run, logged model, experiment
    ident: str
    label: str
    location: str
    path: str | None = None  # in the artifact store; None: nothing to delete there
    note: str = ""
    run_pk: int | None = None


def _items(
    plan: store.Plan, db: Database, artifacts: ArtifactStore, destination: str
) -> list[Item]:
    roots = [destination, artifacts.location]

    def mapped(uri: str) -> str | None:
        for root in roots:
            found = paths.store_path(uri, root)
            if found is not None:
                return found
        return None

    removing = {f"run {r.run_id}" for r in plan.runs}
    removing |= {f"experiment {e.experiment_id}" for e in plan.experiments}
    removing |= {f"logged model {m.model_id}" for m in plan.logged_models}
    where = store.Locations(db.run_read(store.locations))

    items = [
        Item(
            "run",
            r.run_id,
            f"run {r.run_id} (experiment {r.experiment_id})",
            r.artifact_uri,
            run_pk=r.pk,
        )
        for r in plan.runs
    ]
    items += [
        Item("logged model", m.model_id, f"logged model {m.model_id}", m.artifact_location)
        for m in plan.logged_models
    ]
    items += [
        Item(
            "experiment",
            str(e.experiment_id),
            f"experiment {e.experiment_id} ('{e.name}')",
            e.artifact_location,
        )
        for e in plan.experiments
    ]
    for item in items:
        path = mapped(item.location)
        if path is None:
            item.note = "artifacts are outside the artifact store; left in place"
        elif not path:
            item.note = "artifacts are the whole artifact store; left in place"
        elif others := where.sharers(item.location, removing):
            shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
            item.note = f"artifacts also hold files of {shown}; left in place"
        else:
            item.path = path
    # A run's folder inside an experiment folder that goes anyway needs no separate delete.
    exp_paths = [i.path for i in items if i.kind == "experiment" and i.path]
    for item in items:
        if item.kind != "experiment" and item.path:
            if any(item.path.startswith(p + "/") for p in exp_paths):
                item.note = "artifacts go with its experiment's"
                item.path = None
    return items


@click.command("gc")
@click.option(
    "--older-than",
    help="Only what was deleted at least this long ago, e.g. 30d, 12h, 1d2h30m. [default: all]",
)
@click.option("--run-ids", default="", help="Comma-separated ids of deleted runs to remove.")
@click.option(
    "--experiment-ids",
    default="",
    help="Comma-separated ids of deleted experiments to remove, with all their runs.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option(
    "--backend-store-uri",
    envvar="LABTRACK_BACKEND_STORE_URI",
    help="Metadata database. [default: sqlite in ./labtrack-data]",
)
@click.option(
    "--artifacts-destination",
    envvar="LABTRACK_ARTIFACTS_DESTINATION",
    help="The server's artifact store: a folder or s3://bucket/prefix. "
    "[default: ./labtrack-data/artifacts]",
)
@click.option(
    "--s3-endpoint-url",
    envvar="LABTRACK_S3_ENDPOINT_URL",
    help="S3 endpoint for an s3:// destination. [default: $MLFLOW_S3_ENDPOINT_URL, else AWS]",
)
def gc(
    older_than: str | None,
    run_ids: str,
    experiment_ids: str,
    dry_run: bool,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    s3_endpoint_url: str | None,
) -> None:
    """Permanently remove deleted runs and experiments and their artifacts.

    Without ids, everything in the deleted state (older than --older-than) goes. Runs and
    experiments whose artifacts back a registered model version are kept.
    """
    age_s = parse_duration(older_than) if older_than else None
    destination = artifacts_destination or default_artifacts_destination()
    db = Database(backend_store_uri or default_backend_store_uri())
    artifacts = open_store(destination, s3_endpoint_url)
    failed = False
    try:
        try:
            plan = db.run_read(
                store.plan,
                older_than_ms=None if age_s is None else age_s * 1000,
                now_ms=int(time.time() * 1000),
                run_ids=_ids(run_ids),
                experiment_ids=_ids(experiment_ids),
            )
        except MlflowError as exc:
            raise click.ClickException(exc.message) from None
        for reason in plan.kept:
            click.echo(reason)
        items = _items(plan, db, artifacts, destination)
        if items:
            failed = _remove(items, db, artifacts, dry_run)
        else:
            click.echo("Nothing to remove.")
        if not (run_ids or experiment_ids):
            age = max(age_s or 0, SWEEP_AGE_S)
            for line in artifacts.sweep(age, dry_run=dry_run):
                click.echo(f"{'Would remove' if dry_run else 'Removed'} {line}")
    finally:
        artifacts.close()
        db.close()
    if failed:
        sys.exit(1)


def _remove(items: list[Item], db: Database, artifacts: ArtifactStore, dry_run: bool) -> bool:
    counts = {
        k: sum(1 for i in items if i.kind == k) for k in ("run", "logged model", "experiment")
    }
    summary = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items() if n)
    click.echo(f"{'Would remove' if dry_run else 'Removing'} {summary}:")
    for item in items:
        where = f"artifacts at {item.location}" if item.path else item.note
        click.echo(f"  {item.label}: {where}")

    files = size = 0
    failed = False
    pending_runs: list[int] = []
    err = click.get_text_stream("stderr")
    label = "Measuring" if dry_run else "Removing"
    with click.progressbar(items, label=label, file=err, show_pos=True) as bar:
        for item in bar:
            try:
                if item.path:
                    n, b = artifacts.usage(item.path)
                    files, size = files + n, size + b
                    if not dry_run:
                        artifacts.delete(item.path)
            except Exception as exc:  # keep its rows: the next gc tries again
                failed = True
                click.echo(f"\nCould not delete the artifacts of {item.label}: {exc}", err=True)
                continue
            if dry_run:
                continue
            if item.run_pk is not None:
                pending_runs.append(item.run_pk)
                if len(pending_runs) >= _BATCH:
                    db.run_write(store.remove_runs, pending_runs)
                    pending_runs = []
                continue
            if pending_runs:
                db.run_write(store.remove_runs, pending_runs)
                pending_runs = []
            if item.kind == "logged model":
                db.run_write(store.remove_logged_models, [item.ident])
            elif item.kind == "experiment":
                if not db.run_write(store.remove_experiment, int(item.ident)):
                    failed = True
                    click.echo(f"\nKept {item.label}: some of its runs remain", err=True)
        if pending_runs and not dry_run:
            db.run_write(store.remove_runs, pending_runs)
    verb = "Would free" if dry_run else "Freed"
    click.echo(f"{verb} {files} artifact files ({human(size)}).")
    return failed
