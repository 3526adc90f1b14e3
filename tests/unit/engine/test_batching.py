"""BatchingEngine over a fake batch engine (no torch): concurrency, windows, caps, grouping, per-item results
and exceptions, abort while queued, shutdown."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from consumer.core.errors import EngineError, SynthesisAborted, TextNotRepresentable
from consumer.engine import Engine, Reference, SynthesisJob, SynthesizedAudio
from consumer.engine.batching import BatchingEngine, estimate_s
from contracts.requests import SynthesisOptions

REFERENCE = Reference(np.zeros(3 * 24000, dtype=np.float32), 24000, "Thirty bytes of transcript ok.")
SHORT = "Short one."
LONG = "A much longer text that takes many more seconds to speak than the short one does, surely."


class FakeBatchEngine:
    """Records each `synthesize_batch` call; texts starting with "fail" get their own exception, aborted
    jobs get SynthesisAborted; `gate` (if given) holds every call until set."""

    model_id = "fake-batch"
    device = "cpu"
    sample_rate = 24000

    def __init__(self, gate: threading.Event | None = None, explode: bool = False) -> None:
        self.calls: list[list[SynthesisJob]] = []
        self.gate = gate
        self.explode = explode
        self.loaded = self.warmed = self.closed = False

    def load(self) -> None:
        self.loaded = True

    def warm_up(self) -> None:
        self.warmed = True

    def close(self) -> None:
        self.closed = True

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        result = self.synthesize_batch([job])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def synthesize_batch(self, jobs: Sequence[SynthesisJob]) -> list[SynthesizedAudio | BaseException]:
        self.calls.append(list(jobs))
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.explode:
            raise RuntimeError("device on fire")
        out: list[SynthesizedAudio | BaseException] = []
        for job in jobs:
            if job.text.startswith("fail"):
                out.append(TextNotRepresentable(f"cannot say {job.text!r}"))
            elif job.should_abort():
                out.append(SynthesisAborted("aborted in the batch"))
            else:
                samples = np.full(len(job.text), job.seed / 1000, dtype=np.float32)
                out.append(SynthesizedAudio(samples=samples, sample_rate=self.sample_rate, seed=job.seed))
        return out

    def sizes(self) -> list[int]:
        return [len(c) for c in self.calls]


def job(text: str = SHORT, seed: int = 1, nfe: int = 8, abort: Callable[[], bool] = lambda: False) -> SynthesisJob:
    return SynthesisJob(text, REFERENCE, SynthesisOptions(nfe_steps=nfe), seed, should_abort=abort)


def run_concurrently(engine: BatchingEngine, jobs: list[SynthesisJob]) -> list[SynthesizedAudio | BaseException]:
    """Each job from its own thread, as the worker's lifecycle threads call the engine."""
    results: list[SynthesizedAudio | BaseException | None] = [None] * len(jobs)

    def call(i: int) -> None:
        try:
            results[i] = engine.synthesize(jobs[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def make_engine():
    engines: list[BatchingEngine] = []

    def factory(inner: FakeBatchEngine | None = None, **kwargs) -> tuple[BatchingEngine, FakeBatchEngine]:
        inner = inner or FakeBatchEngine()
        engine = BatchingEngine(inner, **kwargs)
        engines.append(engine)
        return engine, inner

    yield factory
    for engine in engines:
        engine.close()


def test_is_an_engine_and_delegates_lifecycle(make_engine):
    engine, inner = make_engine()
    assert isinstance(engine, Engine)
    assert (engine.model_id, engine.device, engine.sample_rate) == ("fake-batch", "cpu", 24000)
    engine.load()
    engine.warm_up()
    assert inner.loaded and inner.warmed
    engine.close()
    assert inner.closed
    with pytest.raises(EngineError, match="closed"):
        engine.synthesize(job())


def test_concurrent_callers_share_one_call_as_soon_as_max_batch_wait(make_engine):
    engine, inner = make_engine(max_batch=4, window_s=10.0)  # a full batch must not wait for the window
    jobs = [job(f"Text number {i}.", seed=100 + i) for i in range(4)]
    started = time.monotonic()
    results = run_concurrently(engine, jobs)
    assert time.monotonic() - started < 5
    assert inner.sizes() == [4] and engine.batch_sizes == Counter({4: 1})
    for j, r in zip(jobs, results, strict=True):  # each caller got its own job's audio
        assert isinstance(r, SynthesizedAudio) and r.seed == j.seed and len(r.samples) == len(j.text)


def test_a_partial_batch_leaves_after_the_window(make_engine):
    engine, inner = make_engine(max_batch=4, window_s=0.3)
    started = time.monotonic()
    results = run_concurrently(engine, [job(seed=1), job(seed=2)])
    elapsed = time.monotonic() - started
    assert inner.sizes() == [2] and 0.25 <= elapsed < 5
    assert [r.seed for r in results] == [1, 2]


def test_no_window_means_no_waiting(make_engine):
    engine, inner = make_engine(max_batch=4, window_s=0.0)
    started = time.monotonic()
    assert engine.synthesize(job(seed=9)).seed == 9
    assert time.monotonic() - started < 1 and inner.sizes() == [1]


def test_max_batch_caps_every_call(make_engine):
    gate = threading.Event()
    engine, inner = make_engine(FakeBatchEngine(gate), max_batch=2, window_s=0.01)
    first = threading.Thread(target=engine.synthesize, args=(job(seed=0),))
    first.start()
    wait_until(lambda: inner.sizes() == [1])  # the dispatcher is busy; the next five queue up
    queued = [job(seed=s) for s in range(1, 6)]
    threads = [threading.Thread(target=engine.synthesize, args=(j,)) for j in queued]
    for t in threads:
        t.start()
    wait_until(lambda: engine.queued == 5)
    gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert inner.sizes() == [1, 2, 2, 1]
    assert [j.seed for call in inner.calls for j in call] == [0, 1, 2, 3, 4, 5]  # oldest first


def test_only_compatible_options_share_a_call(make_engine):
    engine, inner = make_engine(max_batch=4, window_s=0.3)
    jobs = [job(seed=1, nfe=8), job(seed=2, nfe=16), job(seed=3, nfe=8), job(seed=4, nfe=16)]
    results = run_concurrently(engine, jobs)
    assert sorted(inner.sizes()) == [2, 2]
    for call in inner.calls:
        assert len({(j.options.nfe_steps, j.options.cfg_strength, j.options.sway_sampling_coef) for j in call}) == 1
    assert [r.seed for r in results] == [1, 2, 3, 4]


def test_lengths_that_differ_a_lot_are_split(make_engine):
    assert estimate_s(job(LONG)) > 2 * estimate_s(job(SHORT))
    engine, inner = make_engine(max_batch=4, window_s=0.3, max_length_ratio=2.0)
    results = run_concurrently(engine, [job(SHORT, 1), job(LONG, 2), job(SHORT, 3), job(LONG, 4)])
    assert engine.batch_sizes == Counter({2: 2})
    assert [{j.text for j in call} for call in inner.calls] == [{SHORT}, {LONG}]  # shortest group first
    assert [r.seed for r in results] == [1, 2, 3, 4]


def test_each_caller_gets_its_own_exception(make_engine):
    engine, _ = make_engine(max_batch=3, window_s=1.0)
    results = run_concurrently(engine, [job(seed=1), job("fail here", seed=2), job(seed=3)])
    assert isinstance(results[0], SynthesizedAudio) and isinstance(results[2], SynthesizedAudio)
    assert isinstance(results[1], TextNotRepresentable) and "fail here" in str(results[1])


def test_a_failed_call_fails_each_of_its_callers(make_engine):
    engine, _ = make_engine(FakeBatchEngine(explode=True), max_batch=2, window_s=1.0)
    results = run_concurrently(engine, [job(seed=1), job(seed=2)])
    assert all(isinstance(r, RuntimeError) and "on fire" in str(r) for r in results)


def test_a_job_aborted_while_queued_leaves_at_once_and_never_runs(make_engine):
    gate = threading.Event()
    engine, inner = make_engine(FakeBatchEngine(gate), max_batch=4, window_s=0.01, abort_poll_s=0.01)
    blocker = threading.Thread(target=engine.synthesize, args=(job(seed=0),))
    blocker.start()
    wait_until(lambda: inner.sizes() == [1])
    flag = threading.Event()
    outcome: list[BaseException | SynthesizedAudio] = []

    def queued_caller() -> None:
        try:
            outcome.append(engine.synthesize(job(seed=7, abort=flag.is_set)))
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=queued_caller)
    caller.start()
    wait_until(lambda: engine.queued == 1)
    flag.set()
    caller.join(5)  # leaves while the dispatcher is still blocked
    assert outcome and isinstance(outcome[0], SynthesisAborted) and engine.queued == 0
    gate.set()
    blocker.join(5)
    time.sleep(0.05)
    assert [j.seed for call in inner.calls for j in call] == [0]


def test_abort_inside_a_running_batch_is_that_items_alone(make_engine):
    gate = threading.Event()
    engine, inner = make_engine(FakeBatchEngine(gate), max_batch=2, window_s=1.0, abort_poll_s=0.01)
    flag = threading.Event()
    jobs = [job(seed=1, abort=flag.is_set), job(seed=2)]
    done: list[SynthesizedAudio | BaseException] = []
    runner = threading.Thread(target=lambda: done.extend(run_concurrently(engine, jobs)))
    runner.start()
    wait_until(lambda: inner.sizes() == [2])
    flag.set()  # the job is in the running batch: its caller waits for the engine's answer for it
    time.sleep(0.05)
    gate.set()
    runner.join(10)
    assert isinstance(done[0], SynthesisAborted) and "in the batch" in str(done[0])
    assert isinstance(done[1], SynthesizedAudio) and done[1].seed == 2


def test_close_fails_queued_jobs_and_stops_the_dispatcher(make_engine):
    gate = threading.Event()
    engine, inner = make_engine(FakeBatchEngine(gate), max_batch=4, window_s=0.01)
    results: list[SynthesizedAudio | BaseException] = []

    def caller(seed: int) -> None:
        try:
            results.append(engine.synthesize(job(seed=seed)))
        except BaseException as exc:
            results.append(exc)

    running = threading.Thread(target=caller, args=(1,))
    running.start()
    wait_until(lambda: inner.sizes() == [1])
    waiting = threading.Thread(target=caller, args=(2,))
    waiting.start()
    wait_until(lambda: engine.queued == 1)
    closer = threading.Thread(target=engine.close)
    closer.start()
    time.sleep(0.05)
    gate.set()  # the batch in progress finishes; the queued job is failed, not run
    for t in (closer, running, waiting):
        t.join(5)
    assert sorted(type(r).__name__ for r in results) == ["EngineError", "SynthesizedAudio"]
    assert inner.closed and inner.sizes() == [1]
    assert not any(t.name == "batch-dispatcher" and t.is_alive() for t in threading.enumerate())


def test_settings_require_enough_messages_in_flight_for_a_batch():
    from consumer.core.errors import ConfigurationError
    from consumer.core.settings import Settings, load_settings

    with pytest.raises(ConfigurationError, match="F5_WORKER_MAX_IN_FLIGHT"):
        load_settings(max_in_flight=2, batch_max_size=4)
    settings = Settings(max_in_flight=4, batch_max_size=4, batch_window_ms=5)
    assert (settings.batch_max_size, settings.batch_window_ms) == (4, 5.0)
    assert Settings().batch_max_size == 1  # off by default
