"""`method: moe_lora` in a recipe, and the rule that checks it against the rest of the recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from adapt.methods.shared import LoRAFields


class MoELoRAConfig(LoRAFields):
    name: Literal["moe_lora"]
    rank: int = Field(8, ge=1, le=1024)
    alpha: float = Field(16, gt=0)
    num_experts: int = Field(4, ge=2, le=64)
    """E: LoRA experts per MLP projection."""
    top_k: int = Field(2, ge=1)
    """Experts each token is routed to (gates renormalized over the top k)."""
    expert_modules: list[str] = Field(default_factory=lambda: ["gate_proj", "up_proj", "down_proj"])
    """MLP projections that get routed experts."""
    attention_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Projections that get one plain LoRA."""
    aux_loss_coef: float = Field(0.01, ge=0)
    """Weight of the Switch-style load-balancing loss added to the task loss."""


def recipe_problems(source: str, recipe: BaseModel) -> list[str]:
    """``recipe`` (an :class:`adapt.recipe.Recipe`): top_k cannot exceed the experts."""
    method = recipe.method
    if method.top_k > method.num_experts:
        return [f"{source}: method.top_k: {method.top_k} > num_experts; use top_k <= num_experts"]
    return []
