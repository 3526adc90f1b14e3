"""Webhooks: Standard Webhooks signatures verified by the reference implementation; the SSRF guard."""

from __future__ import annotations

import base64
import json

import pytest
from standardwebhooks.webhooks import Webhook

from consumer.core.errors import WebhookFailed, WebhookRefused
from consumer.worker import webhook
from tests.scenarios.test_worker_flow import request
from tests.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_signature_verifies_with_the_reference_implementation(receiver):
    body = json.dumps({"hello": "world"}).encode()
    status = webhook.deliver(receiver.url, body, "evt_1", secrets=[SECRET], allow_private=True, timeout_s=5)
    assert status == 200
    headers, received = receiver.requests[0]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert received == body and lowered["webhook-id"] == "evt_1"
    assert Webhook(SECRET).verify(received, lowered) == {"hello": "world"}
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(received + b" ", lowered)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_private_and_metadata_targets_are_refused_by_default(url):
    with pytest.raises(WebhookRefused):
        webhook.resolve_target(url, allow_private=False)


def test_non_http_schemes_are_refused():
    with pytest.raises(WebhookRefused):
        webhook.resolve_target("file:///etc/passwd", allow_private=True)


def test_redirects_are_not_followed():
    r = Receiver(status=302, location="http://169.254.169.254/latest/meta-data/")
    try:
        with pytest.raises(WebhookFailed, match="302"):
            webhook.deliver(r.url, b"{}", "evt", allow_private=True, timeout_s=5)
        assert len(r.requests) == 1
    finally:
        r.close()


def test_worker_delivers_signed_events_to_the_request_webhook(stack, make_worker, receiver):
    stack.send(request("hook-1", notify={"webhook_url": receiver.url}))
    worker, _ = make_worker(webhook_secret=SECRET, webhook_allow_private=True)
    worker.run()
    (event,) = stack.events()
    headers, body = receiver.requests[0]
    lowered = {k.lower(): v for k, v in headers.items()}
    payload = Webhook(SECRET).verify(body, lowered)
    assert payload["event_id"] == event.event_id == lowered["webhook-id"]
    assert payload["type"] == "synthesis.completed.v1"


def test_worker_refuses_private_webhook_before_synthesis(stack, make_worker):
    stack.send(request("hook-2", notify={"webhook_url": "http://127.0.0.1:1/hook"}))
    worker, _ = make_worker()
    worker.run()
    (event,) = stack.events()
    assert event.type == "synthesis.failed.v1" and "refused" in event.error_message
    assert stack.objects("outputs/") == []
