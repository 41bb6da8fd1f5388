"""Webhook building blocks: event names, signatures (checked against the stock client's own
verification helper), sealed secrets and the URL policy."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from labtrack import webhooks
from labtrack.wire import MlflowError


def test_signature_matches_mlflow_v1_format():
    body, headers = webhooks.build_request(
        "model_version.created", {"name": "m", "version": "1"}, "s3cret"
    )
    delivery_id = headers[webhooks.DELIVERY_ID_HEADER]
    timestamp = headers[webhooks.TIMESTAMP_HEADER]
    expected = base64.b64encode(
        hmac.new(b"s3cret", f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    assert headers[webhooks.SIGNATURE_HEADER] == f"v1,{expected}"
    payload = orjson.loads(body)
    assert payload["entity"] == "model_version" and payload["action"] == "created"
    assert payload["data"] == {"name": "m", "version": "1"}
    assert payload["timestamp"].endswith("+00:00")
    assert headers["Content-Type"] == "application/json"


def test_signature_agrees_with_mlflow():
    from mlflow.webhooks.delivery import _generate_hmac_signature

    assert webhooks.sign("k", "id", "123", '{"a": 1}') == _generate_hmac_signature(
        "k", "id", "123", '{"a": 1}'
    )


def test_no_secret_no_signature():
    _, headers = webhooks.build_request("registered_model.created", {"name": "m"}, None)
    assert webhooks.SIGNATURE_HEADER not in headers


@pytest.mark.parametrize(
    ("given", "event"),
    [
        ({"entity": "REGISTERED_MODEL", "action": "CREATED"}, "registered_model.created"),
        ({"entity": "model_version_tag", "action": "set"}, "model_version_tag.set"),
        ({"entity": 4, "action": 3}, "model_version_alias.deleted"),
        ({"entity": "2", "action": "1"}, "model_version.created"),
        ("prompt_alias.created", "prompt_alias.created"),
    ],
)
def test_parse_event(given, event):
    assert webhooks.parse_event(given) == event
    assert webhooks.event_to_wire(event)["entity"] == event.split(".")[0].upper()


@pytest.mark.parametrize(
    "given",
    [
        {"entity": "REGISTERED_MODEL", "action": "DELETED"},
        {"entity": "NOPE", "action": "CREATED"},
        {"entity": 0, "action": 1},
        {"entity": "MODEL_VERSION"},
        "model_version.updated",
        "model_version_stage.transitioned",  # labtrack's own: goes in labtrack_events
        42,
    ],
)
def test_parse_event_refuses(given):
    with pytest.raises(MlflowError) as info:
        webhooks.parse_event(given)
    assert info.value.status == 400


def test_seal_roundtrip_and_tamper_detection():
    sealed = webhooks.seal("top secret ✓", "server-key")
    assert sealed.startswith("v1:") and "top secret" not in sealed
    assert webhooks.unseal(sealed, "server-key") == "top secret ✓"
    assert webhooks.seal("top secret ✓", "server-key") != sealed  # fresh nonce each time
    with pytest.raises(ValueError):
        webhooks.unseal(sealed, "other-key")
    raw = bytearray(base64.b64decode(sealed[3:]))
    raw[20] ^= 1
    with pytest.raises(ValueError):
        webhooks.unseal("v1:" + base64.b64encode(bytes(raw)).decode(), "server-key")
    with pytest.raises(ValueError):
        webhooks.unseal(sealed, None)
    assert webhooks.unseal(webhooks.seal("x", None), None) == "x"
    assert webhooks.seal("", "k") is None and webhooks.unseal(None, "k") is None


@pytest.mark.parametrize(
    ("url", "policy", "ok"),
    [
        ("https://hooks.example.com/x", webhooks.Policy(), True),
        ("http://hooks.example.com/x", webhooks.Policy(), False),
        ("http://hooks.example.com/x", webhooks.Policy(("http", "https")), True),
        ("https://127.0.0.1/x", webhooks.Policy(), False),
        ("https://10.0.0.5/x", webhooks.Policy(), False),
        ("https://[::1]/x", webhooks.Policy(), False),
        ("https://[::ffff:10.0.0.1]/x", webhooks.Policy(), False),
        ("https://169.254.169.254/latest", webhooks.Policy(), False),
        ("https://localhost/x", webhooks.Policy(), False),
        ("https://127.0.0.1/x", webhooks.Policy(allow_private=True), True),
        ("https:///nohost", webhooks.Policy(), False),
        ("https://h:99999/x", webhooks.Policy(), False),
        ("ftp://h/x", webhooks.Policy(("https",)), False),
        ("", webhooks.Policy(), False),
    ],
)
def test_url_policy(url, policy, ok):
    if ok:
        webhooks.check_url(url, policy)
    else:
        with pytest.raises(MlflowError):
            webhooks.check_url(url, policy)


def test_example_payloads_have_the_event_fields():
    assert webhooks.example_payload("model_version_alias.deleted").keys() == {"name", "alias"}
    assert webhooks.example_payload("model_version_tag.set").keys() == {
        "name",
        "version",
        "key",
        "value",
    }
    for event in webhooks.MLFLOW_EVENTS + webhooks.LABTRACK_EVENTS:
        assert webhooks.example_payload(event)["name"]
