"""HTTP handlers, one module per area. Each module exposes ``routes``, a RouteTable."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
