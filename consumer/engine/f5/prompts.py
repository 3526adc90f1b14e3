"""References as `CFM.sample` takes them: a mel computed once per `Reference.cache_key` and reused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from cachetools import LRUCache

from consumer.engine import Reference

TARGET_RMS = 0.1  # upstream's target_rms


@dataclass(frozen=True)
class Prompt:
    """A reference prepared for `CFM.sample`, reusable across jobs."""

    mel: torch.Tensor  # (1, frames, n_mels) float32 on the engine's device
    rms: torch.Tensor  # RMS of the reference before it was raised to TARGET_RMS
    n_samples: int


class PromptCache:
    """Prompts by (cache key, rate, length), at most `size` of them (least recently used out first); a
    reference without a cache key is prepared every time."""

    def __init__(self, size: int) -> None:
        self._prompts: LRUCache[tuple[str, int, int], Prompt] = LRUCache(maxsize=size)

    def get(self, reference: Reference, model: Any, sample_rate: int, device: str) -> Prompt:
        key = (reference.cache_key, reference.sample_rate, len(reference.samples))
        if reference.cache_key and (cached := self._prompts.get(key)) is not None:
            return cached
        prompt = prepare_prompt(reference, model, sample_rate, device)
        if reference.cache_key:
            self._prompts[key] = prompt
        return prompt

    def clear(self) -> None:
        self._prompts.clear()


def prepare_prompt(reference: Reference, model: Any, sample_rate: int, device: str) -> Prompt:
    """upstream's infer_batch_process, step by step: mono, RMS raised to TARGET_RMS, resampled to the model's
    rate, moved to the device, mel spectrogram (what `CFM.sample` does with a waveform)."""
    audio = torch.from_numpy(np.array(reference.samples, dtype=np.float32).reshape(1, -1))
    rms = torch.sqrt(torch.mean(torch.square(audio)))
    if rms < TARGET_RMS:
        audio = audio * TARGET_RMS / rms
    if reference.sample_rate != sample_rate:
        import torchaudio

        audio = torchaudio.transforms.Resample(reference.sample_rate, sample_rate)(audio)
    audio = audio.to(device)
    with torch.inference_mode():
        mel = model.mel_spec(audio).permute(0, 2, 1)
    return Prompt(mel=mel, rms=rms, n_samples=audio.shape[-1])
