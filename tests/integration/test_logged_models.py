"""MLflow 3 logged models (API reference §4.9, Appendix A.10, §1.3 item 18) and the 2.x
``runs/log-model`` call, over raw HTTP and with the stock client."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
LM = "logged-models"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create(api, experiment_id: str, **fields) -> dict:
    return api.post(LM, {"experiment_id": experiment_id, **fields})["model"]


def test_create_get_finalize_shape(api, experiment_id):
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    model = create(
        api,
        experiment_id,
        name="model",
        source_run_id=run_id,
        tags=[{"key": "mlflow.user", "value": "ann"}, {"key": "a", "value": "1"}],
        params=[{"key": "lr", "value": "0.1"}],
    )
    info = model["info"]
    assert MODEL_ID.match(info["model_id"])
    assert info["experiment_id"] == experiment_id
    assert info["name"] == "model"
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["model_type"] == ""
    assert info["source_run_id"] == run_id
    assert info["artifact_uri"] == (
        f"mlflow-artifacts:/{experiment_id}/models/{info['model_id']}/artifacts"
    )
    assert info["creation_timestamp_ms"] == info["last_updated_timestamp_ms"]
    assert info["tags"] == [{"key": "a", "value": "1"}, {"key": "mlflow.user", "value": "ann"}]
    assert model["data"] == {"params": [{"key": "lr", "value": "0.1"}]}
    model_id = info["model_id"]
    assert api.get(f"{LM}/{model_id}") == {"model": model}
    done = api.ok(
        "PATCH", f"{LM}/{model_id}", {"model_id": model_id, "status": "LOGGED_MODEL_READY"}
    )["model"]
    assert done["info"]["status"] == "LOGGED_MODEL_READY"
    assert done["info"]["last_updated_timestamp_ms"] >= info["last_updated_timestamp_ms"]
    # status by number, as the proto enum allows (3 = LOGGED_MODEL_UPLOAD_FAILED)
    failed = api.ok("PATCH", f"{LM}/{model_id}", {"model_id": model_id, "status": 3})["model"]
    assert failed["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"


def test_generated_name_and_errors(api, experiment_id):
    model = create(api, experiment_id)
    assert model["info"]["name"]
    for bad in ("a/b", "a.b", "a:b", "a%b"):
        api.error(
            "POST",
            LM,
            {"experiment_id": experiment_id, "name": bad},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )
    api.error("POST", LM, {}, status=400, code="INVALID_PARAMETER_VALUE")
    api.error("POST", LM, {"experiment_id": "999999"}, status=404, code="RESOURCE_DOES_NOT_EXIST")
    api.error("POST", LM, {"experiment_id": "x"}, status=400, code="INVALID_PARAMETER_VALUE")
    missing = "m-" + "0" * 32
    api.error("GET", f"{LM}/{missing}", status=404, code="RESOURCE_DOES_NOT_EXIST")


@pytest.mark.labtrack_only
def test_finalize_needs_a_known_status(api, experiment_id):
    """The stock server stores LOGGED_MODEL_STATUS_UNSPECIFIED for these; labtrack refuses."""
    model_id = create(api, experiment_id)["info"]["model_id"]
    api.error(
        "PATCH",
        f"{LM}/{model_id}",
        {"model_id": model_id, "status": "BOGUS"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error("PATCH", f"{LM}/{model_id}", {"model_id": model_id}, status=400)
    other = create(api, experiment_id)["info"]["model_id"]
    api.error(
        "PATCH",
        f"{LM}/{model_id}",
        {"model_id": other, "status": 2},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_tags_params_and_delete(api, experiment_id):
    model_id = create(api, experiment_id)["info"]["model_id"]
    api.ok("PATCH", f"{LM}/{model_id}/tags", {"tags": [{"key": "a", "value": "1"}]})
    api.ok(
        "PATCH",
        f"{LM}/{model_id}/tags",
        {"tags": [{"key": "a", "value": "2"}, {"key": "b.c", "value": "3"}]},
    )
    tags = api.get(f"{LM}/{model_id}")["model"]["info"]["tags"]
    assert tags == [{"key": "a", "value": "2"}, {"key": "b.c", "value": "3"}]
    api.ok("DELETE", f"{LM}/{model_id}/tags/b.c")
    api.ok("DELETE", f"{LM}/{model_id}/tags/a")
    assert "tags" not in api.get(f"{LM}/{model_id}")["model"]["info"]
    api.error("DELETE", f"{LM}/{model_id}/tags/a", status=404, code="RESOURCE_DOES_NOT_EXIST")

    body = {"model_id": model_id, "params": [{"key": "p", "value": "1"}]}
    api.post(f"{LM}/{model_id}/params", body)
    if not api.server.is_mlflow:  # the stock server answers 400 even for the same value
        api.post(f"{LM}/{model_id}/params", body)
    body = {"model_id": model_id, "params": [{"key": "p", "value": "2"}]}
    api.error("POST", f"{LM}/{model_id}/params", body, status=400)
    assert api.get(f"{LM}/{model_id}")["model"]["data"]["params"] == [{"key": "p", "value": "1"}]

    api.ok("DELETE", f"{LM}/{model_id}")
    api.error("GET", f"{LM}/{model_id}", status=404, code="RESOURCE_DOES_NOT_EXIST")
    deleted = api.get(f"{LM}/{model_id}", allow_deleted="true")["model"]
    assert deleted["info"]["model_id"] == model_id
    api.ok("PATCH", f"{LM}/{model_id}/tags", {"tags": [{"key": "late", "value": "1"}]})
    missing = "m-" + "f" * 32
    api.error("PATCH", f"{LM}/{missing}/tags", {"tags": []}, status=404)
    api.error("DELETE", f"{LM}/{missing}", status=404, code="RESOURCE_DOES_NOT_EXIST")


@pytest.mark.labtrack_only
def test_tag_keys_with_slashes(api, experiment_id):
    """Tag keys may hold '/', percent-encoded in the path (Flask's router cannot route these)."""
    model_id = create(api, experiment_id)["info"]["model_id"]
    api.ok("PATCH", f"{LM}/{model_id}/tags", {"tags": [{"key": "b/c", "value": "3"}]})
    api.ok("DELETE", f"{LM}/{model_id}/tags/b%2Fc")
    assert "tags" not in api.get(f"{LM}/{model_id}")["model"]["info"]


@pytest.mark.labtrack_only
def test_unknown_subpaths(api, experiment_id):
    model_id = create(api, experiment_id)["info"]["model_id"]
    api.error("GET", f"{LM}/{model_id}/nope", status=404, code="ENDPOINT_NOT_FOUND")
    api.error("POST", f"{LM}/{model_id}/nope", {}, status=404, code="ENDPOINT_NOT_FOUND")


def test_search(api):
    exp_a, exp_b = api.create_experiment(), api.create_experiment()
    ids = {}
    for exp, name, lr, status in (
        (exp_a, "alpha", "0.1", "LOGGED_MODEL_READY"),
        (exp_a, "beta", "0.2", None),
        (exp_b, "alpha", "0.3", "LOGGED_MODEL_READY"),
        (exp_b, "gamma", "0.4", None),
    ):
        model = create(
            api,
            exp,
            name=name,
            params=[{"key": "lr", "value": lr}],
            tags=[{"key": "kind", "value": name[0]}],
        )
        model_id = model["info"]["model_id"]
        ids[(exp, name)] = model_id
        time.sleep(0.003)  # distinct creation times, so "newest first" is one order
        if status:
            api.ok("PATCH", f"{LM}/{model_id}", {"model_id": model_id, "status": status})

    def search(**body):
        found = api.post(f"{LM}/search", {"experiment_ids": [exp_a, exp_b], **body})
        return [m["info"]["model_id"] for m in found.get("models", [])], found

    # default order: newest first
    everything, _ = search()
    assert everything == list(reversed(ids.values()))
    got, _ = search(filter="name = 'alpha'")
    assert set(got) == {ids[(exp_a, "alpha")], ids[(exp_b, "alpha")]}
    got, _ = search(filter="params.lr IN ('0.3', '0.4') AND name = 'alpha'")
    assert got == [ids[(exp_b, "alpha")]]
    if not api.server.is_mlflow:  # the stock server compares status as an integer column
        got, _ = search(filter="status = 'LOGGED_MODEL_READY'")
        assert set(got) == {ids[(exp_a, "alpha")], ids[(exp_b, "alpha")]}
    got, _ = search(filter="tags.kind IN ('b', 'g')")
    assert set(got) == {ids[(exp_a, "beta")], ids[(exp_b, "gamma")]}
    got, _ = search(
        filter="attributes.name LIKE '%a'", order_by=[{"field_name": "name", "ascending": True}]
    )
    assert got[0] in (ids[(exp_a, "alpha")], ids[(exp_b, "alpha")]) and len(got) == 4
    got, _ = search(order_by=[{"field_name": "creation_timestamp", "ascending": True}])
    assert got == list(ids.values())
    only_b = api.post(f"{LM}/search", {"experiment_ids": [exp_b]})["models"]
    assert {m["info"]["model_id"] for m in only_b} == {ids[(exp_b, "alpha")], ids[(exp_b, "gamma")]}
    # paging
    seen, token = [], None
    while True:
        body = {"experiment_ids": [exp_a, exp_b], "max_results": 3}
        if token:
            body["page_token"] = token
        page = api.post(f"{LM}/search", body)
        seen += [m["info"]["model_id"] for m in page["models"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == everything
    api.error(
        "POST", f"{LM}/search", {"experiment_ids": [exp_a], "filter": "bogus.x = 1"}, status=400
    )
    api.error(
        "POST",
        f"{LM}/search",
        {"experiment_ids": [exp_a], "order_by": [{"field_name": "nope"}]},
        status=400,
    )
    api.error("POST", f"{LM}/search", {}, status=400, code="INVALID_PARAMETER_VALUE")


def test_client_logged_model_api(client, experiment_id):
    run = client.create_run(experiment_id)
    model = client.create_logged_model(
        experiment_id,
        name="clf",
        source_run_id=run.info.run_id,
        params={"c": "1"},
        tags={"t": "v"},
        model_type="sklearn",
    )
    assert model.status == LoggedModelStatus.PENDING
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.set_logged_model_tags(model.model_id, {"x": "y"})
    client.delete_logged_model_tag(model.model_id, "t")
    client.log_model_params(model.model_id, {"d": "2"})
    got = client.get_logged_model(model.model_id)
    assert got.status == LoggedModelStatus.READY
    assert got.tags == {"x": "y"} and got.params == {"c": "1", "d": "2"}
    assert got.model_type == "sklearn" and got.source_run_id == run.info.run_id
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string="name = 'clf' AND params.c = '1'"
    )
    assert [m.model_id for m in found] == [model.model_id]
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException):
        client.get_logged_model(model.model_id)


def test_metrics_logged_with_a_model_id_attach_to_the_model(client, experiment_id):
    """log-metric and log-batch with ``model_id`` record the metric on the run and the model."""
    from mlflow.entities import Metric

    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id, name="scored")
    run_id = run.info.run_id
    client.log_metric(run_id, "acc", 0.7, timestamp=1, step=0, model_id=model.model_id)
    client.log_batch(
        run_id,
        metrics=[
            Metric("f1", 0.5, 2, 1, model_id=model.model_id, run_id=run_id),
            Metric("loss", 0.1, 2, 1, run_id=run_id),
        ],
    )
    got = client.get_logged_model(model.model_id)
    assert sorted((m.key, m.value, m.step) for m in got.metrics) == [
        ("acc", 0.7, 0),
        ("f1", 0.5, 1),
    ]
    assert all(m.run_id == run_id for m in got.metrics)
    assert client.get_run(run_id).data.metrics == {"acc": 0.7, "f1": 0.5, "loss": 0.1}


def test_artifact_listing_and_download(api, experiment_id):
    model = create(api, experiment_id)
    model_id = model["info"]["model_id"]
    root = model["info"]["artifact_uri"].split(":", 1)[1].lstrip("/")
    for path, data in (("MLmodel", b"flavors: {}\n"), ("sub/weights.bin", b"\x00" * 10)):
        r = api("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{root}/{path}", content=data)
        assert r.status_code == 200, r.text
    listing = api.get(f"{LM}/{model_id}/artifacts/directories")
    assert listing["root_uri"] == model["info"]["artifact_uri"]
    assert sorted((f["path"], f["is_dir"], f.get("file_size")) for f in listing["files"]) == [
        ("MLmodel", False, 12),
        ("sub", True, None),
    ]
    sub = api.get(f"{LM}/{model_id}/artifacts/directories", artifact_directory_path="sub")
    assert sub["files"] == [{"path": "sub/weights.bin", "is_dir": False, "file_size": 10}]
    r = api(
        "GET",
        f"/ajax-api/2.0/mlflow/{LM}/{model_id}/artifacts/files",
        params={"artifact_file_path": "MLmodel"},
    )
    assert r.status_code == 200 and r.content == b"flavors: {}\n"
    r = api(
        "GET",
        f"/ajax-api/2.0/mlflow/{LM}/{model_id}/artifacts/files",
        params={"artifact_file_path": "../../etc/passwd"},
    )
    assert r.status_code == 400
    r = api("GET", f"/ajax-api/2.0/mlflow/{LM}/{model_id}/artifacts/files")
    assert r.status_code == 400


def test_runs_log_model_appends_history_tag(api, experiment_id):
    """The 2.x client's optional ``runs/log-model``: the MLmodel goes to a run tag."""
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    model_json = {
        "run_id": run_id,
        "artifact_path": "model",
        "utc_time_created": "2026-01-01 00:00:00.000000",
        "model_uuid": "u1",
        "flavors": {"python_function": {"loader_module": "mlflow.sklearn", "config": {"x": 1}}},
        "signature": {"inputs": '[{"type": "double", "name": "x"}]'},
    }
    api.post("runs/log-model", {"run_id": run_id, "model_json": json.dumps(model_json)})
    api.post(
        "runs/log-model",
        {"run_id": run_id, "model_json": json.dumps({**model_json, "model_uuid": "u2"})},
    )
    tags = {t["key"]: t["value"] for t in api.get_run(run_id)["data"]["tags"]}
    history = json.loads(tags["mlflow.log-model.history"])
    assert [h["model_uuid"] for h in history] == ["u1", "u2"]
    assert "signature" not in history[0]
    assert history[0]["flavors"] == {"python_function": {"loader_module": "mlflow.sklearn"}}
    api.error(
        "POST",
        "runs/log-model",
        {"run_id": run_id, "model_json": "{not json"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-model",
        {"run_id": run_id, "model_json": json.dumps({"run_id": run_id})},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "runs/log-model",
        {"run_id": "0" * 32, "model_json": json.dumps(model_json)},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_registering_a_logged_model_tags_it(api, experiment_id):
    """Model-version create from ``models:/<id>`` (3.x register) records mlflow.modelVersions."""
    run_id = api.create_run(experiment_id)["info"]["run_id"]
    model = create(api, experiment_id, source_run_id=run_id)
    model_id = model["info"]["model_id"]
    name = unique("lm-reg")
    api.post("registered-models/create", {"name": name})
    mv = api.post(
        "model-versions/create",
        {"name": name, "source": f"models:/{model_id}", "model_id": model_id},
    )["model_version"]
    assert mv["run_id"] == run_id, "the version inherits the logged model's source run"
    assert mv["status"] == "READY"
    tags = {t["key"]: t["value"] for t in api.get(f"{LM}/{model_id}")["model"]["info"]["tags"]}
    assert json.loads(tags["mlflow.modelVersions"]) == [{"name": name, "version": 1}]
    uri = api.get("model-versions/get-download-uri", name=name, version="1")["artifact_uri"]
    assert uri == model["info"]["artifact_uri"]
    other = create(api, experiment_id)["info"]["model_id"]
    for body in (
        {"source": f"models:/{model_id}", "model_id": other},
        {"source": f"models:/{model_id}"},
        {"source": f"runs:/{run_id}/model", "model_id": model_id},
        {"source": f"{model['info']['artifact_uri']}/../../x", "model_id": model_id},
        {"source": f"models:/{model_id}", "model_id": "m-" + "1" * 32},
    ):
        api.error(
            "POST",
            "model-versions/create",
            {"name": name, **body},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )
    inside = api.post(
        "model-versions/create",
        {"name": name, "source": f"{model['info']['artifact_uri']}/sub", "model_id": model_id},
    )["model_version"]
    assert inside["version"] == "2"
