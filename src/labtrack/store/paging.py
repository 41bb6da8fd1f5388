"""Page tokens in the stock server's format: base64 of ``{"offset": N}``, opaque to clients."""

from __future__ import annotations

import base64
import binascii

import orjson

from labtrack.wire import invalid


def encode(offset: int) -> str:
    return base64.b64encode(orjson.dumps({"offset": offset})).decode()


def decode(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Invalid page token, could not base64-decode") from None
    try:
        offset = orjson.loads(raw)["offset"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise invalid("Invalid page token, could not decode it as JSON with an offset") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid("Invalid page token: the offset must be a non-negative integer")
    return offset
