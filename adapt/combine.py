"""Several domain LoRAs on one base -> one merged 16-bit model, scored on every source domain.

`adapt merge RUN_A RUN_B ... --combine TYPE --weights ... --out DIR` (or `--combine-recipe FILE`)
combines the runs' adapters with peft's ``add_weighted_adapter``, merges the result into the base
(dequantized NF4 or original 16-bit weights, as `adapt merge`) and writes a plain HF directory plus
``combine.json``. `adapt eval DIR` then scores it on each source run's own eval examples next to
that run's single adapter -> ``eval.json`` (retention = combined / single).

What peft does per combination type (peft 0.21, ``LoraModel.add_weighted_adapter``):

- ``cat``: stacks the weighted A matrices and the B matrices (rank = sum of ranks), so the merged
  delta is exactly ``sum_i w_i * scale_i * B_i A_i``; ranks may differ.
- ``linear``: sums ``sqrt(w_i * scale_i) * A_i`` and the same for B separately; the product has
  cross terms ``B_i A_j``, so it only approximates the weighted sum. Needs equal ranks.
- ``ties`` / ``dare_ties``: A and B separately, each pruned to ``density`` (by magnitude / at random,
  rescaled), one sign elected per entry, agreeing entries summed. Need equal ranks and a density.

The ``*_svd`` variants are not offered: merged into full weights, ``cat`` already is the exact sum.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from adapt import methods
from adapt.combine_recipe import CombineRecipe
from adapt.domains import domain_name
from adapt.errors import AdaptError, RecipeError
from adapt.recipe import Recipe
from adapt.runs import RunDir, atomic_dir, read_json, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "combine.json"
COMBINED = "combined"


@dataclass(frozen=True)
class Source:
    run: RunDir
    recipe: Recipe
    lora: Path | None = None
    """The plain peft LoRA that goes into the combination (the adapter, or a MoE-LoRA collapse)."""


def _lora_config(lora: Path) -> dict:
    return json.loads((lora / "adapter_config.json").read_text())


def check_sources(cfg: CombineRecipe) -> list[Source]:
    """Every run: a LoRA-type adapter on the same base; problems are reported all at once."""
    problems, sources = [], []
    for path in cfg.runs:
        run = RunDir(Path(path))
        recipe = run.load_recipe()
        run.require_adapter()
        sources.append(Source(run, recipe))
        if methods.of(recipe).lora_for_merge is None:
            combinable = " or ".join(methods.names(lambda m: m.lora_for_merge is not None))
            problems.append(f"{path}: a {recipe.method.name} run has no LoRA to combine; combine {combinable} runs (merge this one alone: adapt merge {path})")
        elif _lora_config(run.adapter).get("modules_to_save"):
            problems.append(f"{path}: a run with a classification head (the trained head is not a LoRA); combine causal-LM runs only")
        first = sources[0]
        if recipe.model != first.recipe.model:
            diff = ", ".join(f"model.{k} {v!r} vs {getattr(recipe.model, k)!r}" for k, v in first.recipe.model if getattr(recipe.model, k) != v)
            problems.append(f"{path}: trained on another base than {first.run.root} ({diff}); combine runs that share the base model")
    if problems:
        raise RecipeError(problems)
    sources = [Source(s.run, s.recipe, methods.lora_adapter_dir(s.run, s.recipe)) for s in sources]
    if cfg.combination_type != "cat":
        ranks = [(_lora_config(s.lora)["r"], _lora_config(s.lora).get("rank_pattern") or {}) for s in sources]
        if len(set(json.dumps(r, sort_keys=True) for r in ranks)) > 1:
            listing = ", ".join(f"{s.run.root}: r={r}" + (f" {p}" if p else "") for s, (r, p) in zip(sources, ranks))
            raise AdaptError(f"{cfg.combination_type} combines A and B entry by entry and needs equal LoRA ranks ({listing}); use --combine cat (exact, any ranks)")
    return sources


def combined_model(base, loras: list[Path], cfg: CombineRecipe):
    """``base`` with the runs' LoRAs combined by peft and merged in (a plain transformers model)."""
    import torch
    from peft import PeftModel

    from adapt.models.quiet import peft_wrap

    names = [f"run{i}" for i in range(len(loras))]
    with peft_wrap():
        model = PeftModel.from_pretrained(base, str(loras[0]), adapter_name=names[0])
    for name, lora in zip(names[1:], loras[1:]):
        model.load_adapter(str(lora), adapter_name=name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # dare_ties prunes at random
        try:
            model.add_weighted_adapter(names, cfg.weights, COMBINED, combination_type=cfg.combination_type, density=cfg.density)
        except ValueError as exc:  # what peft refuses and the checks above did not foresee
            raise AdaptError(f"peft add_weighted_adapter ({cfg.combination_type}): {exc}") from None
    return model.merge_and_unload(adapter_names=[COMBINED])


def run(cfg: CombineRecipe) -> Path:
    """Combine, merge and write ``cfg.out`` (model, tokenizer, combine.json); nothing is left half-written."""
    import peft

    from adapt.models.dequantized_base import base_for
    from adapt.models.loading import storage_dtype

    out = Path(cfg.out)
    if out.exists() and not (out / MANIFEST).is_file() and (out.is_file() or any(out.iterdir())):
        raise AdaptError(f"{out}: exists and is not a combined model (no {MANIFEST}); choose another --out")
    sources = check_sources(cfg)
    start = time.perf_counter()
    base, tokenizer = base_for(sources[0].recipe, cfg.target)
    log.info("combining %d adapters (%s, weights %s) into the %s base", len(sources), cfg.combination_type, cfg.weights, cfg.target)
    model = combined_model(base, [s.lora for s in sources], cfg)
    manifest = {
        **cfg.model_dump(mode="json"),
        "runs": [str(s.run.root.resolve()) for s in sources],
        "sources": [{"name": s.recipe.name, "domain": domain_name(s.recipe.domain), "method": s.recipe.method.name, "lora": str(s.lora.resolve()), "rank": _lora_config(s.lora)["r"]} for s in sources],
        "base": sources[0].recipe.model.model_dump(mode="json"),
        "peft_version": peft.__version__,
    }
    model.to(storage_dtype(sources[0].recipe.model))  # merged in the compute dtype, written in 16 bits
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / MANIFEST, {**manifest, "seconds": round(time.perf_counter() - start, 2)})
    return out


def _single_from_eval_json(run: RunDir, split: str, n: int) -> dict:
    """The run's own eval.json rows (adapter, base) when they were scored on the same examples."""
    previous = read_json(run.eval, {})
    if previous.get("split") == split and previous.get("n") == n:
        return {name: row["metrics"] for name, row in previous.get("variants", {}).items() if name in ("adapter", "base")}
    return {}


def evaluate(out_dir: Path, split: str | None = None, limit: int | None = None) -> dict:
    """Score the combined model on every source run's eval examples next to its single adapter -> eval.json."""
    from adapt.data import load_task
    from adapt.tasks.scoring import primary_metric, score, select_examples
    from adapt.models.dtypes import pick_device
    from adapt.variants import Variant, loaded

    out_dir = Path(out_dir)
    manifest = read_json(out_dir / MANIFEST)
    if manifest is None:
        raise AdaptError(f"{out_dir}: no {MANIFEST}; write it with `adapt merge RUN_A RUN_B --combine ... --out {out_dir}`")
    rows = []
    for path in manifest["runs"]:
        run = RunDir(Path(path))
        recipe = run.load_recipe()
        task = load_task(recipe.data)
        run_split = split or recipe.eval.split
        examples = select_examples(task, run_split, limit if limit is not None else recipe.eval.limit, recipe.eval.seed)
        device, primary = pick_device(recipe.train.device), primary_metric(recipe, task.kind)
        metrics = _single_from_eval_json(run, run_split, len(examples))
        reused = "adapter" in metrics
        for name, variant in (("combined", Variant("merged/combined", out_dir)), ("adapter", Variant("adapter", run.adapter))):
            if name in metrics:
                continue
            log.info("scoring %s on %d %s examples of %s", name, len(examples), run_split, recipe.name)
            with loaded(run, recipe, variant, device) as (model, tokenizer, _):
                metrics[name] = score(model, tokenizer, recipe, task, examples)
        combined, single = metrics["combined"].get(primary), metrics["adapter"].get(primary)
        rows.append({
            "run": recipe.name, "path": path, "domain": domain_name(recipe.domain), "data": task.description, "split": run_split,
            "n": len(examples), "primary_metric": primary, "combined": combined, "single": single,
            "retention": round(combined / single, 4) if single and combined is not None else None,
            "base": metrics.get("base", {}).get(primary), "single_from": "eval.json" if reused else "scored",
            "metrics": {"combined": metrics["combined"], "single": metrics["adapter"]},
        })  # fmt: skip
    keys = ("combination_type", "weights", "density", "target")
    result = {"combine": {k: manifest[k] for k in keys}, "rows": rows}
    write_json_atomic(out_dir / "eval.json", result)
    return result


def summary_table(result: dict) -> str:
    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))

    c = result["combine"]
    lines = [
        f"{c['combination_type']} of {len(result['rows'])} adapters, weights {c['weights']}" + (f", density {c['density']}" if c["density"] is not None else "") + f", into {c['target']}",
        "| run | domain | metric | n | base | single | combined | retention |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in result["rows"]:
        cells = [r["run"], r["domain"], r["primary_metric"], r["n"], r["base"], r["single"], r["combined"], r["retention"]]
        lines.append("| " + " | ".join(cell(v) for v in cells) + " |")
    return "\n".join(lines)
