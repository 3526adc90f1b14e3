"""The F5 engine on a tiny random checkpoint written to disk and loaded through f5-tts's own loaders:
real shapes, durations, seeding, chunking, abort and vocabulary checks, and output equal to upstream's
`infer_batch_process`."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from consumer.core.errors import InvalidRequest, SynthesisAborted, TextNotRepresentable
from consumer.engine import Engine, SynthesisJob
from consumer.engine.f5 import F5Engine, chunk_seed
from contracts.requests import SynthesisOptions

TEXT = "I don't really care what you call me."
FAST = SynthesisOptions(nfe_steps=8)  # shapes and seeding do not depend on the step count
FASTER = SynthesisOptions(nfe_steps=4)
LONG = " ".join(
    [
        "I don't really care what you call me.",
        "I've been a silent spectator, watching species evolve, empires rise and fall.",
        "But always remember, I am mighty and enduring.",
        "Respect me and I'll nurture you; ignore me and you shall face the consequences.",
    ]
)


def _job(reference, text: str = TEXT, options: SynthesisOptions = FAST, seed: int = 1, **kwargs) -> SynthesisJob:
    return SynthesisJob(text, reference, options, seed, **kwargs)


def test_is_an_engine(tiny_engine):
    assert isinstance(tiny_engine, Engine)
    assert tiny_engine.model_id == "random-tiny" and tiny_engine.device == "cpu" and tiny_engine.sample_rate == 24000
    assert len(tiny_engine.checkpoint_sha256) == 64


def test_synthesizes_non_silent_audio_of_plausible_duration(tiny_engine, en_reference):
    audio = tiny_engine.synthesize(_job(en_reference, options=SynthesisOptions()))
    assert audio.sample_rate == 24000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    # F5 sizes the output from the reference's speaking rate (bytes per second).
    rate = len(en_reference.transcript.encode()) / en_reference.duration_s
    assert audio.duration_s == pytest.approx(len(TEXT) / rate, rel=0.25)
    assert np.sqrt(np.mean(audio.samples**2)) > 0.01 and np.abs(audio.samples).max() <= 1.0


def test_same_seed_same_audio_different_seed_different_audio(tiny_engine, en_reference):
    a = tiny_engine.synthesize(_job(en_reference, seed=7)).samples
    b = tiny_engine.synthesize(_job(en_reference, seed=7)).samples
    c = tiny_engine.synthesize(_job(en_reference, seed=8)).samples
    assert np.array_equal(a, b)
    assert a.shape == c.shape and not np.allclose(a, c, atol=1e-3)


def test_global_rng_is_left_alone(tiny_engine, en_reference):
    before = torch.random.get_rng_state()
    tiny_engine.synthesize(_job(en_reference))
    assert torch.equal(before, torch.random.get_rng_state())


def test_multi_chunk_text_is_reproducible(tiny_engine, en_reference):
    first = tiny_engine.render(_job(en_reference, LONG, FASTER, seed=3))
    second = tiny_engine.render(_job(en_reference, LONG, FASTER, seed=3))
    assert len(first.chunks) >= 2 and " ".join(first.chunks) == LONG
    assert first.chunk_seeds[0] == 3 and len(set(first.chunk_seeds)) == len(first.chunks)
    assert first.chunk_seeds == tuple(chunk_seed(3, i) for i in range(len(first.chunks)))
    assert np.array_equal(first.samples, second.samples) and np.array_equal(first.mel, second.mel)


def test_equals_upstream_infer_batch_process(tiny_engine, en_reference):
    """Same weights, reference, text, options and seed: the engine's mel and waveform equal upstream's.

    Tolerance: the two paths run the same torch ops on the same inputs with the same noise (upstream
    seeded with `torch.manual_seed(seed)`, the engine inside `fork_rng`), so on CPU they are bit-identical
    (max difference 0.0 when measured). `atol=1e-6` only admits float reduction-order noise such as a
    different OpenMP team in upstream's worker thread; any real divergence (other noise, prompt text,
    duration or RMS handling) moves values by 1e-2..1 (mel values are O(1), audio O(0.1)) and lengths
    must match exactly."""
    from f5_tts.infer.utils_infer import infer_batch_process

    options = SynthesisOptions(speed=1.2, nfe_steps=10, cfg_strength=1.5, sway_sampling_coef=-0.5)
    ours = tiny_engine.render(_job(en_reference, options=options, seed=1234))
    assert len(ours.chunks) == 1

    torch.manual_seed(1234)
    wave, rate, mel = next(
        infer_batch_process(
            (torch.from_numpy(en_reference.samples.copy())[None], en_reference.sample_rate),
            en_reference.transcript,
            [TEXT],
            tiny_engine._model,
            tiny_engine._vocoder,
            progress=None,
            nfe_step=options.nfe_steps,
            cfg_strength=options.cfg_strength,
            sway_sampling_coef=options.sway_sampling_coef,
            speed=options.speed,
            device="cpu",
        )
    )
    assert rate == 24000 and wave.shape == ours.samples.shape and mel.shape == ours.mel.shape
    np.testing.assert_allclose(ours.mel, mel, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.samples, wave, rtol=0, atol=1e-6)


def test_options_are_honoured(tiny_engine, en_reference):
    steps = []
    slow = tiny_engine.synthesize(_job(en_reference, options=SynthesisOptions(nfe_steps=6, speed=0.8)))
    fast = tiny_engine.synthesize(
        _job(
            en_reference,
            options=SynthesisOptions(nfe_steps=6, speed=1.6),
            should_abort=lambda: steps.append(1) or False,
        )
    )
    assert fast.duration_s == pytest.approx(slow.duration_s / 2, rel=0.1)
    assert len(steps) == 6 + 2  # one check per ODE step, one per chunk, one before vocoding
    plain = tiny_engine.render(_job(en_reference, LONG, FASTER)).samples
    trimmed = tiny_engine.render(_job(en_reference, LONG, SynthesisOptions(nfe_steps=4, remove_silence=True)))
    assert 0 < len(trimmed.samples) <= len(plain)


def test_should_abort_stops_between_ode_steps_and_leaves_the_engine_usable(tiny_engine, en_reference):
    calls = []

    def abort_on_third_step() -> bool:
        calls.append(1)
        return len(calls) >= 3

    reference_audio = tiny_engine.synthesize(_job(en_reference, seed=5)).samples
    with pytest.raises(SynthesisAborted):
        tiny_engine.synthesize(
            _job(en_reference, "Something else entirely, for the text cache.", should_abort=abort_on_third_step)
        )
    assert len(calls) == 3
    # The aborted run's cached text embedding must not leak into the next job.
    assert np.array_equal(tiny_engine.synthesize(_job(en_reference, seed=5)).samples, reference_audio)


@pytest.mark.parametrize(("text", "shown"), [("Hello 😀 world", "U+1F600"), ("Snow ☃ and \x07 bell", "U+2603")])
def test_unrepresentable_text_is_refused_with_the_characters(tiny_engine, en_reference, text, shown):
    with pytest.raises(TextNotRepresentable, match=re.escape(shown)) as info:
        tiny_engine.synthesize(_job(en_reference, text))
    assert "the text contains characters" in str(info.value)


def test_unrepresentable_transcript_is_refused(tiny_engine, en_reference):
    from dataclasses import replace

    with pytest.raises(TextNotRepresentable, match="reference transcript"):
        tiny_engine.synthesize(_job(replace(en_reference, transcript="Some call me ☃. "), TEXT))


def test_chinese_goes_through_pinyin(tiny_engine, zh_reference):
    audio = tiny_engine.synthesize(_job(zh_reference, "你好，欢迎使用语音合成。"))
    assert audio.duration_s > 0.5


def test_blank_text_is_invalid(tiny_engine, en_reference):
    with pytest.raises(InvalidRequest):
        tiny_engine.synthesize(_job(en_reference, " \n "))


def test_an_unpunctuated_run_on_sentence_is_split(tiny_engine, en_reference):
    words = " ".join(["word"] * 300)
    chunks = tiny_engine.chunks(words, en_reference)
    assert len(chunks) > 1 and " ".join(chunks) == words
    assert max(len(c.encode()) for c in chunks) <= max(200, 2 * len(chunks[0].encode()))


def test_concurrent_callers_are_serialised(tiny_engine, en_reference):
    expected = tiny_engine.synthesize(_job(en_reference, seed=11)).samples
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(tiny_engine.synthesize(_job(en_reference, seed=11)).samples))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and all(np.array_equal(r, expected) for r in results)


def test_warm_up_runs_the_model_and_the_vocoder(tiny_engine):
    """Warm-up is one short synthesis: two ODE steps through the DiT (its 2-step options), one vocoder pass."""
    ode_steps: list[int] = []
    vocoder_passes: list[int] = []
    step_hook = tiny_engine._model.transformer.register_forward_pre_hook(lambda *_: ode_steps.append(1))
    vocoder_hook = tiny_engine._vocoder.backbone.register_forward_hook(lambda *_: vocoder_passes.append(1))
    try:
        tiny_engine.warm_up()
    finally:
        step_hook.remove()
        vocoder_hook.remove()
    assert len(ode_steps) == 2 and len(vocoder_passes) == 1


def test_factory_and_torch_free_modules(tiny_model_path):
    code = f"""
import sys
from consumer.engine.factory import build_engine
from consumer.audio import encoding, reference
from consumer.engine import model_spec
from consumer.core.settings import Settings
assert "torch" not in sys.modules, "torch imported by a torch-free module"
assert type(build_engine(Settings(engine="fake"))).__name__ == "FakeEngine"
assert "torch" not in sys.modules
engine = build_engine(Settings(engine="f5", model_dir={str(tiny_model_path)!r}, device="cpu"))
assert type(engine).__name__ == "F5Engine" and engine.model_id == "random-tiny"
default = build_engine(Settings(engine="f5", device="cpu"))
assert default.spec.checkpoint == "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"
assert default.attention_backend == "torch"
tuned = build_engine(Settings(
    engine="f5", device="cpu", checkpoint={str(tiny_model_path / "model.safetensors")!r},
    vocab={str(tiny_model_path / "vocab.txt")!r}, architecture={str(tiny_model_path / "model.json")!r},
))
assert tuned.spec.arch["dim"] == 64 and tuned.spec.vocab == {str(tiny_model_path / "vocab.txt")!r}
try:
    Settings(model_dir={str(tiny_model_path)!r}, vocab="vocab.txt")
except ValueError as exc:
    assert "goes with a checkpoint" in str(exc)
else:
    raise AssertionError("vocab with model_dir was accepted")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_load_is_idempotent_and_close_frees(tiny_model_path, en_reference):
    from consumer.engine.model_spec import load_model_dir

    engine = F5Engine(load_model_dir(tiny_model_path), device="cpu")
    engine.load()
    engine.load()
    engine.synthesize(_job(en_reference, options=SynthesisOptions(nfe_steps=2)))
    engine.close()
    with pytest.raises(Exception, match="not loaded"):
        engine.synthesize(_job(en_reference))


def test_epss_schedule_is_an_option(tiny_engine, en_reference, monkeypatch):
    import f5_tts.model.cfm as cfm

    schedules = []
    real = cfm.get_epss_timesteps
    monkeypatch.setattr(cfm, "get_epss_timesteps", lambda n, **kw: schedules.append(n) or real(n, **kw))

    def run(nfe: int, epss: bool) -> np.ndarray:
        return tiny_engine.render(_job(en_reference, options=SynthesisOptions(nfe_steps=nfe, epss=epss))).samples

    pruned, uniform = run(16, True), run(16, False)
    assert schedules == [16]  # upstream's pruned schedule asked for once, only when epss is on
    assert pruned.shape == uniform.shape and not np.array_equal(pruned, uniform)
    # Step counts without a pruned schedule are uniform either way.
    np.testing.assert_array_equal(run(8, True), run(8, False))


@pytest.mark.parametrize(
    ("requested", "installed", "device_name", "dtype", "expected"),
    [
        ("auto", True, "cuda", torch.float16, "flash_attn"),
        ("auto", True, "cuda:1", torch.bfloat16, "flash_attn"),
        ("auto", True, "cuda", torch.float32, "torch"),  # flash-attn has no float32 kernels
        ("auto", True, "cpu", torch.float32, "torch"),
        ("auto", False, "cuda", torch.float16, "torch"),
        ("torch", True, "cuda", torch.float16, "torch"),
        ("flash_attn", True, "cuda", torch.float16, "flash_attn"),
    ],
)
def test_attention_backend_resolution(monkeypatch, requested, installed, device_name, dtype, expected):
    import importlib.util

    from consumer.engine.f5 import device

    real = importlib.util.find_spec
    monkeypatch.setattr(
        device.importlib.util,
        "find_spec",
        lambda name: (object() if installed else None) if name == "flash_attn" else real(name),
    )
    assert device.resolve_attention_backend(requested, device_name, dtype) == expected


def test_flash_attn_that_cannot_run_is_refused_at_start(tiny_model_path, monkeypatch):
    from consumer.core.errors import EngineError
    from consumer.engine.f5 import device
    from consumer.engine.model_spec import load_model_dir

    spec = load_model_dir(tiny_model_path)
    if device.importlib.util.find_spec("flash_attn") is None:
        with pytest.raises(EngineError, match="flash-attn package is not installed"):
            F5Engine(spec, device="cpu", attention_backend="flash_attn")
    monkeypatch.setattr(device.importlib.util, "find_spec", lambda name: object())
    with pytest.raises(EngineError, match="needs CUDA and float16/bfloat16"):
        F5Engine(spec, device="cpu", attention_backend="flash_attn")


def test_cpu_engine_uses_torch_sdpa(tiny_engine):
    assert tiny_engine.attention_backend == "torch"
    backends = {b.attn.processor.attn_backend for b in tiny_engine._model.transformer.transformer_blocks}
    assert backends == {"torch"}


def test_fine_tuned_checkpoint_with_its_own_vocab_and_training_config(
    tiny_model_path, tiny_engine, en_reference, tmp_path
):
    """A bare checkpoint + vocab.txt + f5-tts training yaml (what fine-tuning leaves) loads through the same
    loaders as a model directory and speaks identically."""
    import json
    import shutil

    import yaml

    from consumer.engine.model_spec import default_spec

    manifest = json.loads((tiny_model_path / "model.json").read_text())
    config = tmp_path / "my_finetune.yaml"
    config.write_text(
        yaml.safe_dump({"model": {"backbone": "DiT", "arch": manifest["arch"], "mel_spec": manifest["mel_spec"]}})
    )
    vocab = tmp_path / "vocab.txt"
    shutil.copyfile(tiny_model_path / manifest["vocab"], vocab)
    spec = default_spec(
        str(tiny_model_path / manifest["checkpoint"]),
        str(tiny_model_path / manifest["vocoder"]),
        vocab=str(vocab),
        architecture=str(config),
    )
    assert spec.model_id == "my_finetune/model" and spec.vocab == str(vocab)
    engine = F5Engine(spec, device="cpu")
    engine.load()
    try:
        job = _job(en_reference, options=FASTER)
        np.testing.assert_array_equal(engine.render(job).samples, tiny_engine.render(job).samples)
    finally:
        engine.close()
