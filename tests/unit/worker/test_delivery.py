"""Webhook delivery apart from the job: queued retries with a log in the record, caps, secret rotation, a slow
receiver that cannot hold a job slot, and `jobs redeliver`."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable

import pytest
from standardwebhooks.webhooks import Webhook

from consumer.aws.retry import delivery_task_delay_s
from consumer.producer.client import Client
from consumer.storage.jobs import JobStore
from tests.scenarios.test_worker_flow import request
from tests.webhook_receiver import Receiver

SECRET_OLD = "whsec_" + base64.b64encode(b"old-secret-old-secret-32-bytes!!").decode()
SECRET_NEW = "whsec_" + base64.b64encode(b"new-secret-new-secret-32-bytes!!").decode()


def _record(stack, job_id: str) -> dict:
    """The record as stored (raw JSON), {} if none."""
    record, _ = JobStore(stack.clients.s3, stack.resources.bucket, "jobs").read(job_id)
    return record.model_dump(mode="json") if record else {}


def _delivery_state(stack, job_id: str) -> str | None:
    return (_record(stack, job_id).get("delivery") or {}).get("state")


def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def running(make_worker):
    """Start a (non-burst) worker in a thread; stopped at the end of the test."""
    started = []

    def start(**overrides):
        worker, services = make_worker(burst=False, **overrides)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker, services

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=60)


def test_retry_delays_double_up_to_fifteen_minutes():
    assert [delivery_task_delay_s(n, 30) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 900]


def test_a_failing_webhook_is_retried_from_the_queue_until_it_accepts(stack, running):
    receiver = Receiver(answer=lambda n: 500 if n <= 3 else 200)
    try:
        stack.send(request("del-1", notify={"webhook_url": receiver.url}))
        worker, _ = running(webhook_allow_private=True, webhook_inline_attempts=2, webhook_retry_base_s=1)
        _until(lambda: _delivery_state(stack, "del-1") == "delivered")
    finally:
        receiver.close()
    assert receiver.statuses == [500, 500, 500, 200]  # 2 in process, then the queued tasks
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    (event,) = stack.events()
    assert ids == {event.event_id}  # the same webhook-id on every attempt
    delivery = _record(stack, "del-1")["delivery"]
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 500, 200] and delivery["count"] == 4
    assert worker.outcomes == {"done": 1}  # one job; the deliveries were tasks
    assert all(k in ("requeued", "delivered", "already_delivered") for k in worker.task_outcomes)


def test_delivery_gives_up_after_its_attempts_and_says_so(stack, running):
    receiver = Receiver(status=500)
    try:
        stack.send(request("del-2", notify={"webhook_url": receiver.url}))
        _, services = running(
            webhook_allow_private=True, webhook_inline_attempts=1, webhook_retry_base_s=1, webhook_max_attempts=2
        )
        _until(lambda: _delivery_state(stack, "del-2") == "delivery_failed")
        time.sleep(2.5)  # nothing more is queued
    finally:
        receiver.close()
    assert len(receiver.requests) == 3  # 1 in process + 2 queued
    assert _record(stack, "del-2")["status"] == "COMPLETED"  # the job stays completed
    assert [e.type for e in stack.events()] == ["synthesis.completed.v1"]
    assert services.metrics.webhook_deliveries.labels("gave_up")._value.get() == 1
    assert stack.queue_counts() == (0, 0) and stack.queue_counts(stack.resources.dlq_url) == (0, 0)


def test_every_configured_secret_signs_so_secrets_can_rotate(stack, make_worker):
    receiver = Receiver()
    try:
        stack.send(request("del-3", notify={"webhook_url": receiver.url}))
        make_worker(webhook_allow_private=True, webhook_secret=f"{SECRET_NEW}, {SECRET_OLD}")[0].run()
    finally:
        receiver.close()
    headers, body = receiver.requests[0]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert len(lowered["webhook-signature"].split(" ")) == 2
    for secret in (SECRET_OLD, SECRET_NEW):  # a receiver on either secret accepts it
        assert Webhook(secret).verify(body, lowered)["job_id"] == "del-3"


def test_a_slow_webhook_does_not_hold_the_job_slot(stack, make_worker):
    receiver = Receiver(delay_s=4.0)
    try:
        stack.send(request("slow-1", notify={"webhook_url": receiver.url}))
        stack.send(request("slow-2"))
        worker, _ = make_worker(webhook_allow_private=True, max_in_flight=1, shutdown_grace_s=10)
        started = time.monotonic()
        finished: dict[str, float] = {}
        real_delete = worker.services.queue.delete_soon

        def timed_delete(receipt_handle: str) -> None:
            finished[str(len(finished))] = time.monotonic() - started
            real_delete(receipt_handle)

        worker.services.queue.delete_soon = timed_delete  # type: ignore[method-assign]
        worker.run()
    finally:
        receiver.close()
    assert worker.outcomes == {"done": 2}
    assert finished["1"] < 4.0, f"the second job waited for the first one's webhook: {finished}"
    assert len(receiver.requests) == 1


def test_jobs_redeliver_sends_the_recorded_event_again(stack, make_worker):
    receiver = Receiver()
    try:
        stack.send(request("redo-1", notify={"webhook_url": receiver.url}))
        make_worker(webhook_allow_private=True)[0].run()
        (first,) = stack.events()
        client = Client(stack.clients, stack.resources.queue_url, stack.resources.bucket)
        assert client.redeliver("redo-1", allow_private=True) == first  # as the workers allow it
        with pytest.raises(LookupError, match="no recorded outcome"):
            client.redeliver("never-sent")
        worker, _ = make_worker(webhook_allow_private=True)
        worker.run()
    finally:
        receiver.close()
    assert worker.task_outcomes == {"delivered": 1}
    (again,) = stack.events()
    assert again == first  # SNS again, same event
    assert [json.loads(body)["event_id"] for _, body in receiver.requests] == [first.event_id] * 2
