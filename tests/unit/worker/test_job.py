"""Settled exits: no heartbeat beat may land after a job's exit has begun, and a renewal can never make the
main thread complete with a stale claim. Each test makes the race window wide on purpose (a slow extension,
a completion that waits for a renewal), so the race, if present, is hit on every run."""

from __future__ import annotations

import json
import threading
import time

import pytest

from consumer.core.errors import EngineError
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.engine.fake import FakeEngine
from consumer.worker.job import Outcome, process_message
from contracts.events import SynthesisCompleted
from tests.scenarios.test_worker_flow import receive_one

HEARTBEAT_S = 0.01
EXTENSION_TAKES_S = 0.3  # each extension is slow: a beat is in flight ~97 % of the time


def request(job_id: str) -> str:
    return json.dumps({"job_id": job_id, "text": "Hello from a test.", "voice": {"voice_id": "basic-en"}})


class FailingEngine(FakeEngine):
    """Runs for a while (so the heartbeat beats), then fails with a retryable engine error."""

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        time.sleep(0.4)
        raise EngineError("device hiccup")


class VisibilityLog:
    """Wraps the queue's visibility changes (heartbeat extensions, releases): records (start, end, seconds) of
    every call; extensions are slow."""

    def __init__(self, queue, extension_s: int) -> None:
        self.calls: list[tuple[float, float, int]] = []
        self._real = {"extend": queue.extend_visibility, "change": queue.change_visibility}
        self._extension_s = extension_s
        self._lock = threading.Lock()
        queue.extend_visibility = lambda receipt, seconds: self._call("extend", receipt, seconds)
        queue.change_visibility = lambda receipt, seconds: self._call("change", receipt, seconds)

    def _call(self, kind: str, receipt_handle: str, seconds: int) -> None:
        start = time.monotonic()
        if seconds == self._extension_s:
            time.sleep(EXTENSION_TAKES_S)
        self._real[kind](receipt_handle, seconds)
        with self._lock:
            self.calls.append((start, time.monotonic(), seconds))


@pytest.mark.parametrize("exit_kind", [Outcome.RETRY, Outcome.DEFERRED, Outcome.RETURNED])
def test_no_heartbeat_beat_lands_after_the_message_is_released(stack, make_worker, exit_kind):
    visibility = 30
    engine = FailingEngine() if exit_kind is Outcome.RETRY else FakeEngine(work_s=5.0)
    _, services = make_worker(engine, visibility_timeout_s=visibility, heartbeat_interval_s=HEARTBEAT_S)
    if exit_kind is Outcome.DEFERRED:
        services.jobs.claim("exit-1", "other-worker", ttl_s=7)
        services.jobs.claim = _slowly(services.jobs.claim, 0.4)  # let the heartbeat get going first
    stack.send(request("exit-1"))
    log = VisibilityLog(services.queue, extension_s=visibility)
    shutdown = threading.Event()
    if exit_kind is Outcome.RETURNED:
        threading.Timer(0.4, shutdown.set).start()

    assert process_message(receive_one(stack, visibility), services, shutdown) == exit_kind

    releases = [call for call in log.calls if call[2] != visibility]
    extensions = [call for call in log.calls if call[2] == visibility]
    assert len(releases) == 1 and extensions, log.calls
    release_start = releases[0][0]
    assert all(end <= release_start for _, end, _ in extensions), "a heartbeat extension landed after the release"
    time.sleep(3 * EXTENSION_TAKES_S)
    assert log.calls[-1] == releases[0], "the message's last visibility change must be the release"


def _slowly(fn, delay_s: float):
    def wrapper(*args, **kwargs):
        time.sleep(delay_s)
        return fn(*args, **kwargs)

    return wrapper


def test_a_renewal_between_synthesis_and_completion_still_ends_done(stack, make_worker):
    """The completion waits (up to 1 s) for a heartbeat renewal before writing. If the heartbeat could renew
    the claim under the main thread, the completion would write with a stale ETag, meet 412 and abandon a
    finished job; with the claim owned under a lock, no renewal can slip in and the job ends DONE."""
    _, services = make_worker(FakeEngine(), heartbeat_interval_s=HEARTBEAT_S)
    renewals = threading.Semaphore(0)
    real_renew, real_complete = services.jobs.renew, services.jobs.complete

    def counting_renew(claim, ttl_s):
        renewed = real_renew(claim, ttl_s)
        renewals.release()
        return renewed

    def complete_after_a_renewal(claim, event, webhook_url=None, stream=None):
        while renewals.acquire(blocking=False):  # forget renewals from before the completion began
            pass
        renewals.acquire(timeout=1.0)
        return real_complete(claim, event, webhook_url, stream)

    services.jobs.renew = counting_renew
    services.jobs.complete = complete_after_a_renewal
    stack.send(request("renew-1"))

    assert process_message(receive_one(stack), services, threading.Event()) == Outcome.DONE
    (event,) = stack.events()
    assert isinstance(event, SynthesisCompleted) and event.job_id == "renew-1"
    assert stack.queue_counts() == (0, 0)
    assert json.loads(stack.get("jobs/renew-1.json"))["status"] == "COMPLETED"
