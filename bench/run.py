"""Benchmark labtrack against `mlflow server` in one run and print the ratios.

    .venv/bin/python bench/run.py [--quick] [--backend sqlite|postgresql]
                                  [--only W1,W2] [--servers labtrack,mlflow]

Servers run one at a time on fresh databases; see bench/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace

import report
import servers
import workloads
from client import Deadline
from report import ServerResult
from servers import FastTrackMLServer, LabtrackServer, MlflowServer, ServerError, ServerKind

RESULTS_DIR = servers.BENCH_DIR / "results"

# The server registry: adding a server kind is one ServerKind subclass plus one line here.
SERVER_KINDS: dict[str, Callable[[argparse.Namespace], ServerKind]] = {
    "mlflow": lambda a: MlflowServer(with_postgres="postgresql" in a.backend_list),
    "labtrack": lambda a: LabtrackServer(a.labtrack_python),
    "fasttrackml": lambda a: FastTrackMLServer(),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument(
        "--backend", default="sqlite", help="sqlite, postgresql, or both comma-separated"
    )
    p.add_argument("--only", default=",".join(workloads.WORKLOADS), help="e.g. W1,W4")
    p.add_argument("--servers", default="mlflow,labtrack", help=f"of: {','.join(SERVER_KINDS)}")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (all servers)")
    p.add_argument("--rounds", type=int, help="timed rounds per workload (default 1 quick, 3 full)")
    p.add_argument(
        "--labtrack-python",
        default=sys.executable,
        help="python that runs labtrack and the stock client for W6 (default: this one)",
    )
    p.add_argument("--budget", type=float, help="max seconds per workload (default 300/3600)")
    p.add_argument("--keep", action="store_true", help="keep server temp dirs (debugging)")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    args.backend_list = _split(args.backend, {"sqlite", "postgresql"}, "backend")
    args.only_list = _split(args.only.upper(), set(workloads.WORKLOADS), "workload")
    args.server_list = _split(args.servers, set(SERVER_KINDS), "server")
    return args


def _split(value: str, allowed: set[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"unknown {what}(s) {bad or value!r}; choose from {sorted(allowed)}")
    return items


def bench_server(kind: ServerKind, backend: str, args: argparse.Namespace) -> ServerResult:
    """Start one server, run every selected workload against it, stop it."""
    res = ServerResult(kind.name, version=kind.version())
    sizes = workloads.QUICK if args.quick else workloads.FULL
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds)
    budget = args.budget or (300.0 if args.quick else 3600.0)
    print(f"\n== {kind.name} {res.version} on {backend}", flush=True)
    try:
        with servers.running(kind, backend, args.workers, keep_dir=args.keep) as srv:
            _record_idle(res, srv)
            for wl in args.only_list:
                _run_workload(wl, srv, sizes, budget, args, res)
            assert srv.sampler is not None
            srv.usage()
            res.peak_rss_mib = srv.sampler.peak_rss / report.MIB
            res.peak_pss_mib = srv.sampler.peak_pss / report.MIB
    except ServerError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        res.errors["server"] = " … ".join(
            dict.fromkeys([lines[0], lines[-1]])
        )  # Cause + last log line.
        print(f"   ✗ {kind.name} did not run:\n{exc}", flush=True)
    return res


def _record_idle(res: ServerResult, srv: servers.RunningServer) -> None:
    assert srv.idle is not None
    res.startup_s = srv.startup_s
    res.idle_rss_mib = srv.idle.rss / report.MIB
    res.idle_pss_mib = srv.idle.pss / report.MIB
    res.idle_processes = srv.idle.processes
    print(
        f"   ready in {srv.startup_s:.1f}s at {srv.base_url}; idle: {srv.idle.processes} "
        f"processes, RSS {res.idle_rss_mib:.0f} MiB, PSS {res.idle_pss_mib:.0f} MiB",
        flush=True,
    )


def _client_cpu_s(srv: servers.RunningServer) -> float:
    """CPU of this harness and its finished children (W6's stock client), less the sampler's."""
    t = os.times()
    sampler = srv.sampler.own_cpu_s if srv.sampler else 0.0
    return t.user + t.system + t.children_user + t.children_system - sampler


def _run_workload(
    wl: str,
    srv: servers.RunningServer,
    sizes: workloads.Sizes,
    budget: float,
    args: argparse.Namespace,
    res: ServerResult,
) -> None:
    print(f"  -- {wl}: {(workloads.WORKLOADS[wl].__doc__ or '').strip()}", flush=True)
    ctx = workloads.Ctx(srv.base_url, sizes, budget, args.labtrack_python, tag=res.server)
    started, server_cpu, client_cpu = time.monotonic(), srv.usage().cpu_s, _client_cpu_s(srv)
    try:
        workloads.WORKLOADS[wl](ctx, Deadline(budget))
    except Exception as exc:  # One broken workload must not hide the others' numbers.
        res.errors[wl] = f"{type(exc).__name__}: {exc}"[:400]
        print(f"    ✗ {wl} failed: {res.errors[wl]}", flush=True)
        traceback.print_exc(limit=3)
    usage = {
        "wall_s": time.monotonic() - started,
        "server_cpu_s": srv.usage().cpu_s - server_cpu,
        "client_cpu_s": _client_cpu_s(srv) - client_cpu,
    }
    res.workload_usage[wl] = {k: round(v, 2) for k, v in usage.items()}
    wall, server, client = usage["wall_s"], usage["server_cpu_s"], usage["client_cpu_s"]
    print(f"    ({wall:.1f}s wall; CPU: server {server:.1f}s, client {client:.1f}s)", flush=True)
    res.measurements += ctx.measurements
    res.checks += ctx.checks
    res.notes += ctx.notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Turn SIGTERM into SystemExit so the `finally` blocks stop the servers and drop databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = [SERVER_KINDS[name](args) for name in args.server_list]
    for kind in kinds:
        kind.ensure_installed()
    by_backend: dict[str, list[ServerResult]] = {}
    for backend in args.backend_list:
        by_backend[backend] = [bench_server(kind, backend, args) for kind in kinds]
    versions = {r.server: r.version for results in by_backend.values() for r in results} | {
        "client mlflow": _client_mlflow_version(args.labtrack_python)
    }
    facts = report.machine_facts(servers.REPO_DIR, versions)
    text = "\n## labtrack benchmark\n\n" + report.facts_markdown(facts)
    text += "\n".join(report.markdown_table(b, results) for b, results in by_backend.items())
    print(text)
    if not args.no_json:
        path = RESULTS_DIR / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
        report.write_json(path, facts, by_backend)
        print(f"results written to {path}")
    failed = any(
        r.errors or any(not c.ok for c in r.checks) for rs in by_backend.values() for r in rs
    )
    return 1 if failed else 0


def _client_mlflow_version(python: str) -> str:
    """The mlflow version W6's stock client runs with."""
    out = subprocess.run(
        [python, "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        env={**os.environ, **servers.QUIET_ENV},
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
