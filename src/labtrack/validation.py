"""MLflow's validation limits for tracking entities, checked before anything is written."""

from __future__ import annotations

import functools
import posixpath
import re

from labtrack.wire import invalid

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000
MAX_SEARCH_RESULTS = 50000  # runs and experiments search

_KEY_CHARS = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")


@functools.lru_cache(maxsize=65536)
def check_key(key: str, what: str) -> None:
    """Keys may be used as file names, so they must be plain and must not normalise elsewhere.

    Cached: the same few keys arrive over and over, and only passing checks are remembered.
    """
    if not _KEY_CHARS.match(key):
        raise invalid(
            f"Invalid value \"{key}\" for parameter 'key' supplied: Names may only contain "
            "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and "
            "slashes (/)."
        )
    normalized = posixpath.normpath(key)
    if key and (normalized != key or key == "." or key.startswith("..") or key.startswith("/")):
        raise invalid(
            f"Invalid value \"{key}\" for parameter 'key' supplied: Names may be treated as files "
            "in certain cases, and must not resolve to other names when treated as such. "
            f"This name would resolve to '{normalized}'"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise invalid(f"'{what} key' exceeds the maximum length of {MAX_KEY_LENGTH} characters")


def truncate(value: str, limit: int) -> str:
    """MLflow truncates over-long param and tag values instead of refusing them."""
    return value if len(value) <= limit else value[:limit]


def check_run_id(run_id: str) -> None:
    if not _RUN_ID.match(run_id):
        raise invalid(f"Invalid run ID: '{run_id}'")


def check_experiment_name(name: str) -> None:
    if not name or not name.strip():
        raise invalid("Invalid experiment name: ''. Experiment name must not be empty.")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise invalid(
            f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        )


def parse_experiment_id(value: str | None, field: str = "experiment_id") -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 <= number < 2**63:
        raise invalid(f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.")
    return number


def check_batch_sizes(n_metrics: int, n_params: int, n_tags: int) -> None:
    for count, limit, what in (
        (n_metrics, MAX_BATCH_METRICS, "metrics"),
        (n_params, MAX_BATCH_PARAMS, "params"),
        (n_tags, MAX_BATCH_TAGS, "tags"),
    ):
        if count > limit:
            raise invalid(
                f"A batch logging request can contain at most {limit} {what}. Got {count} "
                f"{what}. Please split up {what} across multiple requests and try again."
            )
    total = n_metrics + n_params + n_tags
    if total > MAX_BATCH_ENTITIES:
        raise invalid(
            f"A batch logging request can contain at most {MAX_BATCH_ENTITIES} metrics, params "
            f"and tags in total. Got {total}. Please split up the data across multiple requests."
        )
