"""A property of the whole event stream. Hypothesis drives jobs through random sequences of deliveries, duplicate
and corrected re-sends, webhook outages, workers killed after their claim or stopped mid-job, redrives of the
dead-letter queue and setting changes (a worker that refuses the jobs' webhook), on in-process workers against
the embedded AWS. Then every SNS event and every webhook POST is checked against the job records:

- per job and generation one outcome (one event id), stable across replays;
- no `failed` event after a `completed` one, nothing of a completed job in the DLQ;
- every event agrees with the record of its generation; every webhook POST is an event SNS also carried.

Bounded for CI (F5_WORKER_STREAM_EXAMPLES, default 25, at most 200).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.engine.fake import FakeEngine
from consumer.storage.job_record import Completed, Failed
from consumer.storage.jobs import JobStore
from consumer.worker.job import process_message
from consumer.worker.message import RECEIVE_ATTRIBUTES, ReceivedMessage
from consumer.worker.services import build_services
from contracts.events import SynthesisCompleted, parse_event
from tests.webhook_receiver import Receiver

EXAMPLES = min(200, int(os.environ.get("F5_WORKER_STREAM_EXAMPLES", "12")))
JOBS = 3

step = st.one_of(
    st.tuples(st.just("send"), st.integers(0, JOBS - 1), st.sampled_from(["ok", "unknown_voice", "empty_text"])),
    st.tuples(st.just("resend"), st.integers(0, JOBS - 1), st.just("")),  # the same body again, a new message
    st.tuples(st.just("webhook"), st.just(0), st.sampled_from(["up", "down"])),
    st.tuples(st.just("run"), st.just(0), st.sampled_from(["normal", "refuses_webhook"])),
    st.tuples(st.just("kill_after_claim"), st.just(0), st.just("")),
    st.tuples(st.just("stop_mid_job"), st.just(0), st.just("")),
    st.tuples(st.just("redrive"), st.just(0), st.just("")),
)


class Run:
    """One example: its own job ids, a webhook receiver, and what was sent."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.prefix = f"p{uuid.uuid4().hex[:8]}"
        self.webhook_up = True
        self.receiver = Receiver(answer=lambda _n: 200 if self.webhook_up else 503)
        self.bodies: dict[int, str] = {}
        self.jobs = JobStore(stack.clients.s3, stack.resources.bucket, "jobs")

    def job_id(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def settings(self, variant: str = "normal"):
        return self.stack.settings(
            wait_time_s=0,
            visibility_timeout_s=2,
            heartbeat_interval_s=1,
            webhook_allow_private=variant != "refuses_webhook",
            webhook_inline_attempts=1,
            webhook_retry_base_s=0,
            webhook_max_attempts=3,
            shutdown_grace_s=5,
        )

    def send(self, index: int, variant: str) -> None:
        voice = "nobody" if variant == "unknown_voice" else "basic-en"
        text = "" if variant == "empty_text" else f"Job {index} speaks."
        body = {
            "job_id": self.job_id(index),
            "text": text,
            "voice": {"voice_id": voice},
            "notify": {"webhook_url": self.receiver.url},
        }
        self.bodies[index] = json.dumps(body)
        self.stack.send(self.bodies[index])

    def run_worker(self, variant: str) -> None:
        from consumer.worker.loop import Worker

        settings = self.settings(variant)
        Worker(build_services(settings, FakeEngine())).run()

    def kill_after_claim(self) -> None:
        """A worker that received a message, claimed its job and died: its claim and the message's visibility
        run out on their own."""
        response = self.stack.clients.sqs.receive_message(
            QueueUrl=self.stack.resources.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=1, WaitTimeSeconds=0
        )
        for message in response.get("Messages", []):
            try:
                job_id = json.loads(message["Body"])["job_id"]
            except (ValueError, KeyError, TypeError):
                continue
            with contextlib.suppress(Exception):  # finished or held: the dead worker got no further
                self.jobs.claim(job_id, "killed-worker/0", ttl_s=1, message_id=message["MessageId"])

    def stop_mid_job(self) -> None:
        """A worker told to stop while it holds a message: it hands the message back."""
        settings = self.settings()
        services = build_services(settings, FakeEngine(work_s=0.5))
        response = self.stack.clients.sqs.receive_message(
            QueueUrl=self.stack.resources.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=0,
            VisibilityTimeout=2,
            MessageSystemAttributeNames=RECEIVE_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        if not response.get("Messages"):
            return
        message = ReceivedMessage.from_sqs(response["Messages"][0])
        if message.kind is not None:  # a queued delivery: not a job, leave it to the workers
            self.stack.clients.sqs.change_message_visibility(
                QueueUrl=self.stack.resources.queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
            )
            return
        shutdown = threading.Event()
        threading.Timer(0.2, shutdown.set).start()
        process_message(message, services, shutdown)

    def redrive(self) -> None:
        """An operator's redrive, as `f5-worker dlq redrive` does on moto (copy, then delete)."""
        sqs = self.stack.clients.sqs
        while messages := sqs.receive_message(
            QueueUrl=self.stack.resources.dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            for m in messages:
                extra = {"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {}
                sqs.send_message(QueueUrl=self.stack.resources.queue_url, MessageBody=m["Body"], **extra)
                sqs.delete_message(QueueUrl=self.stack.resources.dlq_url, ReceiptHandle=m["ReceiptHandle"])

    def settle(self) -> None:
        """The webhook comes back and workers run until the request queue (tasks included) is empty."""
        self.webhook_up = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.run_worker("normal")
            attrs = self.stack.clients.sqs.get_queue_attributes(
                QueueUrl=self.stack.resources.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            if not any(int(v) for v in attrs.values()):
                return
            time.sleep(0.5)
        raise AssertionError("the request queue did not drain")


def _dlq_job_ids(stack) -> list[str]:
    sqs = stack.clients.sqs
    seen = []
    for m in sqs.receive_message(
        QueueUrl=stack.resources.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
    ).get("Messages", []):
        try:
            seen.append(json.loads(m["Body"])["job_id"])
        except (ValueError, KeyError, TypeError):
            continue
    return seen


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=2, max_size=8))
def test_one_outcome_per_job_and_generation_that_agrees_with_the_record(stack, steps):
    run = Run(stack)
    try:
        for action, index, variant in steps:
            if action == "send":
                run.send(index, variant)
            elif action == "resend" and index in run.bodies:
                stack.send(run.bodies[index])
            elif action == "webhook":
                run.webhook_up = variant == "up"
            elif action == "run":
                run.run_worker(variant)
            elif action == "kill_after_claim":
                run.kill_after_claim()
            elif action == "stop_mid_job":
                run.stop_mid_job()
            elif action == "redrive":
                run.redrive()
        run.settle()
    finally:
        run.receiver.close()

    events = [e for e in stack.events() if e.job_id.startswith(run.prefix)]
    posts = [parse_event(body) for _, body in run.receiver.requests]
    by_generation: dict[tuple[str, int], set[str]] = defaultdict(set)
    for event in events:
        by_generation[(event.job_id, event.generation)].add(event.event_id)
    assert all(len(ids) == 1 for ids in by_generation.values()), f"two outcomes for one generation: {by_generation}"
    completed = {e.job_id: e for e in events if isinstance(e, SynthesisCompleted)}
    for event in events:
        if event.job_id in completed and not isinstance(event, SynthesisCompleted):
            assert event.generation < completed[event.job_id].generation, f"failed after completed: {event}"
    for index in run.bodies:
        job_id = run.job_id(index)
        record, _ = run.jobs.read(job_id)
        if not isinstance(record, Completed | Failed):
            continue
        recorded = record.event
        same_generation = [e for e in events if e.job_id == job_id and e.generation == record.generation]
        assert all(e == recorded for e in same_generation), f"{job_id}: events disagree with the record"
        assert recorded in events, f"{job_id}: recorded outcome never published"
    assert not set(_dlq_job_ids(stack)) & set(completed), "a completed job's message is in the DLQ"
    sns_ids = {e.event_id for e in events}
    assert all(post.event_id in sns_ids for post in posts), "a webhook POST that SNS never carried"
