"""Push one big file up and down through a server's mlflow-artifacts API; report memory and speed.

For each server: start it on a fresh temp dir, PUT the file (one streamed request, as the stock
client does below its multipart threshold), GET it back, compare checksums, and sample the
server's resident memory (summed over its whole process tree, from /proc) every 20 ms throughout.

    .venv/bin/python bench/artifact_stream.py --size 2G --servers labtrack
    .venv/bin/python bench/artifact_stream.py --size 1G --servers labtrack,mlflow
    .venv/bin/python bench/artifact_stream.py --size 2G --servers labtrack --via client

``mlflow`` runs the stock server from ``bench/.venvs/mlflow`` and is skipped when that venv does
not exist. The client is plain ``http.client`` with 1 MiB blocks, so it costs little CPU next to
the server; the checksum is computed outside the timed part.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MLFLOW_VENV = BENCH / ".venvs" / "mlflow"
BLOCK = 1024 * 1024
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"}


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- memory of a process tree ---------------------------------------------------------------------
def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (uvicorn workers, mlflow's helpers)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        pid = int(entry)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self._stop_flag = threading.Event()

    def run(self) -> None:
        while not self._stop_flag.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(self.every_s)

    def stop(self) -> int:
        self._stop_flag.set()
        self.join()
        return self.peak


# --- servers ----------------------------------------------------------------------------------------
def server_command(kind: str, port: int, workdir: Path) -> list[str]:
    common = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{workdir / 'store.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
        "--workers",
        "1",
    ]
    if kind == "labtrack":
        return [str(REPO / ".venv" / "bin" / "python"), "-m", "labtrack", "server", *common]
    return [str(MLFLOW_VENV / "bin" / "mlflow"), "server", *common]


def start(kind: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, **QUIET}
    if kind == "labtrack":
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])
        )
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        server_command(kind, port, workdir),
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{kind} did not become healthy")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# --- transfers ---------------------------------------------------------------------------------------
def make_file(path: Path, size: int) -> str:
    """Pseudo-random content (one random MiB, numbered per block); returns its md5."""
    seed = os.urandom(BLOCK)
    digest = hashlib.md5()
    with open(path, "wb") as f:
        for n in range(0, size, BLOCK):
            block = (n.to_bytes(8, "little") + seed)[: min(BLOCK, size - n)]
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


URL = "/api/2.0/mlflow-artifacts/artifacts/0/bench/big.bin"


def upload(port: int, source: Path) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=BLOCK)
    started = time.perf_counter()
    with open(source, "rb") as f:
        conn.request(
            "PUT",
            URL,
            body=f,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(source.stat().st_size),
            },
        )
        resp = conn.getresponse()
        resp.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"upload failed: HTTP {resp.status}")
    return elapsed


def download(port: int, target: Path) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", URL)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"download failed: HTTP {resp.status}")
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    with open(target, "wb") as f:
        while n := resp.readinto(buffer):
            f.write(view[:n])
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


@dataclass
class Result:
    server: str
    size_mb: float
    idle_rss_mb: float
    peak_rss_mb: float
    upload_s: float
    download_s: float
    upload_mb_s: float
    download_mb_s: float
    checksum_ok: bool


def client_transfer(port: int, source: Path, target_dir: Path) -> tuple[float, float, Path]:
    """The same round trip with the stock client (which uses multipart when the server offers
    it and the file is >= 500 MB)."""
    os.environ.update(QUIET)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    run = client.create_run("0")
    started = time.perf_counter()
    client.log_artifact(run.info.run_id, str(source))
    up = time.perf_counter() - started
    started = time.perf_counter()
    local = client.download_artifacts(run.info.run_id, source.name, str(target_dir))
    return up, time.perf_counter() - started, Path(local)


def measure(kind: str, source: Path, digest: str, scratch: Path, via: str) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix=f"artifact-bench-{kind}-", dir=scratch))
    proc, port = start(kind, workdir)
    try:
        time.sleep(1.0)
        idle = tree_rss(proc.pid)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        if via == "client":
            up, down, target = client_transfer(port, source, workdir / "downloaded")
        else:
            target = workdir / "downloaded.bin"
            up = upload(port, source)
            down = download(port, target)
        peak = sampler.stop()
    finally:
        stop(proc)
    ok = md5_of(target) == digest
    size_mb = source.stat().st_size / 2**20
    shutil.rmtree(workdir, ignore_errors=True)
    return Result(
        kind,
        round(size_mb, 1),
        round(idle / 2**20, 1),
        round(peak / 2**20, 1),
        round(up, 2),
        round(down, 2),
        round(size_mb / up, 1),
        round(size_mb / down, 1),
        ok,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G, 1G, 500M (default 2G)")
    parser.add_argument("--servers", default="labtrack,mlflow", help="comma-separated")
    parser.add_argument(
        "--via",
        choices=("http", "client"),
        default="http",
        help="http: one raw streamed PUT and GET; client: the stock mlflow client",
    )
    parser.add_argument("--scratch", default=None, help="folder for the test file and servers")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    size = parse_size(args.size)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if "mlflow" in kinds and not (MLFLOW_VENV / "bin" / "mlflow").exists():
        print(f"skipping mlflow: no venv at {MLFLOW_VENV}", file=sys.stderr)
        kinds.remove("mlflow")
    scratch = Path(tempfile.mkdtemp(prefix="artifact-bench-", dir=args.scratch))
    source = scratch / "source.bin"
    print(f"writing a {size / 2**20:.0f} MiB test file in {scratch} ...", file=sys.stderr)
    digest = make_file(source, size)

    results = []
    try:
        for kind in kinds:
            print(f"{kind}: uploading and downloading ...", file=sys.stderr)
            results.append(measure(kind, source, digest, scratch, args.via))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    header = f"{'server':<10}{'size MiB':>10}{'idle RSS':>10}{'peak RSS':>10}"
    header += f"{'up MB/s':>10}{'down MB/s':>11}{'checksum':>10}"
    print(header)
    for r in results:
        print(
            f"{r.server:<10}{r.size_mb:>10.0f}{r.idle_rss_mb:>10.1f}{r.peak_rss_mb:>10.1f}"
            f"{r.upload_mb_s:>10.1f}{r.download_mb_s:>11.1f}{'ok' if r.checksum_ok else 'BAD':>10}"
        )
    by = {r.server: r for r in results}
    if "labtrack" in by and "mlflow" in by:
        lt, ml = by["labtrack"], by["mlflow"]
        print(
            f"labtrack / mlflow: upload x{lt.upload_mb_s / ml.upload_mb_s:.2f}, "
            f"download x{lt.download_mb_s / ml.download_mb_s:.2f}, "
            f"peak RSS x{lt.peak_rss_mb / ml.peak_rss_mb:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.checksum_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
