"""Training plumbing shared by every adapt trainer (TRL's SFTTrainer for text, transformers' Trainer for token
classification): TrainingArguments from the recipe, parameter counts, log and validation callbacks, and
:class:`AuxLossSFTTrainer` (a method's auxiliary loss, per-example loss weights), throughput and memory.

A library module: the train stage and :mod:`adapt.tasks.token_classification` both build on it.
"""

from __future__ import annotations

import contextlib
import csv
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import TrainerCallback, TrainingArguments
from trl import SFTTrainer

from adapt.training import distributed
from adapt.training.checkpoints import SafeCheckpoints
from adapt.training.supervised_head import SupervisedHeadForward

if TYPE_CHECKING:
    from adapt.recipe import Recipe
    from adapt.runs import RunDir
    from adapt.training.validation import Saver, Scorer, ValidationCallback


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@contextlib.contextmanager
def allow_custom_adapters_on_quantized(model: torch.nn.Module):
    """Let transformers' Trainer accept a 4-bit base that carries adapt's own trainable parameters.

    transformers refuses to train a quantized model unless peft wraps it; MoE-LoRA
    and PEQA add their trainable parameters without peft, so for a model that has
    trainable parameters the check is skipped while the trainer is built.
    """
    import transformers.trainer as hf_trainer

    original = hf_trainer.validate_quantization_for_training
    if any(p.requires_grad for p in model.parameters()):
        hf_trainer.validate_quantization_for_training = lambda _model: None
    try:
        yield
    finally:
        hf_trainer.validate_quantization_for_training = original


WEIGHT_COLUMN = "loss_weight"
"""Optional train-dataset column: a per-example weight on the completion tokens' loss (train.class_balance)."""


class WeightCollator:
    """Wraps TRL's collator (which keeps only its own keys) and adds the batch's ``loss_weight`` tensor."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples: list[dict]) -> dict:
        weights = torch.tensor([float(ex[WEIGHT_COLUMN]) for ex in examples], dtype=torch.float32)
        batch = self.inner([{k: v for k, v in ex.items() if k != WEIGHT_COLUMN} for ex in examples])
        batch[WEIGHT_COLUMN] = weights
        return batch


class _WeightedLogProbs:
    """Calls the model and scales the fused LM head's per-token log-probs by each row's weight.

    TRL's loss is ``-log_probs.sum() / num_tokens`` over the supervised (completion) positions, so scaling the
    log-probs weights each example's loss while TRL keeps its fused head, token counts and logging.
    """

    def __init__(self, model, weights: torch.Tensor):
        self.model, self.weights = model, weights

    def __call__(self, **kwargs):
        outputs = self.model(**kwargs)
        if getattr(outputs, "log_probs", None) is not None:
            outputs.log_probs = outputs.log_probs * self.weights.to(outputs.log_probs.dtype)[:, None]
        return outputs


class AuxLossSFTTrainer(SafeCheckpoints, SFTTrainer):
    """Adds ``auxiliary_loss(model)`` (e.g. MoE load balancing) to the task loss and logs both; a train dataset with
    a ``loss_weight`` column weights each example's loss by it."""

    def __init__(self, *args, auxiliary_loss=None, **kwargs):
        self._weighted = WEIGHT_COLUMN in getattr(kwargs.get("train_dataset"), "column_names", ())
        with allow_custom_adapters_on_quantized(kwargs["model"]):
            super().__init__(*args, **kwargs)
        if self._weighted:
            self.data_collator = WeightCollator(self.data_collator)
        self._auxiliary_loss = auxiliary_loss
        self._aux_sum = 0.0
        self._aux_count = 0

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self._weighted and WEIGHT_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, WEIGHT_COLUMN]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop(WEIGHT_COLUMN, None)
        forward = SupervisedHeadForward(model)  # the LM head at the supervised positions only
        forward = forward if weights is None else _WeightedLogProbs(forward, weights)
        result = super().compute_loss(forward, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        aux = self._auxiliary_loss(model) if self._auxiliary_loss else None
        if aux is None:
            return result
        self._aux_sum += aux.detach().float().item()
        self._aux_count += 1
        if return_outputs:
            loss, outputs = result
            return loss + aux, outputs
        return result + aux

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self._aux_count and "loss" in logs:
            logs["aux_loss"] = round(self._aux_sum / self._aux_count, 6)
            self._aux_sum, self._aux_count = 0.0, 0
        super().log(logs, *args, **kwargs)


class CsvLogCallback(TrainerCallback):
    """Appends every log record (step, loss, lr, aux_loss, tokens/s) to logs/train_log.csv."""

    FIELDS = ["step", "epoch", "loss", "aux_loss", "learning_rate", "grad_norm", "tokens_per_s", "elapsed_s"]

    def __init__(self, path: Path):
        self.path = path
        self.start = time.perf_counter()
        self.last_tokens = 0
        self.last_time = self.start

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen or 0
        rate = (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_tokens, self.last_time = tokens, now
        logs["tokens_per_s"] = round(rate, 1)
        row = {"step": state.global_step, "epoch": state.epoch, "elapsed_s": round(now - self.start, 2), **logs}
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def peak_device_memory_mb(device: str) -> float | None:
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count their packed elements twice (two codes a byte)."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 else 1)
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def training_kwargs(recipe: Recipe, run: RunDir, device: str) -> dict:
    """TrainingArguments shared by every adapt trainer (SFT for text, Trainer for the head kinds)."""
    t = recipe.train
    from adapt.models.loading import compute_dtype

    dtype = compute_dtype(recipe.model, device)  # mixed precision on GPUs only: a CPU computes in the model's dtype
    # Always explicit: TRL's configs default to gradient checkpointing (a third more compute per step). Named as the
    # installed transformers names it (activation_checkpointing since 5.x; the old name warns on every run).
    name = "activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ else "gradient_checkpointing"
    checkpointing = {name: True, f"{name}_kwargs": {"use_reentrant": False}}
    return dict(
        output_dir=str(run.checkpoints),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        **(checkpointing if t.gradient_checkpointing else {name: False}),
        include_num_input_tokens_seen="non_padding",
        report_to=trainer_integrations(t.report_to),
        run_name=recipe.name,
        use_cpu=device == "cpu",
        bf16=device == "cuda" and dtype == torch.bfloat16,
        fp16=device == "cuda" and dtype == torch.float16,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        dataloader_num_workers=0,
    )


def validation_callback(recipe: Recipe, run: RunDir, task, train_size: int, scorer: Scorer, saver: Saver) -> ValidationCallback | None:
    """The ValidationCallback of this run (see :mod:`adapt.training.validation`), or None when it does not validate.

    ``scorer(model, examples) -> metrics``: ``adapt eval``'s scorer for the task; ``saver(model, folder)``: the method's save.
    """
    from adapt.tasks.scoring import primary_metric
    from adapt.training.validation import ValidationCallback, make_plan

    plan = make_plan(recipe, task, primary_metric(recipe, task.kind), train_size, distributed.world_size())
    return None if plan is None else ValidationCallback(run, plan, scorer, saver)


def trainer_integrations(report_to: list[str]) -> list[str] | str:
    """The Trainer's own ``report_to`` for a recipe's ``train.report_to``: W&B and MLflow go through transformers'
    integrations; TensorBoard is adapt's writer (:func:`log_callbacks`: logs/tensorboard, shared with validation),
    not transformers' (which writes under the checkpoints folder, apart from the validation curve)."""
    return [name for name in report_to if name != "tensorboard"] or "none"


def log_callbacks(run: RunDir, validator: ValidationCallback | None = None, report_to: list[str] | tuple[str, ...] = ("tensorboard",)) -> list[TrainerCallback]:
    """logs/train_log.csv, TensorBoard (logs/tensorboard) when ``report_to`` (the recipe's ``train.report_to``) names
    it, and the validation callback, which writes its scalars through the same TensorBoard writer; none on other
    processes than rank 0 (it alone writes the logs)."""
    if not distributed.is_main_process():
        return []
    callbacks: list[TrainerCallback] = [CsvLogCallback(run.logs / "train_log.csv")]
    if "tensorboard" in report_to:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        writer = SummaryWriter(log_dir=str(run.logs / "tensorboard"))
        if validator is not None:
            validator.tensorboard = writer
        callbacks.append(TensorBoardCallback(writer))
    return callbacks + ([validator] if validator else [])
