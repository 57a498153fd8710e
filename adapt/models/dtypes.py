"""Compute dtype per device (``model.compute_dtype: auto``) and the 16-bit storage dtype of written models.

Compute dtype is what matmuls run in; storage dtype is what merged models and
exports are written in. They differ on purpose: a CPU without native bf16
computes in fp32 (bf16 matmuls run 30-60x slower there), yet a merged model is
still written in 16 bits (half the size, what every consumer expects).

``auto`` picks:

- CUDA: bf16 where the GPU supports it, else fp16 (T4, V100);
- CPU: bf16 where torch dispatches AVX512-BF16 or AMX kernels, else fp32.

The CPU check reads ``torch.backends.cpu.get_cpu_capability()`` (which honours
``ATEN_CPU_CAPABILITY``) and the CPU's bf16 instructions.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
BF16_SLOWDOWN = "30-60x"
"""Measured bf16 vs fp32 training slowdown on an AVX2-only CPU (AMD EPYC Zen 3, torch 2.13)."""


def cpu_capability() -> str:
    """torch's dispatch level for this CPU: ``AVX2``, ``AVX512``, ``DEFAULT``, ..."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_has_native_bf16() -> bool:
    """True when torch runs bf16 matmuls on this CPU in hardware (AVX512-BF16 or AMX), at fp32 speed or better."""
    if cpu_capability() not in ("AVX512", "AMX"):
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_device(choice: str) -> str:
    """``train.device`` (auto, cpu, cuda) -> the device every stage runs on."""
    if choice.startswith("cuda") and not torch.cuda.is_available():
        from adapt.errors import AdaptError

        raise AdaptError("train.device: cuda was asked for but no CUDA GPU is visible; use train.device: auto or cpu")
    return default_device() if choice == "auto" else choice


def auto_dtype(device: str) -> torch.dtype:
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def resolve(choice: str, device: str | None = None) -> torch.dtype:
    """The compute dtype for ``choice`` (``auto`` or a dtype name) on ``device`` (default: CUDA if visible)."""
    device = device or default_device()
    if choice == "auto":
        dtype = auto_dtype(device)
        _log_choice(device, DTYPE_NAMES[dtype])
        return dtype
    if choice == "bfloat16" and device == "cpu" and not cpu_has_native_bf16():
        _warn_slow_bf16()
    return DTYPES[choice]


@lru_cache(maxsize=None)
def _log_choice(device: str, name: str) -> None:
    where = f"CPU {cpu_capability()}" if device == "cpu" else device
    log.info("model.compute_dtype auto -> %s on %s", name, where)


@lru_cache(maxsize=None)
def _warn_slow_bf16() -> None:
    log.warning(
        "model.compute_dtype: bfloat16 on a CPU without native bf16 (torch capability %s) runs about %s slower than "
        "float32; set model.compute_dtype: auto",
        cpu_capability(),
        BF16_SLOWDOWN,
    )


def storage_dtype(choice: str) -> torch.dtype:
    """The 16-bit dtype merged models and exports are written in: fp16 when asked for, else bf16."""
    return torch.float16 if choice == "float16" else torch.bfloat16


def describe(choice: str, device: str | None = None) -> dict:
    """What metrics.json and eval.json record about the dtype choice."""
    device = device or default_device()
    return {
        "compute_dtype": DTYPE_NAMES[resolve(choice, device)],
        "compute_dtype_setting": choice,
        "cpu_capability": cpu_capability() if device == "cpu" else None,
    }
