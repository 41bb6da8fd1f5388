"""In-memory caches of verified credentials, with keys that are useless to whoever reads them.

A credential is cached under the HMAC-SHA256 of its text with a random key made at process
start, never under the credential itself: a memory dump or a debugger shows no usable secret,
and equal-looking keys can't be built from outside. Entries live at most ``ttl`` seconds (less
when the token or JWT expires sooner) and all of them are dropped when another process reports
a change of passwords, tokens or users (see enforce.Enforcer.sync).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """A small LRU with per-entry expiry (monotonic clock)."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: OrderedDict[bytes | tuple, tuple[float, V]] = OrderedDict()

    def get(self, key: bytes | tuple) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return entry[1]

    def put(self, key: bytes | tuple, value: V, ttl: float | None = None) -> None:
        life = self.ttl if ttl is None else min(ttl, self.ttl)
        if life <= 0:
            return
        self._data[key] = (time.monotonic() + life, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class CredentialKeys:
    """Turns credential text into cache keys: HMAC with a per-process random key."""

    def __init__(self) -> None:
        # Keyed once; each credential copies the keyed state instead of re-keying.
        self._keyed = hmac.new(os.urandom(32), digestmod=hashlib.sha256)

    def key(self, *parts: str) -> bytes:
        mac = self._keyed.copy()
        for part in parts:
            mac.update(part.encode("utf-8", "surrogateescape"))
            mac.update(b"\x00")
        return mac.digest()
