"""What the causal-LM kinds (instruction, classification) share after training: merging the adapter into the
language model, scoring a run's variants, and the calibration examples of ``nf4-calibrated``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def merge(run, recipe, target: str, out_dir: Path) -> None:
    """The run's LoRA (the method's LoRA form) added to the base for ``target`` (the dequantized NF4 weights it was
    trained against, or the original 16-bit ones), written in 16 bits into ``out_dir``."""
    from adapt import methods

    merge_lora(recipe, target, methods.lora_adapter_dir(run, recipe), out_dir)


def merge_lora(recipe, target: str, adapter_dir: Path, out_dir: Path, loader=None) -> None:
    """:func:`merge` of the peft LoRA in ``adapter_dir``; ``loader`` builds the base (default: the causal LM;
    the token-classification head passes its own)."""
    from peft import PeftModel

    from adapt.models import dequantized_base
    from adapt.models.loading import storage_dtype
    from adapt.models.quiet import peft_wrap

    model, tokenizer = dequantized_base.base_for(recipe, target, loader)
    with peft_wrap():
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.to(storage_dtype(recipe.model))  # merged in the compute dtype, written in 16 bits
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def score_variants(run, recipe, task, examples: list, device: str, variants: list) -> Iterator[tuple[str, dict]]:
    """Each variant's eval.json row on ``examples`` (the kind's :attr:`~adapt.tasks.Kind.score`), as it is scored;
    after the adapter, the method's own report (MoE-LoRA routing) is written."""
    from adapt import methods
    from adapt.domains import domain_name
    from adapt.tasks.scoring import score
    from adapt.variants import loaded, row

    method = methods.of(recipe)
    for variant in variants:
        log.info("scoring %s on %d examples", variant.name, len(examples))
        with loaded(run, recipe, variant, device) as (model, tokenizer, load_s):
            metrics = score(model, tokenizer, recipe, task, examples)
            if variant.name == "adapter" and method.adapter_report is not None:
                method.adapter_report(run.root, model, tokenizer, task, examples, max_len=recipe.train.max_seq_len,
                                      default_group=domain_name(recipe.domain))  # fmt: skip
        yield variant.name, row(run, variant, metrics, load_s)


def calibration_ids(tokenizer, task, examples: list, max_len: int) -> list[list[int]]:
    """Each example's prompt + answer token ids, as training sees them."""
    from adapt.tasks.perplexity import example_ids
    from adapt.tasks.prompting import PromptFormat

    fmt = PromptFormat(tokenizer, task.instruction)
    return [example_ids(fmt, ex, max_len)[0] for ex in examples]


def trained_base(recipe, adapter_dir: Path):
    """The causal LM the adapter trained against, loaded as training loads it (NF4 or 16-bit per the recipe)."""
    from adapt.models.loading import load_base

    return load_base(recipe.model)
