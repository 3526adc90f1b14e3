"""The API's waiter (`consumer/api/waiter.py`) against real job records on a moto server: a waiting request gets
its job's outcome from its record reads (at doubling gaps) or from its events queue; it gets None when its time
runs out; many waiters share the reads; nothing is listed, so the hour's volume costs a waiter nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from consumer.api.waiter import Waiter
from consumer.storage.jobs import JobStore
from contracts.codes import ErrorCode
from contracts.events import SynthesisFailed, event_id_for


def failed_event(job_id: str) -> SynthesisFailed:
    return SynthesisFailed(
        event_id=event_id_for(job_id, "failed:1"),
        job_id=job_id,
        attempt=1,
        worker_id="w1",
        occurred_at=datetime.now(UTC),
        error_code=ErrorCode.UNKNOWN_VOICE,
        error_message="voice 'x' does not exist",
        retryable=False,
    )


@pytest.fixture
def jobs(stack) -> JobStore:
    return JobStore(stack.clients.s3, stack.resources.bucket, stack.settings().jobs_prefix)


@pytest.fixture
def waiters() -> Iterator[list[Waiter]]:
    made: list[Waiter] = []
    yield made
    for waiter in made:
        waiter.close()


def finish_later(jobs: JobStore, job_id: str, after_s: float) -> threading.Thread:
    """Claim the job now and record its failure `after_s` later, as a worker would."""
    claim = jobs.claim(job_id, "w1", ttl_s=60, message_id="m1")

    def finish() -> None:
        time.sleep(after_s)
        jobs.fail(claim, failed_event(job_id))

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread


def test_a_job_finished_before_anyone_waits_is_answered_at_once(jobs, waiters):
    outcome = failed_event("done-1")
    jobs.fail(jobs.claim("done-1", "w1", ttl_s=60, message_id="m1"), outcome)
    waiter = Waiter(jobs, fallback_s=60)
    waiters.append(waiter)
    started = time.monotonic()
    assert asyncio.run(waiter.wait("done-1", 20)) == outcome
    assert time.monotonic() - started < 5


def test_an_outcome_recorded_while_waiting_is_read_within_the_gap(jobs, waiters):
    """Reads after 0.1, 0.2, 0.4, 0.8 s...: a job finished after 1 s is answered within about a gap of it."""
    waiter = Waiter(jobs, poll_s=0.1, fallback_s=1.0)
    waiters.append(waiter)
    worker = finish_later(jobs, "running-1", after_s=1.0)
    started = time.monotonic()
    event = asyncio.run(waiter.wait("running-1", 20))
    worker.join()
    assert isinstance(event, SynthesisFailed) and event.job_id == "running-1"
    assert 0.9 < time.monotonic() - started < 5
    assert 3 <= waiter.requests <= 8, waiter.requests  # doubling gaps, not a read every 0.1 s


def test_the_reads_of_a_long_wait_back_off_to_the_fallback_gap(jobs, waiters):
    waiter = Waiter(jobs, poll_s=0.1, fallback_s=0.8)
    waiters.append(waiter)
    jobs.claim("long-1", "w1", ttl_s=60, message_id="m1")
    assert asyncio.run(waiter.wait("long-1", 4.0)) is None
    # 0, 0.1, 0.3, 0.7, then every 0.8 s until 4 s: about 8 reads, where a read per round would be 40
    assert 5 <= waiter.requests <= 10, waiter.requests


def test_a_job_that_does_not_finish_in_time_gives_none_and_goes_on(jobs, waiters):
    waiter = Waiter(jobs, poll_s=0.1)
    waiters.append(waiter)
    jobs.claim("slow-1", "w1", ttl_s=60, message_id="m1")
    started = time.monotonic()
    assert asyncio.run(waiter.wait("slow-1", 0.5)) is None
    assert 0.4 < time.monotonic() - started < 5
    assert jobs.terminal("slow-1") is None  # waiting changed nothing


def test_many_requests_waiting_for_one_job_share_its_reads(jobs, waiters):
    jobs.fail(jobs.claim("shared-1", "w1", ttl_s=60, message_id="m1"), failed_event("shared-1"))
    waiter = Waiter(jobs, poll_s=0.1, fallback_s=60)
    waiters.append(waiter)

    async def thirty() -> list:
        return await asyncio.gather(*(waiter.wait("shared-1", 20) for _ in range(30)))

    events = asyncio.run(thirty())
    assert {event.event_id for event in events} == {event_id_for("shared-1", "failed:1")}
    assert waiter.requests < 10, waiter.requests  # a read per request would be 30


def test_with_an_events_queue_the_published_event_wakes_the_request(stack, jobs, waiters):
    """No record exists for the job: only the event can answer. A message that is no event is skipped; both are
    consumed."""
    events_url = stack.resources.events_queue_url
    waiter = Waiter(jobs, fallback_s=60, sqs=stack.clients.sqs, events_queue_url=events_url)
    waiters.append(waiter)
    event = failed_event("evented-1")

    async def wait_and_publish():
        waiting = asyncio.ensure_future(waiter.wait("evented-1", 20))
        await asyncio.sleep(0.2)
        stack.clients.sqs.send_message(QueueUrl=events_url, MessageBody="not an event")
        stack.clients.sns.publish(TopicArn=stack.resources.topic_arn, Message=event.model_dump_json())
        return await waiting

    started = time.monotonic()
    assert asyncio.run(wait_and_publish()) == event
    assert time.monotonic() - started < 15
    deadline = time.monotonic() + 10
    while stack.queue_counts(events_url) != (0, 0):
        assert time.monotonic() < deadline, stack.queue_counts(events_url)
        time.sleep(0.2)
