"""Random-weight model directories for tests, the local demo and benchmarks (no model hub needed).

A random model goes through exactly the code path of real weights: `model.json` + an EMA-style
`model.safetensors` read by f5-tts's `load_model`/`load_checkpoint`, the wheel's vocabulary, and a Vocos
vocoder saved as `vocoder/config.yaml` + `vocoder/pytorch_model.bin` for `load_vocoder(is_local=True)`.
It speaks noise, not words; durations, shapes and compute cost are real (`base` is F5TTS_v1_Base exactly).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from consumer.engine.model_spec import (
    DEFAULT_ARCHITECTURE,
    MODEL_JSON,
    SUPPORTED_MEL_SPEC,
    wheel_architecture,
    wheel_example_path,
)

Size = Literal["tiny", "base"]
GENERATOR_VERSION = 1  # bump when the layout or the weights' recipe changes: cached directories are rebuilt
# ~0.4M parameters: a 7 s utterance at 32 NFE takes ~2 s on 2 CPU cores.
TINY_ARCH: dict[str, Any] = {
    "dim": 64,
    "depth": 2,
    "heads": 2,
    "ff_mult": 2,
    "text_dim": 64,
    "text_mask_padding": True,
    "qk_norm": None,
    "conv_layers": 1,
    "pe_attn_head": None,
    "attn_backend": "torch",
    "attn_mask_enabled": False,
    "checkpoint_activations": False,
}
# Vocos backbone (dim, intermediate_dim, num_layers): charactr/vocos-mel-24khz's, and a small one.
VOCOS_BACKBONE = {"base": (512, 1536, 8), "tiny": (64, 192, 2)}
VOCODER_TARGET_RMS = 0.1  # random vocoders are calibrated to speak at about this level


def vocos_config(size: Size) -> dict[str, Any]:
    """A Vocos `config.yaml` (the layout of charactr/vocos-mel-24khz) for `Vocos.from_hparams`."""
    dim, intermediate, layers = VOCOS_BACKBONE[size]
    mel = SUPPORTED_MEL_SPEC
    return {
        "feature_extractor": {
            "class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
            "init_args": {
                "sample_rate": mel["target_sample_rate"],
                "n_fft": mel["n_fft"],
                "hop_length": mel["hop_length"],
                "n_mels": mel["n_mel_channels"],
                "padding": "center",
            },
        },
        "backbone": {
            "class_path": "vocos.models.VocosBackbone",
            "init_args": {
                "input_channels": mel["n_mel_channels"],
                "dim": dim,
                "intermediate_dim": intermediate,
                "num_layers": layers,
            },
        },
        "head": {
            "class_path": "vocos.heads.ISTFTHead",
            "init_args": {"dim": dim, "n_fft": mel["n_fft"], "hop_length": mel["hop_length"], "padding": "center"},
        },
    }


def _randomise_zero_inits(transformer: nn.Module) -> None:
    """DiT zero-initialises its AdaLN modulations and `proj_out` (training starts from identity blocks and a
    zero flow): with those left at zero every block is skipped and the output is silence."""
    model: Any = transformer  # f5-tts's DiT attributes (the package ships no type information)
    dim = model.dim
    for block in model.transformer_blocks:
        nn.init.normal_(block.attn_norm.linear.weight, std=0.02)
    nn.init.normal_(model.norm_out.linear.weight, std=0.02)
    nn.init.normal_(model.proj_out.weight, std=1 / math.sqrt(dim))  # flow of unit scale per step
    nn.init.zeros_(model.proj_out.bias)


def _build_cfm(arch: dict[str, Any], vocab_file: Path) -> nn.Module:
    from f5_tts.model import CFM, DiT
    from f5_tts.model.utils import get_tokenizer

    vocab_char_map, vocab_size = get_tokenizer(str(vocab_file), "custom")
    mel = dict(SUPPORTED_MEL_SPEC)
    model = CFM(
        transformer=DiT(**arch, text_num_embeds=vocab_size, mel_dim=mel["n_mel_channels"]),
        mel_spec_kwargs=mel,
        odeint_kwargs={"method": "euler"},
        vocab_char_map=vocab_char_map,
    )
    _randomise_zero_inits(model.transformer)
    return model


def _build_vocoder(config_path: Path) -> nn.Module:
    from vocos import Vocos

    vocoder = Vocos.from_hparams(str(config_path)).eval()
    # Calibrate the level: the backbone ends in a LayerNorm, so the head sees unit-scale features whatever
    # the mel is; shifting the log-magnitude bias sets the output RMS.
    with torch.no_grad():
        probe = vocoder.decode(torch.randn(1, SUPPORTED_MEL_SPEC["n_mel_channels"], 200) - 4.0)
        rms = float(probe.pow(2).mean().sqrt())
        n_bins = SUPPORTED_MEL_SPEC["n_fft"] // 2 + 1
        vocoder.head.out.bias[:n_bins] += math.log(VOCODER_TARGET_RMS / max(rms, 1e-8))
    return vocoder


def random_arch(size: Size) -> dict[str, Any]:
    """DiT keyword arguments: the wheel's F5TTS_v1_Base for "base", TINY_ARCH for "tiny"."""
    return wheel_architecture(DEFAULT_ARCHITECTURE)[0] if size == "base" else dict(TINY_ARCH)


def write_random_model(out_dir: Path, *, size: Size, seed: int = 0) -> Path:
    """Write a complete random-weight model directory (model.json layout) into `out_dir` and return it."""
    if size not in VOCOS_BACKBONE:
        raise ValueError(f"size must be 'tiny' or 'base', got {size!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = random_arch(size)
    vocab = out_dir / "vocab.txt"
    shutil.copyfile(wheel_example_path("infer/examples/vocab.txt"), vocab)
    vocoder_dir = out_dir / "vocoder"
    vocoder_dir.mkdir(exist_ok=True)
    (vocoder_dir / "config.yaml").write_text(yaml.safe_dump(vocos_config(size), sort_keys=False), encoding="utf-8")

    with torch.random.fork_rng(devices=[]):  # deterministic weights without leaving the global RNG seeded
        torch.manual_seed(seed)
        model = _build_cfm(arch, vocab)
        vocoder = _build_vocoder(vocoder_dir / "config.yaml")

    # EMA layout, as in the released checkpoints: `ema_model.`-prefixed keys plus the EMA wrapper's buffers.
    state = {f"ema_model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    state["initted"] = torch.tensor(True)
    state["step"] = torch.tensor(0)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt", "random_weights": "true"})
    torch.save(vocoder.state_dict(), vocoder_dir / "pytorch_model.bin")

    manifest = {
        "model_id": f"random-{size}",
        "description": (
            "RANDOM WEIGHTS (seeded) - for tests, the local demo and benchmarks only; it produces noise, not "
            f"speech. Architecture: {'F5TTS_v1_Base' if size == 'base' else 'tiny DiT'}."
        ),
        "random_weights": True,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "arch": arch,
        "mel_spec": dict(SUPPORTED_MEL_SPEC),
        "checkpoint": "model.safetensors",
        "vocab": "vocab.txt",
        "vocoder": "vocoder",
    }
    (out_dir / MODEL_JSON).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    # Readable by other users (a shared cache, a container user): mkdtemp and safetensors create 0700/0600.
    for path in [out_dir, *out_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out_dir


def _is_current(model_dir: Path) -> bool:
    try:
        manifest = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return manifest.get("generator_version") == GENERATOR_VERSION


def ensure_random_model(cache_dir: Path, size: Size) -> Path:
    """`cache_dir/random-{size}`, written once (into a temporary directory renamed into place, so a crash
    or a concurrent writer never leaves a half-written model) and reused afterwards."""
    cache_dir = Path(cache_dir)
    final = cache_dir / f"random-{size}"
    if _is_current(final):
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".random-{size}-", dir=cache_dir))
    try:
        write_random_model(staging, size=size)
        if final.exists():  # stale layout: move it aside first (rename is atomic, rmtree is not)
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{size}-", dir=cache_dir))
            final.replace(stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        staging.replace(final)
    except OSError:
        if not _is_current(final):  # not another writer winning the race: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
