"""W6's floor: a server that does nothing, so the stock client's own cost per call is known.

It answers the few calls `mlflow.set_experiment` / `start_run` / `log_metric` / `end_run` make
with fixed, well-formed bodies and stores nothing, on the same stack labtrack uses (uvicorn,
httptools, uvloop, TCP_NODELAY). W6 reports each real server's time per call minus this floor:
the time the server adds, which is what a server can improve.

    python bench/null_server.py --port 5099
"""

from __future__ import annotations

import argparse
import json
import socket
import uuid

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

RUN_ID = uuid.uuid4().hex
EXPERIMENT = {
    "experiment_id": "1",
    "name": "null",
    "artifact_location": "/tmp/null-server",
    "lifecycle_stage": "active",
    "creation_time": 0,
    "last_update_time": 0,
}
RUN_INFO = {
    "run_id": RUN_ID,
    "run_uuid": RUN_ID,
    "experiment_id": "1",
    "run_name": "null",
    "user_id": "",
    "status": "RUNNING",
    "start_time": 0,
    "artifact_uri": "/tmp/null-server/artifacts",
    "lifecycle_stage": "active",
}
ANSWERS = {
    "/api/2.0/mlflow/experiments/get-by-name": {"experiment": EXPERIMENT},
    "/api/2.0/mlflow/experiments/get": {"experiment": EXPERIMENT},
    "/api/2.0/mlflow/experiments/create": {"experiment_id": "1"},
    "/api/2.0/mlflow/runs/create": {"run": {"info": RUN_INFO, "data": {}}},
    "/api/2.0/mlflow/runs/get": {"run": {"info": RUN_INFO, "data": {}}},
    "/api/2.0/mlflow/runs/update": {"run_info": {**RUN_INFO, "status": "FINISHED"}},
}
BODIES = {path: json.dumps(body).encode() for path, body in ANSWERS.items()}
HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # Read and drop the request body.
        more = (await receive()).get("more_body", False)
    body = BODIES.get(scope["path"], b"{}")
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})


class NoDelayProtocol(HttpToolsProtocol):
    """TCP_NODELAY on every connection, as labtrack does (see labtrack.server)."""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http=NoDelayProtocol,
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
