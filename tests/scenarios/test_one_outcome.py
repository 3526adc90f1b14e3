"""No job without an outcome, and never two: the bugs found from outside (issue "no job without an outcome"),
each as the scenario that showed it. A completed job whose delete fails never announces a failure; a refused
webhook target is not retried; a write whose response was lost is not a lost lease; an abort names its real
cause; the last receive never defers; a dead letter always ends with a recorded failure; one redrive is one new
generation with the full retry budget, whatever the queue does to MessageId and receive counts."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from consumer.core.errors import EngineError, StorageError, SynthesisAborted
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.engine.fake import FakeEngine
from consumer.storage.jobs import JobStore
from consumer.worker.job import Outcome, process_message
from consumer.worker.message import RECEIVE_ATTRIBUTES, ReceivedMessage
from contracts.events import SynthesisCompleted, SynthesisFailed
from contracts.tasks import DeliveryTask
from tests.aws_faults import stored_then_dropped
from tests.unit.storage.test_jobs import completed_event
from tests.webhook_receiver import Receiver


def request(job_id: str, **extra: Any) -> str:
    return json.dumps({"job_id": job_id, "text": "Hello from a test.", "voice": {"voice_id": "basic-en"}, **extra})


def receive(stack, url: str | None = None, visibility: int = 30) -> ReceivedMessage:
    for _ in range(10):
        response = stack.clients.sqs.receive_message(
            QueueUrl=url or stack.resources.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=2,
            VisibilityTimeout=visibility,
            MessageSystemAttributeNames=RECEIVE_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        if response.get("Messages"):
            return ReceivedMessage.from_sqs(response["Messages"][0])
    raise AssertionError("no message")


def receive_last(stack) -> ReceivedMessage:
    """The message on its last receive (the stack's queue dead-letters after 3)."""
    for _ in range(stack.spec.max_receive_count - 1):
        receive(stack, visibility=0)
    message = receive(stack)
    assert message.receive_count == stack.spec.max_receive_count
    return message


def record(stack, job_id: str) -> dict:
    return json.loads(stack.get(f"jobs/{job_id}.json"))


class AlwaysFails(FakeEngine):
    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        raise EngineError("device hiccup")


# --- 1. a completed job whose delete fails on its last receive ------------------------------------------------
def test_a_completed_job_whose_delete_fails_never_announces_a_failure(stack, make_worker):
    _, services = make_worker(delete_batch_window_s=0)
    stack.send(request("done-1"))
    message = receive_last(stack)

    def broken_delete(receipt_handle: str) -> bool:
        raise StorageError("deleting the message: connection reset")

    services.queue.delete = broken_delete
    outcome = process_message(message, services, threading.Event())

    assert outcome is Outcome.DONE
    assert record(stack, "done-1")["status"] == "COMPLETED"
    assert [e.type for e in stack.events()] == ["synthesis.completed.v1"]


# --- 2. a refused webhook target ---------------------------------------------------------------------------
def _completed_with_webhook(stack, make_worker, job_id: str, url: str):
    """A job completed by a worker that allows private targets; then the target is refused by the settings."""
    _, allowing = make_worker(webhook_allow_private=True, webhook_inline_attempts=1)
    stack.send(request(job_id, notify={"webhook_url": url}))
    assert process_message(receive(stack), allowing, threading.Event()) is Outcome.DONE
    allowing.deliveries.drain(10)
    _, refusing = make_worker(webhook_allow_private=False, webhook_inline_attempts=3)
    while stack.queue_counts() != (0, 0):  # the queued delivery task of the first worker: not this test's
        stack.clients.sqs.purge_queue(QueueUrl=stack.resources.queue_url)
        time.sleep(0.2)
    return refusing


def test_a_refused_webhook_target_ends_delivery_at_once(stack, make_worker):
    receiver = Receiver(status=500)  # a loopback target: refused without webhook_allow_private
    try:
        services = _completed_with_webhook(stack, make_worker, "refused-1", receiver.url)
        now = datetime.now(UTC)
        result = services.deliveries._run_task(DeliveryTask(job_id="refused-1", first_at=now, not_before=now))
        event = services.jobs.result("refused-1")
        assert isinstance(event, SynthesisCompleted)
        services.deliveries._deliver_inline(event, receiver.url, True)
    finally:
        receiver.close()
    assert result == "refused"
    assert stack.queue_counts() == (0, 0)  # no further attempt queued
    delivery = record(stack, "refused-1")["delivery"]
    assert delivery["state"] == "delivery_failed"
    refused = [a for a in delivery["attempts"] if a["status"] is None]
    assert len(refused) == 2 and all("public addresses" in a["error"] for a in refused)  # one per path, no retry
    assert services.metrics.webhook_deliveries.labels("refused")._value.get() == 2


# --- 3. a conditional write that landed, whose response was lost ----------------------------------------------
class LandsThenDrops:
    """Arms the S3 client: its next If-Match PUT is stored, then its response lost (the connection closes)."""

    def __init__(self, s3: Any) -> None:
        self.armed = False
        s3.meta.events.register("before-send.s3.PutObject", self._maybe_drop)

    def _maybe_drop(self, request: Any, **_: Any) -> None:
        if self.armed and "If-Match" in request.headers:
            self.armed = False
            stored_then_dropped(request)


def test_a_write_that_landed_but_lost_its_response_is_not_a_lost_lease(stack):
    s3 = LandsThenDrops(stack.clients.s3)
    jobs = JobStore(stack.clients.s3, stack.resources.bucket, "jobs")
    claim = jobs.claim("landed-1", "w1/a", 30)
    s3.armed = True
    renewed = jobs.renew(claim, 30)  # stored, response lost, retried: 412 against our own write
    assert not s3.armed  # the drop happened
    s3.armed = True
    jobs.complete(renewed, completed_event("landed-1"))
    assert record(stack, "landed-1")["status"] == "COMPLETED"


# --- 6. the last receive never defers; a dead letter always ends with a recorded failure ---------------------
def test_the_last_receive_waits_out_another_claim_instead_of_deferring(stack, make_worker):
    _, services = make_worker(heartbeat_interval_s=1)
    services.jobs.claim("last-1", "paused-worker/0", ttl_s=3)  # a paused holder whose claim runs out
    stack.send(request("last-1"))
    outcome = process_message(receive_last(stack), services, threading.Event())
    assert outcome is Outcome.DONE
    assert record(stack, "last-1")["status"] == "COMPLETED"


def test_a_claim_about_to_run_out_is_waited_out_without_burning_a_receive(stack, make_worker):
    _, services = make_worker(heartbeat_interval_s=2)
    services.jobs.claim("soon-1", "paused-worker/0", ttl_s=1.5)
    stack.send(request("soon-1"))
    message = receive(stack)
    assert message.receive_count == 1
    assert process_message(message, services, threading.Event()) is Outcome.DONE


def test_a_dead_letter_without_an_outcome_is_failed_and_a_redrive_reopens_it(stack, make_worker):
    _, services = make_worker()
    stack.send(request("dead-1"))
    for _ in range(stack.spec.max_receive_count):
        receive(stack, visibility=0)  # received and dropped each time (killed workers)
    stack.clients.sqs.receive_message(QueueUrl=stack.resources.queue_url, WaitTimeSeconds=1)  # moves it
    assert stack.queue_counts(stack.resources.dlq_url)[0] == 1

    from consumer.worker.dead_letters import DeadLetterWatch

    watch = DeadLetterWatch(services)
    assert watch.sweep() == 1
    assert watch.sweep() == 0  # recorded once

    (event,) = stack.events()
    assert isinstance(event, SynthesisFailed) and event.error_code.value == "retries_exhausted"
    assert record(stack, "dead-1")["status"] == "FAILED"
    assert stack.queue_counts(stack.resources.dlq_url)[0] == 1  # still there, for `dlq list` and a redrive

    (dead,) = _drain(stack, stack.resources.dlq_url)
    stack.clients.sqs.send_message(  # what `dlq redrive` (copy) does
        QueueUrl=stack.resources.queue_url, MessageBody=dead["Body"]
    )
    assert process_message(receive(stack), services, threading.Event()) is Outcome.DONE
    assert record(stack, "dead-1")["generation"] == 2


def _drain(stack, url: str) -> list[dict]:
    got = stack.clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    ).get("Messages", [])
    for m in got:
        stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


# --- 7. an abort names its real cause ------------------------------------------------------------------------
class RunsUntilAborted(FakeEngine):
    """Synthesizes until told to abort, then raises only after the heartbeat's next extension has landed: a
    process paused past its lease resumes with both threads running."""

    def __init__(self, extended_again: threading.Event) -> None:
        super().__init__()
        self.extended_again = extended_again

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        while not job.should_abort():
            time.sleep(0.02)
        self.extended_again.clear()
        assert self.extended_again.wait(10)
        raise SynthesisAborted("synthesis aborted between chunks")


def test_an_abort_for_a_lapsed_lease_is_not_reported_as_a_timeout(stack, make_worker):
    """Every extension stalls 2.5 s against a 3 s visibility: each lands with 0.5 s of lease left, and the lease
    lapses before the next one lands, whatever the beats' phase."""
    extended_again = threading.Event()
    _, services = make_worker(RunsUntilAborted(extended_again), visibility_timeout_s=3, heartbeat_interval_s=2)
    real_extend = services.queue.extend_visibility

    def stalled_extension(receipt_handle: str, seconds: int) -> None:
        time.sleep(2.5)
        real_extend(receipt_handle, seconds)
        extended_again.set()

    services.queue.extend_visibility = stalled_extension
    stack.send(request("abort-1"))
    outcome = process_message(receive(stack, visibility=3), services, threading.Event())

    assert outcome is Outcome.ABANDONED  # the lease ran out: not "timeout: job exceeded its 900s limit"
    assert services.metrics.retries.labels("timeout")._value.get() == 0


# --- 8. one redrive, one new generation ---------------------------------------------------------------------
def test_one_redrive_is_one_generation_with_the_full_retry_budget_whatever_the_queue_keeps(stack, make_worker):
    _, services = make_worker(AlwaysFails())
    stack.send(request("gen-1"))
    first = receive_last(stack)
    assert process_message(first, services, threading.Event()) is Outcome.RETRY  # generation 1: retries exhausted
    stack.clients.sqs.receive_message(QueueUrl=stack.resources.queue_url, WaitTimeSeconds=1)  # moves it
    (dead,) = _drain(stack, stack.resources.dlq_url)

    # LocalStack's move task: the same MessageId, and a receive count that is kept and goes on counting past
    # the maximum (6, 7, 8 for a maximum of 3) while the queue delivers it three more times.
    stack.send(dead["Body"])
    outcomes = []
    for count in range(first.receive_count + 3, first.receive_count + 6):
        delivered = replace(receive(stack, visibility=0), message_id=first.message_id, receive_count=count)
        outcomes.append(process_message(delivered, services, threading.Event()))
        if count < first.receive_count + 5:
            assert record(stack, "gen-1")["status"] == "RELEASED"  # retried, not exhausted at once

    assert outcomes == [Outcome.RETRY] * 3
    after = record(stack, "gen-1")
    assert after["generation"] == 2 and after["status"] == "FAILED"
    failures = [e for e in stack.events() if isinstance(e, SynthesisFailed)]
    assert [e.generation for e in failures] == [1, 2]  # one failure per generation, one generation per redrive


# --- found on the way ------------------------------------------------------------------------------------------
class CountsCalls(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        self.calls += 1
        return super().synthesize(job)


def test_a_missing_output_bucket_is_found_before_the_device_is_used(stack, make_worker):
    engine = CountsCalls()
    _, services = make_worker(engine, allowed_output_buckets=("not-created-yet",))
    stack.send(request("bucket-1", output={"bucket": "not-created-yet"}))
    assert process_message(receive(stack), services, threading.Event()) is Outcome.RETRY
    assert engine.calls == 0
    assert record(stack, "bucket-1")["released"]["error_code"] == "storage_error"


def test_a_shutdown_hand_back_costs_one_receive_not_two(stack, make_worker):
    """SIGTERM with no grace while a long poll is open: the returned message stays hidden until that poll has
    ended, so the poll cannot receive it and hand it back a second time."""
    worker, _ = make_worker(FakeEngine(work_s=5.0), burst=False, shutdown_grace_s=0, wait_time_s=3)
    stack.send(request("handback-1"))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while stack.queue_counts()[1] == 0:  # wait until a worker holds it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the job is synthesizing, and the loop has opened its next long poll
    worker.stop()
    thread.join(30)
    assert worker.outcomes == {"returned": 1}
    again = receive(stack)
    assert again.receive_count == 2, "the hand-back was received (and handed back) by the worker's own open poll"


def test_redeliver_to_a_refused_target_queues_nothing_and_says_why(stack, make_worker):
    from consumer.core.errors import WebhookRefused
    from consumer.core.targets import resolve_target
    from consumer.producer.client import Client

    receiver = Receiver()
    try:
        _completed_with_webhook(stack, make_worker, "redeliver-1", receiver.url)
    finally:
        receiver.close()
    client = Client(stack.clients, stack.resources.queue_url, stack.resources.bucket)
    try:
        client.redeliver("redeliver-1", allow_private=False)
        raise AssertionError("a refused target was queued")
    except WebhookRefused as refused:
        assert "only public addresses" in str(refused)
    assert stack.queue_counts() == (0, 0)
    try:
        resolve_target("http://169.254.169.254/latest/meta-data/", allow_private=True)
        raise AssertionError("the metadata address was allowed")
    except WebhookRefused as metadata:
        assert "cloud metadata" in str(metadata)


def test_a_delivery_held_past_its_visibility_by_a_pause_cannot_reopen_a_finished_job(stack, make_worker):
    """Seen in the pause chaos: a worker received the message, was paused past its visibility, and resumed after
    the dead-letter sweep had failed the job: its claim reopened the job as generation 2, which failed again
    (two failure events for one job). The claim is fenced like every write."""
    _, services = make_worker(AlwaysFails())
    stack.send(request("stale-1"))
    stale = receive(stack, visibility=0)  # received by a worker that is then paused
    receive(stack, visibility=0)
    last = receive(stack)
    assert last.receive_count == stack.spec.max_receive_count
    assert process_message(last, services, threading.Event()) is Outcome.RETRY  # generation 1 fails
    paused = replace(stale, received_monotonic=time.monotonic() - 2 * services.settings.visibility_timeout_s)
    assert process_message(paused, services, threading.Event()) is Outcome.ABANDONED
    after = record(stack, "stale-1")
    assert after["status"] == "FAILED" and after["generation"] == 1


def test_a_stale_delivery_of_the_failed_message_replays_its_failure_instead_of_reopening(stack, make_worker):
    """Seen in the pause chaos: a long poll answered while its worker was stopped hands the message over with a
    fresh local clock after the message has gone to the DLQ and been failed; its receive count is not past the
    failure's, so it is no redrive: the failure is replayed, no generation opened."""
    _, services = make_worker(AlwaysFails())
    stack.send(request("stale-2"))
    stale = receive(stack, visibility=0)
    receive(stack, visibility=0)
    last = receive(stack)
    assert process_message(last, services, threading.Event()) is Outcome.RETRY  # generation 1 fails
    fresh_clock = replace(stale, received_monotonic=time.monotonic())
    assert process_message(fresh_clock, services, threading.Event()) is Outcome.REPLAYED
    after = record(stack, "stale-2")
    assert after["status"] == "FAILED" and after["generation"] == 1
