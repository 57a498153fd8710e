"""The models a run can be scored as: base, adapter, each merged model, each export (a library module: eval and
combine score variants, the token-classification task tags them)."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from adapt.recipe import Recipe
from adapt.run_files import check_model_dir
from adapt.runs import RunDir, dir_size_bytes, read_json


@dataclass(frozen=True)
class Variant:
    name: str
    """`base`, `adapter`, `merged/<target>` or `export/<format>`."""
    path: Path | None = None


def discover(run: RunDir) -> list[Variant]:
    found = [Variant("base"), Variant("adapter", run.adapter)]
    collapsed = run.root / "collapsed"  # MoE-LoRA's routed experts as one plain LoRA
    if (collapsed / "adapter_config.json").is_file():
        found.append(Variant("collapsed", collapsed))
    merged_root, export_root = run.root / "merged", run.root / "export"
    if merged_root.is_dir():
        found += [Variant(f"merged/{p.name}", p) for p in sorted(merged_root.iterdir()) if not p.name.startswith(".") and (p / "config.json").is_file()]
    if export_root.is_dir():
        found += [Variant(f"export/{p.name}", p) for p in sorted(export_root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return found


def check_files(run: RunDir, variants: list[Variant]) -> None:
    """Every merged model and export among ``variants`` is readable (else one AdaptError line), before any scoring."""
    for v in variants:
        if v.name.startswith("merged/"):
            check_model_dir(v.path, f"merge it again (`adapt merge {run.root}`) or delete {v.path}")
        elif v.name.startswith("export/"):
            check_model_dir(v.path, f"export it again (`adapt quantize {run.root} --format {v.path.name}`) or delete it")


def requantized_4bit(run: RunDir, name: str) -> bool:
    """Whether variant ``name`` re-quantized merged weights to 4 bits (``export/nf4``, ``export/gguf-q4_0``, ...).

    Decided by format; a folded PEQA ``export/nf4`` (``"folded"`` in its export.json) is the trained model itself.
    """
    from adapt.export.formats import FORMATS, MANIFEST

    fmt = FORMATS.get(name.removeprefix("export/"))
    if not name.startswith("export/") or fmt is None or not fmt.four_bit:
        return False
    return not read_json(run.export(fmt.name) / MANIFEST, {}).get("folded", False)


def variant_size(run: RunDir, variant: Variant) -> int | None:
    if variant.name == "base":
        return None
    return dir_size_bytes(variant.path) if variant.path and variant.path.exists() else None


def row(run: RunDir, variant: Variant, metrics: dict, load_s: float | None) -> dict:
    """A variant's eval.json row: its metrics, load seconds and size on disk."""
    return {"metrics": metrics, "load_time_s": None if load_s is None else round(load_s, 2), "size_bytes": variant_size(run, variant)}


Loader = Callable[[RunDir, Recipe, Variant, str], tuple[torch.nn.Module, object]]
"""``(run, recipe, variant, device) -> (model, tokenizer)``: :func:`load_causal`, or a task kind's own."""


@contextlib.contextmanager
def loaded(run: RunDir, recipe: Recipe, variant: Variant, device: str = "cpu", load: Loader | None = None) -> Iterator[tuple[torch.nn.Module, object, float]]:
    """Load a variant for scoring (with ``load``, default :func:`load_causal`); yields (model, tokenizer, load
    seconds) and frees it afterwards."""
    start = time.perf_counter()
    model, tokenizer = (load or load_causal)(run, recipe, variant, device)
    model.eval()
    try:
        yield model, tokenizer, time.perf_counter() - start
    finally:
        del model
        gc.collect()


def load_causal(run: RunDir, recipe: Recipe, variant: Variant, device: str) -> tuple[torch.nn.Module, object]:
    """The causal LM of a variant: the base (+ the method's adapter, or the collapsed LoRA), a merged model, an export."""
    from adapt.models.loading import compute_dtype, load_base, load_tokenizer

    if variant.name in ("base", "adapter", "collapsed"):
        model, tokenizer = load_base(recipe.model, device=device)  # NF4 on a CPU: dequantized once
        if variant.name == "adapter":
            from adapt import methods

            model = methods.of(recipe).load(model, run.require_adapter())
        elif variant.name == "collapsed":  # a plain peft LoRA
            from adapt.methods import qlora

            model = qlora.load(model, variant.path)
    elif variant.name.startswith("merged/"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(variant.path, dtype=compute_dtype(recipe.model, device), use_safetensors=True).to(device)
        tokenizer = load_tokenizer(variant.path)
    else:
        from adapt.export.load import load_export

        model, tokenizer = load_export(variant.path, variant.path.name, device=device, dtype=compute_dtype(recipe.model, device))
    return model, tokenizer
