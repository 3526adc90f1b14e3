"""Weights in: the DiT checkpoint and the Vocos vocoder through f5-tts's own loaders (from local paths or the
model hub), the vocabulary, and the checkpoint's SHA-256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from consumer.core.errors import EngineError
from consumer.core.logs import third_party_output
from consumer.engine.model_spec import ModelSpec


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # f5-tts's CFM around the DiT, on the device in the dtype asked for, in eval mode
    vocoder: Any  # Vocos
    vocab: dict[str, int]  # token -> index, what the model can represent
    checkpoint_sha256: str


def load_model(
    spec: ModelSpec, device: str, dtype: torch.dtype, attention_backend: str, hub_cache_dir: str | None
) -> LoadedModel:
    """`spec`'s weights on `device`, with attention honouring padding masks (`enable_attention_masks`)."""
    with third_party_output("f5_tts"):  # importing it prints where it runs, and warns about ffmpeg
        from f5_tts.infer import utils_infer
        from f5_tts.model import DiT
        from f5_tts.model.utils import get_tokenizer

    if spec.mel_spec_type != "vocos":
        raise EngineError(f"{spec.model_id}: only the vocos vocoder is supported")
    checkpoint = local_checkpoint(spec.checkpoint, hub_cache_dir)
    vocoder_dir = local_vocoder(spec.vocoder, hub_cache_dir)
    checkpoint_sha256 = sha256_of(checkpoint)
    with third_party_output("f5_tts"):  # upstream prints (vocab, paths): into the log at debug level
        # Loaded in fp32 on the CPU, then cast and moved: the same values as upstream's
        # `model.to(dtype)` followed by `load_state_dict`, with the dtype under our control.
        model = utils_infer.load_model(
            DiT,
            {**spec.arch, "attn_backend": attention_backend},
            checkpoint,
            mel_spec_type=spec.mel_spec_type,
            vocab_file=spec.vocab,
            ode_method="euler",
            use_ema=True,
            device="cpu",
        )
        vocoder = utils_infer.load_vocoder(spec.mel_spec_type, is_local=True, local_path=vocoder_dir, device=device)
        vocab = get_tokenizer(spec.vocab, "custom")[0]
    model = model.to(device=device, dtype=dtype).eval()
    enable_attention_masks(model)
    return LoadedModel(model, vocoder, vocab, checkpoint_sha256)


def enable_attention_masks(model: torch.nn.Module) -> None:
    """Make attention honour `CFM.sample`'s padding mask, which it passes only for batches of more than one
    item (so single runs, mask None, are unchanged). F5TTS_v1_Base ships `attn_mask_enabled: False`: without
    this, padded frames would leak into shorter items through attention."""
    from f5_tts.model.modules import AttnProcessor

    for module in model.modules():
        processor = getattr(module, "processor", None)
        if isinstance(processor, AttnProcessor):
            processor.attn_mask_enabled = True


def local_checkpoint(checkpoint: str, hub_cache_dir: str | None) -> str:
    """A local path as it is; an hf:// address fetched into the hub cache."""
    if not checkpoint.startswith("hf://"):
        return checkpoint
    try:
        from cached_path import cached_path

        return str(cached_path(checkpoint, cache_dir=hub_cache_dir))
    except Exception as exc:  # any hub/network failure means the same thing here
        raise EngineError(
            f"cannot fetch {checkpoint} from the model hub ({type(exc).__name__}: {exc}); without hub access "
            "bake the weights into the image and set F5_WORKER_MODEL_DIR or F5_WORKER_CHECKPOINT to a local path"
        ) from exc


def local_vocoder(vocoder: str, hub_cache_dir: str | None) -> str:
    """A local directory as it is; a hub id's config.yaml and pytorch_model.bin fetched into the hub cache."""
    if Path(vocoder).is_dir():
        return vocoder
    try:
        from huggingface_hub import hf_hub_download

        config = hf_hub_download(repo_id=vocoder, filename="config.yaml", cache_dir=hub_cache_dir)
        hf_hub_download(repo_id=vocoder, filename="pytorch_model.bin", cache_dir=hub_cache_dir)
    except Exception as exc:  # any hub/network failure means the same thing here
        raise EngineError(
            f"cannot fetch the vocoder {vocoder!r} from the model hub ({type(exc).__name__}: {exc}); without "
            "hub access set F5_WORKER_VOCODER to a local directory holding config.yaml and pytorch_model.bin"
        ) from exc
    return str(Path(config).parent)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
