"""PEQA export: fold trained scales into the NF4 block scales and write a standard bitsandbytes checkpoint.

- :func:`fold_block_multipliers`: the reusable core: multiply the block scales
  (``quant_state.absmax``) of one bitsandbytes ``Linear4bit`` by one
  multiplier per block or per row, in place; the 4-bit codes do not change.
- :func:`fold`: every PEQA layer's ``alpha = exp(theta)`` folded in and the
  wrappers removed; :func:`export_nf4` saves the folded model as a standard
  bitsandbytes NF4 checkpoint that plain ``from_pretrained`` loads. The trained
  layers already compute with the folded block scales, so the export's logits
  equal the trained model's (bit for bit in bf16). Folded block scales are
  stored un-nested (fp32, +0.5 bit a weight instead of +0.13): re-nesting them
  (``double_quant=True``) rounds every block scale to 8 bits again, which moved
  SmolLM2-135M's logits by up to 1.5. On a 16-bit base the channel scales fold
  into the weight rows.

Over run directories (``adapt merge``, ``adapt quantize --format nf4``): :mod:`.run`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods.peqa.layer import PEQALinear, block_absmax, is_4bit, write_absmax
from adapt.methods.peqa.model import CONFIGS_ATTR, active_set, innermost


@torch.no_grad()
def fold_block_multipliers(layer: nn.Module, multipliers: torch.Tensor, *, double_quant: bool = False):
    """Multiply the NF4 block scales of a bitsandbytes ``Linear4bit`` by ``multipliers``, in place.

    The dequantized weight of block ``b`` becomes ``code[idx_b] * absmax_b * multipliers_b``:
    the 4-bit codes stay as they are, only ``quant_state.absmax`` changes, so the
    layer stays a standard NF4 layer that ``save_pretrained`` writes and plain
    ``from_pretrained`` loads.

    Args:
        layer: a ``bitsandbytes.nn.Linear4bit`` (not a wrapper around one), nested or
            not, canonical or repacked for bitsandbytes' CPU kernel (:mod:`adapt.models.bnb_cpu`);
            it is left in the canonical layout.
        multipliers: fp32-able, either one per NF4 block (``out_features * in_features
            / blocksize`` values, row-major: block ``b`` holds flat weight elements
            ``[b * blocksize, (b + 1) * blocksize)`` of the [out, in] weight, the order
            of :func:`adapt.methods.peqa.layer.block_absmax`), or one per output row
            (``out_features`` values, each applied to all blocks of its row; needs
            ``in_features % blocksize == 0``). The new scales are computed in fp32 as
            ``block_absmax(layer) * multipliers`` (per row: repeated over the row's
            blocks), the same arithmetic PEQA's forward uses, hence bit-exact.
        double_quant: nest the new scales (8-bit blockwise, as ``quantize_4bit`` does):
            smaller, but every block scale is rounded again. Default: un-nested fp32.

    Returns:
        The layer's new ``QuantState``. The tensors a checkpoint stores come from
        ``layer.state_dict()`` (``weight``, ``weight.absmax``, ``weight.quant_map``,
        ``weight.quant_state.bitsandbytes__nf4``, plus ``nested_*`` when nested).

    Raises:
        ValueError: ``layer`` is not 4-bit, or ``multipliers`` has neither count.
    """
    if not is_4bit(layer):
        raise ValueError(f"fold_block_multipliers needs a bitsandbytes Linear4bit, got {type(layer).__name__}")
    absmax = block_absmax(layer)
    multipliers = multipliers.detach().reshape(-1).to(device=absmax.device, dtype=torch.float32)
    n_blocks, n_rows = absmax.numel(), layer.out_features
    if multipliers.numel() != n_blocks:
        if multipliers.numel() != n_rows or n_blocks % n_rows:
            raise ValueError(
                f"expected {n_blocks} block multipliers or {n_rows} row multipliers "
                f"(rows whole in blocks), got {multipliers.numel()}"
            )
        multipliers = multipliers.repeat_interleave(n_blocks // n_rows)
    write_absmax(layer, absmax * multipliers, double_quant)
    return layer.weight.quant_state


@torch.no_grad()
def fold(model: nn.Module, name: str | None = None, double_quant: bool = False) -> nn.Module:
    """Fold scale set ``name`` (default: the active one) into the base and remove every PEQA wrapper.

    NF4 layers get ``absmax * alpha`` as their block scales (un-nested fp32
    unless ``double_quant``); 16-bit layers get their rows scaled (channel
    only). Other scale sets on the model are dropped. Returns the plain model.
    """
    name = active_set(model, name)
    for path, (parent, attr, layer) in innermost(model).items():
        if not isinstance(layer, PEQALinear):
            continue
        base = layer.base_layer
        if name in layer.log_scales:
            alpha = layer.log_scales[name].detach().float().exp()
            if is_4bit(base):
                fold_block_multipliers(base, alpha, double_quant=double_quant)
            else:  # 16-bit base: channel scales only (build refuses block)
                base.weight.data = (base.weight.float() * alpha[:, None].to(base.weight.device)).to(base.weight.dtype)
            if base.bias is not None and layer.granularity[name] == "channel":
                base.bias.data = (base.bias.float() * alpha.to(base.bias.device)).to(base.bias.dtype)
        setattr(parent, attr, base)
    model.__dict__.pop(CONFIGS_ATTR, None)
    return model


def _mark_quant_config(model: nn.Module, double_quant: bool) -> None:
    """Keep the saved quantization_config truthful about how the block scales are stored."""
    for holder in (getattr(model, "hf_quantizer", None), getattr(model, "config", None)):
        qcfg = getattr(holder, "quantization_config", None)
        if qcfg is not None and hasattr(qcfg, "bnb_4bit_use_double_quant"):
            qcfg.bnb_4bit_use_double_quant = double_quant


def export_nf4(model: nn.Module, out_dir: Path, tokenizer=None, name: str | None = None, double_quant: bool = False) -> Path:
    """Fold ``name`` into the NF4 base (in place: the wrappers are gone afterwards) and save a standard
    bitsandbytes NF4 checkpoint (safetensors, quantization config in config.json) atomically."""
    from adapt.runs import atomic_dir

    if not any(is_4bit(m) for m in model.modules()):
        raise AdaptError("peqa: export_nf4 needs an NF4 base (model.quantization: nf4); a 16-bit base folds with fold()")
    model = fold(model, name, double_quant=double_quant)
    _mark_quant_config(model, double_quant)
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(out_dir)
