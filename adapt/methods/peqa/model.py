"""PEQA on a whole model: the method interface (build, set_active, auxiliary_loss), finding and wrapping layers.

Kim et al. 2023 (PEQA) over bitsandbytes NF4: the 4-bit codes stay frozen and
each target layer learns log scales ``theta`` (``alpha = exp(theta)``, zeros are
exactly the base), one per output row (``channel``) or one per 64-value NF4
block (``block``); see :mod:`.layer`. Several named scale sets live on one base
(:func:`set_active` switches them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods.peqa.config import PEQAConfig
from adapt.methods.peqa.layer import PEQALinear, block_absmax, is_4bit
from adapt.methods.shared import canonical_path, module_matches

CONFIGS_ATTR = "_peqa_configs"
"""Model attribute: scale set name -> its PEQAConfig (what adapter_config.json records)."""


# --------------------------------------------------------------------------- finding layers
def wrappers(model: nn.Module, name: str | None = None) -> dict[str, PEQALinear]:
    """Canonical path -> PEQA layer (only those holding scale set ``name``, when given)."""
    return {
        canonical_path(path): m
        for path, m in model.named_modules()
        if isinstance(m, PEQALinear) and (name is None or name in m.log_scales)
    }


def _excluded(model: nn.Module) -> set[int]:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {id(out)} if out is not None else set()


def innermost(model: nn.Module) -> dict[str, tuple[nn.Module, str, nn.Module]]:
    """Canonical path -> (parent, attribute, layer) for every innermost base linear or PEQA layer.

    Follows only the ``base_layer`` chain of peft/MoE wrappers (their own
    LoRA/router linears are not base layers); on a model with any 4-bit layer
    only the 4-bit layers count (a 16-bit task head is not a target).
    """
    skip = _excluded(model)
    found: dict[str, tuple[nn.Module, str, nn.Module]] = {}

    def visit(parent: nn.Module, attr: str, child: nn.Module, path: str) -> None:
        while not isinstance(child, PEQALinear) and isinstance(getattr(child, "base_layer", None), nn.Module):
            parent, attr, child = child, "base_layer", child.base_layer
        if isinstance(child, (PEQALinear, nn.Linear)) and id(child) not in skip:
            found[canonical_path(path)] = (parent, attr, child)
        elif not isinstance(child, (PEQALinear, nn.Linear)):
            for sub_attr, sub in child.named_children():
                visit(child, sub_attr, sub, f"{path}.{sub_attr}" if path else sub_attr)

    for attr, child in model.named_children():
        visit(model, attr, child, attr)
    if any(is_4bit(_base(c)) for _, _, c in found.values()):
        found = {p: v for p, v in found.items() if is_4bit(_base(v[2]))}
    return found


def _base(layer: nn.Module) -> nn.Module:
    return layer.base_layer if isinstance(layer, PEQALinear) else layer


def wrap(model: nn.Module, paths: list[str] | None, targets: list[str] | str) -> dict[str, PEQALinear]:
    """Wrap (or reuse the wrapper of) each chosen innermost linear; returns path -> PEQA layer."""
    layers = innermost(model)
    chosen = {p: v for p, v in layers.items() if (p in paths if paths is not None else module_matches(p, targets))}
    if not chosen:
        sample = ", ".join(sorted(layers)[:4])
        raise AdaptError(
            f"peqa: method.target_modules={targets!r} matches no quantized linear layer of this model "
            f"(it has e.g. {sample}); name projection suffixes like q_proj, or use all-linear"
        )
    out = {}
    for path, (parent, attr, layer) in chosen.items():
        if not isinstance(layer, PEQALinear):
            layer = PEQALinear(layer)
            setattr(parent, attr, layer)
        out[path] = layer
    return out


def check_name(name: str, model: nn.Module) -> None:
    if not name or "." in name:
        raise AdaptError(f"peqa: scale set name {name!r} must be non-empty and contain no '.'")
    if wrappers(model, name):
        raise AdaptError(f"peqa: a scale set named {name!r} is already loaded; pick another name")


# --------------------------------------------------------------------------- method interface
def build(cfg: PEQAConfig, model: nn.Module, name: str = "default") -> nn.Module:
    """Freeze the base, add trainable identity scales ``name`` to the target layers, make them active."""
    for param in model.parameters():
        param.requires_grad_(False)
    check_name(name, model)
    for path, layer in wrap(model, None, cfg.target_modules).items():
        add_scales(layer, path, name, cfg.granularity, None, trainable=True)
    set_active(model, name)
    model.__dict__[CONFIGS_ATTR] = {**configs(model), name: cfg}
    return model


def add_scales(layer: PEQALinear, path: str, name: str, granularity: str, theta, trainable: bool) -> None:
    try:
        layer.add_scales(name, granularity, theta, trainable=trainable)
    except ValueError as exc:
        raise AdaptError(f"peqa: {path}: {exc}; the adapter was trained on another base model") from None
    except AdaptError as exc:
        raise AdaptError(f"peqa: {path}: {exc}") from None


def configs(model: nn.Module) -> dict[str, PEQAConfig]:
    return model.__dict__.get(CONFIGS_ATTR, {})


def set_active(model: nn.Module, name: str | None) -> None:
    """Use scale set ``name`` in the forward pass (None: the plain base). Flips a flag per layer."""
    layers = [m for m in model.modules() if isinstance(m, PEQALinear)]
    if name is not None and not any(name in m.log_scales for m in layers):
        raise AdaptError(f"peqa: no scale set {name!r}; loaded: {scale_sets(model)}")
    for layer in layers:
        layer.active = name


def fast_switch(model: nn.Module) -> Callable[[str | None], None]:
    """The effect of :func:`set_active` on cached layers (every PEQA layer's ``active``), without the module walk."""
    layers = [m for m in model.modules() if isinstance(m, PEQALinear)]

    def switch(name: str | None) -> None:
        for layer in layers:
            layer.active = name

    return switch


def scale_sets(model: nn.Module) -> list[str]:
    return sorted({n for m in model.modules() if isinstance(m, PEQALinear) for n in m.log_scales})


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    return None


def active_set(model: nn.Module, name: str | None) -> str:
    """``name``, or the scale set in use when None; AdaptError when there is none of that name."""
    name = name or next((m.active for m in model.modules() if isinstance(m, PEQALinear) and m.active), None)
    if name is None or name not in scale_sets(model):
        raise AdaptError(f"peqa: no scale set {name!r} on this model; loaded: {scale_sets(model)}")
    return name


# --------------------------------------------------------------------------- checks
def block_scales(model: nn.Module) -> dict[str, torch.Tensor]:
    """Canonical path -> the fp32 NF4 block scales of every (wrapped or plain) 4-bit layer; for checks."""
    return {p: block_absmax(_base(v[2])) for p, v in innermost(model).items() if is_4bit(_base(v[2]))}
