"""Chunk seeds, and the seed sequence `CFM.sample` draws each item's noise with under the process-wide lock."""

from __future__ import annotations

import pytest
import torch

from consumer.engine.f5.seeding import NOISE_LOCK, SeedSequence, chunk_seed


def test_chunk_zero_is_the_job_seed_and_later_chunks_are_fixed_and_distinct():
    assert chunk_seed(1234, 0) == 1234
    seeds = [chunk_seed(1234, i) for i in range(1, 50)]
    assert seeds == [chunk_seed(1234, i) for i in range(1, 50)]  # deterministic across calls
    assert len(set(seeds)) == len(seeds) and 1234 not in seeds
    assert all(0 <= s < 2**31 for s in seeds)  # fits torch.manual_seed and the 31-bit seeds jobs carry
    assert chunk_seed(1235, 1) != chunk_seed(1234, 1)


def test_yields_the_seeds_in_order_holding_the_noise_lock_from_the_first_draw_until_released():
    sequence = SeedSequence([7, 8, 9])
    assert not NOISE_LOCK.locked()
    assert int(sequence) == 7
    assert NOISE_LOCK.locked()
    assert [int(sequence), int(sequence)] == [8, 9]
    sequence.check_consumed()
    sequence.release()
    assert not NOISE_LOCK.locked()
    sequence.release()  # a second release (at the end of a call released at its first step) is harmless
    assert not NOISE_LOCK.locked()


def test_torch_seeds_from_it_exactly_as_from_the_plain_seeds():
    """upstream's `torch.manual_seed(seed)` per item: each draw equals one seeded with that item's seed."""
    sequence = SeedSequence([3, 4])
    with torch.random.fork_rng():
        try:
            drawn = []
            for _ in range(2):
                torch.manual_seed(sequence)
                drawn.append(torch.randn(5))
        finally:
            sequence.release()
        for seed, noise in zip([3, 4], drawn, strict=True):
            torch.manual_seed(seed)
            assert torch.equal(noise, torch.randn(5))


def test_a_draw_beyond_the_items_and_a_draw_short_of_them_are_errors():
    sequence = SeedSequence([1])
    int(sequence)
    with pytest.raises(RuntimeError, match="more noise tensors"):
        int(sequence)
    sequence.release()
    short = SeedSequence([1, 2])
    int(short)
    short.release()
    with pytest.raises(RuntimeError, match="seeded 1 of 2 items"):
        short.check_consumed()
