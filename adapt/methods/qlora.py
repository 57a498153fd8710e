"""`method: qlora`: peft LoRA over the (NF4, double-quantized) base. Standard peft all the way.

Imports nothing heavy at module level: :class:`QLoRAConfig` is part of the recipe schema.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from adapt.methods.shared import LoRAFields

if TYPE_CHECKING:
    import torch
    from torch import nn

LINEAR_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
HEAD_MODULES = ("score", "classifier")
"""Task heads of token/sequence classification models: trained fully, never LoRA-wrapped."""


class QLoRAConfig(LoRAFields):
    name: Literal["qlora"]
    target_modules: list[str] | Literal["all-linear"] = Field(default_factory=lambda: list(LINEAR_TARGETS))
    """Module name suffixes that get a LoRA, or `all-linear`."""


def _head_modules(model: nn.Module) -> list[str]:
    from torch import nn

    return [name for name in HEAD_MODULES if isinstance(getattr(model, name, None), nn.Module)]


def _targets(cfg: QLoRAConfig, model: nn.Module) -> list[str] | str:
    if cfg.target_modules != "all-linear" or not _head_modules(model):
        return cfg.target_modules
    # "all-linear" would also wrap the new head, which collides with modules_to_save (DESIGN.md).
    return list(LINEAR_TARGETS)


def _task_type(model: nn.Module, heads: list[str]):
    from peft import TaskType

    if not heads:
        return TaskType.CAUSAL_LM
    return TaskType.SEQ_CLS if type(model).__name__.endswith("ForSequenceClassification") else TaskType.TOKEN_CLS


def lora_config(cfg: QLoRAConfig, model: nn.Module):
    from peft import LoraConfig

    heads = _head_modules(model)
    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=_targets(cfg, model),
        modules_to_save=heads or None,
        task_type=_task_type(model, heads),
        bias="none",
    )


def build(cfg: QLoRAConfig, model: nn.Module) -> nn.Module:
    """peft LoRA on the base as loaded.

    peft's ``prepare_model_for_kbit_training`` is deliberately not used: it
    upcasts every non-quantized weight (the 49k x 576 embedding included) to
    fp32 for fp16 stability, which bf16 compute does not need and which costs
    memory and CPU time. The LoRA weights themselves stay fp32.
    """
    from peft import get_peft_model

    from adapt.models.quiet import peft_wrap

    with peft_wrap():
        return get_peft_model(model, lora_config(cfg, model))


def save(model: nn.Module, out_dir: Path) -> None:
    model.save_pretrained(out_dir, safe_serialization=True)


def load(model: nn.Module, adapter_dir: Path, name: str = "default") -> nn.Module:
    from peft import PeftModel

    from adapt.models.quiet import peft_wrap

    if isinstance(model, PeftModel):
        model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        return model
    with peft_wrap():
        return PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=name, is_trainable=False).eval()


def set_active(model: nn.Module, name: str | None) -> None:
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            if name is None or name not in module.lora_A:
                module.enable_adapters(False)
            else:
                module.enable_adapters(True)
                module.set_adapter(name)


def fast_switch(model: nn.Module) -> Callable[[str | None], None]:
    """The effect of :func:`set_active` on cached layers, without the module walk and requires_grad toggles."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]

    def switch(name: str | None) -> None:
        for layer in layers:
            if name is None or name not in layer.lora_A:
                layer._disable_adapters = True
            else:
                layer._disable_adapters = False
                layer._active_adapter = [name]

    return switch


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    return None


def lora_for_merge(run, recipe) -> Path:
    """The run's adapter is already a plain peft LoRA."""
    return run.require_adapter()
