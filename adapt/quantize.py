"""`adapt quantize`: the quantized deliverables of a run, written under ``export/<format>/``.

| format        | what                                                        | made by                       |
|---------------|-------------------------------------------------------------|-------------------------------|
| `nf4`         | bitsandbytes NF4 + double quant, bf16 compute (safetensors) | transformers + bitsandbytes   |
| `nf4-calibrated` | `nf4` with block scales chosen for output error on training samples | adapt + bitsandbytes |
| `int8`        | bitsandbytes LLM.int8 (safetensors)                         | transformers + bitsandbytes   |
| `gguf-f16`    | llama.cpp GGUF, F16                                         | adapt (gguf package)          |
| `gguf-q8_0`   | GGUF Q8_0                                                   | adapt (gguf package)          |
| `gguf-q4_0`   | GGUF Q4_0 (embedding/output Q8_0)                           | adapt (gguf package)          |
| `gguf-q4_k_m` | GGUF Q4_K_M                                                 | llama.cpp's quantizer (extra) |
| `gguf-lora`   | GGUF base + separate GGUF LoRA adapter (no re-quantization) | adapt (gguf package)          |

Every GGUF carries its tokenizer and chat template. Each export directory is
written to a temporary sibling and renamed into place, with an ``export.json``
manifest (files, sizes, tensor types, seconds).

`nf4-calibrated` (:mod:`adapt.export.nf4_calibrated`) runs
``export.calibration_examples`` training examples through the merged model and
picks each NF4 block's scale to minimize the activation-weighted weight error.
A PEQA run's `nf4` is its trained NF4 model with the scales folded in (no merge,
no re-quantization); `nf4-calibrated` and `gguf-lora` are refused for it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

from adapt import dtypes
from adapt.errors import AdaptError
from adapt.recipe import ExportFormat
from adapt.run_files import check_model_dir
from adapt.runs import atomic_dir, dir_size_bytes, temp_prefix

log = logging.getLogger(__name__)

MANIFEST = "export.json"
GGUF_PYTHON = {"gguf-f16": "f16", "gguf-q8_0": "q8_0", "gguf-q4_0": "q4_0"}
GGUF_LLAMACPP = {"gguf-q4_k_m": "q4_k_m"}
LORA_BASE_TYPES = ("auto", "source", "f16", "q8_0", "q4_0", "q4_k_m")
BNB_FORMATS = ("nf4", "nf4-calibrated", "int8")
FOUR_BIT_FORMATS = ("nf4", "nf4-calibrated", "gguf-q4_0", "gguf-q4_k_m")
"""Formats that re-quantize the merged weights to 4 bits (``adapt eval`` warns when they lose quality)."""
Calibration = list[list[int]]
"""Token ids of calibration examples (one list per example)."""


def _check_format(fmt: str) -> None:
    if fmt not in get_args(ExportFormat):
        raise AdaptError(f"--format {fmt!r}: choose from {', '.join(get_args(ExportFormat))}")


def _check_requirements(fmt: str, lora_base: str = "auto") -> None:
    """Fail before any work when a format needs what is not installed."""
    from adapt.export import llamacpp

    if fmt in GGUF_LLAMACPP or (fmt == "gguf-lora" and lora_base in GGUF_LLAMACPP.values()):
        llamacpp.require(f"--format {fmt}")


def _write_gguf_type(model_dir: Path, kind: str, out_file: Path, name: str) -> dict[str, Any]:
    """One GGUF of ``kind`` (a Python type, or a llama.cpp K-quant made from a temporary F16)."""
    from adapt.export import llamacpp
    from adapt.export.gguf_writer import write_gguf

    if kind not in GGUF_LLAMACPP.values():
        summary = write_gguf(model_dir, out_file, kind, name=name)
        return {"tensor_types": summary.tensor_types, "n_params": summary.n_params, "arch": summary.arch}
    f16 = out_file.with_name(f".{out_file.stem}.f16.gguf")
    try:
        summary = write_gguf(model_dir, f16, "f16", name=name)
        llamacpp.quantize(f16, out_file, kind)
    finally:
        f16.unlink(missing_ok=True)
    return {"tensor_types": _gguf_tensor_types(out_file), "n_params": summary.n_params, "arch": summary.arch}


def _gguf_tensor_types(path: Path) -> dict[str, int]:
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for tensor in GGUFReader(str(path)).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return counts


def source_gguf(base_dir: Path) -> Path | None:
    """The GGUF a cached base model was converted from, when it is still on disk (and its checksum matches).

    adapt.models records the origin in ``adapt_source.json``; a GGUF LoRA applied on that
    very file involves no re-quantization of the base at all.
    """
    from adapt.models import file_sha256

    record_file = Path(base_dir) / "adapt_source.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    candidates = [record.get("gguf_path"), record.get("source") if record.get("kind") == "gguf" else None]
    candidates += [str(p) for p in sorted(Path(base_dir).glob("*.gguf"))]
    for candidate in filter(None, candidates):
        path = Path(candidate).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            if record.get("sha256") and file_sha256(path) != record["sha256"]:
                log.warning("%s does not match the checksum recorded in %s; not reusing it", path, record_file)
                continue
            return path
    return None


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def export(
    merged_dir: Path,
    fmt: ExportFormat,
    out_dir: Path,
    *,
    adapter_dir: Path | None = None,
    base_dir: Path | None = None,
    lora_base: str = "auto",
    reuse_base_gguf: Path | None = None,
    calibration: Calibration | None = None,
    base_origin: dict[str, str] | None = None,
) -> Path:
    """Write ``merged_dir`` (a 16-bit HF model) as ``fmt`` into ``out_dir`` atomically; return what to load.

    For ``gguf-lora`` the model is not ``merged_dir`` but ``base_dir`` (the model the
    adapter was trained on) as a GGUF, plus the peft LoRA in ``adapter_dir`` as a GGUF
    adapter. The base GGUF is ``reuse_base_gguf`` when given (hard-linked); else with
    ``lora_base="auto"`` the very GGUF the base was converted from when it is still on
    disk (see :func:`source_gguf`; ``"source"`` requires it), else an F16 GGUF; or the
    named type (``f16``, ``q8_0``, ``q4_0``, ``q4_k_m``).
    ``base_origin`` overrides what the gguf-lora manifest records about ``base_dir`` (a scratch base is
    gone after export: ``base_source``, where its tokenizer lives, and ``base_weights``).
    ``nf4-calibrated`` needs ``calibration`` (see :func:`calibration_ids`).
    Returns the directory for the bitsandbytes formats, the model (or adapter) ``.gguf`` for gguf-*.
    """
    _check_format(fmt)
    _check_requirements(fmt, lora_base)
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    if fmt != "gguf-lora" and not (merged_dir / "config.json").is_file():
        raise AdaptError(f"{merged_dir}: no merged model here (config.json missing); run `adapt merge` first")
    start = time.perf_counter()
    manifest: dict[str, Any] = {"format": fmt, "source": str(merged_dir.resolve())}
    with atomic_dir(out_dir) as tmp:
        if fmt in ("nf4", "int8"):
            from adapt.export.bnb import export_bnb

            manifest |= export_bnb(merged_dir, fmt, tmp)
            result = ""
        elif fmt == "nf4-calibrated":
            from adapt.export.nf4_calibrated import export_nf4_calibrated

            manifest |= export_nf4_calibrated(merged_dir, tmp, calibration or [])
            result = ""
        elif fmt in GGUF_PYTHON or fmt in GGUF_LLAMACPP:
            kind = GGUF_PYTHON.get(fmt) or GGUF_LLAMACPP[fmt]
            result = f"model-{kind}.gguf"
            manifest |= {"file": result, **_write_gguf_type(merged_dir, kind, tmp / result, _model_name(merged_dir))}
        else:
            result = _export_lora(tmp, manifest, adapter_dir, base_dir, lora_base, reuse_base_gguf)
            manifest |= base_origin or {}
        manifest["seconds"] = round(time.perf_counter() - start, 2)
        manifest["size_bytes"] = dir_size_bytes(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir / result if result else out_dir


def _model_name(model_dir: Path) -> str:
    """``general.name``: ``<run>-<target>`` for a run's merged model, else the directory name."""
    if model_dir.parent.name == "merged":
        return f"{model_dir.parent.parent.name}-{model_dir.name}"
    return model_dir.name


def _export_lora(tmp: Path, manifest: dict[str, Any], adapter_dir: Path | None, base_dir: Path | None,
                 lora_base: str, reuse_base_gguf: Path | None) -> str:
    from adapt.export.gguf_lora import write_gguf_lora

    if adapter_dir is None or base_dir is None:
        raise AdaptError("--format gguf-lora needs the run's adapter and its base model (adapter_dir and base_dir)")
    if lora_base not in LORA_BASE_TYPES:
        raise AdaptError(f"gguf-lora base type {lora_base!r}: choose from {', '.join(LORA_BASE_TYPES)}")
    base_dir, adapter_dir = Path(base_dir), Path(adapter_dir)
    if reuse_base_gguf is None and lora_base in ("auto", "source"):
        reuse_base_gguf = source_gguf(base_dir)
        if reuse_base_gguf is None and lora_base == "source":
            raise AdaptError(
                f"{base_dir}: the GGUF this base was converted from is not on disk (a cache written by an older adapt); "
                f"delete {base_dir} so the next run converts it again, or pick --lora-base f16, q8_0, q4_0 or q4_k_m"
            )
    kind = "source" if reuse_base_gguf is not None else ("f16" if lora_base == "auto" else lora_base)
    base_file, adapter_file = f"base-{kind}.gguf", "adapter-lora-f16.gguf"
    adapter = write_gguf_lora(adapter_dir, base_dir, tmp / adapter_file, name=f"{adapter_dir.parent.name}-lora")
    if reuse_base_gguf is not None:
        _check_same_arch(Path(reuse_base_gguf), base_dir)
        _link_or_copy(Path(reuse_base_gguf), tmp / base_file)
        base = {"reused": str(Path(reuse_base_gguf).resolve()), "tensor_types": _gguf_tensor_types(tmp / base_file)}
    else:
        base = _write_gguf_type(base_dir, kind, tmp / base_file, _model_name(base_dir))
    manifest |= {"file": adapter_file, "base_file": base_file, "base_source": str(base_dir.resolve()),
                 "adapter_source": str(adapter_dir.resolve()), "base": base, "adapter": adapter}
    return adapter_file


def _check_same_arch(gguf_file: Path, base_dir: Path) -> None:
    from adapt.export.gguf_arch import load_arch

    arch, found = load_arch(base_dir), _gguf_arch(gguf_file)
    if found != arch.name:
        raise AdaptError(f"{gguf_file}: a {found!r} GGUF cannot be the base of a LoRA trained on {base_dir} ({arch.name})")


# --------------------------------------------------------------------------- loading
def _manifest(path: Path) -> tuple[Path, dict[str, Any]]:
    folder = path if path.is_dir() else path.parent
    file = folder / MANIFEST
    return folder, (json.loads(file.read_text()) if file.is_file() else {})


def _gguf_in(folder: Path, manifest: dict[str, Any], path: Path) -> Path:
    if path.is_file():
        return path
    if manifest.get("file"):
        return folder / manifest["file"]
    found = sorted(p for p in folder.glob("*.gguf") if not p.name.startswith(("adapter", ".")))
    if not found:
        raise AdaptError(f"{folder}: no .gguf file here; run `adapt quantize` again")
    return found[0]


def _load_gguf_model(file: Path, device: str, dtype: Any):
    from transformers import AutoModelForCausalLM, GgufConfig

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(file.parent), gguf_file=file.name, quantization_config=GgufConfig(dequantize=True), dtype=dtype
        )
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise AdaptError(f"{file}: transformers cannot load this GGUF ({exc})") from exc
    return model.to(device)


def _gguf_tokenizer(file: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_export(path: Path, fmt: ExportFormat, device: str = "cpu", *, dtype: Any = None, gguf_tokenizer: bool = False):
    """Reload an export for scoring: ``(model, tokenizer)``.

    nf4, nf4-calibrated and int8 load with plain transformers. GGUF files load through transformers'
    GGUF loader (dequantized, in ``dtype``; default ``auto`` for ``device``, adapt.dtypes). For gguf-lora the
    GGUF adapter is read back from its file and attached with peft on the
    dequantized base (llama.cpp applies the same file natively).

    The tokenizer is the source model's (recorded in export.json) when it still
    exists, since transformers rebuilds some GGUF tokenizers imperfectly (it drops
    SmolLM2's digit splitting, which llama.cpp keeps); ``gguf_tokenizer=True``
    uses the one inside the GGUF instead.
    """
    _check_format(fmt)
    path = Path(path)
    if not path.exists():
        raise AdaptError(f"{path}: no export here; run `adapt quantize --format {fmt}` first")
    if fmt in BNB_FORMATS:
        from adapt.export.bnb import load_bnb

        return load_bnb(path if path.is_dir() else path.parent, device, dtype)
    folder, manifest = _manifest(path)
    dtype = dtype or dtypes.resolve("auto", device)
    if fmt == "gguf-lora":
        from adapt.export.gguf_arch import Arch
        from adapt.export.gguf_lora import attach_lora, read_gguf_lora

        base = folder / manifest.get("base_file", next((p.name for p in folder.glob("base-*.gguf")), "base.gguf"))
        adapter = folder / manifest.get("file", "adapter-lora-f16.gguf")
        model = _load_gguf_model(base, device, dtype)
        pairs, alpha = read_gguf_lora(adapter, Arch(_gguf_arch(base), model.config.to_dict()))
        model = attach_lora(model, pairs, alpha)
        source = manifest.get("base_source")
        file = base
    else:
        file = _gguf_in(folder, manifest, path)
        model = _load_gguf_model(file, device, dtype)
        source = manifest.get("source")
    if not gguf_tokenizer and source and (Path(source) / "tokenizer_config.json").is_file():
        from adapt.models import load_tokenizer

        return model, load_tokenizer(Path(source))
    return model, _gguf_tokenizer(file)


def _gguf_arch(file: Path) -> str:
    from gguf import GGUFReader

    return GGUFReader(str(file)).fields["general.architecture"].contents()


# --------------------------------------------------------------------------- run directory
def _human(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def run(run_dir: Path, formats: list[ExportFormat], source: str | None = None, *, lora_base: str = "auto") -> dict[str, Path]:
    """Write ``run_dir/export/<fmt>/`` for each format from ``run_dir/merged/<source>/`` (and the adapter).

    ``source`` defaults to the recipe's ``export.quantize_from``.

    ``lora_base`` picks the base GGUF of ``gguf-lora`` (see :func:`export`). A method
    whose trained model already is NF4 (PEQA: the registry's ``export_run``)
    writes its own ``nf4`` without a merged model.
    """
    from tqdm.auto import tqdm

    from adapt import methods
    from adapt.runs import RunDir

    run = RunDir(Path(run_dir))
    if not formats:
        raise AdaptError(f"{run.root}: no formats to export; pass --format (e.g. nf4, gguf-q8_0)")
    for fmt in formats:
        _check_format(fmt)
        _check_requirements(fmt, lora_base)
    recipe = run.load_recipe()
    source = source or recipe.export.quantize_from
    method = methods.of(recipe)
    folded: set[str] = set()
    if method.export_run is not None:
        _check_folded_formats(run, recipe.method.name, formats)
        folded = {"nf4"} & set(formats)
    merged = run.merged(source)
    if any(fmt not in folded and fmt != "gguf-lora" for fmt in formats) and not (merged / "config.json").is_file():
        raise AdaptError(f"{merged}: no merged model; run `adapt merge {run.root}` first (or pick --source)")
    if (merged / "config.json").is_file():
        check_model_dir(merged, f"merge it again: `adapt merge {run.root} --target {source}`")
    calibration = calibration_ids(recipe, merged) if "nf4-calibrated" in formats else None
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=temp_prefix("lora-base"), dir=run.root) as scratch:
        adapter_dir = base_dir = base_origin = None
        if "gguf-lora" in formats:
            adapter_dir, base_dir, base_origin = _lora_inputs(run, Path(scratch))
        for fmt in tqdm(formats, desc="quantize", unit="format"):
            start = time.perf_counter()
            if fmt in folded:
                written[fmt] = _export_folded(run, recipe, method)
            else:
                written[fmt] = export(
                    merged, fmt, run.export(fmt), adapter_dir=adapter_dir, base_dir=base_dir, lora_base=lora_base,
                    calibration=calibration, base_origin=base_origin,
                )  # fmt: skip
            size = dir_size_bytes(run.export(fmt))
            print(f"{fmt:12s} {written[fmt]}  {_human(size)}  {time.perf_counter() - start:.1f} s")
    return written


def _check_folded_formats(run, method: str, formats: list[ExportFormat]) -> None:
    for fmt in ("nf4-calibrated", "gguf-lora"):
        if fmt in formats:
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
    from adapt.data import load_task
    from adapt.data.splits import seeded_sample
    from adapt.models import load_tokenizer
    from adapt.tasks.perplexity import example_ids
    from adapt.tasks.prompting import PromptFormat

    task = load_task(recipe.data)
    sample = seeded_sample(task.train, recipe.export.calibration_examples, recipe.data.seed, salt="calibration")
    if not sample:
        raise AdaptError(f"{task.description}: the training split is empty; --format nf4-calibrated calibrates on it")
    tokenizer = load_tokenizer(model_dir)
    max_len = recipe.train.max_seq_len
    if task.kind == "token_classification":
        return [tokenizer(" ".join(ex.tokens), add_special_tokens=False)["input_ids"][:max_len] for ex in sample]
    fmt = PromptFormat(tokenizer, task.instruction)
    return [example_ids(fmt, ex, max_len)[0] for ex in sample]


def _lora_inputs(run, scratch: Path) -> tuple[Path, Path, dict[str, str] | None]:
    """The run's plain LoRA (the MoE collapse where the method has one) and the base it was trained against.

    An adapter trained on an NF4 base learned against the NF4 weights, not the 16-bit ones: on a real
    PubMedQA QLoRA run, the adapter on the 16-bit weights changed 96% of its predictions. So the base
    GGUF beside it is written from the dequantized NF4 weights (saved into ``scratch``), not the source.
    """
    from adapt import merge, models

    recipe = run.load_recipe()
    adapter = merge.lora_adapter_dir(run, recipe)
    source = models.resolve(recipe.model.source)
    if recipe.model.quantization != "nf4":
        return Path(adapter), source, None
    model, tokenizer = merge.base_for(recipe, "nf4_dequant")
    model.to(models.storage_dtype(recipe.model)).save_pretrained(scratch, safe_serialization=True)
    tokenizer.save_pretrained(scratch)
    # the scratch base is deleted after export; its tokenizer is the source model's
    return Path(adapter), scratch, {"base_source": str(source), "base_weights": "nf4_dequant"}
