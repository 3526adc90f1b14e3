"""Security properties: no secrets or presigned signatures in logs; storage confined to allowed places."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from consumer.core.logs import configure, get_logger, redact
from consumer.core.settings import Settings
from consumer.storage.job_index import JobIndex
from tests.scenarios.test_worker_flow import request
from tests.unit.worker.test_webhook import SECRET, Receiver

PRESIGNED = (
    "http://127.0.0.1:5000/b/k.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261125"
    "&X-Amz-Signature=deadbeefcafe0123456789&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE"
)


def test_redact_removes_signatures_credentials_and_tokens():
    cleaned = redact(PRESIGNED)
    assert "deadbeefcafe" not in cleaned and "AKIAEXAMPLE" not in cleaned and "FQoGZXIv" not in cleaned
    assert cleaned.startswith("http://127.0.0.1:5000/b/k.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256")


def test_log_lines_never_carry_secrets(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure("DEBUG")
    log = get_logger("test")
    log.info("presigned", url=PRESIGNED, webhook_secret=SECRET, nested=f"error talking to {PRESIGNED}")
    log.warning("token", authorization="Bearer abc.def", password="hunter2")
    text = stream.getvalue()
    for secret in ("deadbeefcafe", SECRET, "hunter2", "Bearer abc.def"):
        assert secret not in text
    assert all(json.loads(line) for line in text.splitlines())


def test_settings_never_print_the_webhook_secret():
    settings = Settings(webhook_secret=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert settings.webhook_secret.get_secret_value() == SECRET


def test_a_whole_job_with_secrets_logs_none_of_them(stack, make_worker, monkeypatch):
    receiver = Receiver()
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure("DEBUG")
    try:
        stack.send(request("secret-1", notify={"webhook_url": receiver.url}))
        worker, services = make_worker(webhook_secret=SECRET, webhook_allow_private=True)
        worker.run()
        url = services.audio.presigned_url(stack.resources.bucket, "outputs/secret-1.wav")
        get_logger("test").info("sharing", url=url)
    finally:
        receiver.close()
    text = stream.getvalue()
    signature = url.split("X-Amz-Signature=")[1].split("&")[0]
    assert "job_finished" in text and receiver.requests
    assert SECRET not in text and SECRET.removeprefix("whsec_") not in text and signature not in text
    assert receiver.requests[0][0].get("webhook-signature", "") not in text


@pytest.mark.parametrize(
    "output",
    [{"key_prefix": "../other"}, {"key_prefix": "/etc"}, {"key_prefix": "a//b"}, {"bucket": "not-ours"}],
)
def test_requests_cannot_write_outside_the_configured_place(stack, make_worker, output):
    stack.send(request("escape-2", output=output))
    worker, _ = make_worker()
    worker.run()
    (event,) = stack.events()
    assert event.type == "synthesis.failed.v1" and not event.retryable
    # nothing but the voice library, the job's record (which says FAILED), its index entry and the worker's
    # liveness record
    written = [k for k in stack.objects("") if not k.startswith(("voices/", "jobs-index/", "workers/"))]
    assert written == ["jobs/escape-2.json"]
    index = JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index")
    assert [e.job_id for e in index.entries(datetime.now(UTC) - timedelta(hours=1))] == ["escape-2"]
    assert json.loads(stack.get("jobs/escape-2.json"))["status"] == "FAILED"
