"""Password hashing with argon2id, run off the event loop.

Only passwords get a slow KDF: it is what makes a stolen hash expensive to attack, and it costs
tens of milliseconds, which is why verified credentials are cached (see auth.cache).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from labtrack.wire import invalid

MIN_PASSWORD_LENGTH = 12

# argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~0.1 s of one core.
# The library default (64 MiB, 3 passes, 4 lanes) takes ~0.4 s on a 2-core server, and every
# sign-in of every worker pays it; caching makes the cost per TTL, not per request.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for an unknown user, so that costs what a wrong password costs
    and response times don't tell which usernames exist. Made on first use, not at import:
    one argon2 hash was a tenth of the server's start-up."""
    return _hasher.hash("labtrack-dummy-password-for-timing")


# KDF work gets its own threads so it never queues behind (or blocks) database reads.
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="labtrack-kdf")


def check_policy(password: str | None) -> str:
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        raise invalid(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (pass None for an unknown user)."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, verify_password, stored_hash, password)


async def hash_password_async(password: str) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, hash_password, password)
