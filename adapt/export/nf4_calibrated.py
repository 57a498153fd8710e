"""`nf4-calibrated`: bitsandbytes NF4 whose block scales are chosen for output error on domain samples.

Plain NF4 scales each 64-value block by its absmax and rounds every weight to
the nearest NF4 code: that minimizes nothing in particular. Here the merged
16-bit model runs calibration examples from the run's training split, each
quantized linear records the mean squared activation of its input channels
``E[x_j^2]``, and every block gets the scale that minimizes the expected error
of the layer's outputs, ``sum_j E[x_j^2] (w_j - dequant(q_j))^2``:

1. a grid of multipliers of the block absmax (:data:`GRID`, 1.0 included, so
   no block ends up worse than plain NF4 before double quantization); for
   each, bitsandbytes re-quantizes the block (a smaller scale clips the
   largest weights and gives the rest finer codes);
2. the chosen codes are re-quantized by bitsandbytes (``Params4bit``) and the
   least-squares scale for exactly those codes is folded into the block scales
   with :func:`adapt.methods.peqa.fold.fold_block_multipliers`, which also
   nests them (double quant) as plain ``nf4`` does.

The result is a standard bitsandbytes NF4 checkpoint: plain
``from_pretrained`` loads it with no adapt code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from adapt.models import dtypes
from adapt.errors import AdaptError

log = logging.getLogger(__name__)

# 1.0 first: on a tie (a block no calibration input reaches) the plain absmax wins.
# The largest multiplier must stay below 1/0.8614 (the midpoint of NF4's top two codes),
# so that the block's largest weight still takes the code +-1 and bitsandbytes stores the scale.
GRID = tuple(sorted((m / 100 for m in range(70, 106)), key=lambda m: abs(m - 1.0)))


@torch.no_grad()
def input_power(model: nn.Module, names: list[str], calibration: list[list[int]]) -> dict[str, torch.Tensor]:
    """Mean squared input activation per input channel, ``E[x_j^2]``, of each named linear layer."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            sums[name] = sums.get(name, 0) + x.pow(2).sum(0)
            counts[name] = counts.get(name, 0) + x.shape[0]

        return record

    handles = [model.get_submodule(name).register_forward_pre_hook(hook(name)) for name in names]
    device = next(model.parameters()).device
    try:
        for ids in calibration:
            if ids:
                model(input_ids=torch.tensor([ids], device=device))
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in names if name not in sums]
    if missing:
        raise AdaptError(f"calibration: layers {missing[:3]} saw no input; give non-empty calibration examples")
    return {name: sums[name] / counts[name] for name in names}


def _blocks(flat: torch.Tensor, blocksize: int) -> torch.Tensor:
    """[n] -> [n_blocks, blocksize], zero-padded like bitsandbytes' last partial block."""
    pad = -flat.numel() % blocksize
    return torch.nn.functional.pad(flat, (0, pad)).reshape(-1, blocksize)


def _with_scale(blocks: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Weights whose NF4 quantization uses block scale ``scale`` ([n_blocks, 1]): the others clipped to it,
    the largest set to it (it takes the code +-1 at that scale either way, see :data:`GRID`)."""
    out = torch.maximum(torch.minimum(blocks, scale), -scale)
    top = blocks.abs().argmax(1, keepdim=True)
    return out.scatter(1, top, blocks.gather(1, top).sign() * scale)


def _nf4_round_trip(blocks: torch.Tensor, shape: torch.Size, dtype: torch.dtype, blocksize: int) -> torch.Tensor:
    """bitsandbytes NF4 quantize + dequantize (un-nested) of ``blocks`` stored as a ``shape`` weight in ``dtype``."""
    from bitsandbytes import functional as bnbf

    weight = blocks.reshape(-1)[: shape.numel()].reshape(shape).to(dtype)
    packed, state = bnbf.quantize_4bit(weight, blocksize=blocksize, compress_statistics=False, quant_type="nf4")
    return _blocks(bnbf.dequantize_4bit(packed, state).float().reshape(-1), blocksize)


def _weighted_error(blocks: torch.Tensor, approx: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    return ((blocks - approx).pow(2) * power).sum(1)


@torch.no_grad()
def calibrate_layer(layer: nn.Module, weight: torch.Tensor, power: torch.Tensor) -> dict[str, float]:
    """Re-quantize the bitsandbytes NF4 ``layer`` from its 16-bit ``weight`` with output-aware block scales.

    ``power`` is ``E[x_j^2]`` per input channel. Returns the weighted error of
    plain NF4 and of the result (both double-quantized when the layer is) and
    the mean block-scale multiplier.
    """
    import bitsandbytes as bnb
    from bitsandbytes import functional as bnbf

    from adapt.methods.peqa.fold import fold_block_multipliers

    param = layer.weight
    if param.quant_type != "nf4":
        raise AdaptError(f"nf4-calibrated: a {param.quant_type} layer cannot take NF4 block scales")
    size, nested, shape = param.blocksize, param.compress_statistics, weight.shape
    blocks = _blocks(weight.detach().float().reshape(-1), size)
    power = _blocks(power.float().to(weight.device).expand(shape).reshape(-1), size)
    absmax = blocks.abs().amax(1, keepdim=True)
    errors = torch.stack(
        [_weighted_error(blocks, _nf4_round_trip(_with_scale(blocks, m * absmax), shape, weight.dtype, size), power) for m in GRID], 1
    )
    chosen = torch.tensor(GRID)[errors.argmin(1)][:, None]
    prepared = _with_scale(blocks, chosen * absmax).reshape(-1)[: shape.numel()].reshape(shape).to(weight.dtype)
    layer.weight = bnb.nn.Params4bit(
        prepared, requires_grad=False, blocksize=size, compress_statistics=False, quant_type="nf4",
        quant_storage=param.quant_storage, module=layer,
    ).to(weight.device)  # fmt: skip
    codes = _blocks(bnbf.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float().reshape(-1), size)
    # The least-squares scale for these very codes: minimizes sum_j p_j (w_j - r * codes_j)^2.
    numerator, denominator = (power * blocks * codes).sum(1), (power * codes * codes).sum(1)
    refit = torch.where(denominator > 0, numerator / denominator.clamp_min(1e-30), torch.ones_like(numerator))
    fold_block_multipliers(layer, refit, double_quant=nested)
    layer.weight.compress_statistics = nested
    final = _blocks(bnbf.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float().reshape(-1), size)
    packed, state = bnbf.quantize_4bit(weight, blocksize=size, compress_statistics=nested, quant_type="nf4")
    plain = _blocks(bnbf.dequantize_4bit(packed, state).float().reshape(-1), size)
    return {
        "error_nf4": _weighted_error(blocks, plain, power).sum().item(),
        "error": _weighted_error(blocks, final, power).sum().item(),
        "mean_multiplier": (chosen.squeeze(1) * refit).mean().item(),
    }


def export_nf4_calibrated(merged_dir: Path, out_dir: Path, calibration: list[list[int]]) -> dict[str, Any]:
    """Quantize ``merged_dir`` to NF4 with calibrated block scales and save it into ``out_dir``; returns manifest fields."""
    from adapt.export.bnb import load_quantized, model_class_for, save_quantized
    from adapt.models.bnb_cpu import is_4bit

    if not any(calibration):
        raise AdaptError("nf4-calibrated: no calibration token ids; `adapt quantize RUN_DIR` takes them from the run's training split")
    model = load_quantized(merged_dir, "nf4")
    names = [name for name, module in model.named_modules() if is_4bit(module)]
    compute = dtypes.resolve("auto", "cpu")  # the activations' forward passes; the weights are the same bf16 values
    source = model_class_for(merged_dir).from_pretrained(str(merged_dir), dtype=compute, use_safetensors=True).eval()
    power = input_power(source, names, calibration)
    totals = {"error_nf4": 0.0, "error": 0.0, "mean_multiplier": 0.0}
    for name in tqdm(names, desc="nf4-calibrated: block scales", unit="layer", leave=False):
        stats = calibrate_layer(model.get_submodule(name), source.get_submodule(name).weight, power[name])
        totals = {key: totals[key] + stats[key] for key in totals}
    del source
    manifest = save_quantized(model, merged_dir, out_dir)
    ratio = totals["error"] / totals["error_nf4"] if totals["error_nf4"] else 1.0
    log.info("nf4-calibrated: activation-weighted weight error %.3f x that of plain nf4 over %d layers", ratio, len(names))
    return manifest | {
        "calibration": {
            "examples": len(calibration),
            "tokens": sum(len(ids) for ids in calibration),
            "grid": [min(GRID), max(GRID)],
            "mean_multiplier": round(totals["mean_multiplier"] / max(len(names), 1), 4),
            "weighted_error_vs_nf4": round(ratio, 4),
        }
    }
