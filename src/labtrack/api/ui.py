"""/labtrack/ui/*: the little the web UI needs beyond the MLflow API (docs/ui.md).

- ``GET experiment-keys?experiment_id=``: the metric, param and tag keys of an experiment's
  recent runs, for filter completion and the column chooser;
- ``POST child-runs {experiment_id, parent_run_ids, run_view_type}``: the nested runs of a page
  of parent runs, found through the ``mlflow.parentRunId`` tag in one query.
"""

from __future__ import annotations

from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import experiments as experiment_store
from labtrack.store import ui as store
from labtrack.validation import parse_experiment_id
from labtrack.wire import invalid

routes = RouteTable()

READ_EXPERIMENT = Access("experiment", "READ", "experiment_id")
MAX_PARENTS = 1000


@routes.api("GET", "/labtrack/ui/experiment-keys", access=READ_EXPERIMENT)
async def experiment_keys(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    return await req.app.db.read(store.experiment_keys, experiment_id)


@routes.api("POST", "/labtrack/ui/child-runs", access=READ_EXPERIMENT)
async def child_runs(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    parents = params.str_list("parent_run_ids")
    if len(parents) > MAX_PARENTS:
        raise invalid(f"At most {MAX_PARENTS} parent_run_ids per request.")
    view = params.enum("run_view_type", experiment_store.VIEW_TYPES, default="ACTIVE_ONLY")
    stages = experiment_store.VIEW_STAGES[view]
    return await req.app.db.read(store.child_runs, experiment_id, parents, stages)
