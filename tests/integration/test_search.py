"""runs/search: filter grammar, ordering, paging, view types (api reference §4.5)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.entities import ViewType


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------
# A small, hand-made experiment (fresh per test)
# --------------------------------------------------------------------------------------------

SMALL = [
    # name, start_time, metrics, params, tags
    (
        "r0",
        100,
        {"acc": 0.9, "loss": 0.1},
        {"lr": "0.1", "opt": "adam"},
        {"team": "alpha", "my.dot": "x"},
    ),
    ("r1", 200, {"acc": 0.5}, {"lr": "0.01"}, {"team": "beta"}),
    ("r2", 300, {"loss": 0.7}, {"opt": "sgd"}, {}),
    ("r3", 400, {}, {}, {"team": "alphabet"}),
]


def _make_small(api):
    exp_id = api.create_experiment()
    names = {}
    for name, start, metrics, params, tags in SMALL:
        run_id = api.create_run(exp_id, start_time=start, run_name=name, user_id=f"u{name}")[
            "info"
        ]["run_id"]
        names[run_id] = name
        api.log_batch(
            run_id,
            metrics=[{"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in metrics.items()],
            params=[{"key": k, "value": v} for k, v in params.items()],
            tags=[{"key": k, "value": v} for k, v in tags.items()],
        )
    return exp_id, names


@pytest.fixture(scope="module")
def small(api):
    """Read-only tests share one copy per backend."""
    return _make_small(api)


@pytest.fixture
def small_fresh(api):
    """For tests that modify the runs."""
    return _make_small(api)


def _search(api, exp_id, names, flt=None, order_by=None, **extra):
    body = {"experiment_ids": [exp_id], **extra}
    if flt is not None:
        body["filter"] = flt
    if order_by is not None:
        body["order_by"] = order_by
    resp = api.post("runs/search", body)
    return [names[r["info"]["run_id"]] for r in resp.get("runs", [])]


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("metrics.acc > 0.6", ["r0"]),
        ("metrics.acc >= 0.5", ["r1", "r0"]),
        ("metrics.acc != 0.9", ["r1"]),
        ("metrics.acc = 0.5", ["r1"]),
        ("metric.loss < 1", ["r2", "r0"]),
        ("metrics.loss <= 0.1", ["r0"]),
        ("params.lr = '0.1'", ["r0"]),
        ("params.lr != '0.1'", ["r1"]),
        ("params.opt LIKE 'a%'", ["r0"]),
        ("param.opt ILIKE 'A%'", ["r0"]),
        ("parameters.opt = 'sgd'", ["r2"]),
        ("params.lr IS NULL", ["r3", "r2"]),
        ("params.lr IS NOT NULL", ["r1", "r0"]),
        ("tags.team IS NULL", ["r2"]),
        ("tags.team IS NOT NULL", ["r3", "r1", "r0"]),
        ("tags.team LIKE 'alpha%'", ["r3", "r0"]),
        ("tags.team LIKE 'ALPHA%'", []),
        ("tags.team ILIKE 'ALPHA%'", ["r3", "r0"]),
        ("tags.team LIKE '%ta'", ["r1"]),
        ("tags.team LIKE 'alph_'", ["r0"]),
        ("tag.team = 'beta'", ["r1"]),
        ("tags.`my.dot` = 'x'", ["r0"]),
        ("tags.my.dot = 'x'", ["r0"]),
        ("tags.\"my.dot\" = 'x'", ["r0"]),
        ("tags.`mlflow.runName` = 'r1'", ["r1"]),
        ("tags.mlflow.runName LIKE 'r%'", ["r3", "r2", "r1", "r0"]),
        ('params.lr = "0.1"', ["r0"]),
        ("attributes.run_name = 'r2'", ["r2"]),
        ("run_name != 'r2'", ["r3", "r1", "r0"]),
        ("attributes.run_name LIKE 'r%'", ["r3", "r2", "r1", "r0"]),
        ("attributes.`run name` ILIKE 'R3'", ["r3"]),
        ("`Run name` = 'r3'", ["r3"]),
        ("attributes.start_time > 150", ["r3", "r2", "r1"]),
        ("attributes.start_time >= 200 AND attributes.start_time < 400", ["r2", "r1"]),
        ("attribute.start_time = 300", ["r2"]),
        ("created > 250", ["r3", "r2"]),
        ("attributes.status = 'RUNNING'", ["r3", "r2", "r1", "r0"]),
        ("attributes.status != 'RUNNING'", []),
        ("attributes.user_id = 'ur3'", ["r3"]),
        ("attr.user_id LIKE 'ur%'", ["r3", "r2", "r1", "r0"]),
        ("attributes.artifact_uri LIKE '%artifacts'", ["r3", "r2", "r1", "r0"]),
        ("metrics.acc = 0.9 and params.lr = '0.1' AND tags.team = 'alpha'", ["r0"]),
        ("metrics.acc > 0 AND metrics.loss > 0", ["r0"]),
        ("params.opt = 'adam' AND tags.team = 'beta'", []),
    ],
)
def test_filters(api, small, flt, expected):
    exp_id, names = small
    assert _search(api, exp_id, names, flt) == expected


def test_filter_run_id_in(api, small):
    exp_id, names = small
    by_name = {v: k for k, v in names.items()}
    flt = f"attributes.run_id IN ('{by_name['r0']}', '{by_name['r2']}')"
    assert _search(api, exp_id, names, flt) == ["r2", "r0"]
    flt = f"attributes.run_id NOT IN ('{by_name['r0']}')"
    assert _search(api, exp_id, names, flt) == ["r3", "r2", "r1"]
    assert _search(api, exp_id, names, f"attributes.run_id = '{by_name['r1']}'") == ["r1"]


def test_run_status_filter_after_update(api, small_fresh):
    exp_id, names = small_fresh
    by_name = {v: k for k, v in names.items()}
    api.post("runs/update", {"run_id": by_name["r1"], "status": "FINISHED", "end_time": 5000})
    assert _search(api, exp_id, names, "attributes.status = 'FINISHED'") == ["r1"]
    assert _search(api, exp_id, names, "attributes.end_time > 1000") == ["r1"]


@pytest.mark.parametrize(
    "order_by, expected",
    [
        (None, ["r3", "r2", "r1", "r0"]),  # default: start_time DESC
        (["metrics.acc DESC"], ["r0", "r1", "r3", "r2"]),  # runs without the metric last
        (["metrics.acc ASC"], ["r1", "r0", "r3", "r2"]),  # ... in both directions
        (["metrics.loss desc"], ["r2", "r0", "r3", "r1"]),
        (["params.opt"], ["r0", "r2", "r3", "r1"]),
        (["params.opt DESC"], ["r2", "r0", "r3", "r1"]),
        (["tags.team ASC"], ["r0", "r3", "r1", "r2"]),
        (["tags.team DESC", "start_time ASC"], ["r1", "r3", "r0", "r2"]),
        (["attributes.start_time ASC"], ["r0", "r1", "r2", "r3"]),
        (["start_time"], ["r0", "r1", "r2", "r3"]),
        (["run_name DESC"], ["r3", "r2", "r1", "r0"]),
        (["attribute.run_name"], ["r0", "r1", "r2", "r3"]),
        (["attributes.user_id desc"], ["r3", "r2", "r1", "r0"]),
        (["metrics.acc DESC", "metrics.loss DESC"], ["r0", "r1", "r2", "r3"]),
        (["tags.`my.dot` ASC"], ["r0", "r3", "r2", "r1"]),
    ],
)
def test_order_by(api, small, order_by, expected):
    exp_id, names = small
    assert _search(api, exp_id, names, order_by=order_by) == expected


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_order_by_metric_pages_agree_across_values_nan_and_missing(api, direction):
    """Values (ties by start time), then NaN, then no metric: every page size cuts it the same.

    A page inside the runs with values is answered by a shorter query than one that reaches
    past them (runs.search); small pages make every boundary fall inside a page.
    """
    exp_id = api.create_experiment()
    values = [0.5, None, "NaN", 0.5, 2.0, None, "NaN", -1.0]
    names = {}
    for i, value in enumerate(values):
        run_id = api.create_run(exp_id, start_time=1000 + i, run_name=f"v{i}")["info"]["run_id"]
        names[run_id] = i
        if value is not None:
            metric = {"key": "x", "value": value, "timestamp": 1, "step": 0}
            api.log_batch(run_id, metrics=[metric])
    finite = sorted(
        (i for i, v in enumerate(values) if isinstance(v, float)),
        key=lambda i: (values[i] if direction == "ASC" else -values[i], -i),
    )
    nan, missing = [6, 2], [5, 1]  # start_time DESC among equals
    body = {"experiment_ids": [exp_id], "order_by": [f"metrics.x {direction}"]}
    for size in (1, 2, 3, 100):
        seen, _ = _page_through(api, body, size)
        assert [names[r] for r in seen] == finite + nan + missing, size


def test_search_response_shape(api, small):
    exp_id, names = small
    resp = api.post(
        "runs/search", {"experiment_ids": [exp_id], "filter": "attributes.run_name = 'r0'"}
    )
    assert "next_page_token" not in resp
    (run,) = resp["runs"]
    info = run["info"]
    assert info["run_id"] == info["run_uuid"]
    assert info["run_name"] == "r0"
    data = run["data"]
    assert {m["key"]: m["value"] for m in data["metrics"]} == {"acc": 0.9, "loss": 0.1}
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.1", "opt": "adam"}
    assert {t["key"]: t["value"] for t in data["tags"]}["team"] == "alpha"


def test_search_several_experiments(api):
    a, b = api.create_experiment(), api.create_experiment()
    ra = api.create_run(a, start_time=1)["info"]["run_id"]
    rb = api.create_run(b, start_time=2)["info"]["run_id"]
    resp = api.post("runs/search", {"experiment_ids": [a, b]})
    assert [r["info"]["run_id"] for r in resp["runs"]] == [rb, ra]
    assert api.post("runs/search", {"experiment_ids": []}) == {}
    assert api.post("runs/search", {}) == {}


def test_run_view_type(api, client, small_fresh):
    exp_id, names = small_fresh
    by_name = {v: k for k, v in names.items()}
    api.post("runs/delete", {"run_id": by_name["r1"]})
    assert _search(api, exp_id, names) == ["r3", "r2", "r0"]
    assert _search(api, exp_id, names, run_view_type="ACTIVE_ONLY") == ["r3", "r2", "r0"]
    assert _search(api, exp_id, names, run_view_type="DELETED_ONLY") == ["r1"]
    assert _search(api, exp_id, names, run_view_type="ALL") == ["r3", "r2", "r1", "r0"]
    assert _search(api, exp_id, names, run_view_type=2) == ["r1"]  # enum number
    found = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_name for r in found] == ["r1"]
    assert found[0].info.lifecycle_stage == "deleted"


def _seed_datasets(api):
    exp_id = api.create_experiment()

    def ds(name, digest):
        return {"name": name, "digest": digest, "source_type": "code", "source": "{}"}

    r_train = api.create_run(exp_id, start_time=10)["info"]["run_id"]
    r_eval = api.create_run(exp_id, start_time=20)["info"]["run_id"]
    api.create_run(exp_id, start_time=30)  # no datasets
    api.post(
        "runs/log-inputs",
        {
            "run_id": r_train,
            "datasets": [
                {
                    "tags": [{"key": "mlflow.data.context", "value": "training"}],
                    "dataset": ds("tiny", "aaaa"),
                }
            ],
        },
    )
    api.post(
        "runs/log-inputs",
        {
            "run_id": r_eval,
            "datasets": [
                {
                    "tags": [{"key": "mlflow.data.context", "value": "eval"}],
                    "dataset": ds("tiny", "bbbb"),
                },
                {"dataset": ds("other", "cccc")},
            ],
        },
    )
    return exp_id, r_train, r_eval


def test_datasets_filter(api):
    exp_id, r_train, r_eval = _seed_datasets(api)
    names = {r_train: "train", r_eval: "eval"}
    assert _search(api, exp_id, names, "datasets.name = 'tiny'") == ["eval", "train"]
    assert _search(api, exp_id, names, "datasets.context = 'training'") == ["train"]
    assert _search(api, exp_id, names, "datasets.digest IN ('bbbb', 'cccc')") == ["eval"]
    assert _search(api, exp_id, names, "dataset.name LIKE 'ti%'") == ["eval", "train"]
    assert _search(api, exp_id, names, "datasets.name ILIKE 'OTH%'") == ["eval"]
    assert _search(api, exp_id, names, "datasets.context = 'eval' AND datasets.name = 'tiny'") == [
        "eval"
    ]
    assert _search(api, exp_id, names, "datasets.digest = 'aaaa' AND params.x IS NULL") == ["train"]


def test_search_datasets_ajax(api):
    """POST /ajax-api/2.0/mlflow/experiments/search-datasets (the UI's dataset summaries)."""
    exp_id, _, _ = _seed_datasets(api)
    summaries = api.post(
        "/ajax-api/2.0/mlflow/experiments/search-datasets", {"experiment_ids": [exp_id]}
    )
    got = sorted((s["name"], s["digest"], s.get("context")) for s in summaries["dataset_summaries"])
    assert got == [("other", "cccc", None), ("tiny", "aaaa", "training"), ("tiny", "bbbb", "eval")]
    assert all(s["experiment_id"] == exp_id for s in summaries["dataset_summaries"])


@pytest.mark.parametrize(
    "body",
    [
        {"filter": "metrics.m >> 1"},
        {"filter": "bogus.x = 1"},
        {"filter": "metrics.acc"},
        {"filter": "params.lr = "},
        {"filter": "tags.team ~ 'x'"},
        {"filter": "attributes.foo = 'x'"},
        {"filter": "params.lr IS 'x'"},
        {"filter": "metrics.acc > '0.5'"},
        {"filter": "metrics.acc IS NULL"},
        {"filter": "attributes.end_time IS NULL"},
        {"filter": "params.lr = 0.1"},
        {"filter": "params.lr IN ('0.1', '0.01')"},
        {"filter": "attributes.status IN ('RUNNING')"},
        {"order_by": ["metrics.m sideways"]},
        {"order_by": ["attributes.bogus"]},
        {"order_by": ["bogus.acc"]},
        {"max_results": 0},
        {"max_results": 50001},
        {"page_token": "garbage"},
    ],
    ids=lambda b: str(b)[:40],
)
def test_bad_search_requests(api, small, body):
    exp_id, _ = small
    api.error(
        "POST",
        "runs/search",
        json={"experiment_ids": [exp_id], **body},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_or_and_parentheses_refused_by_mlflow_grammar(api, small, is_mlflow):
    exp_id, _ = small
    if not is_mlflow:
        pytest.skip("labtrack extends the grammar with OR and parentheses")
    for flt in ("metrics.acc > 0.6 OR metrics.loss > 0.5", "(metrics.acc > 0.6)"):
        api.error(
            "POST",
            "runs/search",
            json={"experiment_ids": [exp_id], "filter": flt},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )


@pytest.mark.labtrack_only
@pytest.mark.parametrize(
    "flt, expected",
    [
        ("metrics.acc > 0.6 OR metrics.loss > 0.5", ["r2", "r0"]),
        ("metrics.acc > 0.6 or metrics.loss > 0.5", ["r2", "r0"]),
        ("(metrics.acc > 0.6)", ["r0"]),
        ("tags.team = 'beta' OR params.opt = 'sgd' OR run_name = 'r3'", ["r3", "r2", "r1"]),
        # AND binds tighter than OR
        ("params.opt = 'adam' OR params.opt = 'sgd' AND metrics.loss > 0.5", ["r2", "r0"]),
        ("(params.opt = 'adam' OR params.opt = 'sgd') AND metrics.loss > 0.5", ["r2"]),
        ("tags.team LIKE 'alpha%' AND (metrics.acc > 0.5 OR tags.team = 'alphabet')", ["r3", "r0"]),
        ("((tags.team = 'beta'))", ["r1"]),
        (
            "(tags.team IS NULL OR tags.team = 'beta') AND attributes.start_time >= 200",
            ["r2", "r1"],
        ),
    ],
)
def test_or_and_parentheses_extension(api, small, flt, expected):
    exp_id, names = small
    assert _search(api, exp_id, names, flt) == expected


@pytest.mark.labtrack_only
@pytest.mark.parametrize(
    "flt",
    [
        "(metrics.acc > 0.6",
        "metrics.acc > 0.6)",
        "metrics.acc > 0.6 OR",
        "OR metrics.acc > 0.6",
        "()",
    ],
)
def test_or_and_parentheses_syntax_errors(api, small, flt):
    exp_id, _ = small
    api.error(
        "POST",
        "runs/search",
        json={"experiment_ids": [exp_id], "filter": flt},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_client_search_runs(client, small):
    exp_id, _ = small
    runs = client.search_runs(
        [exp_id], filter_string="metrics.acc > 0", order_by=["metrics.acc DESC"]
    )
    assert [r.info.run_name for r in runs] == ["r0", "r1"]
    assert runs[0].data.metrics == {"acc": 0.9, "loss": 0.1}
    assert runs[0].data.params == {"lr": "0.1", "opt": "adam"}
    page = client.search_runs([exp_id], max_results=3)
    assert len(page) == 3 and page.token
    rest = client.search_runs([exp_id], max_results=3, page_token=page.token)
    assert [r.info.run_name for r in rest] == ["r0"] and not rest.token


# --------------------------------------------------------------------------------------------
# Bulk paging: 2,100 runs seeded over raw HTTP (module-scoped, once per backend)
# --------------------------------------------------------------------------------------------

N_BULK = 2100


def _bulk_deleted(i: int) -> bool:
    return i % 50 == 0


def _bulk_has_metric(i: int) -> bool:
    return i % 3 != 0


@pytest.fixture(scope="module")
def bulk(api):
    exp_id = api.create_experiment()
    base = now_ms() - 10_000_000

    def seed(i):
        run = api.create_run(
            exp_id,
            start_time=base + i,
            run_name=f"bulk-{i:05d}",
            tags=[{"key": "group", "value": f"g{i % 7}"}, {"key": "idx", "value": str(i)}],
        )
        run_id = run["info"]["run_id"]
        metrics = (
            [{"key": "m", "value": float(i), "timestamp": 1, "step": 0}]
            if _bulk_has_metric(i)
            else []
        )
        api.log_batch(run_id, metrics=metrics, params=[{"key": "p", "value": f"{i:05d}"}])
        if _bulk_deleted(i):
            api.post("runs/delete", {"run_id": run_id})
        return run_id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(seed, range(N_BULK)))
    return exp_id, ids


def _page_through(api, body, page_size):
    seen, pages = [], []
    token = None
    while True:
        req = {**body, "max_results": page_size}
        if token is not None:
            req["page_token"] = token
        resp = api.post("runs/search", req)
        runs = resp.get("runs", [])
        pages.append(len(runs))
        seen += [r["info"]["run_id"] for r in runs]
        token = resp.get("next_page_token")
        if not token:
            assert "next_page_token" not in resp or resp["next_page_token"] == ""
            break
        assert len(pages) < 1000
    return seen, pages


@pytest.mark.slow
def test_bulk_paging_default_order(api, bulk):
    exp_id, ids = bulk
    active = [ids[i] for i in range(N_BULK) if not _bulk_deleted(i)]
    seen, pages = _page_through(api, {"experiment_ids": [exp_id]}, 500)
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert seen == active[::-1]  # start_time DESC
    assert pages == [500, 500, 500, 500, len(active) - 2000]


@pytest.mark.slow
def test_bulk_paging_filtered(api, bulk):
    exp_id, ids = bulk
    want = [ids[i] for i in range(N_BULK) if i % 7 == 3 and not _bulk_deleted(i)]
    seen, pages = _page_through(
        api, {"experiment_ids": [exp_id], "filter": "tags.group = 'g3'"}, 100
    )
    assert seen == want[::-1]
    assert sum(pages) == len(want) and all(p == 100 for p in pages[:-1])


@pytest.mark.slow
def test_bulk_paging_metric_order_nulls_last(api, bulk):
    exp_id, ids = bulk
    active = [i for i in range(N_BULK) if not _bulk_deleted(i)]
    with_metric = sorted((i for i in active if _bulk_has_metric(i)), reverse=True)
    without = sorted(
        (i for i in active if not _bulk_has_metric(i)), reverse=True
    )  # tie-break: start_time DESC
    seen, _ = _page_through(api, {"experiment_ids": [exp_id], "order_by": ["metrics.m DESC"]}, 333)
    assert seen == [ids[i] for i in with_metric + without]

    seen, _ = _page_through(
        api,
        {
            "experiment_ids": [exp_id],
            "filter": "metrics.m >= 1000 AND params.p LIKE '01%'",
            "order_by": ["params.p ASC"],
        },
        250,
    )
    assert seen == [ids[i] for i in active if _bulk_has_metric(i) and 1000 <= i < 2000]


@pytest.mark.slow
def test_bulk_view_types(api, bulk):
    exp_id, ids = bulk
    deleted = [ids[i] for i in range(N_BULK) if _bulk_deleted(i)]
    seen, _ = _page_through(
        api, {"experiment_ids": [exp_id], "run_view_type": "DELETED_ONLY"}, 1000
    )
    assert seen == deleted[::-1]
    seen, pages = _page_through(api, {"experiment_ids": [exp_id], "run_view_type": "ALL"}, 1000)
    assert sorted(seen) == sorted(ids)
    assert pages == [1000, 1000, 100]


@pytest.mark.slow
def test_bulk_client_paging(client, bulk):
    exp_id, ids = bulk
    active = {ids[i] for i in range(N_BULK) if not _bulk_deleted(i)}
    seen = []
    token = None
    while True:
        page = client.search_runs(
            [exp_id], filter_string="params.p LIKE '0%'", max_results=700, page_token=token
        )
        seen += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
    assert len(seen) == len(active) and set(seen) == active


@pytest.mark.slow
def test_bulk_fluent_search_runs(fluent, bulk):
    exp_id, ids = bulk
    runs = fluent.search_runs(
        experiment_ids=[exp_id], filter_string="tags.group = 'g1'", output_format="list"
    )
    want = {ids[i] for i in range(N_BULK) if i % 7 == 1 and not _bulk_deleted(i)}
    assert {r.info.run_id for r in runs} == want
    assert len(runs) == len(want)
