"""The synthesis engine behind a small interface. Only `consumer.engine.f5`, `consumer.engine.asr` (inside its
loader) and the checkpoint tools in `consumer.engine.random_model` import torch, f5_tts or transformers
(import-linter holds that line); everything here is torch-free."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from consumer.audio.reference import Reference
from contracts.requests import SynthesisOptions

__all__ = [
    "Engine",
    "Reference",
    "SamplerKey",
    "SynthesisJob",
    "SynthesizedAudio",
    "default_dtype_name",
    "sampler_key",
]


SamplerKey = tuple[int, float, float, bool]


def default_dtype_name(device: str, cuda_capability_major: int) -> str:
    """upstream's rule (load_checkpoint), for the F5 model and the ASR model alike: float16 on CUDA compute
    capability >= 7, otherwise float32. Torch-free; the torch modules turn the name into a dtype."""
    return "float16" if device.startswith("cuda") and cuda_capability_major >= 7 else "float32"


def sampler_key(options: SynthesisOptions) -> SamplerKey:
    """What must be equal for jobs to share one `CFM.sample` call (one step count, CFG strength, sway
    coefficient and step schedule per call; speed, seed, text, reference and remove_silence are per item)."""
    return (options.nfe_steps, options.cfg_strength, options.sway_sampling_coef, options.epss)


@dataclass(frozen=True)
class SynthesisJob:
    text: str
    reference: Reference
    options: SynthesisOptions
    seed: int
    should_abort: Callable[[], bool] = field(default=lambda: False, repr=False, compare=False)
    # on_progress(chunk, chunks): called before each chunk (0-based) and once more with (chunks, chunks) at the
    # end. It must be quick and must not raise.
    on_progress: Callable[[int, int], None] = field(default=lambda i, n: None, repr=False, compare=False)
    stream: bool = False  # the job is streamed: its first chunk is cut short

    @property
    def expected_audio_s(self) -> float:
        """The audio length the engine will aim for: the reference's speaking rate applied to the text."""
        rate = self.reference.duration_s / max(1, len(self.reference.transcript.encode()))
        return rate * len(self.text.encode()) / max(0.1, self.options.speed)


@dataclass(frozen=True)
class SynthesizedAudio:
    samples: np.ndarray = field(repr=False)  # mono float32 in [-1, 1]
    sample_rate: int
    seed: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@runtime_checkable
class Engine(Protocol):
    """What the consumer needs from a TTS engine."""

    model_id: str
    device: str
    sample_rate: int

    def load(self) -> None:
        """Load weights once at start (never per request)."""

    def warm_up(self) -> None:
        """Run one short synthesis so the first real request is not slow."""

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        """Synthesize one job. Raises `SynthesisAborted` when `job.should_abort()` turns true,
        `consumer.core.errors.TextNotRepresentable` for text the vocabulary cannot express, and
        `consumer.core.errors.EngineError` for transient device failures."""

    def synthesize_stream(self, job: SynthesisJob) -> Iterator[np.ndarray]:
        """`synthesize` for long texts, in pieces: yields mono float32 blocks as chunks are made, holding no
        more than a chunk or two (concatenated, they are `synthesize`'s samples, with `remove_silence` applied per
        chunk instead of over the whole). Same errors."""
        ...

    def close(self) -> None:
        """Free device memory."""
