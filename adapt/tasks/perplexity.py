"""Perplexity of held-out domain text, computed one way for every task and every variant.

Each example is tokenized as training sees it (:func:`example_ids`): the prompt
formatted by :class:`~adapt.tasks.prompting.PromptFormat` (its start cut to
fit) followed by the answer with its end-of-turn token. Generative tasks count
the answer tokens only (perplexity of the reference answer); classification
counts the whole text, prompt and gold label, since its answer is one label.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from adapt.data.types import TextExample
from adapt.tasks.prompting import PromptFormat


def example_ids(fmt: PromptFormat, example: TextExample, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + answer within ``max_length`` (the answer keeps at most half), and the answer's length."""
    answer_ids = fmt.tokenizer(fmt.completion(example.completion), add_special_tokens=False)["input_ids"][: max_length // 2]
    prompt = fmt.prompt(example.prompt, max_tokens=max_length - len(answer_ids))
    return fmt.tokenizer(prompt, add_special_tokens=False)["input_ids"] + answer_ids, len(answer_ids)


@torch.no_grad()
def text_nll(model, fmt: PromptFormat, examples: list[TextExample], max_length: int, answer_only: bool) -> tuple[float, int]:
    """Summed negative log-likelihood and token count: of the answers, or of every token after the first."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for ex in tqdm(examples, desc="perplexity", unit="example", leave=False):
        ids, n_answer = example_ids(fmt, ex, max_length)
        n = n_answer if answer_only else len(ids) - 1
        if n <= 0:
            continue
        logits = model(input_ids=torch.tensor([ids], device=device), logits_to_keep=n + 1).logits[0, :-1].float()
        targets = torch.tensor(ids[-n:], device=device)
        total += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        count += n
    return total, count


def perplexity(model, fmt: PromptFormat, examples: list[TextExample], max_length: int, answer_only: bool) -> float:
    """exp(mean token NLL) over ``examples`` (see :func:`text_nll`), in eval mode; nan without tokens."""
    was_training = model.training
    model.eval()
    try:
        nll, tokens = text_nll(model, fmt, examples, max_length, answer_only)
    finally:
        model.train(was_training)
    return math.exp(nll / tokens) if tokens else float("nan")
