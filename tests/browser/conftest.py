"""Browser tests of the web UI (issue #6): headless Chromium driven by Playwright.

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); Playwright never downloads
a browser. Each module gets real ``labtrack server`` processes (authentication on, a bootstrap
admin) seeded through the HTTP API with experiments, nested runs, metric histories, artifacts of
every previewable kind and a registered model with an alias. Every test's page records the
requests the browser makes, and the test fails if one leaves the server.

Screenshots of every page go to ``tests/screenshots/`` (not committed) for a person to look at.
"""

from __future__ import annotations

import base64
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import ServerProcess, start_server

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
ADMIN = ("admin", "admin-password-123")
USER = ("bob", "bob-password-12345")
SHOTS = Path(__file__).resolve().parent.parent / "screenshots"
API = "/api/2.0/mlflow/"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed  # type: ignore[attr-defined]
    return report


# --- the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A Playwright page bound to one server, recording where its requests go."""

    def __init__(self, context: Any, srv: ServerProcess) -> None:
        self.context = context
        self.srv = srv
        self.page = context.new_page()
        self.page.set_default_timeout(15_000)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)

    def url_for(self, path: str) -> str:
        return self.srv.url + path

    def go(self, path: str) -> Any:
        return self.page.goto(self.url_for(path))

    def sign_in(self, user: tuple[str, str] = ADMIN, path: str = "/") -> None:
        self.go(path)
        self.page.fill("#username", user[0])
        self.page.fill("#password", user[1])
        self.page.click("#signin-submit")
        self.page.wait_for_selector(".topbar #nav-user")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(150)  # let charts and fonts settle
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)

    def outside_requests(self) -> list[str]:
        origin = urlsplit(self.srv.url)
        return [
            u
            for u in self.requests
            if not u.startswith(("data:", "blob:", "about:"))
            and urlsplit(u).netloc != origin.netloc
        ]


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``new_page(server)``: a fresh browser context (no cookies, no cache) on that server."""
    pages: list[Page] = []

    def make(srv: ServerProcess) -> Page:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = Page(context, srv)
        pages.append(page)
        return page

    yield make
    if getattr(request.node, "failed_call", False):  # what the page showed when it failed
        for i, page in enumerate(pages):
            page.shot(f"FAILED-{request.node.name}-{i}")
    for page in pages:
        outside = page.outside_requests()
        errors = page.errors
        page.context.close()
        assert not outside, f"requests left the server: {outside}"
        assert not errors, f"JavaScript errors: {errors}"


# --- servers and data ---------------------------------------------------------------------------
@dataclass
class UiServer:
    srv: ServerProcess
    http: httpx.Client
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.srv.url

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> dict:
        url = path if path.startswith("/") else API + path
        if method == "GET":
            r = self.http.get(url, params=params)
        else:
            r = self.http.request(method, url, json=body if body is not None else {})
        assert r.status_code == 200, f"{method} {path} -> {r.status_code}: {r.text[:300]}"
        return r.json() if r.content else {}

    def post(self, path: str, body: Any = None) -> dict:
        return self.call("POST", path, body)


def _basic(user: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(user).encode()).decode()}


def start_ui_server(static_prefix: str = "") -> UiServer:
    env = {"LABTRACK_ADMIN_USERNAME": ADMIN[0], "LABTRACK_ADMIN_PASSWORD": ADMIN[1]}
    srv = start_server("sqlite", target="labtrack", static_prefix=static_prefix, env=env)
    http = httpx.Client(base_url=srv.url, headers=_basic(ADMIN), timeout=60)
    return UiServer(srv, http)


def png(width: int = 40, height: int = 24) -> bytes:
    """A small valid PNG (a blue-to-green gradient), made without any imaging library."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((30, 90 + 6 * x % 160, 200 - 4 * y)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


ARTIFACTS = {
    "MLmodel": b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n",
    "metrics.json": b'{"accuracy": 0.93, "classes": ["a", "b"]}',
    "config.yaml": b"model: xgb\nlearning_rate: 0.1\n",
    "data/predictions.csv": b"id,label,score\n1,a,0.91\n2,b,0.12\n3,a,0.77\n",
    "data/features.tsv": b"name\tweight\nage\t0.4\nincome\t0.6\n",
    "plots/roc.png": png(),
    "report.html": b"<html><body><h1 id='report'>Model report</h1><script>document.title='x'</script></body></html>",
    "notes.txt": b"trained on the March snapshot\n" * 3,
    "logs/train.log": b"".join(b"step %d loss %.4f\n" % (i, 1 / (i + 1)) for i in range(40_000)),
}


def seed(ui: UiServer) -> None:
    """An experiment of 24 runs (one parent with three children), artifacts, a model."""
    now = int(time.time() * 1000)
    experiment_id = ui.post("experiments/create", {"name": "churn-model"})["experiment_id"]
    ui.post("experiments/create", {"name": "fraud-detection"})
    runs = []
    for i in range(24):
        run = ui.post(
            "runs/create",
            {"experiment_id": experiment_id, "run_name": f"trial-{i:02d}", "start_time": now + i},
        )["run"]
        run_id = run["info"]["run_id"]
        acc = round(0.80 + i * 0.008, 4)
        metrics = [
            {
                "key": "acc",
                "value": acc * (0.5 + 0.5 * s / 9),
                "timestamp": now + s * 1000,
                "step": s,
            }
            for s in range(10)
        ]
        metrics += [
            {"key": "loss", "value": 1.0 / (s + 1 + i), "timestamp": now + s * 1000, "step": s}
            for s in range(10)
        ]
        params = [
            {"key": "model", "value": ["xgb", "rf", "lr"][i % 3]},
            {"key": "lr", "value": str([0.1, 0.01, 0.001][i % 3])},
            {"key": "depth", "value": str(3 + i % 5)},
        ]
        tags = [{"key": "team", "value": "risk" if i % 2 else "growth"}]
        ui.post(
            "runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags}
        )
        ui.post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now + 60_000})
        runs.append(
            {"id": run_id, "name": f"trial-{i:02d}", "acc": acc, "model": params[0]["value"]}
        )
    parent = ui.post(
        "runs/create",
        {"experiment_id": experiment_id, "run_name": "sweep-parent", "start_time": now + 100},
    )["run"]["info"]["run_id"]
    children = []
    for c in range(3):
        child = ui.post(
            "runs/create",
            {
                "experiment_id": experiment_id,
                "run_name": f"sweep-child-{c}",
                "start_time": now + 50 + c,
                "tags": [{"key": "mlflow.parentRunId", "value": parent}],
            },
        )["run"]["info"]["run_id"]
        ui.post("runs/log-metric", {"run_id": child, "key": "acc", "value": 0.5, "timestamp": now})
        children.append(child)
    best = max(runs, key=lambda r: r["acc"])
    dataset = {
        "name": "churn-2026-03",
        "digest": "4f2a9c1e",
        "source_type": "local",
        "source": '{"uri": "/data/churn/2026-03.parquet"}',
        "schema": '{"mlflow_colspec": [{"name": "age", "type": "long"}]}',
    }
    ui.post(
        "runs/log-inputs",
        {
            "run_id": best["id"],
            "datasets": [
                {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}
            ],
        },
    )
    artifact_run = runs[5]["id"]
    for path, data in ARTIFACTS.items():
        r = ui.http.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{artifact_run}/artifacts/{path}",
            content=data,
        )
        assert r.status_code == 200, r.text
    ui.post("registered-models/create", {"name": "churn", "description": "Predicts churn."})
    for run in (runs[3], best):
        ui.post(
            "model-versions/create",
            {"name": "churn", "source": f"runs:/{run['id']}/model", "run_id": run["id"]},
        )
    ui.post("registered-models/alias", {"name": "churn", "alias": "champion", "version": "2"})
    ui.post("users/create", {"username": USER[0], "password": USER[1]})
    ui.ids.update(
        experiment_id=experiment_id,
        runs=runs,
        best=best,
        parent=parent,
        children=children,
        artifact_run=artifact_run,
    )


@pytest.fixture(scope="module")
def ui() -> Iterator[UiServer]:
    server = start_ui_server()
    try:
        seed(server)
        yield server
    finally:
        server.http.close()
        server.srv.stop()
