"""One job, one story: the five findings of an independent run against a producer and a webhook receiver that are
not ours, each as a test. A finished job is never failed by its webhook; the metadata address is never a target;
failures are recorded; an invalid request's webhook hears of it; a paused worker cannot write a second audio
version after its lease ran out."""

from __future__ import annotations

import json
import threading
import time

import pytest

from consumer.core.errors import WebhookRefused
from consumer.engine.fake import FakeEngine
from consumer.storage.jobs import JobStore
from consumer.worker import webhook
from consumer.worker.job import Outcome, process_message
from consumer.worker.services import build_services
from contracts.events import SynthesisCompleted, SynthesisFailed
from tests.scenarios.test_worker_flow import receive_one, request
from tests.webhook_receiver import Receiver


def _record(stack, job_id: str) -> dict:
    record, _ = JobStore(stack.clients.s3, stack.resources.bucket, "jobs").read(job_id)
    assert record is not None, f"no record for {job_id}"
    return record.model_dump(mode="json")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def failing_receiver():
    r = Receiver(status=500)
    yield r
    r.close()


def test_a_finished_job_is_never_failed_by_its_webhook(stack, make_worker, failing_receiver):
    """Finding 1: the webhook kept failing; the job was told completed three times, then failed, then dead-lettered."""
    stack.send(request("story-1", notify={"webhook_url": failing_receiver.url}))
    worker, _ = make_worker(webhook_allow_private=True)
    worker.run()
    events = stack.events()
    assert [e.type for e in events] == ["synthesis.completed.v1"]
    assert _record(stack, "story-1")["status"] == "COMPLETED"
    assert stack.queue_counts(stack.resources.dlq_url) == (0, 0)
    assert len(failing_receiver.requests) >= 1  # it was tried, outside the job
    # the request is done; what remains on the queue is the delayed delivery task, not the job
    assert worker.outcomes == {"done": 1}


def test_a_redelivered_completed_job_only_replays_even_under_settings_that_refuse_it(stack, make_worker, receiver):
    """Finding 1, second half: a worker whose settings refuse the webhook still replays `completed`."""
    body = request("story-1b", notify={"webhook_url": receiver.url})
    stack.send(body)
    make_worker(webhook_allow_private=True)[0].run()
    stack.send(body)  # a re-send (or a redrive) reaches a worker that refuses loopback targets
    make_worker(webhook_allow_private=False)[0].run()
    events = stack.events()
    assert [e.type for e in events] == ["synthesis.completed.v1", "synthesis.completed.v1"]
    assert events[0].event_id == events[1].event_id


@pytest.mark.parametrize("target", ["169.254.169.254", "[fd00:ec2::254]", "169.254.170.2", "metadata.google.internal"])
def test_allow_private_never_opens_the_metadata_service(target):
    """Finding 2: WEBHOOK_ALLOW_PRIVATE=true also lifted the link-local block."""
    with pytest.raises(WebhookRefused):
        webhook.resolve_target(f"http://{target}/latest/meta-data/", allow_private=True)


def test_a_request_naming_the_metadata_service_fails_even_with_allow_private(stack, make_worker):
    stack.send(request("story-2", notify={"webhook_url": "http://169.254.169.254/latest/meta-data/"}))
    make_worker(webhook_allow_private=True)[0].run()
    (event,) = stack.events()
    assert isinstance(event, SynthesisFailed) and "refused" in event.error_message
    assert stack.objects("outputs/") == []


def test_a_permanent_failure_is_recorded(stack, make_worker):
    """Finding 3: the record stayed INPROGRESS with an empty message id after a permanent failure."""
    message_id = stack.send(json.dumps({"job_id": "story-3", "text": "Hi.", "voice": {"voice_id": "nobody"}}))
    make_worker()[0].run()
    record = _record(stack, "story-3")
    assert record["status"] == "FAILED"
    assert record["failure"]["error_code"] == "unknown_voice"
    assert record["failure"]["attempt"] == 1 and record["failure"]["message_id"] == message_id
    (event,) = stack.events()
    assert record["event"]["event_id"] == event.event_id


def test_a_shutdown_hand_back_releases_the_record(stack):
    """Finding 3: a hand-back left a fake INPROGRESS record that expired "about now"."""
    stack.send(request("story-3b"))
    services = build_services(stack.settings(), FakeEngine(work_s=5.0))
    message = receive_one(stack)
    shutdown = threading.Event()
    threading.Timer(0.5, shutdown.set).start()
    assert process_message(message, services, shutdown) is Outcome.RETURNED
    record = _record(stack, "story-3b")
    assert record["status"] == "RELEASED" and record["released"]["reason"] == "shutdown"


def test_an_invalid_request_calls_its_valid_webhook(stack, make_worker, receiver):
    """Finding 4: only SNS heard of a request that failed validation."""
    stack.send(
        json.dumps(
            {
                "job_id": "story-4",
                "text": "",
                "voice": {"voice_id": "basic-en"},
                "notify": {"webhook_url": receiver.url},
            }
        )
    )
    make_worker(webhook_allow_private=True)[0].run()
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    (posted,) = receiver.received()
    (event,) = stack.events()
    assert posted["type"] == "synthesis.failed.v1" and posted["event_id"] == event.event_id
    assert posted["error_code"] == "invalid_request"


def test_a_paused_worker_cannot_store_a_second_audio_version(stack, make_worker):
    """Finding 5: a worker paused past its lease uploaded after the job was complete (two versions)."""
    stack.clients.s3.put_bucket_versioning(Bucket=stack.resources.bucket, VersioningConfiguration={"Status": "Enabled"})
    stack.send(request("story-5"))
    settings = stack.settings(visibility_timeout_s=2, heartbeat_interval_s=1)
    paused = build_services(settings, FakeEngine(work_s=4.0))

    def frozen_beat(*_args, **_kwargs):  # the whole process is paused: its first beat never gets out
        time.sleep(8)

    paused.queue.extend_visibility = frozen_beat  # type: ignore[method-assign]
    message = receive_one(stack, visibility=2)
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(process_message(message, paused, threading.Event())))
    thread.start()
    time.sleep(2.5)  # the lease ran out; another worker takes the job over and finishes it
    other, _ = make_worker(visibility_timeout_s=2, heartbeat_interval_s=1)
    other.run()
    assert other.outcomes == {"done": 1}
    thread.join(timeout=20)
    assert outcome == [Outcome.ABANDONED]
    versions = stack.clients.s3.list_object_versions(Bucket=stack.resources.bucket, Prefix="outputs/story-5")
    assert len(versions.get("Versions", [])) == 1
    (event,) = [e for e in stack.events() if isinstance(e, SynthesisCompleted)]
    head = stack.clients.s3.head_object(Bucket=stack.resources.bucket, Key=event.output.key)
    assert head["ContentLength"] == event.output.bytes and head["Metadata"]["sha256"] == event.output.sha256
