"""W6 helper, run in a subprocess: time the stock client's `mlflow.log_metric`.

It runs under the labtrack venv's python (which has the pinned mlflow client) with
MLFLOW_TRACKING_URI pointing at the server under test, and prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import mlflow

WARMUP_CALLS = 20


def main() -> None:
    exp_name, calls = sys.argv[1], int(sys.argv[2])
    mlflow.set_experiment(exp_name)
    with mlflow.start_run() as run:
        for i in range(WARMUP_CALLS):
            mlflow.log_metric("warmup", float(i), step=i)
        start = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("m", float(i), step=i)
        seconds = time.perf_counter() - start
    print(json.dumps({"run_id": run.info.run_id, "seconds": seconds, "calls": calls}))


if __name__ == "__main__":
    main()
