"""The fleet controller with real worker processes (the local provider, the fake engine) on the embedded AWS:
a burst grows the fleet, drains the queue and shrinks it to zero with every job completed exactly once; a busy
worker removed by a lowered maximum loses no job; one controller decides at a time and a successor takes over."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from consumer.fleet.controller import Controller
from consumer.fleet.lease import ControllerLease
from consumer.fleet.policy import Decision, Observation, Policy
from consumer.fleet.providers.local import LocalProvider
from consumer.storage.job_index import JobIndex
from contracts.events import SynthesisCompleted

WORKER = [sys.executable, "-m", "consumer", "run"]


def _worker_env(stack, **extra: str) -> dict[str, str]:
    fields = {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "QUEUE_URL": stack.resources.queue_url,
        "BUCKET": stack.resources.bucket,
        "TOPIC_ARN": stack.resources.topic_arn,
        "WAIT_TIME_S": "1",
        "ENGINE": "fake",
        "FAKE_WORK_S": "0.05",
        "LOG_JSON": "true",
        "VISIBILITY_TIMEOUT_S": "30",
        "HEARTBEAT_INTERVAL_S": "5",
        "SHUTDOWN_GRACE_S": "3",
        "RETRY_BASE_DELAY_S": "0",
        "RETRY_MAX_DELAY_S": "0",
    } | extra
    return dict(os.environ) | {f"F5_WORKER_{k}": v for k, v in fields.items()}


def _job(i: int, text: str = "Hello there.") -> str:
    return json.dumps({"job_id": f"fleet-{i:04d}", "text": text, "voice": {"voice_id": "basic-en"}})


def _send(stack, count: int, start: int = 0, text: str = "Hello there.") -> None:
    for first in range(start, start + count, 10):
        entries = [{"Id": str(i), "MessageBody": _job(i, text)} for i in range(first, min(first + 10, start + count))]
        stack.clients.sqs.send_message_batch(QueueUrl=stack.resources.queue_url, Entries=entries)


def _controller(stack, provider, policy: Policy, owner: str, log: list[Decision], ttl_s: float = 5.0) -> Controller:
    lease = ControllerLease(stack.clients.s3, stack.resources.bucket, "fleet/controller.json", owner, ttl_s)

    def record(_seen: Observation, decision: Decision) -> None:
        log.append(decision)

    return Controller(
        policy,
        provider,
        sqs=stack.clients.sqs,
        queue_url=stack.resources.queue_url,
        lease=lease,
        index=JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index"),
        interval_s=0.5,
        on_decision=record,
    )


def _wait(what: str, done, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


@pytest.fixture
def provider(stack, tmp_path: Path):
    fleet = LocalProvider(
        f"t{os.getpid()}-{tmp_path.name[-6:]}", WORKER, env=_worker_env(stack), gpus=[], log_dir=tmp_path
    )
    yield fleet
    fleet.close(stop_workers=True)
    _wait("the test's workers to exit", lambda: not fleet.pods(), 30)


def test_a_burst_grows_the_fleet_drains_the_queue_and_shrinks_it_to_zero(stack, provider) -> None:
    policy = Policy(min_pods=0, max_pods=4, target_drain_s=10, fallback_rate_per_pod=1.0, cooldown_s=1,
                    empty_window_s=2, max_changes_per_minute=8)  # fmt: skip
    decisions: list[Decision] = []
    controller = _controller(stack, provider, policy, "burst", decisions)
    _send(stack, 200)
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    completed: Counter[str] = Counter()

    def drained_and_gone() -> bool:
        completed.update(e.job_id for e in stack.events(wait_s=0) if isinstance(e, SynthesisCompleted))
        return len(completed) == 200 and not provider.pods()

    try:
        _wait("200 jobs completed and the fleet back to zero", drained_and_gone, 150)
    finally:
        stop.set()
        thread.join(30)
    assert set(completed) == {f"fleet-{i:04d}" for i in range(200)}
    assert max(completed.values()) == 1  # exactly once
    assert stack.queue_counts() == (0, 0)
    changes = [d for d in decisions if d.action != "hold"]
    assert (changes[0].action, changes[0].current, changes[0].desired) == ("up", 0, 4)
    assert changes[0].needed == 20  # 200 jobs at 1 job/s per worker within 10 s
    downs = [d for d in changes if d.action == "down"]
    assert [d.desired for d in downs] == [3, 2, 1, 0]  # one worker at a time
    assert all(d.action == "up" for d in changes[: len(changes) - len(downs)])  # no flapping on the way


def test_a_busy_worker_removed_by_a_lower_maximum_loses_no_job(stack, provider, tmp_path: Path) -> None:
    slow = LocalProvider(provider.prefix, WORKER, env=_worker_env(stack, FAKE_WORK_S="8"), gpus=[], log_dir=tmp_path)
    policy = Policy(min_pods=2, max_pods=2, cooldown_s=0, empty_window_s=0)
    decisions: list[Decision] = []
    controller = _controller(stack, slow, policy, "shrink", decisions)
    controller.step()
    _wait("two workers ready", lambda: [p.state for p in slow.pods()] == ["running", "running"], 60)
    _send(stack, 2, text="A slow one.")
    _wait("both jobs started", lambda: len(stack.objects("jobs/")) == 2, 30)
    controller.policy = Policy(min_pods=0, max_pods=1, cooldown_s=0, empty_window_s=0)  # the user lowers max
    removed_at = time.monotonic()
    decision = controller.step()
    assert decision is not None and (decision.action, decision.desired) == ("down", 1)
    assert "above the ceiling" in decision.reason
    completed: Counter[str] = Counter()

    def both_done() -> bool:
        completed.update(e.job_id for e in stack.events(wait_s=0) if isinstance(e, SynthesisCompleted))
        return len(completed) == 2

    _wait("both jobs completed", both_done, 30 + 10)  # within one visibility timeout of the removal (+ margin)
    assert time.monotonic() - removed_at < 30 + 8  # the handed-back job waited for a worker, not for the timeout
    assert max(completed.values()) == 1
    assert len(slow.pods()) == 1


def test_one_controller_decides_and_a_successor_takes_over_when_it_dies(stack, provider) -> None:
    policy = Policy(min_pods=1, max_pods=1, cooldown_s=0, empty_window_s=0)
    first_log: list[Decision] = []
    second_log: list[Decision] = []
    first = _controller(stack, provider, policy, "first", first_log, ttl_s=3.0)
    second = _controller(stack, provider, policy, "second", second_log, ttl_s=3.0)
    stop = threading.Event()
    waiting = threading.Thread(target=second.run, args=(stop,), daemon=True)
    assert first.step() is not None  # takes the lease, starts the one worker
    waiting.start()
    for _ in range(6):  # the first keeps deciding; the second only waits
        time.sleep(0.5)
        assert first.step() is not None
    assert second_log == []
    died_at = time.monotonic()  # the first stops renewing (killed, paused, cut off)
    try:
        _wait("the successor's first decision", lambda: bool(second_log), 10)
    finally:
        stop.set()
        waiting.join(10)
    assert time.monotonic() - died_at >= 2.5  # not before the lease expired (3 s after the last renewal)
    assert second.state.last_change_at == first.state.last_change_at  # the policy's memory came with the lease
    assert first.step() is None  # the old holder, back, finds the lease lost and does nothing
    assert len(provider.pods()) == 1  # one worker throughout: nobody started a second
