"""The sequence-classification kind: classification data (``train.sequence_head``) learned by a LoRA + a ``score``
head that reads the text's last token (or the mean of its tokens), instead of each label's log-likelihood under
the language-model head; or by the head alone on the frozen base (``probe``: :mod:`adapt.tasks.probe`).

Its :class:`~adapt.tasks.Kind` record: :func:`train`, :func:`score`, :func:`score_variants`, :func:`load_variant`,
:func:`calibration_ids`, :func:`predict`; merging and the trained base are :mod:`adapt.tasks.heads`'. Scores are
the classification kind's (:func:`adapt.tasks.classification.classification_metrics`), so tables and selection
compare alike.

The "base" row. A new head is seeded noise, so the base is scored as the base model answers without a head: by
label log-likelihood (:mod:`adapt.tasks.classification`), the same zero-shot row a log-likelihood adapter is held
against; its ``metrics.note`` says so.

Each text is read whole up to ``train.max_seq_len`` tokens; a longer one keeps its start token and its end (the
question and the answer options end a prompt; the head reads the last token).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from adapt.data.types import TaskData, TextExample
from adapt.recipe import Recipe
from adapt.runs import RunDir
from adapt.tasks.classification import LabelScores, classification_metrics, prediction_rows
from adapt.tasks.heads import HeadSpec, batches_by_length, encode, keep_end, load_variant_with_head, loadable

log = logging.getLogger(__name__)

BASE_NOTE = (
    "the base model without a head: labels scored by log-likelihood under its language-model head (a new "
    "sequence head is untrained noise)"
)


class _WeightedHeadLoss:
    """Trainer mixin: cross-entropy of the head's logits, each example weighted by its ``loss_weight`` (mean 1)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from adapt.training.trainer import WEIGHT_COLUMN

        weights = inputs.pop(WEIGHT_COLUMN, None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        losses = torch.nn.functional.cross_entropy(outputs.logits.float(), labels, reduction="none")
        loss = (losses * weights.to(losses.device)).mean() if weights is not None else losses.mean()
        return (loss, outputs) if return_outputs else loss


def _dataset(tokenizer, examples: list[TextExample], label2id: dict[str, int], max_len: int, weights: list[float] | None):
    """The training rows (each distinct text tokenized once: balanced sampling repeats examples), and how many
    distinct texts were longer than ``max_len``."""
    from datasets import Dataset

    full = {text: tokenizer(text)["input_ids"] for text in dict.fromkeys(ex.prompt for ex in examples)}
    rows = []
    for i, ex in enumerate(examples):
        ids = keep_end(full[ex.prompt], max_len, tokenizer.bos_token_id)
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": label2id[ex.completion]})
        if weights is not None:
            rows[-1]["loss_weight"] = weights[i]
    return Dataset.from_list(rows), sum(len(ids) > max_len for ids in full.values()), len(full)


def train(recipe: Recipe, run: RunDir, task: TaskData, device: str, resume: Path | None = None) -> dict | None:
    """Train LoRA + a sequence head on ``task.train`` (``train.class_balance`` applies), or fit the head alone
    (``probe``); write adapter/ (peft layout, the head via modules_to_save, labels.json); the run's metrics (None
    off rank 0)."""
    from transformers import DataCollatorWithPadding, Trainer

    from adapt.errors import AdaptError
    from adapt.tasks import head_training
    from adapt.training import balance
    from adapt.training.trainer import WeightCollator

    if not task.train:
        raise AdaptError(f"{task.description}: the training split is empty")
    t = recipe.train
    head = t.sequence_head
    spec = HeadSpec(task.labels, head.attention, shape="sequence", pooling=head.pooling)
    if head.probe is not None:
        from adapt.tasks import probe

        return probe.train(recipe, run, task, device, spec)  # it chooses the layer among head.layers
    built = head_training.build(recipe, replace(spec, layer=head.layer), device)
    examples = balance.oversample(task.train, t.seed) if t.class_balance == "balanced_sampling" else task.train
    weights = balance.loss_weights(examples) if t.class_balance == "weighted_loss" else None
    label2id = {label: i for i, label in enumerate(task.labels)}
    dataset, cut, texts = _dataset(built.tokenizer, examples, label2id, t.max_seq_len, weights)
    if cut:
        log.warning("%d of %d training texts are longer than train.max_seq_len=%d: each keeps its end", cut, texts, t.max_seq_len)
    collator = DataCollatorWithPadding(built.tokenizer, pad_to_multiple_of=8)
    if weights is not None:
        collator = WeightCollator(collator)
    scorer = lambda m, exs: head_metrics(m, built.tokenizer, exs, t.max_seq_len, recipe.eval.batch_size)  # noqa: E731
    trainer_base = type("HeadLossTrainer", (_WeightedHeadLoss, Trainer), {})
    metrics = head_training.fit(recipe, run, task, device, resume, built, dataset, collator, scorer, trainer_base)
    if metrics is None:
        return None
    return {"task": "sequence_classification"} | metrics | {
        "class_balance": t.class_balance,
        "train_label_counts": balance.label_counts(examples),
        "train_texts_cut": cut,
    }


@torch.no_grad()
def head_scores(model, tokenizer, examples: list[TextExample], max_len: int, batch_size: int, desc: str = "scoring") -> list[LabelScores]:
    """Each example's label log-probabilities under the head (in example order), batched by length."""
    labels = HeadSpec.from_config(model.config).labels
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[int, LabelScores] = {}
    try:
        with tqdm(total=len(examples), desc=desc, leave=False) as bar:
            for chunk, batch in batches_by_length(tokenizer, [ex.prompt for ex in examples], max_len, batch_size, device):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                for row, i in enumerate(chunk):
                    by_label = dict(zip(labels, logprobs[row].tolist()))
                    ex = examples[i]
                    out[i] = LabelScores(ex.id, ex.completion, max(by_label, key=by_label.get), by_label, ex.group)
                bar.update(len(chunk))
    finally:
        model.train(was_training)
    return [out[i] for i in range(len(examples))]


def head_metrics(model, tokenizer, examples: list[TextExample], max_len: int, batch_size: int) -> dict:
    """Accuracy, macro-F1 and balanced accuracy of the head, with each example's predicted label (``predictions``)."""
    scores = head_scores(model, tokenizer, examples, max_len, batch_size)
    return classification_metrics(scores) | {"predictions": [s.predicted for s in scores]}


def score(model, tokenizer, recipe: Recipe, task: TaskData, examples: list, perplexity: bool = True) -> dict:
    """`adapt eval`'s metrics of a loaded sequence classifier (no perplexity: the head predicts no text)."""
    return head_metrics(model, tokenizer, examples, recipe.train.max_seq_len, recipe.eval.batch_size)


def load_variant(run: RunDir, recipe: Recipe, variant, device: str = "cpu") -> contextlib.AbstractContextManager[tuple]:
    """(model, tokenizer, load seconds) of the adapter (base + LoRA + head), a merged or bitsandbytes directory or
    an nf4-lora export; the base is the causal LM (see BASE_NOTE). Freed afterwards."""
    from adapt.errors import AdaptError
    from adapt.variants import loaded

    if variant.name == "base":
        return loaded(run, recipe, variant, device)
    if not loadable(variant):
        raise AdaptError(f"--variant {variant.name}: {variant.path} holds no sequence classifier; use adapter, "
                         "merged/<target>, export/nf4-lora or export/nf4 (int8)")  # fmt: skip
    return loaded(run, recipe, variant, device, load=load_variant_with_head)


def score_variants(run: RunDir, recipe: Recipe, task: TaskData, examples: list, device: str, variants: list) -> Iterator[tuple[str, dict]]:
    """Each variant's eval.json row on ``examples``, as it is scored; the base by label log-likelihood."""
    from adapt.tasks import classification
    from adapt.variants import row

    HeadSpec.read(run.require_adapter())  # a clear error for a run without a head
    for variant in variants:
        if variant.name != "base" and not loadable(variant):
            note = f"{variant.path}: not a transformers sequence-classification directory (e.g. GGUF); not scored"
            yield variant.name, row(run, variant, {"note": note}, None)
            continue
        with load_variant(run, recipe, variant, device) as (model, tokenizer, load_s):
            log.info("scoring %s on %d examples", variant.name, len(examples))
            start = time.perf_counter()
            if variant.name == "base":
                metrics = classification.score(model, tokenizer, recipe, task, examples, perplexity=False) | {"note": BASE_NOTE}
            else:
                metrics = score(model, tokenizer, recipe, task, examples)
            metrics["eval_seconds"] = round(time.perf_counter() - start, 1)
        yield variant.name, row(run, variant, metrics, load_s)


def calibration_ids(tokenizer, task: TaskData, examples: list, max_len: int) -> list[list[int]]:
    """Each example's text as the head reads it."""
    return [encode(tokenizer, ex.prompt, max_len) for ex in examples]


def predict(model, tokenizer, recipe: Recipe, inputs, batch_size: int) -> list[dict]:
    """One row per input: its id, text, predicted label and every label's log-probability (and the gold label)."""
    scores = head_scores(model, tokenizer, inputs.examples, recipe.train.max_seq_len, batch_size, desc="predicting")
    return prediction_rows(inputs, scores)
