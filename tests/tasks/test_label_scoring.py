"""Batched label scoring gives the per-example scores (same predictions, log-probabilities to float tolerance)."""

from __future__ import annotations

import pytest
import torch

from adapt.data.types import TextExample
from adapt.tasks.classification import score_example, score_examples
from adapt.tasks.prompting import PromptFormat

QUESTIONS = [
    "Does aspirin reduce the risk of stroke?",
    "Context: a randomized trial of 120 patients. Question: is the treatment effective?",
    "What are the symptoms of diabetes? Frequent urination, thirst, hunger and fatigue are common.",
    "Licensee shall not assign this Agreement.",
    "The contract may be terminated by either party upon thirty days written notice. Is this a termination clause?",
]


@pytest.fixture(scope="module")
def model_and_format(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    from adapt.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    return model, PromptFormat(tokenizer, "Answer yes, no or maybe.")


def _examples(choices):
    return [TextExample(q, choices[i % len(choices)], tuple(choices), id=str(i)) for i, q in enumerate(QUESTIONS)]


def test_batched_matches_one_by_one(model_and_format):
    model, fmt = model_and_format
    single = [c for c in ("yes", "no", "maybe", "1", "2", "3") if len(fmt.tokenizer(c, add_special_tokens=False)["input_ids"]) == 1]
    assert len(single) >= 2, "the tiny tokenizer should have one-token labels"
    examples = _examples(single)
    batched = score_examples(model, fmt, examples, batch_size=3)
    for ex, got in zip(examples, batched):
        ref = score_example(model, fmt, ex)
        assert got.example_id == ex.id and got.predicted == ref.predicted
        assert got.logprobs == pytest.approx(ref.logprobs, abs=1e-4)


def test_multi_token_labels_fall_back_in_order(model_and_format):
    model, fmt = model_and_format
    multi = ["Terminationclause", "1"]  # the first is several tokens: scored one example at a time
    examples = _examples(multi)
    got = score_examples(model, fmt, examples, batch_size=4)
    assert [s.example_id for s in got] == [ex.id for ex in examples]
    for ex, s in zip(examples, got):
        assert s.logprobs == pytest.approx(score_example(model, fmt, ex).logprobs, abs=1e-5)


def test_multi_token_labels_reuse_the_prompts_cache_by_its_current_name(model_and_format):
    """A label's further tokens run on the prompt's KV cache, passed under the name the installed transformers
    takes (no deprecated ``past_key_values``); the scores are those of one forward over prompt + label."""
    from adapt.tasks.classification import _prepare

    model, fmt = model_and_format
    example = _examples(["Terminationclause", "1"])[0]
    calls: list[set[str]] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kwargs: calls.append(set(kwargs)), with_kwargs=True)
    try:
        got = score_example(model, fmt, example)
    finally:
        hook.remove()

    assert len(calls) == 2 and all("past_key_values" not in kw for kw in calls) and "cache" in calls[1]
    prepared = _prepare(fmt, example, 2048)
    for choice, ids in prepared.choice_ids.items():
        full = torch.tensor([prepared.prompt_ids + ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=full).logits[0].float(), dim=-1)
        start = len(prepared.prompt_ids) - 1
        expected = sum(logprobs[start + i, token].item() for i, token in enumerate(ids))
        assert got.logprobs[choice] == pytest.approx(expected, abs=1e-4)


def test_group_mean_weighs_each_part_alike_where_the_pooled_macro_f1_does_not():
    from adapt.tasks.classification import GROUP_MEAN, LabelScores, classification_metrics

    def scores(group, pairs):
        return [LabelScores(f"{group}{i}", gold, pred, {}, group) for i, (gold, pred) in enumerate(pairs)]

    # healthcare answers "yes" to everything: F1 of "yes" 2/3 (precision 1/2, recall 1), of "no" and "maybe" 0.
    healthcare = scores("healthcare", [("yes", "yes"), ("yes", "yes"), ("no", "yes"), ("maybe", "yes")])
    legal = scores("legal", [("Yes", "Yes"), ("No", "No")])  # every answer right
    metrics = classification_metrics(healthcare + legal)
    assert metrics["groups"]["healthcare"]["macro_f1"] == pytest.approx(2 / 9)
    assert metrics["groups"]["legal"]["macro_f1"] == 1.0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 5)  # pooled: five labels, three of them healthcare's
    assert metrics[GROUP_MEAN] == pytest.approx((2 / 9 + 1) / 2)  # each part counts once
    assert classification_metrics(legal)[GROUP_MEAN] == classification_metrics(legal)["macro_f1"]  # one group
