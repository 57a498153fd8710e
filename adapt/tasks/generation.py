"""Generative QA: ROUGE-L of greedy answers against the reference (perplexity: :mod:`adapt.tasks.perplexity`)."""

from __future__ import annotations

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


def generation_metrics(model, fmt: PromptFormat, examples: list[TextExample], max_new_tokens: int, batch_size: int) -> dict:
    from rouge_score import rouge_scorer

    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(model, fmt, [ex.prompt for ex in examples], max_new_tokens, batch_size)
    finally:
        model.train(was_training)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(ex.completion, ans)["rougeL"].fmeasure for ex, ans in zip(examples, answers)]
    return {
        "n": len(examples),
        "rougeL": sum(rouge) / len(rouge) if rouge else 0.0,
        "samples": [{"prompt": ex.prompt[:300], "reference": ex.completion[:300], "answer": a[:300]} for ex, a in zip(examples[:3], answers[:3])],
    }
