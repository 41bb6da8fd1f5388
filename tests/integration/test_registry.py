"""Model registry: registered models, versions, tags, aliases, stages, search, history.

API reference §4.7 (endpoints), §3.5 (validation), §3.6 (lifecycle), §1.3 items 1 and 15, and
the ``rm_*``/``mv_*``/``alias_*`` probes of mlflow-flows.json, whose status codes, error codes and
key messages are encoded below. Tests marked ``labtrack_only`` cover our history API and the
places where labtrack answers a 4xx where the stock server answers 500.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from mlflow.exceptions import MlflowException


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def create_model(api, name: str | None = None, **fields) -> str:
    name = name or unique("rm")
    api.post("registered-models/create", {"name": name, **fields})
    return name


def new_run(api) -> tuple[str, str, str]:
    """(experiment_id, run_id, artifact_uri) of a fresh run."""
    experiment_id = api.create_experiment()
    info = api.create_run(experiment_id)["info"]
    return experiment_id, info["run_id"], info["artifact_uri"]


def create_version(api, name: str, run_id: str, path: str = "model", **fields) -> dict:
    body = {"name": name, "source": f"runs:/{run_id}/{path}", "run_id": run_id, **fields}
    return api.post("model-versions/create", body)["model_version"]


@pytest.fixture
def run(api):
    return new_run(api)


# --- registered models --------------------------------------------------------------------------
def test_create_and_get_shape(api):
    name = unique("rm")
    before = now_ms()
    rm = api.post(
        "registered-models/create",
        {"name": name, "description": "churn model", "tags": [{"key": "team", "value": "ds"}]},
    )["registered_model"]
    assert rm["name"] == name
    assert rm["creation_timestamp"] >= before - 5000
    assert rm["last_updated_timestamp"] == rm["creation_timestamp"]
    assert rm["description"] == "churn model"
    assert rm["tags"] == [{"key": "team", "value": "ds"}]
    assert "latest_versions" not in rm and "aliases" not in rm
    got = api.get("registered-models/get", name=name)["registered_model"]
    assert got == rm


def test_create_minimal_has_no_description(api):
    name = unique("rm")
    rm = api.post("registered-models/create", {"name": name})["registered_model"]
    assert set(rm) == {"name", "creation_timestamp", "last_updated_timestamp"}


def test_duplicate_and_invalid_names(api):
    name = create_model(api)
    body = api.error(
        "POST",
        "registered-models/create",
        {"name": name},
        status=400,
        code="RESOURCE_ALREADY_EXISTS",
    )
    assert body["message"] == f"Registered Model (name={name}) already exists."
    body = api.error(
        "POST",
        "registered-models/create",
        {"name": "a/b"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert body["message"] == "Invalid model name 'a/b'. Names cannot contain '/' or ':'."
    api.error(
        "POST",
        "registered-models/create",
        {"name": "a:b"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error("POST", "registered-models/create", {}, status=400, code="INVALID_PARAMETER_VALUE")
    api.error(
        "POST", "registered-models/create", {"name": ""}, status=400, code="INVALID_PARAMETER_VALUE"
    )


def test_get_missing(api):
    body = api.error(
        "GET",
        "registered-models/get",
        params={"name": "nope-" + unique()},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    assert "not found" in body["message"]
    api.error("GET", "registered-models/get", status=400, code="INVALID_PARAMETER_VALUE")


def test_update_description(api):
    name = create_model(api, description="old")
    rm = api.ok("PATCH", "registered-models/update", {"name": name, "description": "new"})
    assert rm["registered_model"]["description"] == "new"
    assert api.get("registered-models/get", name=name)["registered_model"]["description"] == "new"
    api.error(
        "PATCH",
        "registered-models/update",
        {"name": unique("x"), "description": "d"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_rename_moves_versions_tags_and_aliases(api, run):
    _, run_id, _ = run
    name = create_model(api, tags=[{"key": "k", "value": "v"}])
    create_version(api, name, run_id)
    api.post("registered-models/alias", {"name": name, "alias": "champion", "version": "1"})
    new_name = unique("renamed")
    rm = api.post("registered-models/rename", {"name": name, "new_name": new_name})[
        "registered_model"
    ]
    assert rm["name"] == new_name
    assert rm["latest_versions"][0]["name"] == new_name
    assert rm["aliases"] == [{"alias": "champion", "version": "1"}]
    assert rm["tags"] == [{"key": "k", "value": "v"}]
    api.error("GET", "registered-models/get", params={"name": name}, status=404)
    mv = api.get("registered-models/alias", name=new_name, alias="champion")["model_version"]
    assert mv["name"] == new_name and mv["version"] == "1"
    other = create_model(api)
    api.error(
        "POST",
        "registered-models/rename",
        {"name": new_name, "new_name": other},
        status=400,
        code="RESOURCE_ALREADY_EXISTS",
    )
    api.error(
        "POST",
        "registered-models/rename",
        {"name": new_name},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_delete_cascades_and_name_is_reusable(api, run):
    _, run_id, _ = run
    name = create_model(api, tags=[{"key": "k", "value": "v"}])
    create_version(api, name, run_id)
    create_version(api, name, run_id)
    api.post("registered-models/alias", {"name": name, "alias": "a", "version": "2"})
    assert api.ok("DELETE", "registered-models/delete", {"name": name}) == {}
    api.error("GET", "registered-models/get", params={"name": name}, status=404)
    api.error("GET", "model-versions/get", params={"name": name, "version": "1"}, status=404)
    hits = api.get("model-versions/search", filter=f"name = '{name}'")
    assert hits.get("model_versions", []) == []
    # Recreated, the model starts again at version 1 with no tags or aliases.
    create_model(api, name)
    assert create_version(api, name, run_id)["version"] == "1"
    rm = api.get("registered-models/get", name=name)["registered_model"]
    assert "tags" not in rm and "aliases" not in rm
    api.error("DELETE", "registered-models/delete", {"name": unique("x")}, status=404)


def test_delete_requires_json_body_not_query(api):
    """DELETE carries a JSON body (§1.3 item 4); the query string is not read."""
    name = create_model(api)
    api.error(
        "DELETE",
        "registered-models/delete",
        params={"name": name},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_registered_model_tags(api):
    name = create_model(api)
    api.post("registered-models/set-tag", {"name": name, "key": "a", "value": "1"})
    api.post("registered-models/set-tag", {"name": name, "key": "a", "value": "2"})
    api.post("registered-models/set-tag", {"name": name, "key": "b.c", "value": ""})
    tags = api.get("registered-models/get", name=name)["registered_model"]["tags"]
    assert tags == [{"key": "a", "value": "2"}, {"key": "b.c", "value": ""}]
    api.ok("DELETE", "registered-models/delete-tag", {"name": name, "key": "a"})
    api.ok("DELETE", "registered-models/delete-tag", {"name": name, "key": "missing"})  # no error
    tags = api.get("registered-models/get", name=name)["registered_model"]["tags"]
    assert tags == [{"key": "b.c", "value": ""}]
    api.error(
        "POST",
        "registered-models/set-tag",
        {"name": name, "key": "../x", "value": "v"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "registered-models/set-tag",
        {"name": name, "key": "k" * 251, "value": "v"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "registered-models/set-tag",
        {"name": name, "key": "k", "value": "v" * 100_001},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.post("registered-models/set-tag", {"name": name, "key": "big", "value": "v" * 100_000})
    api.error(
        "POST",
        "registered-models/set-tag",
        {"name": unique("x"), "key": "k", "value": "v"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


# --- model versions ---------------------------------------------------------------------------
def test_create_version_shape(api, run):
    _, run_id, _ = run
    name = create_model(api)
    mv = api.post(
        "model-versions/create",
        {
            "name": name,
            "source": f"runs:/{run_id}/model",
            "run_id": run_id,
            "description": "first",
            "run_link": "http://x/run",
            "tags": [{"key": "t", "value": "v"}],
        },
    )["model_version"]
    assert mv["name"] == name
    assert mv["version"] == "1"
    assert mv["status"] == "READY", "an absent status makes the client poll for 300 s"
    assert mv["current_stage"] == "None"
    assert mv["source"] == f"runs:/{run_id}/model"
    assert mv["run_id"] == run_id
    assert mv["description"] == "first"
    assert mv["run_link"] == "http://x/run"
    assert mv["tags"] == [{"key": "t", "value": "v"}]
    assert mv["creation_timestamp"] == mv["last_updated_timestamp"]
    got = api.get("model-versions/get", name=name, version="1")["model_version"]
    assert got == mv
    rm = api.get("registered-models/get", name=name)["registered_model"]
    assert rm["last_updated_timestamp"] >= mv["creation_timestamp"]
    assert [v["version"] for v in rm["latest_versions"]] == ["1"]


def test_create_version_defaults_emit_empty_strings(api):
    name = create_model(api)
    mv = api.post("model-versions/create", {"name": name, "source": "s3://bucket/m"})[
        "model_version"
    ]
    assert mv["description"] == "" and mv["run_link"] == "" and mv["run_id"] == ""
    assert "tags" not in mv and "aliases" not in mv


def test_create_version_for_missing_model(api):
    api.error(
        "POST",
        "model-versions/create",
        {"name": unique("x"), "source": "s3://b/k"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.error("POST", "model-versions/create", {"name": create_model(api)}, status=400)


def test_sources_accepted(api, run):
    experiment_id, run_id, artifact_uri = run
    name = create_model(api)
    for body in (
        {"source": f"runs:/{run_id}/model", "run_id": run_id},
        {"source": f"{artifact_uri}/model", "run_id": run_id},
        {
            "source": f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/deep/model",
            "run_id": run_id,
        },
        {"source": "s3://bucket/path/model"},
        {"source": "gs://bucket/model", "run_id": run_id},
        {"source": f"models:/{name}/1"},
    ):
        mv = api.post("model-versions/create", {"name": name, **body})["model_version"]
        assert mv["status"] == "READY"


@pytest.mark.parametrize(
    "source",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "relative/path",
        "runs:/{other}/model",
        "mlflow-artifacts:/{exp}/{run}/artifacts/../../{other}/artifacts",
        "mlflow-artifacts:/{exp}/{run}/artifacts/%2E%2E/x",
        "mlflow-artifacts:/{exp}/{other}/artifacts/model",
        "http://h/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/model",
        "s3://bucket/a/../b",
        "models:/m-0123456789abcdef0123456789abcdef",
    ],
)
def test_sources_refused(api, run, source):
    experiment_id, run_id, _ = run
    _, other, _ = new_run(api)
    name = create_model(api)
    source = source.format(exp=experiment_id, run=run_id, other=other)
    body = api.error(
        "POST",
        "model-versions/create",
        {"name": name, "source": source, "run_id": run_id},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert "source" in body["message"]


def test_sources_probe_message(api):
    """Probe ``mv_create_bad_source``: a local path without its run is refused."""
    name = create_model(api)
    body = api.error(
        "POST",
        "model-versions/create",
        {"name": name, "source": "/etc/passwd"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert body["message"].startswith("Invalid model version source: '/etc/passwd'.")


def test_mlflow_artifacts_source_needs_run_id(api, run):
    experiment_id, run_id, _ = run
    name = create_model(api)
    api.error(
        "POST",
        "model-versions/create",
        {"name": name, "source": f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/model"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_registry_reference_source_is_resolved(api, run):
    _, run_id, _ = run
    src_name = create_model(api)
    create_version(api, src_name, run_id)
    api.post("registered-models/alias", {"name": src_name, "alias": "gold", "version": "1"})
    name = create_model(api)
    mv = api.post("model-versions/create", {"name": name, "source": f"models:/{src_name}@gold"})[
        "model_version"
    ]
    assert mv["source"] == f"models:/{src_name}/1"
    assert mv["run_id"] == run_id
    uri = api.get("model-versions/get-download-uri", name=name, version=mv["version"])
    assert uri["artifact_uri"] == f"runs:/{run_id}/model"
    api.error(
        "POST",
        "model-versions/create",
        {"name": name, "source": f"models:/{src_name}/1", "run_id": "0" * 32},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_version_parameter_must_be_integer(api):
    name = create_model(api)
    body = api.error(
        "GET",
        "model-versions/get",
        params={"name": name, "version": "x"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert body["message"] == "Parameter 'version' must be an integer, got 'x'."
    api.error(
        "GET",
        "model-versions/get",
        params={"name": name, "version": "7"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_update_version_description(api, run):
    name = create_model(api)
    create_version(api, name, run[1])
    mv = api.ok(
        "PATCH", "model-versions/update", {"name": name, "version": "1", "description": "d"}
    )
    assert mv["model_version"]["description"] == "d"
    assert (
        mv["model_version"]["last_updated_timestamp"] >= mv["model_version"]["creation_timestamp"]
    )


def test_version_tags(api, run):
    name = create_model(api)
    create_version(api, name, run[1])
    api.post("model-versions/set-tag", {"name": name, "version": "1", "key": "k", "value": "1"})
    api.post("model-versions/set-tag", {"name": name, "version": "1", "key": "k", "value": "2"})
    mv = api.get("model-versions/get", name=name, version="1")["model_version"]
    assert mv["tags"] == [{"key": "k", "value": "2"}]
    api.ok("DELETE", "model-versions/delete-tag", {"name": name, "version": "1", "key": "k"})
    api.ok("DELETE", "model-versions/delete-tag", {"name": name, "version": "1", "key": "k"})
    assert "tags" not in api.get("model-versions/get", name=name, version="1")["model_version"]
    api.error(
        "POST",
        "model-versions/set-tag",
        {"name": name, "version": "9", "key": "k", "value": "v"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_delete_version_is_soft_and_numbers_are_not_reused(api, run):
    name = create_model(api)
    for _ in range(3):
        create_version(api, name, run[1])
    api.post("registered-models/alias", {"name": name, "alias": "best", "version": "3"})
    api.ok("DELETE", "model-versions/delete", {"name": name, "version": "3"})
    api.error("GET", "model-versions/get", params={"name": name, "version": "3"}, status=404)
    api.error(
        "GET",
        "registered-models/alias",
        params={"name": name, "alias": "best"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    rm = api.get("registered-models/get", name=name)["registered_model"]
    assert "aliases" not in rm
    assert [v["version"] for v in rm["latest_versions"]] == ["2"]
    assert create_version(api, name, run[1])["version"] == "4"
    api.error("DELETE", "model-versions/delete", {"name": name, "version": "3"}, status=404)
    found = api.get("model-versions/search", filter=f"name = '{name}'")["model_versions"]
    assert sorted(v["version"] for v in found) == ["1", "2", "4"]


def test_transition_stage(api, run):
    name = create_model(api)
    for _ in range(3):
        create_version(api, name, run[1])
    mv = api.post(
        "model-versions/transition-stage", {"name": name, "version": "1", "stage": "staging"}
    )["model_version"]
    assert mv["current_stage"] == "Staging"
    api.post(
        "model-versions/transition-stage", {"name": name, "version": "2", "stage": "PRODUCTION"}
    )
    mv = api.post(
        "model-versions/transition-stage",
        {"name": name, "version": "3", "stage": "Staging", "archive_existing_versions": True},
    )["model_version"]
    assert mv["current_stage"] == "Staging"
    stages = {
        v["version"]: v["current_stage"]
        for v in api.get("model-versions/search", filter=f"name = '{name}'")["model_versions"]
    }
    assert stages == {"1": "Archived", "2": "Production", "3": "Staging"}
    body = api.error(
        "POST",
        "model-versions/transition-stage",
        {"name": name, "version": "1", "stage": "Bogus"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert body["message"] == (
        "Invalid Model Version stage: Bogus. Value must be one of None, Staging, Production, "
        "Archived."
    )


@pytest.mark.labtrack_only
def test_archive_existing_needs_an_active_stage(api, run):
    """The stock server answers 500 (retried by the client for minutes); labtrack a 400."""
    name = create_model(api)
    create_version(api, name, run[1])
    api.error(
        "POST",
        "model-versions/transition-stage",
        {"name": name, "version": "1", "stage": "Archived", "archive_existing_versions": True},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_latest_versions(api, run):
    name = create_model(api)
    for _ in range(4):
        create_version(api, name, run[1])
    api.post("model-versions/transition-stage", {"name": name, "version": "1", "stage": "Staging"})
    api.post("model-versions/transition-stage", {"name": name, "version": "2", "stage": "Staging"})
    api.post(
        "model-versions/transition-stage", {"name": name, "version": "3", "stage": "Production"}
    )
    got = api.get("registered-models/get-latest-versions", name=name)["model_versions"]
    assert {v["current_stage"]: v["version"] for v in got} == {
        "Staging": "2",
        "Production": "3",
        "None": "4",
    }
    got = api.post("registered-models/get-latest-versions", {"name": name, "stages": ["staging"]})
    assert [v["version"] for v in got["model_versions"]] == ["2"]
    r = api(
        "GET",
        "registered-models/get-latest-versions",
        params={"name": name, "stages": ["Archived"]},
    )
    assert r.status_code == 200 and r.json().get("model_versions", []) == []
    api.error(
        "GET", "registered-models/get-latest-versions", params={"name": unique("x")}, status=404
    )


def test_aliases(api, run):
    name = create_model(api)
    create_version(api, name, run[1])
    create_version(api, name, run[1])
    assert (
        api.post("registered-models/alias", {"name": name, "alias": "champ", "version": "1"}) == {}
    )
    api.post("registered-models/alias", {"name": name, "alias": "champ", "version": "2"})  # moves
    api.post("registered-models/alias", {"name": name, "alias": "old", "version": "1"})
    mv = api.get("registered-models/alias", name=name, alias="champ")["model_version"]
    assert mv["version"] == "2" and mv["aliases"] == ["champ"]
    rm = api.get("registered-models/get", name=name)["registered_model"]
    assert rm["aliases"] == [{"alias": "champ", "version": "2"}, {"alias": "old", "version": "1"}]
    assert api.get("model-versions/get", name=name, version="1")["model_version"]["aliases"] == [
        "old"
    ]
    api.ok("DELETE", "registered-models/alias", {"name": name, "alias": "champ"})
    api.ok("DELETE", "registered-models/alias", {"name": name, "alias": "champ"})  # idempotent
    body = api.error(
        "GET",
        "registered-models/alias",
        params={"name": name, "alias": "champ"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert body["message"] == "Registered model alias champ not found."


def test_alias_rules(api, run):
    name = create_model(api)
    create_version(api, name, run[1])
    for alias, message in (
        ("latest", "'latest' alias name (case insensitive) is reserved."),
        ("LaTeSt", "'latest' alias name (case insensitive) is reserved."),
        ("v1", "Version alias name 'v1' is reserved."),
        ("V12", "Version alias name 'V12' is reserved."),
    ):
        body = api.error(
            "POST",
            "registered-models/alias",
            {"name": name, "alias": alias, "version": "1"},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )
        assert body["message"] == message
    for alias in ("a b", "a/b", "x" * 256):
        api.error(
            "POST",
            "registered-models/alias",
            {"name": name, "alias": alias, "version": "1"},
            status=400,
            code="INVALID_PARAMETER_VALUE",
        )
    api.error(
        "POST",
        "registered-models/alias",
        {"name": name, "alias": "ok", "version": "5"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.error(
        "POST",
        "registered-models/alias",
        {"name": name, "alias": "ok", "version": "one"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    # probe alias_delete_qs: the alias delete reads its JSON body only
    body = api.error(
        "DELETE",
        "registered-models/alias",
        params={"name": name, "alias": "ok"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    assert "Missing value for required parameter 'name'" in body["message"]
    # 'latest' resolves to the newest version when read
    create_version(api, name, run[1])
    assert (
        api.get("registered-models/alias", name=name, alias="latest")["model_version"]["version"]
        == "2"
    )


def test_download_uri(api, run):
    experiment_id, run_id, artifact_uri = run
    name = create_model(api)
    create_version(api, name, run_id)
    api.post(
        "model-versions/create", {"name": name, "source": f"{artifact_uri}/m", "run_id": run_id}
    )
    assert api.get("model-versions/get-download-uri", name=name, version="1") == {
        "artifact_uri": f"runs:/{run_id}/model"
    }
    assert api.get("model-versions/get-download-uri", name=name, version="2") == {
        "artifact_uri": f"{artifact_uri}/m"
    }


def test_ajax_api_prefix(api, run):
    name = create_model(api)
    r = api("GET", "/ajax-api/2.0/mlflow/registered-models/get", params={"name": name})
    assert r.status_code == 200 and r.json()["registered_model"]["name"] == name


# --- the stock client ---------------------------------------------------------------------------
def test_client_roundtrip(client, api, run):
    _, run_id, _ = run
    name = unique("client")
    client.create_registered_model(name, tags={"a": "1"}, description="desc")
    mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, tags={"t": "v"})
    assert mv.version == "1" and mv.status == "READY"
    client.set_registered_model_alias(name, "prod", "1")
    assert client.get_model_version_by_alias(name, "prod").version == "1"
    client.set_model_version_tag(name, "1", "k", "v")
    client.update_model_version(name, "1", description="vd")
    got = client.get_model_version(name, "1")
    assert got.tags == {"t": "v", "k": "v"} and got.description == "vd" and got.aliases == ["prod"]
    rm = client.get_registered_model(name)
    assert rm.tags == {"a": "1"} and rm.aliases == {"prod": "1"}
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert client.get_model_version_download_uri(name, "1") == f"runs:/{run_id}/model"
    client.delete_registered_model_alias(name, "prod")
    client.delete_model_version(name, "1")
    with pytest.raises(MlflowException) as info:
        client.get_model_version(name, "1")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model(name)


def test_client_stage_api(client, api, run):
    name = unique("stages")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"runs:/{run[1]}/model", run_id=run[1])
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "production", archive_existing_versions=True)
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]
    assert client.get_model_version(name, "1").current_stage == "Archived"


# --- search -------------------------------------------------------------------------------------
def test_search_registered_models(api, client):
    prefix = unique("srm")
    names = [f"{prefix}-{i}" for i in range(7)]
    for i, name in enumerate(names):
        create_model(api, name, tags=[{"key": "parity", "value": "even" if i % 2 == 0 else "odd"}])
    found = api.get("registered-models/search", filter=f"name LIKE '{prefix}-%'")
    assert [m["name"] for m in found["registered_models"]] == names
    found = api.get(
        "registered-models/search", filter=f"name LIKE '{prefix}%' AND tags.parity = 'odd'"
    )
    assert [m["name"] for m in found["registered_models"]] == names[1::2]
    found = api.get("registered-models/search", filter=f"name ILIKE '{prefix.upper()}-_'")
    assert len(found["registered_models"]) == 7
    found = api.get("registered-models/search", filter=f"name = '{names[3]}'")
    assert [m["name"] for m in found["registered_models"]] == [names[3]]
    desc = api.get(
        "registered-models/search", filter=f"name LIKE '{prefix}%'", order_by=["name DESC"]
    )
    assert [m["name"] for m in desc["registered_models"]] == names[::-1]
    # paging with the stock client
    seen, token = [], None
    while True:
        page = client.search_registered_models(
            filter_string=f"name LIKE '{prefix}%'", max_results=3, page_token=token
        )
        seen += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert seen == names
    api.error("GET", "registered-models/search", params={"max_results": 1001}, status=400)
    api.error("GET", "registered-models/search", params={"filter": "run_id = 'x'"}, status=400)
    api.error("GET", "registered-models/search", params={"page_token": "garbage!"}, status=400)


def test_search_hides_prompts_unless_asked(api):
    prefix = unique("prm")
    create_model(api, f"{prefix}-model")
    create_model(
        api, f"{prefix}-prompt", tags=[{"key": "mlflow.prompt.is_prompt", "value": "true"}]
    )
    found = api.get("registered-models/search", filter=f"name LIKE '{prefix}%'")
    assert [m["name"] for m in found["registered_models"]] == [f"{prefix}-model"]
    found = api.get(
        "registered-models/search",
        filter=f"name LIKE '{prefix}%' AND tags.`mlflow.prompt.is_prompt` = 'true'",
    )
    assert [m["name"] for m in found["registered_models"]] == [f"{prefix}-prompt"]


def _bulk_create(server, jobs: list[dict], lanes: int = 16) -> None:
    """Register many versions quickly: 16 keep-alive stdlib connections in parallel (httpx's
    per-request overhead would make the client, not the server, the bottleneck)."""
    url = urlsplit(server.url)

    def work(chunk):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            for body in chunk:
                conn.request(
                    "POST",
                    f"{url.path}/api/2.0/mlflow/model-versions/create",
                    json.dumps(body),
                    {"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                data = response.read()
                assert response.status == 200, data
        finally:
            conn.close()

    chunks = [jobs[i::lanes] for i in range(lanes)]
    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(work, chunks))


def test_search_model_versions_at_scale(api, server, run):
    """3000 versions over 6 models: filters, ordering and paging return each exactly once."""
    _, run_id, _ = new_run(api)
    prefix = unique("bulk")
    names = [f"{prefix}-{i}" for i in range(6)]
    for name in names:
        create_model(api, name)
    # (name, version, source, run_id, fold) as the server will number them
    expected = []
    jobs = []
    for i in range(3000):
        name = names[i % 6]
        source = f"s3://bucket/{name}/{i}" if i % 2 else f"runs:/{run_id}/m{i}"
        owner = run_id if i % 2 == 0 else run[1]
        expected.append((name, i // 6 + 1, source, owner, str(i % 5)))
        jobs.append(
            {
                "name": name,
                "source": source,
                "run_id": owner,
                "tags": [{"key": "fold", "value": str(i % 5)}],
            }
        )
    # One model's versions go in order through one connection each, so numbers are known;
    # the six models are registered in parallel.
    started = time.monotonic()
    _bulk_create(server, jobs, lanes=6)
    print(f"registered 3000 versions in {time.monotonic() - started:.1f}s")

    def everything(filter_string: str, page_size: int, order_by=None) -> list[tuple[str, int]]:
        out, token = [], None
        while True:
            params = {"filter": filter_string, "max_results": page_size}
            if order_by:
                params["order_by"] = order_by
            if token:
                params["page_token"] = token
            page = api.get("model-versions/search", **params)
            out += [(v["name"], int(v["version"])) for v in page.get("model_versions", [])]
            token = page.get("next_page_token")
            if not token:
                return out

    def where(pred) -> set[tuple[str, int]]:
        return {(n, v) for n, v, src, owner, fold in expected if pred(n, v, src, owner, fold)}

    all_versions = everything(f"name LIKE '{prefix}-%'", 700)
    assert len(all_versions) == 3000 and set(all_versions) == where(lambda *_: True)
    assert sorted(v for n, v in all_versions if n == names[0]) == list(range(1, 501))
    one = everything(f"name = '{names[1]}' AND version_number > 400", 30, ["version_number ASC"])
    assert one == [(names[1], v) for v in range(401, 501)]
    in_list = everything(f"name IN ('{names[0]}', '{names[2]}') AND tags.fold = '3'", 70)
    assert set(in_list) == where(lambda n, v, s, o, f: n in names[0:3:2] and f == "3")
    s3 = everything(f"name LIKE '{prefix}%' AND source_path LIKE 's3://bucket/%'", 1000)
    assert set(s3) == where(lambda n, v, s, o, f: s.startswith("s3://"))
    by_run = everything(f"run_id = '{run_id}' AND name LIKE '{prefix}%'", 500)
    assert set(by_run) == where(lambda n, v, s, o, f: o == run_id)
    runs_in = everything(f"run_id IN ('{run_id}', '{run[1]}') AND name = '{names[0]}'", 999)
    assert len(runs_in) == 500
    if not server.is_mlflow:  # OR and parentheses are labtrack's extension of the grammar
        mixed = everything(
            f"name LIKE '{prefix}%' AND version_number <= 10 AND tags.fold != '0' OR "
            f"(name = '{names[5]}' AND version_number = 500)",
            7,
            ["name DESC", "version_number ASC"],
        )
        wanted = where(lambda n, v, s, o, f: v <= 10 and f != "0") | {(names[5], 500)}
        assert mixed == sorted(wanted, key=lambda nv: (nv[0], -nv[1]), reverse=True)
    newest = api.get(
        "model-versions/search",
        filter=f"name = '{names[2]}'",
        order_by=["version_number DESC"],
        max_results=3,
    )["model_versions"]
    assert [v["version"] for v in newest] == ["500", "499", "498"]
    models = api.get("registered-models/search", filter=f"name LIKE '{prefix}%'")
    assert [m["latest_versions"][0]["version"] for m in models["registered_models"]] == ["500"] * 6


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_version_numbers(api, server, run, round_):
    """16 clients registering versions of one model at once get 1..16 exactly (twice over)."""
    name = create_model(api)
    barrier = threading.Barrier(16)
    clients = [httpx.Client(base_url=server.url, timeout=60) for _ in range(16)]

    def register(http: httpx.Client) -> list[int]:
        got = []
        barrier.wait()
        for _ in range(2):
            r = http.post(
                "/api/2.0/mlflow/model-versions/create",
                json={"name": name, "source": f"runs:/{run[1]}/model", "run_id": run[1]},
            )
            assert r.status_code == 200, r.text
            got.append(int(r.json()["model_version"]["version"]))
        return got

    try:
        with ThreadPoolExecutor(16) as pool:
            results = [v for vs in pool.map(register, clients) for v in vs]
    finally:
        for http in clients:
            http.close()
    assert sorted(results) == list(range(1, 33))
    listed = api.get("model-versions/search", filter=f"name = '{name}'")["model_versions"]
    assert sorted(int(v["version"]) for v in listed) == list(range(1, 33))


# --- history (labtrack) -------------------------------------------------------------------------
HISTORY = "/api/2.0/labtrack/registered-models/history"


@pytest.mark.labtrack_only
def test_history_records_alias_stage_and_tag_changes(api, run):
    name = create_model(api)
    for _ in range(3):
        create_version(api, name, run[1])

    def step(path, body, method="POST"):
        api.ok(method, path, body)
        time.sleep(0.005)  # distinct millisecond timestamps

    step("registered-models/alias", {"name": name, "alias": "champion", "version": "1"})
    step("registered-models/alias", {"name": name, "alias": "champion", "version": "2"})
    step("registered-models/alias", {"name": name, "alias": "champion", "version": "2"})  # no-op
    step("model-versions/transition-stage", {"name": name, "version": "2", "stage": "Production"})
    step("model-versions/set-tag", {"name": name, "version": "2", "key": "ok", "value": "yes"})
    step("registered-models/set-tag", {"name": name, "key": "owner", "value": "ann"})
    step("registered-models/alias", {"name": name, "alias": "champion", "version": "3"})
    step("registered-models/alias", {"name": name, "alias": "champion"}, "DELETE")

    events = api.get(HISTORY, name=name)["events"]
    kinds = [(e["kind"], e.get("key"), e.get("old_value"), e.get("new_value")) for e in events]
    assert kinds == [
        ("model", "created", None, None),
        ("version", "created", None, f"runs:/{run[1]}/model"),
        ("version", "created", None, f"runs:/{run[1]}/model"),
        ("version", "created", None, f"runs:/{run[1]}/model"),
        ("alias", "champion", None, "1"),
        ("alias", "champion", "1", "2"),
        ("stage", None, "None", "Production"),
        ("version_tag", "ok", None, "yes"),
        ("model_tag", "owner", None, "ann"),
        ("alias", "champion", "2", "3"),
        ("alias", "champion", "3", None),
    ]
    assert all(e["user_id"] == "" for e in events)  # no auth: no user
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)

    alias_events = api.get(HISTORY, name=name, alias="champion")["events"]
    assert [e.get("new_value") for e in alias_events] == ["1", "2", "3", None]
    t1, t2, t3, t_del = (e["timestamp"] for e in alias_events)

    def at(ts):
        return api.get(HISTORY + "/alias-at", name=name, alias="champion", timestamp=ts).get(
            "version"
        )

    assert at(t1 - 1) is None
    assert at(t1) == "1"
    assert at(t2 - 1) == "1"
    assert at(t2) == "2"
    assert at(t3 - 1) == "2"
    assert at(t3) == "3"
    assert at(t_del) is None
    assert at(t_del + 100_000) is None

    staged = api.get(HISTORY, name=name, kind=["stage"], version="2")["events"]
    assert [(e["old_value"], e["new_value"]) for e in staged] == [("None", "Production")]
    window = api.get(HISTORY, name=name, since=t2, until=t3)["events"]
    assert window[0]["timestamp"] >= t2 and window[-1]["timestamp"] <= t3
    newest = api.get(HISTORY, name=name, newest_first="true", max_results=2)
    assert [e.get("new_value") for e in newest["events"]] == [None, "3"]
    assert newest["next_page_token"]


@pytest.mark.labtrack_only
def test_history_paging_rename_and_delete(api, run):
    name = create_model(api)
    create_version(api, name, run[1])
    for i in range(25):
        api.post(
            "model-versions/set-tag", {"name": name, "version": "1", "key": "i", "value": str(i)}
        )
    seen, token = [], None
    while True:
        params = {"name": name, "kind": ["version_tag"], "max_results": 10}
        if token:
            params["page_token"] = token
        page = api.get(HISTORY, **params)
        seen += [e["new_value"] for e in page["events"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [str(i) for i in range(25)]
    # the history follows a rename, and outlives a deletion
    api.post("registered-models/alias", {"name": name, "alias": "a", "version": "1"})
    new_name = unique("hist")
    api.post("registered-models/rename", {"name": name, "new_name": new_name})
    assert api.get(HISTORY, name=name)["events"] == []
    events = api.get(HISTORY, name=new_name)["events"]
    assert events[-1]["kind"] == "model" and events[-1]["key"] == "renamed"
    assert events[-1]["old_value"] == name and events[-1]["new_value"] == new_name
    api.ok("DELETE", "registered-models/delete", {"name": new_name})
    events = api.get(HISTORY, name=new_name)["events"]
    assert [(e["kind"], e.get("key"), e.get("old_value")) for e in events[-2:]] == [
        ("alias", "a", "1"),
        ("model", "deleted", None),
    ]


@pytest.mark.labtrack_only
def test_history_version_delete_records_alias_removal(api, run):
    name = create_model(api)
    create_version(api, name, run[1])
    api.post("registered-models/alias", {"name": name, "alias": "x", "version": "1"})
    api.ok("DELETE", "model-versions/delete", {"name": name, "version": "1"})
    events = api.get(HISTORY, name=name)["events"]
    assert [(e["kind"], e.get("key"), e.get("new_value")) for e in events[-2:]] == [
        ("alias", "x", None),
        ("version", "deleted", None),
    ]


@pytest.mark.labtrack_only
def test_history_errors(api):
    api.error("GET", HISTORY, status=400, code="INVALID_PARAMETER_VALUE")
    api.error("GET", HISTORY, params={"name": "x", "kind": "bogus"}, status=400)
    api.error("GET", HISTORY, params={"name": "x", "since": "yesterday"}, status=400)
    api.error("GET", HISTORY, params={"name": "x", "max_results": 0}, status=400)
    api.error("GET", HISTORY + "/alias-at", params={"name": "x", "alias": "a"}, status=400)
    assert api.get(HISTORY, name="never-existed-" + unique()) == {"events": []}
