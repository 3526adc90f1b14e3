"""Seeds: each chunk's seed from the job's, and the per-item seeds `CFM.sample` draws its initial noise with."""

from __future__ import annotations

import hashlib
import threading

NOISE_LOCK = threading.Lock()  # torch's RNG is process-wide: one call draws its seeded noise at a time


def chunk_seed(seed: int, index: int) -> int:
    """Chunk 0 uses the job seed itself (so single-chunk jobs match upstream seeded with it); later chunks
    get independent, deterministic seeds."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"f5-worker/chunk/{seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class SeedSequence:
    """Per-item seeds through `CFM.sample(seed=...)`: upstream calls `torch.manual_seed(seed)` (which does
    `int(seed)`) right before drawing each item's initial noise, in batch order, so each `int()` here yields
    the next item's seed and item i's noise is drawn exactly as a call of that item alone draws it. The first
    `int()` takes the process-wide `NOISE_LOCK`, so that concurrent calls never seed between another call's
    seeding and its draw; the sampler gives it back (`release`) at the first ODE step or when the call ends."""

    def __init__(self, seeds: list[int]) -> None:
        self._seeds = seeds
        self._used = 0
        self._holding = False

    def __int__(self) -> int:
        if self._used >= len(self._seeds):
            raise RuntimeError("CFM.sample drew more noise tensors than there are batch items")
        if not self._holding and self._used == 0:
            NOISE_LOCK.acquire()
            self._holding = True
        self._used += 1
        return self._seeds[self._used - 1]

    def release(self) -> None:
        if self._holding:
            self._holding = False
            NOISE_LOCK.release()

    def check_consumed(self) -> None:
        if self._used != len(self._seeds):
            raise RuntimeError(f"CFM.sample seeded {self._used} of {len(self._seeds)} items: upstream changed")
