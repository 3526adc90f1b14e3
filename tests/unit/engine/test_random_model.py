"""Random model directories and model specs: the real loaders read them, and the base architecture is
exactly the wheel's F5TTS_v1_Base."""

from __future__ import annotations

import json

import pytest

from consumer.core.errors import ModelSpecError
from consumer.engine.model_spec import (
    DEFAULT_CHECKPOINT,
    default_spec,
    load_model_dir,
    wheel_architecture,
    wheel_example_path,
)


def test_tiny_model_dir_is_complete_and_says_it_is_random(tiny_model_path):
    manifest = json.loads((tiny_model_path / "model.json").read_text())
    assert manifest["model_id"] == "random-tiny" and manifest["random_weights"] is True
    assert "RANDOM WEIGHTS" in manifest["description"]
    spec = load_model_dir(tiny_model_path)
    assert spec.model_id == "random-tiny" and spec.sample_rate == 24000
    assert spec.checkpoint.endswith("model.safetensors") and spec.vocoder == str(tiny_model_path / "vocoder")
    assert (tiny_model_path / "vocab.txt").read_bytes() == wheel_example_path("infer/examples/vocab.txt").read_bytes()
    assert not list(tiny_model_path.parent.glob(".random-*"))  # no staging directory left behind


def test_checkpoint_has_ema_keys_and_no_zero_output_layer(tiny_model_path):
    from safetensors.torch import load_file

    state = load_file(str(tiny_model_path / "model.safetensors"))
    assert all(k.startswith("ema_model.") or k in ("initted", "step") for k in state)
    assert state["ema_model.transformer.proj_out.weight"].abs().sum() > 0  # DiT zero-inits it: silence


def test_weights_load_through_upstream_loaders(tiny_model_path):
    from f5_tts.infer.utils_infer import load_model, load_vocoder
    from f5_tts.model import DiT

    spec = load_model_dir(tiny_model_path)
    model = load_model(DiT, spec.arch, spec.checkpoint, vocab_file=spec.vocab, device="cpu")
    vocoder = load_vocoder("vocos", is_local=True, local_path=spec.vocoder, device="cpu")
    assert model.transformer.dim == 64 and len(model.transformer.transformer_blocks) == 2
    assert vocoder.backbone.convnext[0].dwconv.in_channels == 64


def test_ensure_reuses_the_written_model(tiny_model_path):
    from consumer.engine.random_model import ensure_random_model

    before = (tiny_model_path / "model.safetensors").stat().st_mtime_ns
    assert ensure_random_model(tiny_model_path.parent, "tiny") == tiny_model_path
    assert (tiny_model_path / "model.safetensors").stat().st_mtime_ns == before


def test_same_seed_writes_same_weights(tmp_path, tiny_model_path):
    import torch
    from safetensors.torch import load_file

    from consumer.engine.random_model import write_random_model

    again = write_random_model(tmp_path / "again", size="tiny", seed=0)
    # Compare tensors, not bytes: safetensors writes its metadata map in no fixed order.
    ours, theirs = (load_file(str(d / "model.safetensors")) for d in (again, tiny_model_path))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    other = load_file(str(write_random_model(tmp_path / "other", size="tiny", seed=1) / "model.safetensors"))
    assert not torch.equal(
        other["ema_model.transformer.proj_out.weight"], ours["ema_model.transformer.proj_out.weight"]
    )


def test_base_uses_the_wheel_architecture():
    from consumer.engine.random_model import random_arch

    arch, mel = wheel_architecture("F5TTS_v1_Base")
    assert random_arch("base") == arch
    assert (arch["dim"], arch["depth"], arch["heads"], arch["ff_mult"], arch["text_dim"], arch["conv_layers"]) == (
        1024,
        22,
        16,
        2,
        512,
        4,
    )
    assert mel["n_mel_channels"] == 100 and mel["mel_spec_type"] == "vocos"


def test_default_spec_describes_the_released_checkpoint():
    spec = default_spec()
    assert spec.checkpoint == DEFAULT_CHECKPOINT and spec.model_id == "F5TTS_v1_Base/model_1250000"
    assert spec.vocoder == "charactr/vocos-mel-24khz" and spec.vocab.endswith("infer/examples/vocab.txt")
    assert spec.arch == wheel_architecture()[0]


def test_default_spec_for_a_local_checkpoint(tiny_model_path):
    spec = default_spec(str(tiny_model_path / "model.safetensors"), str(tiny_model_path / "vocoder"))
    assert spec.model_id == "F5TTS_v1_Base/model" and spec.vocoder == str(tiny_model_path / "vocoder")
    with pytest.raises(ModelSpecError, match="does not exist"):
        default_spec(str(tiny_model_path / "missing.safetensors"))


def test_bad_model_dirs_are_refused(tmp_path, tiny_model_path):
    with pytest.raises(ModelSpecError, match=r"model\.json is missing"):
        load_model_dir(tmp_path)
    manifest = json.loads((tiny_model_path / "model.json").read_text())
    for key in ("checkpoint", "vocab", "vocoder"):  # absolute paths are allowed too
        manifest[key] = str(tiny_model_path / manifest[key])
    (tmp_path / "model.json").write_text(json.dumps({**manifest, "checkpoint": "nope.safetensors"}))
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_model_dir(tmp_path)
    (tmp_path / "model.json").write_text(
        json.dumps({**manifest, "mel_spec": {**manifest["mel_spec"], "hop_length": 512}})
    )
    with pytest.raises(ModelSpecError, match="mel_spec"):
        load_model_dir(tmp_path)


def test_read_architecture_sources(tmp_path, tiny_model_path):
    import yaml

    from consumer.engine.model_spec import read_architecture

    assert read_architecture("F5TTS_v1_Base") == wheel_architecture("F5TTS_v1_Base")
    manifest = json.loads((tiny_model_path / "model.json").read_text())
    assert read_architecture(str(tiny_model_path / "model.json")) == (manifest["arch"], manifest["mel_spec"])
    bare = tmp_path / "arch.json"
    bare.write_text(json.dumps({"dim": 64, "depth": 2}))
    assert read_architecture(str(bare))[0] == {"dim": 64, "depth": 2}
    unet = tmp_path / "e2.yaml"
    unet.write_text(yaml.safe_dump({"model": {"backbone": "UNetT", "arch": {"dim": 1024}}}))
    with pytest.raises(ModelSpecError, match="DiT only"):
        read_architecture(str(unet))
    (tmp_path / "junk.yaml").write_text("just text")
    with pytest.raises(ModelSpecError, match="not an f5-tts config"):
        read_architecture(str(tmp_path / "junk.yaml"))
    with pytest.raises(ModelSpecError, match="does not exist"):
        read_architecture(str(tmp_path / "missing.yaml"))
    with pytest.raises(ModelSpecError, match="neither a file nor a config"):
        read_architecture("F5TTS_v9_Imaginary")


def test_default_spec_refuses_a_missing_vocab(tiny_model_path):
    with pytest.raises(ModelSpecError, match=r"vocab file .* does not exist"):
        default_spec(str(tiny_model_path / "model.safetensors"), vocab="/nowhere/vocab.txt")
