"""The model registry with the last 2.x client (mlflow 2.22.5; flow v2:b of mlflow-flows.json).

2.x clients log models under the run (``runs/log-model`` records them) and register them with
an ``mlflow-artifacts:`` source plus ``run_id``. The user story: log with
``registered_model_name``, register an existing run's model, set an alias, load by alias, by
version and by ``runs:/``, predict and compare. The model flows need numpy, pandas and
scikit-learn in this venv; without them they skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os

import pytest
from mlflow.exceptions import MlflowException


def _need(module: str):
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module)


def test_registry_api_2x(client, fluent, unique_name):
    """Registry calls without a model library: names, versions, tags, aliases, stages, search."""
    fluent.set_experiment(unique_name("reg2x"))
    with fluent.start_run() as run:
        fluent.log_text("not really a model", "model/MLmodel")
    run_id = run.info.run_id
    name = unique_name("reg2x")
    client.create_registered_model(name, tags={"team": "ds"}, description="d")
    source = f"{run.info.artifact_uri}/model"
    v1 = client.create_model_version(name, source, run_id=run_id, tags={"a": "1"})
    v2 = client.create_model_version(name, source, run_id=run_id)
    assert (v1.version, v2.version) == ("1", "2") and v1.status == "READY"
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "production", archive_existing_versions=True)
    assert [v.version for v in client.get_latest_versions(name, ["Production"])] == ["2"]
    assert client.get_model_version(name, "1").current_stage == "Archived"
    client.set_model_version_tag(name, "2", "k", "v")
    client.update_registered_model(name, description="new")
    rm = client.get_registered_model(name)
    assert rm.description == "new" and rm.tags == {"team": "ds"} and rm.aliases == {"champion": "2"}
    found = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in found) == ["1", "2"]
    assert [m.name for m in client.search_registered_models(f"name = '{name}'")] == [name]
    assert client.get_model_version_download_uri(name, "1") == source
    with pytest.raises(MlflowException) as info:
        client.get_model_version_by_alias(name, "nope")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    new_name = unique_name("renamed2x")
    client.rename_registered_model(name, new_name)
    assert client.get_model_version_by_alias(new_name, "champion").name == new_name
    client.delete_model_version(new_name, "1")
    assert [v.version for v in client.search_model_versions(f"name = '{new_name}'")] == ["2"]
    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as info:
        client.get_registered_model(new_name)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_sklearn_story_2x(fluent, unique_name):
    np = _need("numpy")
    _need("sklearn")
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    client = fluent.MlflowClient()
    fluent.set_experiment(unique_name("story2x"))
    name = unique_name("churn2x")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)

    with fluent.start_run() as first:
        weak = LogisticRegression(C=0.01).fit(X[:, :1], y)
        mlflow.sklearn.log_model(
            weak,
            artifact_path="model",
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
        )
    with fluent.start_run() as second:
        strong = LogisticRegression(C=10.0).fit(X, y)
        mlflow.sklearn.log_model(strong, artifact_path="model", pip_requirements=["scikit-learn"])
    mv = fluent.register_model(f"runs:/{second.info.run_id}/model", name)
    assert mv.version == "2" and mv.status == "READY"

    v1 = client.get_model_version(name, "1")
    assert v1.run_id == first.info.run_id
    assert v1.source == f"{first.info.artifact_uri}/model", "2.x sends the mlflow-artifacts URI"
    # runs/log-model recorded the model on the run
    history = json.loads(client.get_run(first.info.run_id).data.tags["mlflow.log-model.history"])
    assert history[0]["artifact_path"] == "model" and "sklearn" in history[0]["flavors"]

    client.set_registered_model_alias(name, "champion", "2")
    by_alias = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_array_equal(by_alias.predict(X), strong.predict(X))
    by_version = mlflow.sklearn.load_model(f"models:/{name}/1")
    np.testing.assert_array_equal(by_version.predict(X[:, :1]), weak.predict(X[:, :1]))
    by_run = mlflow.pyfunc.load_model(f"runs:/{first.info.run_id}/model")
    np.testing.assert_array_equal(by_run.predict(X[:, :1]), weak.predict(X[:, :1]))


def test_pyfunc_story_2x(fluent, unique_name):
    pd = _need("pandas")
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def __init__(self, offset):
            self.offset = offset

        def predict(self, context, model_input, params=None):
            return model_input["x"] * 2 + self.offset

    client = fluent.MlflowClient()
    fluent.set_experiment(unique_name("pystory2x"))
    name = unique_name("doubler2x")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with fluent.start_run() as run:
        mlflow.pyfunc.log_model(
            "model",
            python_model=Doubler(1.0),
            registered_model_name=name,
            pip_requirements=["pandas"],
        )
    client.set_registered_model_alias(name, "prod", "1")
    for uri in (f"models:/{name}@prod", f"models:/{name}/1", f"runs:/{run.info.run_id}/model"):
        assert list(mlflow.pyfunc.load_model(uri).predict(frame)) == [3.0, 5.0], uri
