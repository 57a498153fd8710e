"""A sequence head fitted alone on the frozen base (``train.sequence_head.probe``): a linear probe.

The base reads every training and validation text once (its pooled states after each candidate layer, as a head
there reads them at eval). Then an L2-regularized multinomial logistic regression is fitted on the states,
standardized. The layer and the strength ``C`` are chosen together by stratified k-fold cross-validation over the
training and validation splits, never test: the best cross-validated primary metric among the (layer, C) pairs
that reach ``min_accuracy``. The fit is then redone on all of them, and folded into the ``score`` weights of the
model cut at that layer and the HeadSpec's intercept.

The LoRA the method builds stays at its zero start (peft initializes B to zero), so the adapter folder, merging and
every export are those of any sequence-head run, and the base's weights are unchanged.

Written by hand (about forty lines): a convex fit on a few hundred vectors is one ``torch.optim.LBFGS`` over a
weight matrix. scikit-learn would fit it too, but it is not among adapt's dependencies, and its result would have
to be folded into the ``score`` layer the same way.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import replace

import torch
from tqdm.auto import tqdm

from adapt.data.types import TaskData, TextExample
from adapt.recipe import ProbeConfig, Recipe
from adapt.runs import RunDir
from adapt.tasks import head_training
from adapt.tasks.classification import LabelScores, classification_metrics
from adapt.tasks.heads import HEAD, HeadSpec, apply_spec, batches_by_length, check_method, load_head_model, running_mean

log = logging.getLogger(__name__)


def stratified_folds(labels: list[str], k: int, seed: int) -> list[int]:
    """Each example's fold (0..k-1): every label spread evenly over the folds, in a seeded order."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    folds, offset = [0] * len(labels), 0
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        for j, i in enumerate(members):
            folds[i] = (offset + j) % k
        offset += len(members)
    return folds


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, c: float, weights: torch.Tensor | None = None):
    """``(W, b)`` with ``x @ W.T + b`` the logits: the weighted cross-entropy summed over examples + ||W||^2 / 2C,
    minimized on standardized features (scikit-learn's ``C``); returned for the raw features."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    z, weights = z.double(), (torch.ones(len(y)) if weights is None else weights).double()
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(z @ w.T + b, y, reduction="none")
        loss = ((losses * weights).sum() + (w * w).sum() / (2 * c)) / len(y)  # / n: the same minimum, better scaled
        loss.backward()
        return loss

    optimizer.step(objective)
    weight = (w.detach() / std.double()).float()
    return weight, (b.detach() - weight.double() @ mean.double()).float()


def _scores(examples: list[TextExample], logits: torch.Tensor, labels: tuple[str, ...]) -> list[LabelScores]:
    logprobs = torch.log_softmax(logits, dim=-1)
    return [LabelScores(ex.id, ex.completion, labels[int(row.argmax())], dict(zip(labels, row.tolist())), ex.group)
            for ex, row in zip(examples, logprobs)]  # fmt: skip


def cross_validate(x, examples: list[TextExample], labels: tuple[str, ...], cfg: ProbeConfig, weights, seed: int) -> list[dict]:
    """Per ``C``: the classification metrics of the out-of-fold predictions of every example."""
    y = torch.tensor([labels.index(ex.completion) for ex in examples])
    folds = torch.tensor(stratified_folds([ex.completion for ex in examples], cfg.folds, seed))
    rows = []
    for c in tqdm(cfg.c, desc="probe C", leave=False):
        logits = torch.empty(len(examples), len(labels))
        for fold in range(cfg.folds):
            fit_on = folds != fold
            w, b = fit_logistic(x[fit_on], y[fit_on], len(labels), c, None if weights is None else weights[fit_on])
            logits[~fit_on] = x[~fit_on] @ w.T + b
        metrics = classification_metrics(_scores(examples, logits, labels))
        rows.append({"c": c} | {k: metrics[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "predicted_counts")})
    return rows


def choose(rows: list[dict], primary: str, floor: float) -> dict:
    """The best ``primary`` among rows (settings) with accuracy >= ``floor``; none: the most accurate (with a warning)."""
    able = [r for r in rows if r["accuracy"] >= floor]
    if able:
        return max(able, key=lambda r: r[primary])
    log.warning("no setting reaches cross-validated accuracy %.3f; keeping the most accurate", floor)
    return max(rows, key=lambda r: r["accuracy"])


@torch.no_grad()
def pooled_states(model, tokenizer, examples: list[TextExample], max_len: int, batch_size: int, layers: list[int]) -> dict[int, torch.Tensor]:
    """{layer: [examples, hidden] fp32}: what a head over each of ``layers`` reads of each text, from one read of
    ``model`` (built with at least ``max(layers)`` layers), batched by length with right padding as at eval.

    A body cut after N layers ends with its final norm, so the states after layer N are normed as the body's output
    is, then pooled as the model's HeadSpec says (its last token, or the mean over its tokens)."""
    body = getattr(model, model.base_model_prefix)
    pooling, top = HeadSpec.from_config(model.config).pooling, model.config.num_hidden_layers
    device = next(model.parameters()).device
    out = {layer: torch.empty(len(examples), model.config.hidden_size) for layer in layers}
    texts = [ex.prompt for ex in examples]
    batches = batches_by_length(tokenizer, texts, max_len, batch_size, device)
    for chunk, batch in tqdm(batches, total=-(-len(texts) // batch_size), desc="reading texts", leave=False):
        read = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        last = batch["attention_mask"].sum(1) - 1
        for layer in layers:  # hidden_states[0] is the embeddings; the last is the body's (normed) output
            states = read.hidden_states[-1] if layer == top else body.norm(read.hidden_states[layer])
            states = running_mean(states) if pooling == "mean" else states.float()  # as the head reads them
            out[layer][chunk] = states[torch.arange(len(chunk)), last].cpu()
    return out


def train(recipe: Recipe, run: RunDir, task: TaskData, device: str, spec: HeadSpec) -> dict:
    """Fit the head on train + validation as the module says, choosing the layer among ``train.sequence_head``'s
    and C together; write adapter/; the run's metrics."""
    from adapt.models import dequant_once, dtypes
    from adapt.training import balance
    from adapt.training.trainer import peak_rss_mb, trainable_parameters

    t, head = recipe.train, recipe.train.sequence_head
    cfg = head.probe
    check_method(recipe)
    start = time.perf_counter()
    candidates = head.layers  # [None]: the whole body
    deepest = None if None in candidates else max(candidates)
    base, tokenizer = load_head_model(recipe.model, replace(spec, layer=deepest), device)
    top = base.config.num_hidden_layers
    examples = list(task.train) + list(task.validation)
    states = pooled_states(base, tokenizer, examples, t.max_seq_len, recipe.eval.batch_size, [c or top for c in candidates])
    read_s = time.perf_counter() - start
    weights = torch.tensor(balance.loss_weights(examples)) if t.class_balance == "weighted_loss" else None
    counts = balance.label_counts(examples)
    floor = cfg.min_accuracy if cfg.min_accuracy is not None else max(counts.values()) / len(examples)
    rows = [{"layer": layer} | row for layer in candidates
            for row in cross_validate(states[layer or top], examples, spec.labels, cfg, weights, t.seed)]  # fmt: skip
    chosen = choose(rows, recipe.eval.primary_metric, floor)
    if chosen["layer"] != deepest:  # the model is built with the chosen layer's depth only
        del base
        base, tokenizer = load_head_model(recipe.model, replace(spec, layer=chosen["layer"]), device)
    y = torch.tensor([spec.labels.index(ex.completion) for ex in examples])
    w, b = fit_logistic(states[chosen["layer"] or top], y, len(spec.labels), chosen["c"], weights)
    getattr(base, HEAD).weight.data.copy_(w)
    spec = replace(spec, layer=chosen["layer"], intercept=tuple(b.tolist()))
    built = head_training.wrap(recipe, apply_spec(base, spec), tokenizer, spec)
    head_training.write_adapter(run, built)
    log.info("probe: layer %s, C %s chosen (cross-validated %s %.4f, accuracy %.4f)", chosen["layer"] or top, chosen["c"],
             recipe.eval.primary_metric, chosen[recipe.eval.primary_metric], chosen["accuracy"])  # fmt: skip
    _, total = trainable_parameters(built.model)
    return {
        "task": "sequence_classification", "method": recipe.method.name, "model": recipe.model.source, "device": device,
        **dtypes.describe(recipe.model.compute_dtype, device), "nf4_cpu_path": dequant_once.path_of(base),
        "train_examples": len(task.train), "validation_examples": len(task.validation), "steps": 0,
        "selected_step": None, "selection": f"probe: {cfg.folds}-fold cross-validation on train + validation",
        "probe": {"examples": len(examples), "folds": cfg.folds, "metric": recipe.eval.primary_metric,
                  "min_accuracy": round(floor, 6), "chosen_layer": chosen["layer"], "chosen_c": chosen["c"], "rows": rows,
                  "read_seconds": round(read_s, 1)},
        "class_balance": t.class_balance, "train_label_counts": counts,
        "train_runtime_s": round(time.perf_counter() - start, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
        "trainable_params": w.numel() + b.numel(), "total_params": total, "resumed": False,
        "labels": list(spec.labels), "attention": spec.attention, "pooling": spec.pooling, "layer": spec.layer,
    }  # fmt: skip
