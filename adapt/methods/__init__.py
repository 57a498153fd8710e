"""Fine-tuning methods. Each is one module with the same functions:

``build(cfg, model) -> nn.Module``
    Wrap a freshly loaded base (NF4 or 16-bit) for training: only the
    method's parameters require grad.
``save(model, out_dir: Path) -> None``
    Write the adapter in the PEFT layout (adapter_config.json +
    adapter_model.safetensors) into ``out_dir``.
``load(model, adapter_dir: Path, name: str = "default") -> nn.Module``
    Attach a saved adapter to a base (or to a model that already carries
    other adapters) under ``name``, in eval mode; returns the model to use.
``set_active(model, name: str | None) -> None``
    Switch the adapter used by the forward pass in memory; None means the
    plain base model.
``auxiliary_loss(model) -> torch.Tensor | None``
    Extra training loss (MoE-LoRA load balancing); None for most methods.

Custom methods (MoE-LoRA, PEQA) wrap the innermost base linear layers
(bitsandbytes ``Linear4bit`` or ``nn.Linear``), so they co-exist with peft
LoRA layers on one shared base in the demo; they key saved tensors by
:func:`canonical_path`, so an adapter loads whatever else wraps the base.
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHOD_MODULES = {"qlora": "adapt.methods.qlora", "moe_lora": "adapt.methods.moe_lora", "peqa": "adapt.methods.peqa"}


def get_method(name: str) -> ModuleType:
    return importlib.import_module(METHOD_MODULES[name])


def canonical_path(name: str) -> str:
    """Module name without peft's ``base_model.model.`` prefix and ``.base_layer`` links."""
    name = name.removeprefix("base_model.model.")
    return ".".join(part for part in name.split(".") if part != "base_layer")
