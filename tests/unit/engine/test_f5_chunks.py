"""A job's chunks as batch items, and out-of-memory backpressure, on the tiny random F5 checkpoint.

Three engines over the same weights: `sequential` (one item per `CFM.sample` call, one call at a time: chunk
after chunk, the path every chunk is compared with), `concurrent` (the CPU default: one item per call, two
calls at once, as upstream's thread pool runs a job's chunks) and `batched` (up to 4 items per call, the CUDA
way). Tolerance as in tests/unit/engine/test_f5_batch_equivalence.py: atol 1e-4 on mel and waveform, lengths exact.

Out-of-memory is simulated on CPU: a forward-pre-hook on the DiT raises `torch.cuda.OutOfMemoryError` for
calls the test picks (by batch size or padded length), as a GPU near its limit would inside `CFM.sample`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from consumer.core.errors import EngineError, SynthesisAborted
from consumer.engine import SynthesisJob
from consumer.engine.f5 import F5Engine, Rendering, chunk_seed
from consumer.engine.model_spec import load_model_dir
from contracts.requests import SynthesisOptions
from tests.unit.engine.test_f5_batch_equivalence import assert_same

OPTIONS = SynthesisOptions(nfe_steps=4)
LONG = (
    "I don't really care what you call me. I've been a silent spectator, watching species evolve, empires "
    "rise and fall. But always remember, I am mighty and enduring. Respect me and I'll nurture you; ignore "
    "me and you shall face the consequences."
)
MANY = " ".join([LONG] * 2)  # 3 chunks: more than the two calls that run at once
SHORT = ["Hi there.", "I don't really care what you call me.", "The quick brown fox jumps over the dog.", "One two."]


def make_engine(model_dir: Path, **kwargs) -> F5Engine:
    engine = F5Engine(load_model_dir(model_dir), device="cpu", **kwargs)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def engines(tiny_model_path: Path) -> Iterator[dict[str, F5Engine]]:
    made = {
        "sequential": make_engine(tiny_model_path, max_batch_items=1, concurrent_calls=1),
        "concurrent": make_engine(tiny_model_path),
        "batched": make_engine(tiny_model_path, max_batch_items=4, concurrent_calls=1),
    }
    yield made
    for engine in made.values():
        engine.close()


@pytest.fixture(scope="module")
def long_job(en_reference) -> SynthesisJob:
    return SynthesisJob(LONG, en_reference, OPTIONS, seed=3)


@pytest.fixture(scope="module")
def chunk_by_chunk(engines, long_job) -> Rendering:
    return engines["sequential"].render(long_job)


def sample_sizes(engine: F5Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Items per `CFM.sample` call, in the order the calls started."""
    sizes: list[int] = []
    sampler = engine._runner.sampler
    original = sampler.sample

    def spy(group):
        sizes.append(len(group))
        return original(group)

    monkeypatch.setattr(sampler, "sample", spy)
    return sizes


def test_defaults_follow_the_device(engines):
    assert (engines["concurrent"].max_batch_items, engines["concurrent"].concurrent_calls) == (1, 2)
    assert engines["batched"].batch_item_cap == 4


@pytest.mark.parametrize("name", ["concurrent", "batched"])
def test_multi_chunk_job_equals_chunk_by_chunk_and_is_reproducible(
    engines, name, long_job, chunk_by_chunk, monkeypatch
):
    sizes = sample_sizes(engines[name], monkeypatch)
    first = engines[name].render(long_job)
    second = engines[name].render(long_job)
    assert len(first.chunks) == 2 and first.chunk_seeds == (3, chunk_seed(3, 1))
    # the batched engine runs both chunks in one call, the concurrent one each chunk in its own
    assert sizes == ([2, 2] if name == "batched" else [1, 1, 1, 1])
    assert_same(first, chunk_by_chunk)
    assert np.array_equal(first.samples, second.samples) and np.array_equal(first.mel, second.mel)


@pytest.mark.parametrize("name", ["concurrent", "batched"])
def test_single_chunk_job_is_the_single_path_bit_for_bit(engines, name, en_reference):
    job = SynthesisJob(SHORT[1], en_reference, OPTIONS, seed=9)
    expected = engines["sequential"].render(job)
    out = engines[name].render(job)
    assert np.array_equal(out.samples, expected.samples) and np.array_equal(out.mel, expected.mel)


def test_concurrent_chunks_report_progress_and_leave_the_global_rng_alone(engines, en_reference):
    seen: list[tuple[int, int]] = []
    job = SynthesisJob(MANY, en_reference, OPTIONS, seed=4, on_progress=lambda i, n: seen.append((i, n)))
    before = torch.random.get_rng_state()
    out = engines["concurrent"].render(job)
    n = len(out.chunks)
    assert n == 3 and torch.equal(before, torch.random.get_rng_state())
    assert seen[0] == (0, n) and seen[-1] == (n, n) and all(total == n for _, total in seen)
    assert [i for i, _ in seen] == sorted(i for i, _ in seen) and len(seen) == n + 1  # one per call finished
    assert_same(out, engines["sequential"].render(SynthesisJob(MANY, en_reference, OPTIONS, seed=4)))


def test_abort_stops_concurrent_chunks_and_leaves_the_engine_usable(engines, long_job, chunk_by_chunk):
    checks: list[int] = []

    def abort_after_a_few_checks() -> bool:
        checks.append(1)
        return len(checks) > 3

    aborted = SynthesisJob(LONG, long_job.reference, OPTIONS, seed=3, should_abort=abort_after_a_few_checks)
    with pytest.raises(SynthesisAborted):
        engines["concurrent"].render(aborted)
    assert len(checks) < 2 * (OPTIONS.nfe_steps + 2)  # stopped before both chunks ran their steps
    assert_same(engines["concurrent"].render(long_job), chunk_by_chunk)  # no noise lock or text cache left


# --- out-of-memory backpressure -------------------------------------------------------------------------------
@pytest.fixture
def oom_engine(tiny_model_path: Path) -> Iterator[F5Engine]:
    engine = make_engine(tiny_model_path, max_batch_items=4, concurrent_calls=1, oom_cool_down_calls=4)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def short_jobs(en_reference) -> list[SynthesisJob]:
    return [SynthesisJob(text, en_reference, OPTIONS, seed=100 + i) for i, text in enumerate(SHORT)]


@pytest.fixture(scope="module")
def short_singles(engines, short_jobs) -> list[Rendering]:
    return [engines["sequential"].render(job) for job in short_jobs]


def out_of_memory_when(engine: F5Engine, predicate: Callable[[torch.Tensor], bool], every: int = 1):
    """Raises CUDA's out-of-memory at every `every`-th DiT forward whose input `x` (batch, frames, mels)
    matches; every=2 lets a call's first ODE step run (and cache its text) before it fails."""
    matched = [0]

    def hook(_module, _args, kwargs):
        if predicate(kwargs["x"]):
            matched[0] += 1
            if matched[0] % every == 0:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    return engine._model.transformer.register_forward_pre_hook(hook, with_kwargs=True)


def test_out_of_memory_halves_the_batch_lowers_the_cap_then_recovers(
    oom_engine, short_jobs, short_singles, monkeypatch
):
    sizes = sample_sizes(oom_engine, monkeypatch)
    handle = out_of_memory_when(oom_engine, lambda x: x.shape[0] > 2, every=2)
    with capture_logs() as logs:
        out = oom_engine.render_batch(short_jobs)
    handle.remove()
    assert sizes == [4, 2, 2]  # the call of 4 failed at its second step; its halves went through
    assert oom_engine.batch_item_cap == 2
    assert [(e["event"], e["items"], e["cap"]) for e in logs if e["event"] == "batch_out_of_memory"] == [
        ("batch_out_of_memory", 4, 2)
    ]
    for result, single in zip(out, short_singles, strict=True):
        assert isinstance(result, Rendering)
        assert_same(result, single)

    # Two more successful calls end the cool-down of 4: the cap doubles back to 4, and later calls use it.
    with capture_logs() as logs:
        again = oom_engine.render_batch(short_jobs)
    assert sizes[3:] == [2, 2] and oom_engine.batch_item_cap == 4
    assert [e["cap"] for e in logs if e["event"] == "batch_item_cap_raised"] == [4]
    oom_engine.render_batch(short_jobs)
    assert sizes[5:] == [4]
    for result, single in zip(again, short_singles, strict=True):
        assert isinstance(result, Rendering)
        assert_same(result, single)


def test_a_chunk_that_does_not_fit_alone_fails_its_job_only(oom_engine, short_jobs, short_singles):
    longest = max(range(len(short_jobs)), key=lambda i: short_singles[i].mel.shape[1])
    reference_frames = oom_engine._prompt(short_jobs[0].reference).n_samples // oom_engine.spec.hop_length
    frames = reference_frames + short_singles[longest].mel.shape[1]  # a call holding the longest is this long
    handle = out_of_memory_when(oom_engine, lambda x: x.shape[1] >= frames)
    try:
        out = oom_engine.render_batch(short_jobs)
    finally:
        handle.remove()
    assert isinstance(out[longest], EngineError) and "out of memory" in str(out[longest])
    assert oom_engine.batch_item_cap == 1
    for i, (result, single) in enumerate(zip(out, short_singles, strict=True)):
        if i != longest:
            assert isinstance(result, Rendering)
            assert_same(result, single)


def test_a_lone_chunk_out_of_memory_fails_its_job_and_keeps_the_cap(oom_engine, short_jobs, short_singles):
    handle = out_of_memory_when(oom_engine, lambda x: True)
    try:
        with pytest.raises(EngineError, match="out of memory"):
            oom_engine.render(short_jobs[0])
    finally:
        handle.remove()
    assert oom_engine.batch_item_cap == 4  # one item that does not fit says nothing about batch sizes
    assert_same(oom_engine.render(short_jobs[0]), short_singles[0])


# --- the stream: each chunk a call of one item through the same runner -------------------------------------------
def test_the_stream_runs_each_chunk_as_a_call_of_one_item(engines, long_job, chunk_by_chunk, monkeypatch):
    engine = engines["batched"]  # would run both chunks in one call if they came as a batch
    sizes = sample_sizes(engine, monkeypatch)
    pieces = list(engine.synthesize_stream(long_job))
    assert sizes == [1] * len(chunk_by_chunk.chunks)
    np.testing.assert_allclose(np.concatenate(pieces), np.clip(chunk_by_chunk.samples, -1, 1), rtol=0, atol=1e-4)


def test_a_streamed_chunk_out_of_memory_fails_the_stream_and_keeps_the_cap(oom_engine, long_job):
    handle = out_of_memory_when(oom_engine, lambda x: True)
    try:
        with capture_logs() as logs, pytest.raises(EngineError, match="out of memory"):
            list(oom_engine.synthesize_stream(long_job))
    finally:
        handle.remove()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["chunk_out_of_memory"]
    assert oom_engine.batch_item_cap == 4
    assert len(list(oom_engine.synthesize_stream(long_job))) == len(oom_engine.render(long_job).chunks) + 1


def test_an_aborted_stream_stops_between_ode_steps(engines, long_job):
    checks: list[int] = []

    def abort_at_the_third_check() -> bool:
        checks.append(1)
        return len(checks) >= 3

    job = SynthesisJob(LONG, long_job.reference, OPTIONS, seed=3, should_abort=abort_at_the_third_check)
    stream = engines["sequential"].synthesize_stream(job)
    with pytest.raises(SynthesisAborted):
        next(stream)
    assert len(checks) == 3  # at the call's start, then before each ODE step until it fired
