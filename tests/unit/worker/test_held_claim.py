"""HeldClaim on the embedded AWS with a real JobStore: writes are fenced by the lease and the heartbeat, the
outcome spends the claim, a renewal brings news of a cancel (and carries progress), a takeover loses the job."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.aws.queue import Queue
from consumer.core.errors import LeaseLost
from consumer.storage.job_record import Failed, InProgress, Released
from consumer.storage.jobs import Claim, JobStore
from consumer.worker.held_claim import HeldClaim
from consumer.worker.message import ReceivedMessage
from consumer.worker.progress import RealTimeFactor
from contracts.codes import ErrorCode
from contracts.events import SynthesisFailed, event_id_for

TTL_S = 30
WORKER_ID = "worker-1"


def _jobs(stack, clock=None) -> JobStore:
    if clock is None:
        return JobStore(stack.clients.s3, stack.resources.bucket, "jobs")
    return JobStore(stack.clients.s3, stack.resources.bucket, "jobs", clock=clock)


def _received(stack, job_id: str, received_ago_s: float = 0.0, receive_count: int | None = None) -> ReceivedMessage:
    stack.send(f'{{"job_id": "{job_id}"}}')
    raw = stack.clients.sqs.receive_message(
        QueueUrl=stack.resources.queue_url,
        MaxNumberOfMessages=1,
        WaitTimeSeconds=1,
        MessageSystemAttributeNames=["All"],
    )["Messages"][0]
    message = ReceivedMessage.from_sqs(raw)
    return dataclasses.replace(
        message,
        received_monotonic=time.monotonic() - received_ago_s,
        receive_count=receive_count or message.receive_count,
    )


def _hold(stack, message: ReceivedMessage) -> tuple[HeldClaim, JobStore]:
    settings = stack.settings(visibility_timeout_s=TTL_S, worker_id=WORKER_ID)
    jobs = _jobs(stack)
    queue = Queue(stack.clients.sqs, stack.resources.queue_url)
    return HeldClaim(message, settings, queue, jobs, RealTimeFactor()), jobs


def _held(stack, job_id: str, *, claim: bool = True, received_ago_s: float = 0.0) -> tuple[HeldClaim, JobStore]:
    message = _received(stack, job_id, received_ago_s)
    held, jobs = _hold(stack, message)
    if claim:
        started = time.monotonic()
        taken = jobs.claim(job_id, held.owner, TTL_S, message.message_id, message.receive_count)
        held.taken(taken, started, TTL_S)
    return held, jobs


def _failure(job_id: str) -> SynthesisFailed:
    return SynthesisFailed(
        event_id=event_id_for(job_id, "failed:1"),
        job_id=job_id,
        attempt=1,
        worker_id="w",
        occurred_at=datetime.now(UTC),
        error_code=ErrorCode.UNKNOWN_VOICE,
        error_message="no such voice",
        retryable=False,
    )


def test_the_owner_is_this_attempt_not_the_process(stack):
    first, _ = _held(stack, "owner-a", claim=False)
    second, _ = _held(stack, "owner-b", claim=False)
    assert first.owner.startswith(f"{WORKER_ID}/") and second.owner.startswith(f"{WORKER_ID}/")
    assert first.owner != second.owner


def test_ensure_owned_passes_while_the_lease_holds(stack):
    held, _ = _held(stack, "owned")
    held.ensure_owned("the audio")  # no exception


def test_ensure_owned_raises_once_the_heartbeat_lost_the_job(stack):
    held, _ = _held(stack, "lost")
    held.heartbeat.mark_lost("claim on lost was taken over")
    with pytest.raises(LeaseLost, match="was taken over"):
        held.ensure_owned("the audio")


def test_ensure_owned_raises_when_the_lease_lapsed(stack):
    held, _ = _held(stack, "lapsed", claim=False, received_ago_s=TTL_S + 5)
    with pytest.raises(LeaseLost, match="too late to write the audio"):
        held.ensure_owned("the audio")


def test_record_writes_with_the_claim_and_spends_it(stack):
    held, jobs = _held(stack, "recorded")
    written: list[Claim] = []

    def fail(claim: Claim) -> None:
        written.append(claim)
        jobs.fail(claim, _failure("recorded"))

    held.record(fail, "the failure")
    assert len(written) == 1 and written[0].job_id == "recorded"
    assert held.claim is None
    record, _ = jobs.read("recorded")
    assert isinstance(record, Failed) and record.failure.error_code == "unknown_voice"
    held.release("shutdown", None)  # nothing left to release: the outcome stays
    assert isinstance(jobs.read("recorded")[0], Failed)


def test_record_writes_nothing_when_the_job_is_lost(stack):
    held, jobs = _held(stack, "not-recorded")
    held.heartbeat.mark_lost("taken over")
    calls: list[Claim] = []
    with pytest.raises(LeaseLost):
        held.record(calls.append, "the failure")
    assert calls == [] and held.claim is not None
    assert isinstance(jobs.read("not-recorded")[0], InProgress)


def test_a_renewal_notices_a_cancel_request(stack):
    held, jobs = _held(stack, "to-cancel")
    assert held.heartbeat.beat()  # a renewal without news
    assert not held.cancelled.is_set()
    _jobs(stack).request_cancel("to-cancel", by="ana", reason="changed my mind")
    assert held.heartbeat.beat()
    assert held.cancelled.is_set()
    assert held.claim is not None and held.claim.cancel is not None and held.claim.cancel.by == "ana"
    record, _ = jobs.read("to-cancel")
    assert isinstance(record, InProgress) and record.cancel is not None  # still ours, the cancel kept


def test_a_renewal_extends_the_claim_and_carries_the_progress(stack):
    held, jobs = _held(stack, "progressing")
    before, _ = jobs.read("progressing")
    assert isinstance(before, InProgress) and before.progress is None
    held.progress.start(expected_audio_s=10.0)
    held.progress.update(1, 4)
    assert held.heartbeat.beat()
    after, _ = jobs.read("progressing")
    assert isinstance(after, InProgress) and after.progress is not None
    assert (after.progress.chunk, after.progress.chunks) == (1, 4)
    assert after.expires_at > before.expires_at
    assert held.lease.remaining_s() > TTL_S - 2


def test_a_takeover_loses_the_job_on_the_next_beat(stack):
    held, _ = _held(stack, "taken")
    later = _jobs(stack, clock=lambda: datetime.now(UTC) + timedelta(seconds=TTL_S + 10))
    later.claim("taken", "other-worker/1", TTL_S, "m-other", 2)  # our claim expired in its clock
    assert not held.heartbeat.beat()
    assert held.heartbeat.lost.is_set()
    with pytest.raises(LeaseLost):
        held.ensure_owned("the audio")


def test_release_marks_the_record_released_once(stack):
    held, jobs = _held(stack, "released")
    held.settle()
    held.release("shutting down", ErrorCode.TIMEOUT)
    record, etag = jobs.read("released")
    assert isinstance(record, Released) and record.released is not None
    assert (record.released.reason, record.released.error_code) == ("shutting down", "timeout")
    assert held.claim is None
    held.release("again", None)
    assert jobs.read("released")[1] == etag  # no second write


def test_attempt_in_generation_counts_from_the_delivery_that_opened_it(stack):
    failed_before, jobs = _held(stack, "attempts")
    failed_before.record(lambda claim: jobs.fail(claim, _failure("attempts")), "the failure")
    # A re-sent message for the failed job, delivered for the 5th time (a redrive may keep the count).
    message = _received(stack, "attempts", receive_count=5)
    held, _ = _hold(stack, message)
    assert held.attempt_in_generation() == 5  # before the claim: the receive count
    started = time.monotonic()
    claim = jobs.claim("attempts", held.owner, TTL_S, message.message_id, 5)
    held.taken(claim, started, TTL_S)
    assert held.opened == claim and claim.generation == 2
    assert held.attempt_in_generation() == 1  # the first attempt of generation 2
