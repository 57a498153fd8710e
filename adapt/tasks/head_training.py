"""Training a LoRA + a new ``score`` head with transformers' Trainer: what the token- and sequence-classification
kinds share (the model, validation, atomic checkpoints, the adapter folder, the shared metrics).

TRL's SFTTrainer trains prompt -> completion on the language-model head; a head over labels has no completion,
so these kinds use the plain Trainer with adapt's validation and checkpoint callbacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapt.data.types import TaskData
from adapt.recipe import Recipe
from adapt.runs import RunDir, atomic_dir, write_json_atomic
from adapt.tasks.heads import HEAD_FILE, HeadSpec, check_method, load_head_model
from adapt.training import distributed

log = logging.getLogger(__name__)


@dataclass
class HeadModel:
    """The base with its new head, wrapped by the recipe's method (peft: LoRA + the head in ``modules_to_save``)."""

    model: Any
    tokenizer: Any
    spec: HeadSpec
    method: Any


def build(recipe: Recipe, spec: HeadSpec, device: str) -> HeadModel:
    """Load the base with a new ``spec`` head and wrap it with the recipe's method."""
    check_method(recipe)
    return wrap(recipe, *load_head_model(recipe.model, spec, device), spec)


def wrap(recipe: Recipe, base, tokenizer, spec: HeadSpec) -> HeadModel:
    """``base`` (with its ``spec`` head) wrapped with the recipe's method."""
    from adapt import methods
    from adapt.training.trainer import trainable_parameters

    method = methods.of(recipe)
    model = method.build(recipe.method, base)
    trainable, total = trainable_parameters(model)
    log.info("trainable parameters: %s of %s (%.3f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return HeadModel(model, tokenizer, spec, method)


def fit(
    recipe: Recipe,
    run: RunDir,
    task: TaskData,
    device: str,
    resume: Path | None,
    built: HeadModel,
    dataset,
    collator,
    scorer: Callable[[Any, list], dict],
    trainer_base=None,
) -> dict | None:
    """Train on ``dataset`` (validation scored by ``scorer(model, examples)``), write adapter/ (peft layout, the head
    via modules_to_save, labels.json) and return the shared metrics (None off rank 0).

    ``trainer_base``: a Trainer subclass (its own ``compute_loss``); default transformers' Trainer.
    """
    from transformers import Trainer, TrainingArguments

    from adapt.tasks.training import finished, tokens_in_last_checkpoint
    from adapt.training.checkpoints import SafeCheckpoints
    from adapt.training.trainer import log_callbacks, training_kwargs, validation_callback

    validator = validation_callback(recipe, run, task, len(dataset), scorer, built.method.save)
    trainer_class = type("SafeTrainer", (SafeCheckpoints, trainer_base or Trainer), {})  # atomic checkpoints, exact resume
    args = TrainingArguments(**training_kwargs(recipe, run, device), remove_unused_columns=False, label_names=["labels"])
    trainer = trainer_class(
        model=built.model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=built.tokenizer,
        callbacks=log_callbacks(run, validator, recipe.train.report_to),
    )
    tokens_before = tokens_in_last_checkpoint(run.checkpoints) if resume else 0
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    elapsed = time.perf_counter() - start
    if not distributed.is_main_process():
        return None  # rank 0 alone writes artifacts

    write_adapter(run, built, validator.selected() if validator is not None else None)
    return finished(recipe, task, device, built.model, trainer, result, elapsed, validator, resume is not None, tokens_before) | {
        "labels": list(built.spec.labels),
        "attention": built.spec.attention,
    }


def write_adapter(run: RunDir, built: HeadModel, selected: Path | None = None) -> None:
    """adapter/ at once: ``selected`` (a validation step's saved LoRA + head) or the model as it is, the tokenizer,
    and labels.json (the HeadSpec)."""
    with atomic_dir(run.adapter) as tmp:
        if selected is not None:
            from adapt.training.validation import copy_adapter

            copy_adapter(selected, tmp)  # the best validation step's adapter (LoRA + head)
        else:
            built.method.save(built.model, tmp)
        built.tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / HEAD_FILE, built.spec.to_json())
