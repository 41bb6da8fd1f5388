"""Task functions for the Dask tests. Workers import this module by name (it is on sys.path of
the worker processes, which Dask spawns with the test process's path), so it must stay light:
no pytest, no conftest."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

PARAMS = 5
STEPS = 50


def metric_value(trial: int, step: int) -> float:
    return round(1.0 / (1 + trial + step), 9)


def train(trial: int) -> float:
    """A trial: 5 params and 50 steps of one metric, logged step by step like an epoch loop."""
    mlflow.log_params({f"p{k}": f"{trial}-{k}" for k in range(PARAMS)})
    for step in range(STEPS):
        mlflow.log_metric("loss", metric_value(trial, step), step=step)
    return metric_value(trial, STEPS - 1)


def fail(trial: int) -> None:
    mlflow.log_param("trial", trial)
    raise ValueError(f"trial {trial} diverged")


def die_once(marker: str) -> str:
    """Kill this worker process the first time (a lost worker mid-run); finish the retry."""
    mlflow.log_param("attempt", "second" if Path(marker).exists() else "first")
    if not Path(marker).exists():
        Path(marker).write_text("x")
        os._exit(1)
    return mlflow.active_run().info.run_id


def worker_auth_env() -> dict[str, bool]:
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
    return {name: bool(os.environ.get(name)) for name in names}


def trial_name(trial: int) -> str:
    return f"trial-{trial:03d}"
