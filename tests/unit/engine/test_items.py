"""One chunk's `CFM.sample` inputs, as upstream's `_infer_basic` computes them."""

from __future__ import annotations

import torch

from consumer.engine.f5.items import MAX_FRAMES, make_item
from consumer.engine.f5.prompts import Prompt
from contracts.requests import SynthesisOptions

HOP = 256


def _prompt(frames: int) -> Prompt:
    return Prompt(mel=torch.zeros(1, frames, 100), rms=torch.tensor(0.2), n_samples=frames * HOP)


def test_duration_follows_the_reference_speaking_rate_and_the_speed():
    # 200 frames for a 20-byte transcript (with its added space): 10 frames a byte; 40 bytes of text
    item = make_item(3, 1, _prompt(200), "x" * 19, "y" * 40, SynthesisOptions(speed=2.0), 77, HOP)
    assert (item.job, item.chunk, item.seed, item.text) == (3, 1, 77, "y" * 40)
    assert item.ref_audio_len == 200
    assert item.duration == 200 + 40 * 10 // 2
    assert item.frames == item.duration
    assert item.final_text == list("x" * 19 + " " + "y" * 40)


def test_texts_under_ten_bytes_are_spoken_at_speed_point_three():
    item = make_item(0, 0, _prompt(200), "x" * 19, "y" * 9, SynthesisOptions(speed=2.0), 1, HOP)
    assert item.duration == 200 + int(10 * 9 / 0.3)


def test_a_transcript_ending_in_a_multibyte_character_gets_no_space():
    """The space counts in the speaking rate: 90 frames over "Hi. " (4 bytes) or "你好。" (9 bytes, no space)."""
    spaced = make_item(0, 0, _prompt(90), "Hi.", "y" * 40, SynthesisOptions(), 1, HOP)
    unspaced = make_item(0, 0, _prompt(90), "你好。", "y" * 40, SynthesisOptions(), 1, HOP)
    assert spaced.final_text[:4] == ["H", "i", ".", " "]
    assert spaced.duration == 90 + int(90 / 4 * 40)
    assert unspaced.duration == 90 + int(90 / 9 * 40)


def test_frames_are_what_cfm_sample_makes_of_the_duration():
    """At least the prompt text or the reference plus one frame, at most CFM.sample's max_duration."""
    fast = SynthesisOptions(speed=2.0)
    long_text = make_item(0, 0, _prompt(10), "x" * 99, "y" * 40, fast, 1, HOP)  # 140 tokens, 14 frames asked
    assert long_text.duration == 10 + 2 and long_text.frames == 141
    huge = make_item(0, 0, _prompt(40000), "x" * 9, "y" * 400, SynthesisOptions(speed=0.5), 1, HOP)
    assert huge.duration > MAX_FRAMES and huge.frames == MAX_FRAMES
