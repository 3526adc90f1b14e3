"""The Python snippets of docs/producers.md run as written, against a real (moto) stack and a running worker, so the
producer guide cannot drift from the code."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from consumer.producer.voice_library import VoiceLibrary
from consumer.worker import webhook
from tests.paths import REPO

DOC = REPO / "docs" / "producers.md"


def _python_snippets() -> list[str]:
    snippets = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(snippets) == 3, "docs/producers.md: a snippet to submit and wait, one to stream, one to verify a webhook"
    return snippets


def test_submit_and_wait_snippet_runs_as_written(stack, make_worker, reference_wav, monkeypatch, capsys, tmp_path):
    submit = next(s for s in _python_snippets() if "client.wait" in s)
    stream = next(s for s in _python_snippets() if "client.stream" in s)
    monkeypatch.chdir(tmp_path)
    for name, value in stack.settings().model_dump().items():
        if name in ("queue_url", "bucket", "aws_endpoint_url"):
            monkeypatch.setenv(f"F5_WORKER_{name.upper()}", str(value))
    monkeypatch.setenv("F5_WORKER_EVENTS_QUEUE_URL", stack.resources.events_queue_url)
    VoiceLibrary(stack.clients.s3, stack.resources.bucket).add("narrator", reference_wav, "Hello from the library.")
    worker, _ = make_worker(burst=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        namespace: dict[str, Any] = {}
        exec(compile(submit, str(DOC), "exec"), namespace)  # the snippet itself, unchanged
        namespace["long_text"] = "A chapter, read aloud. It streams while it is made."
        exec(compile(stream, str(DOC), "exec"), namespace)  # the streaming one, with the first one's client
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert namespace["event"].type == "synthesis.completed.v1"
    assert namespace["event"].job_id == "order-42-line-1"
    printed = capsys.readouterr().out.splitlines()
    url = next(line for line in printed if line.startswith("http"))  # the worker's logs share stdout here
    assert url.startswith(stack.endpoint_url) and "order-42-line-1" in url and "Signature" in url
    streamed = (tmp_path / "chapter-1.mp3").read_bytes()
    final = stack.get("outputs/chapter-1.mp3")
    assert streamed == final and len(final) > 1000


def test_webhook_verification_snippet_accepts_our_signature_and_refuses_a_forgery():
    verify = next(s for s in _python_snippets() if "Webhook(secret)" in s)
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"  # base64 of a 24-byte key, as Standard Webhooks use
    body = b'{"type": "synthesis.completed.v1", "job_id": "j"}'
    stamp = int(time.time())
    headers = {
        "webhook-id": "evt-1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhook.sign(secret, "evt-1", stamp, body),
    }
    namespace: dict[str, Any] = {"secret": secret, "body": body, "headers": headers}
    exec(compile(verify, str(DOC), "exec"), namespace)
    assert namespace["payload"] == {"type": "synthesis.completed.v1", "job_id": "j"}
    forged = namespace | {"body": body.replace(b'"j"', b'"k"')}
    with pytest.raises(WebhookVerificationError):
        exec(compile(verify, str(DOC), "exec"), forged)
