"""The 16-bit base whose NF4-quantized linears hold their dequantized NF4 weights.

An adapter trained on an NF4 base learned against ``dequantize(codes, absmax)``,
not against the original 16-bit weights; merging into these weights reproduces
the trained model (``adapt merge --target nf4_dequant``). Used by merge, combine, bundle and
quantize's gguf-lora (:func:`base_for`), the token-classification head's merge and PEQA's merge of folded scales.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from adapt.models.config import ModelConfig

log = logging.getLogger(__name__)

Loader = Callable[["ModelConfig"], tuple[nn.Module, Any]]
"""``cfg -> (model, tokenizer)``: :func:`adapt.models.loading.load_base`, or a task's own loader."""


def nf4_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Module name -> dequantized weight of every bitsandbytes Linear4bit of ``model``."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit

    return {
        name: dequantize_4bit(module.weight.data, module.weight.quant_state)
        for name, module in model.named_modules()
        if isinstance(module, bnb.nn.Linear4bit)
    }


def base_for(recipe: Any, target: str, loader: Loader | None = None) -> tuple[nn.Module, Any]:
    """The 16-bit base a run's adapter merges into: ``nf4_dequant``: :func:`load` of ``recipe.model`` (the
    dequantized NF4 weights the adapter was trained against); ``fp16``: the original 16-bit weights.
    ``loader``: how the model is built (default :func:`adapt.models.loading.load_base`)."""
    from adapt.models.loading import load_base

    if target == "nf4_dequant":
        return load(recipe.model, loader=loader)
    return (loader or load_base)(sixteen_bit(recipe.model))


def sixteen_bit(cfg: ModelConfig) -> ModelConfig:
    """The same model config with ``quantization: none``."""
    return type(cfg)(**{**cfg.model_dump(), "quantization": "none"})


def load(
    cfg: ModelConfig,
    *,
    loader: Loader | None = None,
    prepare: Callable[[nn.Module], nn.Module] | None = None,
    biases: bool = False,
) -> tuple[nn.Module, Any]:
    """``cfg``'s model loaded in 16 bits, each linear that ``cfg`` quantizes set to its dequantized NF4 weight.

    ``loader`` loads a model (default :func:`adapt.models.loading.load_base`); ``prepare``
    changes the NF4 model before its weights are read (PEQA: fold the trained
    scales in); ``biases`` also copies those layers' biases (scaled by the fold).
    With ``quantization: none`` the 16-bit model is returned as loaded.
    Returns (model, tokenizer) of the 16-bit load.
    """
    from adapt.models.loading import load_base

    loader = loader or load_base
    weights: dict[str, torch.Tensor] = {}
    bias_of: dict[str, torch.Tensor | None] = {}
    if cfg.quantization == "nf4":
        nf4, _ = loader(cfg)
        nf4 = prepare(nf4) if prepare is not None else nf4
        weights = nf4_weights(nf4)
        bias_of = {path: nf4.get_submodule(path).bias for path in weights} if biases else {}
        del nf4
    model, tokenizer = loader(sixteen_bit(cfg))
    with torch.no_grad():
        for path, weight in weights.items():
            layer = model.get_submodule(path)
            layer.weight.copy_(weight.to(layer.weight.dtype))
            if bias_of.get(path) is not None:
                layer.bias.copy_(bias_of[path].to(layer.bias.dtype))
    log.info("%d linear layers set to their dequantized NF4 weights", len(weights))
    return model, tokenizer
