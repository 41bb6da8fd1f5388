"""Many writers at once (a Dask fan-out): zero errors, zero lost or duplicated writes.

64 threads each create runs and log into them over their own keep-alive connection, mixing
log-batch, single log-metric calls and params, while the server commits them together.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import API, unique

WRITERS = 64
RUNS_PER_WRITER = 3
STEPS = 20

pytestmark = [pytest.mark.slow, pytest.mark.labtrack_only]


def _writer(url: str, experiment_id: str, writer: int, errors: list[str]) -> list[str]:
    run_ids = []
    with httpx.Client(base_url=url + API, timeout=120) as http:

        def post(path: str, body: dict) -> dict:
            r = http.post(path, json=body)
            if r.status_code != 200:
                errors.append(f"{path} -> {r.status_code} {r.text[:200]}")
                return {}
            return r.json()

        for k in range(RUNS_PER_WRITER):
            run = post(
                "runs/create", {"experiment_id": experiment_id, "run_name": f"w{writer}-{k}"}
            )
            if not run:
                continue
            run_id = run["run"]["info"]["run_id"]
            run_ids.append(run_id)
            post(
                "runs/log-batch",
                {
                    "run_id": run_id,
                    "params": [{"key": f"p{i}", "value": str(i)} for i in range(5)],
                    "metrics": [
                        {"key": "batch", "value": s, "timestamp": 1000 + s, "step": s}
                        for s in range(STEPS)
                    ],
                },
            )
            for s in range(STEPS):
                post(
                    "runs/log-metric",
                    {
                        "run_id": run_id,
                        "key": "single",
                        "value": s,
                        "timestamp": 1000 + s,
                        "step": s,
                    },
                )
            post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 5000})
    return run_ids


def test_64_concurrent_writers_lose_nothing(api, server):
    experiment_id = api.create_experiment(unique("fanout"))
    errors: list[str] = []
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [
            pool.submit(_writer, server.url, experiment_id, w, errors) for w in range(WRITERS)
        ]
        created = [run_id for f in futures for run_id in f.result()]
    assert errors == []
    assert len(created) == len(set(created)) == WRITERS * RUNS_PER_WRITER

    found, token = [], None
    while True:
        body = {"experiment_ids": [experiment_id], "max_results": 50, "page_token": token}
        page = api.post("runs/search", {k: v for k, v in body.items() if v is not None})
        found += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            break
    assert sorted(r["info"]["run_id"] for r in found) == sorted(created)
    for run in found:
        assert run["info"]["status"] == "FINISHED"
        assert len(run["data"]["params"]) == 5
        latest = {m["key"]: (m["step"], m["value"]) for m in run["data"]["metrics"]}
        assert latest == {"batch": (STEPS - 1, STEPS - 1), "single": (STEPS - 1, STEPS - 1)}
    sample = found[0]["info"]["run_id"]
    for key in ("batch", "single"):
        history = api.get("metrics/get-history", run_id=sample, metric_key=key)["metrics"]
        assert [m["step"] for m in history] == list(range(STEPS))
