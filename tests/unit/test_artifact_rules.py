"""Artifact path safety, URI mapping, range parsing, content types and gc's helpers."""

from __future__ import annotations

import pytest

from labtrack.artifacts import paths
from labtrack.artifacts.serve import UNSATISFIABLE, content_type, disposition, parse_range
from labtrack.gc import parse_duration
from labtrack.store.gc import Locations
from labtrack.wire import MlflowError


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("1/abc/artifacts/x.txt", "1/abc/artifacts/x.txt"),
        ("a//b/./c/", "a/b/c"),
        ("dir with space/ü 模型.bin", "dir with space/ü 模型.bin"),
        ("100% done.txt", "100% done.txt"),
        ("C:/not-a-drive-on-posix", "C:/not-a-drive-on-posix"),
    ],
)
def test_clean_paths(raw, clean):
    assert paths.clean(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        "a/../../b",
        "/etc/passwd",
        "a\\b",
        "C:\\x",
        "a\x00b",
        "a\nb",
        "a%2Fb",
        "a%2e%2e",
        "a#b",
        ".labtrack/mpu",
        "",
        "./",
    ],
)
def test_refused_paths(raw):
    with pytest.raises(MlflowError) as err:
        paths.clean(raw)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_root_only_where_allowed():
    assert paths.clean("", allow_root=True) == ""
    with pytest.raises(MlflowError):
        paths.clean_file("a/b/")


def test_run_of():
    run = "0123456789abcdef0123456789abcdef"
    assert paths.run_of(f"3/{run}/artifacts/x") == run
    assert paths.run_of(f"3/{run}/artifacts") == run
    assert paths.run_of(f"3/models/{run}/artifacts") is None
    assert paths.run_of(f"x/{run}/artifacts/y") is None


@pytest.mark.parametrize(
    ("uri", "destination", "expected"),
    [
        ("mlflow-artifacts:/3/abc/artifacts", "/data/art", "3/abc/artifacts"),
        ("mlflow-artifacts://host:5000/3/abc", "/data/art", "3/abc"),
        ("http://h/api/2.0/mlflow-artifacts/artifacts/3/x", "/data/art", "3/x"),
        ("/data/art/3/x", "/data/art", "3/x"),
        ("file:///data/art/3/x", "/data/art/", "3/x"),
        ("/data/artwork/3/x", "/data/art", None),
        ("s3://b/pre/3/x", "s3://b/pre", "3/x"),
        ("s3://b/prefix2/3/x", "s3://b/pre", None),
        ("s3://other/3/x", "s3://b", None),
        ("mlflow-artifacts:/3/../../etc", "/data/art", None),
        ("mlflow-artifacts:/", "/data/art", ""),
    ],
)
def test_store_path(uri, destination, expected):
    assert paths.store_path(uri, destination) == expected


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 5)),
        ("bytes=5-", 10, (5, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-30", 10, (0, 10)),
        ("bytes=8-100", 10, (8, 10)),
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=5-2", 10, None),
        ("bytes=0-1,3-4", 10, None),
        ("items=0-1", 10, None),
        ("bytes=a-b", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("name", "ctype", "inline"),
    [
        ("notes.txt", "text/plain; charset=utf-8", True),
        ("MLmodel", "text/plain; charset=utf-8", True),
        ("conda.yaml", "text/plain; charset=utf-8", True),
        ("metrics.json", "text/plain; charset=utf-8", True),
        ("plot.png", "image/png", True),
        ("photo.JPG", "image/jpeg", True),
        ("page.html", "text/html", False),
        ("icon.svg", "image/svg+xml", False),
        ("model.pkl", "application/octet-stream", False),
        ("report.pdf", "application/pdf", False),
    ],
)
def test_content_types(name, ctype, inline):
    assert content_type(name) == (ctype, inline)


def test_script_capable_types_are_attachments():
    for name in ("a.xml", "a.xhtml", "a.htm", "a.js", "a.svg"):
        assert content_type(name)[1] is False, name


def test_disposition_survives_any_name():
    assert disposition("a.txt", True) == 'inline; filename="a.txt"'
    value = disposition('模型 "x".bin', False)
    value.encode("latin-1")  # a valid header value
    assert value.startswith('attachment; filename="')
    assert "filename*=UTF-8''%E6%A8%A1%E5%9E%8B%20%22x%22.bin" in value


def test_parse_duration():
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1d2h30m5s") == 86400 + 7200 + 1800 + 5
    for bad in ("", "10", "3w", "1d junk"):
        with pytest.raises(Exception):  # noqa: B017 - click.BadParameter
            parse_duration(bad)


def test_locations_sharers():
    where = Locations(
        [
            ("mlflow-artifacts:/3", "experiment 3"),
            ("mlflow-artifacts:/3/r1/artifacts", "run r1"),
            ("mlflow-artifacts:/30/r2/artifacts", "run r2"),
            ("mlflow-artifacts:/3/models/m1/artifacts", "logged model m1"),
        ]
    )
    removing = {"experiment 3", "run r1"}
    assert where.sharers("mlflow-artifacts:/3", removing) == ["logged model m1"]
    assert where.sharers("mlflow-artifacts:/3/r1/artifacts/", removing) == []
    assert where.sharers("mlflow-artifacts:/30", set()) == ["run r2"]
