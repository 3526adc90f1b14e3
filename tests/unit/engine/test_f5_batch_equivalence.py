"""Batched synthesis equals single synthesis: `F5Engine.render_batch` with up to 4 items per `CFM.sample` call
against `F5Engine.render` (itself equal to upstream's `infer_batch_process`) on the tiny random checkpoint, and a
worker that batches messages.

Tolerance: atol 1e-4 on the generated mel (log-mel values, magnitude up to ~11.5) and on the waveform
(|x| up to ~0.5). Both paths run the same upstream ops on the same inputs and the same per-item noise; only
kernels differ (SDPA with a padding mask instead of none, GEMMs over a larger batch), which reorders float32
reductions. Measured on CPU (4 and 8 steps): max difference <= 5e-6 (mel) and 5e-7 (audio), 20x below the
tolerance. Real divergences measured far above it: padding seen by attention (upstream's default, no mask)
7e-3..8e-3 on the mel of the shorter item, 70x the tolerance (a test below keeps that true); other noise
(a wrong seed or item order) O(1). Lengths must match exactly, which catches a wrong `lens`, duration or trim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from consumer.core.errors import SynthesisAborted
from consumer.core.settings import Settings
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.engine.batching import BatchingEngine
from consumer.engine.f5 import F5Engine
from consumer.engine.factory import build_engine
from consumer.engine.model_spec import load_model_dir
from contracts.events import SynthesisCompleted
from contracts.requests import SynthesisOptions

ATOL = 1e-4
OPTIONS = SynthesisOptions(nfe_steps=4, cfg_strength=2.0, sway_sampling_coef=-1.0)
LONG = (
    "I don't really care what you call me. I've been a silent spectator, watching species evolve, empires "
    "rise and fall. But always remember, I am mighty and enduring. Respect me and I'll nurture you; ignore "
    "me and you shall face the consequences."
)
TEXTS = ["Hi there.", "I don't really care what you call me.", LONG, "The quick brown fox jumps over the dog."]


@pytest.fixture(scope="module")
def jobs(en_reference) -> list[SynthesisJob]:
    return [SynthesisJob(text, en_reference, OPTIONS, seed=1000 + 17 * i) for i, text in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def singles(tiny_engine, jobs) -> list[Any]:
    return [tiny_engine.render(job) for job in jobs]


@pytest.fixture(scope="module")
def batched_engine(tiny_model_path: Path) -> Iterator[F5Engine]:
    """Up to 4 items per `CFM.sample` call, one call at a time: the CUDA way (on CPU the engine defaults to one
    item per call, two calls at once)."""
    engine = F5Engine(load_model_dir(tiny_model_path), device="cpu", max_batch_items=4, concurrent_calls=1)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture
def sample_calls(batched_engine, monkeypatch) -> list[list[tuple[int, int]]]:
    """(job, chunk) of the items of each `CFM.sample` call."""
    calls: list[list[tuple[int, int]]] = []
    sampler = batched_engine._runner.sampler
    original = sampler.sample

    def spy(group):
        calls.append([(it.job, it.chunk) for it in group])
        return original(group)

    monkeypatch.setattr(sampler, "sample", spy)
    return calls


def assert_same(batched: Any, single: Any) -> None:
    assert batched.chunks == single.chunks and batched.chunk_seeds == single.chunk_seeds
    assert batched.samples.shape == single.samples.shape and batched.mel.shape == single.mel.shape
    np.testing.assert_allclose(batched.mel, single.mel, rtol=0, atol=ATOL)
    np.testing.assert_allclose(batched.samples, single.samples, rtol=0, atol=ATOL)


def test_batched_items_equal_their_single_runs(batched_engine, jobs, singles, sample_calls):
    assert len(singles[2].chunks) >= 2 and len({len(s.samples) for s in singles}) == 4
    batched = batched_engine.render_batch(jobs)
    # 5 items (the long job has 2 chunks), at most 4 per call, sorted by length: one call of 4 items
    # mixing messages, including a chunk of the multi-chunk job; the longest item runs alone.
    assert [len(c) for c in sample_calls] == [4, 1] and any(job == 2 for job, _ in sample_calls[0])
    for b, s in zip(batched, singles, strict=True):
        assert_same(b, s)


def test_one_bad_or_aborted_job_leaves_the_others_alone(batched_engine, jobs, singles, en_reference):
    from consumer.core.errors import InvalidRequest

    aborted = SynthesisJob("Stop me, please.", en_reference, OPTIONS, seed=5, should_abort=lambda: True)
    blank = SynthesisJob("   ", en_reference, OPTIONS, seed=6)
    out = batched_engine.synthesize_batch([jobs[0], aborted, blank, jobs[1]])
    assert isinstance(out[1], SynthesisAborted) and isinstance(out[2], InvalidRequest)
    for result, job, single in ((out[0], jobs[0], singles[0]), (out[3], jobs[1], singles[1])):
        assert isinstance(result, SynthesizedAudio) and result.seed == job.seed
        np.testing.assert_allclose(result.samples, np.clip(single.samples, -1, 1), rtol=0, atol=ATOL)


def test_padding_leaks_into_shorter_items_without_the_attention_mask(batched_engine, jobs, singles, monkeypatch):
    """Proves the tolerance can fail: upstream's default (attention ignores the mask) misses it by far."""
    from f5_tts.model.modules import AttnProcessor

    for module in batched_engine._model.modules():
        if isinstance(getattr(module, "processor", None), AttnProcessor):
            monkeypatch.setattr(module.processor, "attn_mask_enabled", False)
    shortest = batched_engine.render_batch([jobs[0], jobs[3]])[0]
    assert np.abs(shortest.mel - singles[0].mel).max() > 20 * ATOL  # measured: ~7e-3


@pytest.fixture
def batching_engine(tiny_model_path: Path) -> Iterator[BatchingEngine]:
    settings = Settings(
        engine="f5",
        model_dir=tiny_model_path,
        device="cpu",
        max_in_flight=4,
        batch_max_size=4,
        batch_window_ms=500,  # generous: the four lifecycle threads reach the engine at slightly different times
    )
    engine = build_engine(settings)
    assert isinstance(engine, BatchingEngine) and engine.max_batch == 4 and engine.window_s == 0.5
    engine.load()
    yield engine
    engine.close()


def test_worker_batches_messages_and_each_keeps_its_own_outcome(stack, make_worker, batching_engine):
    texts = ["One two three.", "The quick brown fox.", "Batching several messages.", "A fourth short text."]
    for i, text in enumerate(texts):
        body = {"job_id": f"b-{i}", "text": text, "voice": {"voice_id": "basic-en"}, "options": {"nfe_steps": 4}}
        stack.send(json.dumps(body))
    worker, _ = make_worker(batching_engine, max_in_flight=4, batch_max_size=4, visibility_timeout_s=60)
    assert worker.run() == 0

    events = {e.job_id: e for e in stack.events()}
    assert set(events) == {f"b-{i}" for i in range(4)}
    assert all(isinstance(e, SynthesisCompleted) and e.output.duration_s > 0.5 for e in events.values())
    assert stack.objects("outputs/") == [f"outputs/b-{i}.wav" for i in range(4)]
    assert stack.queue_counts() == (0, 0)
    sizes = batching_engine.batch_sizes
    assert sum(size * n for size, n in sizes.items()) == 4 and max(sizes) > 1, sizes
