"""Helpers for the artifact and gc tests: a real S3-protocol server (moto in server mode), servers
whose artifacts live on local disk or in that S3, and raw-HTTP access that sends paths verbatim.

Every artifact test runs against three servers: local disk with SQLite, local disk with
PostgreSQL, and S3 with SQLite (the metadata database and the artifact store are independent).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import IS_MLFLOW, ServerProcess, free_port, start_server

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "labtrack-test",
    "AWS_SECRET_ACCESS_KEY": "labtrack-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
STORES = [
    pytest.param(("local", "sqlite"), id="local-sqlite"),
    pytest.param(("local", "postgresql"), id="local-postgresql", marks=pytest.mark.postgres),
    pytest.param(("s3", "sqlite"), id="s3-sqlite"),
]


@dataclass
class MotoS3:
    """A moto S3 server on loopback, run as a subprocess like any other S3 endpoint."""

    url: str
    proc: subprocess.Popen

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, **_boto_creds())

    def new_bucket(self) -> str:
        name = f"labtrack-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _boto_creds() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def start_moto(log_dir: Path) -> MotoS3:
    pytest.importorskip("moto", reason="moto[server] is needed for the S3 tests (dev extra)")
    port = free_port()
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto server exited: {(log_dir / 'moto.log').read_text()[-2000:]}")
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            return MotoS3(url, proc)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("moto server did not start within 30 s")


@dataclass
class ArtServer:
    """A server plus where its artifacts live, so tests can look at storage directly."""

    srv: ServerProcess
    kind: str  # "local" or "s3"
    destination: str  # as passed to --artifacts-destination
    s3: MotoS3 | None = None
    bucket: str = ""
    prefix: str = ""

    @property
    def url(self) -> str:
        return self.srv.url

    @property
    def http(self) -> httpx.Client:
        return self.srv.http

    @property
    def local_root(self) -> Path:
        assert self.kind == "local"
        return Path(self.destination)

    def stored_files(self, under: str) -> dict[str, int]:
        """{relative path: size} of every stored file below ``under`` (bookkeeping excluded)."""
        under = under.strip("/")
        if self.kind == "local":
            base = self.local_root / under
            if not base.exists():
                return {}
            return {
                p.relative_to(self.local_root).as_posix(): p.stat().st_size
                for p in base.rglob("*")
                if p.is_file() and ".labtrack" not in p.parts
            }
        key_prefix = f"{self.prefix}/{under}" if self.prefix else under
        found = {}
        pages = self.s3.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=key_prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix) + 1 :] if self.prefix else obj["Key"]
                if not rel.startswith(".labtrack/"):
                    found[rel] = obj["Size"]
        return found

    def pending_uploads(self) -> list[str]:
        """Multipart uploads and temp files in flight: must be none once requests are done."""
        if self.kind == "local":
            base = self.local_root / ".labtrack"
            return [str(p) for p in base.rglob("*") if p.is_file()] if base.exists() else []
        uploads = self.s3.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]

    def gc(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        """Run ``labtrack gc`` against this server's database and artifact store."""
        cmd = [
            sys.executable,
            "-m",
            "labtrack",
            "gc",
            "--backend-store-uri",
            self.srv.backend_uri,
            "--artifacts-destination",
            self.destination,
        ]
        if self.s3 is not None:
            cmd += ["--s3-endpoint-url", self.s3.url]
        result = subprocess.run(
            cmd + list(args),
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **(AWS_ENV if self.s3 else {})},
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result


def start_art_server(kind: str, backend: str, moto: MotoS3 | None, **kwargs: Any) -> ArtServer:
    if kind == "local":
        srv = start_server(backend, **kwargs)
        return ArtServer(srv, "local", str(srv.data_dir / "artifacts"))
    assert moto is not None
    bucket = moto.new_bucket()
    prefix = "team a/artifacts"  # a space in the prefix on purpose
    destination = f"s3://{bucket}/{prefix}"
    extra = ["--artifacts-destination", destination]
    if not IS_MLFLOW:
        extra += ["--s3-endpoint-url", moto.url]
    srv = start_server(
        backend,
        extra_args=extra + kwargs.pop("extra_args", []),
        env={**AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": moto.url},
        **kwargs,
    )
    return ArtServer(srv, "s3", destination, moto, bucket, prefix)


# --- raw HTTP -------------------------------------------------------------------------------------
@dataclass
class Raw:
    status_code: int
    headers: dict[str, str]
    body: bytes


def raw_request(
    base_url: str, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> Raw:
    """Send ``path`` exactly as given (no client-side normalisation of ``..`` or escapes)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, parts.path + path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Raw(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> str:
    """A file of ``size`` pseudo-random bytes (fast: one random MiB, varied per block)."""
    seed = os.urandom(1 << 20)
    digest = hashlib.md5()
    with open(path, "wb") as f:
        written = 0
        block_no = 0
        while written < size:
            block = (block_no.to_bytes(8, "little") + seed)[: min(1 << 20, size - written)]
            f.write(block)
            digest.update(block)
            written += len(block)
            block_no += 1
    return digest.hexdigest()
