"""Artifacts in a folder on the server's disk.

Writes go to a temporary file under ``<root>/.labtrack/tmp`` (same file system, so the final
``os.replace`` is atomic) and appear under their name only when complete. Multipart uploads keep
their parts under ``<root>/.labtrack/mpu/<upload id>/`` until they are joined.

Symlinks are never followed: a path whose resolved location differs from its spelled location
(some component is a link) is refused, and files are opened with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from stat import S_ISDIR

from labtrack.artifacts.base import (
    CHUNK,
    ArtifactStore,
    Entry,
    Stat,
    is_a_directory,
    no_such_artifact,
    no_such_upload,
)
from labtrack.artifacts.paths import INVALID_PATH, RESERVED
from labtrack.wire import MlflowError, invalid

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_ETAG = re.compile(r"^[0-9a-f]{32}$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class LocalStore(ArtifactStore):
    def __init__(self, root: str) -> None:
        super().__init__()
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)
        self.location = self.root
        self._tmp = os.path.join(self.root, RESERVED, "tmp")
        self._mpu = os.path.join(self.root, RESERVED, "mpu")

    # -- paths ---------------------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        """The file-system path for a clean artifact path; refuses any symlinked component."""
        full = os.path.join(self.root, *path.split("/")) if path else self.root
        if os.path.realpath(full) != os.path.normpath(full):
            raise invalid(INVALID_PATH)
        return full

    def _temp_file(self, folder: str) -> tuple[str, int]:
        os.makedirs(folder, exist_ok=True)
        name = os.path.join(folder, f"{uuid.uuid4().hex}.part")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        return name, fd

    # -- files -----------------------------------------------------------------------------------
    def stat(self, path: str) -> Stat | None:
        try:
            st = os.stat(self._abs(path), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _os_error(exc, path) from exc
        if S_ISDIR(st.st_mode):
            return Stat(is_dir=True, mtime=st.st_mtime)
        return Stat(
            is_dir=False,
            size=st.st_size,
            mtime=st.st_mtime,
            etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
        )

    def open_writer(self, path: str, size_hint: int | None = None) -> _LocalWriter:
        target = self._abs(path)
        if os.path.isdir(target):
            raise is_a_directory(path)
        tmp, fd = self._temp_file(self._tmp)
        return _LocalWriter(self, path, target, tmp, fd)

    def _publish(self, path: str, tmp: str, target: str) -> None:
        try:
            for attempt in range(3):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # The parent may have become a symlink while we were writing.
                self._abs(path)
                try:
                    os.replace(tmp, target)
                    break
                except FileNotFoundError:
                    # A concurrent delete pruned the freshly made parent; make it again.
                    if attempt == 2 or not os.path.exists(tmp):
                        raise
        except (FileExistsError, NotADirectoryError) as exc:
            raise invalid(
                f"Cannot write '{path}': a parent of it is a file, not a directory"
            ) from exc
        except IsADirectoryError as exc:
            raise is_a_directory(path) from exc
        except OSError as exc:
            raise _os_error(exc, path) from exc

    def read(self, path: str, start: int, end: int) -> Iterator[bytes]:
        try:
            fd = os.open(self._abs(path), os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError as exc:
            raise no_such_artifact(path) from exc
        except OSError as exc:
            raise _os_error(exc, path) from exc
        try:
            offset = start
            while offset < end:
                data = os.pread(fd, min(CHUNK, end - offset), offset)
                if not data:
                    return  # the file shrank under us; the client sees a short body
                offset += len(data)
                yield data
        finally:
            os.close(fd)

    def list(self, path: str) -> list[Entry] | None:
        folder = self._abs(path)
        try:
            scan = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return None
        entries = []
        with scan:
            for item in scan:
                if item.is_symlink() or (not path and item.name == RESERVED):
                    continue
                if item.is_dir(follow_symlinks=False):
                    entries.append(Entry(item.name, True))
                else:
                    size = item.stat(follow_symlinks=False).st_size
                    entries.append(Entry(item.name, False, size))
        entries.sort(key=lambda e: e.name)
        return entries

    def delete(self, path: str) -> None:
        if not path:
            raise invalid("Refusing to delete the artifact root")
        full = self._abs(path)
        try:
            if os.path.isdir(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Drop parents left empty (a run's folder once its artifacts/ is gone), not the root.
        parent = os.path.dirname(full)
        while parent != self.root and parent.startswith(self.root + os.sep):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

    def usage(self, path: str) -> tuple[int, int]:
        full = self._abs(path)
        if os.path.isfile(full):
            return 1, os.path.getsize(full)
        files = size = 0
        for folder, _dirs, names in os.walk(full):
            for name in names:
                try:
                    size += os.lstat(os.path.join(folder, name)).st_size
                    files += 1
                except OSError:
                    continue
        return files, size

    # -- multipart -------------------------------------------------------------------------------
    def _upload_dir(self, upload_id: str) -> str:
        if not _UPLOAD_ID.match(upload_id):
            raise no_such_upload(upload_id)
        return os.path.join(self._mpu, upload_id)

    def mpu_create(self, path: str) -> str:
        if os.path.isdir(self._abs(path)):
            raise is_a_directory(path)
        upload_id = secrets.token_urlsafe(24)
        folder = self._upload_dir(upload_id)
        os.makedirs(folder)
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump({"path": path, "created": time.time()}, f)
        return upload_id

    def mpu_target(self, upload_id: str) -> str:
        try:
            with open(os.path.join(self._upload_dir(upload_id), "manifest.json")) as f:
                return json.load(f)["path"]
        except FileNotFoundError as exc:
            raise no_such_upload(upload_id) from exc

    def mpu_part_writer(
        self, upload_id: str, part_number: int, size_hint: int | None
    ) -> _PartWriter:
        folder = self._upload_dir(upload_id)
        if not os.path.isdir(folder):
            raise no_such_upload(upload_id)
        tmp, fd = self._temp_file(folder)
        return _PartWriter(folder, part_number, tmp, fd)

    def mpu_complete(self, upload_id: str, parts: list[tuple[int, str]]) -> None:
        path = self.mpu_target(upload_id)
        folder = self._upload_dir(upload_id)
        sources = []
        for number, etag in parts:
            etag = etag.strip('"')
            source = os.path.join(folder, f"{number:05d}.{etag}")
            if not _ETAG.match(etag) or not os.path.isfile(source):
                raise invalid(f"Part {number} was not uploaded, or its etag does not match")
            sources.append(source)
        target = self._abs(path)
        tmp, fd = self._temp_file(self._tmp)
        try:
            for source in sources:
                with open(source, "rb") as src:
                    _copy(src.fileno(), fd)
            os.close(fd)
            fd = -1
            self._publish(path, tmp, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            _unlink(tmp)
            raise
        shutil.rmtree(folder, ignore_errors=True)

    def mpu_abort(self, upload_id: str) -> None:
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def sweep(self, older_than_s: float, dry_run: bool = False) -> list[str]:
        cutoff = time.time() - older_than_s
        removed = []
        for folder, kind in ((self._mpu, "multipart upload"), (self._tmp, "temporary file")):
            try:
                items = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for item in items:
                if item.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if kind == "multipart upload":
                    try:
                        target = self.mpu_target(item.name)
                    except (MlflowError, OSError, ValueError, KeyError):
                        target = "?"
                    removed.append(f"abandoned {kind} {item.name} to {target}")
                    if not dry_run:
                        shutil.rmtree(item.path, ignore_errors=True)
                else:
                    removed.append(f"abandoned {kind} {item.name}")
                    if not dry_run:
                        _unlink(item.path)
        return removed


class _LocalWriter:
    def __init__(self, store: LocalStore, path: str, target: str, tmp: str, fd: int) -> None:
        self.store, self.path, self.target, self.tmp, self.fd = store, path, target, tmp, fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:  # disk full, quota...
            raise _os_error(exc, getattr(self, "path", "upload")) from exc

    def commit(self) -> str:
        size = os.fstat(self.fd).st_size
        os.close(self.fd)
        self.fd = -1
        self.store._publish(self.path, self.tmp, self.target)
        return f'"{size:x}"'

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _unlink(self.tmp)


class _PartWriter(_LocalWriter):
    """A part lands as ``<number>.<etag>``; a retried part gets a new etag and its own file."""

    def __init__(self, folder: str, number: int, tmp: str, fd: int) -> None:
        self.folder, self.number, self.tmp, self.fd = folder, number, tmp, fd

    def commit(self) -> str:
        os.close(self.fd)
        self.fd = -1
        etag = uuid.uuid4().hex
        os.replace(self.tmp, os.path.join(self.folder, f"{self.number:05d}.{etag}"))
        return etag


def _copy(src: int, dst: int) -> None:
    """Append all of ``src`` to ``dst`` in the kernel when it can (copy_file_range)."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            while copy_range(src, dst, 64 * CHUNK):
                pass
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while data := os.read(src, CHUNK):
        os.write(dst, data)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _os_error(exc: OSError, path: str) -> MlflowError:
    if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
        return invalid(f"Invalid path: '{path}'")
    if exc.errno in (errno.EISDIR,):
        return is_a_directory(path)
    return MlflowError(f"Artifact storage error on '{path}': {exc.strerror}", "INTERNAL_ERROR")
