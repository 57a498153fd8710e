"""What the MoE-LoRA layers of one model share (:class:`MoEState`), kept on the model itself.

A forward pre-hook on the model captures the attention mask, so the
load-balancing loss and the telemetry ignore padding without help from the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods.moe_lora.config import MoELoRAConfig
from adapt.methods.moe_lora.telemetry import RoutingRecorder

_STATE_ATTR = "_moe_lora_state"


@dataclass(eq=False)
class MoEState:
    """What the wrapped layers of one model share."""

    configs: dict[str, MoELoRAConfig] = field(default_factory=dict)
    base_model: str | None = None
    active: str | None = None
    attention_mask: torch.Tensor | None = None
    """2-D mask of the current forward pass, captured by the model's pre-hook."""
    balance_terms: list[torch.Tensor] = field(default_factory=list)
    """Raw balance loss of each routed layer in the current forward pass."""
    track_balance: bool = False
    """Also compute balance terms without grad (eval); training always does."""
    recording: str | None = None
    """Telemetry group while :func:`record_routing` is open."""
    recorders: dict[str, RoutingRecorder] = field(default_factory=dict)

    def recorder(self, name: str) -> RoutingRecorder:
        return self.recorders.setdefault(name, RoutingRecorder())


def get_state(model: nn.Module) -> MoEState | None:
    for module in model.modules():
        state = module.__dict__.get(_STATE_ATTR)
        if state is not None:
            return state
    return None


def require_state(model: nn.Module) -> MoEState:
    state = get_state(model)
    if state is None:
        raise AdaptError("this model carries no MoE-LoRA adapter; call moe_lora.build(cfg, model) or moe_lora.load(...)")
    return state


def attach_state(model: nn.Module) -> MoEState:
    state = get_state(model)
    if state is not None:
        return state
    config = getattr(model, "config", None)
    state = MoEState(base_model=getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None))
    model.__dict__[_STATE_ATTR] = state

    def capture_mask(module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        state.attention_mask = mask if isinstance(mask, torch.Tensor) else None
        state.balance_terms.clear()

    model.register_forward_pre_hook(capture_mask, with_kwargs=True)
    return state
