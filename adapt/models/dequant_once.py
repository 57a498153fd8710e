"""Dequantize-once NF4 on the CPU: QLoRA at the speed of a plain LoRA.

On the CPU, bitsandbytes' ``Linear4bit`` dequantizes its frozen NF4 weight on
every forward and every backward call (``bitsandbytes::gemm_4bit``'s default
kernel: ``dequantize_4bit`` then ``F.linear``). :func:`install` turns each
``Linear4bit`` of a model into a :class:`DequantizedOnceLinear4bit` that
computes that dense weight the first time the layer runs, keeps it, and from
then on runs only the ``F.linear``. The cached weight holds exactly the values
bitsandbytes computes with (the same ops, in the same order, in the compute
dtype), so outputs are bit-identical; the NF4 codes and scales stay in place
and remain the source of truth for merges and exports (they are what
``state_dict`` and ``save_pretrained`` see; the cache is not saved).

The cache is dropped whenever the NF4 data or scales change (the key is their
storage and the compute dtype), and a layer whose forward never runs (PEQA
scales its NF4 blocks itself) never expands. bitsandbytes has no such mode, hence
this small subclass.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import torch
from torch import nn

log = logging.getLogger(__name__)

MEMORY_SHARE = 0.5
"""`auto` expands only when the dense weights take at most this share of the available memory."""


def _bnb():
    import bitsandbytes as bnb

    return bnb


def dense_weight(layer: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The weight bitsandbytes' CPU ``gemm_4bit`` computes with, as ``[out, in]`` in ``dtype``."""
    state = layer.weight.quant_state
    absmax = state.absmax
    if state.nested:
        absmax = (
            torch.ops.bitsandbytes.dequantize_blockwise.default(absmax, state.state2.absmax, state.state2.code, 256, torch.float32)
            + state.offset
        )
    packed = layer.weight.data.view(-1, 1)
    return torch.ops.bitsandbytes.dequantize_4bit.default(packed, absmax, state.blocksize, state.quant_type, state.shape, dtype)


def _cache_key(layer: nn.Module, dtype: torch.dtype) -> tuple:
    state = layer.weight.quant_state
    return (layer.weight.data.data_ptr(), state.absmax.data_ptr(), state.absmax._version, dtype)


@lru_cache(maxsize=1)
def layer_class() -> type:
    """The ``Linear4bit`` subclass (made on first use: bitsandbytes is imported only when an NF4 base is)."""
    bnb = _bnb()
    from bitsandbytes.nn.modules import fix_4bit_weight_quant_state_from_module

    class DequantizedOnceLinear4bit(bnb.nn.Linear4bit):
        """A ``Linear4bit`` whose dense weight is computed once and reused (see the module docstring)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fix_4bit_weight_quant_state_from_module(self)
            if x.device.type != "cpu" or getattr(self.weight.quant_state, "packing_format_for_cpu", False):
                return super().forward(x)
            if not self.compute_type_is_set:
                self.set_compute_type(x)
                self.compute_type_is_set = True
            dtype = self.compute_dtype or x.dtype
            key = _cache_key(self, dtype)
            if getattr(self, "_dense_key", None) != key:
                with torch.no_grad():
                    self._dense = dense_weight(self, dtype)
                self._dense_key = key
            bias = None if self.bias is None else self.bias.to(dtype)
            return nn.functional.linear(x.to(dtype), self._dense, bias).to(x.dtype)

    return DequantizedOnceLinear4bit


def nf4_layers(model: nn.Module) -> list[nn.Module]:
    try:
        bnb = _bnb()
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def dense_bytes(model: nn.Module, dtype: torch.dtype) -> int:
    """Memory the dense copies of every NF4 weight would take."""
    size = torch.empty((), dtype=dtype).element_size()
    return sum(layer.in_features * layer.out_features * size for layer in nf4_layers(model))


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); free physical pages elsewhere."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_path(setting: str, model: nn.Module, device: str, dtype: torch.dtype) -> str:
    """``dequantize_once`` or ``bitsandbytes`` for this model on this device (``none``: no NF4 layer)."""
    if not nf4_layers(model):
        return "none"
    if device != "cpu" or setting == "bitsandbytes":
        return "bitsandbytes"
    if setting == "dequantize_once":
        return "dequantize_once"
    need, have = dense_bytes(model, dtype), available_memory_bytes()
    if need > MEMORY_SHARE * have:
        log.info("NF4 on CPU: dense weights (%.0f MB) exceed %.0f%% of available memory; dequantizing per call",
                 need / 2**20, 100 * MEMORY_SHARE)
        return "bitsandbytes"
    return "dequantize_once"


def install(model: nn.Module) -> int:
    """Make every bitsandbytes ``Linear4bit`` of ``model`` dequantize once; returns how many layers changed."""
    cls = layer_class()
    layers = [m for m in nf4_layers(model) if type(m) is not cls]
    for layer in layers:
        layer.__class__ = cls
    return len(layers)


def path_of(model: nn.Module) -> str:
    """Which NF4 CPU path ``model`` computes with: ``dequantize_once``, ``bitsandbytes`` or ``none`` (no NF4 layer)."""
    layers = nf4_layers(model)
    if not layers:
        return "none"
    return "dequantize_once" if all(type(m) is layer_class() for m in layers) else "bitsandbytes"


def apply(setting: str, model: nn.Module, device: str, dtype: torch.dtype) -> str:
    """Choose the NF4 CPU path (:func:`choose_path`) and install it; returns the path taken (for metrics.json)."""
    path = choose_path(setting, model, device, dtype)
    if path == "dequantize_once":
        log.debug("NF4 on CPU: %d layers dequantize once, on first use (%s)", install(model), dtype)
    return path
