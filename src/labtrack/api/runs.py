"""/mlflow/runs/*: run lifecycle, logging (params, metrics, tags, batches, inputs) and search."""

from __future__ import annotations

from labtrack.api import now_ms
from labtrack.http import Access, Request, RouteTable, read_params
from labtrack.store import runs as store
from labtrack.store.experiments import VIEW_TYPES
from labtrack.validation import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_SEARCH_RESULTS,
    MAX_TAG_VALUE_LENGTH,
    check_batch_sizes,
    check_key,
    check_run_id,
    parse_experiment_id,
    truncate,
)
from labtrack.wire import INT64_MAX, INT64_MIN, Params, bad_value, invalid, missing

routes = RouteTable()

DEFAULT_SEARCH_RESULTS = 1000


def run_id_of(params: Params) -> str:
    """Clients send ``run_id`` and (legacy) ``run_uuid``; either one names the run."""
    run_id = params.str("run_id") or params.str("run_uuid")
    if not run_id:
        raise missing("run_id")
    return run_id


def _param(p: Params) -> tuple[str, str]:
    key = p.str("key", required=True)
    check_key(key, "Param")
    value = p.str("value", default="")
    return key, truncate(value, MAX_PARAM_VALUE_LENGTH)


def _tag(p: Params) -> tuple[str, str]:
    key = p.str("key", required=True)
    check_key(key, "Tag")
    value = p.str("value", default="")
    return key, truncate(value, MAX_TAG_VALUE_LENGTH)


def _metric(p: Params) -> store.Metric:
    key = p.str("key", required=True)
    check_key(key, "Metric")
    value = p.double("value", required=True)
    timestamp = p.int("timestamp", required=True)
    if timestamp < 0:
        raise bad_value(p.where + "timestamp", timestamp)
    return key, value, timestamp, p.int("step", default=0)


def _plain_metrics(raw: list[dict]) -> list[store.Metric] | None:
    """The batch parsed in one pass when every entry is plain, else None.

    log-batch carries up to 1000 metrics, so per-entry overhead dominates the request; this
    loop does only what a well-formed entry needs (``check_key`` once per distinct key) and
    gives up on anything else: strings for numbers, missing fields, ``model_id``... Those
    batches go through :func:`_metrics_each`, which accepts what MLflow accepts and words the
    errors exactly. Keys that fail ``check_key`` raise here as they would there.
    """
    parsed: list[store.Metric] = []
    append = parsed.append
    checked: set[str] = set()
    for m in raw:
        if "model_id" in m:
            return None
        # One assignment each: packing and unpacking a tuple here costs a tenth of the loop.
        key = m.get("key")
        value = m.get("value")
        timestamp = m.get("timestamp")
        step = m.get("step", 0)
        value_type = type(value)
        if not (
            type(key) is str
            and key
            and (value_type is float or value_type is int)
            and type(timestamp) is int
            and 0 <= timestamp <= INT64_MAX
            and type(step) is int
            and INT64_MIN <= step <= INT64_MAX
        ):
            return None
        if key not in checked:
            check_key(key, "Metric")
            checked.add(key)
        append((key, value if value_type is float else float(value), timestamp, step))
    return parsed


def _metrics_each(raw: list[dict]) -> list[store.Metric]:
    """Parse entry by entry, with the strict parser for any entry that is not plain."""
    parsed = []
    for i, m in enumerate(raw):
        if "model_id" in m:  # rare: metrics of a logged model take the strict path
            parsed.append(_metric(Params(m, where=f"metrics[{i}].")))
            continue
        key, value, timestamp, step = (
            m.get("key"),
            m.get("value"),
            m.get("timestamp"),
            m.get("step", 0),
        )
        if (
            type(key) is str
            and key
            and type(value) in (float, int)
            and type(timestamp) is int
            and 0 <= timestamp <= INT64_MAX
            and type(step) is int
            and INT64_MIN <= step <= INT64_MAX
        ):
            check_key(key, "Metric")
            parsed.append((key, float(value), timestamp, step))
        else:
            parsed.append(_metric(Params(m, where=f"metrics[{i}].")))
    return parsed


# --- lifecycle ----------------------------------------------------------------------------------
@routes.api("POST", "/mlflow/runs/create", access=Access("experiment", "EDIT", "experiment_id"))
async def create(req: Request) -> dict:
    params = await read_params(req)
    experiment_id = parse_experiment_id(params.str("experiment_id", required=True))
    tags = [_tag(t) for t in params.objects("tags")]
    run = await req.app.db.write(
        store.create,
        experiment_id=experiment_id,
        user_id=params.str("user_id", default=""),
        run_name=params.str("run_name"),
        start_time=params.int("start_time", default=0),
        tags=tags,
    )
    return {"run": run}


@routes.api("GET", "/mlflow/runs/get", access=Access("run", "READ", "run_id"))
async def get(req: Request) -> dict:
    params = await read_params(req)
    return {"run": await req.app.db.read(store.get, run_id_of(params))}


@routes.api("POST", "/mlflow/runs/update", access=Access("run", "EDIT", "run_id"))
async def update(req: Request) -> dict:
    params = await read_params(req)
    run_info = await req.app.db.write(
        store.update,
        run_id_of(params),
        status=params.enum("status", store.RUN_STATUSES),
        end_time=params.int("end_time"),
        run_name=params.str("run_name"),
    )
    return {"run_info": run_info}


@routes.api("POST", "/mlflow/runs/delete", access=Access("run", "MANAGE", "run_id"))
async def delete(req: Request) -> dict:
    params = await read_params(req)
    await req.app.db.write(store.set_lifecycle, run_id_of(params), "deleted", now_ms())
    return {}


@routes.api("POST", "/mlflow/runs/restore", access=Access("run", "MANAGE", "run_id"))
async def restore(req: Request) -> dict:
    params = await read_params(req)
    await req.app.db.write(store.set_lifecycle, run_id_of(params), "active", now_ms())
    return {}


# --- logging --------------------------------------------------------------------------------------
@routes.api("POST", "/mlflow/runs/log-parameter", access=Access("run", "EDIT", "run_id"))
async def log_param(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    await req.app.db.write(store.log_batch, run_id, params=[_param(params)])
    return {}


@routes.api("POST", "/mlflow/runs/log-metric", access=Access("run", "EDIT", "run_id"))
async def log_metric(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    metric = _metric(params)
    model_metrics = _model_metrics(run_id, [(params, metric)])
    await req.app.db.write(store.log_batch, run_id, metrics=[metric], model_metrics=model_metrics)
    return {}


def _model_metrics(run_id: str, entries: list[tuple[Params, store.Metric]]) -> list[tuple]:
    """The metrics that also belong to a logged model (3.x clients send ``model_id``)."""
    rows = []
    for p, (key, value, timestamp, step) in entries:
        model_id = p.str("model_id")
        if model_id:
            rows.append(
                (
                    model_id,
                    key,
                    value,
                    timestamp,
                    step,
                    run_id,
                    p.str("dataset_name"),
                    p.str("dataset_digest"),
                )
            )
    return rows


@routes.api("POST", "/mlflow/runs/set-tag", access=Access("run", "EDIT", "run_id"))
async def set_tag(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    await req.app.db.write(store.log_batch, run_id, tags=[_tag(params)])
    return {}


@routes.api("POST", "/mlflow/runs/delete-tag", access=Access("run", "EDIT", "run_id"))
async def delete_tag(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    await req.app.db.write(store.delete_tag, run_id, params.str("key", required=True))
    return {}


@routes.api("POST", "/mlflow/runs/log-batch", access=Access("run", "EDIT", "run_id"))
async def log_batch(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    check_run_id(run_id)
    raw_metrics, raw_params, raw_tags = (
        params.dicts("metrics"),
        params.objects("params"),
        params.objects("tags"),
    )
    check_batch_sizes(len(raw_metrics), len(raw_params), len(raw_tags))
    logged_params = [_param(p) for p in raw_params]
    keys = [k for k, _ in logged_params]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise invalid(
            f"Duplicate parameter keys have been submitted: {dupes}. Please ensure the request "
            "contains only one param value per param key."
        )
    metrics = _plain_metrics(raw_metrics)
    model_metrics: list[tuple] = []
    if metrics is None:  # Not all plain; only then can an entry name a logged model.
        metrics = _metrics_each(raw_metrics)
        model_metrics = _model_metrics(
            run_id,
            [
                (Params(m), metric)
                for m, metric in zip(raw_metrics, metrics, strict=True)
                if "model_id" in m
            ],
        )
    await req.app.db.write(
        store.log_batch,
        run_id,
        metrics=metrics,
        model_metrics=model_metrics,
        params=logged_params,
        tags=[_tag(t) for t in raw_tags],
    )
    return {}


@routes.api("POST", "/mlflow/runs/log-inputs", access=Access("run", "EDIT", "run_id"))
async def log_inputs(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    datasets = []
    for entry in params.objects("datasets"):
        raw = entry.raw("dataset")
        if not isinstance(raw, dict):
            raise missing(entry.where + "dataset")
        ds = Params(raw, where=entry.where + "dataset.")
        dataset = {
            "name": ds.str("name", required=True),
            "digest": ds.str("digest", required=True),
            "source_type": ds.str("source_type", required=True),
            "source": ds.str("source", required=True),
            "schema": ds.str("schema"),
            "profile": ds.str("profile"),
        }
        _check_dataset(dataset)
        tags = []
        for tag in entry.objects("tags"):
            key, value = tag.str("key", required=True), tag.str("value", required=True)
            if len(key) > 255 or len(value) > 500:
                raise invalid("Input tag keys must be at most 255 and values 500 characters long")
            tags.append((key, value))
        datasets.append((dataset, tags))
    model_ids = [m.str("model_id", required=True) for m in params.objects("models")]
    await req.app.db.write(store.log_inputs, run_id, datasets, model_ids)
    return {}


_DATASET_LIMITS = {
    "name": 500,
    "digest": 36,
    "source": 65535,
    "schema": 1048575,
    "profile": 16777215,
}


def _check_dataset(dataset: dict) -> None:
    for field, limit in _DATASET_LIMITS.items():
        value = dataset.get(field)
        if value is not None and len(value) > limit:
            raise invalid(f"Dataset {field} exceeds the maximum length of {limit} characters")


@routes.api("POST", "/mlflow/runs/outputs", access=Access("run", "EDIT", "run_id"))
async def log_outputs(req: Request) -> dict:
    params = await read_params(req)
    run_id = run_id_of(params)
    models = [
        (m.str("model_id", required=True), m.int("step", default=0))
        for m in params.objects("models")
    ]
    await req.app.db.write(store.log_outputs, run_id, models)
    return {}


# --- search ----------------------------------------------------------------------------------------
@routes.api("POST", "/mlflow/runs/search", access=Access("experiment", "READ", "experiment_ids"))
async def search(req: Request) -> dict:
    params = await read_params(req)
    experiment_ids = [parse_experiment_id(e) for e in params.str_list("experiment_ids")]
    max_results = params.int("max_results", default=DEFAULT_SEARCH_RESULTS)
    if max_results < 1 or max_results > MAX_SEARCH_RESULTS:
        raise bad_value("max_results", max_results)
    if not experiment_ids:
        return {}
    return await req.app.db.read(
        store.search,
        experiment_ids=experiment_ids,
        filter_string=params.str("filter"),
        order_by=params.str_list("order_by"),
        view_type=params.enum("run_view_type", VIEW_TYPES, default="ACTIVE_ONLY"),
        max_results=max_results,
        page_token=params.str("page_token"),
    )


MAX_DATASET_SEARCH_EXPERIMENTS = 20


# The UI's dataset summary; the stock server serves it only under /ajax-api (its proto path is
# broken), so this route is registered there alone.
@routes.raw(
    "POST",
    "/ajax-api/2.0/mlflow/experiments/search-datasets",
    access=Access("experiment", "READ", "experiment_ids"),
)
async def search_datasets(req: Request) -> dict:
    params = await read_params(req)
    experiment_ids = [parse_experiment_id(e) for e in params.str_list("experiment_ids")]
    if not 1 <= len(experiment_ids) <= MAX_DATASET_SEARCH_EXPERIMENTS:
        raise invalid(
            f"SearchDatasets request must specify between 1 and "
            f"{MAX_DATASET_SEARCH_EXPERIMENTS} experiment_ids. Received {len(experiment_ids)}."
        )
    return await req.app.db.read(store.search_datasets, experiment_ids)
