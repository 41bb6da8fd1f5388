"""examples/quickstart.ipynb runs top to bottom against a real labtrack server (issue #7), so
the example can never rot.

The notebook runs in a fresh ipykernel started with this interpreter (the venv's), whose
environment has only the tracking URI and a user's credentials, as a user's would; authentication
is on, so the Dask part also exercises the workers' minted token.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from auth_support import ADMIN, As, basic, make_user, start_auth_server

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("distributed")

pytestmark = [pytest.mark.labtrack_only, pytest.mark.slow, pytest.mark.timeout(900)]

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"
KERNEL = "labtrack-test-python"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs"


@pytest.fixture(scope="module")
def srv():
    server = start_auth_server("sqlite")
    yield server
    server.stop()


def kernel_env(tmp_path: Path, srv, username: str, password: str) -> dict[str, str]:
    """A kernel spec for this interpreter, and the environment the kernel starts with."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "labtrack tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_EXPERIMENT_", "MLFLOW_RUN_"))
    }
    env.update(
        JUPYTER_PATH=str(tmp_path / "jupyter"),
        MLFLOW_TRACKING_URI=srv.url,
        MLFLOW_TRACKING_USERNAME=username,
        MLFLOW_TRACKING_PASSWORD=password,
    )
    return env


def test_quickstart_notebook_runs_top_to_bottom(srv, tmp_path):
    admin = As(srv, basic(*ADMIN))
    try:
        username, password = make_user(admin)
    finally:
        admin.close()
    env = kernel_env(tmp_path, srv, username, password)
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]  # where the kernel spec is looked up
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"the notebook failed:\n{exc}\n--- server log ---\n{srv.log_tail()}")
    finally:
        os.environ.pop("JUPYTER_PATH", None)

    text = "\n".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert password not in text
    assert "champion is now version 2" in text, text

    me = As(srv, basic(username, password))
    try:
        model = me.get("registered-models/get", name="quickstart-iris")["registered_model"]
        assert {a["alias"]: a["version"] for a in model["aliases"]} == {"champion": "2"}
        experiment = me.get("experiments/get-by-name", experiment_name="quickstart-iris")
        runs = me.post(
            "runs/search",
            {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 100},
        )["runs"]
    finally:
        me.close()
    statuses = [r["info"]["status"] for r in runs]
    assert len(runs) == 1 + 1 + 6 and set(statuses) == {"FINISHED"}, statuses
