"""Crash-safe Trainer checkpoints: written to a hidden temporary folder, renamed into place when complete.

transformers writes ``checkpoint-N/`` file by file (weights, optimizer, scheduler,
RNG state, ``trainer_state.json`` last), so a process killed midway leaves a
folder that ``resume_from_checkpoint=True`` picks and then fails on. With
:class:`SafeCheckpoints` mixed into a Trainer, ``checkpoint-N`` only ever
appears complete; :func:`latest_complete` skips what older versions left half
written, and every temporary folder of a killed run is swept on the next start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from adapt.runs import replace_dir, sweep_stale, temp_prefix

log = logging.getLogger(__name__)

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE = "trainer_state.json"
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (None: it can)."""
    state = folder / STATE
    if not state.is_file():
        return f"no {STATE}"
    try:
        if not isinstance(json.loads(state.read_text(encoding="utf-8")).get("global_step"), int):
            return f"{STATE} has no global_step"
    except (ValueError, UnicodeDecodeError, AttributeError):
        return f"{STATE} is not valid JSON"
    if not any((folder / name).is_file() for name in WEIGHTS):
        return "no weights (" + " / ".join(WEIGHTS[:2]) + ")"
    return None


def latest_complete(checkpoints: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``checkpoints`` (None when there is none)."""
    checkpoints = Path(checkpoints)
    if not checkpoints.is_dir():
        return None
    sweep_stale(checkpoints)
    found = sorted(
        (int(m.group(1)), p) for p in checkpoints.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))
    )
    for _, folder in reversed(found):
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        log.warning("skipping %s: incomplete (%s), probably written by a killed run", folder, reason)
    return None


def resume_point(checkpoints: Path) -> Path | None:
    """The checkpoint ``adapt train --resume`` continues from, logged; None: train from step 0."""
    folder = latest_complete(checkpoints)
    if folder is None:
        log.warning("--resume: no complete checkpoint under %s; training from step 0", checkpoints)
    else:
        log.info("--resume: continuing from %s", folder)
    return folder


LOSS_FILE = "adapt_loss.json"
"""In each checkpoint: the summed training loss of every step so far and the seconds trained so far (for the whole
run's train_loss and training time after --resume)."""


class SafeCheckpoints:
    """Trainer mixin: atomic ``checkpoint-N`` folders and a resume that continues the very same run.

    - each checkpoint is written under a hidden temporary name and renamed when complete;
    - on resume the trainable weights keep the dtype they trained in: peft's ``load_adapter`` upcasts a
      loaded adapter to fp32 while TRL trains a QLoRA adapter in bf16, so a resumed run would continue in
      another precision (different losses, an fp32 adapter twice the size);
    - ``train()``'s ``training_loss`` is the mean over the whole run, not only over the resumed steps, and its
      metrics' ``train_runtime_total`` the seconds every process spent training this run (None when the
      checkpoint resumed from was written before checkpoints kept their seconds).
    """

    _staging: Path | None = None
    _loss_before: tuple[float, int] = (0.0, 0)
    _seconds_before: float | None = 0.0
    _segment_start: float = 0.0

    def _get_output_dir(self, trial) -> str:
        return str(self._staging) if self._staging is not None else super()._get_output_dir(trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        model = model or self.model
        dtypes = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}
        super()._load_from_checkpoint(resume_from_checkpoint, model)  # peft may rebuild the adapter's modules
        for name, param in model.named_parameters():
            if name in dtypes and param.dtype != dtypes[name]:
                param.data = param.data.to(dtypes[name])
        from adapt.run_files import damaged, read_json_object

        loss = Path(resume_from_checkpoint) / LOSS_FILE
        fix = "delete that checkpoint folder to resume from the one before, or train into a new --out"
        record = read_json_object(loss, None, fix)  # one line, exit 2, when damaged
        if record is not None:
            try:
                self._loss_before = (float(record["loss_sum"]), int(record["steps"]))
                self._seconds_before = None if record.get("train_s") is None else float(record["train_s"])
            except (KeyError, TypeError, ValueError):
                raise damaged(loss, "no numeric loss_sum and steps", fix) from None

    def _loss_so_far(self) -> float:
        """Summed loss of every step so far: earlier processes' and this one's (logged and not yet logged)."""
        pending = getattr(self, "_tr_loss", None)
        return self._loss_before[0] + getattr(self, "_total_loss_scalar", 0.0) + (float(pending.item()) if pending is not None else 0.0)

    def _seconds_so_far(self) -> float | None:
        """Seconds trained so far: earlier processes' and this one's (None when an earlier one's are unknown)."""
        if self._seconds_before is None:
            return None
        return self._seconds_before + time.perf_counter() - self._segment_start

    def train(self, *args, **kwargs):
        self._segment_start = time.perf_counter()
        result = super().train(*args, **kwargs)
        result.metrics["train_runtime_total"] = self._seconds_so_far()
        loss_sum, steps_before = self._loss_before
        steps_now = result.global_step - steps_before
        if not steps_before or steps_now < 0:
            return result
        whole = (loss_sum + result.training_loss * steps_now) / max(result.global_step, 1)
        return result._replace(training_loss=whole, metrics={**result.metrics, "train_loss": whole})

    def _save_checkpoint(self, model, trial) -> None:
        from transformers.trainer_utils import rotate_checkpoints

        if self.args.world_size > 1:  # every rank writes into the folder (its RNG state): keep transformers' way;
            return super()._save_checkpoint(model, trial)  # latest_complete() still skips a half-written one
        final_root = Path(super()._get_output_dir(trial))
        final_root.mkdir(parents=True, exist_ok=True)
        name = f"checkpoint-{self.state.global_step}"
        self._staging = final_root / f"{temp_prefix(name)}staging"
        try:
            super()._save_checkpoint(model, trial)
            loss = {"loss_sum": self._loss_so_far(), "steps": self.state.global_step, "train_s": self._seconds_so_far()}
            (self._staging / name / LOSS_FILE).write_text(json.dumps(loss))
            replace_dir(self._staging / name, final_root / name)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        sweep_stale(final_root)
        rotate_checkpoints(
            output_dir=str(final_root), save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False,
        )  # fmt: skip
