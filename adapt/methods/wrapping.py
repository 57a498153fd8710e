"""What a layer that wraps the innermost base linear (MoE-LoRA, PEQA) shows of that linear."""

from __future__ import annotations

import torch


class WrapsBaseLinear:
    """``in_features``, ``out_features`` and ``weight`` read through to ``self.base_layer``, so code that
    inspects a linear (peft, bitsandbytes helpers, the merge) sees the wrapped one."""

    base_layer: torch.nn.Module

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight
