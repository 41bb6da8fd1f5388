"""Page tokens in the stock server's format: base64 of ``{"offset": N}``, opaque to clients.

A token may also carry ``"after"``: the sort key of the last row sent, so the next page starts
with an index seek instead of walking ``offset`` rows again (metric histories run to millions).
"""

from __future__ import annotations

import base64
import binascii

import orjson

from labtrack.wire import invalid


def encode(offset: int, after: list | None = None) -> str:
    payload: dict = {"offset": offset}
    if after is not None:
        payload["after"] = after
    return base64.b64encode(orjson.dumps(payload)).decode()


def decode(token: str | None) -> int:
    return decode_with_key(token)[0]


def decode_with_key(token: str | None) -> tuple[int, list | None]:
    """The offset and, when present and well-formed, the seek key of a token."""
    if not token:
        return 0, None
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Invalid page token, could not base64-decode") from None
    try:
        payload = orjson.loads(raw)
        offset = payload["offset"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise invalid("Invalid page token, could not decode it as JSON with an offset") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid("Invalid page token: the offset must be a non-negative integer")
    after = payload.get("after")
    if not (isinstance(after, list) and all(type(v) in (int, float) for v in after)):
        after = None
    return offset, after
