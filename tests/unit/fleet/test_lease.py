"""One controller at a time: the S3 lease is taken with a conditional write, renewed by its holder, taken over
once it has expired, and a holder that lost it knows at its next renewal. What the policy remembers travels with
it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from consumer.fleet.lease import ControllerLease

KEY = "fleet/controller.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _lease(stack, owner: str, clock: Clock, ttl_s: float = 30.0) -> ControllerLease:
    return ControllerLease(stack.clients.s3, stack.resources.bucket, KEY, owner, ttl_s, clock)


def test_one_holder_at_a_time_and_a_takeover_after_expiry(stack) -> None:
    clock = Clock()
    first, second = _lease(stack, "a", clock), _lease(stack, "b", clock)
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    assert first.renew({"policy": {"last_change_at": 990.0}, "rate": 0.25})
    clock.now += 29
    assert not second.try_acquire()  # renewed at 1000: valid until 1030
    clock.now += 2
    assert second.try_acquire()  # the first stopped renewing: expired
    assert second.memory == {"policy": {"last_change_at": 990.0}, "rate": 0.25}  # the successor continues
    assert not first.renew({"policy": {}}) and not first.held  # the old holder learns it lost the lease


def test_racing_for_a_free_lease_gets_one_winner(stack) -> None:
    clock = Clock()
    racers = [_lease(stack, f"r{i}", clock) for i in range(6)]
    start = threading.Barrier(len(racers))

    def race(lease: ControllerLease) -> bool:
        start.wait()
        return lease.try_acquire()

    with ThreadPoolExecutor(len(racers)) as pool:
        won = list(pool.map(race, racers))
    assert won.count(True) == 1 and sum(r.held for r in racers) == 1


def test_a_released_lease_is_free_at_once(stack) -> None:
    clock = Clock()
    first, second = _lease(stack, "a", clock), _lease(stack, "b", clock)
    assert first.try_acquire()
    first.release()
    assert second.try_acquire()
