"""Training of the causal-LM kinds (instruction, classification): prompt -> completion rows, TRL's SFTTrainer.

The :class:`~adapt.tasks.Kind` ``train`` of both: load the base, wrap it with the recipe's method, train on the
training split's completions only (validation with `adapt eval`'s scorer), save the adapter.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from adapt.training import distributed
from adapt.errors import AdaptError

log = logging.getLogger(__name__)


def sft_dataset(task, fmt, max_seq_len: int, class_balance: str = "none", seed: int = 0):
    """Prompt/completion rows of the training split; ``class_balance`` (classification): repeated minority
    examples, or a ``loss_weight`` column the trainer applies (see :mod:`adapt.training.balance`)."""
    from datasets import Dataset

    from adapt.training import balance

    examples = balance.oversample(task.train, seed) if class_balance == "balanced_sampling" else task.train
    weights = balance.loss_weights(examples) if class_balance == "weighted_loss" else None
    rows = []
    for i, ex in enumerate(examples):
        completion = fmt.completion(ex.completion)
        budget = max(max_seq_len - fmt.count_tokens(completion), max_seq_len // 2)
        rows.append({"prompt": fmt.prompt(ex.prompt, max_tokens=budget), "completion": completion})
        if weights is not None:
            rows[-1]["loss_weight"] = weights[i]
    if not rows:
        raise AdaptError(f"{task.description}: the training split is empty")
    return Dataset.from_list(rows)


def sft_config(recipe, run, device: str):
    from trl import SFTConfig

    from adapt.training.trainer import training_kwargs

    return SFTConfig(
        **training_kwargs(recipe, run, device),
        max_length=recipe.train.max_seq_len,
        completion_only_loss=True,
        packing=False,
        remove_unused_columns=True,
    )


def train(recipe, run, task, device: str, resume: Path | None = None) -> dict | None:
    """Train the recipe's adapter on ``task`` and save it into ``run.adapter``; the run's metrics (None off rank 0)."""
    from adapt import methods
    from adapt.models.bnb_cpu import disable_cpu_4bit_packing
    from adapt.models.loading import load_base
    from adapt.tasks.prompting import PromptFormat
    from adapt.tasks.scoring import score
    from adapt.tasks.training import finished, tokens_in_last_checkpoint
    from adapt.training.trainer import AuxLossSFTTrainer, log_callbacks, trainable_parameters, validation_callback
    from adapt.runs import atomic_dir

    args = sft_config(recipe, run, device)  # before loading: DeepSpeed ZeRO-3 then loads the weights partitioned
    base, tokenizer = load_base(recipe.model, device=device)
    disable_cpu_4bit_packing(base)  # bitsandbytes' CPU inference packing has no backward
    method = methods.of(recipe)
    model = method.build(recipe.method, base)
    trainable, total = trainable_parameters(model)
    log.info("trainable parameters: %s of %s (%.3f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    fmt = PromptFormat(tokenizer, task.instruction)
    dataset = sft_dataset(task, fmt, recipe.train.max_seq_len, recipe.train.class_balance, recipe.train.seed)
    scorer = lambda m, examples: score(m, tokenizer, recipe, task, examples, perplexity=False)  # noqa: E731
    validator = validation_callback(recipe, run, task, len(dataset), scorer, method.save)
    trainer = AuxLossSFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=log_callbacks(run, validator, recipe.train.report_to),
        auxiliary_loss=method.auxiliary_loss,
    )
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose answer the length cut removed entirely
        raise AdaptError(
            f"{task.description}: no training example keeps its answer within train.max_seq_len="
            f"{recipe.train.max_seq_len} tokens (the prompt format alone may be longer); raise train.max_seq_len"
        )
    tokens_before = tokens_in_last_checkpoint(run.checkpoints) if resume else 0
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    elapsed = time.perf_counter() - start

    state = distributed.full_state_dict(trainer)  # every process takes part when FSDP / ZeRO-3 shard the adapter
    if not distributed.is_main_process():
        return None  # rank 0 alone writes artifacts
    with atomic_dir(run.adapter) as tmp:
        if validator is not None and validator.selected() is not None:
            from adapt.training.validation import copy_adapter

            copy_adapter(validator.selected(), tmp)  # the best validation step's adapter, not the last step's
        elif state is None:
            method.save(model, tmp)
        else:
            model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return finished(recipe, task, device, model, trainer, result, elapsed, validator, resume is not None, tokens_before) | {
        "batching": "group_by_length" if recipe.train.group_by_length else "random",
        "lm_head": "supervised positions only (adapt.training.supervised_head)",
        "class_balance": recipe.train.class_balance,
        "train_rows": len(dataset),
    }
