"""The one call site of `CFM.sample`: items' padded inputs in, generated mels out, each item's initial noise
drawn right after `torch.manual_seed` of its own seed (as upstream's single path draws it), and the calling
thread's abort check before every ODE step.

A call of one item is upstream's `_infer_basic` call exactly (`CFM.sample` passes no attention mask for a
batch of one); a call of several pads the cond mels with per-item `lens` and `duration`, and attention masks
the padding (`consumer.engine.f5.loading.enable_attention_masks`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from consumer.core.errors import SynthesisAborted
from consumer.engine.f5.items import Item
from consumer.engine.f5.seeding import SeedSequence


class Sampler:
    """`CFM.sample` on `model` for groups of items, callable from several threads at once (noise is drawn
    under `NOISE_LOCK`; the abort check and the seeds are per calling thread). The caller forks the RNG."""

    def __init__(self, model: Any, device: str) -> None:
        self._model = model
        self._device = device
        self._local = threading.local()  # per calling thread: should_abort, the seeds whose noise is drawing
        model.transformer.register_forward_pre_hook(self._before_ode_step)

    def sample(self, items: list[Item]) -> torch.Tensor:
        """One `CFM.sample` call: (len(items), longest frames, n_mels) float32. The options are the first
        item's (callers group only items with the same `sampler_key`)."""
        options = items[0].options
        cond = pad_sequence([it.prompt.mel[0] for it in items], batch_first=True)
        lens = torch.tensor([it.prompt.mel.shape[1] for it in items], device=self._device, dtype=torch.long)
        duration = torch.tensor([it.duration for it in items], device=self._device, dtype=torch.long)
        with torch.inference_mode(), self._drawing([it.seed for it in items]) as seeds:
            generated, trajectory = self._model.sample(
                cond=cond,
                text=[it.final_text for it in items],
                duration=duration,
                lens=lens,
                steps=options.nfe_steps,
                cfg_strength=options.cfg_strength,
                sway_sampling_coef=options.sway_sampling_coef,
                use_epss=options.epss,
                seed=seeds,
            )
            del trajectory
        return generated.to(torch.float32)

    @contextlib.contextmanager
    def watching(self, should_abort: Callable[[], bool]) -> Iterator[None]:
        """`should_abort` is checked before every ODE step of this thread's calls; when it turns true the
        call raises `SynthesisAborted`."""
        self._local.should_abort = should_abort
        try:
            yield
        finally:
            self._local.should_abort = None

    def _before_ode_step(self, _module: torch.nn.Module, _args: tuple[Any, ...]) -> None:
        """Forward-pre-hook on the DiT: `CFM.sample` calls it once per ODE step (cond+uncond packed), in the
        calling thread. By the first step the call's noise is drawn: the noise lock is given back."""
        seeds: SeedSequence | None = getattr(self._local, "seeds", None)
        if seeds is not None:
            seeds.release()
        should_abort: Callable[[], bool] | None = getattr(self._local, "should_abort", None)
        if should_abort is not None and should_abort():
            raise SynthesisAborted("synthesis aborted between ODE steps")

    @contextlib.contextmanager
    def _drawing(self, seeds: list[int]) -> Iterator[SeedSequence]:
        """Per-item seeds for one `CFM.sample(seed=...)` call in this thread; checks that each was used."""
        sequence = SeedSequence(seeds)
        self._local.seeds = sequence
        try:
            yield sequence
        finally:
            self._local.seeds = None
            sequence.release()
        sequence.check_consumed()
