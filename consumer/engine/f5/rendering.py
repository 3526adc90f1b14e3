"""Audio out: generated mels vocoded, chunks cross-faded into one waveform (or streamed block by block),
long silences removed where the job asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from consumer.audio.signal import cross_fade, remove_long_silences
from consumer.engine import SynthesisJob
from consumer.engine.f5.planning import ChunkPlan
from consumer.engine.f5.prompts import TARGET_RMS, Prompt

CROSS_FADE_S = 0.15  # upstream's cross_fade_duration


@dataclass(frozen=True)
class Rendering:
    """Everything a synthesis produced, before clipping to [-1, 1]."""

    samples: np.ndarray  # float32 waveform at the engine's rate
    mel: np.ndarray  # (n_mels, frames) generated mel, chunks concatenated (upstream's "combined_spectrogram")
    chunks: tuple[str, ...]
    chunk_seeds: tuple[int, ...]


def vocode(vocoder: Any, prompt: Prompt, mel: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One generated mel (1, n_mels, frames) as (waveform, mel), restoring a quiet reference's loudness."""
    with torch.inference_mode():
        wave = vocoder.decode(mel)
        if prompt.rms < TARGET_RMS:
            wave = wave * prompt.rms / TARGET_RMS
        return wave.squeeze().cpu().numpy(), mel[0].cpu().numpy()


def join_chunks(
    job: SynthesisJob, plan: ChunkPlan, waves: list[np.ndarray], mels: list[np.ndarray], sample_rate: int
) -> Rendering:
    """A job's chunks, cross-faded as upstream does, silences removed if asked."""
    samples = cross_fade(waves, sample_rate, CROSS_FADE_S).astype(np.float32, copy=False)
    if job.options.remove_silence:
        samples = remove_long_silences(samples, sample_rate)
    return Rendering(samples, np.concatenate(mels, axis=1), tuple(plan.chunks), plan.seeds)


def finish_block(samples: np.ndarray, job: SynthesisJob, sample_rate: int) -> np.ndarray:
    """A streamed block as it goes out: silences removed if asked, clipped to [-1, 1], float32."""
    if job.options.remove_silence and len(samples):
        samples = remove_long_silences(samples, sample_rate)
    return clipped(samples)


def clipped(samples: np.ndarray) -> np.ndarray:
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
