"""`adapt merge`: fold a trained LoRA into full weights, two ways (DESIGN.md: never re-quantize silently).

- ``nf4_dequant``: into the dequantized NF4 base, i.e. exactly the weights the
  adapter was trained against;
- ``fp16``: into the original 16-bit weights.

Each merged model is a plain 16-bit HF directory under ``merged/<target>/``;
``adapt quantize`` turns one of them into deliverables and ``adapt eval``
scores every one against the unmerged adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path

from adapt import methods
from adapt.models import dequantized_base
from adapt.errors import AdaptError
from adapt.models.loading import storage_dtype
from adapt.recipe import MergeTarget, Recipe
from adapt.runs import RunDir, atomic_dir

log = logging.getLogger(__name__)


def merge_one(run: RunDir, recipe: Recipe, target: MergeTarget) -> Path:
    from peft import PeftModel

    method = methods.of(recipe)
    out = run.merged(target)
    if method.merge_into is not None:  # PEQA folds its scales instead of adding a LoRA delta
        with atomic_dir(out) as tmp:
            method.merge_into(run, recipe, target, tmp)
        return out
    model, tokenizer = dequantized_base.base_for(recipe, target)
    model = PeftModel.from_pretrained(model, str(methods.lora_adapter_dir(run, recipe))).merge_and_unload()
    model.to(storage_dtype(recipe.model))  # merged in the compute dtype, written in 16 bits
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
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
