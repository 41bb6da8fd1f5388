"""Metric history: full history, paging, sampled bulk-interval, UI bulk endpoint (api reference §4.3)."""

from __future__ import annotations

import pytest

N_LONG = 30_000
SHORT_STEPS = list(range(0, 50, 5))  # 10 points


def _point(step: int) -> dict:
    return {"key": "m", "value": step * 0.5, "timestamp": 1_000_000 + step, "step": step}


@pytest.fixture(scope="module")
def short_run(api):
    """A run with a 10-point series 'm' (steps 0, 5, ..., 45; value == step)."""
    exp_id = api.create_experiment()
    short_id = api.create_run(exp_id)["info"]["run_id"]
    api.log_batch(short_id, metrics=[{**_point(s), "value": float(s)} for s in SHORT_STEPS])
    return exp_id, short_id


@pytest.fixture(scope="module")
def long_run(api, short_run):
    """A run with a 30,000-point series 'm', seeded with 1,000-metric log-batch calls; plus short_run."""
    exp_id, short_id = short_run
    long_id = api.create_run(exp_id)["info"]["run_id"]
    # send the batches in shuffled chunk order: the server must sort, not just replay insertion order
    chunks = list(range(0, N_LONG, 1000))
    chunks = chunks[1::2] + chunks[::2]
    for start in chunks:
        api.log_batch(long_id, metrics=[_point(s) for s in range(start, start + 1000)])
    return long_id, short_id


def _strip(metrics):
    return [(m["key"], m["value"], m["timestamp"], m["step"]) for m in metrics]


EXPECTED_LONG = [("m", s * 0.5, 1_000_000 + s, s) for s in range(N_LONG)]


@pytest.mark.slow
def test_client_get_metric_history_is_exact(client, long_run):
    long_id, _ = long_run
    hist = client.get_metric_history(long_id, "m")
    assert [(m.key, m.value, m.timestamp, m.step) for m in hist] == EXPECTED_LONG


@pytest.mark.slow
def test_raw_history_single_page_without_max_results(api, long_run):
    long_id, _ = long_run
    resp = api.get("metrics/get-history", run_id=long_id, metric_key="m")
    assert _strip(resp["metrics"]) == EXPECTED_LONG
    assert not resp.get("next_page_token")


@pytest.mark.slow
def test_raw_history_paging(api, long_run):
    long_id, _ = long_run
    got, sizes = [], []
    token = None
    while True:
        params = {"run_id": long_id, "run_uuid": long_id, "metric_key": "m", "max_results": 7000}
        if token:
            params["page_token"] = token
        resp = api.get("metrics/get-history", **params)
        sizes.append(len(resp["metrics"]))
        got += resp["metrics"]
        token = resp.get("next_page_token")
        if not token:
            break
        assert len(sizes) < 100
    assert sizes == [7000, 7000, 7000, 7000, 2000]
    assert _strip(got) == EXPECTED_LONG


@pytest.mark.slow
def test_history_last_page_exactly_full(api, long_run):
    long_id, _ = long_run
    first = api.get("metrics/get-history", run_id=long_id, metric_key="m", max_results=15000)
    assert len(first["metrics"]) == 15000 and first["next_page_token"]
    second = api.get(
        "metrics/get-history",
        run_id=long_id,
        metric_key="m",
        max_results=15000,
        page_token=first["next_page_token"],
    )
    assert len(second["metrics"]) == 15000
    assert _strip(first["metrics"] + second["metrics"]) == EXPECTED_LONG
    if second.get("next_page_token"):
        third = api.get(
            "metrics/get-history",
            run_id=long_id,
            metric_key="m",
            max_results=15000,
            page_token=second["next_page_token"],
        )
        assert not third.get("metrics")
        assert not third.get("next_page_token")


def test_history_errors_and_empty(api, short_run):
    _, short_id = short_run
    assert (
        api.get("metrics/get-history", run_id=short_id, metric_key="nope").get("metrics", []) == []
    )
    api.error(
        "GET",
        "metrics/get-history",
        params={"run_id": short_id},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "GET",
        "metrics/get-history",
        params={"run_id": short_id, "metric_key": "m", "max_results": 0},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "GET",
        "metrics/get-history",
        params={"run_id": short_id, "metric_key": "m", "page_token": "garbage"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_history_of_unknown_run_is_empty(api):
    """MLflow answers 200 with no metrics (not 404) for a run id it does not know."""
    resp = api.get("metrics/get-history", run_id="0" * 32, metric_key="m")
    assert resp.get("metrics", []) == []


def test_history_via_ajax_mirror(api, short_run):
    _, short_id = short_run
    resp = api.ok(
        "GET",
        "/ajax-api/2.0/mlflow/metrics/get-history",
        params={"run_id": short_id, "metric_key": "m"},
    )
    assert [m["step"] for m in resp["metrics"]] == SHORT_STEPS


# --------------------------------------------------------------------------------------------
# get-history-bulk-interval (sampled, for the UI charts)
# --------------------------------------------------------------------------------------------


def _by_run(metrics):
    out: dict[str, list] = {}
    for m in metrics:
        assert set(m) >= {"key", "value", "timestamp", "step", "run_id"}, m
        out.setdefault(m["run_id"], []).append(m)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("max_results", [10, 100, None])
def test_bulk_interval_bounded_with_first_and_last(api, long_run, max_results):
    long_id, short_id = long_run
    params = {"run_ids": [long_id, short_id], "metric_key": "m"}
    if max_results:
        params["max_results"] = max_results
    limit = max_results or 2500
    runs = _by_run(api.get("metrics/get-history-bulk-interval", **params)["metrics"])
    assert set(runs) == {long_id, short_id}

    steps = [m["step"] for m in runs[long_id]]
    assert 2 <= len(steps) <= limit
    assert steps == sorted(steps)
    assert steps[0] == 0 and steps[-1] == N_LONG - 1
    for m in runs[long_id]:
        assert (
            m["key"] == "m"
            and m["value"] == m["step"] * 0.5
            and m["timestamp"] == 1_000_000 + m["step"]
        )

    assert [
        m["step"] for m in runs[short_id]
    ] == SHORT_STEPS  # fewer points than the limit: all of them


@pytest.mark.slow
def test_bulk_interval_step_window(api, long_run):
    long_id, _ = long_run
    resp = api.get(
        "metrics/get-history-bulk-interval",
        run_ids=long_id,
        metric_key="m",
        start_step=100,
        end_step=200,
        max_results=10,
    )
    steps = [m["step"] for m in resp["metrics"]]
    assert len(steps) <= 10
    assert steps == sorted(steps)
    assert steps[0] == 100 and steps[-1] == 200
    assert all(100 <= s <= 200 for s in steps)
    # the whole window when it is small enough
    resp = api.get(
        "metrics/get-history-bulk-interval",
        run_ids=long_id,
        metric_key="m",
        start_step=5,
        end_step=9,
    )
    assert [m["step"] for m in resp["metrics"]] == [5, 6, 7, 8, 9]


@pytest.mark.slow
def test_bulk_interval_long_sparse_series(api):
    """A series longer than the exact-sampling window, with gaps: every sampled step exists,
    both ends are kept, and a zoomed window stays inside its bounds."""
    run_id = api.create_run(api.create_experiment())["info"]["run_id"]
    steps = [s * 7 for s in range(30_000)]
    for start in range(0, len(steps), 1000):
        api.log_batch(run_id, metrics=[_point(s) for s in steps[start : start + 1000]])
    existing = set(steps)
    resp = api.get(
        "metrics/get-history-bulk-interval", run_ids=run_id, metric_key="m", max_results=100
    )
    got = [m["step"] for m in resp["metrics"]]
    assert got == sorted(set(got)) and set(got) <= existing
    assert got[0] == 0 and got[-1] == steps[-1]
    assert 50 <= len(got) <= 102
    resp = api.get(
        "metrics/get-history-bulk-interval",
        run_ids=run_id,
        metric_key="m",
        max_results=50,
        start_step=70_000,
        end_step=140_000,
    )
    got = [m["step"] for m in resp["metrics"]]
    assert set(got) <= existing and all(70_000 <= s <= 140_000 for s in got)
    assert got[0] == 70_000 and got[-1] == 140_000 and len(got) <= 52


@pytest.mark.slow
def test_whole_history_streams_nan_and_shared_timestamps(api):
    """Without max_results the whole series comes in one response, however many points;
    NaN values and points sharing a timestamp survive the chunk boundaries."""
    run_id = api.create_run(api.create_experiment())["info"]["run_id"]
    n = 52_000
    expected = []
    for start in range(0, n, 1000):
        batch = []
        for s in range(start, start + 1000):
            value = "NaN" if s % 7 == 0 else s * 0.25
            # two points per timestamp, so chunks may end between them
            batch.append({"key": "m", "value": value, "timestamp": 1_000 + s // 2, "step": s})
        api.log_batch(run_id, metrics=batch)
        expected += [(m["value"], m["timestamp"], m["step"]) for m in batch]
    resp = api.get("metrics/get-history", run_id=run_id, metric_key="m")
    assert not resp.get("next_page_token")
    assert [(m["value"], m["timestamp"], m["step"]) for m in resp["metrics"]] == expected


def test_bulk_interval_errors(api, short_run):
    _, short_id = short_run
    path = "metrics/get-history-bulk-interval"
    bad = [
        {"run_ids": short_id, "metric_key": "m", "start_step": 1},  # both or neither
        {"run_ids": short_id, "metric_key": "m", "max_results": 0},
        {"run_ids": short_id, "metric_key": "m", "max_results": 2501},
        {"metric_key": "m"},
        {"run_ids": [short_id] * 101, "metric_key": "m"},
    ]
    for params in bad:
        api.error("GET", path, params=params, status=400, code="INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------------------------
# /ajax-api/2.0/mlflow/metrics/get-history-bulk (UI only, not in the protos)
# --------------------------------------------------------------------------------------------

BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"


def test_ajax_history_bulk_short(api, short_run):
    _, short_id = short_run
    other = api.create_run(api.create_experiment())["info"]["run_id"]
    api.log_batch(other, metrics=[{"key": "m", "value": 7.0, "timestamp": 5, "step": 1}])
    resp = api.ok("GET", BULK, params={"run_id": [short_id, other], "metric_key": "m"})
    runs = _by_run(resp["metrics"])
    assert [m["step"] for m in runs[short_id]] == SHORT_STEPS
    assert [(m["key"], m["value"], m["timestamp"], m["step"]) for m in runs[other]] == [
        ("m", 7.0, 5, 1)
    ]

    resp = api.ok("GET", BULK, params={"run_id": short_id, "metric_key": "m", "max_results": 3})
    assert [m["step"] for m in resp["metrics"]] == SHORT_STEPS[:3]


@pytest.mark.slow
def test_ajax_history_bulk_caps_at_25000(api, long_run):
    long_id, _ = long_run
    resp = api.ok("GET", BULK, params={"run_id": long_id, "metric_key": "m"})
    steps = [m["step"] for m in resp["metrics"]]
    assert steps == list(range(25_000))
