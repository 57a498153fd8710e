"""`adapt train`: load the base, wrap it with the recipe's method, train with TRL, save the adapter."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from adapt import distributed, launch
from adapt.checkpoints import resume_point
from adapt.errors import AdaptError
from adapt.recipe import Recipe
from adapt.runs import RunDir, atomic_dir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

COMPARED_ON_RESUME = ("model", "method", "data")


def _check_resume(run: RunDir, recipe: Recipe) -> None:
    previous = run.load_recipe()
    for section in COMPARED_ON_RESUME:
        if getattr(previous, section) != getattr(recipe, section):
            raise AdaptError(
                f"{run.recipe}: the {section} section differs from the run being resumed; "
                f"resume with the same recipe or train into a new --out directory"
            )


def _sft_dataset(task, fmt, max_seq_len: int, class_balance: str = "none", seed: int = 0):
    """Prompt/completion rows of the training split; ``class_balance`` (classification): repeated minority
    examples, or a ``loss_weight`` column the trainer applies (see :mod:`adapt.balance`)."""
    from datasets import Dataset

    from adapt import balance

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


def _sft_config(recipe: Recipe, run: RunDir, device: str):
    from trl import SFTConfig

    from adapt.trainer import training_kwargs

    return SFTConfig(
        **training_kwargs(recipe, run, device),
        max_length=recipe.train.max_seq_len,
        completion_only_loss=True,
        packing=False,
        remove_unused_columns=True,
    )


def _tokens_in_last_checkpoint(run: RunDir) -> int:
    """Tokens already trained on when a resumed run starts (so tokens/s counts only new work)."""
    import json

    states = sorted(run.checkpoints.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return json.loads(states[-1].read_text()).get("num_input_tokens_seen", 0) if states else 0


def run(recipe: Recipe, out_dir: Path, resume: bool = False) -> Path:
    """Train the recipe's adapter into ``out_dir``; returns the run directory."""
    from transformers import set_seed

    from adapt import card, methods
    from adapt.models import dequant_once, dtypes
    from adapt.models.loading import load_base
    from adapt.models.bnb_cpu import disable_cpu_4bit_packing
    from adapt.data import load_task
    from adapt.tasks.prompting import PromptFormat
    from adapt.trainer import AuxLossSFTTrainer, log_callbacks, peak_device_memory_mb, peak_rss_mb, trainable_parameters, validation_callback

    run_dir = RunDir(Path(out_dir))
    run_dir.sweep_leftovers()
    checkpoint = resume_point(run_dir.checkpoints) if resume else None  # the newest complete one
    if resume and run_dir.recipe.is_file():
        _check_resume(run_dir, recipe)
    run_dir.root.mkdir(parents=True, exist_ok=True)
    if distributed.is_main_process():
        write_text_atomic(run_dir.recipe, recipe.to_yaml())
    if recipe.train.distributed and not launch.was_launched():
        launch.relaunch(run_dir.recipe, run_dir.root, resume, recipe)  # every process trains this same function
        return run_dir.root
    distributed.check_method(recipe.method.name)

    set_seed(recipe.train.seed)
    device = dtypes.pick_device(recipe.train.device)
    task = load_task(recipe.data)
    if task.kind == "token_classification":
        from adapt.tasks.token_classification import train_token_classifier

        return train_token_classifier(recipe, run_dir, task, device, resume=checkpoint)

    args = _sft_config(recipe, run_dir, device)  # before loading: DeepSpeed ZeRO-3 then loads the weights partitioned
    base, tokenizer = load_base(recipe.model, device=device)
    disable_cpu_4bit_packing(base)  # bitsandbytes' CPU inference packing has no backward
    method = methods.of(recipe)
    model = method.build(recipe.method, base)
    trainable, total = trainable_parameters(model)
    log.info("trainable parameters: %s of %s (%.3f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    fmt = PromptFormat(tokenizer, task.instruction)
    dataset = _sft_dataset(task, fmt, recipe.train.max_seq_len, recipe.train.class_balance, recipe.train.seed)
    from adapt.tasks.scoring import score

    scorer = lambda m, examples: score(m, tokenizer, recipe, task, examples, perplexity=False)  # noqa: E731
    validator = validation_callback(recipe, run_dir, task, len(dataset), scorer, method.save)
    trainer = AuxLossSFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=log_callbacks(run_dir, validator),
        auxiliary_loss=method.auxiliary_loss,
    )
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose answer the length cut removed entirely
        raise AdaptError(
            f"{task.description}: no training example keeps its answer within train.max_seq_len="
            f"{recipe.train.max_seq_len} tokens (the prompt format alone may be longer); raise train.max_seq_len"
        )
    tokens_before = _tokens_in_last_checkpoint(run_dir) if checkpoint else 0
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    elapsed = time.perf_counter() - start

    state = distributed.full_state_dict(trainer)  # every process takes part when FSDP / ZeRO-3 shard the adapter
    if not distributed.is_main_process():
        return run_dir.root  # rank 0 alone writes artifacts
    with atomic_dir(run_dir.adapter) as tmp:
        if validator is not None and validator.selected() is not None:
            from adapt.validation import copy_adapter

            copy_adapter(validator.selected(), tmp)  # the best validation step's adapter, not the last step's
        elif state is None:
            method.save(model, tmp)
        else:
            model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    tokens = (trainer.state.num_input_tokens_seen or 0) - tokens_before  # all processes (the Trainer gathers it)
    metrics = {
        "method": recipe.method.name,
        "model": recipe.model.source,
        "device": device,
        **dtypes.describe(recipe.model.compute_dtype, device),
        "nf4_cpu_path": dequant_once.path_of(model),
        "batching": "group_by_length" if recipe.train.group_by_length else "random",
        "lm_head": "supervised positions only (adapt.supervised_head)",
        "train_examples": len(task.train),
        "class_balance": recipe.train.class_balance,
        "train_rows": len(dataset),
        **(validator.summary(trainer.state.global_step) if validator is not None else {"selected_step": trainer.state.global_step}),
        "data_description": task.description,
        "data_license": task.license,
        "steps": trainer.state.global_step,
        **distributed.batch_metrics(trainer.args),
        "epochs": trainer.state.epoch,
        "train_loss": result.training_loss,
        "final_logged_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
        "train_runtime_s": round(elapsed, 2),
        "train_tokens": tokens,
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_device_mb": peak_device_memory_mb(device),
        "trainable_params": trainable,
        "total_params": total,
        "resumed": checkpoint is not None,
        "log_history": trainer.state.log_history,
    }
    write_json_atomic(run_dir.metrics, metrics)
    card.write(run_dir, recipe)
    return run_dir.root
