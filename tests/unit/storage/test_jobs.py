"""The job record `jobs/{job_id}.json`, one test per transition of its state machine (claim, renew, complete,
release, take-over, replay), against a real moto server, plus the worker's LeaseLost → ABANDONED exit."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.core.errors import JobAlreadyCompleted, JobAlreadyFailed, JobInProgressElsewhere, LeaseLost
from consumer.engine.fake import FakeEngine
from consumer.storage.jobs import DeliveryState, JobStore
from consumer.storage.record_backends import records_for
from consumer.worker.job import Outcome, process_message
from consumer.worker.message import RECEIVE_ATTRIBUTES, ReceivedMessage
from contracts.codes import ErrorCode
from contracts.events import SynthesisCompleted, SynthesisFailed, event_id_for
from tests.conftest import new_stack


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["s3", "dynamodb"])
def stack(request, aws_endpoint: str):
    """Every transition against both record stores: S3 objects and DynamoDB items."""
    return new_stack(aws_endpoint, jobs_table=request.param == "dynamodb")


@pytest.fixture
def jobs(stack, clock) -> JobStore:
    records = records_for(stack.clients, stack.settings())
    return JobStore(stack.clients.s3, stack.resources.bucket, "jobs", clock=clock, records=records)


def record(stack, job_id: str) -> dict:
    return stack.record(job_id)


def completed_event(job_id: str) -> SynthesisCompleted:
    return SynthesisCompleted.model_validate(
        {
            "event_id": event_id_for(job_id, "completed"),
            "job_id": job_id,
            "attempt": 1,
            "worker_id": "w1",
            "occurred_at": "2030-01-01T00:00:00Z",
            "output": {
                "uri": f"s3://b/outputs/{job_id}.wav",
                "bucket": "b",
                "key": f"outputs/{job_id}.wav",
                "format": "wav",
                "content_type": "audio/wav",
                "sample_rate": 24000,
                "duration_s": 1.0,
                "bytes": 48044,
                "sha256": "0" * 64,
            },
            "timings": {"queue_wait_s": 0, "synthesis_s": 1, "total_s": 1, "real_time_factor": 1},
            "model_id": "fake-tone",
            "seed": 1,
            "text_chars": 5,
        }
    )


def test_claim_writes_inprogress_once_and_defers_a_second_claimant(stack, jobs, clock):
    claim = jobs.claim("j1", "w1", ttl_s=60, message_id="m1")
    assert claim.fresh and claim.worker_id == "w1"
    written = record(stack, "j1")
    assert len(written.pop("write_id")) == 32  # unique per write: tells our own stored write from another's
    assert written == {
        "status": "INPROGRESS",
        "job_id": "j1",
        "worker_id": "w1",
        "message_id": "m1",
        "attempt": 1,
        "generation": 1,
        "started_at": clock.now.isoformat(),
        "expires_at": (clock.now + timedelta(seconds=60)).isoformat(),
        "progress": None,
    }
    with pytest.raises(JobInProgressElsewhere) as held:
        jobs.claim("j1", "w2", ttl_s=60, message_id="m1")
    assert held.value.retry_in_s == 61
    assert record(stack, "j1")["worker_id"] == "w1"


def test_renew_moves_the_expiry_and_a_stale_claim_cannot_renew(stack, jobs, clock):
    claim = jobs.claim("j2", "w1", ttl_s=60)
    clock.now += timedelta(seconds=30)
    renewed = jobs.renew(claim, 60)
    assert renewed.etag != claim.etag
    assert record(stack, "j2")["expires_at"] == (clock.now + timedelta(seconds=60)).isoformat()
    with pytest.raises(LeaseLost):
        jobs.renew(claim, 60)  # the old ETag no longer matches


def test_complete_records_the_event_and_only_with_the_current_claim(stack, jobs, clock):
    claim = jobs.claim("j3", "w1", ttl_s=60)
    clock.now += timedelta(seconds=1)  # a renewal writes a new body, so a new ETag
    renewed = jobs.renew(claim, 60)
    with pytest.raises(LeaseLost):
        jobs.complete(claim, completed_event("j3"))
    assert record(stack, "j3")["status"] == "INPROGRESS"
    jobs.complete(renewed, completed_event("j3"))
    assert record(stack, "j3")["status"] == "COMPLETED"
    assert jobs.result("j3") == completed_event("j3")


def test_release_expires_the_claim_so_the_next_attempt_need_not_wait(stack, jobs, clock):
    claim = jobs.claim("j4", "w1", ttl_s=600, message_id="m4")
    jobs.release(claim, "retry", ErrorCode.STORAGE_ERROR)
    released = record(stack, "j4")
    assert released["status"] == "RELEASED" and "expires_at" not in released
    assert released["released"] | {"at": None} == {
        "reason": "retry",
        "error_code": "storage_error",
        "by": "w1",
        "message_id": "m4",
        "attempt": 1,
        "at": None,
    }
    again = jobs.claim("j4", "w2", ttl_s=60)  # no JobInProgressElsewhere: nothing to wait for
    assert again.worker_id == "w2" and not again.fresh


def test_take_over_of_an_expired_claim_fences_out_the_old_owner(stack, jobs, clock):
    old = jobs.claim("j5", "w1", ttl_s=60)
    clock.now += timedelta(seconds=61)  # w1 was killed or paused: its claim ran out
    new = jobs.claim("j5", "w2", ttl_s=60)
    assert not new.fresh and record(stack, "j5")["worker_id"] == "w2"
    with pytest.raises(LeaseLost):
        jobs.renew(old, 60)
    with pytest.raises(LeaseLost):
        jobs.complete(old, completed_event("j5"))
    jobs.complete(new, completed_event("j5"))
    assert record(stack, "j5")["status"] == "COMPLETED"


def test_replay_a_claim_on_a_completed_job_returns_its_event(stack, jobs):
    jobs.complete(jobs.claim("j6", "w1", ttl_s=60), completed_event("j6"))
    with pytest.raises(JobAlreadyCompleted) as done:
        jobs.claim("j6", "w2", ttl_s=60)
    assert done.value.event == completed_event("j6")
    assert record(stack, "j6")["status"] == "COMPLETED"


def test_redelivery_of_a_completed_job_replays_the_same_event(stack, make_worker):
    stack.send(json.dumps({"job_id": "j7", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    worker, _ = make_worker()
    worker.run()
    (first,) = stack.events()
    stack.send(json.dumps({"job_id": "j7", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    engine = FakeEngine()
    again, services = make_worker(engine)
    again.run()
    (replayed,) = stack.events()
    assert replayed.event_id == first.event_id and engine.calls == 0
    assert services.metrics.count("replayed") == 1 and stack.queue_counts() == (0, 0)


def test_a_claim_taken_over_mid_synthesis_is_abandoned_without_writes(stack, make_worker):
    engine = FakeEngine(work_s=5.0)
    _, services = make_worker(engine, heartbeat_interval_s=0.1)
    stack.send(json.dumps({"job_id": "j8", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    response = stack.clients.sqs.receive_message(
        QueueUrl=stack.resources.queue_url, WaitTimeSeconds=2, MessageSystemAttributeNames=RECEIVE_ATTRIBUTES
    )
    message = ReceivedMessage.from_sqs(response["Messages"][0])
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(process_message(message, services, threading.Event())))
    thread.start()
    while engine.calls == 0:
        time.sleep(0.02)
    taken = dict(record(stack, "j8"), worker_id="intruder", expires_at="2099-01-01T00:00:00+00:00")
    stack.put_record("j8", taken)
    thread.join(timeout=10)

    assert outcome == [Outcome.ABANDONED]
    assert record(stack, "j8")["worker_id"] == "intruder"  # nothing written over the new owner
    assert stack.objects("outputs/") == [] and stack.events() == []
    assert stack.queue_counts() == (0, 1)  # the message is left to its visibility, not deleted


def failed_event(job_id: str, generation: int = 1) -> SynthesisFailed:
    return SynthesisFailed(
        event_id=event_id_for(job_id, f"failed:{generation}"),
        job_id=job_id,
        attempt=1,
        generation=generation,
        worker_id="w",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        error_code=ErrorCode.UNKNOWN_VOICE,
        error_message="voice 'x' does not exist",
        retryable=False,
    )


def test_fail_records_the_failure_and_replays_it_to_the_same_message(stack, jobs):
    claim = jobs.claim("f1", "w1", ttl_s=60, message_id="m1")
    jobs.fail(claim, failed_event("f1"), "https://example.com/hook")
    stored = record(stack, "f1")
    assert stored["status"] == "FAILED" and stored["generation"] == 1
    assert stored["failure"] == {
        "error_code": "unknown_voice",
        "error_message": "voice 'x' does not exist",
        "attempt": 1,
        "message_id": "m1",
        "redrivable": False,
    }
    with pytest.raises(JobAlreadyFailed) as duplicate:  # the same message delivered again
        jobs.claim("f1", "w2", ttl_s=60, message_id="m1")
    assert duplicate.value.event == failed_event("f1") and duplicate.value.webhook_url == "https://example.com/hook"


def test_a_new_message_reopens_a_failed_job_as_its_next_generation(stack, jobs):
    jobs.fail(jobs.claim("f2", "w1", ttl_s=60, message_id="m1"), failed_event("f2"))
    reopened = jobs.claim("f2", "w2", ttl_s=60, message_id="m2")  # the producer fixed the cause and re-sent
    assert reopened.generation == 2 and not reopened.fresh
    assert record(stack, "f2")["status"] == "INPROGRESS" and record(stack, "f2")["generation"] == 2


def test_a_dead_lettered_failure_reopens_for_its_own_redriven_message(stack, jobs):
    """A redrive that keeps the MessageId comes back with a receive count past the failure's (LocalStack's move
    task); the same message at or below it is a stale delivery and replays the failure."""
    jobs.fail(jobs.claim("f3", "w1", ttl_s=60, message_id="m1", attempt=5), failed_event("f3"), redrivable=True)
    with pytest.raises(JobAlreadyFailed):
        jobs.claim("f3", "w2", ttl_s=60, message_id="m1", attempt=4)
    assert jobs.claim("f3", "w2", ttl_s=60, message_id="m1", attempt=6).generation == 2


def test_a_completed_job_is_final_for_every_message(stack, jobs):
    jobs.complete(jobs.claim("f4", "w1", ttl_s=60, message_id="m1"), completed_event("f4"))
    for message_id in ("m1", "m2"):
        with pytest.raises(JobAlreadyCompleted):
            jobs.claim("f4", "w2", ttl_s=60, message_id=message_id)


def test_deliveries_are_logged_on_the_terminal_record_only(stack, jobs):
    claim = jobs.claim("f5", "w1", ttl_s=60)
    assert not jobs.record_delivery("f5", {"status": 500}), "no outcome yet: nothing to log"
    jobs.complete(claim, completed_event("f5"), "https://example.com/hook")
    for status in range(12):
        assert jobs.record_delivery("f5", {"status": status})
    assert jobs.record_delivery("f5", {"status": 200}, DeliveryState.DELIVERED)
    assert jobs.record_delivery("f5", {"status": 500}, DeliveryState.DELIVERY_FAILED)  # late: cannot undo delivered
    delivery = record(stack, "f5")["delivery"]
    assert delivery["state"] == "delivered" and delivery["count"] == 14
    assert [a["status"] for a in delivery["attempts"]] == [4, 5, 6, 7, 8, 9, 10, 11, 200, 500]
    assert record(stack, "f5")["status"] == "COMPLETED"
