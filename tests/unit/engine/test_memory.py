"""The out-of-memory item cap: lowered to the halves of a call that ran out of memory, doubled back after a
cool-down of successful calls, never above its limit."""

from __future__ import annotations

import threading

from consumer.engine.f5.memory import ItemCap


def test_starts_at_its_limit_and_success_there_changes_nothing():
    cap = ItemCap(limit=32, cool_down=2)
    assert cap.value == 32
    assert [cap.succeeded() for _ in range(5)] == [None] * 5
    assert cap.value == 32


def test_out_of_memory_cuts_to_the_size_of_the_halves():
    cap = ItemCap(limit=32, cool_down=4)
    assert cap.lowered(32) == 16
    assert cap.lowered(16) == 8
    assert cap.lowered(5) == 3  # halves of 5 are 3 and 2: the cap is the larger
    assert cap.lowered(8) == 3  # a bigger call failing (one cut before the cap fell) never raises the cap
    assert cap.value == 3


def test_a_single_item_that_does_not_fit_keeps_the_cap_but_restarts_the_cool_down():
    cap = ItemCap(limit=8, cool_down=3)
    cap.lowered(8)
    assert cap.value == 4
    cap.succeeded()
    cap.succeeded()
    assert cap.lowered(1) == 4
    assert [cap.succeeded(), cap.succeeded()] == [None, None]  # the count started again
    assert cap.succeeded() == 8


def test_doubles_back_after_each_cool_down_up_to_the_limit():
    cap = ItemCap(limit=12, cool_down=2)
    cap.lowered(4)
    assert cap.value == 2
    raised = [cap.succeeded() for _ in range(8)]
    assert raised == [None, 4, None, 8, None, 12, None, None]  # 16 would pass the limit: 12
    assert cap.value == 12


def test_concurrent_successes_count_each_once():
    cap = ItemCap(limit=64, cool_down=100)
    cap.lowered(2)
    threads = [threading.Thread(target=lambda: [cap.succeeded() for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cap.value == 4  # 200 successes: exactly two cool-downs of 100 (1 -> 2 -> 4)
