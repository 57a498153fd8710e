"""What more than one method uses: the LoRA hyperparameters, the canonical module path, adapter_config.json."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from adapt.errors import AdaptError
from adapt.strict import Strict

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class LoRAFields(Strict):
    rank: int = Field(16, ge=1, le=1024)
    """LoRA rank r."""
    alpha: float = Field(32, gt=0)
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the LoRA input."""


def canonical_path(name: str) -> str:
    """Module name without peft's ``base_model.model.`` prefix and ``.base_layer`` links."""
    name = name.removeprefix("base_model.model.")
    return ".".join(part for part in name.split(".") if part != "base_layer")


def module_matches(path: str, targets: list[str] | str) -> bool:
    """``path`` is one of ``targets`` (a module name or a dotted suffix of it), or ``targets`` is "all-linear"."""
    return targets == "all-linear" or any(path == t or path.endswith("." + t) for t in targets)


def read_adapter_config(adapter_dir: Path, peft_type: str, kind: str) -> dict:
    """``adapter_dir``'s adapter_config.json, checked to be a ``peft_type`` adapter (``kind`` names it in errors)."""
    path = Path(adapter_dir) / CONFIG_NAME
    if not path.is_file():
        raise AdaptError(f"{path}: missing; point at a {kind} adapter directory ({CONFIG_NAME} + {WEIGHTS_NAME})")
    raw = json.loads(path.read_text())
    if raw.get("peft_type") != peft_type:
        raise AdaptError(f"{path}: peft_type is {raw.get('peft_type')!r}, not {peft_type!r}; load it with its own method")
    return raw
