"""/mlflow/metrics/*: metric history, paged, and downsampled for charts."""

from __future__ import annotations

from labtrack.api.runs import run_id_of
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import metrics as store
from labtrack.wire import bad_value, invalid, missing

routes = RouteTable()

MAX_BULK_RUNS = 100
MAX_INTERVAL_RESULTS = 2500
MAX_BULK_HISTORY_RESULTS = 25000


@routes.api("GET", "/mlflow/metrics/get-history", access=Access("run", "READ", "run_id"))
async def get_history(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    key = params.str("metric_key", required=True)
    max_results = params.int("max_results")
    if max_results is not None and max_results < 1:
        raise bad_value("max_results", max_results)
    return await req.app.db.read(store.history, run_id, key, max_results, params.str("page_token"))


def _run_ids(params, name: str) -> list[str]:
    run_ids = params.str_list(name)
    if not run_ids:
        raise missing(name)
    if len(run_ids) > MAX_BULK_RUNS:
        raise invalid(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. "
            f"Received {len(run_ids)} run_ids."
        )
    return run_ids


@routes.api(
    "GET", "/mlflow/metrics/get-history-bulk-interval", access=Access("run", "READ", "run_ids")
)
async def get_history_bulk_interval(req: Request) -> dict:
    params = await read_params(req)
    run_ids = _run_ids(params, "run_ids")
    key = params.str("metric_key", required=True)
    start_step, end_step = params.int("start_step"), params.int("end_step")
    if (start_step is None) != (end_step is None):
        raise invalid("If either start step or end step are specified, both must be specified.")
    if start_step is not None and start_step > end_step:
        raise invalid("end_step must be greater than start_step. ")
    max_results = params.int("max_results", default=MAX_INTERVAL_RESULTS)
    if max_results < 1 or max_results > MAX_INTERVAL_RESULTS:
        raise bad_value("max_results", max_results)
    return await req.app.db.read(
        store.bulk_interval, run_ids, key, start_step, end_step, max_results
    )


@routes.api(
    "GET", "/mlflow/metrics/get-history-bulk", version="2.0", access=Access("run", "READ", "run_id")
)
async def get_history_bulk(req: Request) -> dict:
    params = await read_params(req)
    run_ids = _run_ids(params, "run_id")
    key = params.str("metric_key", required=True)
    max_results = params.int("max_results", default=MAX_BULK_HISTORY_RESULTS)
    if max_results < 1 or max_results > MAX_BULK_HISTORY_RESULTS:
        raise bad_value("max_results", max_results)
    return await req.app.db.read(store.bulk_history, run_ids, key, max_results)
