"""Where the model runs: device, dtype and the attention backend.

Attention runs in upstream's processors with their `attn_backend`: flash-attn where it can run (CUDA,
float16/bfloat16, package installed), torch SDPA otherwise. With flash-attn a batch takes upstream's varlen
path (padding removed); with SDPA the padding mask is expanded to (batch, heads, n, n)."""

from __future__ import annotations

import importlib.util

import torch

from consumer.core.errors import EngineError
from consumer.engine import default_dtype_name


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    """`default_dtype_name` for this machine's device."""
    return getattr(torch, default_dtype_name(device, cuda_capability_major(device)))


def cuda_capability_major(device: str) -> int:
    """The compute capability's major version of a CUDA device (0 for any other device)."""
    return torch.cuda.get_device_properties(torch.device(device)).major if device.startswith("cuda") else 0


def resolve_attention_backend(requested: str, device: str, dtype: torch.dtype) -> str:
    """upstream's `attn_backend` for the DiT: "auto" picks flash-attn where its kernels run (CUDA, float16 or
    bfloat16, package installed), else torch's SDPA; an explicit "flash_attn" that cannot run is refused."""
    installed = importlib.util.find_spec("flash_attn") is not None
    runnable = device.startswith("cuda") and dtype in (torch.float16, torch.bfloat16)
    if requested == "auto":
        return "flash_attn" if installed and runnable else "torch"
    if requested == "flash_attn" and not installed:
        raise EngineError("attention_backend flash_attn: the flash-attn package is not installed (use auto or torch)")
    if requested == "flash_attn" and not runnable:
        raise EngineError(
            f"attention_backend flash_attn needs CUDA and float16/bfloat16 (device {device}, "
            f"dtype {str(dtype).removeprefix('torch.')}); use auto or torch"
        )
    if requested not in ("torch", "flash_attn"):
        raise EngineError(f"unknown attention_backend {requested!r} (auto, torch or flash_attn)")
    return requested
