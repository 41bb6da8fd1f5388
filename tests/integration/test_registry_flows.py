"""The registry user story end to end with the stock 3.x client (mlflow-flows.json flow v3:b).

Train, log with ``registered_model_name``, register an existing run's model, set an alias, then
load by alias, by version, by ``runs:/`` and by logged-model id, predict and compare. Once for
scikit-learn and once for a custom pyfunc model. Needs the artifact proxy.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _pyfunc_class():
    import mlflow.pyfunc

    class AddNModel(mlflow.pyfunc.PythonModel):
        def __init__(self, n: float) -> None:
            self.n = n

        def predict(self, context, model_input, params=None):
            return model_input["x"] * 2 + self.n

    return AddNModel


def _data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def test_sklearn_story(fluent):
    from sklearn.linear_model import LogisticRegression

    mlflow = fluent
    client = mlflow.MlflowClient()
    mlflow.set_experiment(unique("story-sk"))
    name = unique("churn")
    X, y = _data()

    with mlflow.start_run() as first:
        weak = LogisticRegression(C=0.01).fit(X[:, :1], y)
        info1 = mlflow.sklearn.log_model(
            weak,
            name="model",
            registered_model_name=name,
            input_example=X[:2, :1],
            pip_requirements=["scikit-learn"],
        )
    assert str(info1.registered_model_version) == "1"

    # an existing run's model, registered afterwards
    with mlflow.start_run() as second:
        strong = LogisticRegression(C=10.0).fit(X, y)
        info2 = mlflow.sklearn.log_model(strong, name="model", pip_requirements=["scikit-learn"])
    mv = mlflow.register_model(f"runs:/{second.info.run_id}/model", name)
    assert mv.version == "2" and mv.status == "READY"

    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "challenger", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "2"

    expected_strong = strong.predict(X)
    by_alias = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_array_equal(by_alias.predict(X), expected_strong)
    by_version = mlflow.sklearn.load_model(f"models:/{name}/1")
    np.testing.assert_array_equal(by_version.predict(X[:, :1]), weak.predict(X[:, :1]))
    by_run = mlflow.pyfunc.load_model(f"runs:/{first.info.run_id}/model")
    np.testing.assert_array_equal(by_run.predict(X[:, :1]), weak.predict(X[:, :1]))
    by_id = mlflow.sklearn.load_model(info2.model_uri)
    assert info2.model_uri.startswith("models:/m-")
    np.testing.assert_array_equal(by_id.predict(X), expected_strong)
    challenger = mlflow.sklearn.load_model(f"models:/{name}@challenger")
    assert (challenger.predict(X[:, :1]) == weak.predict(X[:, :1])).all()

    # the registry side agrees with what was loaded
    rm = client.get_registered_model(name)
    assert rm.aliases == {"champion": "2", "challenger": "1"}
    assert {v.version for v in rm.latest_versions} == {"2"}
    logged = client.get_logged_model(info1.model_id)
    assert name in logged.tags["mlflow.modelVersions"]
    assert client.get_model_version(name, "1").run_id == first.info.run_id


def test_pyfunc_story(fluent):
    mlflow = fluent
    client = mlflow.MlflowClient()
    mlflow.set_experiment(unique("story-py"))
    name = unique("adder")
    model_class = _pyfunc_class()
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.5]})

    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model_class(3.0),
            registered_model_name=name,
            pip_requirements=["pandas"],
        )
    assert str(info.registered_model_version) == "1"
    with mlflow.start_run() as run2:
        mlflow.pyfunc.log_model(
            name="model", python_model=model_class(10.0), pip_requirements=["pandas"]
        )
    mlflow.register_model(f"runs:/{run2.info.run_id}/model", name)
    client.set_registered_model_alias(name, "prod", "1")

    expected = [3.0, 5.0, 8.0]
    for uri in (f"models:/{name}@prod", f"models:/{name}/1", f"runs:/{run.info.run_id}/model"):
        got = mlflow.pyfunc.load_model(uri).predict(frame)
        assert list(got) == expected, uri
    assert list(mlflow.pyfunc.load_model(f"models:/{name}/2").predict(frame)) == [10.0, 12.0, 15.0]
    # moving the alias changes what the serving side loads
    client.set_registered_model_alias(name, "prod", "2")
    assert list(mlflow.pyfunc.load_model(f"models:/{name}@prod").predict(frame))[0] == 10.0
