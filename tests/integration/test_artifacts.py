"""Artifacts through the server, with the stock client and raw HTTP (api reference §4.8, §1.3).

Each test runs against a local-disk store (SQLite and PostgreSQL metadata) and an S3 store
(moto in server mode). Storage is also inspected directly, to prove that nothing partial or
out-of-bounds was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from mlflow.exceptions import MlflowException

from artifact_support import (
    STORES,
    ArtServer,
    md5_file,
    raw_request,
    start_art_server,
    start_moto,
    write_random,
)
from conftest import IS_MLFLOW, unique

ART = "/api/2.0/mlflow-artifacts/artifacts"


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    moto = start_moto(tmp_path_factory.mktemp("moto"))
    yield moto
    moto.stop()


@pytest.fixture(scope="session", params=STORES)
def art(request) -> ArtServer:
    kind, backend = request.param
    moto = request.getfixturevalue("moto_s3") if kind == "s3" else None
    server = start_art_server(kind, backend, moto)
    yield server
    server.srv.stop()


@pytest.fixture
def client(art: ArtServer):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=art.url)


@pytest.fixture
def fluent(art: ArtServer, monkeypatch: pytest.MonkeyPatch):
    import mlflow
    import mlflow.tracking.fluent as fluent_mod

    monkeypatch.setenv("MLFLOW_TRACKING_URI", art.url)
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(art.url)
    monkeypatch.setattr(fluent_mod, "_active_experiment_id", None, raising=False)
    mlflow.set_experiment(unique("art"))
    try:
        yield mlflow
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


@pytest.fixture
def run(client):
    experiment_id = client.create_experiment(unique("art"))
    return client.create_run(experiment_id)


def run_path(run, rel: str = "") -> str:
    """The run's artifact folder as a path inside the store (``<exp>/<run>/artifacts/...``)."""
    root = urlsplit(run.info.artifact_uri).path.strip("/")
    return f"{root}/{rel}".rstrip("/")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def error_code(resp) -> str:
    return resp.json()["error_code"]


# --- the stock client ---------------------------------------------------------------------------
def test_logging_calls_and_download_round_trip(fluent, tmp_path):
    """log_artifact(s), log_text, log_dict, log_image, log_figure, then download_artifacts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    src = tmp_path / "src"
    (src / "deep" / "er est").mkdir(parents=True)
    (src / "top.txt").write_text("top\n")
    (src / "empty.bin").write_bytes(b"")
    (src / "deep" / "data ü 1.csv").write_text("a,b\n1,2\n")
    (src / "deep" / "er est" / "模型.json").write_text('{"k": "v"}')
    single = tmp_path / "single file.bin"
    single.write_bytes(os.urandom(70_000))

    with fluent.start_run() as active:
        fluent.log_artifacts(str(src), artifact_path="tree")
        fluent.log_artifact(str(single))
        fluent.log_artifact(str(single), artifact_path="a/b/c")
        fluent.log_text("hello, wörld\n", "notes/hello.txt")
        fluent.log_dict({"alpha": 0.5, "layers": [1, 2]}, "config/params.json")
        fluent.log_dict({"alpha": 0.5}, "config/params.yaml")
        fluent.log_image(np.full((6, 4, 3), 200, dtype=np.uint8), "images/grey.png")
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        fluent.log_figure(fig, "figures/line.png")
        plt.close(fig)
        run_id = active.info.run_id

    out = Path(fluent.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "dl")))
    got = tree(out)
    for rel, data in tree(src).items():
        assert got[f"tree/{rel}"] == data, rel
    assert got["single file.bin"] == single.read_bytes()
    assert got["a/b/c/single file.bin"] == single.read_bytes()
    assert got["notes/hello.txt"] == "hello, wörld\n".encode()
    assert json.loads(got["config/params.json"]) == {"alpha": 0.5, "layers": [1, 2]}
    assert b"alpha: 0.5" in got["config/params.yaml"]
    assert got["images/grey.png"].startswith(b"\x89PNG")
    assert got["figures/line.png"].startswith(b"\x89PNG")
    assert got["tree/empty.bin"] == b""

    one = fluent.artifacts.download_artifacts(
        run_id=run_id, artifact_path="tree/deep/er est/模型.json", dst_path=str(tmp_path / "one")
    )
    assert Path(one).read_text() == '{"k": "v"}'
    text = fluent.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt")
    assert text == "hello, wörld\n"


def test_list_artifacts(client, run, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "x y.txt").write_text("12345")
    (tmp_path / "d" / "sub" / "z.bin").write_bytes(b"\0" * 10)
    (tmp_path / "d" / "empty").write_bytes(b"")
    client.log_artifacts(run.info.run_id, str(tmp_path / "d"), artifact_path="dir")
    client.log_text(run.info.run_id, "top", "top.txt")

    top = client.list_artifacts(run.info.run_id)
    assert [(f.path, f.is_dir, f.file_size) for f in top] == [
        ("dir", True, None),
        ("top.txt", False, 3),
    ]
    import mlflow

    inner = mlflow.artifacts.list_artifacts(
        artifact_uri=f"{run.info.artifact_uri}/dir", tracking_uri=client.tracking_uri
    )
    assert [(f.path, f.is_dir, f.file_size) for f in inner] == [
        ("dir/empty", False, None if IS_MLFLOW else 0),  # the stock server omits a 0 size
        ("dir/sub", True, None),
        ("dir/x y.txt", False, 5),
    ]
    # Listing a file, or nothing, is an empty list.
    assert client.list_artifacts(run.info.run_id, "top.txt") == []
    assert client.list_artifacts(run.info.run_id, "missing") == []
    nested = client.list_artifacts(run.info.run_id, "dir/sub")
    assert [(f.path, f.file_size) for f in nested] == [("dir/sub/z.bin", 10)]


def test_large_file_streams_both_ways(client, run, art, tmp_path):
    """Hundreds of MB up and down in one PUT/GET each, byte for byte (no multipart)."""
    size = 256 * 1024 * 1024 + 7 if art.kind == "local" else 48 * 1024 * 1024 + 7
    big = tmp_path / "big.bin"
    digest = write_random(big, size)
    started = time.monotonic()
    client.log_artifact(run.info.run_id, str(big), artifact_path="blobs")
    out = client.download_artifacts(run.info.run_id, "blobs/big.bin", str(tmp_path / "dl"))
    elapsed = time.monotonic() - started
    assert os.path.getsize(out) == size
    assert md5_file(Path(out)) == digest
    assert art.stored_files(run_path(run, "blobs")) == {run_path(run, "blobs/big.bin"): size}
    print(f"{size / 2**20:.0f} MiB up and down in {elapsed:.1f}s")


@pytest.mark.labtrack_only
def test_multipart_upload_with_stock_client(client, run, art, tmp_path, monkeypatch):
    """server-info advertises multipart; the client then sends parts to the URLs we hand out."""
    info = art.http.get("/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is True
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * 1024 * 1024))
    big = tmp_path / "parts.bin"
    digest = write_random(big, 12 * 1024 * 1024 + 123)  # three parts, the last one short
    client.log_artifact(run.info.run_id, str(big), artifact_path="mp")
    out = client.download_artifacts(run.info.run_id, "mp/parts.bin", str(tmp_path / "dl"))
    assert md5_file(Path(out)) == digest
    assert art.pending_uploads() == []


# --- raw mlflow-artifacts API -------------------------------------------------------------------
def test_put_get_delete_raw(art, run):
    base = f"{ART}/{run_path(run)}"
    r = art.http.put(f"{base}/raw/a.txt", content=b"abc", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.content == b""
    r = art.http.put(f"{base}/raw/a.txt", content=b"replaced")  # overwrite
    assert r.status_code == 200
    assert art.http.get(f"{base}/raw/a.txt").content == b"replaced"
    r = art.http.put(f"{base}/raw/empty.txt", content=b"")
    assert r.status_code == 200
    r = art.http.get(f"{base}/raw/empty.txt")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"

    r = art.http.get(f"{base}/raw/nope.txt")
    assert r.status_code == 404 and error_code(r) == "RESOURCE_DOES_NOT_EXIST"
    assert "No such artifact" in r.json()["message"]
    r = art.http.get(f"{base}/raw")  # a directory
    assert r.status_code == 400
    r = art.http.put(f"{base}/raw/", content=b"x")  # names a folder, not a file
    assert r.status_code == 400

    r = art.http.delete(f"{base}/raw/a.txt")
    assert r.status_code == 200 and r.json() == {}
    assert art.http.get(f"{base}/raw/a.txt").status_code == 404
    assert art.http.delete(f"{base}/raw/a.txt").status_code == 200  # already gone: fine
    art.http.put(f"{base}/raw/d/1.txt", content=b"1")
    art.http.put(f"{base}/raw/d/2/3.txt", content=b"3")
    assert art.http.delete(f"{base}/raw/d").status_code == 200  # a whole folder
    assert art.stored_files(run_path(run, "raw/d")) == {}


def test_mlflow_artifacts_listing(art, run):
    base = f"{ART}/{run_path(run)}"
    art.http.put(f"{base}/l/x.txt", content=b"xyz")
    art.http.put(f"{base}/l/sub dir/y.txt", content=b"y")
    r = art.http.get(ART, params={"path": run_path(run, "l")})
    assert r.status_code == 200
    assert r.json() == {
        "files": [
            {"path": "sub dir", "is_dir": True},
            {"path": "x.txt", "is_dir": False, "file_size": 3},
        ]
    }
    # A file, or a missing path, lists as {}.
    assert art.http.get(ART, params={"path": run_path(run, "l/x.txt")}).json() == {}
    assert art.http.get(ART, params={"path": run_path(run, "nothing")}).json() == {}
    # The root lists experiment folders and never our bookkeeping folder.
    root = art.http.get(ART).json()
    names = [f["path"] for f in root["files"]]
    assert run.info.experiment_id in names
    assert ".labtrack" not in names
    assert all(f["is_dir"] for f in root["files"])


def test_tracking_list_endpoint(art, client, run):
    client.log_text(run.info.run_id, "hello", "a/b.txt")
    client.log_text(run.info.run_id, "top", "t.txt")
    r = art.http.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id})
    assert r.status_code == 200
    assert r.json() == {
        "root_uri": run.info.artifact_uri,
        "files": [
            {"path": "a", "is_dir": True},
            {"path": "t.txt", "is_dir": False, "file_size": 3},
        ],
    }
    r = art.http.get(
        "/api/2.0/mlflow/artifacts/list", params={"run_uuid": run.info.run_id, "path": "a"}
    )
    assert r.json()["files"] == [{"path": "a/b.txt", "is_dir": False, "file_size": 5}]
    empty = client.create_run(run.info.experiment_id)
    r = art.http.get("/api/2.0/mlflow/artifacts/list", params={"run_id": empty.info.run_id})
    assert r.json() == {"root_uri": empty.info.artifact_uri}
    r = art.http.get(
        "/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id, "path": "../x"}
    )
    assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETER_VALUE"
    r = art.http.get("/api/2.0/mlflow/artifacts/list", params={"run_id": "0" * 32})
    assert r.status_code == 404


def test_legacy_get_artifact_and_content_types(art, client, run):
    rid = run.info.run_id
    client.log_text(rid, "plain text", "v/readme.txt")
    client.log_text(rid, "<script>alert(1)</script>", "v/page.html")
    client.log_text(rid, "<svg xmlns='http://www.w3.org/2000/svg'></svg>", "v/pic.svg")
    client.log_text(rid, "name: x", "v/MLmodel")
    client.log_text(rid, "\x89PNG fake", "v/img.png")
    client.log_text(rid, "binary", "v/blob.weird")
    client.log_text(rid, "ünï", "v/ünï côde.txt")

    def get(path):
        return art.http.get("/get-artifact", params={"run_id": rid, "path": path})

    r = get("v/readme.txt")
    assert r.status_code == 200 and r.content == b"plain text"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"
    if not IS_MLFLOW:  # labtrack shows text and images inline; mlflow attaches everything
        assert r.headers["content-disposition"].startswith("inline")
        assert get("v/img.png").headers["content-type"] == "image/png"
        assert get("v/img.png").headers["content-disposition"].startswith("inline")
        assert get("v/MLmodel").headers["content-type"].startswith("text/plain")
        for active in ("v/page.html", "v/pic.svg"):
            h = get(active).headers
            assert h["content-disposition"].startswith("attachment"), active
            assert h["content-security-policy"] == "sandbox"
            assert h["x-content-type-options"] == "nosniff"
        assert get("v/blob.weird").headers["content-type"] == "application/octet-stream"
        assert get("v/blob.weird").headers["content-disposition"].startswith("attachment")
    r = get("v/ünï côde.txt")
    assert r.status_code == 200 and r.content == "ünï".encode()
    assert "filename*=UTF-8''%C3%BCn%C3%AF%20c%C3%B4de.txt" in r.headers["content-disposition"]
    r = art.http.get("/get-artifact", params={"run_uuid": rid, "path": "v/readme.txt"})
    assert r.status_code == 200

    r = get("v/nothing.txt")
    assert r.status_code == 404 and error_code(r) == "RESOURCE_DOES_NOT_EXIST"
    r = get("../../etc/passwd")
    assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETER_VALUE"


def test_range_requests(art, run):
    url = f"{ART}/{run_path(run, 'r/digits.txt')}"
    data = b"0123456789abcdef"
    art.http.put(url, content=data)

    def get(rng, **headers):
        return art.http.get(url, headers={"Range": rng, **headers})

    r = get("bytes=2-5")
    assert r.status_code == 206 and r.content == b"2345"
    assert r.headers["content-range"] == "bytes 2-5/16"
    assert r.headers["content-length"] == "4"
    assert get("bytes=10-").content == b"abcdef"
    assert get("bytes=-3").content == b"def"
    assert get("bytes=14-999").content == b"ef"  # clipped to the end
    assert get("bytes=-100").content == data  # whole file as a suffix
    r = get("bytes=16-")
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */16"
    r = art.http.get(url)
    assert r.status_code == 200 and r.headers["accept-ranges"] == "bytes"
    etag = r.headers.get("etag")
    if not IS_MLFLOW:
        assert get("bytes=0-1,4-5").status_code == 200  # multiple ranges: whole file
        assert get("bytes=nonsense").status_code == 200
        assert get("bytes=2-5", **{"If-Range": '"stale"'}).content == data
        assert get("bytes=2-5", **{"If-Range": etag}).status_code == 206
        head = art.http.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == "16"
        assert head.content == b""


def test_large_range_from_the_middle(art, run, tmp_path):
    big = tmp_path / "mid.bin"
    write_random(big, 5 * 1024 * 1024 + 11)
    url = f"{ART}/{run_path(run, 'r/mid.bin')}"
    with open(big, "rb") as f:
        assert art.http.put(url, content=f).status_code == 200
    data = big.read_bytes()
    start, end = 1024 * 1024 - 5, 4 * 1024 * 1024 + 9
    r = art.http.get(url, headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206
    assert hashlib.md5(r.content).digest() == hashlib.md5(data[start : end + 1]).digest()


# --- safety ---------------------------------------------------------------------------------------
# Refused by the stock server too.
ESCAPES = [
    "../../../etc/passwd",
    "1/../../outside.txt",
    "%2e%2e/%2e%2e/outside.txt",
    "1/..%2F..%2Foutside.txt",
    "1/%252e%252e/%252e%252e/outside.txt",
    "C:%5Cwindows%5Cwin.ini",
]
# Refused by labtrack only: the stock server stores these (or redirects).
STRICTER = [
    "1/a%255Cb.txt",
    "1/a%5C..%5C..%5Coutside.txt",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "1/nul%00byte.txt",
    "1/ctl%0Aline.txt",
    ".labtrack/mpu/x",
]


@pytest.mark.parametrize(
    "path", ESCAPES + [pytest.param(p, marks=pytest.mark.labtrack_only) for p in STRICTER]
)
def test_path_escapes_are_refused(art, path):
    for method, body in (("PUT", b"evil"), ("GET", b""), ("DELETE", b"")):
        r = raw_request(art.url, method, f"{ART}/{path}", body=body)
        if IS_MLFLOW and r.status_code == 404:
            continue  # the stock router rejects some of these before the handler
        assert r.status_code == 400, (method, path, r.status_code, r.body[:200])
        assert json.loads(r.body)["error_code"] == "INVALID_PARAMETER_VALUE", r.body
    r = raw_request(art.url, "GET", f"{ART}?path={quote(path, safe='%')}")
    assert r.status_code in (400, 404) if IS_MLFLOW else r.status_code == 400, path
    if art.kind == "local":
        assert not (art.local_root.parent / "outside.txt").exists()
        assert not Path("/outside.txt").exists()


@pytest.mark.labtrack_only
def test_symlinks_are_never_followed(art, run, tmp_path):
    if art.kind != "local":
        pytest.skip("symlinks exist only on the local backend")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("do not serve")
    folder = art.local_root / run_path(run)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "link").symlink_to(secret, target_is_directory=True)
    (folder / "filelink.txt").symlink_to(secret / "key.txt")
    try:
        base = f"{ART}/{run_path(run)}"
        for path in ("link/key.txt", "filelink.txt"):
            r = art.http.get(f"{base}/{path}")
            assert r.status_code == 400, (path, r.text)
        r = art.http.put(f"{base}/link/new.txt", content=b"x")
        assert r.status_code == 400
        assert not (secret / "new.txt").exists()
        r = art.http.delete(f"{base}/link")
        assert r.status_code == 400
        assert (secret / "key.txt").exists()
        listing = art.http.get(ART, params={"path": run_path(run)}).json()
        assert "link" not in [f["path"] for f in listing.get("files", [])]
    finally:
        (folder / "link").unlink()
        (folder / "filelink.txt").unlink()


@pytest.mark.labtrack_only
def test_uploads_to_deleted_runs_are_refused(art, client, run, tmp_path):
    rid = run.info.run_id
    client.log_text(rid, "before", "before.txt")
    client.delete_run(rid)
    r = art.http.put(f"{ART}/{run_path(run, 'after.txt')}", content=b"after")
    assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETER_VALUE"
    assert "deleted" in r.json()["message"]
    f = tmp_path / "after.txt"
    f.write_text("after")
    with pytest.raises(Exception):  # noqa: B017 - the artifact client raises requests' HTTPError
        client.log_artifact(rid, str(f))
    r = art.http.post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{run_path(run)}",
        json={"path": "after.txt", "num_parts": 1},
    )
    assert r.status_code == 400
    # Reading still works, and restoring the run allows uploads again.
    assert art.http.get(f"{ART}/{run_path(run, 'before.txt')}").content == b"before"
    client.restore_run(rid)
    client.log_artifact(rid, str(f))
    assert art.http.get(f"{ART}/{run_path(run, 'after.txt')}").content == b"after"


@pytest.mark.labtrack_only
def test_interrupted_upload_leaves_nothing(art, run):
    """A client that disconnects mid-body leaves no file, no temp file, no S3 upload."""
    path = f"{ART}/{run_path(run, 'cut/partial.bin')}"
    u = urlsplit(art.url)
    for sent in (100, 3 * 1024 * 1024, 12 * 1024 * 1024):  # under, at and over one S3 part
        with socket.create_connection((u.hostname, u.port)) as sock:
            head = (
                f"PUT {u.path}{path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                f"Content-Length: {sent * 4}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            sock.sendall(head.encode())
            chunk = b"x" * 65536
            left = sent
            while left > 0:
                sock.sendall(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while art.pending_uploads() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert art.http.get(path).status_code == 404
        assert art.stored_files(run_path(run, "cut")) == {}
        assert art.pending_uploads() == []


@pytest.mark.labtrack_only
def test_multipart_protocol_raw(art, run):
    folder = run_path(run, "mpu")
    create = art.http.post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{folder}",
        json={"path": "/home/me/data/model.bin", "num_parts": 3},
    )
    assert create.status_code == 200, create.text
    body = create.json()
    upload_id = body["upload_id"]
    creds = body["credentials"]
    assert [c["part_number"] for c in creds] == [1, 2, 3]
    assert all(c["url"].startswith(art.url + "/api/2.0/mlflow-artifacts/mpu/part/") for c in creds)

    import httpx

    parts = [b"a" * (5 * 1024 * 1024), b"b" * (5 * 1024 * 1024), b"tail"]
    etags = []
    for cred, data in zip(creds, parts, strict=True):
        r = httpx.put(cred["url"], content=data)  # no credentials: the URL is the capability
        assert r.status_code == 200, r.text
        etags.append(r.headers["etag"])
    # Retrying a part is fine; the latest etag is what completes.
    r = httpx.put(creds[1]["url"], content=parts[1])
    etags[1] = r.headers["etag"]

    complete = f"/api/2.0/mlflow-artifacts/mpu/complete/{folder}"

    def parts_body(tags):
        return [{"part_number": i + 1, "etag": e} for i, e in enumerate(tags)]

    r = art.http.post(
        complete,
        json={
            "path": "model.bin",
            "upload_id": upload_id,
            "parts": list(reversed(parts_body(etags))),
        },
    )
    assert r.status_code == 400  # parts out of order
    r = art.http.post(
        f"/api/2.0/mlflow-artifacts/mpu/complete/{run_path(run, 'elsewhere')}",
        json={"path": "model.bin", "upload_id": upload_id, "parts": parts_body(etags)},
    )
    assert r.status_code == 400  # the upload belongs to another path
    r = art.http.post(
        complete,
        json={"path": "model.bin", "upload_id": upload_id, "parts": parts_body(["x", *etags[1:]])},
    )
    assert r.status_code == 400  # unknown etag
    assert art.http.get(f"{ART}/{folder}/model.bin").status_code == 404
    r = art.http.post(
        complete, json={"path": "model.bin", "upload_id": upload_id, "parts": parts_body(etags)}
    )
    assert r.status_code == 200, r.text
    got = art.http.get(f"{ART}/{folder}/model.bin").content
    assert got == b"".join(parts)
    assert art.pending_uploads() == []

    # Abort: parts go away, the upload id stops working, aborting again is fine.
    create = art.http.post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{folder}", json={"path": "gone.bin", "num_parts": 1}
    ).json()
    assert httpx.put(create["credentials"][0]["url"], content=b"zz").status_code == 200
    abort = f"/api/2.0/mlflow-artifacts/mpu/abort/{folder}"
    body = {"path": "gone.bin", "upload_id": create["upload_id"]}
    assert art.http.post(abort, json=body).status_code == 200
    assert art.http.post(abort, json=body).status_code == 200
    r = httpx.put(create["credentials"][0]["url"], content=b"zz")
    assert r.status_code == 404
    assert art.http.get(f"{ART}/{folder}/gone.bin").status_code == 404
    assert art.pending_uploads() == []
    # Made-up upload ids and part numbers.
    base = "/api/2.0/mlflow-artifacts/mpu/part"
    assert art.http.put(f"{base}/{'A' * 32}/1", content=b"x").status_code == 404
    assert art.http.put(f"{base}/../../x/1", content=b"x").status_code in (400, 404)
    assert art.http.put(f"{base}/{create['upload_id']}/0", content=b"x").status_code == 400


@pytest.mark.labtrack_only
def test_presigned_endpoints_never_hand_out_storage_access(art, run):
    r = art.http.get(f"/api/2.0/mlflow-artifacts/presigned/{run_path(run, 'x.txt')}")
    assert r.status_code == 501 and error_code(r) == "NOT_IMPLEMENTED"
    r = art.http.post(
        "/api/2.0/mlflow/artifacts/presigned-download-url",
        json={"run_id": run.info.run_id, "path": "x.txt"},
    )
    assert r.status_code == 400 and "proxied" in r.json()["message"]


def test_ui_upload(art, run):
    r = art.http.post(
        "/ajax-api/2.0/mlflow/upload-artifact",
        params={"run_uuid": run.info.run_id, "path": "ui/note.txt"},
        content=b"from the ui",
    )
    assert r.status_code == 200, r.text
    assert art.http.get(f"{ART}/{run_path(run, 'ui/note.txt')}").content == b"from the ui"
    r = art.http.post(
        "/ajax-api/2.0/mlflow/upload-artifact",
        params={"run_uuid": run.info.run_id, "path": "../x.txt"},
        content=b"x",
    )
    assert r.status_code == 400


def test_model_version_get_artifact(art, client, run):
    if IS_MLFLOW:
        pytest.skip("the stock server needs its own tracking URI set to resolve runs:/ sources")
    rid = run.info.run_id
    client.log_text(rid, "flavors: {}", "model/MLmodel")
    name = unique("mv")
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "ENDPOINT_NOT_FOUND":
            pytest.skip("the model registry is not available on this server")
        raise
    version = client.create_model_version(name, f"runs:/{rid}/model", run_id=rid)
    r = art.http.get(
        "/model-versions/get-artifact",
        params={"name": name, "version": version.version, "path": "MLmodel"},
    )
    assert r.status_code == 200, r.text
    assert r.content == b"flavors: {}"
    r = art.http.get(
        "/model-versions/get-artifact",
        params={"name": name, "version": version.version, "path": "../../x"},
    )
    assert r.status_code == 400


@pytest.mark.labtrack_only
def test_multipart_behind_a_static_prefix_and_proxy(tmp_path, monkeypatch):
    """Part URLs carry the static prefix, and the host a reverse proxy says the client used."""
    import mlflow

    art = start_art_server("local", "sqlite", None, static_prefix="/mlp")
    try:
        run = mlflow.MlflowClient(tracking_uri=art.url).create_run("0")
        folder = run_path(run)
        r = art.http.post(
            f"/api/2.0/mlflow-artifacts/mpu/create/{folder}",
            json={"path": "x.bin", "num_parts": 1},
            headers={"X-Forwarded-Host": "ml.example.org", "X-Forwarded-Proto": "https"},
        )
        url = r.json()["credentials"][0]["url"]
        assert url.startswith("https://ml.example.org/mlp/api/2.0/mlflow-artifacts/mpu/part/")
        art.http.post(
            f"/api/2.0/mlflow-artifacts/mpu/abort/{folder}",
            json={"path": "x.bin", "upload_id": r.json()["upload_id"]},
        )

        monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1")
        monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(1024 * 1024))
        src = tmp_path / "p.bin"
        digest = write_random(src, 3 * 1024 * 1024 + 5)
        client = mlflow.MlflowClient(tracking_uri=art.url)
        client.log_artifact(run.info.run_id, str(src))
        out = client.download_artifacts(run.info.run_id, "p.bin", str(tmp_path / "dl"))
        assert md5_file(Path(out)) == digest
        assert art.pending_uploads() == []
    finally:
        art.srv.stop()
