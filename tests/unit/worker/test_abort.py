"""AbortCheck: the causes to stop synthesis, in order (cancel, lost, lease, shutdown, deadline), and the first
cause found is the one kept."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from consumer.aws.queue import Queue
from consumer.core.settings import Settings
from consumer.storage.jobs import JobStore
from consumer.worker.abort import Abort, AbortCause, AbortCheck
from consumer.worker.held_claim import HeldClaim
from consumer.worker.message import ReceivedMessage
from consumer.worker.progress import RealTimeFactor

VISIBILITY_S = 60
FAR = float("inf")


def _held(received_ago_s: float = 0.0) -> HeldClaim:
    """A hold whose queue and store are never called: the check reads only its flags and its lease."""
    now = datetime.now(UTC)
    message = ReceivedMessage("m-1", "r-1", "{}", 1, now, now, received_monotonic=time.monotonic() - received_ago_s)
    settings = Settings(visibility_timeout_s=VISIBILITY_S)
    return HeldClaim(message, settings, Queue(None, "unused"), JobStore(None, "unused", "jobs"), RealTimeFactor())


def _check(held: HeldClaim, shutdown: threading.Event | None = None, deadline: float = FAR) -> AbortCheck:
    return AbortCheck(held, shutdown or threading.Event(), lambda: deadline)


def test_nothing_to_stop_for_and_nothing_latched():
    check = _check(_held())
    assert check() is False
    assert check.cause is None and check.reason() is None


def test_each_cause_alone():
    cancelled = _held()
    cancelled.cancelled.set()
    assert _check(cancelled).reason() == AbortCause.CANCELLED

    lost = _held()
    lost.heartbeat.mark_lost("taken over")
    assert _check(lost).reason() == AbortCause.LOST

    lapsed = _held(received_ago_s=VISIBILITY_S + 1)
    assert _check(lapsed).reason() == AbortCause.LEASE

    shutdown = Abort()
    shutdown.set()
    assert _check(_held(), shutdown).reason() == AbortCause.SHUTDOWN

    assert _check(_held(), deadline=time.monotonic() - 1).reason() == AbortCause.DEADLINE


def test_a_lost_job_is_lost_even_when_a_cancel_was_seen():
    held = _held(received_ago_s=VISIBILITY_S + 1)
    held.cancelled.set()
    held.heartbeat.mark_lost("taken over")
    assert _check(held).reason() == AbortCause.LOST  # another owner has it: no cancellation to record


def test_the_causes_come_in_order():
    shutdown = threading.Event()
    shutdown.set()
    held = _held(received_ago_s=VISIBILITY_S + 1)
    held.cancelled.set()
    past = time.monotonic() - 1
    assert _check(held, shutdown, past).reason() == AbortCause.CANCELLED  # before lease, shutdown, deadline

    lapsed = _held(received_ago_s=VISIBILITY_S + 1)
    assert _check(lapsed, shutdown, past).reason() == AbortCause.LEASE  # before shutdown and deadline

    assert _check(_held(), shutdown, past).reason() == AbortCause.SHUTDOWN  # before the deadline


def test_the_first_cause_is_latched():
    held = _held()
    shutdown = threading.Event()
    check = _check(held, shutdown)
    assert check() is False
    shutdown.set()
    assert check() is True and check.cause == AbortCause.SHUTDOWN
    held.cancelled.set()  # a cancel seen later does not change why the work stopped
    assert check() is True
    assert check.cause == AbortCause.SHUTDOWN
    assert check.reason() == AbortCause.CANCELLED  # what a fresh look would say


def test_abort_is_an_event_with_a_hidden_time():
    abort = Abort()
    assert not abort.is_set() and abort.hidden_s == 0
    abort.hidden_s = 20
    abort.set()
    assert abort.is_set() and Abort.hidden_s == 0  # set per instance
