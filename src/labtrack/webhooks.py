"""Registry webhooks: event names, signed payloads and background delivery.

Wire format (what MLflow's webhook receivers verify): a POST whose JSON body is
``{"entity", "action", "timestamp", "data"}`` with headers ``X-MLflow-Delivery-Id``,
``X-MLflow-Timestamp`` (unix seconds) and, when the webhook has a secret,
``X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>">``.

Delivery never runs on the request that caused the event: :func:`emit` puts the event on an
in-process asyncio queue and returns. Worker tasks look up the subscribers and post to each one
on a thread (the stdlib HTTP client blocks), with a timeout, retrying connection errors, 429 and
5xx answers with exponential backoff. Pending deliveries are lost if the process stops; receivers
should treat webhooks as notifications and read the registry for the truth.

Outbound requests go only to allowed schemes (default https). Unless private addresses are
allowed, the peer address is checked after connecting, so DNS tricks cannot point a webhook at
the server's own network. Redirects are not followed and environment proxies are ignored.

Secrets are stored sealed with ``LABTRACK_WEBHOOK_SECRET_KEY`` when it is set (HMAC-SHA256 in
counter mode with an HMAC tag, stdlib only), and are never returned by the API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import logging
import os
import random
import socket
import time
import urllib.error
import urllib.request
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from labtrack.store import webhooks as store
from labtrack.wire import invalid

log = logging.getLogger("labtrack.webhooks")

# --- events -----------------------------------------------------------------------------------
ENTITIES = (
    "ENTITY_UNSPECIFIED",
    "REGISTERED_MODEL",
    "MODEL_VERSION",
    "MODEL_VERSION_TAG",
    "MODEL_VERSION_ALIAS",
    "PROMPT",
    "PROMPT_VERSION",
    "PROMPT_TAG",
    "PROMPT_VERSION_TAG",
    "PROMPT_ALIAS",
    "BUDGET_POLICY",
)
ACTIONS = ("ACTION_UNSPECIFIED", "CREATED", "UPDATED", "DELETED", "SET", "EXCEEDED")

# The events MLflow 3.17 defines (entity.action, lower case, as in its payloads).
MLFLOW_EVENTS = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "prompt.created",
    "prompt_version.created",
    "prompt_tag.set",
    "prompt_tag.deleted",
    "prompt_version_tag.set",
    "prompt_version_tag.deleted",
    "prompt_alias.created",
    "prompt_alias.deleted",
    "budget_policy.exceeded",
)
# labtrack's own events: MLflow has no stage-transition event. They are subscribed through the
# ``labtrack_events`` field so the stock client, which validates ``events``, can still list them.
STAGE_TRANSITIONED = "model_version_stage.transitioned"
LABTRACK_EVENTS = (STAGE_TRANSITIONED,)

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"

TIMEOUT_SECONDS = 30.0
MAX_RETRIES = 3
BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
QUEUE_SIZE = 10_000
WORKERS = 4
MAX_PARALLEL_DELIVERIES = 32
CACHE_SECONDS = 5.0
MAX_RESPONSE_BODY = 64 * 1024


def event_to_wire(event: str) -> dict[str, str]:
    entity, action = event.split(".")
    return {"entity": entity.upper(), "action": action.upper()}


def _enum_name(value: Any, names: tuple[str, ...], field: str) -> str:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value.upper() in names:
        return value.upper()
    raise invalid(f"Invalid webhook event {field}: {value!r}. Valid values are {list(names[1:])}")


def parse_event(value: Any) -> str:
    """One event: ``{"entity": ..., "action": ...}`` (names or numbers) or "entity.action"."""
    if isinstance(value, str):
        event = value.strip().lower()
    elif isinstance(value, dict):
        entity = _enum_name(value.get("entity"), ENTITIES, "entity")
        action = _enum_name(value.get("action"), ACTIONS, "action")
        event = f"{entity.lower()}.{action.lower()}"
    else:
        raise invalid(f"Invalid webhook event: {value!r}")
    if event not in MLFLOW_EVENTS:
        raise invalid(
            f"Invalid webhook event '{event}'. Valid events are {list(MLFLOW_EVENTS)}; "
            f"labtrack events ({list(LABTRACK_EVENTS)}) go in 'labtrack_events'."
        )
    return event


# --- secrets ----------------------------------------------------------------------------------
def _keys(key: str) -> tuple[bytes, bytes]:
    root = hashlib.sha256(key.encode()).digest()
    return (
        hmac.new(root, b"labtrack-webhook-secret-enc", hashlib.sha256).digest(),
        hmac.new(root, b"labtrack-webhook-secret-mac", hashlib.sha256).digest(),
    )


def _stream(enc_key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (length + 31) // 32
    return b"".join(
        hmac.new(enc_key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
        for i in range(blocks)
    )[:length]


def seal(secret: str | None, key: str | None) -> str | None:
    """How a secret is stored: sealed with the server key, or marked plain when there is none."""
    if not secret:
        return None
    if not key:
        return "plain:" + secret
    enc_key, mac_key = _keys(key)
    nonce = os.urandom(16)
    data = secret.encode()
    body = bytes(a ^ b for a, b in zip(data, _stream(enc_key, nonce, len(data)), strict=True))
    tag = hmac.new(mac_key, nonce + body, hashlib.sha256).digest()[:16]
    return "v1:" + base64.b64encode(nonce + body + tag).decode()


def unseal(stored: str | None, key: str | None) -> str | None:
    if not stored:
        return None
    if stored.startswith("plain:"):
        return stored[len("plain:") :]
    if not stored.startswith("v1:") or not key:
        raise ValueError("the webhook secret is sealed and LABTRACK_WEBHOOK_SECRET_KEY is not set")
    raw = base64.b64decode(stored[3:])
    nonce, body, tag = raw[:16], raw[16:-16], raw[-16:]
    enc_key, mac_key = _keys(key)
    if not hmac.compare_digest(tag, hmac.new(mac_key, nonce + body, hashlib.sha256).digest()[:16]):
        raise ValueError("the webhook secret does not open with LABTRACK_WEBHOOK_SECRET_KEY")
    return bytes(
        a ^ b for a, b in zip(body, _stream(enc_key, nonce, len(body)), strict=True)
    ).decode()


def sign(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """MLflow's v1 signature, which receivers recompute to authenticate a delivery."""
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- URL policy and the outbound HTTP client --------------------------------------------------
@dataclass(frozen=True)
class Policy:
    schemes: tuple[str, ...] = ("https",)
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        raw = getattr(settings, "webhook_allowed_schemes", None) or "https"
        schemes = tuple(s.strip().lower() for s in str(raw).split(",") if s.strip())
        return cls(schemes, bool(getattr(settings, "webhook_allow_private_ips", False)))


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    return ip.is_global


def check_url(url: str, policy: Policy) -> None:
    """Refuse URLs the server must not call (scheme, host); cheap checks only, no DNS."""
    if not url or not url.strip():
        raise invalid("Webhook URL cannot be empty.")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise invalid(f"Invalid webhook URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in policy.schemes:
        raise invalid(
            f"Invalid webhook URL scheme: {parts.scheme!r}. Allowed schemes are: "
            f"{', '.join(policy.schemes)}."
        )
    if not hostname:
        raise invalid(f"Webhook URL must include a hostname: {url!r}")
    if len(url) > 2000:
        raise invalid("Webhook URL exceeds the maximum length of 2000 characters")
    if not policy.allow_private:
        try:
            literal = not _is_public(hostname)
        except ValueError:
            literal = hostname.lower() in ("localhost",) or hostname.lower().endswith(".localhost")
        if literal:
            raise invalid(
                f"Webhook URL host {hostname!r} is not a public address; start the server "
                "with --webhook-allow-private-ips to allow it."
            )


async def check_url_resolves_public(url: str, policy: Policy) -> None:
    """At create/update time: the host must resolve to public addresses only."""
    if policy.allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, None)
    except OSError as exc:
        raise invalid(f"Webhook URL host {host!r} does not resolve: {exc}") from None
    if any(not _is_public(info[4][0]) for info in infos):
        raise invalid(
            f"Webhook URL host {host!r} resolves to a non-public address; start the server "
            "with --webhook-allow-private-ips to allow it."
        )


class PrivateAddressError(OSError):
    pass


def _check_peer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    address = sock.getpeername()[0]
    if not _is_public(address):
        sock.close()
        raise PrivateAddressError(f"refusing to deliver to non-public address {address}")


class _GuardedHTTP(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _GuardedHTTPS(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):  # type: ignore[override]
        return self.do_open(_GuardedHTTP, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):  # type: ignore[override]
        return self.do_open(_GuardedHTTPS, req, context=self._context)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[override]
        return None


def _opener(policy: Policy) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [urllib.request.ProxyHandler({}), _NoRedirect()]
    if not policy.allow_private:
        handlers += [_GuardedHTTPHandler(), _GuardedHTTPSHandler()]
    return urllib.request.build_opener(*handlers)


@dataclass
class Outcome:
    status: int | None
    body: str
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


def _post(policy: Policy, url: str, body: bytes, headers: dict[str, str], timeout: float):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener(policy).open(request, timeout=timeout) as response:
            text = response.read(MAX_RESPONSE_BODY).decode("utf-8", "replace")
            return Outcome(response.status, text, None)
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            text = exc.read(MAX_RESPONSE_BODY).decode("utf-8", "replace") if exc.fp else ""
        return Outcome(exc.code, text, None, _retry_after(exc.headers.get("Retry-After")))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Outcome(None, "", f"{type(exc).__name__}: {reason}")


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value), MAX_BACKOFF_SECONDS)
    return None


def build_request(event: str, data: dict, secret: str | None) -> tuple[bytes, dict[str, str]]:
    entity, action = event.split(".")
    payload = {
        "entity": entity,
        "action": action,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": data,
    }
    body = orjson.dumps(payload).decode()
    delivery_id = str(uuid.uuid4())
    unix_ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "labtrack-webhooks",
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: unix_ts,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, delivery_id, unix_ts, body)
    return body.encode(), headers


# --- dispatcher -------------------------------------------------------------------------------
class Dispatcher:
    """Per-process background delivery: a queue, a few workers, bounded parallel posts."""

    def __init__(self, app: Any) -> None:
        self._app = weakref.ref(app)
        self.policy = Policy.from_settings(app.settings)
        self.secret_key = getattr(app.settings, "webhook_secret_key", None)
        self.queue: asyncio.Queue | None = None
        self._workers: list[asyncio.Task] = []
        self._inflight: set[asyncio.Task] = set()
        self._slots: asyncio.Semaphore | None = None
        self._cache: dict[str, tuple[float, list]] = {}
        self.backoff = BACKOFF_SECONDS

    def invalidate(self) -> None:
        self._cache.clear()

    def _start(self) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue(QUEUE_SIZE)
            self._slots = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)
            self._workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]

    def emit(self, event: str, data: dict) -> None:
        self._start()
        assert self.queue is not None
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:
            log.error("Webhook queue full; dropped event %s for %s", event, data.get("name"))

    async def _subscribers(self, event: str) -> list:
        cached = self._cache.get(event)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        app = self._app()
        if app is None:
            return []
        found = await app.db.read(store.subscribers, event)
        self._cache[event] = (time.monotonic() + CACHE_SECONDS, found)
        return found

    async def _work(self) -> None:
        assert self.queue is not None and self._slots is not None
        while True:
            event, data = await self.queue.get()
            try:
                for webhook_id, url, sealed in await self._subscribers(event):
                    await self._slots.acquire()
                    task = asyncio.create_task(self._deliver(webhook_id, url, sealed, event, data))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
            except Exception:
                log.exception("Webhook dispatch failed for event %s", event)
            finally:
                self.queue.task_done()

    def _done(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        assert self._slots is not None
        self._slots.release()

    async def _deliver(self, webhook_id: str, url: str, sealed: str | None, event: str, data: dict):
        try:
            secret = unseal(sealed, self.secret_key)
        except ValueError as exc:
            log.error("Webhook %s not delivered: %s", webhook_id, exc)
            return
        # One request, sent again unchanged on retries: receivers de-duplicate by delivery id.
        body, headers = build_request(event, data, secret)
        for attempt in range(MAX_RETRIES + 1):
            outcome = await asyncio.to_thread(
                _post, self.policy, url, body, headers, TIMEOUT_SECONDS
            )
            if outcome.ok:
                return
            if not outcome.retryable or attempt == MAX_RETRIES:
                log.error(
                    "Webhook %s delivery of %s to %s failed: %s",
                    webhook_id,
                    event,
                    url,
                    outcome.error or f"HTTP {outcome.status}",
                )
                return
            delay = outcome.retry_after or min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS)
            await asyncio.sleep(delay + random.uniform(0, 0.1 * delay))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for queued and in-flight deliveries (tests, orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.queue is None or self.queue.empty()) and not self._inflight:
                return
            await asyncio.sleep(0.05)


_dispatchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dispatcher(app: Any) -> Dispatcher:
    found = _dispatchers.get(app)
    if found is None:
        found = _dispatchers[app] = Dispatcher(app)
    return found


def emit(app: Any, event: str, data: dict) -> None:
    """Queue an event for delivery after the current request; never blocks, never raises."""
    try:
        dispatcher(app).emit(event, data)
    except Exception:
        log.exception("Could not queue webhook event %s", event)


# --- test deliveries --------------------------------------------------------------------------
_EXAMPLE_NAME = "example-model"


def example_payload(event: str) -> dict:
    """A representative ``data`` object for a test delivery of ``event``."""
    entity, action = event.split(".")
    base: dict[str, Any] = {"name": _EXAMPLE_NAME}
    version = {"version": "1"}
    tag = {"key": "example-key"}
    examples: dict[str, dict] = {
        "registered_model": {"tags": {"team": "example"}, "description": "An example model"},
        "model_version": {
            **version,
            "source": "models:/m-00000000000000000000000000000000",
            "run_id": "00000000000000000000000000000000",
            "tags": {},
            "description": None,
        },
        "model_version_tag": {**version, **tag},
        "model_version_alias": {"alias": "champion", **version},
        "prompt": {"tags": {}, "description": "An example prompt"},
        "prompt_version": {
            **version,
            "template": "Hello {{name}}",
            "tags": {},
            "description": None,
        },
        "prompt_tag": dict(tag),
        "prompt_version_tag": {**version, **tag},
        "prompt_alias": {"alias": "production", **version},
        "model_version_stage": {
            **version,
            "from_stage": "Staging",
            "to_stage": "Production",
            "archive_existing_versions": False,
        },
        "budget_policy": {"budget_policy_id": "example-policy"},
    }
    data = {**base, **examples.get(entity, {})}
    if action == "set" and entity.endswith("_tag"):
        data["value"] = "example-value"
    if action == "deleted" and entity.endswith("_alias"):
        data.pop("version", None)
    return data


async def test_delivery(app: Any, url: str, sealed: str | None, event: str) -> dict:
    """One signed delivery of an example payload, awaited; the result as the API returns it."""
    d = dispatcher(app)
    try:
        secret = unseal(sealed, d.secret_key)
    except ValueError as exc:
        return {"success": False, "error_message": str(exc)}
    body, headers = build_request(event, example_payload(event), secret)
    outcome = await asyncio.to_thread(_post, d.policy, url, body, headers, TIMEOUT_SECONDS)
    result: dict[str, Any] = {"success": outcome.ok}
    if outcome.status is not None:
        result["response_status"] = outcome.status
        result["response_body"] = outcome.body
    if outcome.error:
        result["error_message"] = f"Failed to test webhook: {outcome.error}"
    return result
