"""Web UI timings in a real browser: the first page of a 10,000-run table and a 1,000,000-point
chart (issue #6: each under 1 s on this machine).

Seeds a fresh SQLite database through labtrack's own store functions (the same code path as
``runs/create`` and ``runs/log-batch``, without HTTP, so seeding takes a minute instead of many):
one experiment of ``--runs`` runs, each with ``--metrics`` metric keys (a few steps each) and
``--params`` params, plus one run with a ``--points``-point metric. Then it starts
``labtrack server`` on that database and drives headless Chromium (Playwright, Debian's
``/usr/bin/chromium``) to:

- open the experiment's runs page and time navigation start -> first page of rows rendered
  (the page marks ``performance.mark("labtrack:runs-rendered")``), cold and warm cache;
- open the long run's chart page and time navigation start -> chart drawn
  (``labtrack:chart-drawn``), and the size of what the browser received for the series.

Usage::

    .venv/bin/python bench/ui_timing.py [--runs 10000] [--metrics 100] [--params 50]
        [--points 1000000] [--repeat 5] [--keep DIR] [--json]

``--keep DIR`` keeps (and reuses, if present) the seeded database in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPERIMENT = "ui-scale"
LONG_RUN = "long-metric"
LONG_KEY = "loss"


# --- seeding --------------------------------------------------------------------------------------
def seed(db_uri: str, artifacts: Path, runs: int, metrics: int, params: int, points: int) -> dict:
    """Real rows in labtrack's schema, written by labtrack's store in large transactions."""
    sys.path.insert(0, str(REPO / "src"))
    from labtrack.config import Settings
    from labtrack.store import experiments as exp_store
    from labtrack.store import runs as run_store
    from labtrack.store.db import Database
    from labtrack.store.migrate import upgrade

    settings = Settings(backend_store_uri=db_uri, artifacts_destination=str(artifacts))
    db = Database(db_uri)
    upgrade(db)
    now = int(time.time() * 1000)
    db.run_write(exp_store.ensure_default, settings.experiment_artifact_location("0"), now)

    experiment_id = int(
        db.run_write(
            exp_store.create, EXPERIMENT, None, [], now, settings.experiment_artifact_location
        )
    )
    rng = random.Random(6)
    metric_keys = [f"metric_{i:03d}" for i in range(metrics)]
    param_keys = [f"param_{i:02d}" for i in range(params)]
    models = ["xgb", "rf", "lr", "mlp", "svm"]
    started = time.perf_counter()
    chunk = 250

    def write_chunk(conn, first: int, count: int) -> None:
        for i in range(first, first + count):
            run = run_store.create(
                conn,
                experiment_id=experiment_id,
                user_id=f"user{i % 7}",
                run_name=f"run-{i:05d}",
                start_time=now - (runs - i) * 60_000,
                tags=[("team", ["risk", "growth", "core"][i % 3]), ("mlflow.user", f"user{i % 7}")],
            )
            run_id = run["info"]["run_id"]
            quality = rng.random()
            values = []
            for k, key in enumerate(metric_keys):
                base = quality * (1 + k / metrics)
                for step in range(3):
                    values.append((key, base + step * 0.01, now + step, step))
            plist = [(key, str(rng.choice([0.001, 0.01, 0.1, 1.0]))) for key in param_keys]
            plist[0] = ("param_00", rng.choice(models))
            run_store.log_batch(conn, run_id, metrics=values, params=plist)
            run_store.update(conn, run_id, status="FINISHED", end_time=now, run_name=None)

    for first in range(0, runs, chunk):
        db.run_write(write_chunk, first, min(chunk, runs - first))
        done = min(first + chunk, runs)
        if done % 2000 == 0 or done == runs:
            print(
                f"  seeded {done}/{runs} runs ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    def long_run(conn) -> str:
        run = run_store.create(
            conn,
            experiment_id=experiment_id,
            user_id="user0",
            run_name=LONG_RUN,
            start_time=now,
            tags=[],
        )
        return run["info"]["run_id"]

    long_id = db.run_write(long_run)
    batch = 100_000
    for first in range(0, points, batch):
        series = [
            (LONG_KEY, 1.0 / (1 + s / 1000) + rng.random() * 0.01, now + s, s)
            for s in range(first, min(first + batch, points))
        ]
        db.run_write(lambda conn, series=series: run_store.log_batch(conn, long_id, metrics=series))
    print(
        f"  seeded the {points}-point metric ({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    db.close()
    return {"experiment_id": str(experiment_id), "long_run_id": long_id}


# --- server -----------------------------------------------------------------------------------------
def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_uri: str, artifacts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = _port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "labtrack", "server", "--port", str(port)]
    cmd += ["--backend-store-uri", db_uri, "--artifacts-destination", str(artifacts)]
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"labtrack did not start; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


# --- browser ------------------------------------------------------------------------------------------
_SINCE_NAVIGATION = """(mark) => {
    const m = performance.getEntriesByName(mark, "mark")[0];
    return m ? m.startTime : null;
}"""


def measure(url: str, ids: dict, repeat: int) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        received = {"bytes": 0}

        def on_response(response) -> None:
            if "get-history-bulk-interval" in response.url:
                try:
                    received["bytes"] += len(response.body())
                except Exception:  # noqa: BLE001 - the page may have navigated away
                    pass

        page.on("response", on_response)
        runs_url = f"{url}/experiments/{ids['experiment_id']}"
        chart_url = f"{url}/runs/{ids['long_run_id']}/metrics?key={LONG_KEY}"
        for name, target, mark, selector in (
            ("runs_first_page_ms", runs_url, "labtrack:runs-rendered", "#runs-table tbody tr"),
            ("chart_1m_points_ms", chart_url, "labtrack:chart-drawn", ".chart .main-svg"),
        ):
            times = []
            for _ in range(repeat + 1):  # the first load is cold (no cached scripts)
                received["bytes"] = 0
                page.goto(target)
                page.wait_for_selector(selector, timeout=60_000)
                page.wait_for_function(
                    f"() => performance.getEntriesByName({json.dumps(mark)}, 'mark').length",
                    timeout=60_000,
                )
                times.append(page.evaluate(_SINCE_NAVIGATION, mark))
            results[name] = {
                "cold": round(times[0]),
                "warm_median": round(statistics.median(times[1:])),
                "warm_all": [round(t) for t in times[1:]],
            }
            if name.startswith("chart"):
                results["chart_bytes_received"] = received["bytes"]
        shots = REPO / "tests" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.goto(runs_url)
        page.wait_for_selector("#runs-table tbody tr")
        page.screenshot(path=str(shots / "bench-runs-10k.png"))
        page.goto(chart_url)
        page.wait_for_selector(".chart .main-svg")
        page.screenshot(path=str(shots / "bench-chart-1m.png"))
        browser.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--metrics", type=int, default=100)
    ap.add_argument("--params", type=int, default=50)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the seeded data in this folder")
    ap.add_argument("--seed-only", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="labtrack-ui-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db_uri = f"sqlite:///{folder / 'ui.db'}"
    artifacts = folder / "artifacts"
    artifacts.mkdir(exist_ok=True)
    ids_file = folder / "ids.json"
    if ids_file.exists():
        ids = json.loads(ids_file.read_text())
        print(f"reusing the seeded database in {folder}", file=sys.stderr)
    else:
        print(
            f"seeding {args.runs} runs x {args.metrics} metrics x {args.params} params and a "
            f"{args.points}-point metric into {folder}",
            file=sys.stderr,
        )
        ids = seed(db_uri, artifacts, args.runs, args.metrics, args.params, args.points)
        ids_file.write_text(json.dumps(ids))
    if args.seed_only:
        return 0
    proc, url = start_server(db_uri, artifacts, folder / "server.log")
    try:
        results = measure(url, ids, args.repeat)
    finally:
        stop_server(proc)
    results["sizes"] = {
        "runs": args.runs,
        "metric_keys": args.metrics,
        "params": args.params,
        "points": args.points,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        r, c = results["runs_first_page_ms"], results["chart_1m_points_ms"]
        print(f"runs table, first page: cold {r['cold']} ms, warm median {r['warm_median']} ms")
        print(f"1M-point chart drawn:   cold {c['cold']} ms, warm median {c['warm_median']} ms")
        print(f"series bytes received by the browser: {results['chart_bytes_received']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
