"""MoE-LoRA on a whole model: the shared state, finding the target projections, wrapping them.

The layers wrap the innermost base linear of each target (inside a peft
layer's ``base_layer`` when there is one). A forward pre-hook on the model
captures the attention mask, so the load-balancing loss and the telemetry
ignore padding without help from the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods import canonical_path
from adapt.methods.moe_layer import MoELoRALinear
from adapt.methods.moe_telemetry import RoutingRecorder
from adapt.recipe import MoELoRAMethod

_STATE_ATTR = "_moe_lora_state"


@dataclass(eq=False)
class MoEState:
    """What the wrapped layers of one model share."""

    configs: dict[str, MoELoRAMethod] = field(default_factory=dict)
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


def _attach_state(model: nn.Module) -> MoEState:
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


def _matches(path: str, targets: list[str]) -> bool:
    return any(path == t or path.endswith("." + t) for t in targets)


def wrappers(model: nn.Module, name: str | None = None) -> dict[str, MoELoRALinear]:
    """Canonical path -> MoE-LoRA layer (only those holding adapter ``name``, when given)."""
    return {m.path: m for m in model.modules() if isinstance(m, MoELoRALinear) and (name is None or name in m.adapters)}


def _targets(model: nn.Module, targets: list[str]) -> dict[str, str]:
    """Canonical path -> module name of each outermost module matching ``targets`` (peft layers included)."""
    found: dict[str, str] = {}
    for name, _ in model.named_modules():
        path = canonical_path(name)
        if path not in found and ".base_layer" not in name and _matches(path, targets):
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


def add_adapter(model: nn.Module, cfg: MoELoRAMethod, name: str) -> MoEState:
    overlap = sorted(set(cfg.expert_modules) & set(cfg.attention_modules))
    if overlap:
        raise AdaptError(f"moe_lora: {overlap} listed in both method.expert_modules and method.attention_modules; keep each in one")
    if cfg.top_k > cfg.num_experts:
        raise AdaptError(f"moe_lora: method.top_k={cfg.top_k} > method.num_experts={cfg.num_experts}; use top_k <= num_experts")
    existing = get_state(model)
    if existing is not None and name in existing.configs:
        raise AdaptError(f"moe_lora: an adapter named {name!r} is already loaded; pick another name")
    paths = _targets(model, cfg.expert_modules + cfg.attention_modules)
    if not any(_matches(p, cfg.expert_modules) for p in paths):
        raise AdaptError(
            f"moe_lora: no module matches method.expert_modules={cfg.expert_modules}; "
            "name the MLP projections of this architecture (e.g. gate_proj, up_proj, down_proj)"
        )
    state = _attach_state(model)
    layers = _wrap(model, paths, state)
    for path, layer in layers.items():
        experts = cfg.num_experts if _matches(path, cfg.expert_modules) else 1
        layer.add_adapter(name, num_experts=experts, top_k=min(cfg.top_k, experts), rank=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout)
    state.configs[name] = cfg
    state.active = name
    return state
