"""The one interface every artifact backend implements, and the async plumbing they share.

Backends are written as plain blocking code (file calls, boto3), which is simple and testable;
this base class runs that code on a dedicated thread pool and turns it into async streams for the
HTTP layer. Memory stays bounded because data only ever moves in chunks of :data:`CHUNK` bytes,
with at most one chunk in flight in each direction per transfer.

Paths handed to a backend are already cleaned by :mod:`labtrack.artifacts.paths` (``a/b/c``,
never ``..``, never absolute); backends still refuse anything that escapes their root on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from labtrack.wire import MlflowError, invalid

T = TypeVar("T")

# The unit of transfer between the network and the storage: big enough that thread hand-offs
# cost nothing, small enough that many concurrent transfers stay cheap.
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One item of a directory listing."""

    name: str
    is_dir: bool
    size: int | None = None


@dataclass(frozen=True)
class Stat:
    """What a download needs to know before it sends the first byte."""

    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    etag: str = ""


class Writer(Protocol):
    """A file being written: nothing is visible under its path until :meth:`commit`."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> str:
        """Publish the data atomically; returns an etag for the written object or part."""
        ...

    def abort(self) -> None:
        """Drop everything written so far (idempotent)."""
        ...


def no_such_artifact(path: str) -> MlflowError:
    return MlflowError(f"No such artifact: '{path}'", "RESOURCE_DOES_NOT_EXIST")


def is_a_directory(path: str) -> MlflowError:
    return invalid(f"Artifact path refers to a directory, not a file: '{path}'")


def no_such_upload(upload_id: str) -> MlflowError:
    return MlflowError(
        f"No multipart upload with id '{upload_id}' (completed, aborted or never created)",
        "RESOURCE_DOES_NOT_EXIST",
    )


class ArtifactStore(ABC):
    """Files under one root (a folder or an S3 prefix), addressed by clean relative paths."""

    #: Where the root is, for messages (``/data/artifacts``, ``s3://bucket/prefix``).
    location: str = ""
    #: Whether the multipart-upload calls below work.
    supports_multipart: bool = True

    def __init__(self, threads: int = 32) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="labtrack-artifacts"
        )

    # -- blocking primitives, one per operation ------------------------------------------------
    @abstractmethod
    def stat(self, path: str) -> Stat | None:
        """The file or directory at ``path``, or None when nothing is there."""

    @abstractmethod
    def open_writer(self, path: str, size_hint: int | None = None) -> Writer:
        """Start writing the file ``path`` (replaced on commit)."""

    @abstractmethod
    def read(self, path: str, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a file, in chunks of at most :data:`CHUNK`."""

    @abstractmethod
    def list(self, path: str) -> list[Entry] | None:
        """The entries of a directory sorted by name; None when ``path`` is not a directory."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove a file or a whole directory; nothing there is not an error."""

    @abstractmethod
    def usage(self, path: str) -> tuple[int, int]:
        """(files, bytes) at or below ``path``; for reports before deleting."""

    # multipart uploads: create, upload parts (each a Writer), complete or abort.
    @abstractmethod
    def mpu_create(self, path: str) -> str:
        """Start a multipart upload to ``path``; returns an unguessable upload id."""

    @abstractmethod
    def mpu_target(self, upload_id: str) -> str:
        """The path an upload was created for (raises RESOURCE_DOES_NOT_EXIST when unknown)."""

    @abstractmethod
    def mpu_part_writer(self, upload_id: str, part_number: int, size_hint: int | None) -> Writer:
        """Write one part; its commit returns the part's etag."""

    @abstractmethod
    def mpu_complete(self, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Join the listed (part_number, etag) parts, in order, into the target file."""

    @abstractmethod
    def mpu_abort(self, upload_id: str) -> None:
        """Drop an upload and its parts (unknown ids are fine)."""

    @abstractmethod
    def sweep(self, older_than_s: float, dry_run: bool = False) -> list[str]:
        """Remove leftovers of interrupted transfers older than this; describe each one."""

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- async helpers for the HTTP layer ----------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def write_stream(self, writer: Writer, chunks: AsyncIterator[bytes]) -> tuple[int, str]:
        """Feed a request body into ``writer`` and commit it; abort on any failure.

        Network chunks (tens of KB) are gathered into :data:`CHUNK`-sized blocks; one block is
        written on a worker thread while the next one is being received.
        """
        loop = asyncio.get_running_loop()
        pending: asyncio.Future | None = None
        buffer: list[bytes] = []
        buffered = 0
        total = 0
        try:
            async for chunk in chunks:
                buffer.append(chunk)
                buffered += len(chunk)
                total += len(chunk)
                if buffered >= CHUNK:
                    block = b"".join(buffer)
                    buffer, buffered = [], 0
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(self._pool, writer.write, block)
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await self.call(writer.write, b"".join(buffer))
            etag = await self.call(writer.commit)
        except BaseException:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await asyncio.shield(self.call(writer.abort))
            raise
        return total, etag

    async def read_stream(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream ``[start, end)`` of a file, reading the next chunk while this one is sent."""
        loop = asyncio.get_running_loop()
        chunks = self.read(path, start, end)
        pending = loop.run_in_executor(self._pool, next, chunks, None)
        try:
            while True:
                chunk = await pending
                if chunk is None:
                    return
                pending = loop.run_in_executor(self._pool, next, chunks, None)
                yield chunk
        finally:
            await asyncio.gather(pending, return_exceptions=True)
            await loop.run_in_executor(self._pool, _close, chunks)


def _close(it: Iterator[bytes]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()
