"""A minimal keep-alive JSON client: one connection per simulated client thread.

On a 2-core machine the benchmark client competes with the server for CPU; the thinner the
client, the less it caps a fast server. So requests go over a plain socket (see Client).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - the labtrack venv has orjson

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    _loads = json.loads

API = "/api/2.0/mlflow"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "*/*", "Connection": "keep-alive"}


class RequestError(RuntimeError):
    """The server answered with a non-200 status."""


class _Closed(ConnectionError):
    """The server closed the connection."""


class Deadline:
    """A wall-clock budget shared by the loops of one workload, so nothing runs unbounded."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeoutError(f"workload exceeded its {self.seconds:.0f}s budget")


class Client:
    """One persistent HTTP/1.1 connection to the server under test.

    Requests are written and responses parsed by hand on a plain socket: ``http.client`` costs
    about 115 us of client CPU per request, which on two shared cores capped the load the bench
    could put on a fast server (a do-nothing server answered only ~6,000 req/s). This keeps to
    what the servers under test send: Content-Length or chunked bodies, keep-alive or close.
    """

    def __init__(self, base_url: str, timeout_s: float = 120.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self._buf = b""
        self._used = False
        self._head = (
            f"Host: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            "Accept: */*\r\nContent-Length: "
        )

    def connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock, self._buf, self._used = sock, b"", False
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        """Send one request; retry once only when a reused keep-alive socket was found closed."""
        body = body or b""
        wire = f"{method} {path} HTTP/1.1\r\n{self._head}{len(body)}\r\n\r\n".encode() + body
        for attempt in (0, 1):
            sock = self.connect()
            reused = self._used
            try:
                sock.sendall(wire)
                status, close, data = self._response()
            except (ConnectionError, _Closed):
                self.close()
                if attempt == 0 and reused:
                    continue  # The server closed an idle connection; it never saw this request.
                raise
            except BaseException:
                self.close()  # A half-read response leaves the connection unusable.
                raise
            self._used = True
            if close:
                self.close()
            if status != 200:
                raise RequestError(f"{method} {path} -> {status}: {data[:300]!r}")
            return _loads(data) if data else {}
        raise AssertionError("unreachable")

    def _recv(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(262144)
        if not data:
            raise _Closed
        return data

    def _response(self) -> tuple[int, bool, bytes]:
        """(status, connection closes after it, body) of the next response on the socket."""
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        lines = buf[:end].decode("latin-1").split("\r\n")
        buf = buf[end + 4 :]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        close = headers.get("connection") == "close"
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(buf) < size:
                buf += self._recv()
            body, self._buf = buf[:size], buf[size:]
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                while (eol := buf.find(b"\r\n")) < 0:
                    buf += self._recv()
                size = int(buf[:eol].split(b";")[0], 16)
                while len(buf) < eol + 2 + size + 2:
                    buf += self._recv()
                parts.append(buf[eol + 2 : eol + 2 + size])
                buf = buf[eol + 2 + size + 2 :]
                if size == 0:
                    break
            body, self._buf = b"".join(parts), buf
        else:  # No length: the body runs to the end of the connection.
            try:
                while True:
                    buf += self._recv()
            except _Closed:
                pass
            body, self._buf, close = buf, b"", True
        return status, close, body

    def count_in_body(self, path: str, needle: bytes, chunk: int = 1 << 20) -> tuple[int, int]:
        """GET `path` and count `needle` in the body as it streams in; returns (count, bytes).

        For answers too big to parse in the client (W7's 10M-point get-history is GBs as Python
        objects): only one chunk is held at a time. The last len(needle) - 1 bytes of each chunk
        are carried into the next, so an occurrence split across chunks is counted once (the
        carried bytes alone are too short to hold a whole occurrence, so none counts twice).
        """
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("GET", path, headers=JSON_HEADERS)
            resp = conn.getresponse()
            if resp.status != 200:
                raise RequestError(f"GET {path} -> {resp.status}: {resp.read(300)!r}")
            count = size = 0
            carry = b""
            while data := resp.read(chunk):
                size += len(data)
                buf = carry + data
                count += buf.count(needle)
                carry = buf[-(len(needle) - 1) :]
        finally:
            conn.close()
        return count, size

    def post(self, endpoint: str, payload: dict[str, Any]) -> Any:
        return self.request("POST", f"{API}/{endpoint}", _dumps(payload))

    def get(self, endpoint: str, params: list[tuple[str, str]]) -> Any:
        return self.request("GET", f"{API}/{endpoint}?{urlencode(params)}")

    # ------------------------------------------------------------------ MLflow calls, client-shaped

    def create_experiment(self, name: str) -> str:
        return str(self.post("experiments/create", {"name": name})["experiment_id"])

    def create_run(self, experiment_id: str, run_name: str) -> str:
        body = {
            "experiment_id": experiment_id,
            "user_id": "bench",
            "run_name": run_name,
            "start_time": now_ms(),
            "tags": [
                {"key": "mlflow.runName", "value": run_name},
                {"key": "mlflow.user", "value": "bench"},
                {"key": "mlflow.source.type", "value": "LOCAL"},
            ],
        }
        return str(self.post("runs/create", body)["run"]["info"]["run_id"])

    def log_batch(
        self,
        run_id: str,
        metrics: list[dict[str, Any]] | None = None,
        params: list[dict[str, str]] | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> None:
        self.post(
            "runs/log-batch",
            {
                "run_id": run_id,
                "metrics": metrics or [],
                "params": params or [],
                "tags": tags or [],
            },
        )

    def log_metric(self, run_id: str, key: str, value: float, step: int) -> None:
        body = {
            "run_id": run_id,
            "run_uuid": run_id,
            "key": key,
            "value": value,
            "timestamp": now_ms(),
            "step": step,
        }
        self.post("runs/log-metric", body)

    def finish_run(self, run_id: str) -> None:
        body = {"run_id": run_id, "run_uuid": run_id, "status": "FINISHED", "end_time": now_ms()}
        self.post("runs/update", body)

    def search_runs(
        self,
        experiment_id: str,
        filter_string: str = "",
        order_by: list[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id],
            "filter": filter_string,
            "run_view_type": "ACTIVE_ONLY",
            "max_results": max_results,
            "order_by": order_by or [],
        }
        if page_token:
            body["page_token"] = page_token
        return self.post("runs/search", body)

    def all_runs(self, experiment_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every run of an experiment, following page tokens (bounded page count)."""
        runs: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(100_000):
            page = self.search_runs(experiment_id, max_results=page_size, page_token=token)
            runs.extend(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                return runs
        raise RuntimeError("too many pages")

    def metric_history(self, run_id: str, key: str, page_size: int = 25_000) -> list[dict]:
        """The full history of one metric, paged the way the stock client pages it."""
        points: list[dict] = []
        token: str | None = None
        for _ in range(100_000):
            params = [
                ("run_id", run_id),
                ("run_uuid", run_id),
                ("metric_key", key),
                ("max_results", str(page_size)),
            ]
            if token:
                params.append(("page_token", token))
            page = self.get("metrics/get-history", params)
            points.extend(page.get("metrics", []))
            token = page.get("next_page_token")
            if not token:
                return points
        raise RuntimeError("too many pages")

    def history_bulk_interval(
        self,
        run_id: str,
        key: str,
        max_results: int,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[dict]:
        """The downsampled series the UI's charts ask for (one run), optionally a step window."""
        params = [("run_ids", run_id), ("metric_key", key), ("max_results", str(max_results))]
        if start_step is not None and end_step is not None:
            params += [("start_step", str(start_step)), ("end_step", str(end_step))]
        return self.get("metrics/get-history-bulk-interval", params).get("metrics", [])

    def count_history_points(self, run_id: str, key: str) -> tuple[int, int]:
        """get-history with no max_results, as the stock client sends it: the whole series in one
        answer. Counts the points without parsing them; returns (points, body bytes)."""
        params = [("run_id", run_id), ("run_uuid", run_id), ("metric_key", key)]
        return self.count_in_body(f"{API}/metrics/get-history?{urlencode(params)}", b'"step"')


def now_ms() -> int:
    return int(time.time() * 1000)


def metric(key: str, value: float, step: int, run_id: str, timestamp: int) -> dict[str, Any]:
    """A metric object as the 3.x client puts it in a log-batch request."""
    return {"key": key, "value": value, "timestamp": timestamp, "step": step, "run_id": run_id}
