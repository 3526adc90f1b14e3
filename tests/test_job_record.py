"""The job record `jobs/{job_id}.json`, one test per transition of its state machine (claim, renew, complete,
release, take-over, replay), against a real moto server, plus the worker's LeaseLost → ABANDONED exit."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.core.errors import JobAlreadyCompleted, JobInProgressElsewhere, LeaseLost
from consumer.engine.fake import FakeEngine
from consumer.storage.jobs import JobStore
from consumer.worker.job import Outcome, process_message
from consumer.worker.message import RECEIVE_ATTRIBUTES, ReceivedMessage
from contracts.events import SynthesisCompleted, event_id_for


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jobs(stack, clock) -> JobStore:
    return JobStore(stack.clients.s3, stack.resources.bucket, "jobs", clock=clock)


def record(stack, job_id: str) -> dict:
    return json.loads(stack.get(f"jobs/{job_id}.json"))


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
    assert record(stack, "j1") == {
        "status": "INPROGRESS",
        "job_id": "j1",
        "worker_id": "w1",
        "message_id": "m1",
        "expires_at": (clock.now + timedelta(seconds=60)).isoformat(),
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
    claim = jobs.claim("j4", "w1", ttl_s=600)
    jobs.release(claim)
    assert datetime.fromisoformat(record(stack, "j4")["expires_at"]) < clock.now
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
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key="jobs/j8.json", Body=json.dumps(taken))
    thread.join(timeout=10)

    assert outcome == [Outcome.ABANDONED]
    assert record(stack, "j8")["worker_id"] == "intruder"  # nothing written over the new owner
    assert stack.objects("outputs/") == [] and stack.events() == []
    assert stack.queue_counts() == (0, 1)  # the message is left to its visibility, not deleted
