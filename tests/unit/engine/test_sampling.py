"""The one `CFM.sample` call site on the tiny random checkpoint: one call per group of items, ODE steps
watched for aborts, the noise lock never left held."""

from __future__ import annotations

import pytest
import torch

from consumer.core.errors import SynthesisAborted
from consumer.engine.f5.items import make_item
from consumer.engine.f5.seeding import NOISE_LOCK
from contracts.requests import SynthesisOptions

OPTIONS = SynthesisOptions(nfe_steps=3)


@pytest.fixture
def items(tiny_engine, en_reference):
    prompt = tiny_engine._prompt(en_reference)
    texts = ["Hi there, how are you?", "A somewhat longer sentence than the first one."]
    return [
        make_item(j, 0, prompt, en_reference.transcript, text, OPTIONS, 40 + j, tiny_engine.spec.hop_length)
        for j, text in enumerate(texts)
    ]


@pytest.fixture
def forwards(tiny_engine):
    """Batch sizes of the DiT's forward passes."""
    seen: list[int] = []
    handle = tiny_engine._model.transformer.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen.append(kwargs["x"].shape[0]), with_kwargs=True
    )
    yield seen
    handle.remove()


def test_a_group_is_one_call_padded_to_its_longest_item(tiny_engine, items, forwards):
    sampler = tiny_engine._runner.sampler
    with torch.random.fork_rng():
        generated = sampler.sample(items)
    tiny_engine._model.transformer.clear_cache()
    assert generated.dtype == torch.float32
    assert generated.shape == (2, max(it.frames for it in items), tiny_engine._model.num_channels)
    assert forwards == [2] * OPTIONS.nfe_steps  # both items in every ODE step
    assert not NOISE_LOCK.locked()


def test_an_abort_stops_the_call_before_an_ode_step_and_gives_the_noise_lock_back(tiny_engine, items, forwards):
    sampler = tiny_engine._runner.sampler
    checks: list[int] = []

    def abort_at_the_second_step() -> bool:
        checks.append(1)
        return len(checks) >= 2

    with torch.random.fork_rng(), sampler.watching(abort_at_the_second_step), pytest.raises(SynthesisAborted):
        sampler.sample(items[:1])
    tiny_engine._model.transformer.clear_cache()
    assert len(checks) == 2 and len(forwards) == 1  # the second step's forward never ran
    assert not NOISE_LOCK.locked()


def test_the_abort_check_ends_with_its_block(tiny_engine, items, forwards):
    sampler = tiny_engine._runner.sampler
    with sampler.watching(lambda: True):
        pass
    with torch.random.fork_rng():
        sampler.sample(items[:1])
    tiny_engine._model.transformer.clear_cache()
    assert forwards == [1] * OPTIONS.nfe_steps
