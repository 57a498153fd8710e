"""The instruction kind (``generation`` in data files): greedy answers scored by ROUGE-L against the reference.

Trained as prompt -> completion (:mod:`adapt.tasks.sft`); perplexity of the reference answers
(:mod:`adapt.tasks.perplexity`); `adapt predict` writes each prompt's generated answer.
"""

from __future__ import annotations

import functools

import torch
from tqdm.auto import tqdm

from adapt.data.types import TextExample
from adapt.tasks.prompting import PromptFormat


@torch.no_grad()
def generate_answers(
    model, fmt: PromptFormat, prompts: list[str], max_new_tokens: int, batch_size: int = 8, max_prompt_tokens: int = 1024
) -> list[str]:
    tokenizer = fmt.tokenizer
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="generating", leave=False):
            batch = [fmt.prompt(p, max_tokens=max_prompt_tokens) for p in prompts[start : start + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
    return answers


@functools.cache
def _rouge_scorer():
    """rouge-score's ROUGE-L scorer, built once. Its tokenizer is passed in, the same DefaultTokenizer (stemmed) it
    would build itself: building it itself logs absl's "Using default tokenizer." on every scorer."""
    from rouge_score import rouge_scorer, tokenizers

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))


def rouge_l(references: list[str], answers: list[str]) -> list[float]:
    """ROUGE-L F1 of each answer against its reference (stemmed, as rouge-score computes it)."""
    scorer = _rouge_scorer()
    return [scorer.score(ref, ans)["rougeL"].fmeasure for ref, ans in zip(references, answers)]


def generation_metrics(model, fmt: PromptFormat, examples: list[TextExample], max_new_tokens: int, batch_size: int) -> dict:
    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(model, fmt, [ex.prompt for ex in examples], max_new_tokens, batch_size)
    finally:
        model.train(was_training)
    rouge = rouge_l([ex.completion for ex in examples], answers)
    return {
        "n": len(examples),
        "rougeL": sum(rouge) / len(rouge) if rouge else 0.0,
        "samples": [{"prompt": ex.prompt[:300], "reference": ex.completion[:300], "answer": a[:300]} for ex, a in zip(examples[:3], answers[:3])],
    }


def score(model, tokenizer, recipe, task, examples: list[TextExample], perplexity: bool = True) -> dict:
    """ROUGE-L of greedy answers (and the reference answers' perplexity): this kind's `adapt eval` metrics."""
    from adapt.tasks.scoring import perplexity_metrics

    fmt = PromptFormat(tokenizer, task.instruction)
    metrics = generation_metrics(model, fmt, examples, recipe.eval.max_new_tokens, recipe.eval.batch_size)
    return metrics | (perplexity_metrics(model, fmt, recipe, task.kind, examples) if perplexity else {})


def predict(model, tokenizer, recipe, inputs, batch_size: int) -> list[dict]:
    """One row per input: its id, prompt and generated answer (and the reference, when the file has it)."""
    fmt = PromptFormat(tokenizer, inputs.instruction)
    answers = generate_answers(model, fmt, [ex.prompt for ex in inputs.examples], recipe.eval.max_new_tokens, batch_size)
    rows = [{"id": ex.id, "input": ex.prompt, "prediction": answer} for ex, answer in zip(inputs.examples, answers)]
    if inputs.gold:
        for row, ex in zip(rows, inputs.examples):
            row["gold"] = ex.completion
    return rows


def prediction_metrics(rows: list[dict]) -> dict:
    """ROUGE-L of predicted against gold answers."""
    rouge = rouge_l([r["gold"] for r in rows], [r["prediction"] for r in rows])
    return {"n": len(rows), "rougeL": sum(rouge) / len(rouge) if rouge else 0.0}
