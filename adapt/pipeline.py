"""`adapt run`: every stage a recipe asks for (train, merge, quantize, then eval of every variant), each called
through the stage table (:data:`adapt.stages.STAGES`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from adapt.recipe import Recipe
from adapt.stages import PIPELINE_ORDER, STAGES

log = logging.getLogger(__name__)


def _calls(recipe: Recipe, run_dir: Path, resume: bool) -> dict[str, tuple[tuple, dict]]:
    """Stage name -> (args, kwargs) of each stage the recipe runs, in :data:`adapt.stages.PIPELINE_ORDER`."""
    export = recipe.export
    calls = {
        "train": ((recipe, run_dir), {"resume": resume}),
        "merge": ((run_dir,), {}) if export.merge else None,
        "quantize": ((run_dir, export.formats), {"source": export.quantize_from}) if export.formats else None,
        "eval": ((run_dir,), {}),
    }
    return {name: calls[name] for name in PIPELINE_ORDER if name in recipe.stages and calls[name] is not None}


def run_all(recipe: Recipe, run_dir: Path, resume: bool = False) -> str:
    """Run the recipe's stages; returns the summary table."""
    timings, table = {}, ""
    for name, (args, kwargs) in _calls(recipe, run_dir, resume).items():
        stage = STAGES[name]
        start = time.perf_counter()
        log.info("stage %s", name)
        result = stage(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        if stage.summary is not None:
            table = stage.summary(result)
    stages = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items())
    return f"{table}\n\nrun directory: {run_dir}\nstages: {stages}"
