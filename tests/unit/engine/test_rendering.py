"""Audio out: vocoding with a quiet reference's loudness restored, chunks cross-faded, streamed blocks clipped."""

from __future__ import annotations

import numpy as np
import torch

from consumer.audio.signal import cross_fade
from consumer.engine import Reference, SynthesisJob
from consumer.engine.f5.planning import ChunkPlan
from consumer.engine.f5.prompts import TARGET_RMS, Prompt
from consumer.engine.f5.rendering import CROSS_FADE_S, clipped, finish_block, join_chunks, vocode
from contracts.requests import SynthesisOptions

RATE = 24000
REFERENCE = Reference(np.zeros(RATE, dtype=np.float32), RATE, "x" * 20)


class _Vocoder:
    """Decodes a mel (1, n_mels, frames) to a waveform (1, frames * 4) of constant 0.5, and keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        self.seen.append(mel)
        return torch.full((1, mel.shape[-1] * 4), 0.5)


def _prompt(rms: float) -> Prompt:
    return Prompt(mel=torch.zeros(1, 10, 100), rms=torch.tensor(rms), n_samples=2560)


def _job(**options) -> SynthesisJob:
    return SynthesisJob("text", REFERENCE, SynthesisOptions(**options), seed=1)


def test_vocode_returns_the_wave_and_the_mel_it_decoded():
    vocoder = _Vocoder()
    mel = torch.arange(2 * 100 * 7, dtype=torch.float32).reshape(2, 100, 7)[:1]
    wave, mel_out = vocode(vocoder, _prompt(0.2), mel)
    assert vocoder.seen[0] is mel
    assert wave.shape == (28,) and np.all(wave == np.float32(0.5))
    assert mel_out.shape == (100, 7) and np.array_equal(mel_out, mel[0].numpy())


def test_vocode_lowers_the_wave_back_to_a_quiet_references_loudness():
    quiet = TARGET_RMS / 4  # the prompt was raised 4x to TARGET_RMS: the output goes back down 4x
    wave, _ = vocode(_Vocoder(), _prompt(quiet), torch.zeros(1, 100, 3))
    assert np.allclose(wave, 0.5 / 4)
    loud, _ = vocode(_Vocoder(), _prompt(TARGET_RMS), torch.zeros(1, 100, 3))
    assert np.allclose(loud, 0.5)


def test_join_chunks_cross_fades_the_waves_and_concatenates_the_mels():
    waves = [np.full(RATE, 0.25, dtype=np.float32), np.full(RATE, -0.25, dtype=np.float32)]
    mels = [np.zeros((100, 5), dtype=np.float32), np.ones((100, 3), dtype=np.float32)]
    plan = ChunkPlan(["one.", "two."], (1, 99))
    rendering = join_chunks(_job(), plan, waves, mels, RATE)
    overlap = int(CROSS_FADE_S * RATE)
    assert rendering.samples.dtype == np.float32 and len(rendering.samples) == 2 * RATE - overlap
    assert np.allclose(rendering.samples, cross_fade(waves, RATE, CROSS_FADE_S))
    assert rendering.mel.shape == (100, 8) and rendering.mel[:, 5:].min() == 1.0
    assert (rendering.chunks, rendering.chunk_seeds) == (("one.", "two."), (1, 99))


def test_join_chunks_removes_long_silences_only_when_asked():
    speech = (0.3 * np.sin(np.arange(RATE) / 5.0)).astype(np.float32)
    wave = np.concatenate([speech, np.zeros(3 * RATE, dtype=np.float32), speech])
    mel = [np.zeros((100, 1), dtype=np.float32)]
    plan = ChunkPlan(["a."], (1,))
    kept = join_chunks(_job(), plan, [wave], mel, RATE)
    removed = join_chunks(_job(remove_silence=True), plan, [wave], mel, RATE)
    assert len(kept.samples) == len(wave)
    # three seconds of silence cut to one (half a second kept on each side), to within a 10 ms seek step
    assert abs(len(removed.samples) - (len(wave) - 2 * RATE)) <= RATE // 100


def test_streamed_blocks_are_clipped_float32_and_silences_removed_when_asked():
    block = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    out = finish_block(block, _job(), RATE)
    assert out.dtype == np.float32 and out.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert finish_block(np.zeros(0, dtype=np.float32), _job(remove_silence=True), RATE).size == 0
    speech = (0.3 * np.sin(np.arange(RATE) / 5.0)).astype(np.float32)
    quiet_tail = np.concatenate([speech, np.zeros(3 * RATE, dtype=np.float32)])
    assert len(finish_block(quiet_tail, _job(remove_silence=True), RATE)) < 2 * RATE
    assert len(finish_block(quiet_tail, _job(), RATE)) == 4 * RATE


def test_clipped_keeps_values_in_range_as_they_are():
    samples = np.array([0.1, -0.9], dtype=np.float32)
    assert np.array_equal(clipped(samples), samples)
    assert clipped(np.array([3.0])).dtype == np.float32
