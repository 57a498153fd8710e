"""adapt.eval on its own: perplexity of held-out text for every task, and the 4-bit retention warning."""

from __future__ import annotations

import json
import math

import pytest
import torch

from adapt.data.types import TextExample
from adapt.eval import retention_warning, summary_table
from adapt.tasks.scoring import perplexity_metrics
from adapt.recipe import Recipe
from adapt.runs import RunDir

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
    assert all(len(ids) <= 64 for ids in whole)  # a cut prompt never overshoots the budget
    assert all(fmt.tokenizer.decode(ids).endswith(ex.completion + fmt.tokenizer.eos_token) for ids, ex in zip(whole, sample))
    nll = sum(_manual_nll(model, ids, len(ids) - 1) for ids in whole)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / sum(len(ids) - 1 for ids in whole)), rel=1e-4)

    answers = perplexity_metrics(model, fmt, _recipe(perplexity_examples=5), "generation", EXAMPLES)["perplexity"]
    pairs = [example_ids(fmt, ex, 64) for ex in sample]
    nll = sum(_manual_nll(model, ids, n) for ids, n in pairs)
    assert answers == pytest.approx(math.exp(nll / sum(n for _, n in pairs)), rel=1e-4)
    assert perplexity_metrics(model, fmt, _recipe(perplexity_examples=0), "classification", EXAMPLES) == {}


def _export(run: RunDir, fmt: str, manifest: dict | None = None) -> None:
    run.export(fmt).mkdir(parents=True)
    (run.export(fmt) / "export.json").write_text(json.dumps(manifest or {"format": fmt}))


def test_a_lossy_4bit_variant_gets_a_warning_naming_the_better_path(tmp_path):
    run = RunDir(tmp_path / "run")
    for fmt in ("gguf-q4_0", "nf4-calibrated", "gguf-q8_0", "nf4-lora"):
        _export(run, fmt)
    recipe = _recipe()
    warning = retention_warning(run, recipe, "export/gguf-q4_0", 0.95, "macro_f1")
    assert "export/gguf-q4_0" in warning and "0.950" in warning
    assert f"adapt quantize {run.root} --format nf4-lora" in warning and "--format gguf-lora" in warning
    calibrated = retention_warning(run, recipe, "export/nf4-calibrated", 0.9, "macro_f1")
    assert "--format nf4-lora" in calibrated
    # nf4-lora is the trained model itself; should it still lose, the way out is the adapter for llama.cpp
    itself = retention_warning(run, recipe, "export/nf4-lora", 0.9, "macro_f1")
    assert "export/nf4-lora keeps only 90.0%" in itself and "--format gguf-lora" in itself and "--format nf4-lora" not in itself
    sixteen = Recipe.model_validate(recipe.model_dump() | {"model": {"quantization": "none"}})
    assert "--format nf4-lora" not in retention_warning(run, sixteen, "export/gguf-q4_0", 0.9, "macro_f1")  # no NF4 base
    assert retention_warning(run, recipe, "export/gguf-q4_0", 0.985, "macro_f1") is None  # within 2%
    assert retention_warning(run, recipe, "export/gguf-q8_0", 0.5, "macro_f1") is None  # 8 bits: not this check
    assert retention_warning(run, recipe, "merged/fp16", 0.5, "macro_f1") is None

    _export(run, "nf4", {"format": "nf4", "folded": True})  # a PEQA run's nf4 is the trained model itself
    assert retention_warning(run, _recipe("peqa"), "export/nf4", 0.5, "macro_f1") is None
    peqa = retention_warning(run, _recipe("peqa"), "export/gguf-q4_0", 0.5, "macro_f1")
    assert "--format nf4`" in peqa and "gguf-lora" not in peqa

    result = {"headline_metrics": ["macro_f1"], "variants": {
        "adapter": {"metrics": {"macro_f1": 0.6}, "retention": 1.0},
        "export/gguf-q4_0": {"metrics": {"macro_f1": 0.57}, "retention": 0.95, "warning": warning},
    }}  # fmt: skip
    table = summary_table(result)
    assert table.splitlines()[-1] == f"warning: {warning}"


def test_agreement_counts_examples_predicted_as_the_adapter_does():
    from adapt.eval import _agreement

    adapter = {"metrics": {"predictions": ["yes", "no", "maybe", "yes"]}}
    variant = {"metrics": {"predictions": ["yes", "no", "yes", "yes"]}}
    assert _agreement(variant, adapter) == 0.75
    assert _agreement(adapter, adapter) == 1.0
    assert _agreement({"metrics": {"predictions": ["yes"]}}, adapter) is None  # other examples: not comparable
    assert _agreement({"metrics": {}}, adapter) is None and _agreement(variant, None) is None
    result = {"headline_metrics": ["macro_f1"], "variants": {
        "adapter": {"metrics": {"macro_f1": 0.6}, "retention": 1.0, "agreement": 1.0},
        "export/gguf-q8_0": {"metrics": {"macro_f1": 0.59}, "retention": 0.983, "agreement": 0.75},
    }}  # fmt: skip
    assert summary_table(result).splitlines()[-1].startswith("| export/gguf-q8_0 | 0.5900 | 0.983 | 0.750 |")


def test_agreement_is_per_example_for_labels_and_per_sentence_for_tag_lists():
    from adapt.eval import _agreement

    def row(predictions):
        return {"metrics": {"predictions": predictions}}

    assert _agreement(row(["yes", "no", "maybe"]), row(["yes", "no", "no"])) == round(2 / 3, 4)
    tags = [["O", "B-PER", "I-PER"], ["B-LOC"]]
    assert _agreement(row(tags), row([["O", "B-PER", "O"], ["B-LOC"]])) == 0.5  # 1 of 2 sentences, not 3 of 4 words
    assert _agreement(row(tags), row(tags[:1])) is None  # not scored on the same examples
