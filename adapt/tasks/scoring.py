"""`adapt eval`'s scorer, as a library: the metrics of one model on a task's examples.

Used by the eval stage (every variant), validation during training (the validation split) and the
combine stage (a combined model on each source run's examples), so no stage imports another to score.
"""

from __future__ import annotations

import random

from adapt.data.types import TaskData
from adapt.errors import AdaptError
from adapt.recipe import KIND_METRICS, Recipe

PRIMARY = {kind: metrics[0] for kind, metrics in KIND_METRICS.items()}
"""Each task kind's default primary metric (classification macro_f1, generation rougeL, token classification f1)."""


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
    return recipe.eval.primary_metric or PRIMARY[kind]


def score(model, tokenizer, recipe: Recipe, task: TaskData, examples: list, perplexity: bool = True) -> dict:
    """`adapt eval`'s metrics of one model on ``examples`` (also what validation during training scores)."""
    from adapt.tasks.prompting import PromptFormat

    fmt = PromptFormat(tokenizer, task.instruction)
    if task.kind == "classification":
        from adapt.tasks.classification import classification_metrics, score_examples

        scores = score_examples(model, fmt, examples, batch_size=recipe.eval.batch_size)
        # Predictions in example order: agreement with the adapter's is the sharpest retention check.
        metrics = classification_metrics(scores) | {"predictions": [s.predicted for s in scores]}
    else:
        from adapt.tasks.generation import generation_metrics

        metrics = generation_metrics(model, fmt, examples, recipe.eval.max_new_tokens, recipe.eval.batch_size)
    return metrics | (perplexity_metrics(model, fmt, recipe, task.kind, examples) if perplexity else {})


def perplexity_metrics(model, fmt, recipe: Recipe, kind: str, examples: list) -> dict:
    """Perplexity of held-out text on a seeded sample of ``eval.perplexity_examples`` of the scored examples.

    Generation: of the reference answers; classification: of prompt + gold label
    (see :mod:`adapt.tasks.perplexity`); tokenized as training sees them.
    """
    from adapt.data.splits import seeded_sample
    from adapt.tasks.perplexity import perplexity

    if not recipe.eval.perplexity_examples:
        return {}
    sample = seeded_sample(examples, recipe.eval.perplexity_examples, recipe.eval.seed, salt="perplexity")
    value = perplexity(model, fmt, sample, recipe.train.max_seq_len, answer_only=kind == "generation")
    return {"perplexity": value, "perplexity_n": len(sample)}
