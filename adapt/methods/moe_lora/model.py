"""MoE-LoRA on a whole model: the method interface (build, set_active, auxiliary_loss), wrapping, telemetry.

The layers (:mod:`.layer`) wrap the innermost base linear of each target (inside a
peft layer's ``base_layer`` when there is one), so MoE-LoRA adapters share one
base with peft LoRA adapters and with each other (:func:`set_active`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from adapt.models.bnb_cpu import disable_cpu_4bit_packing
from adapt.errors import AdaptError
from adapt.methods.moe_lora.config import MoELoRAConfig
from adapt.methods.moe_lora.layer import MoELoRALinear
from adapt.methods.moe_lora.state import MoEState, attach_state, get_state, require_state
from adapt.methods.moe_lora.telemetry import RoutingRecorder, RoutingTable
from adapt.methods.shared import canonical_path, module_matches


def wrappers(model: nn.Module, name: str | None = None) -> dict[str, MoELoRALinear]:
    """Canonical path -> MoE-LoRA layer (only those holding adapter ``name``, when given)."""
    return {m.path: m for m in model.modules() if isinstance(m, MoELoRALinear) and (name is None or name in m.adapters)}


def _targets(model: nn.Module, targets: list[str]) -> dict[str, str]:
    """Canonical path -> module name of each outermost module matching ``targets`` (peft layers included)."""
    found: dict[str, str] = {}
    for name, _ in model.named_modules():
        path = canonical_path(name)
        if path not in found and ".base_layer" not in name and module_matches(path, targets):
            found[path] = name
    return found


def _wrap(model: nn.Module, paths: dict[str, str], state: MoEState) -> dict[str, MoELoRALinear]:
    """Find (or create) the MoE-LoRA layer around each target's innermost base linear."""
    layers: dict[str, MoELoRALinear] = {}
    for path, name in paths.items():
        parent, attr, inner = None, None, model.get_submodule(name)
        while hasattr(inner, "base_layer") and not isinstance(inner, MoELoRALinear):
            parent, attr, inner = inner, "base_layer", inner.base_layer
        if isinstance(inner, MoELoRALinear):
            layers[path] = inner
            continue
        if not isinstance(inner, nn.Linear):  # bitsandbytes Linear4bit / Linear8bitLt subclass nn.Linear
            raise AdaptError(f"moe_lora: {name} is a {type(inner).__name__}, not a linear layer; drop it from the targets")
        if parent is None:
            owner_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(owner_name) if owner_name else model
        layers[path] = MoELoRALinear(inner, path, state)
        setattr(parent, attr, layers[path])
    return layers


def add_adapter(model: nn.Module, cfg: MoELoRAConfig, name: str) -> MoEState:
    overlap = sorted(set(cfg.expert_modules) & set(cfg.attention_modules))
    if overlap:
        raise AdaptError(f"moe_lora: {overlap} listed in both method.expert_modules and method.attention_modules; keep each in one")
    if cfg.top_k > cfg.num_experts:
        raise AdaptError(f"moe_lora: method.top_k={cfg.top_k} > method.num_experts={cfg.num_experts}; use top_k <= num_experts")
    existing = get_state(model)
    if existing is not None and name in existing.configs:
        raise AdaptError(f"moe_lora: an adapter named {name!r} is already loaded; pick another name")
    paths = _targets(model, cfg.expert_modules + cfg.attention_modules)
    if not any(module_matches(p, cfg.expert_modules) for p in paths):
        raise AdaptError(
            f"moe_lora: no module matches method.expert_modules={cfg.expert_modules}; "
            "name the MLP projections of this architecture (e.g. gate_proj, up_proj, down_proj)"
        )
    state = attach_state(model)
    layers = _wrap(model, paths, state)
    for path, layer in layers.items():
        experts = cfg.num_experts if module_matches(path, cfg.expert_modules) else 1
        layer.add_adapter(name, num_experts=experts, top_k=min(cfg.top_k, experts), rank=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout)
    state.configs[name] = cfg
    state.active = name
    return state


def build(cfg: MoELoRAConfig, model: nn.Module, name: str = "default") -> nn.Module:
    """Freeze the base, add a trainable MoE-LoRA adapter ``name`` and make it active."""
    for param in model.parameters():
        param.requires_grad_(False)
    disable_cpu_4bit_packing(model)
    add_adapter(model, cfg, name)
    for layer in wrappers(model, name).values():
        layer.adapters[name].requires_grad_(True)
    return model


def set_active(model: nn.Module, name: str | None) -> None:
    """Use adapter ``name`` in the forward pass; None: the plain base."""
    state = get_state(model)
    if state is None:
        if name is None:
            return
        raise AdaptError(f"moe_lora: no adapter {name!r}: this model carries no MoE-LoRA adapter")
    if name is not None and name not in state.configs:
        raise AdaptError(f"moe_lora: no adapter {name!r}; loaded: {sorted(state.configs)}")
    state.active = name


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    """``aux_loss_coef`` x the load-balancing loss of the last forward pass, averaged over routed layers."""
    state = get_state(model)
    if state is None or state.active is None or not state.balance_terms:
        return None
    terms = [t for t in state.balance_terms if t.requires_grad] or state.balance_terms
    device = terms[0].device
    return state.configs[state.active].aux_loss_coef * torch.stack([t.to(device) for t in terms]).mean()


def last_balance(model: nn.Module) -> float | None:
    """The raw (unweighted) balance loss of the last forward pass, averaged over routed layers.

    1.0 is perfectly balanced; E/k when every token goes to the same k experts.
    None before any forward pass that computed it (training, or ``state.track_balance`` in eval).
    """
    state = get_state(model)
    if state is None or not state.balance_terms:
        return None
    return float(torch.stack([t.detach().float().cpu() for t in state.balance_terms]).mean())


@contextlib.contextmanager
def record_routing(model: nn.Module, group: str) -> Iterator[RoutingRecorder]:
    """Accumulate router telemetry of the forwards inside the block under ``group``."""
    state = require_state(model)
    previous, state.recording = state.recording, group
    try:
        yield state.recorder(state.active or "")
    finally:
        state.recording = previous


def routing_table(model: nn.Module, name: str | None = None) -> RoutingTable:
    """The telemetry recorded so far for adapter ``name`` (default: the active one)."""
    state = require_state(model)
    name = name or state.active
    if name not in state.configs:
        raise AdaptError(f"moe_lora: no adapter {name!r}; loaded: {sorted(state.configs)}")
    cfg = state.configs[name]
    return state.recorder(name).table(name, cfg.num_experts, cfg.top_k)


def reset_routing(model: nn.Module) -> None:
    state = require_state(model)
    for recorder in state.recorders.values():
        recorder.reset()
