"""The combine recipe: what `adapt merge RUN_A RUN_B ... --combine TYPE --weights ... --out DIR` (or
``--combine-recipe FILE``) combines and how; schema and loading (the combine stage is :mod:`adapt.combine`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from adapt.errors import AdaptError, RecipeError
from adapt.recipe import MergeTarget, deep_update, format_error, parse_overrides
from adapt.strict import Strict
from adapt.yaml_io import read_yaml

CombinationType = Literal["linear", "cat", "ties", "dare_ties"]
USES_DENSITY = ("ties", "dare_ties")


class CombineRecipe(Strict):
    """What to combine and how (the YAML of `adapt merge --combine-recipe FILE`, or the CLI flags)."""

    runs: list[str] = Field(min_length=2)
    """Run directories trained on the same base, by methods with a LoRA form (MoE-LoRA through its collapse)."""
    combination_type: CombinationType
    """peft's combination: `cat` (exact weighted sum), `linear`, `ties` or `dare_ties` (equal ranks)."""
    weights: list[float]
    """One weight per run, in order (a run's delta is scaled by its weight)."""
    density: float | None = Field(None, gt=0, le=1)
    """ties/dare_ties: fraction of each adapter's A and B entries kept; unused otherwise."""
    target: MergeTarget = "nf4_dequant"
    """Merge into the dequantized NF4 weights (what the adapters were trained on) or the 16-bit ones."""
    out: str
    """Output directory of the combined model, combine.json and (after `adapt eval`) eval.json."""
    seed: int = 0
    """Seed of dare_ties' random pruning."""


def _problems(cfg: CombineRecipe, source: str) -> list[str]:
    problems = []
    if len(cfg.weights) != len(cfg.runs):
        problems.append(f"{source}: weights: {len(cfg.weights)} values for {len(cfg.runs)} runs; give one weight per run, e.g. --weights {','.join(['0.5'] * len(cfg.runs))}")
    if cfg.combination_type in USES_DENSITY and cfg.density is None:
        problems.append(f"{source}: density: {cfg.combination_type} prunes each adapter to a density; set it, e.g. --density 0.5")
    if cfg.combination_type not in USES_DENSITY and cfg.density is not None:
        problems.append(f"{source}: density: only ties and dare_ties use it, not {cfg.combination_type}; remove it")
    resolved = [Path(r).resolve() for r in cfg.runs]
    problems += [f"{source}: runs: {r} is listed twice; list each run once" for i, r in enumerate(cfg.runs) if resolved[i] in resolved[:i]]
    if Path(cfg.out).resolve() in resolved:
        problems.append(f"{source}: out: {cfg.out} is one of the runs; write the combined model elsewhere")
    return problems


def validated(raw: dict, source: str) -> CombineRecipe:
    """A checked CombineRecipe, or RecipeError listing every problem (one line each)."""
    try:
        cfg = CombineRecipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError([format_error(source, e) for e in exc.errors()]) from None
    problems = _problems(cfg, source)
    if problems:
        raise RecipeError(problems)
    return cfg


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise AdaptError(f"{path}: no such combine recipe; see recipes/combine-healthcare-legal.yaml")
    raw, unreadable = read_yaml(path)
    if unreadable:
        raise AdaptError(f"{path}: {unreadable}")
    if not isinstance(raw, dict):
        raise AdaptError(f"{path}: a combine recipe is a YAML mapping (runs:, combination_type:, weights:, out:, ...)")
    return raw


def load_combine_recipe(path: str | Path) -> CombineRecipe:
    return validated(_read_mapping(Path(path)), str(path))


def recipe_problems(path: str | Path, overrides: list[str] | None = None) -> list[str] | None:
    """For `adapt validate`: the problems of a combine recipe ([] if none), or None if the file is not one."""
    try:
        raw = _read_mapping(Path(path))
    except AdaptError:
        return None
    if "combination_type" not in raw:
        return None
    tree, problems = parse_overrides(overrides or [])
    if problems:
        return problems
    try:
        validated(deep_update(raw, tree), str(path))
    except RecipeError as exc:
        return exc.problems
    return []
