"""`adapt quantize`: the quantized deliverables of a run, written under ``export/<format>/``.

The formats, their writers and loaders are one table, :data:`adapt.export.formats.FORMATS`; this stage
picks the run's merged model (``export.quantize_from``), the calibration examples of ``nf4-calibrated``
and the adapter of ``gguf-lora`` and ``nf4-lora`` (with the base it trained against), and writes each format
with :func:`export` (the format's writer, :mod:`adapt.export.write`, into a temporary sibling folder, plus the
``export.json`` manifest).
A PEQA run's `nf4` is its trained NF4 model with the scales folded in (no merge, no re-quantization);
`nf4-calibrated`, `gguf-lora` and `nf4-lora` are refused for it, and a token-classification run has no GGUF form
(:meth:`adapt.tasks.Kind.export_problem`).
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapt.errors import AdaptError
from adapt.export.formats import FORMATS, MANIFEST, FormatName, check_requirements, get
from adapt.export.write import Calibration, Inputs
from adapt.run_files import check_model_dir
from adapt.runs import atomic_dir, dir_size_bytes, temp_prefix

if TYPE_CHECKING:
    from adapt.models.config import ModelConfig


def export(
    merged_dir: Path,
    fmt: str,
    out_dir: Path,
    *,
    adapter_dir: Path | None = None,
    base_dir: Path | None = None,
    lora_base: str = "auto",
    reuse_base_gguf: Path | None = None,
    calibration: Calibration | None = None,
    base_origin: dict[str, str] | None = None,
    base_model: ModelConfig | None = None,
    load_base: Callable[[], tuple] | None = None,
) -> Path:
    """Write ``merged_dir`` (a 16-bit HF model) as ``fmt`` into ``out_dir`` atomically; return what to load.

    For ``gguf-lora`` the model is not ``merged_dir`` but ``base_dir`` (the model the
    adapter was trained on) as a GGUF, plus the peft LoRA in ``adapter_dir`` as a GGUF
    adapter. The base GGUF is ``reuse_base_gguf`` when given (hard-linked); else with
    ``lora_base="auto"`` the very GGUF the base was converted from when it is still on
    disk (see :func:`adapt.export.write.source_gguf`; ``"source"`` requires it), else an F16 GGUF; or the
    named type (``f16``, ``q8_0``, ``q4_0``, ``q4_k_m``).
    ``base_origin`` overrides what the gguf-lora manifest records about ``base_dir`` (a scratch base is
    gone after export: ``base_source``, where its tokenizer lives, and ``base_weights``).
    ``nf4-calibrated`` needs ``calibration`` (see :func:`calibration_ids`); ``nf4-lora`` the recipe's
    ``base_model``, ``load_base`` (loads it as training did) and ``adapter_dir``.
    Returns the directory for the bitsandbytes formats, the model (or adapter) ``.gguf`` for gguf-*.
    """
    record = get(fmt)
    check_requirements(fmt, lora_base)
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    if record.from_merged and not (merged_dir / "config.json").is_file():
        raise AdaptError(f"{merged_dir}: no merged model here (config.json missing); run `adapt merge` first")
    inputs = Inputs(merged_dir, adapter_dir=adapter_dir, base_dir=base_dir, lora_base=lora_base, reuse_base_gguf=reuse_base_gguf,
                    calibration=calibration, base_origin=base_origin, base_model=base_model, load_base=load_base)
    start = time.perf_counter()
    source = merged_dir if record.from_merged or adapter_dir is None else Path(adapter_dir)  # what it was written from
    manifest: dict[str, Any] = {"format": fmt, "source": str(source.resolve())}
    with atomic_dir(out_dir) as tmp:
        fields, result = record.write(record, inputs, tmp)
        manifest |= fields
        manifest["seconds"] = round(time.perf_counter() - start, 2)
        manifest["size_bytes"] = dir_size_bytes(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir / result if result else out_dir


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def run(run_dir: Path, formats: list[FormatName], source: str | None = None, *, lora_base: str = "auto") -> dict[str, Path]:
    """Write ``run_dir/export/<fmt>/`` for each format from ``run_dir/merged/<source>/`` (and the adapter).

    ``source`` defaults to the recipe's ``export.quantize_from``.

    ``lora_base`` picks the base GGUF of ``gguf-lora`` (see :func:`export`). A method
    whose trained model already is NF4 (PEQA: the registry's ``export_run``)
    writes its own ``nf4`` without a merged model.
    """
    from tqdm.auto import tqdm

    from adapt import methods, tasks
    from adapt.runs import RunDir

    run = RunDir(Path(run_dir))
    run.sweep_leftovers()
    if not formats:
        raise AdaptError(f"{run.root}: no formats to export; pass --format (e.g. nf4, gguf-q8_0)")
    for fmt in formats:
        check_requirements(fmt, lora_base)
    recipe = run.load_recipe()
    refused = list(filter(None, (tasks.of(recipe).export_problem(get(fmt)) for fmt in formats)))
    if refused:
        raise AdaptError("\n".join(refused))
    source = source or recipe.export.quantize_from
    method = methods.of(recipe)
    folded: set[str] = set()
    if method.export_run is not None:
        _check_folded_formats(run, recipe.method.name, formats)
        folded = {"nf4"} & set(formats)
    merged = run.merged(source)
    if any(fmt not in folded and get(fmt).from_merged for fmt in formats) and not (merged / "config.json").is_file():
        raise AdaptError(f"{merged}: no merged model; run `adapt merge {run.root}` first (or pick --source)")
    if (merged / "config.json").is_file():
        check_model_dir(merged, f"merge it again: `adapt merge {run.root} --target {source}`")
    calibration = calibration_ids(recipe, merged) if any(get(fmt).calibrated for fmt in formats) else None
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=temp_prefix("lora-base"), dir=run.root) as scratch:
        adapter_dir = base_dir = base_origin = load_base = None
        if not all(get(fmt).from_merged for fmt in formats):  # gguf-lora, nf4-lora: the adapter and the base it trained on
            adapter_dir = Path(methods.lora_adapter_dir(run, recipe))
            load_base = functools.partial(tasks.of(recipe).trained_base, recipe, adapter_dir)
        if any(get(fmt).gguf and not get(fmt).from_merged for fmt in formats):
            # a LoRA for llama.cpp (gguf-lora): its base GGUF is written from the dequantized NF4 weights
            base_dir, base_origin = _gguf_lora_base(recipe, Path(scratch))
        for fmt in tqdm(formats, desc="quantize", unit="format"):
            start = time.perf_counter()
            if fmt in folded:
                written[fmt] = _export_folded(run, recipe, method)
            else:
                written[fmt] = export(
                    merged, fmt, run.export(fmt), adapter_dir=adapter_dir, base_dir=base_dir, lora_base=lora_base,
                    calibration=calibration, base_origin=base_origin, base_model=recipe.model, load_base=load_base,
                )  # fmt: skip
            size = dir_size_bytes(run.export(fmt))
            print(f"{fmt:12s} {written[fmt]}  {_human(size)}  {time.perf_counter() - start:.1f} s")
    return written


def _check_folded_formats(run, method: str, formats: list[FormatName]) -> None:
    for fmt, record in FORMATS.items():
        if fmt in formats and (record.calibrated or not record.from_merged):
            raise AdaptError(
                f"--format {fmt}: {run.root} is a {method} run, trained on the NF4 scales themselves (no LoRA to re-quantize "
                f"or ship apart); `adapt quantize {run.root} --format nf4` writes that NF4 model with no re-quantization"
            )


def _export_folded(run, recipe, method) -> Path:
    """``nf4`` of a method whose trained model already is NF4 (PEQA): its scales folded in, no merge, no re-quantization."""
    from adapt.runs import write_json_atomic

    start = time.perf_counter()
    out = Path(method.export_run(run, recipe, run.export("nf4")))
    manifest = {"format": "nf4", "source": str(run.adapter.resolve()), "method": recipe.method.name, "folded": True,
                "seconds": round(time.perf_counter() - start, 2), "size_bytes": dir_size_bytes(out)}  # fmt: skip
    write_json_atomic(out / MANIFEST, manifest)
    return out


def calibration_ids(recipe, model_dir: Path) -> Calibration:
    """``export.calibration_examples`` training examples (seeded sample) as token ids, as training sees them."""
    from adapt import tasks
    from adapt.data import load_task
    from adapt.data.splits import seeded_sample
    from adapt.models.loading import load_tokenizer

    task = load_task(recipe.data)
    sample = seeded_sample(task.train, recipe.export.calibration_examples, recipe.data.seed, salt="calibration")
    if not sample:
        raise AdaptError(f"{task.description}: the training split is empty; --format nf4-calibrated calibrates on it")
    return tasks.of(recipe).calibration_ids(load_tokenizer(model_dir), task, sample, recipe.train.max_seq_len)


def _gguf_lora_base(recipe, scratch: Path) -> tuple[Path, dict[str, str] | None]:
    """The base the run's LoRA was trained against, as gguf-lora writes its base GGUF from it (and what its
    manifest records about it).

    An adapter trained on an NF4 base learned against the NF4 weights, not the 16-bit ones: on a real
    PubMedQA QLoRA run, the adapter on the 16-bit weights changed 96% of its predictions. So the base
    GGUF beside it is written from the dequantized NF4 weights (saved into ``scratch``), not the source.
    """
    from adapt.models import dequantized_base
    from adapt.models.loading import storage_dtype
    from adapt.models.sources import resolve

    source = resolve(recipe.model.source)
    if recipe.model.quantization != "nf4":
        return source, None
    model, tokenizer = dequantized_base.base_for(recipe, "nf4_dequant")
    model.to(storage_dtype(recipe.model)).save_pretrained(scratch, safe_serialization=True)
    tokenizer.save_pretrained(scratch)
    # the scratch base is deleted after export; its tokenizer is the source model's
    return scratch, {"base_source": str(source), "base_weights": "nf4_dequant"}
