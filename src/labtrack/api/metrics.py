"""/mlflow/metrics/*: metric history, paged, and downsampled for charts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from labtrack.api.runs import run_id_of
from labtrack.http import JSON, Access, Request, RouteTable, StreamingResponse, read_params
from labtrack.store import metrics as store
from labtrack.store import paging
from labtrack.wire import bad_value, invalid, missing

routes = RouteTable()

JSON_CONTENT_TYPE = (b"content-type", JSON.encode())
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
    page = await req.app.db.read(store.history, run_id, key, max_results, params.str("page_token"))
    if max_results is not None or "next_page_token" not in page:
        return page
    # No max_results means "the whole series" (the stock client's default), which may be
    # millions of points: stream it chunk by chunk instead of building it in memory.
    return StreamingResponse(_stream_history(req, key, page), headers=[JSON_CONTENT_TYPE])


async def _stream_history(req: Request, key: str, first: dict) -> AsyncIterator[bytes]:
    """``{"metrics": [...]}`` written chunk by chunk, each chunk its own short read.

    Points logged while the stream runs may or may not be included; none is sent twice.
    """
    yield b'{"metrics":' + orjson.dumps(first["metrics"])[:-1]
    run_pk = first["run_pk"]
    after = paging.decode_with_key(first["next_page_token"])[1]
    while True:
        rows = await req.app.db.read(store.history_chunk, run_pk, key, after, store.STREAM_CHUNK)
        if rows:
            yield b"," + orjson.dumps(store.points(key, rows))[1:-1]
        if len(rows) < store.STREAM_CHUNK:
            break
        after = store.seek_key(rows[-1])
    yield b"]}"


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
        raise invalid(
            "end_step must be greater than start_step. "
            f"Found start_step={start_step} and end_step={end_step}."
        )
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
