"""Health, version and server-info: what clients and load balancers probe."""

from __future__ import annotations

from labtrack import __version__
from labtrack.api.artifacts import multipart_uploads_enabled
from labtrack.http import Request, Response, RouteTable

routes = RouteTable()

# The MLflow version whose wire protocol labtrack speaks. The 3.x client reads /version to
# decide which tracing features the server has, so this is the protocol level, not ours.
MLFLOW_PROTOCOL_VERSION = "3.17.2"


@routes.raw("GET", "/health", public=True)
async def health(req: Request) -> Response:
    return Response(b"OK", content_type="text/plain; charset=utf-8")


@routes.raw("GET", "/version", public=True)
async def version(req: Request) -> Response:
    return Response(MLFLOW_PROTOCOL_VERSION.encode(), content_type="text/plain; charset=utf-8")


@routes.api("GET", "/mlflow/server-info", version="3.0", public=True)
async def server_info(req: Request) -> dict:
    return {
        "store_type": "SqlStore",
        "server": "labtrack",
        "labtrack_version": __version__,
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": multipart_uploads_enabled(req.app),
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {},
    }
