"""Artifact storage: one interface (:class:`~labtrack.artifacts.base.ArtifactStore`), two backends.

``--artifacts-destination`` picks the backend: ``s3://bucket/prefix`` is S3 (boto3 is imported
only then), anything else is a local folder (``file://`` URIs included).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from labtrack.artifacts.base import ArtifactStore


def s3_endpoint(explicit: str | None = None) -> str | None:
    """The S3 endpoint: the flag, then LABTRACK_S3_ENDPOINT_URL, then MLflow's variable."""
    return (
        explicit
        or os.environ.get("LABTRACK_S3_ENDPOINT_URL")
        or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
        or None
    )


def open_store(destination: str, s3_endpoint_url: str | None = None) -> ArtifactStore:
    scheme = urlsplit(destination).scheme.lower()
    if scheme == "s3":
        from labtrack.artifacts.s3 import S3Store

        return S3Store(destination, endpoint_url=s3_endpoint(s3_endpoint_url))
    if scheme == "file":
        destination = urlsplit(destination).path
    elif scheme and len(scheme) > 1:  # "C:" style drive letters are paths, not schemes
        raise ValueError(
            f"Unsupported artifacts destination {destination!r}: use a folder or s3://bucket/prefix"
        )
    from labtrack.artifacts.local import LocalStore

    return LocalStore(destination)


__all__ = ["ArtifactStore", "open_store", "s3_endpoint"]
