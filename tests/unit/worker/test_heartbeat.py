"""Heartbeat with a fake clock: extends before expiry, respects the 12 h cap, marks the job lost on failure."""

from __future__ import annotations

import time

from consumer.worker.heartbeat import Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_beat_extends_by_the_visibility_timeout():
    calls: list[int] = []
    clock = Clock()
    hb = Heartbeat(calls.append, interval_s=30, visibility_s=120, received_at=0.0, clock=clock)
    for _ in range(3):
        clock.now += 30
        assert hb.beat()
    assert calls == [120, 120, 120] and hb.extensions == 3 and not hb.lost.is_set()


def test_extensions_never_pass_the_12_hour_cap():
    calls: list[int] = []
    clock = Clock()
    hb = Heartbeat(calls.append, interval_s=30, visibility_s=120, received_at=0.0, clock=clock)
    clock.now = 12 * 3600 - 50
    assert hb.beat() and calls[-1] == 50
    clock.now = 12 * 3600
    assert not hb.beat()
    assert hb.lost.is_set() and "12 h" in hb.lost_reason and calls == [50]


def test_transient_failures_are_retried_while_the_visibility_lasts():
    clock = Clock()
    outcomes = iter([RuntimeError("timeout"), RuntimeError("timeout"), None, RuntimeError("timeout")])
    calls: list[int] = []

    def extend(seconds: int) -> None:
        calls.append(seconds)
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    hb = Heartbeat(
        extend,
        interval_s=2,
        visibility_s=5,
        received_at=0.0,
        clock=clock,
        is_definitive=lambda e: False,
        retry_after_s=0.5,
    )
    clock.now = 2.0
    assert hb.beat() and hb.failures == 1 and not hb.lost.is_set()  # deadline 5.0: time to retry
    clock.now = 2.5
    assert hb.beat() and hb.failures == 2
    clock.now = 3.0
    assert hb.beat() and hb.extensions == 1  # deadline now 8.0
    clock.now = 7.6
    assert not hb.beat()  # 7.6 + 0.5 >= 8.0: no time left to retry
    assert hb.lost.is_set() and len(calls) == 4


def test_a_definitive_failure_marks_the_job_lost_at_once():
    clock = Clock()
    hb = Heartbeat(
        lambda s: (_ for _ in ()).throw(RuntimeError("gone")),
        interval_s=1,
        visibility_s=100,
        received_at=0.0,
        clock=clock,
        is_definitive=lambda e: "gone" in str(e),
    )
    assert not hb.beat() and hb.lost.is_set()


def test_a_failed_extension_marks_the_job_lost_and_stops_beating():
    def extend(_seconds: int) -> None:
        raise RuntimeError("ReceiptHandleIsInvalid")

    lost: list[BaseException | None] = []
    hb = Heartbeat(extend, interval_s=1, visibility_s=10, received_at=0.0, clock=Clock(), on_lost=lost.append)
    assert not hb.beat()
    assert hb.lost.is_set() and "ReceiptHandleIsInvalid" in hb.lost_reason and len(lost) == 1
    assert not hb.beat()  # no further calls once lost


def test_thread_beats_on_its_interval_and_stop_waits_for_it():
    calls: list[int] = []
    hb = Heartbeat(calls.append, interval_s=0.05, visibility_s=5, received_at=time.monotonic()).start()
    time.sleep(0.3)
    hb.stop()
    count = len(calls)
    time.sleep(0.15)
    assert 3 <= count == len(calls)


def test_the_beat_schedule_runs_on_the_injected_clock():
    """The thread's schedule reads the same clock as `beat`: a clock that runs 30 s ahead per reading makes the
    30 s beats come at once, where the real clock would hold each one back for 30 s."""

    class Racing(Clock):
        def __call__(self) -> float:
            self.now += 30.0
            return self.now

    calls: list[int] = []
    hb = Heartbeat(calls.append, interval_s=30, visibility_s=120, received_at=0.0, clock=Racing(), cap_s=10**9)
    hb.start()
    time.sleep(0.5)
    hb.stop()
    assert len(calls) >= 3
