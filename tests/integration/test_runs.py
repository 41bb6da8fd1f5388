"""Runs: create/get/update/delete/restore, run names, lifecycle rules (api reference §4.2, §3.6)."""

from __future__ import annotations

import re
import time

import pytest
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MISSING_RUN = "0" * 32


def now_ms() -> int:
    return int(time.time() * 1000)


def _tags(run):
    return {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}


def test_create_run_shape(api, experiment_id):
    start = now_ms()
    resp = api.post(
        "runs/create",
        {
            "experiment_id": experiment_id,
            "user_id": "alice",
            "start_time": start,
            "tags": [{"key": "k", "value": "v"}],
        },
    )
    run = resp["run"]
    info = run["info"]
    assert RUN_ID.match(info["run_id"])
    assert info["run_uuid"] == info["run_id"], "RunInfo must carry both run_id and run_uuid"
    assert info["experiment_id"] == experiment_id
    assert info["user_id"] == "alice"
    assert info["status"] == "RUNNING"
    assert info["start_time"] == start
    assert "end_time" not in info
    assert info["lifecycle_stage"] == "active"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{experiment_id}/{info['run_id']}/artifacts"
    # a name is generated and mirrored into the mlflow.runName tag
    assert info["run_name"]
    tags = _tags(run)
    assert tags["mlflow.runName"] == info["run_name"]
    assert tags["k"] == "v"

    got = api.get_run(info["run_id"])
    assert got["info"] == info
    assert _tags(got) == tags
    assert "params" not in got["data"] and "metrics" not in got["data"]


def test_create_run_minimal_body(api, experiment_id):
    """Only experiment_id: start_time defaults to 0, user_id to ''."""
    info = api.post("runs/create", {"experiment_id": experiment_id})["run"]["info"]
    assert info["start_time"] == 0
    assert info.get("user_id", "") == ""
    assert info["status"] == "RUNNING"


def test_run_name_and_tag_rules(api, experiment_id):
    run = api.create_run(experiment_id, run_name="given")
    assert run["info"]["run_name"] == "given"
    assert _tags(run)["mlflow.runName"] == "given"

    run = api.create_run(experiment_id, tags=[{"key": "mlflow.runName", "value": "from-tag"}])
    assert run["info"]["run_name"] == "from-tag"

    run = api.create_run(
        experiment_id, run_name="same", tags=[{"key": "mlflow.runName", "value": "same"}]
    )
    assert run["info"]["run_name"] == "same"

    api.error(
        "POST",
        "runs/create",
        json={
            "experiment_id": experiment_id,
            "run_name": "a",
            "tags": [{"key": "mlflow.runName", "value": "b"}],
        },
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_rename_via_update_and_via_tag(api, experiment_id):
    run_id = api.create_run(experiment_id, run_name="first")["info"]["run_id"]
    info = api.post("runs/update", {"run_id": run_id, "run_name": "second"})["run_info"]
    assert info["run_name"] == "second"
    run = api.get_run(run_id)
    assert run["info"]["run_name"] == "second"
    assert _tags(run)["mlflow.runName"] == "second"

    api.post("runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": "third"})
    run = api.get_run(run_id)
    assert run["info"]["run_name"] == "third"
    assert _tags(run)["mlflow.runName"] == "third"


def test_create_run_errors(api, experiment_id):
    # no experiment_id (MLflow: 400 BAD_REQUEST from an integrity error)
    api.error("POST", "runs/create", json={"start_time": 1}, status=400)
    api.error(
        "POST",
        "runs/create",
        json={"experiment_id": "99999999"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_get_run_errors_and_legacy_id(api, experiment_id):
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    api.error(
        "GET",
        "runs/get",
        params={"run_id": MISSING_RUN},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.error("GET", "runs/get", status=400, code="INVALID_PARAMETER_VALUE")
    # legacy run_uuid alone works, and so do both together (what the client sends)
    assert api.get("runs/get", run_uuid=run_id)["run"]["info"]["run_id"] == run_id
    assert api.get("runs/get", run_id=run_id, run_uuid=run_id)["run"]["info"]["run_id"] == run_id


def test_update_status_and_end_time(api, experiment_id):
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    for status in ("FAILED", "RUNNING", "SCHEDULED", "KILLED", "FINISHED"):
        info = api.post("runs/update", {"run_id": run_id, "status": status})["run_info"]
        assert info["status"] == status
        assert info["run_id"] == info["run_uuid"] == run_id
    info = api.post("runs/update", {"run_id": run_id, "end_time": 1700000000999})["run_info"]
    assert info["end_time"] == 1700000000999
    assert info["status"] == "FINISHED"  # untouched when absent

    # unknown enum names are ignored; enum numbers are accepted (3 == FINISHED)
    api.post("runs/update", {"run_id": run_id, "status": "KILLED"})
    assert (
        api.post("runs/update", {"run_id": run_id, "status": "BOGUS"})["run_info"]["status"]
        == "KILLED"
    )
    assert (
        api.post("runs/update", {"run_id": run_id, "status": 3})["run_info"]["status"] == "FINISHED"
    )
    # legacy run_uuid only
    assert (
        api.post("runs/update", {"run_uuid": run_id, "status": "FAILED"})["run_info"]["status"]
        == "FAILED"
    )
    api.error(
        "POST",
        "runs/update",
        json={"run_id": MISSING_RUN, "status": "FAILED"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_client_run_lifecycle(client, experiment_id):
    run = client.create_run(experiment_id, run_name="via-client", tags={"t": "1"})
    run_id = run.info.run_id
    assert run.info.run_name == "via-client"
    assert run.info.status == "RUNNING"
    assert run.data.tags["t"] == "1"

    client.set_terminated(run_id, status="KILLED")
    got = client.get_run(run_id)
    assert got.info.status == "KILLED"
    assert got.info.end_time is not None and got.info.end_time > 0

    client.update_run(run_id, status="FINISHED", name="renamed")
    got = client.get_run(run_id)
    assert got.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert got.info.run_name == "renamed"

    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as excinfo:
        client.log_param(run_id, "p", "1")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    client.log_param(run_id, "p", "1")


def test_delete_restore_idempotent(api, experiment_id):
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    assert api.post("runs/restore", {"run_id": run_id}) == {}  # restoring an active run is a no-op
    assert api.post("runs/delete", {"run_id": run_id}) == {}
    info = api.get_run(run_id)["info"]
    assert info["lifecycle_stage"] == "deleted"
    assert api.post("runs/delete", {"run_id": run_id}) == {}  # deleting twice is fine
    assert api.post("runs/restore", {"run_id": run_id}) == {}
    assert api.get_run(run_id)["info"]["lifecycle_stage"] == "active"
    assert api.post("runs/restore", {"run_id": run_id}) == {}
    for path in ("runs/delete", "runs/restore"):
        api.error(
            "POST", path, json={"run_id": MISSING_RUN}, status=404, code="RESOURCE_DOES_NOT_EXIST"
        )
        api.error("POST", path, json={}, status=400, code="INVALID_PARAMETER_VALUE")


def test_writes_to_deleted_run_are_refused(api, experiment_id):
    run_id = api.create_run(experiment_id, tags=[{"key": "keep", "value": "1"}])["info"]["run_id"]
    api.post("runs/delete", {"run_id": run_id})
    ts = now_ms()
    writes = [
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": ts}),
        ("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v"}),
        ("runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"}),
        ("runs/delete-tag", {"run_id": run_id, "key": "keep"}),
        ("runs/log-batch", {"run_id": run_id, "params": [{"key": "bp", "value": "v"}]}),
        # metrics only, and nothing at all: the one-statement path on PostgreSQL
        (
            "runs/log-batch",
            {"run_id": run_id, "metrics": [{"key": "b", "value": 1, "timestamp": ts}]},
        ),
        ("runs/log-batch", {"run_id": run_id}),
        ("runs/update", {"run_id": run_id, "status": "FINISHED"}),
        ("runs/update", {"run_id": run_id, "run_name": "new-name"}),
        (
            "runs/log-inputs",
            {
                "run_id": run_id,
                "datasets": [
                    {"dataset": {"name": "d", "digest": "1", "source_type": "code", "source": "{}"}}
                ],
            },
        ),
    ]
    for path, body in writes:
        api.error("POST", path, json=body, status=400, code="INVALID_PARAMETER_VALUE")
    # reads still work, and nothing was written
    run = api.get_run(run_id)
    assert run["info"]["lifecycle_stage"] == "deleted"
    assert run["info"]["status"] == "RUNNING"
    assert "params" not in run["data"] and "metrics" not in run["data"]
    assert _tags(run)["keep"] == "1"


def test_run_tags_set_and_delete(api, experiment_id):
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    api.post("runs/set-tag", {"run_id": run_id, "key": "a", "value": "1"})
    api.post("runs/set-tag", {"run_id": run_id, "key": "a", "value": "2"})  # upsert
    api.post("runs/set-tag", {"run_uuid": run_id, "key": "legacy", "value": "x"})
    assert _tags(api.get_run(run_id))["a"] == "2"
    assert _tags(api.get_run(run_id))["legacy"] == "x"
    api.post("runs/delete-tag", {"run_id": run_id, "key": "a"})
    assert "a" not in _tags(api.get_run(run_id))
    api.error(
        "POST",
        "runs/delete-tag",
        json={"run_id": run_id, "key": "a"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.error(
        "POST",
        "runs/set-tag",
        json={"run_id": MISSING_RUN, "key": "a", "value": "1"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_awkward_param_and_tag_text_reads_back_exactly(api, experiment_id):
    """Params and tags reach get-run and search as JSON the database writes (runs.load)."""
    texts = {
        "quote": 'say "hi"',
        "backslash": "C:\\path\\to",
        "controls": "tab\tnew\nline\rbell\x07escape\x1bend",
        "unicode": "naïve – 日本語 🚀",
        "json-ish": '{"a": [1, 2]}',
        "empty": "",
    }
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    params = [{"key": k, "value": v} for k, v in texts.items()]
    tags = [{"key": f"t.{k}", "value": v} for k, v in texts.items()]
    api.post("runs/log-batch", {"run_id": run_id, "params": params, "tags": tags})
    found = api.post("runs/search", {"experiment_ids": [experiment_id]})["runs"]
    for run in (api.get_run(run_id), next(r for r in found if r["info"]["run_id"] == run_id)):
        assert run["data"]["params"] == sorted(params, key=lambda p: p["key"])
        assert {k: v for k, v in _tags(run).items() if k.startswith("t.")} == {
            f"t.{k}": v for k, v in texts.items()
        }


def test_nul_in_text_stored_or_refused_whole(api, experiment_id):
    """SQLite stores a NUL character; PostgreSQL text cannot hold one: a clear 400, no 500."""
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    batch = {
        "run_id": run_id,
        "params": [{"key": "fine", "value": "x"}, {"key": "nul", "value": "a\x00b"}],
        "metrics": [{"key": "m", "value": 1.0, "timestamp": now_ms(), "step": 0}],
    }
    if api.server.backend == "postgresql":
        body = api.error(
            "POST", "runs/log-batch", batch, status=400, code="INVALID_PARAMETER_VALUE"
        )
        assert "NUL" in body["message"]
        assert "params" not in api.get_run(run_id)["data"]  # nothing of the batch was written
        assert "metrics" not in api.get_run(run_id)["data"]
    else:
        api.post("runs/log-batch", batch)
        assert {"key": "nul", "value": "a\x00b"} in api.get_run(run_id)["data"]["params"]


def test_runs_in_default_experiment(api):
    run = api.post("runs/create", {"experiment_id": "0", "start_time": now_ms()})["run"]
    assert run["info"]["experiment_id"] == "0"
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/0/{run['info']['run_id']}/artifacts"
    api.post("runs/delete", {"run_id": run["info"]["run_id"]})


def test_fluent_run_without_experiment_goes_to_default(fluent):
    with fluent.start_run() as run:
        fluent.log_param("x", "1")
    got = fluent.MlflowClient().get_run(run.info.run_id)
    assert got.info.experiment_id == "0"
    assert got.info.status == "FINISHED"
    assert got.data.params == {"x": "1"}
    fluent.MlflowClient().delete_run(run.info.run_id)


def test_fluent_failed_run_status(fluent, unique_name):
    fluent.set_experiment(unique_name("fluent-fail"))
    with pytest.raises(RuntimeError):
        with fluent.start_run() as run:
            raise RuntimeError("boom")
    assert fluent.MlflowClient().get_run(run.info.run_id).info.status == "FAILED"


def test_nested_runs(fluent, unique_name):
    fluent.set_experiment(unique_name("nested"))
    with fluent.start_run(run_name="parent") as parent:
        with fluent.start_run(run_name="child", nested=True) as child:
            pass
    c = fluent.MlflowClient()
    assert c.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    found = c.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert [r.info.run_name for r in found] == ["child"]
