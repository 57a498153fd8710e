"""Collapse a MoE-LoRA adapter to one plain peft LoRA, so it goes through the LoRA merge/quantize path.

Per routed layer, the mean gate g_e over calibration tokens replaces the per-token
gate: ``sum_e g_e B_e A_e`` is a rank E*r LoRA with ``A = concat_e A_e`` and
``B = concat_e g_e B_e``, exact in form. It reproduces the routed model exactly
when the gates do not depend on the token, approximately otherwise (measure it).
Plain-LoRA (attention) layers are copied unchanged at rank r through peft's
``rank_pattern``/``alpha_pattern``; the routed layers get ``r = E*r`` and
``lora_alpha = E*alpha`` so the scale stays ``alpha / r``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods.moe_lora.io import adapter_config
from adapt.methods.moe_lora.model import record_routing, routing_table, wrappers
from adapt.methods.moe_lora.state import require_state

CALIBRATION_GROUP = "calibration"
COLLAPSE_JSON = "collapse.json"


def _to_device(batch, device: torch.device) -> dict:
    if isinstance(batch, torch.Tensor):
        return {"input_ids": batch.to(device)}
    if isinstance(batch, Mapping):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    raise AdaptError(f"collapse: a calibration batch is a dict of tensors or an input_ids tensor, not {type(batch).__name__}")


def calibration_gates(model: nn.Module, batches: Iterable, name: str) -> tuple[dict[str, torch.Tensor], int]:
    """Mean gate per expert of every routed layer of adapter ``name`` over the batches' non-padding tokens."""
    state = require_state(model)
    saved_recorder, saved_active, was_training = state.recorders.pop(name, None), state.active, model.training
    state.active = name
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad(), record_routing(model, CALIBRATION_GROUP):
            for batch in batches:
                model(**_to_device(batch, device))
        table = routing_table(model, name)
    finally:
        state.recorders.pop(name, None)
        if saved_recorder is not None:
            state.recorders[name] = saved_recorder
        state.active = saved_active
        model.train(was_training)
    rows = table.groups.get(CALIBRATION_GROUP, [])
    if not rows or rows[0].tokens == 0:
        raise AdaptError("collapse: the calibration batches held no (non-padding) tokens; pass a few real batches")
    return {row.layer: torch.tensor(row.mean_gate) for row in rows}, rows[0].tokens


def collapsed_state_dict(model: nn.Module, name: str, gates: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """peft LoRA tensors (``base_model.model.<path>.lora_A.weight`` / ``lora_B.weight``) for adapter ``name``."""
    tensors = {}
    for path, layer in wrappers(model, name).items():
        experts = layer.adapters[name]
        lora_a, lora_b = experts.lora_A.detach().float().cpu(), experts.lora_B.detach().float().cpu()
        n_experts, rank = experts.num_experts, experts.rank
        if experts.routed:
            if path not in gates:
                raise AdaptError(f"collapse: no calibration tokens reached {path}; pass batches that run the whole model")
            lora_b = lora_b * gates[path].float().view(n_experts, 1, 1)
        tensors[f"base_model.model.{path}.lora_A.weight"] = lora_a.reshape(n_experts * rank, -1).contiguous()
        tensors[f"base_model.model.{path}.lora_B.weight"] = lora_b.permute(1, 0, 2).reshape(lora_b.shape[1], -1).contiguous()
    return tensors


def collapse(model: nn.Module, calibration_batches: Iterable, out_dir: Path, name: str | None = None) -> Path:
    """Write adapter ``name`` (default: active) as a standard peft LoRA into ``out_dir``; return ``out_dir``.

    ``calibration_batches``: dicts of tensors (``input_ids``, ``attention_mask``) or input_ids tensors.
    ``collapse.json`` beside the adapter records the mean gates and the calibration token count.
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    from adapt.runs import atomic_dir

    state = require_state(model)
    name = name or state.active
    if name not in state.configs:
        raise AdaptError(f"collapse: no adapter {name!r}; loaded: {sorted(state.configs)}")
    cfg = state.configs[name]
    gates, tokens = calibration_gates(model, calibration_batches, name)
    tensors = collapsed_state_dict(model, name, gates)
    config = LoraConfig(
        r=cfg.num_experts * cfg.rank,
        lora_alpha=cfg.num_experts * cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.expert_modules) + list(cfg.attention_modules),
        rank_pattern={m: cfg.rank for m in cfg.attention_modules},
        alpha_pattern={m: cfg.alpha for m in cfg.attention_modules},
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=state.base_model,
    )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        report = {
            "collapsed_from": adapter_config(cfg, state.base_model),
            "calibration_tokens": tokens,
            "mean_gates": {path: [round(v, 6) for v in g.tolist()] for path, g in gates.items()},
        }
        (tmp / COLLAPSE_JSON).write_text(json.dumps(report, indent=2) + "\n")
    return out_dir
