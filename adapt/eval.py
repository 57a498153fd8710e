"""`adapt eval`: score base, adapter, merged and exported variants on the same examples -> eval.json."""

from __future__ import annotations

import logging
from pathlib import Path

from adapt import card, methods, tasks
from adapt.data.types import TaskData
from adapt.models import dtypes
from adapt.recipe import Recipe
from adapt.runs import RunDir, read_json, write_json_atomic
from adapt.tasks.scoring import primary_metric, select_examples
from adapt.variants import check_files, discover, requantized_4bit

log = logging.getLogger(__name__)

BASELINE_LABEL = "lexicon baseline, not a neural model"
"""How tables name the NER base row (see adapt.tasks.token_classification.BASE_NOTE)."""
MIN_RETENTION = 0.98
"""A 4-bit variant keeping less of the adapter's primary score than this gets a warning."""


def _agreement(row: dict, reference: dict | None) -> float | None:
    """Share of examples on which a variant predicts what ``reference`` (the unmerged adapter, or the base) predicts:
    the same label, or for NER the same tag on every word of the sentence (a share of words would be mostly ``O``)."""
    ours, theirs = row["metrics"].get("predictions"), (reference or {}).get("metrics", {}).get("predictions")
    if not ours or not theirs or len(ours) != len(theirs):
        return None
    return round(sum(a == b for a, b in zip(ours, theirs)) / len(ours), 4)


def _retention(row: dict, reference: dict | None, primary: str) -> float | None:
    if not reference:
        return None
    ref, value = reference["metrics"].get(primary), row["metrics"].get(primary)
    if not ref or value is None:
        return None
    return round(value / ref, 4)


def _write(run: RunDir, recipe: Recipe, task: TaskData, split: str, n: int, scored: dict, device: str) -> dict:
    """Merge ``scored`` rows into eval.json (rows scored earlier on the same examples are kept), with
    retention, agreement and warnings against the adapter row; returns what was written."""
    # Read the file only now, so that evals of different variants running side by side keep each other's rows.
    previous = read_json(run.eval, {})
    rows = dict(scored)
    if previous.get("split") == split and previous.get("n") == n:
        rows = {**previous.get("variants", {}), **rows}
    primary = primary_metric(recipe, recipe.kind)
    for name, row in rows.items():
        # The base is the yardstick, not a deliverable: it gets no retention (and never a warning).
        row["retention"] = None if name == "base" else _retention(row, rows.get("adapter"), primary)
        row["agreement"] = _agreement(row, rows.get("adapter"))
        row["agreement_base"] = None if name == "base" else _agreement(row, rows.get("base"))
        if name == "base" and "lexicon_spans" in row["metrics"]:
            row["label"] = BASELINE_LABEL
        row.pop("warning", None)
        warning = retention_warning(run, recipe, name, row["retention"], primary) or base_like_warning(name, row, tasks.of(recipe).gguf)
        if warning:
            row["warning"] = warning
    result = {
        "split": split,
        "n": n,
        "task_kind": recipe.kind,
        "data": task.description,
        "primary_metric": primary,
        "headline_metrics": [primary] + [k for k in tasks.of(recipe).headline if k != primary],  # the recipe's first
        "device": device,
        **dtypes.describe(recipe.model.compute_dtype, device),
        "variants": rows,
    }
    write_json_atomic(run.eval, result)
    return result


def run(run_dir: Path, split: str | None = None, limit: int | None = None, only: list[str] | None = None) -> dict:
    """Score every variant found in the run directory (or those named in ``only``) and write eval.json."""
    from adapt.data import load_task

    run = RunDir(Path(run_dir))
    run.sweep_leftovers()
    recipe = run.load_recipe()
    read_json(run.eval, {})  # damaged run files fail here, in one line, not after minutes of scoring
    if only is None or "adapter" in only:
        run.require_adapter()
    split = split or recipe.eval.split
    limit = limit if limit is not None else recipe.eval.limit
    task = load_task(recipe.data)
    examples = select_examples(task, split, limit, recipe.eval.seed)
    device = dtypes.pick_device(recipe.train.device)

    method = methods.of(recipe)
    if method.lora_is_collapsed and (only is None or "collapsed" in only):
        method.lora_for_merge(run, recipe)  # routed vs collapsed is part of every MoE-LoRA eval

    variants = [v for v in discover(run) if only is None or v.name in only]
    check_files(run, variants)
    scored: dict = {}
    result = None
    for name, row in tasks.of(recipe).score_variants(run, recipe, task, examples, device, variants):
        scored[name] = row
        result = _write(run, recipe, task, split, len(examples), scored, device)  # an interrupted eval keeps every finished row
    if result is None:  # nothing to score
        result = _write(run, recipe, task, split, len(examples), scored, device)
    for row in result["variants"].values():
        if row.get("warning"):
            log.warning(row["warning"])
    card.write(run, recipe)
    return result


def retention_warning(run: RunDir, recipe: Recipe, name: str, retention: float | None, primary: str) -> str | None:
    """The line that names a 4-bit variant losing quality and the export that avoids it; None when none is due."""
    if retention is None or retention >= MIN_RETENTION or not requantized_4bit(run, name):
        return None
    gguf = tasks.of(recipe).gguf  # a head (NER, sequence classification) has no GGUF form
    if methods.of(recipe).export_run is not None:  # PEQA: its nf4 is the trained model itself
        better = f"`adapt quantize {run.root} --format nf4` (the trained NF4 scales folded in, no re-quantization)"
    elif recipe.model.quantization == "nf4" and name != "export/nf4-lora":
        better = (f"`adapt quantize {run.root} --format nf4-lora` (the NF4 base the adapter trained on, the adapter kept "
                  "separate: no re-quantization)" + (" or `--format gguf-lora` (the same for llama.cpp, over a GGUF base)" if gguf else ""))
    elif gguf:
        better = f"`adapt quantize {run.root} --format gguf-lora` (the adapter kept separate, no re-quantization)"
    else:
        better = f"the 16-bit merge (`adapt merge {run.root}`) or an 8-bit export (`--format int8`)"
    return (
        f"{name} keeps only {retention:.1%} of the adapter's {primary} (retention {retention:.3f} < {MIN_RETENTION}): "
        f"4-bit re-quantization lost quality; use {better}"
    )


def base_like_warning(name: str, row: dict, gguf: bool = True) -> str | None:
    """The line that names a merged or exported variant predicting like the base rather than the adapter
    (whatever its bit width: q8 rounding can snap merged weights back onto the NF4 grid); None when none is due.
    ``gguf``: the run's kind has a GGUF form (a head has none), so `gguf-lora` is one of the ways out."""
    agree, agree_base = row.get("agreement"), row.get("agreement_base")
    if not name.startswith(("merged/", "export/")) or agree is None or agree_base is None or agree_base <= agree:
        return None
    separate = "`--format nf4-lora` or `gguf-lora`" if gguf else "`--format nf4-lora`"
    return (
        f"{name} predicts like the base, not the adapter (agreement with the base {agree_base:.3f} > with the adapter "
        f"{agree:.3f}): the adapter's change was lost in merging or quantization; compare {separate} (the adapter "
        f"kept separate) or a merge into the dequantized NF4 weights (`adapt merge RUN --target nf4_dequant`)"
    )


def summary_table(result: dict) -> str:
    keys = result["headline_metrics"]
    header = "| variant | " + " | ".join(keys) + " | retention | agreement | agreement with base | size MB | load s |"
    lines = [header, "|" + "---|" * (len(keys) + 6)]
    for name, row in result["variants"].items():
        m = row["metrics"]
        cells = [f"{m[k]:.4f}" if isinstance(m.get(k), float) else str(m.get(k, "")) for k in keys]
        size = f"{row['size_bytes'] / 2**20:.1f}" if row.get("size_bytes") else ""
        ret, agree, agree_base = (f"{row[k]:.3f}" if row.get(k) is not None else "" for k in ("retention", "agreement", "agreement_base"))
        lines.append(
            f"| {card.display_name(name, row)} | " + " | ".join(cells) + f" | {ret} | {agree} | {agree_base} | {size} | {row.get('load_time_s', '')} |"
        )
    warnings = [f"warning: {row['warning']}" for row in result["variants"].values() if row.get("warning")]
    return "\n".join(lines + ([""] + warnings if warnings else []))

