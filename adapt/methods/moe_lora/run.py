"""MoE-LoRA over a run directory: the collapsed LoRA for merge/quantize, and the router telemetry report.

- :func:`lora_for_merge` (the registry's ``lora_for_merge``): ``<run>/collapsed/``,
  a plain peft LoRA made from the trained adapter with mean gates over a seeded
  sample of the training split; rebuilt when the adapter is newer.
- :func:`routing_report`: one forward pass per scored example (prompt + gold answer),
  grouped by ``example.group`` (LegalBench task, MedQuAD source, ...), then
  ``routing.json`` + ``routing.png`` in the run directory.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from adapt.methods.moe_lora.collapse import collapse
from adapt.methods.moe_lora.io import WEIGHTS_NAME, load
from adapt.methods.moe_lora.model import record_routing, reset_routing, routing_table
from adapt.methods.moe_lora.telemetry import write_routing_report

log = logging.getLogger(__name__)

COLLAPSED_DIR = "collapsed"
CALIBRATION_EXAMPLES = 64
BATCH_SIZE = 4


def _text(fmt, example) -> str:
    if hasattr(example, "tokens"):  # TokenExample (NER): the sentence itself
        return " ".join(example.tokens)
    return fmt.prompt(example.prompt) + fmt.completion(example.completion, end=False)


def tokenized_batches(tokenizer, instruction: str, examples: list, max_len: int, batch_size: int = BATCH_SIZE) -> list[dict]:
    """Prompt + gold answer, as the model saw them in training, padded into batches."""
    from adapt.tasks.prompting import PromptFormat

    fmt = PromptFormat(tokenizer, instruction)
    texts = [_text(fmt, ex) for ex in examples]
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_len, add_special_tokens=False
        )
        batches.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return batches


def calibration_batches(tokenizer, task, max_len: int, n: int = CALIBRATION_EXAMPLES, seed: int = 0) -> list[dict]:
    """A seeded sample (never a prefix) of the training split."""
    examples = list(task.train)
    if len(examples) > n:
        examples = random.Random(seed).sample(examples, n)
    return tokenized_batches(tokenizer, task.instruction, examples, max_len)


def lora_for_merge(run, recipe) -> Path:
    """``<run>/collapsed/``: the run's MoE-LoRA adapter collapsed to a plain peft LoRA (made once per adapter)."""
    from adapt.models.loading import load_base
    from adapt.data import load_task

    adapter = run.require_adapter()
    out = run.root / COLLAPSED_DIR
    done = out / "adapter_model.safetensors"
    if done.is_file() and done.stat().st_mtime >= (adapter / WEIGHTS_NAME).stat().st_mtime:
        return out
    model, tokenizer = load_base(recipe.model)
    model = load(model, adapter)
    task = load_task(recipe.data)
    batches = calibration_batches(tokenizer, task, recipe.train.max_seq_len, seed=recipe.data.seed)
    log.info("collapsing %s with mean gates over %d calibration examples", adapter, sum(len(b["input_ids"]) for b in batches))
    collapse(model, batches, out)
    return out


def routing_report(run_dir: Path, model: nn.Module, tokenizer, task, examples: list, max_len: int, default_group: str = "all"):
    """Router telemetry of ``model`` (MoE-LoRA active) over ``examples`` by group -> (routing.json, routing.png)."""
    by_group: dict[str, list] = defaultdict(list)
    for ex in examples:
        by_group[getattr(ex, "group", "") or default_group].append(ex)
    reset_routing(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for group, items in sorted(by_group.items()):
                with record_routing(model, group=group):
                    for batch in tokenized_batches(tokenizer, task.instruction, items, max_len):
                        model(**{k: v.to(device) for k, v in batch.items()})
        table = routing_table(model)
    finally:
        model.train(was_training)
    return write_routing_report(table, Path(run_dir))
