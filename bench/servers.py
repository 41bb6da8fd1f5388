"""Start, watch and stop the servers under test.

Each server kind is one small `ServerKind` subclass: how to install it, the command line that
starts it, and the URL that says it is ready. Everything else (ports, temp dirs, databases,
readiness, RSS sampling, shutdown) is shared, so the comparison treats every server alike.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENVS_DIR = BENCH_DIR / ".venvs"
PG_ADMIN_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE_URI = "postgresql://postgres@127.0.0.1:5432"

# Keep every process off the network: MLflow 3.x sends usage telemetry unless told not to.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class ServerError(RuntimeError):
    """A server could not be installed, started or reached."""


@dataclass
class Layout:
    """Where one server instance keeps its data for the duration of a benchmark."""

    workdir: Path
    store_uri: str
    artifacts: Path
    port: int
    workers: int


class ServerKind(ABC):
    """One kind of server under test; subclasses say how to install and launch it."""

    name: str = ""
    health_path: str = "/health"
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 20.0

    def ensure_installed(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Install the server if needed (default: nothing to install)."""

    @abstractmethod
    def argv(self, layout: Layout) -> list[str]:
        """The command line that starts the server in the foreground."""

    def env(self) -> dict[str, str]:
        """Extra environment variables for the server process."""
        return {}

    def sqlite_uri(self, workdir: Path) -> str:
        """The store URI for a fresh SQLite database inside `workdir`."""
        return f"sqlite:///{workdir / f'{self.name}.db'}"

    def version(self) -> str:
        """A version string for the report, best effort."""
        return "?"


class VenvServerKind(ServerKind):
    """A server installed with pip into its own venv under bench/.venvs/<name>."""

    requirements: tuple[str, ...] = ()
    postgres_requirements: tuple[str, ...] = ()

    def __init__(self, with_postgres: bool = False) -> None:
        self.with_postgres = with_postgres

    @property
    def venv(self) -> Path:
        return VENVS_DIR / self.name

    def bin(self, tool: str) -> str:
        return str(self.venv / "bin" / tool)

    def ensure_installed(self) -> None:
        """Create the venv once; a marker file records what was installed so we reuse it."""
        wanted = list(self.requirements)
        if self.with_postgres:
            wanted += list(self.postgres_requirements)
        marker = self.venv / ".bench-installed"
        have = marker.read_text().split() if marker.exists() else []
        if set(wanted) <= set(have):
            return
        if not (self.venv / "bin" / "python").exists():
            print(f"[setup] creating {self.venv}", flush=True)
            base_python = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base_python, "-m", "venv", str(self.venv)], check=True)
        print(f"[setup] pip install {' '.join(wanted)} into {self.venv}", flush=True)
        subprocess.run(
            [self.bin("python"), "-m", "pip", "install", "-q", *wanted],
            check=True,
            env={**os.environ, **QUIET_ENV},
        )
        marker.write_text("\n".join(sorted(set(wanted) | set(have))) + "\n")


class MlflowServer(VenvServerKind):
    """The stock `mlflow server` (Flask app under uvicorn), from its own pinned venv."""

    name = "mlflow"
    start_timeout_s = 120.0
    requirements = ("mlflow==3.17.2",)
    # SQLAlchemy 2.1 (what mlflow 3.17.2 pulls in) maps postgresql:// to psycopg 3, not psycopg2.
    postgres_requirements = ("psycopg[binary]",)

    def argv(self, layout: Layout) -> list[str]:
        return [
            self.bin("mlflow"),
            "server",
            "--backend-store-uri",
            layout.store_uri,
            "--artifacts-destination",
            str(layout.artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(layout.port),
            "--workers",
            str(layout.workers),
        ]

    def version(self) -> str:
        out = subprocess.run(
            [self.bin("python"), "-c", "import mlflow; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
            env={**os.environ, **QUIET_ENV},
        )
        return out.stdout.strip() or "?"


class LabtrackServer(ServerKind):
    """labtrack from this repo, run by the repo's own venv python."""

    name = "labtrack"
    start_timeout_s = 60.0

    def __init__(self, python: str) -> None:
        self.python = python

    def argv(self, layout: Layout) -> list[str]:
        return [
            self.python,
            "-m",
            "labtrack",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(layout.port),
            "--backend-store-uri",
            layout.store_uri,
            "--artifacts-destination",
            str(layout.artifacts),
            "--workers",
            str(layout.workers),
        ]

    def env(self) -> dict[str, str]:
        # Run the working tree even when the venv has no (editable) install of labtrack.
        src = str(REPO_DIR / "src")
        return {"PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}

    def version(self) -> str:
        out = subprocess.run(
            [self.python, "-c", "import labtrack; print(labtrack.__version__)"],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env()},
        )
        return out.stdout.strip() or "?"


class FastTrackMLServer(VenvServerKind):
    """FastTrackML, the Go rewrite of the MLflow tracking server (PyPI `fasttrackml` ships `fml`)."""

    name = "fasttrackml"
    requirements = ("fasttrackml==0.6.0",)

    def sqlite_uri(self, workdir: Path) -> str:
        # Go's URL parser: sqlite:// + an absolute path (empty authority).
        return f"sqlite://{workdir / 'fasttrackml.db'}"

    def argv(self, layout: Layout) -> list[str]:
        return [
            self.bin("fml"),
            "server",
            "--listen-address",
            f"127.0.0.1:{layout.port}",
            "--database-uri",
            layout.store_uri,
            "--default-artifact-root",
            str(layout.artifacts),
            "--log-level",
            "warning",
        ]

    def version(self) -> str:
        out = subprocess.run([self.bin("fml"), "--version"], capture_output=True, text=True)
        return (out.stdout.strip().split() or ["?"])[-1]


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- process tree / RSS

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _parent_map() -> dict[int, int]:
    """pid -> ppid for every live process, read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry.name)] = int(rest[1])
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and all of its descendants (children re-parented elsewhere are lost, by design)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parent_map().items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _statm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def _smaps_pss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        for line in f:
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class TreeUsage:
    """Memory and CPU of a process tree at one instant."""

    rss: int  # Sum of RSS: counts pages shared by forked workers once per process.
    pss: int  # Sum of PSS: shared pages split between sharers, so the tree total is honest.
    cpu_s: float  # user+system CPU seconds of the live processes in the tree.
    processes: int


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _sum(read: Callable[[int], float], pids: list[int]) -> float:
    """Sum a per-process reading, skipping processes that vanished meanwhile."""
    total = 0.0
    for pid in pids:
        try:
            total += read(pid)
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_usage(root: int) -> TreeUsage:
    """RSS, PSS and CPU summed over `root` and its descendants."""
    pids = [p for p in process_tree(root) if _alive(p)]
    return TreeUsage(
        rss=int(_sum(_statm_rss, pids)),
        pss=int(_sum(_smaps_pss, pids)),
        cpu_s=_sum(_cpu_seconds, pids),
        processes=len(pids),
    )


class UsageSampler(threading.Thread):
    """Tracks peak memory of the tree in the background, cheaply.

    RSS (statm) costs well under a millisecond, so it is sampled every 0.25 s. PSS needs
    smaps_rollup, which walks page tables and costs tens of ms of CPU on a big tree, so it is
    sampled every 5 s; the process list is refreshed every second. The thread's own CPU is
    recorded so the harness can leave it out of the client's CPU figure.
    """

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True, name="usage-sampler")
        self.root = root
        self.peak_rss = 0
        self.peak_pss = 0
        self.own_cpu_s = 0.0
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def _record(self, rss: int, pss: int = 0) -> None:
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)

    def sample(self) -> TreeUsage:
        """A full reading (used between workloads); also feeds the peaks."""
        usage = tree_usage(self.root)
        self._record(usage.rss, usage.pss)
        return usage

    def run(self) -> None:
        pids: list[int] = []
        next_tree = next_pss = 0.0
        while not self._stop_event.wait(0.25):
            now = time.monotonic()
            if now >= next_tree:
                pids, next_tree = process_tree(self.root), now + 1.0
            pss = 0
            if now >= next_pss:
                pss, next_pss = int(_sum(_smaps_pss, pids)), now + 5.0
            self._record(int(_sum(_statm_rss, pids)), pss)
            self.own_cpu_s = time.thread_time()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def settle(root: int, min_s: float = 2.0, max_s: float = 20.0) -> TreeUsage:
    """Wait until start-up side work (e.g. MLflow's job-runner processes) stops changing the tree.

    "Idle" is taken once two samples a second apart have the same process count and RSS
    within 2%, after at least `min_s`, or at `max_s` whatever happens.
    """
    time.sleep(min_s)
    deadline = time.monotonic() + max_s - min_s
    last = tree_usage(root)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = tree_usage(root)
        if now.processes == last.processes and abs(now.rss - last.rss) <= 0.02 * last.rss:
            return now
        last = now
    return last


# ---------------------------------------------------------------------------- databases


def _pg_execute(sql: str) -> None:
    """Run one statement against the admin database, outside a transaction (CREATE DATABASE)."""
    try:
        import psycopg
    except ImportError:
        psql = shutil.which("psql")
        if not psql:
            raise ServerError("need psycopg or psql to manage PostgreSQL databases") from None
        subprocess.run([psql, PG_ADMIN_URI, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)
        return
    with psycopg.connect(PG_ADMIN_URI, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def database(kind: ServerKind, backend: str, workdir: Path) -> Iterator[str]:
    """Yield a store URI for a fresh database; PostgreSQL ones are dropped afterwards."""
    if backend == "sqlite":
        yield kind.sqlite_uri(workdir)
        return
    if backend != "postgresql":
        raise ServerError(f"unknown backend {backend!r}")
    name = f"bench_{kind.name}_{secrets.token_hex(4)}"
    _pg_execute(f'CREATE DATABASE "{name}"')
    # Every server starts on a flushed cluster: without this, the buffers the previous server
    # dirtied (W7 writes gigabytes) are written back during the next server's first workloads.
    _pg_execute("CHECKPOINT")
    try:
        yield f"{PG_BASE_URI}/{name}"
    finally:
        _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- running server


@dataclass
class RunningServer:
    """A live server: its URL plus what we measured about the process."""

    kind: ServerKind
    proc: subprocess.Popen[bytes]
    layout: Layout
    log_path: Path
    startup_s: float = 0.0
    idle: TreeUsage | None = None
    sampler: UsageSampler | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.port}"

    def usage(self) -> TreeUsage:
        """Current usage, also fed into the peak tracking."""
        assert self.sampler is not None
        return self.sampler.sample()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _health_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _wait_ready(server: RunningServer, started: float) -> None:
    """Poll the health URL until 200; fail fast if the process dies first."""
    deadline = started + server.kind.start_timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServerError(
                f"{server.kind.name} exited with {server.proc.returncode} before it was ready:\n"
                + server.log_tail()
            )
        if _health_ok(server.layout.port, server.kind.health_path):
            return
        time.sleep(0.1)
    raise ServerError(
        f"{server.kind.name} not ready after {server.kind.start_timeout_s:.0f}s:\n"
        + server.log_tail()
    )


def _signal_tree(pids: list[int], pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    for pid in pids:  # Stragglers that left the process group.
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop(server: RunningServer) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is still alive after a timeout."""
    if server.sampler:
        server.sampler.stop()
    proc = server.proc
    pids = process_tree(proc.pid)
    if proc.poll() is None:
        _signal_tree(pids, proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=server.kind.stop_timeout_s)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + server.kind.stop_timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids if p != proc.pid):
        time.sleep(0.1)
    _signal_tree([p for p in pids if _alive(p)], proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


@contextmanager
def running(
    kind: ServerKind, backend: str, workers: int, keep_dir: bool = False
) -> Iterator[RunningServer]:
    """Start `kind` on a fresh database and temp dir, yield it ready, always stop it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind.name}-"))
    try:
        with database(kind, backend, workdir) as store_uri:
            layout = Layout(workdir, store_uri, workdir / "art", free_port(), workers)
            log_path = workdir / "server.log"
            with open(log_path, "wb") as log:
                started = time.monotonic()
                proc = subprocess.Popen(
                    kind.argv(layout),
                    cwd=workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **QUIET_ENV, **kind.env()},
                    start_new_session=True,  # Own process group, so one killpg stops it all.
                )
            server = RunningServer(kind, proc, layout, log_path)
            try:
                _wait_ready(server, started)
                server.startup_s = time.monotonic() - started
                server.idle = settle(proc.pid)
                server.sampler = UsageSampler(proc.pid)
                server.sampler.sample()
                server.sampler.start()
                yield server
            finally:
                stop(server)
    finally:
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
