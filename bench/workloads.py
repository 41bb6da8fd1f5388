"""The benchmark workloads W1-W7.

Every workload talks raw HTTP the way the stock MLflow client does, times only the part it
reports, and then reads back what it wrote, so a server that drops data cannot look fast.
Sizes are counts (the same work for every server); W1 and W2 also keep going until a minimum
time has passed, so a fast server is timed over more than a few milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from client import Client, Deadline, RequestError, metric, now_ms
from servers import QUIET_ENV, free_port

T = TypeVar("T")
BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does; see QUICK and FULL."""

    rounds: int
    min_seconds: float  # W1/W2 keep going at least this long per timed phase.
    w1_runs_1: int
    w1_runs_per_client_8: int
    w2_requests_per_client: int
    w3_batches: int
    w4_runs: int
    w4_searches: int
    w4_page: int
    w5_points: int
    w5_fetches: int
    w5_page: int
    w6_calls: int
    w7_points: int
    w7_interval_calls: int
    w7_seed_cap_s: float  # W7 measures no reads on a server that cannot seed within this.


QUICK = Sizes(
    rounds=1,
    min_seconds=0.0,
    w1_runs_1=5,
    w1_runs_per_client_8=2,
    w2_requests_per_client=20,
    w3_batches=3,
    w4_runs=240,
    w4_searches=5,
    w4_page=100,
    w5_points=5_000,
    w5_fetches=3,
    w5_page=2_000,
    w6_calls=50,
    w7_points=50_000,
    w7_interval_calls=3,
    w7_seed_cap_s=60.0,
)
FULL = Sizes(
    rounds=3,
    min_seconds=5.0,
    w1_runs_1=100,
    w1_runs_per_client_8=25,
    w2_requests_per_client=250,
    w3_batches=50,
    w4_runs=10_000,
    w4_searches=30,
    w4_page=1_000,
    w5_points=100_000,
    w5_fetches=5,
    w5_page=25_000,
    w6_calls=1_000,
    w7_points=10_000_000,
    w7_interval_calls=20,
    w7_seed_cap_s=240.0,
)

CLIENTS = 8
MAX_REPEAT = 50  # A min-time loop never does more than this many times its nominal count.


@dataclass
class Measurement:
    """One number in the report."""

    workload: str
    name: str
    value: float
    unit: str
    higher_is_better: bool
    compared: bool = True  # False for context numbers (a floor) that no server should "win".


@dataclass
class Check:
    """One read-back verification of data a workload wrote."""

    workload: str
    what: str
    ok: bool
    detail: str = ""


@dataclass
class Note:
    """Why a workload measured less than usual, though nothing failed (e.g. W7's seed cap)."""

    workload: str
    text: str


@dataclass
class Ctx:
    """What a workload needs: where the server is, how big to go, where to put results."""

    base_url: str
    sizes: Sizes
    budget_s: float
    client_python: str
    tag: str
    measurements: list[Measurement] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def client(self) -> Client:
        return Client(self.base_url)

    def measure(
        self, wl: str, name: str, value: float, unit: str, higher: bool, compared: bool = True
    ) -> None:
        self.measurements.append(Measurement(wl, name, value, unit, higher, compared))
        print(f"    {wl} {name}: {value:,.2f} {unit}", flush=True)

    def check(self, wl: str, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(wl, what, ok, detail))
        mark = "✓" if ok else "✗"
        print(f"    {mark} {wl} {what}{': ' + detail if detail else ''}", flush=True)

    def note(self, wl: str, text: str) -> None:
        self.notes.append(Note(wl, text))
        print(f"    - {wl} {text}", flush=True)


# ---------------------------------------------------------------------------- helpers


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile, no numpy needed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_clients(
    base_url: str, n: int, work: Callable[[Client, int], T], deadline: Deadline
) -> tuple[list[T], float]:
    """Run `work(client, index)` on n threads, each with its own connection; time them together.

    Connections are opened before the clock starts and all threads start on a barrier, so the
    elapsed time covers only the requests.
    """
    clients = [Client(base_url) for _ in range(n)]
    for c in clients:
        c.connect()
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n + 1)

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(clients[i], i)
        except BaseException as exc:  # Re-raised in the caller.
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(max(1.0, deadline.end - time.monotonic()) + 130)
    elapsed = time.perf_counter() - start
    for c in clients:
        c.close()
    if any(t.is_alive() for t in threads):
        raise TimeoutError("client threads did not finish in time")
    if errors:
        raise errors[0]
    return results, elapsed


def keep_going(done: int, nominal: int, started: float, min_s: float, deadline: Deadline) -> bool:
    """Loop condition for count-plus-minimum-time phases."""
    deadline.check()
    if done >= nominal * MAX_REPEAT:
        return False
    return done < nominal or time.perf_counter() - started < min_s


# ---------------------------------------------------------------------------- W1


def _w1_one_run(c: Client, exp_id: str, name: str) -> str:
    run_id = c.create_run(exp_id, name)
    ts = now_ms()
    metrics = [metric(f"m{k}", random.random(), 0, run_id, ts) for k in range(100)]
    params = [{"key": f"p{k}", "value": f"value-{k}"} for k in range(20)]
    tags = [{"key": f"t{k}", "value": f"tag-{k}"} for k in range(5)]
    c.log_batch(run_id, metrics, params, tags)
    c.finish_run(run_id)
    return run_id


def _w1_phase(ctx: Ctx, n_clients: int, runs_per_client: int, label: str, dl: Deadline) -> float:
    """One timed round: returns runs/s and verifies the runs it created."""
    setup = ctx.client()
    exp_id = setup.create_experiment(f"w1-{label}-{ctx.tag}-{time.time_ns()}")

    def work(c: Client, i: int) -> list[str]:
        ids: list[str] = []
        start = time.perf_counter()
        while keep_going(len(ids), runs_per_client, start, ctx.sizes.min_seconds, dl):
            ids.append(_w1_one_run(c, exp_id, f"w1-{i}-{len(ids)}"))
        return ids

    per_client, elapsed = run_clients(ctx.base_url, n_clients, work, dl)
    made = [rid for ids in per_client for rid in ids]
    _w1_verify(ctx, setup, exp_id, made, label)
    setup.close()
    return len(made) / elapsed


def _w1_verify(ctx: Ctx, c: Client, exp_id: str, made: list[str], label: str) -> None:
    runs = c.all_runs(exp_id)
    got = {r["info"]["run_id"] for r in runs}
    ctx.check("W1", f"{label}: {len(made)} runs found", got == set(made), f"found {len(got)}")
    bad = [
        r["info"]["run_id"]
        for r in runs
        if r["info"].get("status") != "FINISHED"
        or len(r.get("data", {}).get("metrics", [])) != 100
        or len(r.get("data", {}).get("params", [])) != 20
        or not {f"t{k}" for k in range(5)} <= {t["key"] for t in r["data"].get("tags", [])}
    ]
    ctx.check(
        "W1",
        f"{label}: FINISHED with 100 metrics/20 params/5 tags",
        not bad,
        f"{len(bad)} bad" if bad else "",
    )


def w1(ctx: Ctx, dl: Deadline) -> None:
    """create-run + log-batch(100 metrics, 20 params, 5 tags) + update(FINISHED)."""
    warm = ctx.client()
    warm_exp = warm.create_experiment(f"w1-warmup-{ctx.tag}-{time.time_ns()}")
    for i in range(3):
        _w1_one_run(warm, warm_exp, f"warm-{i}")
    warm.close()
    s = ctx.sizes
    one = [_w1_phase(ctx, 1, s.w1_runs_1, f"1 client r{r}", dl) for r in range(s.rounds)]
    many = [
        _w1_phase(ctx, CLIENTS, s.w1_runs_per_client_8, f"{CLIENTS} clients r{r}", dl)
        for r in range(s.rounds)
    ]
    ctx.measure("W1", "create+log-batch+finish, 1 client", median(one), "runs/s", True)
    ctx.measure("W1", f"create+log-batch+finish, {CLIENTS} clients", median(many), "runs/s", True)


# ---------------------------------------------------------------------------- W2


def _w2_round(ctx: Ctx, exp_id: str, r: int, dl: Deadline) -> tuple[float, float, float]:
    setup = ctx.client()
    run_ids = [setup.create_run(exp_id, f"w2-r{r}-c{i}") for i in range(CLIENTS)]

    def work(c: Client, i: int) -> list[float]:
        lat: list[float] = []
        start = time.perf_counter()
        while keep_going(
            len(lat), ctx.sizes.w2_requests_per_client, start, ctx.sizes.min_seconds, dl
        ):
            t0 = time.perf_counter()
            c.log_metric(run_ids[i], "loss", 1.0 / (len(lat) + 1), len(lat))
            lat.append(time.perf_counter() - t0)
        return lat

    per_client, elapsed = run_clients(ctx.base_url, CLIENTS, work, dl)
    counts = [len(lat) for lat in per_client]
    got = [len(setup.metric_history(rid, "loss")) for rid in run_ids]
    ctx.check("W2", f"round {r}: history lengths = requests sent", got == counts, f"{sum(got)}")
    setup.close()
    lat_ms = [x * 1000 for lat in per_client for x in lat]
    return sum(counts) / elapsed, percentile(lat_ms, 50), percentile(lat_ms, 95)


def w2(ctx: Ctx, dl: Deadline) -> None:
    """Single runs/log-metric per request from 8 concurrent clients."""
    c = ctx.client()
    exp_id = c.create_experiment(f"w2-{ctx.tag}-{time.time_ns()}")
    warm_run = c.create_run(exp_id, "w2-warmup")
    for i in range(20):
        c.log_metric(warm_run, "warm", float(i), i)
    c.close()
    rounds = [_w2_round(ctx, exp_id, r, dl) for r in range(ctx.sizes.rounds)]
    ctx.measure(
        "W2", f"log-metric, {CLIENTS} clients", median([x[0] for x in rounds]), "req/s", True
    )
    ctx.measure("W2", "log-metric p50 latency", median([x[1] for x in rounds]), "ms", False)
    ctx.measure("W2", "log-metric p95 latency", median([x[2] for x in rounds]), "ms", False)


# ---------------------------------------------------------------------------- W3

W3_KEYS = 4
W3_BATCH = 1000


def _w3_batch(run_id: str, b: int) -> list[dict[str, Any]]:
    """1,000 points spread over a few keys, with steps that never repeat across batches."""
    per_key = W3_BATCH // W3_KEYS
    ts = now_ms()
    return [
        metric(f"k{k}", random.random(), b * per_key + s, run_id, ts)
        for k in range(W3_KEYS)
        for s in range(per_key)
    ]


def w3(ctx: Ctx, dl: Deadline) -> None:
    """log-batch of 1,000 metric points into one run, repeated."""
    c = ctx.client()
    exp_id = c.create_experiment(f"w3-{ctx.tag}-{time.time_ns()}")
    warm = c.create_run(exp_id, "w3-warmup")
    c.log_batch(warm, _w3_batch(warm, 0))
    rates = []
    for r in range(ctx.sizes.rounds):
        run_id = c.create_run(exp_id, f"w3-r{r}")
        batches = [_w3_batch(run_id, b) for b in range(ctx.sizes.w3_batches)]
        start = time.perf_counter()
        for batch in batches:
            dl.check()
            c.log_batch(run_id, batch)
        rates.append(len(batches) * W3_BATCH / (time.perf_counter() - start))
        want = ctx.sizes.w3_batches * (W3_BATCH // W3_KEYS)
        got = [len(c.metric_history(run_id, f"k{k}")) for k in range(W3_KEYS)]
        ctx.check(
            "W3", f"round {r}: {W3_KEYS}x{want} points stored", got == [want] * W3_KEYS, f"{got}"
        )
    c.close()
    ctx.measure("W3", f"log-batch of {W3_BATCH} points, 1 client", median(rates), "points/s", True)


# ---------------------------------------------------------------------------- W4


def _w4_values(run_index: int) -> list[float]:
    """Deterministic metric values per run, so the expected search answer is known."""
    rng = random.Random(run_index)
    return [rng.random() for _ in range(10)]


def _w4_seed(ctx: Ctx, exp_id: str, dl: Deadline) -> tuple[dict[str, list[float]], float]:
    total = ctx.sizes.w4_runs

    def work(c: Client, i: int) -> dict[str, list[float]]:
        mine: dict[str, list[float]] = {}
        for n in range(i, total, CLIENTS):
            dl.check()
            run_id = c.create_run(exp_id, f"w4-{n}")
            values = _w4_values(n)
            ts = now_ms()
            c.log_batch(
                run_id,
                [metric(f"m{k}", v, 0, run_id, ts) for k, v in enumerate(values)],
                [{"key": f"p{k}", "value": str(n % (k + 2))} for k in range(10)],
            )
            mine[run_id] = values
        return mine

    per_client, elapsed = run_clients(ctx.base_url, CLIENTS, work, dl)
    seeded = {rid: v for part in per_client for rid, v in part.items()}
    return seeded, elapsed


def _w4_search(ctx: Ctx, c: Client, exp_id: str, seeded: dict[str, list[float]], dl: Deadline):
    want = [rid for rid, v in sorted(seeded.items(), key=lambda kv: -kv[1][1]) if v[0] > 0.5]
    want = want[:100]

    def query() -> list[str]:
        page = c.search_runs(exp_id, "metrics.m0 > 0.5", ["metrics.m1 DESC"], max_results=100)
        return [r["info"]["run_id"] for r in page.get("runs", [])]

    for _ in range(3):
        got = query()
    ctx.check(
        "W4", "search returns the expected top 100, in order", got == want, f"{len(got)} runs"
    )
    lat = []
    for _ in range(ctx.sizes.w4_searches):
        dl.check()
        t0 = time.perf_counter()
        query()
        lat.append((time.perf_counter() - t0) * 1000)
    return percentile(lat, 50), percentile(lat, 95)


def _w4_scan(ctx: Ctx, c: Client, exp_id: str, seeded: dict[str, list[float]], label: str) -> float:
    start = time.perf_counter()
    runs = c.all_runs(exp_id, page_size=ctx.sizes.w4_page)
    elapsed = time.perf_counter() - start
    ids = [x["info"]["run_id"] for x in runs]
    ok = len(ids) == len(seeded) and set(ids) == set(seeded)
    ctx.check("W4", f"{label}: all {len(seeded)} runs, each once", ok, f"{len(ids)} rows")
    if label == "warm-up scan":
        bad = [
            x
            for x in runs
            if len(x.get("data", {}).get("metrics", [])) != 10
            or len(x.get("data", {}).get("params", [])) != 10
        ]
        ctx.check("W4", "every run has 10 metrics and 10 params", not bad, f"{len(bad)} bad")
    return elapsed


def w4(ctx: Ctx, dl: Deadline) -> None:
    """Seed many runs with 8 clients, then search with a metric filter and scan them all."""
    c = ctx.client()
    warm_exp = c.create_experiment(f"w4-warmup-{ctx.tag}-{time.time_ns()}")
    for i in range(5):
        run_id = c.create_run(warm_exp, f"warm-{i}")
        c.log_batch(run_id, [metric("m0", 0.1, 0, run_id, now_ms())])
    exp_id = c.create_experiment(f"w4-{ctx.tag}-{time.time_ns()}")
    c.close()
    n = ctx.sizes.w4_runs
    seeded, elapsed = _w4_seed(ctx, exp_id, dl)
    ctx.measure("W4", f"seed {n:,} runs, {CLIENTS} clients", len(seeded) / elapsed, "runs/s", True)
    c = ctx.client()
    p50, p95 = _w4_search(ctx, c, exp_id, seeded, dl)
    ctx.measure("W4", "search filter+order, 100 results p50", p50, "ms", False)
    ctx.measure("W4", "search filter+order, 100 results p95", p95, "ms", False)
    _w4_scan(ctx, c, exp_id, seeded, "warm-up scan")
    scans = [_w4_scan(ctx, c, exp_id, seeded, f"scan {r}") for r in range(ctx.sizes.rounds)]
    page = ctx.sizes.w4_page
    ctx.measure("W4", f"paged scan of {n:,} runs, {page:,}/page", median(scans), "s", False)
    c.close()


# ---------------------------------------------------------------------------- W5


def w5(ctx: Ctx, dl: Deadline) -> None:
    """get-history of one long metric, following page tokens like the stock client."""
    c = ctx.client()
    exp_id = c.create_experiment(f"w5-{ctx.tag}-{time.time_ns()}")
    run_id = c.create_run(exp_id, "w5")
    total = ctx.sizes.w5_points
    for start in range(0, total, 1000):
        dl.check()
        ts = now_ms()
        points = [
            metric("h", random.random(), s, run_id, ts)
            for s in range(start, min(total, start + 1000))
        ]
        c.log_batch(run_id, points)
    page = ctx.sizes.w5_page
    history = c.metric_history(run_id, "h", page)  # Warm-up, and the check.
    steps = sorted(int(p["step"]) for p in history)
    ctx.check(
        "W5", f"history has all {total:,} points", steps == list(range(total)), f"{len(steps)}"
    )
    lat = []
    for _ in range(ctx.sizes.w5_fetches):
        dl.check()
        t0 = time.perf_counter()
        got = len(c.metric_history(run_id, "h", page))
        lat.append((time.perf_counter() - t0) * 1000)
        if got != total:
            ctx.check("W5", "repeat fetch returned every point", False, f"{got}")
    c.close()
    ctx.measure(
        "W5", f"get-history of {total:,} points, {page:,}/page p50", median(lat), "ms", False
    )


# ---------------------------------------------------------------------------- W6


def w6(ctx: Ctx, dl: Deadline) -> None:
    """The stock client's mlflow.log_metric, one call per request, in a subprocess.

    Each round also times the same loop against bench/null_server.py, a server that does
    nothing: the client's own cost per call. What is left is the time the server adds.
    """
    n = ctx.sizes.w6_calls
    per_call, floor = [], []
    c = ctx.client()
    with _null_server(ctx) as null_url:
        for r in range(ctx.sizes.rounds):
            dl.check()
            exp_name = f"w6-{ctx.tag}-{time.time_ns()}"
            out = _stock_client(ctx, exp_name, n, dl)
            per_call.append(out["seconds"] * 1000 / n)
            got = len(c.metric_history(out["run_id"], "m"))
            ctx.check("W6", f"round {r}: {n} points stored", got == n, f"{got}")
            floor.append(_stock_client(ctx, exp_name, n, dl, url=null_url)["seconds"] * 1000 / n)
    c.close()
    ctx.measure("W6", "stock client mlflow.log_metric", median(per_call), "ms/call", False)
    ctx.measure(
        "W6", "same client, do-nothing server (floor)", median(floor), "ms/call", False, False
    )
    added = [max(0.0, p - f) for p, f in zip(per_call, floor, strict=True)]
    ctx.measure("W6", "time the server adds per call", median(added), "ms/call", False)


@contextlib.contextmanager
def _null_server(ctx: Ctx) -> Iterator[str]:
    """bench/null_server.py on a free port, for as long as the block runs."""
    port = free_port()
    proc = subprocess.Popen(
        [ctx.client_python, str(BENCH_DIR / "null_server.py"), "--port", str(port)],
        env={**os.environ, **QUIET_ENV},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        probe = Client(url, timeout_s=1.0)
        for _ in range(100):
            try:
                probe.get("experiments/get", [("experiment_id", "1")])
                break
            except (OSError, RequestError):
                probe.close()
                time.sleep(0.05)
        probe.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stock_client(
    ctx: Ctx, exp_name: str, n: int, dl: Deadline, url: str | None = None
) -> dict[str, Any]:
    env = {
        **os.environ,
        **QUIET_ENV,
        "MLFLOW_TRACKING_URI": url or ctx.base_url,
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    script = str(BENCH_DIR / "stock_client.py")
    timeout = max(30.0, dl.end - time.monotonic())
    proc = subprocess.run(
        [ctx.client_python, script, exp_name, str(n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stock client failed ({proc.returncode}): {proc.stderr[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- W7

W7_KEY = "loss"
W7_CLIENTS = 4
W7_BATCH = 1000
W7_MAX_RESULTS = 320  # What the UI's charts ask get-history-bulk-interval for.


def _w7_seed(ctx: Ctx, exp_id: str, dl: Deadline) -> tuple[str, int, float]:
    """One series of w7_points steps from 4 clients, each its own contiguous step range.

    Stops at the seed cap (a slow server would need far longer than the rest of the bench);
    returns (run id, points written, seconds).
    """
    c = ctx.client()
    run_id = c.create_run(exp_id, "w7")
    c.close()
    total = ctx.sizes.w7_points
    base_ts = now_ms()  # Timestamps increase with the step, as in a real training loop.
    cap = Deadline(ctx.sizes.w7_seed_cap_s)

    def work(c: Client, i: int) -> int:
        lo, hi = total * i // W7_CLIENTS, total * (i + 1) // W7_CLIENTS
        done = 0
        for start in range(lo, hi, W7_BATCH):
            if time.monotonic() > cap.end:
                break
            dl.check()
            steps = range(start, min(hi, start + W7_BATCH))
            c.log_batch(
                run_id, [metric(W7_KEY, random.random(), s, run_id, base_ts + s) for s in steps]
            )
            done += len(steps)
        return done

    done, elapsed = run_clients(ctx.base_url, W7_CLIENTS, work, dl)
    return run_id, sum(done), elapsed


def _w7_check_steps(
    ctx: Ctx, label: str, points: list[dict], first: int, last: int, limit: int
) -> None:
    """A downsampled answer: bounded, strictly increasing, inside [first, last], both ends kept."""
    steps = [int(p["step"]) for p in points]
    problems = []
    if len(steps) > limit:
        problems.append(f"{len(steps)} points > {limit}")
    if any(a >= b for a, b in zip(steps, steps[1:], strict=False)):
        problems.append("steps not strictly increasing")
    if any(s < first or s > last for s in steps):
        problems.append(f"steps outside [{first}, {last}]")
    if not steps or steps[0] != first or steps[-1] != last:
        ends = f"{steps[0]}..{steps[-1]}" if steps else "no points"
        problems.append(f"ends {ends}, want {first}..{last}")
    detail = "; ".join(problems) or f"{len(steps)} points, steps {steps[0]}..{steps[-1]}"
    ctx.check("W7", f"bulk-interval {label}", not problems, detail)


def _w7_interval_p50(
    ctx: Ctx, c: Client, run_id: str, window: tuple[int, int] | None, dl: Deadline
) -> float:
    lat = []
    for _ in range(ctx.sizes.w7_interval_calls):
        dl.check()
        t0 = time.perf_counter()
        c.history_bulk_interval(run_id, W7_KEY, W7_MAX_RESULTS, *(window or ()))
        lat.append((time.perf_counter() - t0) * 1000)
    return percentile(lat, 50)


def _w7_interval(ctx: Ctx, run_id: str, dl: Deadline) -> None:
    """The UI's chart reads of the series: all of it, then zoomed on the middle 10% of steps."""
    total = ctx.sizes.w7_points
    zoom = (total * 45 // 100, total * 55 // 100 - 1)  # The middle 10% of the steps.
    limit = W7_MAX_RESULTS + 2  # MLflow may add the first and last point to its sample.
    c = ctx.client()
    try:
        # The first answers are the warm-up and the checks.
        whole = c.history_bulk_interval(run_id, W7_KEY, W7_MAX_RESULTS)
        _w7_check_steps(ctx, "whole series", whole, 0, total - 1, limit)
        zoomed = c.history_bulk_interval(run_id, W7_KEY, W7_MAX_RESULTS, *zoom)
        _w7_check_steps(ctx, "middle 10% zoom", zoomed, zoom[0], zoom[1], limit)
        full_p50 = _w7_interval_p50(ctx, c, run_id, None, dl)
        zoom_p50 = _w7_interval_p50(ctx, c, run_id, zoom, dl)
    finally:
        c.close()
    label = f"bulk-interval, {total:,} points, {W7_MAX_RESULTS} results"
    ctx.measure("W7", f"{label}, whole series p50", full_p50, "ms", False)
    ctx.measure("W7", f"{label}, middle 10% zoom p50", zoom_p50, "ms", False)


def w7(ctx: Ctx, dl: Deadline) -> None:
    """One metric with millions of points: chart reads (bulk-interval) and one full get-history."""
    total = ctx.sizes.w7_points
    c = ctx.client()
    exp_id = c.create_experiment(f"w7-{ctx.tag}-{time.time_ns()}")
    warm = c.create_run(exp_id, "w7-warmup")
    c.log_batch(warm, [metric(W7_KEY, 0.5, s, warm, now_ms()) for s in range(W7_BATCH)])
    c.close()
    run_id, done, elapsed = _w7_seed(ctx, exp_id, dl)
    ctx.measure(
        "W7", f"seed {total:,} points, {W7_CLIENTS} clients", done / elapsed, "points/s", True
    )
    if done < total:
        cap = ctx.sizes.w7_seed_cap_s
        ctx.note(
            "W7",
            f"too slow to seed: {done:,} of {total:,} points in {elapsed:.0f} s (cap {cap:.0f} s);"
            " reads not measured (not a failure)",
        )
        return

    try:
        _w7_interval(ctx, run_id, dl)
    except RequestError as exc:  # An endpoint a server lacks must not hide the full read.
        if "-> 404" in str(exc):
            # Not served at all (FastTrackML 0.6 has no bulk-interval): absent, not broken.
            ctx.note("W7", "get-history-bulk-interval is not served (404); not measured")
        else:
            ctx.check("W7", "get-history-bulk-interval answers", False, str(exc)[:300])

    # Last, as it is the heaviest read: the whole series in one answer, streamed and counted,
    # never parsed (10M points would take GBs as Python objects). A server may take minutes to
    # build this answer before the first byte, hence the long socket timeout.
    big = Client(ctx.base_url, timeout_s=max(120.0, dl.end - time.monotonic()))
    t0 = time.perf_counter()
    got, size = big.count_history_points(run_id, W7_KEY)
    seconds = time.perf_counter() - t0
    big.close()
    ctx.check(
        "W7",
        f"get-history without max_results returns all {total:,} points",
        got == total,
        f"{got:,} points, {size / 1e6:,.0f} MB",
    )
    ctx.measure("W7", f"get-history of all {total:,} points, one response", seconds, "s", False)


WORKLOADS: dict[str, Callable[[Ctx, Deadline], None]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
    "W6": w6,
    "W7": w7,
}
