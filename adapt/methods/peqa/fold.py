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
- Run directories: :func:`merge_into` (``adapt merge``) and :func:`export_run`
  (``adapt quantize --format nf4``, which must not re-quantize a PEQA run).

:mod:`adapt.methods.peqa` re-exports :func:`fold`, :func:`export_nf4`,
:func:`merge_into` and :func:`export_run` (``adapt merge`` finds
``merge_into`` on the method module); this module imports ``peqa`` inside the
functions that need it, so either module can be imported first.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods.peqa_layer import PEQALinear, block_absmax, is_4bit, write_absmax

__all__ = ["fold_block_multipliers", "fold", "export_nf4", "merge_into", "export_run"]


@torch.no_grad()
def fold_block_multipliers(layer: nn.Module, multipliers: torch.Tensor, *, double_quant: bool = False):
    """Multiply the NF4 block scales of a bitsandbytes ``Linear4bit`` by ``multipliers``, in place.

    The dequantized weight of block ``b`` becomes ``code[idx_b] * absmax_b * multipliers_b``:
    the 4-bit codes stay as they are, only ``quant_state.absmax`` changes, so the
    layer stays a standard NF4 layer that ``save_pretrained`` writes and plain
    ``from_pretrained`` loads.

    Args:
        layer: a ``bitsandbytes.nn.Linear4bit`` (not a wrapper around one), nested or
            not, canonical or repacked for bitsandbytes' CPU kernel (:mod:`adapt.bnb_cpu`);
            it is left in the canonical layout.
        multipliers: fp32-able, either one per NF4 block (``out_features * in_features
            / blocksize`` values, row-major: block ``b`` holds flat weight elements
            ``[b * blocksize, (b + 1) * blocksize)`` of the [out, in] weight, the order
            of :func:`adapt.methods.peqa_layer.block_absmax`), or one per output row
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
    from adapt.methods.peqa import _active, _innermost

    name = _active(model, name)
    for path, (parent, attr, layer) in _innermost(model).items():
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
    model.__dict__.pop("_peqa_configs", None)
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


def merge_into(run, recipe, target: str, out_dir: Path) -> None:
    """`adapt merge` for PEQA: the base with the scales folded in, as a 16-bit HF model.

    ``nf4_dequant``: the folded NF4 weights dequantized (exactly the trained
    model); ``fp16``: the scales applied to the rows of the original 16-bit
    weights (channel granularity only).
    """
    from adapt import models
    from adapt.merge import dequantized_nf4_weights
    from adapt.methods.peqa import load, read_config
    from adapt.recipe import ModelConfig

    raw = read_config(run.require_adapter())
    dtype = models.compute_dtype(recipe.model)
    fp16_cfg = ModelConfig(**{**recipe.model.model_dump(), "quantization": "none"})
    if target == "fp16" and raw["granularity"] == "block":
        raise AdaptError(
            f"{run.adapter}: block scales belong to NF4 blocks and do not fold into 16-bit weights; "
            "use export.merge: [nf4_dequant] for granularity block"
        )
    if target == "nf4_dequant":
        nf4 = fold(load(models.load_base(recipe.model)[0], run.adapter))
        weights = dequantized_nf4_weights(nf4)
        biases = {path: nf4.get_submodule(path).bias for path in weights}
        model, tokenizer = models.load_base(fp16_cfg)
        for path, weight in weights.items():
            layer = model.get_submodule(path)
            layer.weight.data.copy_(weight.to(dtype))
            if biases[path] is not None:
                layer.bias.data.copy_(biases[path].to(dtype))
        del nf4
    else:
        model, tokenizer = models.load_base(fp16_cfg)
        model = fold(load(model, run.adapter))
    model.to(models.storage_dtype(recipe.model))  # folded in the compute dtype, written in 16 bits
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def export_run(run, recipe, out_dir: Path, double_quant: bool = False) -> Path:
    """`adapt quantize --format nf4` for PEQA: fold the run's scales into the NF4 base; no re-quantization."""
    from adapt import models
    from adapt.methods.peqa import load
    from adapt.recipe import ModelConfig

    # The non-quantized weights (embeddings, norms) are written as loaded: load them in 16 bits.
    storage = ModelConfig(**{**recipe.model.model_dump(), "compute_dtype": str(models.storage_dtype(recipe.model)).removeprefix("torch.")})
    model, tokenizer = models.load_base(storage)
    return export_nf4(load(model, run.require_adapter()), out_dir, tokenizer, double_quant=double_quant)
