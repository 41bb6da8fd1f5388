"""What authentication adds to a request: p50/p95 of ``GET runs/get`` with auth off, with a
Basic password, with a personal access token, and with an APIHub password (cached).

Starts its own labtrack servers on 127.0.0.1 (sqlite in a temp folder) and a stand-in APIHub,
then sends the same keep-alive request N times per configuration, interleaved in rounds so that
machine noise hits every configuration alike. Usage::

    .venv/bin/python bench/auth_latency.py [--requests 2000] [--rounds 4] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

ADMIN = ("admin", "admin-password-123")
USER = ("bench", "bench-password-123")
HUB_USER = ("dana", "dana-password-123")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _basic(user: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(user).encode()).decode()}


class _Hub(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        _Hub.calls += 1
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        ok = (body.get("username"), body.get("password")) == HUB_USER
        data = json.dumps({"role": "data_scientist"} if ok else {}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class Server:
    def __init__(self, extra: list[str], env: dict[str, str] | None = None) -> None:
        self.folder = tempfile.mkdtemp(prefix="labtrack-bench-auth-")
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "labtrack",
            "server",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.folder}/db.sqlite",
            "--artifacts-destination",
            f"{self.folder}/artifacts",
            *extra,
        ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABTRACK_")}
        full_env.update(env or {})
        self.log = open(f"{self.folder}/server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(open(f"{self.folder}/server.log").read())
            time.sleep(0.1)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.log.close()


def _setup_run(url: str, headers: dict[str, str]) -> str:
    with httpx.Client(base_url=url, headers=headers) as c:
        exp = c.post("/api/2.0/mlflow/experiments/create", json={"name": f"bench-{time.time()}"})
        exp.raise_for_status()
        run = c.post(
            "/api/2.0/mlflow/runs/create",
            json={"experiment_id": exp.json()["experiment_id"], "start_time": 0},
        )
        run.raise_for_status()
        run_id = run.json()["run"]["info"]["run_id"]
        c.post(
            "/api/2.0/mlflow/runs/log-metric",
            json={"run_id": run_id, "key": "m", "value": 1, "timestamp": 0},
        ).raise_for_status()
        return run_id


def _measure(client: httpx.Client, run_id: str, n: int) -> list[float]:
    samples = []
    params = {"run_id": run_id}
    for _ in range(n):
        start = time.perf_counter()
        r = client.get("/api/2.0/mlflow/runs/get", params=params)
        samples.append(time.perf_counter() - start)
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {r.text}")
    return samples


def micro(n: int = 20000) -> dict[str, float]:
    """The enforcement step alone, in-process (no HTTP, no machine noise): mean microseconds
    of ``Enforcer.check`` for a cached Basic password, a cached token, and a run lookup."""
    import asyncio

    from labtrack.app import App
    from labtrack.config import Settings
    from labtrack.store import auth as auth_store
    from labtrack.store import experiments as exp_store
    from labtrack.store import runs as run_store

    folder = tempfile.mkdtemp(prefix="labtrack-bench-auth-micro-")
    settings = Settings(
        backend_store_uri=f"sqlite:///{folder}/db.sqlite",
        artifacts_destination=f"{folder}/artifacts",
        auth="on",
        admin_username=ADMIN[0],
        admin_password=ADMIN[1],
    )
    app = App(settings)
    app.startup()
    from labtrack.auth.passwords import hash_password

    app.db.run_write(auth_store.create_user, USER[0], hash_password(USER[1]), 0)
    exp = app.db.run_write(
        exp_store.create, "micro", None, [], 0, settings.experiment_artifact_location
    )
    run = app.db.run_write(
        run_store.create, experiment_id=int(exp), user_id="", run_name=None, start_time=0, tags=[]
    )
    app.db.run_write(auth_store.grant, "user", USER[0], "experiment", exp, "EDIT")
    from labtrack.auth import tokens
    from labtrack.http import Request

    token = tokens.new_token()
    app.db.run_write(auth_store.create_token, USER[0], "t", tokens.token_hash(token), "h", 0, None)
    route, _ = app.router.match("GET", "/api/2.0/mlflow/runs/get")
    query = f"run_id={run['info']['run_id']}".encode()

    def scope(auth: dict[str, str]) -> dict:
        headers = [(k.lower().encode(), v.encode()) for k, v in auth.items()]
        return {
            "type": "http",
            "method": "GET",
            "path": route.path,
            "query_string": query,
            "headers": headers,
            "client": ("127.0.0.1", 1),
        }

    async def run_checks() -> dict[str, float]:
        out = {}
        for name, auth in (
            ("basic password", _basic(USER)),
            ("token (bearer)", {"Authorization": f"Bearer {token}"}),
        ):
            await app.auth.check(Request(scope(auth), None, app, route.path), route)
            start = time.perf_counter()
            for _ in range(n):
                await app.auth.check(Request(scope(auth), None, app, route.path), route)
            out[name] = (time.perf_counter() - start) / n * 1e6
        return out

    try:
        return asyncio.run(run_checks())
    finally:
        app.shutdown()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per configuration")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    hub = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    hub_url = f"http://127.0.0.1:{hub.server_address[1]}"

    off = Server([])
    admin_env = {"LABTRACK_ADMIN_USERNAME": ADMIN[0], "LABTRACK_ADMIN_PASSWORD": ADMIN[1]}
    on = Server([], admin_env)
    apihub = Server(["--apihub-url", hub_url], admin_env)
    clients: dict[str, tuple[httpx.Client, str]] = {}
    try:
        clients["off"] = (httpx.Client(base_url=off.url), _setup_run(off.url, {}))
        with httpx.Client(base_url=on.url, headers=_basic(ADMIN)) as admin:
            admin.post(
                "/api/2.0/mlflow/users/create", json={"username": USER[0], "password": USER[1]}
            ).raise_for_status()
        user_run = _setup_run(on.url, _basic(USER))
        clients["basic password"] = (httpx.Client(base_url=on.url, headers=_basic(USER)), user_run)
        with httpx.Client(base_url=on.url, headers=_basic(USER)) as me:
            token = me.post("/api/2.0/labtrack/tokens/create", json={"name": "bench"}).json()
        bearer = {"Authorization": f"Bearer {token['token']}"}
        clients["token (bearer)"] = (httpx.Client(base_url=on.url, headers=bearer), user_run)
        hub_run = _setup_run(apihub.url, _basic(HUB_USER))
        clients["apihub (cached)"] = (
            httpx.Client(base_url=apihub.url, headers=_basic(HUB_USER)),
            hub_run,
        )

        samples: dict[str, list[float]] = {name: [] for name in clients}
        per_round = max(1, args.requests // args.rounds)
        for client, run_id in clients.values():
            _measure(client, run_id, 200)  # warm-up: connections, caches
        for round_no in range(args.rounds):
            names = list(clients)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in names:
                client, run_id = clients[name]
                samples[name] += _measure(client, run_id, per_round)

        base50, base95 = _pct(samples["off"], 0.50), _pct(samples["off"], 0.95)
        results = []
        for name, values in samples.items():
            p50, p95 = _pct(values, 0.50), _pct(values, 0.95)
            results.append(
                {
                    "config": name,
                    "requests": len(values),
                    "p50_ms": round(p50, 3),
                    "p95_ms": round(p95, 3),
                    "p99_ms": round(_pct(values, 0.99), 3),
                    "mean_ms": round(statistics.mean(values) * 1000, 3),
                    "added_p50_ms": round(p50 - base50, 3),
                    "added_p95_ms": round(p95 - base95, 3),
                }
            )
        in_process = micro()
        if args.json:
            print(
                json.dumps(
                    {"results": results, "apihub_calls": _Hub.calls, "check_us": in_process},
                    indent=2,
                )
            )
            return
        print(f"GET runs/get, keep-alive, {per_round * args.rounds} requests per configuration")
        print(
            f"{'configuration':18} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'+p50 ms':>8} {'+p95 ms':>8}"
        )
        for r in results:
            print(
                f"{r['config']:18} {r['p50_ms']:8.3f} {r['p95_ms']:8.3f} {r['p99_ms']:8.3f} "
                f"{r['added_p50_ms']:8.3f} {r['added_p95_ms']:8.3f}"
            )
        print(f"APIHub password checks during the whole run: {_Hub.calls}")
        for name, us in in_process.items():
            print(f"enforcement step alone, in-process ({name}): {us:.1f} us per request")
    finally:
        for client, _ in clients.values():
            client.close()
        for server in (off, on, apihub):
            server.stop()
        hub.shutdown()


if __name__ == "__main__":
    main()
