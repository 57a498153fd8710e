"""What every task kind's training reports when it ends: the metrics.json fields both trainers share.

Each kind's ``train`` (:mod:`adapt.tasks.sft`, :mod:`adapt.tasks.token_classification`) adds its own
fields to these; the train stage adds the data license and writes the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapt.training import distributed


def tokens_in_last_checkpoint(checkpoints: Path) -> int:
    """Tokens already trained on when a resumed run starts (so tokens/s counts only new work)."""
    states = sorted(Path(checkpoints).glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return json.loads(states[-1].read_text()).get("num_input_tokens_seen", 0) if states else 0


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def finished(recipe, task, device: str, model, trainer, result, elapsed: float, validator, resumed: bool, tokens_before: int) -> dict[str, Any]:
    """The shared metrics of a finished training: method, model, precision, steps, losses, throughput, memory."""
    from adapt.models import dequant_once, dtypes
    from adapt.training.trainer import peak_device_memory_mb, peak_rss_mb, trainable_parameters

    state = trainer.state
    tokens = (state.num_input_tokens_seen or 0) - tokens_before  # all processes (the Trainer gathers it)
    trainable, total = trainable_parameters(model)
    return {
        "method": recipe.method.name,
        "model": recipe.model.source,
        "device": device,
        **dtypes.describe(recipe.model.compute_dtype, device),
        "nf4_cpu_path": dequant_once.path_of(model),
        "train_examples": len(task.train),
        **(validator.summary(state.global_step) if validator is not None else {"selected_step": state.global_step}),
        "data_description": task.description,
        "steps": state.global_step,
        **distributed.batch_metrics(trainer.args),
        "epochs": state.epoch,
        "train_loss": result.training_loss,
        "final_logged_loss": next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None),
        "train_runtime_s": round(elapsed, 2),  # this process's: train_tokens and tokens_per_s are its too
        "train_runtime_total_s": _rounded(result.metrics.get("train_runtime_total", elapsed)),  # every process's
        "train_tokens": tokens,
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_device_mb": peak_device_memory_mb(device),
        "trainable_params": trainable,
        "total_params": total,
        "resumed": resumed,
        "log_history": state.log_history,
    }
