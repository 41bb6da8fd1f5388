"""Wire-level conventions shared by every handler: MLflow error codes and JSON encoding.

MLflow clients read the error code from the JSON body, not from the HTTP status, so every
failure must carry an ``error_code`` the client knows. Deterministic errors are always 4xx:
the stock client retries 5xx answers for minutes.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import orjson

# error_code -> HTTP status, as the stock server maps them.
HTTP_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_CONFLICT": 409,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}

# error_code -> (sqlstate, error_class) that 3.x servers add to error bodies.
_ERROR_CLASS = {
    "INVALID_PARAMETER_VALUE": "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST": "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS": "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST": "RESOURCE_NOT_FOUND",
    "ENDPOINT_NOT_FOUND": "RESOURCE_NOT_FOUND",
    "NOT_FOUND": "RESOURCE_NOT_FOUND",
    "PERMISSION_DENIED": "PERMISSION_DENIED",
}


class MlflowError(Exception):
    """An error the client sees as ``{"error_code": ..., "message": ...}``."""

    def __init__(self, message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.error_code, 500)

    def to_dict(self) -> dict[str, str]:
        body = {"error_code": self.error_code, "message": self.message}
        error_class = _ERROR_CLASS.get(self.error_code)
        if error_class:
            body["sqlstate"] = "KAM00"
            body["error_class"] = error_class
        return body


def invalid(message: str) -> MlflowError:
    return MlflowError(message, "INVALID_PARAMETER_VALUE")


def not_found(message: str) -> MlflowError:
    return MlflowError(message, "RESOURCE_DOES_NOT_EXIST")


def already_exists(message: str) -> MlflowError:
    return MlflowError(message, "RESOURCE_ALREADY_EXISTS")


def missing(name: str) -> MlflowError:
    return invalid(
        f"Missing value for required parameter '{name}'. "
        "See the API docs for more information about request parameters."
    )


def bad_value(name: str, value: Any) -> MlflowError:
    shown = value if not isinstance(value, str) else f'"{value}"'
    return invalid(
        f"Invalid value {shown} for parameter '{name}' supplied: "
        f"Hint: Value was of type '{type(value).__name__}'. "
        "See the API docs for more information about request parameters."
    )


# MLflow returns infinities as the largest double and NaN as the string "NaN".
MAX_DOUBLE = 1.7976931348623157e308


def encode_double(value: float) -> float | str:
    """Encode a metric value the way the stock server does."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return MAX_DOUBLE if value > 0 else -MAX_DOUBLE
    return value


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


# --- request fields ----------------------------------------------------------------------------
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SPECIAL_DOUBLES = {
    "nan": float("nan"),
    "infinity": float("inf"),
    "-infinity": float("-inf"),
    "inf": float("inf"),
    "-inf": float("-inf"),
}


@functools.lru_cache(maxsize=1024)
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Params:
    """The fields of one request (JSON body or query string), read with MLflow's rules.

    Fields are read by their proto names (``run_id``); like the stock server, a field sent also
    under its JSON name (``runId``) is refused as ambiguous, and the JSON name alone is ignored.
    Query strings carry everything as text, so numbers and booleans are parsed from strings.
    ``where`` names the enclosing object in error messages (``metrics[0].``).
    """

    __slots__ = ("data", "from_query", "where")

    def __init__(self, data: dict, *, from_query: bool = False, where: str = "") -> None:
        self.data = data
        self.from_query = from_query
        self.where = where

    def raw(self, name: str) -> Any:
        data = self.data
        value = data.get(name)
        if value is not None and not self.from_query:
            camel = _camel(name)
            if camel != name and camel in data:
                raise invalid(
                    f"Request specifies both '{name}' and '{camel}'; provide only one of them."
                )
        if self.from_query and isinstance(value, list):
            return value[0] if value else None
        return value

    def has(self, name: str) -> bool:
        return self.raw(name) is not None

    def _name(self, name: str) -> str:
        return self.where + name

    def str(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None or (required and value == ""):
            if required:
                raise missing(self._name(name))
            return default
        if not isinstance(value, str):
            raise bad_value(self._name(name), value)
        return value

    def int(self, name: str, *, required: bool = False, default: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise missing(self._name(name))
            return default
        if isinstance(value, bool):
            raise bad_value(self._name(name), value)
        number: int | None = None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                pass
        # Fields are int64 on the wire; anything wider is bad input, not a database error.
        if number is None or not INT64_MIN <= number <= INT64_MAX:
            raise bad_value(self._name(name), value)
        return number

    def double(self, name: str, *, required: bool = False) -> float | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise missing(self._name(name))
            return None
        if isinstance(value, bool):
            raise bad_value(self._name(name), value)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            special = _SPECIAL_DOUBLES.get(value.strip().lower())
            if special is not None:
                return special
            try:
                return float(value)
            except ValueError:
                pass
        raise bad_value(self._name(name), value)

    def bool(self, name: str, *, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad_value(self._name(name), value)

    def str_list(self, name: str) -> list[str]:
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str) and not self.from_query:
            raise bad_value(self._name(name), value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_value(self._name(name), value)
        return value

    def dicts(self, name: str) -> list[dict]:
        """A repeated message field as plain dicts, for hot paths that parse entries themselves."""
        value = self.raw(name) if not self.from_query else None
        if value is None:
            return []
        if not isinstance(value, list) or not all(type(v) is dict for v in value):
            raise bad_value(self._name(name), value)
        return value

    def objects(self, name: str) -> list[Params]:
        """A repeated message field, each element wrapped for its own field errors."""
        value = self.raw(name) if not self.from_query else None
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise bad_value(self._name(name), value)
        return [Params(v, where=f"{self.where}{name}[{i}].") for i, v in enumerate(value)]

    def enum(self, name: str, values: tuple[str, ...], *, default: str | None = None) -> str | None:
        """An enum by name or by number (1-based, as in the protos); unknown values read as unset."""
        value = self.raw(name)
        if isinstance(value, str):
            if value.isdigit():
                value = int(value)
            else:
                upper = value.upper()
                return upper if upper in values else default
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(values):
            return values[value - 1]
        return default


def parse_json_body(body: bytes) -> dict:
    """MLflow's lenient body rules: invalid JSON reads as {}, a JSON string is decoded again."""
    if not body:
        return {}
    try:
        data = orjson.loads(body)
        if isinstance(data, str):
            data = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
