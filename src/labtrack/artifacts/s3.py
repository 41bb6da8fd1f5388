"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, RustFS, ...), through boto3.

boto3 is blocking; the base class runs these methods on worker threads. Memory stays bounded:

- an upload is cut into parts of :func:`part_size` bytes as it arrives; one part is sent to S3
  while the next one fills, so an upload holds at most about two parts. Small files (under one
  part) are a single PutObject;
- a part of a client's multipart upload is spooled to a temporary file first, because SigV4 over
  plain HTTP signs the payload and so needs a body it can read twice;
- downloads read the object body chunk by chunk.

A streaming upload that fails is aborted, so S3 never shows a partial object. Client multipart
uploads keep a small manifest under ``<prefix>/.labtrack/mpu/<upload id>.json`` that maps our
upload id to S3's, so any worker process can serve any part.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from labtrack.artifacts.base import (
    CHUNK,
    ArtifactStore,
    Entry,
    Stat,
    no_such_artifact,
    no_such_upload,
)
from labtrack.artifacts.paths import RESERVED
from labtrack.wire import MlflowError, invalid

MIN_PART = 8 * 1024 * 1024
MAX_PARTS = 10_000
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_MISSING = {"404", "NoSuchKey", "NotFound"}


def part_size(size_hint: int | None) -> int:
    """Parts of 8 MiB, larger when needed to stay within S3's 10,000 parts per object."""
    if not size_hint:
        return MIN_PART
    needed = -(-size_hint // (MAX_PARTS - 100))
    return max(MIN_PART, -(-needed // CHUNK) * CHUNK)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"No bucket in artifacts destination {uri!r}")
    return bucket, prefix.strip("/")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3Store(ArtifactStore):
    def __init__(self, uri: str, endpoint_url: str | None = None) -> None:
        super().__init__()
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import ClientError
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "An s3:// artifacts destination needs boto3: pip install 'labtrack[s3]'"
            ) from exc
        self.ClientError = ClientError
        self.bucket, self.prefix = split_uri(uri)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        config = Config(
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=64,
            s3={"addressing_style": "path"} if endpoint_url else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        ignore_tls = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() in ("1", "true", "yes")
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config, verify=not ignore_tls
        )
        # Parts go to S3 on their own threads, so a writer can wait for them without starving
        # the pool that runs the writers themselves.
        self._uploads = concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="labtrack-s3-parts"
        )
        self._manifests: dict[str, dict] = {}

    # -- keys --------------------------------------------------------------------------------------
    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _dir_prefix(self, path: str) -> str:
        return self.key(path) + "/" if path else (self.prefix + "/" if self.prefix else "")

    def _manifest_key(self, upload_id: str) -> str:
        return self.key(f"{RESERVED}/mpu/{upload_id}.json")

    def _fail(self, exc: Exception, path: str) -> MlflowError:
        return MlflowError(
            f"Artifact storage error on '{path}': {_code(exc)} {exc}", "INTERNAL_ERROR"
        )

    def check(self) -> None:
        """Fail early with a clear message when the bucket is unreachable."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise RuntimeError(f"Cannot reach artifact bucket {self.location}: {exc}") from exc

    # -- files -------------------------------------------------------------------------------------
    def stat(self, path: str) -> Stat | None:
        if path:
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(path))
                return Stat(
                    is_dir=False,
                    size=head["ContentLength"],
                    mtime=head["LastModified"].timestamp(),
                    etag=head.get("ETag", ""),
                )
            except self.ClientError as exc:
                if _code(exc) not in _MISSING:
                    raise self._fail(exc, path) from exc
        listing = self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=self._dir_prefix(path), MaxKeys=1
        )
        return Stat(is_dir=True) if listing.get("KeyCount", 0) or not path else None

    def open_writer(self, path: str, size_hint: int | None = None) -> _S3Writer:
        return _S3Writer(self, path, part_size(size_hint))

    def read(self, path: str, start: int, end: int) -> Iterator[bytes]:
        if end <= start:
            return
        try:
            obj = self.client.get_object(
                Bucket=self.bucket, Key=self.key(path), Range=f"bytes={start}-{end - 1}"
            )
        except self.ClientError as exc:
            if _code(exc) in _MISSING:
                raise no_such_artifact(path) from exc
            raise self._fail(exc, path) from exc
        body = obj["Body"]
        try:
            while data := body.read(CHUNK):
                yield data
        finally:
            body.close()

    def _walk(self, prefix: str, delimiter: bool) -> Iterator[dict]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for common in page.get("CommonPrefixes", []):
                yield {"Prefix": common["Prefix"]}
            yield from page.get("Contents", [])

    def list(self, path: str) -> list[Entry] | None:
        prefix = self._dir_prefix(path)
        entries = []
        for item in self._walk(prefix, delimiter=True):
            if "Prefix" in item:
                name = item["Prefix"][len(prefix) :].rstrip("/")
                if name and not (not path and name == RESERVED):
                    entries.append(Entry(name, True))
            else:
                name = item["Key"][len(prefix) :]
                if name:  # not a "folder marker" object
                    entries.append(Entry(name, False, item["Size"]))
        if not entries and path:
            return None
        entries.sort(key=lambda e: e.name)
        return entries

    def delete(self, path: str) -> None:
        if not path:
            raise invalid("Refusing to delete the artifact root")
        keys = [self.key(path)] + [o["Key"] for o in self._walk(self._dir_prefix(path), False)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            result = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors = result.get("Errors", [])
            if errors:
                first = errors[0]
                raise MlflowError(
                    f"Could not delete {len(errors)} objects under '{path}', e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                    "INTERNAL_ERROR",
                )

    def usage(self, path: str) -> tuple[int, int]:
        files = size = 0
        own = self.stat(path) if path else None
        if own is not None and not own.is_dir:
            files, size = 1, own.size
        for item in self._walk(self._dir_prefix(path), delimiter=False):
            files += 1
            size += item["Size"]
        return files, size

    # -- multipart ---------------------------------------------------------------------------------
    def _manifest(self, upload_id: str) -> dict:
        if not _UPLOAD_ID.match(upload_id):
            raise no_such_upload(upload_id)
        manifest = self._manifests.get(upload_id)
        if manifest is None:
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self._manifest_key(upload_id))
                manifest = json.loads(obj["Body"].read())
            except self.ClientError as exc:
                if _code(exc) in _MISSING:
                    raise no_such_upload(upload_id) from exc
                raise self._fail(exc, upload_id) from exc
            if len(self._manifests) > 1000:
                self._manifests.clear()
            self._manifests[upload_id] = manifest
        return manifest

    def mpu_create(self, path: str) -> str:
        upload_id = secrets.token_urlsafe(24)
        created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key(path))
        manifest = {"path": path, "s3_upload_id": created["UploadId"], "created": time.time()}
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._manifest_key(upload_id),
            Body=json.dumps(manifest).encode(),
        )
        return upload_id

    def mpu_target(self, upload_id: str) -> str:
        return self._manifest(upload_id)["path"]

    def mpu_part_writer(
        self, upload_id: str, part_number: int, size_hint: int | None
    ) -> _S3PartWriter:
        manifest = self._manifest(upload_id)
        return _S3PartWriter(self, manifest, part_number)

    def mpu_complete(self, upload_id: str, parts: list[tuple[int, str]]) -> None:
        manifest = self._manifest(upload_id)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key(manifest["path"]),
                UploadId=manifest["s3_upload_id"],
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
            )
        except self.ClientError as exc:
            code = _code(exc)
            if code == "NoSuchUpload":
                raise no_such_upload(upload_id) from exc
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"):
                raise invalid(f"Cannot complete the multipart upload: {code}: {exc}") from exc
            raise self._fail(exc, manifest["path"]) from exc
        self._drop_manifest(upload_id)

    def mpu_abort(self, upload_id: str) -> None:
        try:
            manifest = self._manifest(upload_id)
        except MlflowError:
            return
        self._abort_s3(manifest["path"], manifest["s3_upload_id"])
        self._drop_manifest(upload_id)

    def _abort_s3(self, path: str, s3_upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key(path), UploadId=s3_upload_id
            )
        except self.ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise self._fail(exc, path) from exc

    def _drop_manifest(self, upload_id: str) -> None:
        self._manifests.pop(upload_id, None)
        self.client.delete_object(Bucket=self.bucket, Key=self._manifest_key(upload_id))

    def sweep(self, older_than_s: float, dry_run: bool = False) -> list[str]:
        cutoff = time.time() - older_than_s
        removed = []
        mpu_prefix = self.key(f"{RESERVED}/mpu/")
        for item in self._walk(mpu_prefix, delimiter=False):
            if item["LastModified"].timestamp() >= cutoff:
                continue
            upload_id = item["Key"][len(mpu_prefix) :].removesuffix(".json")
            removed.append(f"abandoned multipart upload {upload_id}")
            if not dry_run:
                self.mpu_abort(upload_id)
        # Streaming uploads interrupted by a crash leave S3 multipart uploads without manifest.
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._dir_prefix("")
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() >= cutoff:
                    continue
                removed.append(f"abandoned S3 multipart upload to {upload['Key']}")
                if not dry_run:
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except self.ClientError as exc:
                        if _code(exc) != "NoSuchUpload":
                            raise
        return removed

    def close(self) -> None:
        super().close()
        self._uploads.shutdown(wait=False, cancel_futures=True)


class _S3Writer:
    """Streams one object: PutObject when it fits in a part, else a multipart upload."""

    def __init__(self, store: S3Store, path: str, part: int) -> None:
        self.store, self.path, self.part = store, path, part
        self.key = store.key(path)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []
        self.pending: concurrent.futures.Future | None = None

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.part:
            block = bytes(self.buffer[: self.part])
            del self.buffer[: self.part]
            self._send(block)

    def _send(self, block: bytes) -> None:
        client = self.store.client
        if self.upload_id is None:
            created = client.create_multipart_upload(Bucket=self.store.bucket, Key=self.key)
            self.upload_id = created["UploadId"]
        self._wait()
        number = len(self.parts) + 1
        self.pending = self.store._uploads.submit(self._upload_part, number, block)

    def _upload_part(self, number: int, block: bytes) -> dict:
        result = self.store.client.upload_part(
            Bucket=self.store.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=block,
        )
        return {"PartNumber": number, "ETag": result["ETag"]}

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.parts.append(pending.result())

    def commit(self) -> str:
        client = self.store.client
        try:
            if self.upload_id is None:
                result = client.put_object(
                    Bucket=self.store.bucket, Key=self.key, Body=bytes(self.buffer)
                )
                return result.get("ETag", "")
            if self.buffer:
                self._send(bytes(self.buffer))
                self.buffer = bytearray()
            self._wait()
            result = client.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
            self.upload_id = None
            return result.get("ETag", "")
        except self.store.ClientError as exc:
            raise self.store._fail(exc, self.path) from exc

    def abort(self) -> None:
        self.buffer = bytearray()
        if self.pending is not None:
            concurrent.futures.wait([self.pending])
            self.pending = None
        if self.upload_id is not None:
            upload_id, self.upload_id = self.upload_id, None
            self.store._abort_s3(self.path, upload_id)


class _S3PartWriter:
    """One part of a client's multipart upload, spooled to disk and then sent as UploadPart."""

    def __init__(self, store: S3Store, manifest: dict, number: int) -> None:
        self.store, self.manifest, self.number = store, manifest, number
        self.file = tempfile.TemporaryFile()

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> str:
        size = self.file.tell()
        self.file.seek(0)
        try:
            result = self.store.client.upload_part(
                Bucket=self.store.bucket,
                Key=self.store.key(self.manifest["path"]),
                UploadId=self.manifest["s3_upload_id"],
                PartNumber=self.number,
                Body=self.file,
                ContentLength=size,
            )
        except self.store.ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise no_such_upload("(part upload)") from exc
            raise self.store._fail(exc, self.manifest["path"]) from exc
        finally:
            self.file.close()
        return result["ETag"]

    def abort(self) -> None:
        self.file.close()
