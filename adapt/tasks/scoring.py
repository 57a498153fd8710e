"""`adapt eval`'s scorer, as a library: the metrics of one model on a task's examples.

Used by the eval stage (every variant), validation during training (the validation split) and the
combine stage (a combined model on each source run's examples), so no stage imports another to score.
"""

from __future__ import annotations

import random

from adapt.data.types import TaskData
from adapt.errors import AdaptError
from adapt.recipe import Recipe
from adapt.tasks import TASKS, get, of

def select_examples(task: TaskData, split: str, limit: int | None, seed: int) -> list:
    """The ``split`` examples scored: all of them, or a seeded sample of ``limit`` (never a prefix)."""
    examples = task.split(split)
    if not examples:
        raise AdaptError(f"{task.description}: the {split} split is empty; choose another with --split")
    if limit is not None and limit < len(examples):
        # A seeded sample, never a prefix: files are often ordered by label.
        examples = random.Random(seed).sample(examples, limit)
    return examples


def primary_metric(recipe: Recipe, kind: str) -> str:
    """The metric that ranks variants, computes retention and selects the best validation step."""
    return recipe.eval.primary_metric or TASKS[kind].metrics[0]  # the kind's default


def score(model, tokenizer, recipe: Recipe, task: TaskData, examples: list, perplexity: bool = True) -> dict:
    """`adapt eval`'s metrics of one model on ``examples`` (also what validation during training scores): the
    task kind's scorer (:attr:`adapt.tasks.Kind.score`)."""
    return of(task).score(model, tokenizer, recipe, task, examples, perplexity=perplexity)


def perplexity_metrics(model, fmt, recipe: Recipe, kind: str, examples: list) -> dict:
    """Perplexity of held-out text on a seeded sample of ``eval.perplexity_examples`` of the scored examples.

    Of the reference answers or of prompt + gold label, as the kind's ``perplexity`` says
    (see :mod:`adapt.tasks.perplexity`); tokenized as training sees them; {} for a kind without one.
    """
    from adapt.data.splits import seeded_sample
    from adapt.tasks.perplexity import perplexity

    what = get(kind).perplexity
    if not recipe.eval.perplexity_examples or what is None:
        return {}
    sample = seeded_sample(examples, recipe.eval.perplexity_examples, recipe.eval.seed, salt="perplexity")
    value = perplexity(model, fmt, sample, recipe.train.max_seq_len, answer_only=what == "answer")
    return {"perplexity": value, "perplexity_n": len(sample)}
