"""`run_worker`: the engine it loads is closed when the worker stops (its device memory freed)."""

from __future__ import annotations

from consumer.engine.fake import FakeEngine
from consumer.worker import process


class ClosingEngine(FakeEngine):
    closed = 0

    def close(self) -> None:
        ClosingEngine.closed += 1
        super().close()


def test_the_engine_the_worker_loaded_is_closed_when_it_stops(stack, monkeypatch):
    monkeypatch.setattr(process, "build_engine", lambda settings: ClosingEngine())
    assert process.run_worker(stack.settings(warm_up=False), checked=True) == 0  # burst: the queue is empty
    assert ClosingEngine.closed == 1
