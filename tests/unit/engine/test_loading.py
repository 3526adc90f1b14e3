"""Weights in: local paths used as they are, hub failures explained, the checkpoint's SHA-256, attention masks
on, vocoders other than Vocos refused."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import types

import pytest
import torch

from consumer.core.errors import EngineError
from consumer.engine.f5.loading import load_model, local_checkpoint, local_vocoder, sha256_of
from consumer.engine.model_spec import load_model_dir


def test_a_local_checkpoint_is_used_as_it_is(tmp_path):
    path = str(tmp_path / "model.safetensors")
    assert local_checkpoint(path, hub_cache_dir=None) == path


def test_a_hub_checkpoint_that_cannot_be_fetched_says_how_to_run_without_the_hub(monkeypatch, tmp_path):
    def unreachable(url: str, cache_dir: str | None = None) -> str:
        raise ConnectionError("no route to host")

    monkeypatch.setitem(sys.modules, "cached_path", types.SimpleNamespace(cached_path=unreachable))
    with pytest.raises(EngineError, match=r"cannot fetch hf://a/b/c\.pt .*ConnectionError: no route.*MODEL_DIR"):
        local_checkpoint("hf://a/b/c.pt", str(tmp_path))


def test_a_local_vocoder_directory_is_used_as_it_is(tmp_path):
    assert local_vocoder(str(tmp_path), hub_cache_dir=None) == str(tmp_path)


def test_a_hub_vocoder_is_the_directory_its_files_were_fetched_into(monkeypatch, tmp_path):
    fetched: list[tuple[str, str, str | None]] = []

    def download(repo_id: str, filename: str, cache_dir: str | None = None) -> str:
        fetched.append((repo_id, filename, cache_dir))
        return str(tmp_path / "snapshot" / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    assert local_vocoder("org/vocos", str(tmp_path)) == str(tmp_path / "snapshot")
    assert fetched == [
        ("org/vocos", "config.yaml", str(tmp_path)),
        ("org/vocos", "pytorch_model.bin", str(tmp_path)),
    ]


def test_a_hub_vocoder_that_cannot_be_fetched_says_how_to_run_without_the_hub(monkeypatch):
    def unreachable(repo_id: str, filename: str, cache_dir: str | None = None) -> str:
        raise TimeoutError("hub timed out")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", unreachable)
    with pytest.raises(EngineError, match=r"vocoder 'org/vocos' .*TimeoutError: hub timed out.*F5_WORKER_VOCODER"):
        local_vocoder("org/vocos", None)


def test_sha256_of_reads_files_larger_than_one_block(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * 9000  # over 2 MiB: several 1 MiB blocks
    path.write_bytes(data)
    assert sha256_of(str(path)) == hashlib.sha256(data).hexdigest()


def test_only_the_vocos_vocoder_is_supported(tiny_model_path):
    spec = load_model_dir(tiny_model_path)
    bigvgan = dataclasses.replace(spec, mel_spec={**spec.mel_spec, "mel_spec_type": "bigvgan"})
    with pytest.raises(EngineError, match="only the vocos vocoder is supported"):
        load_model(bigvgan, "cpu", torch.float32, "torch", None)


def test_loaded_model_masks_attention_and_matches_its_checksum(tiny_engine):
    from f5_tts.model.modules import AttnProcessor

    processors = [
        m.processor for m in tiny_engine._model.modules() if isinstance(getattr(m, "processor", None), AttnProcessor)
    ]
    assert processors and all(p.attn_mask_enabled for p in processors)
    assert not tiny_engine._model.training
    assert tiny_engine.checkpoint_sha256 == sha256_of(tiny_engine.spec.checkpoint)
