"""MoE-LoRA adapter files: ``adapter_config.json`` (``peft_type: MOE_LORA``) + ``adapter_model.safetensors``.

Per wrapped module ``P`` (its canonical path, no peft prefixes) the file holds
``P.lora_A`` (E, r, d_in), ``P.lora_B`` (E, d_out, r) and, when routed,
``P.router.weight`` (E, d_in); plain-LoRA (attention) modules have E = 1.
Plain peft cannot load this; :func:`adapt.methods.moe_lora.collapse.collapse` writes a plain LoRA that it can.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from adapt.models.bnb_cpu import disable_cpu_4bit_packing
from adapt.errors import AdaptError
from adapt.methods.moe_lora.config import MoELoRAConfig
from adapt.methods.moe_lora.model import add_adapter, wrappers
from adapt.methods.moe_lora.state import require_state
from adapt.methods.shared import CONFIG_NAME, WEIGHTS_NAME, read_adapter_config

PEFT_TYPE = "MOE_LORA"


def adapter_config(cfg: MoELoRAConfig, base_model: str | None) -> dict:
    return {
        "peft_type": PEFT_TYPE,
        "adapt_method": "moe_lora",
        "format_version": 1,
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "num_experts": cfg.num_experts,
        "top_k": cfg.top_k,
        "expert_modules": list(cfg.expert_modules),
        "attention_modules": list(cfg.attention_modules),
        "target_modules": list(cfg.expert_modules) + list(cfg.attention_modules),
        "aux_loss_coef": cfg.aux_loss_coef,
        "router": "linear(d_in, E), no bias; fp32 softmax; top_k renormalized",
    }


def save(model: nn.Module, out_dir: Path, name: str | None = None) -> None:
    """Write adapter ``name`` (default: the active one) to ``out_dir`` atomically."""
    from safetensors.torch import save_file

    from adapt.runs import atomic_dir

    state = require_state(model)
    name = name or state.active
    if name not in state.configs:
        raise AdaptError(f"moe_lora: nothing to save: adapter {name!r} is not loaded (loaded: {sorted(state.configs)})")
    tensors = {}
    for path, layer in wrappers(model, name).items():
        for key, tensor in layer.adapters[name].state_dict().items():
            tensors[f"{path}.{key}"] = tensor.detach().to("cpu").contiguous()
    with atomic_dir(Path(out_dir)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "peft_type": PEFT_TYPE})
        config = adapter_config(state.configs[name], state.base_model)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def read_config(adapter_dir: Path) -> MoELoRAConfig:
    raw = read_adapter_config(adapter_dir, PEFT_TYPE, "MoE-LoRA")
    return MoELoRAConfig(
        name="moe_lora", rank=raw["r"], alpha=raw["lora_alpha"], dropout=raw["lora_dropout"],
        num_experts=raw["num_experts"], top_k=raw["top_k"], expert_modules=raw["expert_modules"],
        attention_modules=raw["attention_modules"], aux_loss_coef=raw["aux_loss_coef"],
    )  # fmt: skip


def load(model: nn.Module, adapter_dir: Path, name: str = "default", trainable: bool = False) -> nn.Module:
    """Attach a saved adapter under ``name`` and make it active; everything else is frozen.

    Eval mode unless ``trainable`` (then only this adapter trains, as after :func:`build`).
    """
    from safetensors.torch import load_file

    cfg = read_config(adapter_dir)
    weights = Path(adapter_dir) / WEIGHTS_NAME
    if not weights.is_file():
        raise AdaptError(f"{weights}: missing; the adapter directory is incomplete")
    tensors = load_file(str(weights))
    add_adapter(model, cfg, name)
    expected = {}
    for path, layer in wrappers(model, name).items():
        for key, value in layer.adapters[name].state_dict().items():
            expected[f"{path}.{key}"] = value
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise AdaptError(
            f"{weights}: does not fit this base model (missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shape {wrong[:3]}); load it onto {read_base_model(adapter_dir)!r}"
        )
    with torch.no_grad():
        for key, value in expected.items():
            value.copy_(tensors[key])
    for param in model.parameters():
        param.requires_grad_(False)
    if trainable:
        disable_cpu_4bit_packing(model)
    for layer in wrappers(model, name).values():
        layer.adapters[name].requires_grad_(trainable)
    if not trainable:
        model.eval()
    return model


def read_base_model(adapter_dir: Path) -> str | None:
    return json.loads((Path(adapter_dir) / CONFIG_NAME).read_text()).get("base_model_name_or_path")
