"""PEQA adapter files: ``adapter_config.json`` (``peft_type: PEQA``) + ``adapter_model.safetensors``.

One ``<module path>.peqa_log_scale`` vector (fp32) per wrapped layer, keyed by
the canonical module path, so a scale set loads whatever else wraps the base.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods.peqa.config import PEQAConfig
from adapt.methods.peqa.layer import GRANULARITIES, is_4bit
from adapt.methods.peqa.model import CONFIGS_ATTR, active_set, add_scales, check_name, configs, innermost, set_active, wrap, wrappers
from adapt.methods.shared import CONFIG_NAME, WEIGHTS_NAME, read_adapter_config

PEFT_TYPE = "PEQA"
KEY_SUFFIX = ".peqa_log_scale"


def adapter_config(model: nn.Module, name: str) -> dict:
    layers = wrappers(model, name)
    granularity = {layer.granularity[name] for layer in layers.values()}.pop()
    cfg = configs(model).get(name)
    targets = cfg.target_modules if cfg else sorted(layers)
    return {
        "peft_type": PEFT_TYPE,
        "adapt_method": "peqa",
        "format_version": 1,
        "task_type": "CAUSAL_LM",
        "granularity": granularity,
        "target_modules": targets,
        "base_model_name_or_path": getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None),
        "parametrization": "alpha = exp(theta); y = alpha * base(x) per row (channel) or absmax * alpha per NF4 block (block)",
        "blocksize": next((lay.base_layer.weight.quant_state.blocksize for lay in layers.values() if is_4bit(lay.base_layer)), None),
        "modules": sorted(layers),
    }


def save(model: nn.Module, out_dir: Path, name: str | None = None) -> None:
    """Write scale set ``name`` (default: the active one) to ``out_dir`` atomically."""
    from safetensors.torch import save_file

    from adapt.runs import atomic_dir

    name = active_set(model, name)
    tensors = {f"{path}{KEY_SUFFIX}": layer.log_scales[name].detach().to("cpu", torch.float32).contiguous()
               for path, layer in wrappers(model, name).items()}  # fmt: skip
    with atomic_dir(Path(out_dir)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "peft_type": PEFT_TYPE})
        (tmp / CONFIG_NAME).write_text(json.dumps(adapter_config(model, name), indent=2) + "\n")


def read_config(adapter_dir: Path) -> dict:
    raw = read_adapter_config(adapter_dir, PEFT_TYPE, "PEQA")
    if raw.get("granularity") not in GRANULARITIES:
        raise AdaptError(f"{Path(adapter_dir) / CONFIG_NAME}: granularity {raw.get('granularity')!r} is not one of {GRANULARITIES}")
    return raw


def load(model: nn.Module, adapter_dir: Path, name: str = "default", trainable: bool = False) -> nn.Module:
    """Attach saved scales under ``name`` and make them active (eval mode unless ``trainable``)."""
    from safetensors.torch import load_file

    raw = read_config(adapter_dir)
    weights = Path(adapter_dir) / WEIGHTS_NAME
    if not weights.is_file():
        raise AdaptError(f"{weights}: missing; the adapter directory is incomplete")
    tensors = load_file(str(weights))
    bad = [k for k in tensors if not k.endswith(KEY_SUFFIX)]
    if bad:
        raise AdaptError(f"{weights}: unexpected tensors {bad[:3]}; this is not a PEQA adapter")
    check_name(name, model)
    paths = [k.removesuffix(KEY_SUFFIX) for k in tensors]
    available = innermost(model)
    missing = [p for p in paths if p not in available]
    if missing:
        raise AdaptError(
            f"{weights}: layers {missing[:3]} are not in this model; load it onto {raw.get('base_model_name_or_path')!r}"
        )
    for path, layer in wrap(model, paths, raw.get("target_modules", "all-linear")).items():
        add_scales(layer, path, name, raw["granularity"], tensors[path + KEY_SUFFIX], trainable)
    model.__dict__[CONFIGS_ATTR] = {
        **configs(model),
        name: PEQAConfig(name="peqa", granularity=raw["granularity"], target_modules=raw.get("target_modules", "all-linear")),
    }
    set_active(model, name)
    if not trainable:
        model.eval()
    return model
