"""The Dask sweep of issue #7 against labtrack and against `mlflow server`, in one run.

    .venv/bin/python bench/dask_sweep.py [--backend sqlite,postgresql] [--tasks 200]
                                         [--servers labtrack,mlflow] [--workers 1] [--rounds 1]

One `distributed.LocalCluster` (2 worker processes x 4 threads) is shared by every server, and
the same code runs against each: `labtrack.dask.DaskTracking.map` fans out `--tasks` tasks, each
a child run of one parent run that logs 5 params and 50 metric steps one `log_metric` call at a
time (an epoch loop). Servers run one at a time on fresh databases (bench/servers.py), without
authentication (the stock server has none by default). Before the timed sweep each server gets
a short warm-up sweep, so the workers' first imports and connections are not charged to whichever
server goes first. After each sweep every child run, its 5 params and its 50 metric points are
checked, so both servers are timed doing the same, complete work.

Prints the wall time of each sweep, the server's CPU time during it, and the ratio
mlflow / labtrack per backend.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import servers  # noqa: E402
from servers import LabtrackServer, MlflowServer  # noqa: E402

PARAMS = 5
STEPS = 50
WARMUP_TASKS = 16

for _name, _value in {
    **servers.QUIET_ENV,
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}.items():
    os.environ.setdefault(_name, _value)


def trial(n: int) -> float:
    """One task of the sweep (runs on a worker, inside its child run)."""
    import mlflow

    mlflow.log_params({f"p{k}": f"{n}-{k}" for k in range(PARAMS)})
    loss = 0.0
    for step in range(STEPS):
        loss = 1.0 / (1 + n + step)
        mlflow.log_metric("loss", loss, step=step)
    return loss


@dataclass
class Result:
    backend: str
    server: str
    version: str = "?"
    wall_s: list[float] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def best_wall(self) -> float:
        return min(self.wall_s) if self.wall_s else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", default="sqlite,postgresql", help="sqlite, postgresql or both")
    p.add_argument("--servers", default="labtrack,mlflow", help="labtrack, mlflow or both")
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--rounds", type=int, default=1, help="timed sweeps per server (best is kept)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (both)")
    p.add_argument("--dask-workers", type=int, default=2)
    p.add_argument("--dask-threads", type=int, default=4)
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    args.server_names = [s.strip() for s in args.servers.split(",") if s.strip()]
    if set(args.backends) - {"sqlite", "postgresql"} or not args.backends:
        p.error("--backend: sqlite and/or postgresql")
    if set(args.server_names) - {"labtrack", "mlflow"} or not args.server_names:
        p.error("--servers: labtrack and/or mlflow")
    return args


def sweep(dask_client, url: str, tasks: int, label: str) -> tuple[float, str, str]:
    """Run one sweep under a fresh parent run; return (wall seconds, experiment id, parent id)."""
    from mlflow import MlflowClient

    from labtrack.dask import DaskTracking, TrackingSettings

    client = MlflowClient(tracking_uri=url)
    experiment_id = client.create_experiment(f"dask-sweep-{label}-{time.time_ns()}")
    parent = client.create_run(experiment_id, run_name=f"sweep-{label}")
    settings = TrackingSettings(
        tracking_uri=url, experiment_id=experiment_id, parent_run_id=parent.info.run_id
    )
    started = time.monotonic()
    with DaskTracking(dask_client, settings, delegate=False) as tracking:
        futures = tracking.map(trial, range(tasks), run_name=lambda n: f"trial-{n:04d}")
        dask_client.gather(futures)
    wall = time.monotonic() - started
    client.set_terminated(parent.info.run_id)
    return wall, experiment_id, parent.info.run_id


def verify(url: str, experiment_id: str, parent_run_id: str, tasks: int) -> None:
    """Every child run is there once, FINISHED, with its 5 params and 50 metric points."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    names = sorted(r.info.run_name for r in runs)
    if names != [f"trial-{n:04d}" for n in range(tasks)]:
        raise AssertionError(f"{len(runs)} child runs, {len(set(names))} distinct, want {tasks}")
    for run in runs:
        if run.info.status != "FINISHED" or len(run.data.params) != PARAMS:
            raise AssertionError(f"{run.info.run_name}: {run.info.status}, {run.data.params}")

    def points(run_id: str) -> int:
        return len(client.get_metric_history(run_id, "loss"))

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(points, [r.info.run_id for r in runs]))
    if set(counts) != {STEPS}:
        raise AssertionError(f"metric points per run: {sorted(set(counts))}, want {STEPS}")


def bench_server(kind, backend: str, dask_client, args: argparse.Namespace) -> Result:
    res = Result(backend, kind.name, kind.version())
    print(f"\n== {kind.name} {res.version} on {backend}", flush=True)
    try:
        with servers.running(kind, backend, args.workers) as srv:
            print(f"   ready in {srv.startup_s:.1f}s at {srv.base_url}", flush=True)
            wall, exp, parent = sweep(dask_client, srv.base_url, WARMUP_TASKS, "warmup")
            verify(srv.base_url, exp, parent, WARMUP_TASKS)
            print(f"   warm-up: {WARMUP_TASKS} tasks in {wall:.1f}s", flush=True)
            for n in range(args.rounds):
                cpu_before = srv.usage().cpu_s
                wall, exp, parent = sweep(dask_client, srv.base_url, args.tasks, f"r{n}")
                cpu = srv.usage().cpu_s - cpu_before
                verify(srv.base_url, exp, parent, args.tasks)
                res.wall_s.append(wall)
                res.server_cpu_s.append(cpu)
                print(
                    f"   sweep {n + 1}: {args.tasks} child runs in {wall:.1f}s "
                    f"({args.tasks / wall:.1f} runs/s); server CPU {cpu:.1f}s; all verified",
                    flush=True,
                )
    except Exception as exc:  # report it, go on with the other servers
        res.error = f"{type(exc).__name__}: {exc}"[:500]
        print(f"   ✗ {kind.name} on {backend}: {res.error}", flush=True)
    return res


def report(results: list[Result], args: argparse.Namespace) -> str:
    steps_per_task = 2 + STEPS + 1  # create, log params, 50 metrics, end (plus the run's tags)
    lines = [
        "",
        f"## Dask sweep: {args.tasks} tasks x ({PARAMS} params + {STEPS} metric steps), "
        f"{args.dask_workers} worker processes x {args.dask_threads} threads, "
        f"server workers: {args.workers}",
        "",
        f"About {args.tasks * steps_per_task} requests per sweep, from the stock mlflow client.",
        "",
        "| backend | server | sweep wall (s) | child runs/s | server CPU (s) | mlflow / labtrack |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for backend in args.backends:
        rows = [r for r in results if r.backend == backend]
        by_name = {r.server: r for r in rows}
        base = by_name.get("labtrack")
        for r in rows:
            if r.error:
                lines.append(f"| {backend} | {r.server} {r.version} | failed: {r.error} | | | |")
                continue
            i = r.wall_s.index(r.best_wall)
            ratio = ""
            if r.server == "mlflow" and base and base.wall_s:
                ratio = f"{r.best_wall / base.best_wall:.2f}x"
            lines.append(
                f"| {backend} | {r.server} {r.version} | {r.best_wall:.1f} | "
                f"{args.tasks / r.best_wall:.1f} | {r.server_cpu_s[i]:.1f} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from distributed import Client, LocalCluster

    kinds = {
        "labtrack": LabtrackServer(sys.executable),
        "mlflow": MlflowServer(with_postgres="postgresql" in args.backends),
    }
    for name in args.server_names:
        kinds[name].ensure_installed()
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        os.environ.pop(var, None)
    cluster = LocalCluster(
        n_workers=args.dask_workers,
        threads_per_worker=args.dask_threads,
        processes=True,
        dashboard_address=None,
    )
    dask_client = Client(cluster)
    results: list[Result] = []
    try:
        for backend in args.backends:
            for name in args.server_names:
                results.append(bench_server(kinds[name], backend, dask_client, args))
    finally:
        dask_client.close()
        cluster.close()
    print(report(results, args))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
