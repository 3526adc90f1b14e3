"""Batch items: one chunk of one job with the inputs upstream's `_infer_basic` gives `CFM.sample` for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consumer.engine.f5.prompts import Prompt
from contracts.requests import SynthesisOptions

MAX_FRAMES = 65536  # CFM.sample's max_duration
SHORT_TEXT_BYTES = 10  # upstream slows texts under 10 bytes to speed 0.3

Outputs = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (job, chunk) -> (waveform, mel)


@dataclass(frozen=True)
class Item:
    """One chunk of one job in a batch."""

    job: int  # index of the job in the batch
    chunk: int  # index of the chunk in the job
    prompt: Prompt
    transcript: str
    text: str
    options: SynthesisOptions
    seed: int
    final_text: list[str]  # tokenised reference transcript + chunk, as CFM.sample takes it
    duration: int  # frames asked for, reference included
    frames: int  # frames CFM.sample generates for it (duration, raised for long text, capped)
    ref_audio_len: int  # frames of the reference to cut from the output


def make_item(
    job: int,
    chunk: int,
    prompt: Prompt,
    transcript: str,
    text: str,
    options: SynthesisOptions,
    seed: int,
    hop_length: int,
) -> Item:
    """upstream's `_infer_basic` inputs for one chunk: the prompt text (transcript, a space when it ends in a
    one-byte character, then the chunk) tokenised, the duration estimated from the reference's speaking rate
    (texts under 10 bytes at speed 0.3), and the reference's length in frames."""
    from f5_tts.model.utils import convert_char_to_pinyin

    ref_text = transcript + " " if len(transcript[-1].encode("utf-8")) == 1 else transcript
    local_speed = 0.3 if len(text.encode("utf-8")) < SHORT_TEXT_BYTES else options.speed
    final_text = convert_char_to_pinyin([ref_text + text])[0]
    ref_audio_len = prompt.n_samples // hop_length
    ref_text_len = len(ref_text.encode("utf-8"))
    gen_text_len = len(text.encode("utf-8"))
    duration = ref_audio_len + int(ref_audio_len / ref_text_len * gen_text_len / local_speed)
    # what CFM.sample makes of `duration`: at least the text or the prompt plus one frame, at most 65536
    frames = min(max(max(len(final_text), prompt.mel.shape[1]) + 1, duration), MAX_FRAMES)
    return Item(job, chunk, prompt, transcript, text, options, seed, final_text, duration, frames, ref_audio_len)
