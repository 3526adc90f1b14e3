"""The worker against a real moto server over HTTP, with the deterministic fake engine: success, poison
messages, retries and redrive, idempotent redelivery, duplicate claims, shutdown."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
import soundfile as sf
from botocore.exceptions import ClientError

from consumer.aws.retry import AWS_CALL
from consumer.engine.fake import FakeEngine
from consumer.storage.job_record import JobStatus
from consumer.worker.job import Outcome, process_message
from consumer.worker.message import RECEIVE_ATTRIBUTES, ReceivedMessage
from contracts.events import ErrorCode, SynthesisCompleted, SynthesisFailed, event_id_for
from contracts.limits import MAX_TEXT_CHARS
from tests.aws_faults import internal_error


def request(job_id: str, text: str = "Hello from a test.", **extra) -> str:
    body = {"job_id": job_id, "text": text, "voice": {"voice_id": "basic-en"}, **extra}
    return json.dumps(body)


def receive_one(stack, visibility: int = 30) -> ReceivedMessage:
    response = stack.clients.sqs.receive_message(
        QueueUrl=stack.resources.queue_url,
        MaxNumberOfMessages=1,
        WaitTimeSeconds=2,
        VisibilityTimeout=visibility,
        MessageSystemAttributeNames=RECEIVE_ATTRIBUTES,
    )
    return ReceivedMessage.from_sqs(response["Messages"][0])


def test_success_writes_audio_publishes_event_and_deletes(stack, make_worker):
    stack.send(request("ok-1", metadata={"order": 7}))
    worker, services = make_worker()
    assert worker.run() == 0

    (event,) = stack.events()
    assert isinstance(event, SynthesisCompleted)
    assert event.job_id == "ok-1" and event.metadata == {"order": 7} and event.attempt == 1
    assert event.event_id == event_id_for("ok-1", "completed")
    assert event.output.key == "outputs/ok-1.wav" and event.output.content_type == "audio/wav"
    audio, rate = sf.read(io.BytesIO(stack.get(event.output.key)))
    assert rate == 24000 and abs(len(audio) / rate - event.output.duration_s) < 0.01
    assert event.timings.real_time_factor >= 0 and event.model_id == "fake-tone"
    assert stack.queue_counts() == (0, 0)
    record = json.loads(stack.get("jobs/ok-1.json"))
    assert record["status"] == "COMPLETED" and record["event"]["event_id"] == event.event_id
    assert services.metrics.count("done") == 1


def test_poison_messages_fail_once_with_clear_errors_and_are_removed(stack, make_worker):
    stack.send("{this is not json")
    stack.send(json.dumps({"job_id": "schema-1", "txt": "typo"}))
    stack.send(request("huge-1", text="x" * (MAX_TEXT_CHARS + 1)))
    stack.send(json.dumps({"job_id": "voice-1", "text": "hi", "voice": {"voice_id": "nobody"}}))
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key="refs/not-audio.wav", Body=b"GIF89a" * 100)
    bad_ref = {"audio_uri": f"s3://{stack.resources.bucket}/refs/not-audio.wav", "transcript": "hello"}
    stack.send(json.dumps({"job_id": "ref-1", "text": "hi", "voice": bad_ref}))
    stack.send(
        json.dumps(
            {"job_id": "bucket-1", "text": "hi", "voice": {"audio_uri": "s3://someone-else/x.wav", "transcript": "t"}}
        )
    )
    engine = FakeEngine()
    worker, services = make_worker(engine)
    worker.run()

    events = {e.job_id: e for e in stack.events()}
    assert len(events) == 6 and all(isinstance(e, SynthesisFailed) and not e.retryable for e in events.values())
    by_code = {e.error_code for e in events.values()}
    assert by_code == {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.UNKNOWN_VOICE,
        ErrorCode.BAD_REFERENCE_AUDIO,
        ErrorCode.FORBIDDEN_LOCATION,
    }
    assert "txt: Extra inputs are not permitted" in events["schema-1"].error_message
    assert "text: String should have at most" in events["huge-1"].error_message
    assert "voice 'nobody' does not exist" in events["voice-1"].error_message
    invalid_json = [e for e in events.values() if e.error_code == ErrorCode.INVALID_JSON]
    assert invalid_json[0].job_id.startswith("message-")
    assert engine.calls == 0
    assert stack.queue_counts() == (0, 0) and stack.queue_counts(stack.resources.dlq_url) == (0, 0)
    assert services.metrics.count("failed") == 6


def test_redelivery_after_crash_between_upload_and_delete_does_not_synthesize_again(stack, make_worker):
    stack.send(request("crash-1"))
    engine = FakeEngine()
    _, services = make_worker(engine)
    msg = receive_one(stack, visibility=30)

    # First attempt: everything up to the delete happens, then the process "dies" (delete never sent).
    real_delete = services.queue.delete_soon
    services.queue.delete_soon = lambda receipt: (_ for _ in ()).throw(SystemExit("killed before delete"))
    with pytest.raises(SystemExit):
        process_message(msg, services, threading.Event())
    services.queue.delete_soon = real_delete
    first = stack.events()
    assert [e.type for e in first] == ["synthesis.completed.v1"] and engine.calls == 1

    # SQS redelivers once the visibility expires; here, hand it back at once.
    stack.clients.sqs.change_message_visibility(
        QueueUrl=stack.resources.queue_url, ReceiptHandle=msg.receipt_handle, VisibilityTimeout=0
    )
    again = receive_one(stack)
    assert again.receive_count == 2
    assert process_message(again, services, threading.Event()) == Outcome.REPLAYED
    (second,) = stack.events()
    assert engine.calls == 1, "no second synthesis"
    assert second.event_id == first[0].event_id and second == first[0]
    assert stack.objects("outputs/") == ["outputs/crash-1.wav"]
    services.queue.flush_deletes()
    assert stack.queue_counts() == (0, 0)


def test_audio_uploaded_but_no_result_record_rebuilds_the_event_without_synthesis(stack, make_worker):
    stack.send(request("half-1"))
    engine = FakeEngine()
    _, services = make_worker(engine)
    msg = receive_one(stack)
    real_complete = services.jobs.complete
    services.jobs.complete = lambda *_args: (_ for _ in ()).throw(SystemExit("killed after upload"))
    with pytest.raises(SystemExit):
        process_message(msg, services, threading.Event())
    services.jobs.complete = real_complete
    assert stack.objects("outputs/") == ["outputs/half-1.wav"] and stack.events() == []

    # The dead worker's claim is still there; once it expires, the next attempt takes over.
    stack.clients.sqs.change_message_visibility(
        QueueUrl=stack.resources.queue_url, ReceiptHandle=msg.receipt_handle, VisibilityTimeout=0
    )
    _, later = make_worker(engine, visibility_timeout_s=30)
    record, _ = services.jobs.read("half-1")
    assert record is not None and record.status == JobStatus.INPROGRESS
    expired = record.model_dump(mode="json") | {"expires_at": "2000-01-01T00:00:00+00:00"}
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key="jobs/half-1.json", Body=json.dumps(expired))
    assert process_message(receive_one(stack), later, threading.Event()) == Outcome.DONE
    (event,) = stack.events()
    assert isinstance(event, SynthesisCompleted) and engine.calls == 1


def test_duplicate_delivery_while_claimed_is_deferred_not_processed(stack, make_worker):
    engine = FakeEngine()
    _, services = make_worker(engine)
    services.jobs.claim("dup-1", "other-worker", ttl_s=60)
    stack.send(request("dup-1"))
    msg = receive_one(stack)
    assert process_message(msg, services, threading.Event()) == Outcome.DEFERRED
    assert engine.calls == 0 and stack.events() == []
    assert stack.queue_counts() == (0, 1)  # hidden until the other worker's claim expires


def test_transient_s3_failures_are_retried_without_loss_or_duplicates(stack, make_worker):
    stack.send(request("flaky-1"))
    engine = FakeEngine()
    worker, services = make_worker(engine)
    failures = {"left": AWS_CALL.tries + 1}  # the tries of attempt 1's upload; attempt 2 absorbs the last one

    def fail_put(request, **_):
        if "/outputs/" in request.url and failures["left"] > 0:
            failures["left"] -= 1
            return internal_error(request.url)
        return None

    services.audio._s3.meta.events.register("before-send.s3.PutObject", fail_put)
    worker.run()
    events = stack.events()
    assert [e.type for e in events] == ["synthesis.completed.v1"]
    assert failures["left"] == 0 and engine.calls == 2  # one attempt retried via visibility
    assert stack.objects("outputs/") == ["outputs/flaky-1.wav"]
    assert services.metrics.count("retry") == 1 and stack.queue_counts() == (0, 0)


def test_retries_exhausted_goes_to_dlq_with_a_failure_event(stack, make_worker):
    stack.send(request("doomed-1"))
    worker, services = make_worker()

    def always_fail(params, **_):
        if params["Key"].startswith("outputs/"):
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "PutObject")

    services.audio._s3.meta.events.register("before-parameter-build.s3.PutObject", always_fail)
    worker.run()
    events = stack.events()
    assert len(events) == 1 and isinstance(events[0], SynthesisFailed)
    assert events[0].error_code == ErrorCode.RETRIES_EXHAUSTED and events[0].attempt == 3
    assert "storage_error" in events[0].error_message
    # The receive after the last attempt moves it to the DLQ (maxReceiveCount=3).
    assert (
        stack.clients.sqs.receive_message(QueueUrl=stack.resources.queue_url, WaitTimeSeconds=1).get("Messages") is None
    )
    dlq = stack.clients.sqs.receive_message(QueueUrl=stack.resources.dlq_url, WaitTimeSeconds=2)["Messages"]
    assert json.loads(dlq[0]["Body"])["job_id"] == "doomed-1"


def test_heartbeat_keeps_a_slow_job_invisible(stack, make_worker):
    stack.send(request("slow-1"))
    engine = FakeEngine(work_s=5.0)
    worker, services = make_worker(engine, visibility_timeout_s=2, heartbeat_interval_s=0.5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(1.0)
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a second consumer must never see it while the job runs
        response = stack.clients.sqs.receive_message(QueueUrl=stack.resources.queue_url, WaitTimeSeconds=1)
        seen += response.get("Messages", [])
    thread.join(timeout=20)
    assert seen == []
    assert engine.calls == 1 and [e.type for e in stack.events()] == ["synthesis.completed.v1"]
    assert services.metrics.heartbeats._value.get() >= 4
    assert stack.objects("outputs/") == ["outputs/slow-1.wav"]


def test_shutdown_mid_job_returns_the_message_and_another_worker_finishes(stack, make_worker):
    """Returned at once, or, while the worker's own long poll is open, as soon as that poll has ended (so it
    cannot take the message back): within the poll's wait plus a second."""
    stack.send(request("term-1"))
    engine = FakeEngine(work_s=30.0)
    worker, _ = make_worker(engine, shutdown_grace_s=0, burst=False, visibility_timeout_s=60)
    thread = threading.Thread(target=worker.run)
    thread.start()
    while engine.calls == 0:
        time.sleep(0.05)
    stopped_at = time.monotonic()
    worker.stop()
    visible_after = None
    while time.monotonic() - stopped_at < 5:
        if stack.queue_counts()[0] == 1:
            visible_after = time.monotonic() - stopped_at
            break
        time.sleep(0.05)
    thread.join(timeout=10)
    assert not thread.is_alive()
    wait_s = worker.settings.wait_time_s
    assert visible_after is not None and visible_after < wait_s + 2.0
    assert stack.objects("outputs/") == [] and stack.events() == []

    second, _ = make_worker(FakeEngine())
    second.run()
    assert [e.type for e in stack.events()] == ["synthesis.completed.v1"]
    assert stack.objects("outputs/") == ["outputs/term-1.wav"] and stack.queue_counts() == (0, 0)


def test_shutdown_with_grace_finishes_the_job(stack, make_worker):
    stack.send(request("grace-1"))
    engine = FakeEngine(work_s=1.5)
    worker, _ = make_worker(engine, shutdown_grace_s=10, burst=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    while engine.calls == 0:
        time.sleep(0.05)
    worker.stop()
    thread.join(timeout=15)
    assert [e.type for e in stack.events()] == ["synthesis.completed.v1"]
    assert stack.queue_counts() == (0, 0)


def test_job_timeout_fails_cleanly_and_is_retried(stack, make_worker):
    stack.send(request("timeout-1"))
    engine = FakeEngine(work_s=3.0)
    _, services = make_worker(engine, job_timeout_s=0.5)
    msg = receive_one(stack)
    started = time.monotonic()
    assert process_message(msg, services, threading.Event()) == Outcome.RETRY
    assert time.monotonic() - started < 2.0
    assert services.metrics.retries.labels("timeout")._value.get() == 1
    assert stack.objects("outputs/") == []


def test_k_messages_in_flight_each_with_its_own_heartbeat(stack, make_worker):
    for i in range(4):
        stack.send(request(f"par-{i}", text=f"Parallel message number {i}."))
    engine = FakeEngine(work_s=1.0)
    worker, _ = make_worker(engine, max_in_flight=4, visibility_timeout_s=3, heartbeat_interval_s=0.5)
    started = time.monotonic()
    worker.run()
    elapsed = time.monotonic() - started
    events = stack.events()
    assert sorted(e.job_id for e in events) == [f"par-{i}" for i in range(4)]
    assert engine.calls == 4 and elapsed < 4 * 1.0 + 2.5  # overlapped, not serial
    assert stack.queue_counts() == (0, 0)


def test_output_outside_allowed_buckets_is_refused(stack, make_worker):
    stack.send(request("escape-1", output={"bucket": "someone-elses-bucket"}))
    worker, _ = make_worker()
    worker.run()
    (event,) = stack.events()
    assert isinstance(event, SynthesisFailed) and event.error_code == ErrorCode.FORBIDDEN_LOCATION


def test_formats_and_prefix_land_where_the_request_says(stack, make_worker):
    stack.send(request("fmt-1", output={"format": "flac", "key_prefix": "tenant-a", "sample_rate": 16000}))
    worker, _ = make_worker()
    worker.run()
    (event,) = stack.events()
    assert event.output.key == "tenant-a/fmt-1.flac" and event.output.content_type == "audio/flac"
    _, rate = sf.read(io.BytesIO(stack.get("tenant-a/fmt-1.flac")))
    assert rate == 16000 == event.output.sample_rate


def test_voice_cache_revalidates_by_etag_after_its_window(stack, reference_wav):
    from consumer.worker.voices import VoiceResolver
    from contracts.requests import VoiceRef

    now = [0.0]
    resolver = VoiceResolver(
        stack.clients.s3, stack.resources.bucket, "voices", (), 24000, revalidate_after_s=60, clock=lambda: now[0]
    )
    calls: list[str] = []
    stack.clients.s3.meta.events.register("before-call.s3.HeadObject", lambda **kw: calls.append("head"))
    first = resolver.resolve(VoiceRef(voice_id="basic-en"))
    assert resolver.resolve(VoiceRef(voice_id="basic-en")) is first and calls == ["head"]
    now[0] = 61.0  # window over: checked again; same ETag → same cached reference
    assert resolver.resolve(VoiceRef(voice_id="basic-en")) is first and calls == ["head", "head"]


def test_duplicate_delivered_to_the_same_worker_while_in_flight_is_deferred(stack, make_worker):
    engine = FakeEngine(work_s=2.0)
    _, services = make_worker(engine)
    stack.send(request("twice-1"))
    first = receive_one(stack, visibility=30)
    duplicate = ReceivedMessage.from_sqs(
        {
            "MessageId": first.message_id,
            "ReceiptHandle": first.receipt_handle,
            "Body": first.body,
            "Attributes": {"ApproximateReceiveCount": "2"},
        }
    )
    outcomes: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(process_message(first, services, threading.Event())))
    thread.start()
    while engine.calls == 0:
        time.sleep(0.02)
    assert process_message(duplicate, services, threading.Event()) == Outcome.DEFERRED
    thread.join()
    assert outcomes == [Outcome.DONE] and engine.calls == 1
