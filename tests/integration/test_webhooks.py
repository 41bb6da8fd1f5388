"""Registry webhooks: management API, signed background delivery with retries, test sends.

A receiver runs in the test on 127.0.0.1. Delivering there needs a server started with
``--webhook-allowed-schemes http,https --webhook-allow-private-ips`` (one per backend, below);
the shared default server checks that the defaults refuse such URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent, WebhookStatus

pytestmark = pytest.mark.labtrack_only  # the stock server needs MLFLOW_WEBHOOK_* variables

HOOKS = "webhooks"
ALL_MODEL_EVENTS = [
    {"entity": "REGISTERED_MODEL", "action": "CREATED"},
    {"entity": "MODEL_VERSION", "action": "CREATED"},
    {"entity": "MODEL_VERSION_TAG", "action": "SET"},
    {"entity": "MODEL_VERSION_TAG", "action": "DELETED"},
    {"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"},
    {"entity": "MODEL_VERSION_ALIAS", "action": "DELETED"},
]


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Receiver:
    """A loopback HTTP endpoint that records deliveries; ``fail_first`` answers 500 first."""

    def __init__(self) -> None:
        self.deliveries: list[dict] = []
        self.fail_first = 0
        self.delay = 0.0
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= 1 if failing else 0
                time.sleep(receiver.delay)
                status = 500 if failing else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"nope" if failing else b"thanks")
                with receiver.lock:
                    receiver.deliveries.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "status": status,
                        }
                    )
                    receiver.lock.notify_all()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def wait(self, count: int, path: str | None = None, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                got = [d for d in self.deliveries if path is None or d["path"] == path]
                if len(got) >= count or time.monotonic() > deadline:
                    return got
                self.lock.wait(0.05)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def hook_server(request, server_factory):
    return server_factory(
        request.param,
        extra_args=["--webhook-allowed-schemes", "http,https", "--webhook-allow-private-ips"],
    )


@pytest.fixture
def hapi(hook_server):
    from conftest import Api

    return Api(hook_server)


def verify(delivery: dict, secret: str) -> dict:
    """Check a delivery the way a receiver following MLflow's format does; return its JSON."""
    headers = delivery["headers"]
    delivery_id = headers["x-mlflow-delivery-id"]
    timestamp = headers["x-mlflow-timestamp"]
    assert abs(int(timestamp) - time.time()) < 300
    signed = f"{delivery_id}.{timestamp}.".encode() + delivery["body"]
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert hmac.compare_digest(headers["x-mlflow-signature"], expected)
    assert headers["content-type"] == "application/json"
    return json.loads(delivery["body"])


def create_hook(api, receiver, path="/hook", events=None, **fields) -> dict:
    body = {
        "name": unique("hook"),
        "url": receiver.url(path),
        "events": events or ALL_MODEL_EVENTS,
        "secret": "s3cret",
        **fields,
    }
    return api.post(HOOKS, body)["webhook"]


# --- management ---------------------------------------------------------------------------------
def test_defaults_refuse_private_and_plain_http(api, receiver):
    body = {"name": "h", "url": receiver.url(), "events": ALL_MODEL_EVENTS[:1]}
    msg = api.error("POST", HOOKS, body, status=400, code="INVALID_PARAMETER_VALUE")["message"]
    assert "scheme" in msg
    for url in ("https://127.0.0.1/x", "https://localhost/x", "https://10.1.2.3/x"):
        api.error("POST", HOOKS, {**body, "url": url}, status=400, code="INVALID_PARAMETER_VALUE")


def test_crud(hapi, receiver):
    hook = create_hook(hapi, receiver, description="d")
    assert set(hook) == {
        "webhook_id",
        "name",
        "description",
        "url",
        "events",
        "status",
        "creation_timestamp",
        "last_updated_timestamp",
    }
    assert hook["status"] == "ACTIVE" and hook["events"] == ALL_MODEL_EVENTS
    hook_id = hook["webhook_id"]
    assert hapi.get(f"{HOOKS}/{hook_id}") == {"webhook": hook}
    updated = hapi.ok(
        "PATCH",
        f"{HOOKS}/{hook_id}",
        {
            "name": "renamed-1",
            "status": "DISABLED",
            "events": ALL_MODEL_EVENTS[:2],
            "description": "",
            "labtrack_events": ["model_version_stage.transitioned"],
        },
    )["webhook"]
    assert updated["name"] == "renamed-1" and updated["status"] == "DISABLED"
    assert updated["events"] == ALL_MODEL_EVENTS[:2] and "description" not in updated
    assert updated["labtrack_events"] == ["model_version_stage.transitioned"]
    assert updated["last_updated_timestamp"] >= hook["last_updated_timestamp"]
    listed = hapi.get(HOOKS)["webhooks"]
    assert any(w["webhook_id"] == hook_id for w in listed)
    assert all("secret" not in w for w in listed)
    hapi.ok("DELETE", f"{HOOKS}/{hook_id}")
    hapi.error("GET", f"{HOOKS}/{hook_id}", status=404, code="RESOURCE_DOES_NOT_EXIST")
    hapi.error("DELETE", f"{HOOKS}/{hook_id}", status=404, code="RESOURCE_DOES_NOT_EXIST")


def test_validation(hapi, receiver):
    ok = {"name": "h1", "url": receiver.url(), "events": ALL_MODEL_EVENTS[:1]}
    for bad in (
        {"name": "-bad"},
        {"name": "x" * 64},
        {"events": []},
        {"events": [{"entity": "REGISTERED_MODEL", "action": "DELETED"}]},
        {"events": "registered_model.created"},
        {"url": "ftp://example.com/x"},
        {"url": ""},
        {"status": "PAUSED"},
        {"labtrack_events": ["nope"]},
    ):
        hapi.error("POST", HOOKS, {**ok, **bad}, status=400, code="INVALID_PARAMETER_VALUE")
    for field in ("name", "url", "events"):
        body = {k: v for k, v in ok.items() if k != field}
        hapi.error("POST", HOOKS, body, status=400, code="INVALID_PARAMETER_VALUE")
    hapi.error("GET", HOOKS, params={"max_results": 1001}, status=400)
    hapi.error("GET", f"{HOOKS}/{uuid.uuid4()}/nope", status=404)


def test_list_paging(hapi, receiver):
    ids = {create_hook(hapi, receiver)["webhook_id"] for _ in range(5)}
    seen, token = [], None
    while True:
        params = {"max_results": 2}
        if token:
            params["page_token"] = token
        page = hapi.get(HOOKS, **params)
        seen += [w["webhook_id"] for w in page.get("webhooks", [])]
        token = page.get("next_page_token")
        if not token:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))
    for hook_id in ids:
        hapi.ok("DELETE", f"{HOOKS}/{hook_id}")


def test_stock_client(hook_server, receiver):
    client = MlflowClient(tracking_uri=hook_server.url)
    hook = client.create_webhook(
        name=unique("client"),
        url=receiver.url("/client"),
        events=["model_version.created", WebhookEvent("model_version_alias", "created")],
        secret="abc",
        description="from the client",
    )
    assert hook.status == WebhookStatus.ACTIVE
    assert [str(e) for e in hook.events] == ["model_version.created", "model_version_alias.created"]
    assert client.get_webhook(hook.webhook_id).name == hook.name
    assert hook.webhook_id in {w.webhook_id for w in client.list_webhooks()}
    client.update_webhook(hook.webhook_id, status="DISABLED", events=["registered_model.created"])
    got = client.get_webhook(hook.webhook_id)
    assert got.status == WebhookStatus.DISABLED
    assert [str(e) for e in got.events] == ["registered_model.created"]
    result = client.test_webhook(hook.webhook_id)
    assert result.success and result.response_status == 200 and result.response_body == "thanks"
    delivery = receiver.wait(1, "/client")[0]
    payload = verify(delivery, "abc")
    assert payload["entity"] == "registered_model" and payload["action"] == "created"
    assert payload["data"]["name"]
    client.delete_webhook(hook.webhook_id)


# --- delivery -----------------------------------------------------------------------------------
def test_registry_events_are_delivered_signed(hapi, receiver):
    hook = create_hook(hapi, receiver, path="/all")
    name = unique("wh-model")
    hapi.post(
        "registered-models/create",
        {"name": name, "description": "d", "tags": [{"key": "t", "value": "1"}]},
    )
    mv = hapi.post(
        "model-versions/create",
        {"name": name, "source": "s3://bucket/model", "tags": [{"key": "a", "value": "b"}]},
    )["model_version"]
    hapi.post("model-versions/set-tag", {"name": name, "version": "1", "key": "k", "value": "v"})
    hapi.ok("DELETE", "model-versions/delete-tag", {"name": name, "version": "1", "key": "k"})
    hapi.post("registered-models/alias", {"name": name, "alias": "champion", "version": "1"})
    hapi.ok("DELETE", "registered-models/alias", {"name": name, "alias": "champion"})
    assert mv["version"] == "1"
    deliveries = receiver.wait(6, "/all")
    payloads = [verify(d, "s3cret") for d in deliveries]
    by_event = {f"{p['entity']}.{p['action']}": p["data"] for p in payloads}
    assert by_event == {
        "registered_model.created": {"name": name, "tags": {"t": "1"}, "description": "d"},
        "model_version.created": {
            "name": name,
            "version": "1",
            "source": "s3://bucket/model",
            "run_id": None,
            "tags": {"a": "b"},
            "description": None,
        },
        "model_version_tag.set": {"name": name, "version": "1", "key": "k", "value": "v"},
        "model_version_tag.deleted": {"name": name, "version": "1", "key": "k"},
        "model_version_alias.created": {"name": name, "alias": "champion", "version": "1"},
        "model_version_alias.deleted": {"name": name, "alias": "champion"},
    }
    assert len({d["headers"]["x-mlflow-delivery-id"] for d in deliveries}) == 6
    hapi.ok("DELETE", f"{HOOKS}/{hook['webhook_id']}")


def test_failed_delivery_is_retried(hapi, receiver):
    hook = create_hook(hapi, receiver, path="/retry", events=ALL_MODEL_EVENTS[:1])
    receiver.fail_first = 1
    name = unique("retry")
    hapi.post("registered-models/create", {"name": name})
    deliveries = receiver.wait(2, "/retry")
    assert [d["status"] for d in deliveries] == [500, 200]
    first, second = deliveries
    # the same delivery, sent again: receivers can de-duplicate by its id
    assert first["headers"]["x-mlflow-delivery-id"] == second["headers"]["x-mlflow-delivery-id"]
    assert verify(second, "s3cret")["data"]["name"] == name
    hapi.ok("DELETE", f"{HOOKS}/{hook['webhook_id']}")


def test_slow_receiver_does_not_slow_requests(hapi, receiver):
    hook = create_hook(hapi, receiver, path="/slow", events=ALL_MODEL_EVENTS[:1])
    receiver.delay = 1.0
    started = time.monotonic()
    hapi.post("registered-models/create", {"name": unique("slow")})
    assert time.monotonic() - started < 0.5
    assert len(receiver.wait(1, "/slow")) == 1
    hapi.ok("DELETE", f"{HOOKS}/{hook['webhook_id']}")


def test_disabled_and_unsubscribed_hooks_get_nothing(hapi, receiver):
    off = create_hook(hapi, receiver, path="/off", status="DISABLED")
    other = create_hook(hapi, receiver, path="/other", events=ALL_MODEL_EVENTS[1:2])
    on = create_hook(hapi, receiver, path="/on", events=ALL_MODEL_EVENTS[:1])
    hapi.post("registered-models/create", {"name": unique("quiet")})
    assert len(receiver.wait(1, "/on")) == 1
    time.sleep(0.3)
    assert receiver.wait(0, "/off", timeout=0) == [] and receiver.wait(0, "/other", timeout=0) == []
    for hook in (off, other, on):
        hapi.ok("DELETE", f"{HOOKS}/{hook['webhook_id']}")


def test_stage_transition_is_a_labtrack_event(hapi, receiver):
    hook = create_hook(
        hapi,
        receiver,
        path="/stage",
        events=ALL_MODEL_EVENTS[:1],
        labtrack_events=["model_version_stage.transitioned"],
    )
    name = unique("stage")
    hapi.post("registered-models/create", {"name": name})
    hapi.post("model-versions/create", {"name": name, "source": "s3://b/m"})
    hapi.post("model-versions/transition-stage", {"name": name, "version": "1", "stage": "staging"})
    payloads = [verify(d, "s3cret") for d in receiver.wait(2, "/stage")]
    stage = [p for p in payloads if p["entity"] == "model_version_stage"]
    assert stage and stage[0]["action"] == "transitioned"
    assert stage[0]["data"] == {
        "name": name,
        "version": "1",
        "from_stage": "None",
        "to_stage": "Staging",
        "archive_existing_versions": False,
    }
    hapi.ok("DELETE", f"{HOOKS}/{hook['webhook_id']}")


def test_test_endpoint(hapi, receiver):
    hook = create_hook(hapi, receiver, path="/test")
    result = hapi.post(
        f"{HOOKS}/{hook['webhook_id']}/test",
        {"event": {"entity": "MODEL_VERSION_TAG", "action": "SET"}},
    )["result"]
    assert result == {"success": True, "response_status": 200, "response_body": "thanks"}
    payload = verify(receiver.wait(1, "/test")[0], "s3cret")
    assert payload["entity"] == "model_version_tag" and payload["action"] == "set"
    assert set(payload["data"]) == {"name", "version", "key", "value"}
    receiver.fail_first = 1
    result = hapi.post(f"{HOOKS}/{hook['webhook_id']}/test", {})["result"]
    assert result["success"] is False and result["response_status"] == 500
    # nothing listens here any more
    dead = create_hook(hapi, receiver, path="/dead")
    port = receiver.httpd.server_address[1]
    hapi.ok("PATCH", f"{HOOKS}/{dead['webhook_id']}", {"url": f"http://127.0.0.1:{port + 1}/x"})
    result = hapi.post(f"{HOOKS}/{dead['webhook_id']}/test", {})["result"]
    assert result["success"] is False and "error_message" in result
    for h in (hook, dead):
        hapi.ok("DELETE", f"{HOOKS}/{h['webhook_id']}")
