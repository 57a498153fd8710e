"""The token-classification kind (NER) on a decoder SLM: a LoRA + a ``score`` head, variants scored with seqeval.

Its :class:`~adapt.tasks.Kind` record: :func:`train` (what ``adapt train`` runs), :func:`score` and
:func:`score_variants` (``adapt eval``), :func:`load_variant`, :func:`calibration_ids`, :func:`predict`;
merging is :func:`adapt.tasks.heads.merge`. Helpers live in :mod:`adapt.tasks.ner` (alignment,
tagging, metrics) and :mod:`adapt.tasks.heads` (model classes, loading, merging).

The "base" variant. A decoder SLM has no zero-shot NER head: the base model
with a freshly initialized head scores noise, and training a head-only probe
costs nearly as much CPU as the adapter itself. So the ``base`` row is the
classic CoNLL-2003 baseline instead: every span seen as an entity in the same
training sentences the adapter saw (and always with one type) is tagged
wherever it occurs in the test text. Its row says so in ``metrics.note``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from adapt.data.types import TaskData
from adapt.errors import AdaptError
from adapt.recipe import Recipe
from adapt.runs import RunDir
from adapt.tasks import ner
from adapt.tasks.heads import HeadSpec, load_variant_with_head, loadable

log = logging.getLogger(__name__)

EVAL_MAX_LEN = 1024
"""Subwords kept per test sentence (MasakhaNER sentences stay far below; cut words are counted, tagged O)."""
BASE_NOTE = (
    "not a neural base: the CoNLL-2003 lexicon baseline (training-set entity spans with one type, "
    "greedy longest match); a decoder base has no zero-shot NER head"
)


def _dataset(task: TaskData, tokenizer, label2id: dict[str, int], max_len: int, position: str):
    from datasets import Dataset

    if not task.train:
        raise AdaptError(f"{task.description}: the training split is empty")
    rows = [ner.training_row(tokenizer, ex, label2id, max_len, position) for ex in task.train]
    cut = sum(1 for row, ex in zip(rows, task.train) if sum(l != ner.IGNORE for l in row["labels"]) < len(ex.tokens))
    return Dataset.from_list(rows), cut


def train(
    recipe: Recipe,
    run: RunDir,
    task: TaskData,
    device: str,
    resume: Path | None = None,
    attention: str | None = None,
    label_position: str | None = None,
) -> dict | None:
    """Train LoRA + head on ``task.train``; write adapter/ (peft layout, head via modules_to_save, labels.json);
    the run's metrics (None off rank 0).

    ``attention`` and ``label_position`` override the recipe's ``train.token_head`` (adapt.recipe.TokenHeadConfig).
    """
    from transformers import DataCollatorForTokenClassification

    from adapt.tasks import head_training

    head = recipe.train.token_head
    spec = HeadSpec(task.labels, attention or head.attention, label_position or head.label_position)
    built = head_training.build(recipe, spec, device)
    tokenizer = built.tokenizer
    label2id = {label: i for i, label in enumerate(task.labels)}
    dataset, cut_sentences = _dataset(task, tokenizer, label2id, recipe.train.max_seq_len, spec.label_position)
    if cut_sentences:
        log.warning("%d training sentences lost words past train.max_seq_len=%d", cut_sentences, recipe.train.max_seq_len)
    scorer = lambda m, examples: tag_metrics(m, tokenizer, examples, spec, recipe.eval.batch_size)  # noqa: E731
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8)
    metrics = head_training.fit(recipe, run, task, device, resume, built, dataset, collator, scorer)
    if metrics is None:
        return None
    return {"task": "token_classification"} | metrics | {
        "label_position": spec.label_position,
        "train_sentences_cut": cut_sentences,
        "train_subword_fertility": ner.fertility(tokenizer, task.train)["fertility"],
    }


def _per_group(examples: list, gold: list, pred: list, tokenizer=None) -> dict:
    """Scores per language (and the tokenizer's subword fertility there) when there are several."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.group].append(i)
    if len(groups) < 2:
        return {}
    out = {}
    for name, idx in sorted(groups.items()):
        m = ner.ner_metrics([gold[i] for i in idx], [pred[i] for i in idx])
        out[name] = {k: m[k] for k in ("f1", "precision", "recall", "sentences", "per_type")}
        if tokenizer is not None:
            out[name]["subword_fertility"] = ner.fertility(tokenizer, [examples[i] for i in idx])["fertility"]
    return out


def _baseline_row(task: TaskData, examples: list, gold: list) -> dict:
    lexicon = ner.build_lexicon(task.train)
    pred = [ner.lexicon_tags(lexicon, ex.tokens) for ex in examples]
    metrics = ner.ner_metrics(gold, pred) | {"per_group": _per_group(examples, gold, pred), "predictions": pred}
    metrics |= {"lexicon_spans": len(lexicon), "note": BASE_NOTE}
    return {"metrics": metrics, "load_time_s": 0.0, "size_bytes": None}


def tag_metrics(model, tokenizer, examples: list, spec: HeadSpec, batch_size: int) -> dict:
    """seqeval scores of ``model`` on ``examples`` (what `adapt eval` reports per variant; validation scores it too),
    with each sentence's predicted tags (``predictions``: eval.json's agreement between variants is per sentence)."""
    gold = [list(ex.tags) for ex in examples]
    pred, stats = ner.predict_tags(
        model, tokenizer, [ex.tokens for ex in examples], dict(enumerate(spec.labels)), batch_size, EVAL_MAX_LEN, spec.label_position
    )
    return ner.ner_metrics(gold, pred) | {"per_group": _per_group(examples, gold, pred, tokenizer), "words_cut": stats["words_cut"],
                                          "tokens": stats["tokens"], "predictions": pred}  # fmt: skip


def score(model, tokenizer, recipe: Recipe, task: TaskData, examples: list, perplexity: bool = True) -> dict:
    """seqeval scores of a loaded token classifier (its head's spec read from its config); no perplexity."""
    return tag_metrics(model, tokenizer, examples, HeadSpec.from_config(model.config), recipe.eval.batch_size)


def load_variant(run: RunDir, recipe: Recipe, variant, device: str = "cpu") -> contextlib.AbstractContextManager[tuple]:
    """(model, tokenizer, load seconds) of the adapter (base + LoRA + head), of a merged or bitsandbytes export
    directory or of an nf4-lora export; freed afterwards. The base has no head (see BASE_NOTE) and a GGUF no
    token-classification head."""
    from adapt.variants import loaded

    if not loadable(variant):
        what = "the base has no trained head" if variant.name == "base" else f"{variant.path} holds no token classifier"
        raise AdaptError(f"--variant {variant.name}: {what}; use adapter, merged/<target>, export/nf4-lora or export/nf4 (int8)")
    return loaded(run, recipe, variant, device, load=load_variant_with_head)


def score_variants(run: RunDir, recipe: Recipe, task: TaskData, examples: list, device: str, variants: list) -> Iterator[tuple[str, dict]]:
    """Each variant's eval.json row on ``examples`` (seqeval), as it is scored; the base row is the lexicon baseline."""
    from adapt.variants import row

    HeadSpec.read(run.require_adapter())  # a clear error for a run that is not token classification
    gold = [list(ex.tags) for ex in examples]
    for variant in variants:
        if variant.name == "base":
            yield "base", _baseline_row(task, examples, gold)
            continue
        if not loadable(variant):
            note = f"{variant.path}: not a transformers token-classification directory (e.g. GGUF); not scored"
            yield variant.name, row(run, variant, {"note": note}, None)
            continue
        with load_variant(run, recipe, variant, device) as (model, tokenizer, load_s):
            log.info("tagging %d sentences with %s", len(examples), variant.name)
            start = time.perf_counter()
            spec = HeadSpec.from_config(model.config)
            metrics = tag_metrics(model, tokenizer, examples, spec, recipe.eval.batch_size)
            seconds = time.perf_counter() - start
            metrics |= {
                "attention": spec.attention,
                "label_position": spec.label_position,
                "subword_fertility": ner.fertility(tokenizer, examples)["fertility"],
                "eval_seconds": round(seconds, 1),
                "eval_tokens_per_s": round(metrics.pop("tokens") / seconds, 1) if seconds else None,
            }
        yield variant.name, row(run, variant, metrics, load_s)


def calibration_ids(tokenizer, task: TaskData, examples: list, max_len: int) -> list[list[int]]:
    """Each sentence's words as the tagger reads them (joined by spaces), cut at ``max_len`` tokens."""
    return [tokenizer(" ".join(ex.tokens), add_special_tokens=False)["input_ids"][:max_len] for ex in examples]


def predict(model, tokenizer, recipe: Recipe, inputs, batch_size: int) -> list[dict]:
    """One row per sentence: its id, text, words and predicted tags (and the gold tags, when the file has them)."""
    spec = HeadSpec.from_config(model.config)
    sentences = [ex.tokens for ex in inputs.examples]
    tags, _ = ner.predict_tags(model, tokenizer, sentences, dict(enumerate(spec.labels)), batch_size, EVAL_MAX_LEN, spec.label_position)
    rows = [{"id": ex.id, "input": " ".join(ex.tokens), "tokens": list(ex.tokens), "tags": t} for ex, t in zip(inputs.examples, tags)]
    if inputs.gold:
        for row, ex in zip(rows, inputs.examples):
            row["gold"] = list(ex.tags)
    return rows


def prediction_metrics(rows: list[dict]) -> dict:
    """seqeval entity scores of predicted against gold tags."""
    metrics = ner.ner_metrics([r["gold"] for r in rows], [r["tags"] for r in rows])
    return {key: metrics[key] for key in ("sentences", "f1", "precision", "recall", "macro_f1")}
