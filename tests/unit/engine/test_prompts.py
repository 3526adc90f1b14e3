"""Reference mels: computed as upstream's `infer_batch_process` computes them, cached per `Reference.cache_key`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from consumer.engine.f5.prompts import TARGET_RMS, PromptCache, prepare_prompt


def test_the_mel_is_what_cfm_makes_of_the_waveform(tiny_engine, en_reference):
    prompt = prepare_prompt(en_reference, tiny_engine._model, 24000, "cpu")
    with torch.inference_mode():
        expected = tiny_engine._model.mel_spec(torch.from_numpy(en_reference.samples.copy())[None]).permute(0, 2, 1)
    assert prompt.n_samples == len(en_reference.samples)
    assert prompt.mel.shape == (1, len(en_reference.samples) // 256 + 1, tiny_engine._model.num_channels)
    assert torch.equal(prompt.mel, expected)  # the wheel's clip is louder than TARGET_RMS: used as it is
    assert float(prompt.rms) > TARGET_RMS


def test_a_quiet_reference_is_raised_to_the_target_rms_and_remembers_its_own(tiny_engine, en_reference):
    quiet = replace(en_reference, samples=en_reference.samples * 0.1)
    loud = prepare_prompt(en_reference, tiny_engine._model, 24000, "cpu")
    raised = prepare_prompt(quiet, tiny_engine._model, 24000, "cpu")
    assert float(raised.rms) < TARGET_RMS
    assert float(raised.rms) == np.float32(np.sqrt(np.mean(np.square(quiet.samples, dtype=np.float32))))
    assert not torch.allclose(raised.mel, loud.mel)  # the waveform was scaled before the mel


def test_a_resampled_reference_has_the_model_rate_length(tiny_engine, en_reference):
    at_16k = replace(en_reference, samples=en_reference.samples[::3][: 16000 * 2], sample_rate=16000, cache_key="")
    prompt = prepare_prompt(at_16k, tiny_engine._model, 24000, "cpu")
    assert prompt.n_samples == 24000 * 2


def test_cached_by_key_bounded_and_never_for_a_reference_without_one(tiny_engine, en_reference):
    cache = PromptCache(size=2)
    get = lambda reference: cache.get(reference, tiny_engine._model, 24000, "cpu")  # noqa: E731
    first = get(en_reference)
    assert get(en_reference) is first
    assert get(replace(en_reference, cache_key="")) is not get(replace(en_reference, cache_key=""))
    get(replace(en_reference, cache_key="b"))
    get(replace(en_reference, cache_key="c"))  # the third key pushes the least recently used out
    assert get(en_reference) is not first
