"""Params, metrics, tags, log-batch, log-inputs and fluent logging (api reference §3.5, §4.3, §4.4, §4.6)."""

from __future__ import annotations

import math
import time

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

DBL_MAX = 1.7976931348623157e308


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def run_id(api, experiment_id):
    return api.create_run(experiment_id)["info"]["run_id"]


def _data(api, run_id):
    data = api.get_run(run_id)["data"]
    return (
        {m["key"]: m for m in data.get("metrics", [])},
        {p["key"]: p["value"] for p in data.get("params", [])},
        {t["key"]: t["value"] for t in data.get("tags", [])},
    )


def _history(api, run_id, key):
    return api.get("metrics/get-history", run_id=run_id, metric_key=key).get("metrics", [])


# --------------------------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------------------------


def test_log_param_same_value_ok_changed_value_refused(api, client, run_id):
    body = {"run_id": run_id, "key": "p", "value": "1"}
    assert api.post("runs/log-parameter", body) == {}
    assert api.post("runs/log-parameter", body) == {}  # same value again: fine
    api.error(
        "POST",
        "runs/log-parameter",
        json={**body, "value": "2"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-batch",
        json={"run_id": run_id, "params": [{"key": "p", "value": "3"}]},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.post("runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "1"}]})
    assert _data(api, run_id)[1] == {"p": "1"}

    with pytest.raises(MlflowException) as excinfo:
        client.log_param(run_id, "p", 5)
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    client.log_param(run_id, "p", 1)  # the client stringifies: "1" == "1"


def test_param_values_and_keys(api, run_id):
    api.post("runs/log-parameter", {"run_id": run_id, "key": "empty", "value": ""})
    api.post("runs/log-parameter", {"run_id": run_id, "key": "novalue"})
    api.post("runs/log-parameter", {"run_id": run_id, "key": "a b/c:d-e.f_g", "value": "x"})
    api.post("runs/log-parameter", {"run_id": run_id, "key": "unicode", "value": "héllo ✓ 日本"})
    api.post("runs/log-parameter", {"run_uuid": run_id, "key": "legacy", "value": "y"})
    params = _data(api, run_id)[1]
    assert params == {
        "empty": "",
        "novalue": "",
        "a b/c:d-e.f_g": "x",
        "unicode": "héllo ✓ 日本",
        "legacy": "y",
    }


@pytest.mark.parametrize(
    "key",
    ["bad$name", "../x", "/abs", "a/../b", "k" * 251, "semi;colon", "quote'"],
    ids=["dollar", "dotdot", "absolute", "normalizes", "too-long", "semicolon", "quote"],
)
def test_bad_keys_refused(api, run_id, key):
    ts = now_ms()
    api.error(
        "POST",
        "runs/log-parameter",
        json={"run_id": run_id, "key": key, "value": "v"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-metric",
        json={"run_id": run_id, "key": key, "value": 1, "timestamp": ts},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/set-tag",
        json={"run_id": run_id, "key": key, "value": "v"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    for field, item in (
        ("params", {"key": key, "value": "v"}),
        ("metrics", {"key": key, "value": 1, "timestamp": ts}),
        ("tags", {"key": key, "value": "v"}),
    ):
        api.error(
            "POST",
            "runs/log-batch",
            json={"run_id": run_id, field: [item]},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )
    metrics, params, tags = _data(api, run_id)
    assert not metrics and not params and set(tags) == {"mlflow.runName"}


def test_empty_key_refused(api, run_id):
    api.error(
        "POST",
        "runs/log-parameter",
        json={"run_id": run_id, "key": "", "value": "x"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_long_values_truncated(api, run_id):
    api.post("runs/log-parameter", {"run_id": run_id, "key": "plong", "value": "x" * 6500})
    api.post(
        "runs/log-batch", {"run_id": run_id, "params": [{"key": "pbatch", "value": "y" * 7000}]}
    )
    api.post("runs/set-tag", {"run_id": run_id, "key": "tlong", "value": "t" * 9000})
    api.post("runs/log-batch", {"run_id": run_id, "tags": [{"key": "tbatch", "value": "u" * 8001}]})
    _, params, tags = _data(api, run_id)
    assert params["plong"] == "x" * 6000
    assert params["pbatch"] == "y" * 6000
    assert tags["tlong"] == "t" * 8000
    assert tags["tbatch"] == "u" * 8000
    # the exact limits are kept whole
    api.post("runs/log-parameter", {"run_id": run_id, "key": "p6000", "value": "z" * 6000})
    assert _data(api, run_id)[1]["p6000"] == "z" * 6000


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def test_log_metric_steps_history_and_latest(api, run_id):
    points = [(1.0, 100, 0), (5.0, 50, 2), (3.0, 200, 2), (0.5, 300, 1)]
    for value, ts, step in points:
        api.post(
            "runs/log-metric",
            {"run_id": run_id, "key": "m", "value": value, "timestamp": ts, "step": step},
        )
    hist = _history(api, run_id, "m")
    # ordered by timestamp (then step, value)
    assert [(h["value"], h["timestamp"], h["step"]) for h in hist] == sorted(
        points, key=lambda p: (p[1], p[2], p[0])
    )
    assert all(h["key"] == "m" for h in hist)
    # RunData.metrics keeps the max of (step, timestamp, value)
    latest = _data(api, run_id)[0]["m"]
    assert (latest["value"], latest["timestamp"], latest["step"]) == (3.0, 200, 2)


def test_metric_defaults_and_types(api, run_id):
    api.post("runs/log-metric", {"run_id": run_id, "key": "nostep", "value": 2, "timestamp": 10})
    assert _history(api, run_id, "nostep") == [
        {"key": "nostep", "value": 2.0, "timestamp": 10, "step": 0}
    ]
    # int64 as decimal strings
    api.post(
        "runs/log-metric",
        {"run_id": run_id, "key": "str", "value": 1.5, "timestamp": "1700000000000", "step": "3"},
    )
    assert _history(api, run_id, "str") == [
        {"key": "str", "value": 1.5, "timestamp": 1700000000000, "step": 3}
    ]
    # negative steps are allowed
    api.post(
        "runs/log-metric",
        {"run_id": run_id, "key": "neg", "value": -2.5, "timestamp": 1, "step": -5},
    )
    assert _history(api, run_id, "neg")[0]["step"] == -5
    api.post("runs/log-metric", {"run_uuid": run_id, "key": "legacy", "value": 1, "timestamp": 1})
    assert len(_history(api, run_id, "legacy")) == 1


def test_metric_validation(api, run_id):
    base = {"run_id": run_id, "key": "m", "value": 1}
    api.error(
        "POST", "runs/log-metric", json=base, status=400, code="INVALID_PARAMETER_VALUE"
    )  # no timestamp
    api.error(
        "POST",
        "runs/log-metric",
        json={**base, "timestamp": -1},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-metric",
        json={**base, "value": "abc", "timestamp": 1},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-metric",
        json={"run_id": run_id, "value": 1, "timestamp": 1},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-metric",
        json={"run_id": "0" * 32, "key": "m", "value": 1, "timestamp": 1},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    assert _history(api, run_id, "m") == []


def test_nan_and_infinity(api, client, run_id):
    api.post("runs/log-metric", {"run_id": run_id, "key": "nan", "value": "NaN", "timestamp": 1})
    api.post(
        "runs/log-metric", {"run_id": run_id, "key": "pinf", "value": "Infinity", "timestamp": 1}
    )
    api.post(
        "runs/log-metric", {"run_id": run_id, "key": "ninf", "value": "-Infinity", "timestamp": 1}
    )
    assert _history(api, run_id, "nan") == [
        {"key": "nan", "value": "NaN", "timestamp": 1, "step": 0}
    ]
    assert _history(api, run_id, "pinf")[0]["value"] == DBL_MAX
    assert _history(api, run_id, "ninf")[0]["value"] == -DBL_MAX
    metrics = _data(api, run_id)[0]
    assert metrics["nan"]["value"] == "NaN"
    assert metrics["pinf"]["value"] == DBL_MAX

    # the same through the client (which sends NaN/Infinity JSON tokens)
    client.log_metric(run_id, "c_nan", float("nan"))
    client.log_metric(run_id, "c_pinf", float("inf"))
    client.log_metric(run_id, "c_ninf", float("-inf"))
    got = client.get_run(run_id).data.metrics
    assert math.isnan(got["c_nan"]) and math.isnan(got["nan"])
    assert got["c_pinf"] == DBL_MAX and got["c_ninf"] == -DBL_MAX
    assert math.isnan(client.get_metric_history(run_id, "c_nan")[0].value)


def test_identical_metric_is_deduplicated(api, run_id):
    point = {"key": "d", "value": 1.0, "timestamp": 5, "step": 1}
    api.post("runs/log-metric", {"run_id": run_id, **point})
    api.post("runs/log-metric", {"run_id": run_id, **point})
    api.post("runs/log-batch", {"run_id": run_id, "metrics": [point, point]})
    assert _history(api, run_id, "d") == [point]
    api.post("runs/log-metric", {"run_id": run_id, **point, "timestamp": 6})
    assert len(_history(api, run_id, "d")) == 2
    # A batch sent again (a client retrying) with params and tags: stored once, nothing lost.
    newer = {**point, "step": 2}
    batch = {
        "run_id": run_id,
        "metrics": [point, newer],
        "params": [{"key": "p", "value": "1"}],
        "tags": [{"key": "t", "value": "x"}],
    }
    api.post("runs/log-batch", batch)
    api.post("runs/log-batch", batch)
    assert len(_history(api, run_id, "d")) == 3
    metrics, params, tags = _data(api, run_id)
    assert (metrics["d"]["step"], params, tags["t"]) == (2, {"p": "1"}, "x")


def test_client_log_metric_with_steps(client, run_id):
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step, timestamp=1000 + step)
    hist = client.get_metric_history(run_id, "loss")
    assert [m.step for m in hist] == [0, 1, 2, 3, 4]
    assert [m.value for m in hist] == [1.0 / (s + 1) for s in range(5)]
    assert client.get_run(run_id).data.metrics["loss"] == 0.2


# --------------------------------------------------------------------------------------------
# log-batch
# --------------------------------------------------------------------------------------------


def test_log_batch_roundtrip(api, run_id):
    ts = now_ms()
    resp = api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [
                {"key": "acc", "value": 0.9, "timestamp": ts, "step": 5, "run_id": run_id},
                {"key": "f1", "value": 0.8, "timestamp": ts, "step": 5, "run_id": run_id},
            ],
            "params": [{"key": "alpha", "value": "0.5"}, {"key": "beta", "value": "x"}],
            "tags": [{"key": "team", "value": "core"}],
        },
    )
    assert resp == {}
    metrics, params, tags = _data(api, run_id)
    assert {k: (m["value"], m["step"]) for k, m in metrics.items()} == {
        "acc": (0.9, 5),
        "f1": (0.8, 5),
    }
    assert params == {"alpha": "0.5", "beta": "x"}
    assert tags["team"] == "core"
    assert api.post("runs/log-batch", {"run_id": run_id}) == {}  # an empty batch is fine


def test_log_batch_limits(api, run_id):
    def metric(i):
        return {"key": "q", "value": float(i), "timestamp": 1, "step": i}

    too_many = [
        {"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
        {"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
        {"metrics": [metric(i) for i in range(1001)]},
        {
            "metrics": [metric(i) for i in range(950)],
            "params": [{"key": f"p{i}", "value": "v"} for i in range(51)],
        },
    ]
    for extra in too_many:
        api.error(
            "POST",
            "runs/log-batch",
            json={"run_id": run_id, **extra},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )
    assert _history(api, run_id, "q") == []
    assert _data(api, run_id)[1] == {}

    # exactly at the limits
    api.post("runs/log-batch", {"run_id": run_id, "metrics": [metric(i) for i in range(1000)]})
    api.post(
        "runs/log-batch",
        {"run_id": run_id, "params": [{"key": f"p{i}", "value": "v"} for i in range(100)]},
    )
    api.post(
        "runs/log-batch",
        {"run_id": run_id, "tags": [{"key": f"t{i}", "value": "v"} for i in range(100)]},
    )
    api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [{**metric(i), "key": "q2"} for i in range(900)],
            "params": [{"key": f"x{i}", "value": "v"} for i in range(50)],
            "tags": [{"key": f"y{i}", "value": "v"} for i in range(50)],
        },
    )
    assert len(_history(api, run_id, "q")) == 1000
    assert len(_history(api, run_id, "q2")) == 900
    assert len(_data(api, run_id)[1]) == 150


def test_log_batch_validation(api, run_id):
    api.error(
        "POST",
        "runs/log-batch",
        json={"run_id": run_id, "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "1"}]},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-batch",
        json={"run_id": run_id, "metrics": [{"key": "x", "value": 1}]},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-batch",
        json={"params": [{"key": "x", "value": "1"}]},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-batch",
        json={"run_id": "0" * 32, "params": [{"key": "x", "value": "1"}]},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    assert _data(api, run_id)[1] == {}


@pytest.mark.labtrack_only
@pytest.mark.parametrize(
    "bad_param",
    [
        {"key": "bad$name", "value": "1"},
        {"key": "k" * 251, "value": "1"},
        {"key": "existing", "value": "changed"},
    ],
    ids=["bad-name", "long-key", "changed-value"],
)
def test_log_batch_is_all_or_nothing(api, run_id, bad_param):
    """labtrack rule (stricter than MLflow): a rejected batch leaves nothing behind."""
    api.post("runs/log-parameter", {"run_id": run_id, "key": "existing", "value": "orig"})
    body = {
        "run_id": run_id,
        "params": [{"key": "good_param", "value": "1"}, bad_param],
        "metrics": [{"key": "good_metric", "value": 1.0, "timestamp": 1, "step": 0}],
        "tags": [{"key": "good_tag", "value": "1"}],
    }
    api.error("POST", "runs/log-batch", json=body, status=400, code="INVALID_PARAMETER_VALUE")
    metrics, params, tags = _data(api, run_id)
    assert metrics == {}
    assert params == {"existing": "orig"}
    assert "good_tag" not in tags
    assert _history(api, run_id, "good_metric") == []


def test_client_log_batch_splits_large_batches(client, run_id):
    ts = now_ms()
    metrics = [Metric("big", float(i), ts, i) for i in range(2500)]
    params = [Param(f"p{i}", str(i)) for i in range(150)]
    tags = [RunTag(f"t{i}", str(i)) for i in range(120)]
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    hist = client.get_metric_history(run_id, "big")
    assert [m.step for m in hist] == list(range(2500))
    run = client.get_run(run_id)
    assert len(run.data.params) == 150
    assert run.data.tags["t119"] == "119"


# --------------------------------------------------------------------------------------------
# log-inputs (datasets)
# --------------------------------------------------------------------------------------------


def _dataset(name="tiny", digest="a5357541"):
    return {
        "name": name,
        "digest": digest,
        "source_type": "code",
        "source": '{"tags": {"mlflow.user": "me"}}',
        "schema": '{"mlflow_colspec": [{"type": "long", "name": "a"}]}',
        "profile": '{"num_rows": 3, "num_elements": 6}',
    }


def test_log_inputs_with_context(api, run_id):
    ds = {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": _dataset()}
    assert api.post("runs/log-inputs", {"run_id": run_id, "datasets": [ds]}) == {}
    api.post(
        "runs/log-inputs", {"run_id": run_id, "datasets": [ds]}
    )  # same input again: de-duplicated
    api.post(
        "runs/log-inputs", {"run_id": run_id, "datasets": [{"dataset": _dataset("other", "cccc")}]}
    )
    inputs = api.get_run(run_id)["inputs"]["dataset_inputs"]
    assert len(inputs) == 2
    by_name = {i["dataset"]["name"]: i for i in inputs}
    assert by_name["tiny"]["dataset"] == _dataset()
    assert by_name["tiny"]["tags"] == [{"key": "mlflow.data.context", "value": "training"}]
    assert by_name["other"]["dataset"]["digest"] == "cccc"
    assert not by_name["other"].get("tags")


def test_run_without_inputs_has_empty_inputs(api, run_id):
    run = api.get_run(run_id)
    assert not run.get("inputs", {}).get("dataset_inputs")


def test_fluent_log_input(fluent, unique_name):
    pd = pytest.importorskip("pandas")
    import mlflow.data

    fluent.set_experiment(unique_name("inputs"))
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    dataset = mlflow.data.from_pandas(df, name="frame")
    with fluent.start_run() as run:
        fluent.log_input(dataset, context="training")
    got = fluent.MlflowClient().get_run(run.info.run_id)
    assert len(got.inputs.dataset_inputs) == 1
    inp = got.inputs.dataset_inputs[0]
    assert inp.dataset.name == "frame"
    assert inp.dataset.digest == dataset.digest
    assert {t.key: t.value for t in inp.tags} == {"mlflow.data.context": "training"}


# --------------------------------------------------------------------------------------------
# Fluent API flow
# --------------------------------------------------------------------------------------------


def test_fluent_flow(fluent, unique_name):
    name = unique_name("fluent")
    exp = fluent.set_experiment(name)
    assert exp.name == name
    with fluent.start_run(run_name="flow-a") as run:
        fluent.log_param("alpha", 0.5)
        fluent.log_params({"l1": 0.1, "layers": 3, "opt": "adam"})
        for step in range(3):
            fluent.log_metric("loss", 1.0 / (step + 1), step=step)
        fluent.log_metrics({"acc": 0.9, "f1": 0.8}, step=5)
        fluent.set_tags({"team": "core", "stage": "dev"})
        fluent.set_tag("single", "yes")
        run_id = run.info.run_id
    c = fluent.MlflowClient()
    got = c.get_run(run_id)
    assert got.info.experiment_id == exp.experiment_id
    assert got.info.run_name == "flow-a"
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None and got.info.end_time >= got.info.start_time
    assert got.data.params == {"alpha": "0.5", "l1": "0.1", "layers": "3", "opt": "adam"}
    assert got.data.metrics == {"loss": 1.0 / 3, "acc": 0.9, "f1": 0.8}
    assert {k: got.data.tags[k] for k in ("team", "stage", "single", "mlflow.runName")} == {
        "team": "core",
        "stage": "dev",
        "single": "yes",
        "mlflow.runName": "flow-a",
    }
    assert "mlflow.user" in got.data.tags and "mlflow.source.type" in got.data.tags
    assert [m.value for m in c.get_metric_history(run_id, "loss")] == [1.0, 0.5, 1.0 / 3]

    # set_experiment again finds the existing experiment; a second run lands in it
    fluent.set_experiment(name)
    run2 = fluent.start_run()
    fluent.log_metric("loss", 0.1)
    fluent.end_run(status="KILLED")
    assert c.get_run(run2.info.run_id).info.status == "KILLED"
    assert {r.info.run_id for r in c.search_runs([exp.experiment_id])} == {run_id, run2.info.run_id}


def test_fluent_set_experiment_on_deleted_experiment_fails(fluent, api, unique_name):
    name = unique_name("deleted")
    exp_id = api.create_experiment(name)
    api.post("experiments/delete", {"experiment_id": exp_id})
    with pytest.raises(MlflowException):
        fluent.set_experiment(name)
