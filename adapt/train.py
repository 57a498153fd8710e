"""`adapt train`: train the recipe's adapter as its task kind does (:attr:`adapt.tasks.Kind.train`), then write
metrics.json (with the data license) and the model card; the adapter's config names a portable base model."""

from __future__ import annotations

import logging
from pathlib import Path

from adapt.training import distributed, launch
from adapt.training.checkpoints import resume_point
from adapt.errors import AdaptError
from adapt.recipe import Recipe
from adapt.runs import RunDir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

COMPARED_ON_RESUME = ("model", "method", "data")


def _check_resume(run: RunDir, recipe: Recipe) -> None:
    previous = run.load_recipe()
    for section in COMPARED_ON_RESUME:
        if getattr(previous, section) != getattr(recipe, section):
            raise AdaptError(
                f"{run.recipe}: the {section} section differs from the run being resumed; "
                f"resume with the same recipe or train into a new --out directory"
            )


def run(recipe: Recipe, out_dir: Path, resume: bool = False) -> Path:
    """Train the recipe's adapter into ``out_dir``; returns the run directory."""
    from transformers import set_seed

    from adapt import card, tasks
    from adapt.data import load_task
    from adapt.domains import recipe_domain_card, run_datasets
    from adapt.models import dtypes

    run_dir = RunDir(Path(out_dir))
    run_dir.sweep_leftovers()
    checkpoint = resume_point(run_dir.checkpoints) if resume else None  # the newest complete one
    if resume and run_dir.recipe.is_file():
        _check_resume(run_dir, recipe)
    run_dir.root.mkdir(parents=True, exist_ok=True)
    if distributed.is_main_process():
        write_text_atomic(run_dir.recipe, recipe.to_yaml())
    if recipe.train.distributed and not launch.was_launched():
        launch.relaunch(run_dir.recipe, run_dir.root, resume, recipe)  # every process trains this same function
        return run_dir.root
    distributed.check_method(recipe.method.name)

    set_seed(recipe.train.seed)
    device = dtypes.pick_device(recipe.train.device)
    task = load_task(recipe.data)
    metrics = tasks.of(recipe).train(recipe, run_dir, task, device, resume=checkpoint)
    if metrics is None:
        return run_dir.root  # rank 0 alone writes artifacts
    card.make_adapter_portable(run_dir, recipe)  # the Hub id, not adapt's cache
    metrics["data_license"] = run_datasets(recipe.data, recipe_domain_card(recipe), task.license).license
    write_json_atomic(run_dir.metrics, metrics)
    card.write(run_dir, recipe)
    return run_dir.root
