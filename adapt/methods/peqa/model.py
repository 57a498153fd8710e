"""`method: peqa`: train only the NF4 quantization scales; the result is already the quantized model.

Kim et al. 2023 (PEQA) over bitsandbytes NF4: the 4-bit codes stay frozen and
each target layer learns log scales ``theta`` (``alpha = exp(theta)``, zeros are
exactly the base), one per output row (``channel``) or one per 64-value NF4
block (``block``); see :mod:`adapt.methods.peqa_layer`.

- Hot swap: several named scale sets live on one base (:func:`load` with a
  name, :func:`set_active`); the adapter directory is ``adapter_config.json``
  (``peft_type: PEQA``) + ``adapter_model.safetensors`` with one
  ``<module path>.peqa_log_scale`` vector per layer (fp32).
- Export (:mod:`adapt.methods.peqa_export`, re-exported here): :func:`fold`
  multiplies the NF4 block scales (``quant_state.absmax``) by alpha and removes
  the wrappers; :func:`export_nf4` writes the folded model as a standard
  bitsandbytes NF4 checkpoint that plain ``from_pretrained`` loads, with the
  trained model's logits. Run directories: :func:`merge_into` (``adapt merge``)
  and :func:`export_run` (``adapt quantize --format nf4``, which must not
  re-quantize a PEQA run).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from adapt.errors import AdaptError
from adapt.methods import canonical_path
from adapt.methods.peqa_export import export_nf4, export_run, fold, merge_into
from adapt.methods.peqa_layer import GRANULARITIES, PEQALinear, block_absmax, is_4bit
from adapt.recipe import PEQAMethod

__all__ = [
    "build", "save", "load", "set_active", "auxiliary_loss", "trainable_parameters", "scale_sets",
    "fold", "export_nf4", "merge_into", "export_run", "read_config", "wrappers", "block_scales", "PEQALinear",
]  # fmt: skip

PEFT_TYPE = "PEQA"
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
KEY_SUFFIX = ".peqa_log_scale"


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


def _innermost(model: nn.Module) -> dict[str, tuple[nn.Module, str, nn.Module]]:
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


def _matches(path: str, targets: list[str] | str) -> bool:
    return targets == "all-linear" or any(path == t or path.endswith("." + t) for t in targets)


def _wrap(model: nn.Module, paths: list[str] | None, targets: list[str] | str) -> dict[str, PEQALinear]:
    """Wrap (or reuse the wrapper of) each chosen innermost linear; returns path -> PEQA layer."""
    layers = _innermost(model)
    chosen = {p: v for p, v in layers.items() if (p in paths if paths is not None else _matches(p, targets))}
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


def _check_name(name: str, model: nn.Module) -> None:
    if not name or "." in name:
        raise AdaptError(f"peqa: scale set name {name!r} must be non-empty and contain no '.'")
    if wrappers(model, name):
        raise AdaptError(f"peqa: a scale set named {name!r} is already loaded; pick another name")


# --------------------------------------------------------------------------- method interface
def build(cfg: PEQAMethod, model: nn.Module, name: str = "default") -> nn.Module:
    """Freeze the base, add trainable identity scales ``name`` to the target layers, make them active."""
    for param in model.parameters():
        param.requires_grad_(False)
    _check_name(name, model)
    for path, layer in _wrap(model, None, cfg.target_modules).items():
        _add(layer, path, name, cfg.granularity, None, trainable=True)
    set_active(model, name)
    model.__dict__["_peqa_configs"] = {**_configs(model), name: cfg}
    return model


def _add(layer: PEQALinear, path: str, name: str, granularity: str, theta, trainable: bool) -> None:
    try:
        layer.add_scales(name, granularity, theta, trainable=trainable)
    except ValueError as exc:
        raise AdaptError(f"peqa: {path}: {exc}; the adapter was trained on another base model") from None
    except AdaptError as exc:
        raise AdaptError(f"peqa: {path}: {exc}") from None


def _configs(model: nn.Module) -> dict[str, PEQAMethod]:
    return model.__dict__.get("_peqa_configs", {})


def set_active(model: nn.Module, name: str | None) -> None:
    """Use scale set ``name`` in the forward pass (None: the plain base). Flips a flag per layer."""
    layers = [m for m in model.modules() if isinstance(m, PEQALinear)]
    if name is not None and not any(name in m.log_scales for m in layers):
        raise AdaptError(f"peqa: no scale set {name!r}; loaded: {scale_sets(model)}")
    for layer in layers:
        layer.active = name


def scale_sets(model: nn.Module) -> list[str]:
    return sorted({n for m in model.modules() if isinstance(m, PEQALinear) for n in m.log_scales})


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    return None


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _active(model: nn.Module, name: str | None) -> str:
    name = name or next((m.active for m in model.modules() if isinstance(m, PEQALinear) and m.active), None)
    if name is None or name not in scale_sets(model):
        raise AdaptError(f"peqa: no scale set {name!r} on this model; loaded: {scale_sets(model)}")
    return name


# --------------------------------------------------------------------------- adapter files
def adapter_config(model: nn.Module, name: str) -> dict:
    layers = wrappers(model, name)
    granularity = {layer.granularity[name] for layer in layers.values()}.pop()
    cfg = _configs(model).get(name)
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

    name = _active(model, name)
    tensors = {f"{path}{KEY_SUFFIX}": layer.log_scales[name].detach().to("cpu", torch.float32).contiguous()
               for path, layer in wrappers(model, name).items()}  # fmt: skip
    with atomic_dir(Path(out_dir)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "peft_type": PEFT_TYPE})
        (tmp / CONFIG_NAME).write_text(json.dumps(adapter_config(model, name), indent=2) + "\n")


def read_config(adapter_dir: Path) -> dict:
    path = Path(adapter_dir) / CONFIG_NAME
    if not path.is_file():
        raise AdaptError(f"{path}: missing; point at a PEQA adapter directory (adapter_config.json + {WEIGHTS_NAME})")
    raw = json.loads(path.read_text())
    if raw.get("peft_type") != PEFT_TYPE:
        raise AdaptError(f"{path}: peft_type is {raw.get('peft_type')!r}, not {PEFT_TYPE!r}; load it with its own method")
    if raw.get("granularity") not in GRANULARITIES:
        raise AdaptError(f"{path}: granularity {raw.get('granularity')!r} is not one of {GRANULARITIES}")
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
    _check_name(name, model)
    paths = [k.removesuffix(KEY_SUFFIX) for k in tensors]
    available = _innermost(model)
    missing = [p for p in paths if p not in available]
    if missing:
        raise AdaptError(
            f"{weights}: layers {missing[:3]} are not in this model; load it onto {raw.get('base_model_name_or_path')!r}"
        )
    for path, layer in _wrap(model, paths, raw.get("target_modules", "all-linear")).items():
        _add(layer, path, name, raw["granularity"], tensors[path + KEY_SUFFIX], trainable)
    model.__dict__["_peqa_configs"] = {
        **_configs(model),
        name: PEQAMethod(name="peqa", granularity=raw["granularity"], target_modules=raw.get("target_modules", "all-linear")),
    }
    set_active(model, name)
    if not trainable:
        model.eval()
    return model


# --------------------------------------------------------------------------- checks
def block_scales(model: nn.Module) -> dict[str, torch.Tensor]:
    """Canonical path -> the fp32 NF4 block scales of every (wrapped or plain) 4-bit layer; for checks."""
    return {p: block_absmax(_base(v[2])) for p, v in _innermost(model).items() if is_4bit(_base(v[2]))}
