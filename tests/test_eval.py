"""adapt.eval on its own: perplexity of held-out text for every task."""

from __future__ import annotations

import math

import pytest
import torch

from adapt.data.types import TextExample
from adapt.eval import perplexity_metrics
from adapt.recipe import Recipe

EXAMPLES = [
    TextExample(f"Context: a randomized trial of {n} patients. Question: is the treatment effective?", label, ("yes", "no", "maybe"), id=str(n))
    for n, label in zip(range(10, 70, 5), ["yes", "no", "maybe"] * 4)
]


def _recipe(method: str = "qlora", **eval_cfg) -> Recipe:
    return Recipe.model_validate(
        {"name": "t", "domain": "healthcare", "method": {"name": method}, "data": {"source": "pubmedqa", "path": "x"},
         "train": {"max_seq_len": 64}, "eval": eval_cfg}
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    from adapt.models import load_tokenizer
    from adapt.tasks.prompting import PromptFormat

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    return model, PromptFormat(load_tokenizer(tiny_llama_dir), "Answer yes, no or maybe.")


def _manual_nll(model, ids: list[int], n: int) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits[-n:], torch.tensor(ids[1:])[-n:], reduction="sum").item()


def test_classification_perplexity_scores_prompt_and_gold_label_as_training_sees_them(tiny):
    from adapt.tasks.perplexity import example_ids

    model, fmt = tiny
    metrics = perplexity_metrics(model, fmt, _recipe(perplexity_examples=5), "classification", EXAMPLES)
    assert metrics["perplexity_n"] == 5
    from adapt.data.splits import seeded_sample

    sample = seeded_sample(EXAMPLES, 5, 0, salt="perplexity")
    assert [ex.id for ex in sample] != [ex.id for ex in EXAMPLES[:5]]  # a seeded sample, not a prefix
    whole = [example_ids(fmt, ex, 64)[0] for ex in sample]
    assert all(fmt.tokenizer.decode(ids).endswith(ex.completion + fmt.tokenizer.eos_token) for ids, ex in zip(whole, sample))
    nll = sum(_manual_nll(model, ids, len(ids) - 1) for ids in whole)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / sum(len(ids) - 1 for ids in whole)), rel=1e-4)

    answers = perplexity_metrics(model, fmt, _recipe(perplexity_examples=5), "generation", EXAMPLES)["perplexity"]
    pairs = [example_ids(fmt, ex, 64) for ex in sample]
    nll = sum(_manual_nll(model, ids, n) for ids, n in pairs)
    assert answers == pytest.approx(math.exp(nll / sum(n for _, n in pairs)), rel=1e-4)
    assert perplexity_metrics(model, fmt, _recipe(perplexity_examples=0), "classification", EXAMPLES) == {}
