"""Lease: the deadline is the earlier of the message's visibility and the claim; `check` refuses a write that
could land after it."""

from __future__ import annotations

import pytest

from consumer.core.errors import LeaseLost
from consumer.worker.lease import MARGIN_S, Lease


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_before_a_claim_the_deadline_is_the_messages_visibility():
    clock = Clock(100.0)
    lease = Lease(130.0, clock=clock)
    assert lease.until == 130.0
    assert lease.remaining_s() == pytest.approx(30.0)


def test_the_deadline_is_the_earlier_of_visibility_and_claim():
    lease = Lease(130.0, clock=Clock(100.0))
    lease.claimed(started=100.0, seconds=20)
    assert lease.until == 120.0  # the claim runs out first
    lease.claimed(started=100.0, seconds=60)
    assert lease.until == 130.0  # now the visibility does


def test_an_extension_and_a_renewal_move_the_deadline_from_when_their_request_started():
    clock = Clock(0.0)
    lease = Lease(30.0, clock=clock)
    lease.claimed(started=0.0, seconds=30)
    clock.now = 25.0
    lease.extended(started=24.0, seconds=30)
    assert lease.until == 30.0  # the claim still ends at 30
    lease.claimed(started=24.5, seconds=30)
    assert lease.until == 54.0  # the visibility (24 + 30) ends before the claim (54.5)
    assert lease.remaining_s() == pytest.approx(29.0)


def test_check_passes_while_more_than_the_margin_is_left():
    clock = Clock(0.0)
    lease = Lease(10.0, clock=clock)
    clock.now = 10.0 - MARGIN_S - 0.01
    lease.check("the audio")  # no exception: time enough to write


def test_check_raises_lease_lost_inside_the_margin_naming_the_write():
    clock = Clock(0.0)
    lease = Lease(10.0, clock=clock)
    clock.now = 10.0 - MARGIN_S / 2
    with pytest.raises(LeaseLost, match="too late to write the audio"):
        lease.check("the audio")


def test_check_after_a_pause_past_the_deadline_raises_with_a_negative_remainder():
    clock = Clock(0.0)
    lease = Lease(10.0, clock=clock)
    clock.now = 25.0  # e.g. the process was stopped for 15 s past the deadline
    with pytest.raises(LeaseLost, match=r"ends in -15\.0s"):
        lease.check("the record")


def test_a_custom_margin_is_honoured():
    clock = Clock(0.0)
    lease = Lease(10.0, clock=clock)
    clock.now = 5.0
    lease.check("small", margin_s=4.0)
    with pytest.raises(LeaseLost, match=r"needs 6\.0s"):
        lease.check("large", margin_s=6.0)
