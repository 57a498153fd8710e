"""`method: moe_lora`: a mixture of LoRA experts with a learned router, on an NF4 or 16-bit base.

Each MLP projection in ``cfg.expert_modules`` gets E routed LoRA experts
(:mod:`adapt.methods.moe_layer`), each projection in ``cfg.attention_modules`` a
plain LoRA. The layers wrap the innermost base linear, so MoE-LoRA adapters
share one base with peft LoRA adapters and with each other (:func:`set_active`).

The method interface (:mod:`adapt.methods`) plus:

- :func:`last_balance`: the raw load-balancing value of the last forward pass;
- :func:`record_routing` / :func:`routing_table` / :func:`write_routing_report`: router telemetry;
- :func:`collapse`: a plain peft LoRA from the mean gates over calibration data;
- :func:`lora_for_merge` / :func:`routing_report`: the same, over a run directory.

Files: :mod:`moe_layer` (experts, router), :mod:`moe_model` (wrapping, shared
state), :mod:`moe_io` (save/load), :mod:`moe_telemetry`, :mod:`moe_collapse`, :mod:`moe_run`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from adapt.bnb_cpu import disable_cpu_4bit_packing
from adapt.errors import AdaptError
from adapt.methods.moe_collapse import collapse
from adapt.methods.moe_io import adapter_config, load, read_config, save
from adapt.methods.moe_layer import MoELoRALinear
from adapt.methods.moe_model import MoEState, add_adapter, get_state, require_state, wrappers
from adapt.methods.moe_run import lora_for_merge, routing_report
from adapt.methods.moe_telemetry import RoutingRecorder, RoutingTable, write_routing_report
from adapt.recipe import MoELoRAMethod

__all__ = [
    "build", "save", "load", "set_active", "auxiliary_loss", "last_balance", "record_routing", "routing_table",
    "reset_routing", "write_routing_report", "collapse", "lora_for_merge", "routing_report", "adapter_config",
    "read_config", "wrappers", "MoEState", "MoELoRALinear", "RoutingTable",
]


def build(cfg: MoELoRAMethod, model: nn.Module, name: str = "default") -> nn.Module:
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
