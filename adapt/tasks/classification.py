"""Classification by label log-likelihood: no free-text parsing.

For each example the prompt runs once; every candidate label is scored as
the summed log-probability of its tokens after the prompt, and the most likely
label is the prediction. Where every label is one token (yes/no/maybe, Yes/No)
the prompts run in batches of similar length and the language-model head runs
only at each prompt's last position; otherwise one example at a time, with the
prompt's KV cache reused for each label's further tokens.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from adapt.data.types import TextExample
from adapt.tasks.prompting import PromptFormat


GROUP_MEAN = "group_mean_macro_f1"
"""The mean over groups (a mixture's parts, LegalBench's tasks) of each group's macro-F1; the macro-F1 itself
with one group. Selecting a mixture's checkpoint on it weighs each part alike, whatever its labels and size:
the pooled macro-F1 of PubMedQA + CUAD averages five labels, three of them PubMedQA's."""


@dataclass(frozen=True)
class LabelScores:
    example_id: str
    gold: str
    predicted: str
    logprobs: dict[str, float]
    group: str = ""


def _choice_token_ids(fmt: PromptFormat, prompt_ids: list[int], prompt: str, choice: str) -> list[int]:
    full = fmt.tokenizer(prompt + fmt.completion(choice, end=False), add_special_tokens=False)["input_ids"]
    if full[: len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
        return full[len(prompt_ids) :]
    # Tokens merged across the boundary: score the answer tokenized on its own.
    return fmt.tokenizer(fmt.completion(choice, end=False), add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class _Prepared:
    example: TextExample
    prompt_ids: list[int]
    choice_ids: dict[str, list[int]]

    @property
    def single_token(self) -> bool:
        return all(len(ids) == 1 for ids in self.choice_ids.values())


def _prepare(fmt: PromptFormat, example: TextExample, max_length: int) -> _Prepared:
    prompt = fmt.prompt(example.prompt, max_tokens=max_length)
    prompt_ids = fmt.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    choices = {c: _choice_token_ids(fmt, prompt_ids, prompt, c) for c in example.choices}
    return _Prepared(example, prompt_ids, choices)


@torch.no_grad()
def score_example(model, fmt: PromptFormat, example: TextExample, max_length: int = 2048) -> LabelScores:
    return _score_one(model, _prepare(fmt, example, max_length))


def _cache_name(out) -> str:
    """The KV cache's name in a forward's output, which is the forward argument's name too: ``cache`` in the
    installed transformers (5.24, where ``past_key_values`` is a deprecated alias that logs a warning),
    ``past_key_values`` in the earlier 5.x releases pyproject allows."""
    return "cache" if "cache" in out else "past_key_values"


@torch.no_grad()
def _score_one(model, p: _Prepared) -> LabelScores:
    """One prompt forward; a label's further tokens reuse the prompt's KV cache."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([p.prompt_ids], device=device), use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    logprobs = {}
    cache_name = _cache_name(out)
    for choice, ids in p.choice_ids.items():
        total = first[ids[0]].item()
        if len(ids) > 1:
            rest = model(
                input_ids=torch.tensor([ids[:-1]], device=device),
                **{cache_name: copy.deepcopy(out[cache_name])},
                use_cache=True,
            )
            step = torch.log_softmax(rest.logits[0].float(), dim=-1)
            total += step.gather(1, torch.tensor(ids[1:], device=device)[:, None]).sum().item()
        logprobs[choice] = total
    predicted = max(logprobs, key=logprobs.get)
    return LabelScores(p.example.id, p.example.completion, predicted, logprobs, p.example.group)


@torch.no_grad()
def _score_batch(model, pad_id: int, batch: list[_Prepared]) -> list[LabelScores]:
    """One forward over right-padded prompts; the head runs only at the rows' last positions."""
    device = next(model.parameters()).device
    width = max(len(p.prompt_ids) for p in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, p in enumerate(batch):
        ids[row, : len(p.prompt_ids)] = torch.tensor(p.prompt_ids)
        mask[row, : len(p.prompt_ids)] = 1
    last = sorted({len(p.prompt_ids) - 1 for p in batch})
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False, logits_to_keep=torch.tensor(last, device=device))
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    scores = []
    for row, p in enumerate(batch):
        at = logprobs[row, last.index(len(p.prompt_ids) - 1)]
        by_label = {choice: at[tokens[0]].item() for choice, tokens in p.choice_ids.items()}
        predicted = max(by_label, key=by_label.get)
        scores.append(LabelScores(p.example.id, p.example.completion, predicted, by_label, p.example.group))
    return scores


def score_examples(
    model, fmt: PromptFormat, examples: list[TextExample], desc: str = "scoring", batch_size: int = 8, max_length: int = 2048
) -> list[LabelScores]:
    """Label scores for ``examples``, in their order (batched where every label is one token)."""
    was_training = model.training
    model.eval()
    prepared = [_prepare(fmt, ex, max_length) for ex in examples]
    batchable = sorted((i for i, p in enumerate(prepared) if p.single_token), key=lambda i: len(prepared[i].prompt_ids))
    results: dict[int, LabelScores] = {}
    pad_id = fmt.tokenizer.pad_token_id if fmt.tokenizer.pad_token_id is not None else 0
    try:
        with tqdm(total=len(examples), desc=desc, leave=False) as bar:
            for start in range(0, len(batchable), batch_size):
                chunk = batchable[start : start + batch_size]
                results.update(zip(chunk, _score_batch(model, pad_id, [prepared[i] for i in chunk])))
                bar.update(len(chunk))
            for i, p in enumerate(prepared):
                if i not in results:
                    results[i] = _score_one(model, p)
                    bar.update(1)
    finally:
        model.train(was_training)
    return [results[i] for i in range(len(examples))]


def _f1_per_label(gold: list[str], pred: list[str], labels: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    f1, recall = {}, {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        precision = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1[label] = 2 * precision * rec / (precision + rec) if precision + rec else 0.0
        recall[label] = rec
    return f1, recall


def classification_metrics(scores: list[LabelScores]) -> dict:
    """Accuracy, macro-F1 and balanced accuracy, overall and per group; labels absent from gold are ignored."""
    if not scores:
        return {"n": 0}
    gold = [s.gold for s in scores]
    pred = [s.predicted for s in scores]
    labels = sorted(set(gold))
    f1, recall = _f1_per_label(gold, pred, labels)
    result = {
        "n": len(scores),
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / len(scores),
        "macro_f1": sum(f1.values()) / len(labels),
        "balanced_accuracy": sum(recall.values()) / len(labels),
        "label_counts": {label: gold.count(label) for label in labels},
        "predicted_counts": {label: pred.count(label) for label in sorted(set(pred))},
    }
    groups = defaultdict(list)
    for s in scores:
        groups[s.group].append(s)
    if len(groups) > 1:
        result["groups"] = {name: classification_metrics(items) for name, items in sorted(groups.items())}
    parts = result.get("groups", {}).values() or [result]
    result[GROUP_MEAN] = sum(part["macro_f1"] for part in parts) / len(parts)
    return result


def score(model, tokenizer, recipe, task, examples: list[TextExample], perplexity: bool = True) -> dict:
    """Label scores, accuracy / macro-F1 / balanced accuracy (and the text's perplexity): `adapt eval`'s metrics."""
    from adapt.tasks.scoring import perplexity_metrics

    fmt = PromptFormat(tokenizer, task.instruction)
    scores = score_examples(model, fmt, examples, batch_size=recipe.eval.batch_size)
    # Predictions in example order: agreement with the adapter's is the sharpest retention check.
    metrics = classification_metrics(scores) | {"predictions": [s.predicted for s in scores]}
    return metrics | (perplexity_metrics(model, fmt, recipe, task.kind, examples) if perplexity else {})


def predict(model, tokenizer, recipe, inputs, batch_size: int) -> list[dict]:
    """One row per input: its id, text, predicted label and every label's log-likelihood (and the gold label)."""
    fmt = PromptFormat(tokenizer, inputs.instruction)
    return prediction_rows(inputs, score_examples(model, fmt, inputs.examples, desc="predicting", batch_size=batch_size))


def prediction_rows(inputs, scores: list[LabelScores]) -> list[dict]:
    """`adapt predict`'s rows of scored inputs: id, text, predicted label, each label's score (and the gold)."""
    rows = []
    for ex, s in zip(inputs.examples, scores):
        rows.append({"id": ex.id, "input": ex.prompt, "prediction": s.predicted,
                     "scores": {label: round(value, 4) for label, value in s.logprobs.items()}})  # fmt: skip
        if inputs.gold:
            rows[-1]["gold"] = s.gold
    return rows


def prediction_metrics(rows: list[dict]) -> dict:
    """Accuracy, macro-F1 and balanced accuracy of predicted against gold labels."""
    scores = [LabelScores(r["id"], r["gold"], r["prediction"], r["scores"]) for r in rows]
    metrics = classification_metrics(scores)
    return {key: metrics[key] for key in ("n", "accuracy", "macro_f1", "balanced_accuracy")}
