"""Core tracking flows with the last 2.x client (mlflow 2.22.5), which reads ``run_uuid`` too."""

from __future__ import annotations

import time

import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException


def test_client_is_2x():
    import mlflow

    assert mlflow.__version__ == "2.22.5"


def test_fluent_core_flow(fluent, unique_name):
    name = unique_name("flow2x")
    exp = fluent.set_experiment(name)
    assert exp.name == name and exp.lifecycle_stage == "active"
    assert fluent.set_experiment(name).experiment_id == exp.experiment_id  # found, not re-created

    with fluent.start_run(run_name="flow-2x") as run:
        fluent.log_param("alpha", 0.5)
        fluent.log_params({"l1": 0.1, "layers": 3})
        for step in range(5):
            fluent.log_metric("loss", 1.0 / (step + 1), step=step)
        fluent.log_metrics({"acc": 0.9, "f1": 0.8}, step=7)
        fluent.set_tags({"team": "core", "stage": "dev"})
        fluent.set_tag("single", "yes")
        run_id = run.info.run_id
    assert run.info.run_uuid == run_id

    client = fluent.MlflowClient()
    got = client.get_run(run_id)
    assert got.info.run_id == got.info.run_uuid == run_id
    assert got.info.experiment_id == exp.experiment_id
    assert got.info.run_name == "flow-2x"
    assert got.info.status == "FINISHED"
    assert got.info.end_time >= got.info.start_time > 0
    assert got.data.params == {"alpha": "0.5", "l1": "0.1", "layers": "3"}
    assert got.data.metrics == {"loss": 0.2, "acc": 0.9, "f1": 0.8}
    tags = got.data.tags
    assert (tags["team"], tags["stage"], tags["single"], tags["mlflow.runName"]) == (
        "core",
        "dev",
        "yes",
        "flow-2x",
    )
    hist = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in hist] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert [m.step for m in client.get_metric_history(run_id, "acc")] == [7]


def test_run_without_experiment_uses_default(fluent):
    with fluent.start_run() as run:
        fluent.log_metric("x", 1.0)
    got = fluent.MlflowClient().get_run(run.info.run_id)
    assert got.info.experiment_id == "0"
    fluent.MlflowClient().delete_run(run.info.run_id)


def test_search_runs_filter_and_order(client, fluent, unique_name):
    exp_id = client.create_experiment(unique_name("search2x"))
    ids = {}
    for i, (acc, kind) in enumerate([(0.1, "a"), (0.7, "a"), (0.4, "b"), (0.9, "a"), (0.5, "a")]):
        run = client.create_run(exp_id, run_name=f"r{i}", start_time=1000 + i)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", acc, 1, 0)],
            params=[Param("kind", kind)],
            tags=[RunTag("idx", str(i))],
        )
        ids[run.info.run_id] = f"r{i}"

    runs = client.search_runs(
        [exp_id],
        filter_string="metrics.acc > 0.3 and params.kind = 'a'",
        order_by=["metrics.acc DESC"],
    )
    assert [r.info.run_name for r in runs] == ["r3", "r1", "r4"]
    assert all(r.info.run_uuid == r.info.run_id for r in runs)
    assert runs[0].data.params == {"kind": "a"}

    runs = client.search_runs([exp_id], order_by=["params.kind DESC", "metrics.acc ASC"])
    assert [r.info.run_name for r in runs] == ["r2", "r0", "r4", "r1", "r3"]

    runs = client.search_runs([exp_id])  # default order: start_time DESC
    assert [r.info.run_name for r in runs] == ["r4", "r3", "r2", "r1", "r0"]

    page = client.search_runs([exp_id], max_results=2, order_by=["attributes.start_time ASC"])
    seen = [r.info.run_name for r in page]
    while page.token:
        page = client.search_runs(
            [exp_id], max_results=2, order_by=["attributes.start_time ASC"], page_token=page.token
        )
        seen += [r.info.run_name for r in page]
    assert seen == ["r0", "r1", "r2", "r3", "r4"]

    found = fluent.search_runs(
        experiment_ids=[exp_id], filter_string="tags.idx = '2'", output_format="list"
    )
    assert [r.info.run_name for r in found] == ["r2"]


def test_metric_history_long(client, unique_name):
    exp_id = client.create_experiment(unique_name("hist2x"))
    run_id = client.create_run(exp_id).info.run_id
    ts = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("m", i * 0.25, ts + i, i) for i in range(3000)])
    hist = client.get_metric_history(run_id, "m")
    assert [(m.step, m.value, m.timestamp) for m in hist] == [
        (i, i * 0.25, ts + i) for i in range(3000)
    ]
    assert client.get_run(run_id).data.metrics["m"] == 2999 * 0.25


def test_param_change_refused(client, unique_name):
    exp_id = client.create_experiment(unique_name("param2x"))
    run_id = client.create_run(exp_id).info.run_id
    client.log_param(run_id, "p", "1")
    client.log_param(run_id, "p", "1")
    with pytest.raises(MlflowException) as excinfo:
        client.log_param(run_id, "p", "2")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_restore_runs_and_experiments(client, fluent, unique_name):
    name = unique_name("del2x")
    exp_id = client.create_experiment(name)
    keep = client.create_run(exp_id).info.run_id
    gone = client.create_run(exp_id).info.run_id

    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [keep]
    assert [
        r.info.run_id for r in client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    ] == [gone]
    assert len(client.search_runs([exp_id], run_view_type=ViewType.ALL)) == 2
    with pytest.raises(MlflowException):
        client.set_tag(gone, "k", "v")
    client.restore_run(gone)
    client.set_tag(gone, "k", "v")
    assert client.get_run(gone).data.tags["k"] == "v"

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert client.get_run(keep).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException):
        fluent.set_experiment(name)
    with pytest.raises(MlflowException) as excinfo:
        client.create_experiment(name)
    assert excinfo.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    assert {r.info.run_id for r in client.search_runs([exp_id])} == {keep, gone}


def test_experiment_search_and_rename(client, unique_name):
    prefix = unique_name("exps2x")
    ids = [client.create_experiment(f"{prefix}-{i}", tags={"i": str(i)}) for i in range(3)]
    found = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"]
    )
    assert [e.experiment_id for e in found] == ids[::-1]
    client.rename_experiment(ids[0], f"{prefix}-renamed")
    assert client.get_experiment_by_name(f"{prefix}-renamed").experiment_id == ids[0]
    assert client.get_experiment_by_name(f"{prefix}-0") is None
    assert client.get_experiment(ids[1]).tags == {"i": "1"}
