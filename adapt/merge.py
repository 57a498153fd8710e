"""`adapt merge`: fold a trained LoRA into full weights, two ways (DESIGN.md: never re-quantize silently).

- ``nf4_dequant``: into the dequantized NF4 base, i.e. exactly the weights the
  adapter was trained against;
- ``fp16``: into the original 16-bit weights.

How the adapter folds in is the task kind's (:attr:`adapt.tasks.Kind.merge`: a causal LM, or a token
classifier with its trained head) unless the method folds its own (PEQA's scales, the registry's
``merge_into``). Each merged model is a plain 16-bit HF directory under ``merged/<target>/``;
``adapt quantize`` turns one of them into deliverables and ``adapt eval``
scores every one against the unmerged adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path

from adapt import methods, tasks
from adapt.errors import AdaptError
from adapt.recipe import MergeTarget, Recipe
from adapt.runs import RunDir, atomic_dir

log = logging.getLogger(__name__)


def merge_one(run: RunDir, recipe: Recipe, target: MergeTarget) -> Path:
    """``merged/<target>/``, written atomically (a half-written model is never left there)."""
    merge = methods.of(recipe).merge_into or tasks.of(recipe).merge
    out = run.merged(target)
    with atomic_dir(out) as tmp:
        merge(run, recipe, target, tmp)
    return out


def run(run_dir: Path, targets: list[MergeTarget] | None = None) -> list[Path]:
    run = RunDir(Path(run_dir))
    run.sweep_leftovers()
    recipe = run.load_recipe()
    run.require_adapter()
    targets = targets or recipe.export.merge
    if not targets:
        raise AdaptError(f"{run.recipe}: export.merge is empty; name nf4_dequant and/or fp16, or pass --target")
    written = []
    for target in targets:
        log.info("merging %s into %s", run.adapter, target)
        written.append(merge_one(run, recipe, target))
    return written
