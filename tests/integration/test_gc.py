"""``labtrack gc``: permanent removal of deleted runs and experiments, rows and artifacts.

Each store (local disk with SQLite and PostgreSQL, S3 with SQLite) gets a fresh server for this
module, and gc runs as the real command against that server's database and artifact store,
while the server keeps running.
"""

from __future__ import annotations

import os
import time

import pytest
from mlflow.exceptions import MlflowException

from artifact_support import STORES, ArtServer, start_art_server, start_moto
from conftest import unique

pytestmark = pytest.mark.labtrack_only

ART = "/api/2.0/mlflow-artifacts/artifacts"
RUN_TABLES = ("metrics", "latest_metrics", "params", "run_tags", "run_inputs", "input_tags")


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory):
    moto = start_moto(tmp_path_factory.mktemp("moto-gc"))
    yield moto
    moto.stop()


@pytest.fixture(scope="module", params=STORES)
def art(request) -> ArtServer:
    kind, backend = request.param
    moto = request.getfixturevalue("moto_s3") if kind == "s3" else None
    server = start_art_server(kind, backend, moto)
    yield server
    server.srv.stop()


@pytest.fixture
def client(art):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=art.url)


@pytest.fixture
def db(art):
    from labtrack.store.db import Database

    database = Database(art.srv.backend_uri)
    yield database
    database.close()


def rel(uri: str) -> str:
    return uri.split(":", 1)[1].strip("/")


def populate(client, experiment_id: str, files: int = 2) -> str:
    """A run with metrics, params, tags, a dataset input and a few artifacts."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

    run = client.create_run(experiment_id)
    rid = run.info.run_id
    client.log_batch(
        rid,
        metrics=[Metric("loss", 0.5, 1, 0), Metric("loss", 0.25, 2, 1)],
        params=[Param("alpha", "1")],
        tags=[RunTag("team", "a")],
    )
    dataset = Dataset(name="d", digest=unique("dg"), source_type="local", source="/data")
    client.log_inputs(rid, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    for i in range(files):
        client.log_text(rid, f"file {i}", f"out/f{i}.txt")
    return rid


def run_rows(db, run_id: str) -> dict[str, int]:
    def count(conn):
        pk = conn.scalar("SELECT run_pk FROM runs WHERE run_uuid = ?", (run_id,))
        if pk is None:
            return {}
        found = {"runs": 1}
        for table in RUN_TABLES:
            found[table] = conn.scalar(f"SELECT COUNT(*) FROM {table} WHERE run_pk = ?", (pk,))
        return found

    return db.run_read(count)


def test_gc_removes_rows_and_files_and_frees_names(art, client, db):
    keep_exp = client.create_experiment(unique("gc-keep"))
    kept = populate(client, keep_exp)
    doomed = populate(client, keep_exp, files=3)
    client.delete_run(doomed)
    name = unique("gc-exp")
    gone_exp = client.create_experiment(name)
    exp_runs = [populate(client, gone_exp) for _ in range(2)]
    client.delete_experiment(gone_exp)
    doomed_uri = client.get_run(doomed).info.artifact_uri
    exp_location = client.get_experiment(gone_exp).artifact_location
    assert len(art.stored_files(rel(doomed_uri))) == 3
    assert len(art.stored_files(rel(exp_location))) == 4
    assert run_rows(db, doomed)["metrics"] == 2

    # --dry-run: says what it would do, changes nothing.
    dry = art.gc("--dry-run", check=True)
    assert doomed in dry.stdout and f"experiment {gone_exp}" in dry.stdout
    assert "Would remove" in dry.stdout and "Would free" in dry.stdout
    assert len(art.stored_files(rel(doomed_uri))) == 3
    assert run_rows(db, doomed)["runs"] == 1
    # --older-than: just deleted is too recent.
    recent = art.gc("--older-than", "1d", check=True)
    assert "deleted too recently" in recent.stdout
    assert run_rows(db, doomed)["runs"] == 1

    result = art.gc(check=True)
    assert doomed in result.stdout and "Freed" in result.stdout
    assert run_rows(db, doomed) == {}
    for rid in exp_runs:
        assert run_rows(db, rid) == {}
    assert art.stored_files(rel(doomed_uri)) == {}
    assert art.stored_files(rel(exp_location)) == {}
    with pytest.raises(MlflowException) as err:
        client.get_run(doomed)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment_by_name(name) is None
    assert (
        db.run_read(
            lambda c: c.scalar(
                "SELECT COUNT(*) FROM datasets WHERE experiment_id = ?", (int(gone_exp),)
            )
        )
        == 0
    )
    # The name is free again.
    again = client.create_experiment(name)
    assert again != gone_exp
    # What was not deleted is untouched.
    assert run_rows(db, kept)["metrics"] == 2
    assert len(art.stored_files(rel(client.get_run(kept).info.artifact_uri))) == 2
    assert client.get_run(kept).data.params == {"alpha": "1"}


def test_gc_by_id(art, client, db):
    exp = client.create_experiment(unique("gc-ids"))
    a, b = populate(client, exp), populate(client, exp)
    client.delete_run(a)
    client.delete_run(b)
    result = art.gc("--run-ids", a, check=True)
    assert a in result.stdout and b not in result.stdout
    assert run_rows(db, a) == {}
    assert run_rows(db, b)["runs"] == 1

    active = populate(client, exp)
    refused = art.gc("--run-ids", active)
    assert refused.returncode != 0 and "not in the deleted state" in refused.stderr
    assert run_rows(db, active)["runs"] == 1
    refused = art.gc("--experiment-ids", exp)
    assert refused.returncode != 0 and "not in the deleted state" in refused.stderr
    missing = art.gc("--run-ids", "f" * 32)
    assert missing.returncode != 0 and "does not exist" in missing.stderr

    name = client.get_experiment(exp).name
    client.delete_experiment(exp)
    result = art.gc("--experiment-ids", exp, check=True)
    assert f"experiment {exp}" in result.stdout
    assert run_rows(db, b) == {} and run_rows(db, active) == {}
    assert client.get_experiment_by_name(name) is None
    with pytest.raises(MlflowException):
        client.get_experiment(exp)


def test_gc_never_touches_runs_backing_model_versions(art, client, db):
    exp = client.create_experiment(unique("gc-mv"))
    rid = populate(client, exp)
    client.log_text(rid, "flavors: {}", "model/MLmodel")
    model = unique("gc-model")
    try:
        client.create_registered_model(model)
    except MlflowException as exc:
        if exc.error_code == "ENDPOINT_NOT_FOUND":
            pytest.skip("the model registry is not available on this server")
        raise
    version = client.create_model_version(model, f"runs:/{rid}/model", run_id=rid)
    uri = client.get_run(rid).info.artifact_uri
    client.delete_run(rid)

    result = art.gc("--run-ids", rid, check=True)
    assert f"Kept run {rid}" in result.stdout and "registered model" in result.stdout
    assert run_rows(db, rid)["runs"] == 1
    assert len(art.stored_files(rel(uri))) == 3

    client.delete_experiment(exp)
    result = art.gc(check=True)
    assert f"Kept experiment {exp}" in result.stdout
    assert client.get_experiment(exp).lifecycle_stage == "deleted"
    r = art.http.get(
        "/model-versions/get-artifact",
        params={"name": model, "version": version.version, "path": "MLmodel"},
    )
    assert r.status_code == 200 and r.content == b"flavors: {}"

    # Once the version is deleted, nothing holds the run back.
    client.delete_model_version(model, version.version)
    result = art.gc(check=True)
    assert run_rows(db, rid) == {}
    assert art.stored_files(rel(uri)) == {}


def test_gc_sweeps_abandoned_multipart_uploads(art, client):
    if art.kind != "local":
        pytest.skip("S3 keeps its own upload dates; they cannot be aged in a test")
    run = client.create_run(client.create_experiment(unique("gc-mpu")))
    folder = rel(run.info.artifact_uri)
    created = art.http.post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{folder}", json={"path": "x.bin", "num_parts": 1}
    ).json()
    import httpx

    assert httpx.put(created["credentials"][0]["url"], content=b"part").status_code == 200
    staging = art.local_root / ".labtrack" / "mpu" / created["upload_id"]
    assert staging.is_dir()
    fresh = art.gc(check=True)
    assert created["upload_id"] not in fresh.stdout and staging.is_dir()
    old = time.time() - 3 * 86_400
    os.utime(staging, (old, old))
    result = art.gc(check=True)
    assert f"abandoned multipart upload {created['upload_id']}" in result.stdout
    assert not staging.exists()
