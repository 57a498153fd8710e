"""`method: peqa` in a recipe, and the rule that checks it against the rest of the recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from adapt.strict import Strict


class PEQAConfig(Strict):
    name: Literal["peqa"]
    granularity: Literal["channel", "block"] = "channel"
    """`channel`: one scale per output row; `block`: one per 64-value NF4 block."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Quantized linear layers whose scales train."""


def recipe_problems(source: str, recipe: BaseModel) -> list[str]:
    """``recipe`` (an :class:`adapt.recipe.Recipe`): PEQA trains the scales of an NF4 base."""
    if recipe.model.quantization != "nf4":
        return [f"{source}: method: peqa trains the NF4 scales; set model.quantization: nf4"]
    return []
