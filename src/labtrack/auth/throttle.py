"""Slowing down password guessing, per username and per client address.

After a few failed sign-ins the next attempt for that user (or from that address) must wait,
and the wait doubles with every further failure up to a cap. An attempt that arrives too early
is refused with 429 and ``Retry-After`` *without checking the credential*, so firing guesses in
parallel does not help. A success clears the user's and the address's record; records are
forgotten after a quiet window. State is per worker process, in memory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from labtrack.wire import MlflowError

USER_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
BASE_DELAY = 1.0
MAX_DELAY = 60.0
FORGET_AFTER = 15 * 60.0
MAX_RECORDS = 100_000


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0


class TooManyAttempts(MlflowError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "Too many failed sign-in attempts; try again later.", "REQUEST_LIMIT_EXCEEDED"
        )
        self.headers = [(b"retry-after", str(max(1, math.ceil(retry_after))).encode())]


class Throttle:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    @staticmethod
    def _delay(failures: int, free: int) -> float:
        if failures < free:
            return 0.0
        return min(BASE_DELAY * 2 ** (failures - free), MAX_DELAY)

    def _wait(self, key: str, free: int, now: float) -> float:
        record = self._records.get(key)
        if record is None:
            return 0.0
        if now - record.last > FORGET_AFTER:
            del self._records[key]
            return 0.0
        return record.last + self._delay(record.failures, free) - now

    def check(self, username: str | None, address: str) -> None:
        """Raise TooManyAttempts if a sign-in for this user or from this address must wait."""
        now = time.monotonic()
        wait = self._wait("a:" + address, ADDRESS_FREE_FAILURES, now)
        if username:
            wait = max(wait, self._wait("u:" + username, USER_FREE_FAILURES, now))
        if wait > 0:
            raise TooManyAttempts(wait)

    def failed(self, username: str | None, address: str) -> None:
        now = time.monotonic()
        if len(self._records) > MAX_RECORDS:
            self._records = {k: r for k, r in self._records.items() if now - r.last < FORGET_AFTER}
        for key in ("a:" + address, "u:" + username if username else None):
            if key is None:
                continue
            record = self._records.setdefault(key, _Record())
            record.failures += 1
            record.last = now

    def succeeded(self, username: str | None, address: str) -> None:
        self._records.pop("a:" + address, None)
        if username:
            self._records.pop("u:" + username, None)
