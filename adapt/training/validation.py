"""Validation during training: score the validation split every N steps, keep the best adapter, stop early.

The score is `adapt eval`'s (label log-likelihood macro-F1 / accuracy / balanced
accuracy, ROUGE-L, seqeval entity F1) on the recipe's *validation* split (never
test), ranked by the recipe's primary metric. Each validation

- goes into ``logs/validation.csv``, TensorBoard (``validation/<metric>``, through the
  Trainer's own writer: :func:`adapt.training.trainer.log_callbacks`) and the Trainer's log history (so a checkpoint carries the curve up to its step);
  with several groups (a mixture's parts, LegalBench's tasks, NER's languages) each group's value too, since a
  mean can hide one group rising while another falls;
- when it is a new best and ``train.select_best`` is on, writes the adapter
  atomically to ``checkpoints/best/`` (with ``validation.json``: step and score),
  which survives ``--resume`` and becomes ``adapter/`` at the end;
- counts towards ``train.early_stopping_patience`` otherwise.

The model is scored in eval mode (train mode restored after), with bitsandbytes'
CPU repacking kept off (:func:`adapt.models.bnb_cpu.disable_cpu_4bit_packing`): scoring
in eval mode must not change the weights training continues with.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from adapt.runs import RunDir, atomic_dir, read_json, write_json_atomic

log = logging.getLogger(__name__)

BEST = "best"
"""Folder under checkpoints/ holding the best adapter so far."""
BEST_FILE = "validation.json"
PER_EPOCH = 4
"""Validations per epoch when train.eval_steps is None."""
CSV_FIELDS = ["step", "epoch", "n", "metric", "value", "best_step", "best_value", "seconds", "groups"]
LOGGED_GROUPS = 4
"""The log line names each group's value up to this many groups (LegalBench's 38 tasks go to the CSV only)."""

Scorer = Callable[[object, list], dict]
"""(model, examples) -> metrics dict (the primary metric among its keys): `adapt eval`'s scorer for the task."""
Saver = Callable[[object, Path], None]
"""(model, folder) -> writes the adapter there (the method's ``save``)."""


@dataclass(frozen=True)
class Plan:
    """What validation does in one training run."""

    examples: list
    every: int
    metric: str
    select_best: bool
    patience: int | None


def make_plan(recipe, task, metric: str, train_size: int, processes: int = 1) -> Plan | None:
    """The run's validation plan; None when it does not validate (no validation split, eval_steps 0, several
    processes). Raises AdaptError where the recipe asks for model selection that cannot happen."""
    from adapt.data.splits import seeded_sample
    from adapt.errors import AdaptError

    t = recipe.train
    wanted = bool(t.select_best or t.early_stopping_patience)
    if t.eval_steps == 0:
        return None
    if not task.validation:
        if wanted:
            raise AdaptError(
                f"train.select_best / train.early_stopping_patience: the {recipe.data.source} data has no validation examples; "
                "set them to null, or give the data a validation split"
            )
        return None
    if processes > 1:
        if wanted:
            raise AdaptError("train.select_best / early_stopping_patience: not supported with train.distributed yet; set them to false / null")
        log.warning("validation during training is off under train.distributed (it scores on one process)")
        return None
    examples = seeded_sample(task.validation, t.validation_limit, recipe.eval.seed, salt="validation")
    steps_per_epoch = math.ceil(train_size / (t.batch_size * t.grad_accum))
    every = t.eval_steps or max(1, round(steps_per_epoch / PER_EPOCH))
    select = t.select_best if t.select_best is not None else True
    return Plan(examples, every, metric, select, t.early_stopping_patience)


def group_values(metrics: dict, metric: str) -> dict[str, float]:
    """Each group's ``metric`` in a scorer's metrics (classification ``groups``, NER ``per_group``); {} with one group."""
    groups = metrics.get("groups") or metrics.get("per_group") or {}
    return {name: float(m[metric]) for name, m in groups.items() if m.get(metric) is not None}


class ValidationCallback(TrainerCallback):
    """Scores, logs, keeps the best adapter and stops early; see the module docstring."""

    def __init__(self, run: RunDir, plan: Plan, scorer: Scorer, saver: Saver):
        self.run, self.plan, self.scorer, self.saver = run, plan, scorer, saver
        self.key = f"validation_{plan.metric}"
        self.groups_key = f"{self.key}_groups"
        self.curve: list[tuple[int, float]] = []
        self.group_curve: dict[str, dict[int, float]] = {}
        self.best: tuple[int, float] | None = None
        self.bad = 0
        self.stopped_early = False
        self.tensorboard = None
        """The Trainer's TensorBoard writer (set by :func:`adapt.training.trainer.log_callbacks`); None: no TensorBoard."""

    @property
    def best_dir(self) -> Path:
        return self.run.checkpoints / BEST

    @property
    def csv_path(self) -> Path:
        return self.run.logs / "validation.csv"

    # ------------------------------------------------------------------ state
    def on_train_begin(self, args, state, control, **kwargs):
        """Fresh run: forget any earlier run's best. Resumed: the curve the checkpoint carries, the best adapter on disk."""
        step = state.global_step
        validated = [h for h in state.log_history if self.key in h and h["step"] <= step]
        self.curve = [(h["step"], h[self.key]) for h in validated]
        self.group_curve = {}
        for h in validated:
            self._add_groups(h["step"], h.get(self.groups_key) or {})
        saved = read_json(self.best_dir / BEST_FILE, None) if step else None
        if step == 0 and self.best_dir.exists():
            shutil.rmtree(self.best_dir)
        if saved and saved.get("metric") == self.plan.metric:
            self.best = (saved["step"], saved["value"])
        for s, v in self.curve:  # the best so far can also be a step validated but not saved (select_best off)
            if self.best is None or v > self.best[1]:
                self.best = (s, v)
        self.bad = sum(1 for s, _ in self.curve if self.best and s > self.best[0])
        self._trim_csv(step)

    def _trim_csv(self, step: int) -> None:
        """Drop CSV rows past the step training restarts from (they are validated again)."""
        if not self.csv_path.is_file():
            return
        with self.csv_path.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("step", "").isdigit() and int(r["step"]) <= step]
        self.csv_path.unlink()
        self._append_csv(*rows)

    def _append_csv(self, *rows: dict) -> None:
        new = not self.csv_path.exists()
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with self.csv_path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(rows)

    # ------------------------------------------------------------------ steps
    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step % self.plan.every == 0 or step >= state.max_steps:
            self.validate(state, control, model)
        return control

    def validate(self, state, control, model) -> float:
        from adapt.models.bnb_cpu import disable_cpu_4bit_packing

        start = time.perf_counter()
        disable_cpu_4bit_packing(model)  # eval mode + no grad would repack NF4 weights on AVX512-BF16 CPUs
        was_training = model.training
        model.eval()
        try:
            metrics = self.scorer(model, self.plan.examples)
        finally:
            model.train(was_training)
        value = float(metrics[self.plan.metric])
        step = state.global_step
        improved = self.best is None or value > self.best[1]
        if improved:
            self.best, self.bad = (step, value), 0
            if self.plan.select_best:
                self._save_best(model, step, value)
        elif step != self.best[0]:  # a resumed run validating its saved best step again is no step back
            self.bad += 1
        self.curve.append((step, value))
        groups = group_values(metrics, self.plan.metric)
        self._add_groups(step, groups)
        seconds = round(time.perf_counter() - start, 2)
        record = {"step": step, "epoch": state.epoch, self.key: value, "validation_n": len(self.plan.examples), "validation_s": seconds}
        if groups:
            record[self.groups_key] = groups
        state.log_history.append(record)  # saved with the next checkpoint: the curve survives --resume
        self._append_csv({"step": step, "epoch": state.epoch, "n": len(self.plan.examples), "metric": self.plan.metric,
                          "value": round(value, 6), "best_step": self.best[0], "best_value": round(self.best[1], 6),
                          "seconds": seconds, "groups": " ".join(f"{g}={v:.4f}" for g, v in groups.items())})  # fmt: skip
        self._tensorboard(step, value, groups)
        named = f"; {', '.join(f'{g} {v:.4f}' for g, v in groups.items())}" if 0 < len(groups) <= LOGGED_GROUPS else ""
        log.info("validation at step %d: %s %.4f (best %.4f at step %d, %.1f s%s)", step, self.plan.metric, value,
                 self.best[1], self.best[0], seconds, named)  # fmt: skip
        if self.plan.patience and self.bad >= self.plan.patience and not control.should_training_stop:
            log.info("early stopping: %d validations without a better %s", self.bad, self.plan.metric)
            self.stopped_early = True
            control.should_training_stop = True
        return value

    def _save_best(self, model, step: int, value: float) -> None:
        with atomic_dir(self.best_dir) as tmp:
            self.saver(model, tmp)
            write_json_atomic(tmp / BEST_FILE, {"step": step, "metric": self.plan.metric, "value": value})

    def _add_groups(self, step: int, groups: dict[str, float]) -> None:
        for name, value in groups.items():
            self.group_curve.setdefault(name, {})[step] = value

    def _tensorboard(self, step: int, value: float, groups: dict[str, float]) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(f"validation/{self.plan.metric}", value, step)
            for name, group_value in groups.items():
                self.tensorboard.add_scalar(f"validation/{self.plan.metric}/{name}", group_value, step)
            self.tensorboard.flush()

    # ------------------------------------------------------------------ results
    def selected(self) -> Path | None:
        """The folder whose adapter becomes adapter/: the best step's, when select_best kept one."""
        if not self.plan.select_best or not (self.best_dir / BEST_FILE).is_file():
            return None
        return self.best_dir

    def summary(self, last_step: int) -> dict:
        """What metrics.json records: the curve, the selected step and its score."""
        chosen = self.selected()
        return {
            "validation": {
                "split": "validation", "n": len(self.plan.examples), "metric": self.plan.metric,
                "every_steps": self.plan.every, "curve": {str(s): round(v, 6) for s, v in self.curve},
                "early_stopped": self.stopped_early, "patience": self.plan.patience,
                "group_curves": {g: {str(s): round(v, 6) for s, v in sorted(c.items())} for g, c in self.group_curve.items()},
            },
            "selected_step": read_json(chosen / BEST_FILE)["step"] if chosen else last_step,
            "selection": "best validation score" if chosen else "last step",
            "best_validation": round(self.best[1], 6) if self.best else None,
        }  # fmt: skip


def copy_adapter(source: Path, dest: Path) -> None:
    """Copy the saved adapter files of ``source`` (checkpoints/best) into ``dest`` (the new adapter/)."""
    for path in source.iterdir():
        if path.name == BEST_FILE:
            continue
        if path.is_dir():
            shutil.copytree(path, dest / path.name)
        else:
            shutil.copy2(path, dest / path.name)
