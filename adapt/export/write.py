"""The writers of :data:`adapt.export.formats.FORMATS`: ``write(fmt, inputs, out_dir) -> (manifest fields, result
file name or "")``. :func:`adapt.quantize.export` runs one into a temporary sibling folder, adds the
``export.json`` manifest and renames it into place.

Every GGUF carries its tokenizer and chat template. ``nf4-calibrated``
(:mod:`adapt.export.nf4_calibrated`) runs calibration examples through the merged model and picks each
NF4 block's scale to minimize the activation-weighted weight error.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapt.errors import AdaptError
from adapt.export import formats, gguf_files
from adapt.export.formats import Format
from adapt.models.cache import SOURCE_FILE

if TYPE_CHECKING:
    from adapt.models.config import ModelConfig

log = logging.getLogger(__name__)

Calibration = list[list[int]]
"""Token ids of calibration examples (one list per example)."""


@dataclass(frozen=True)
class Inputs:
    """What a writer may read: the merged model, or (gguf-lora, nf4-lora) the adapter and its base (see
    :func:`adapt.quantize.export`)."""

    merged_dir: Path
    adapter_dir: Path | None = None
    base_dir: Path | None = None
    lora_base: str = "auto"
    reuse_base_gguf: Path | None = None
    calibration: Calibration | None = None
    base_origin: dict[str, str] | None = None
    base_model: ModelConfig | None = None
    """The recipe's model section (nf4-lora: the base the adapter trained against)."""
    load_base: Callable[[], tuple] | None = None
    """nf4-lora: loads that base as training did, ``() -> (model, tokenizer)`` (the task kind's ``trained_base``)."""


# --------------------------------------------------------------------------- writers (FORMATS' write)
def bnb(fmt: Format, inputs: Inputs, out: Path) -> tuple[dict[str, Any], str]:
    from adapt.export.bnb import export_bnb

    return export_bnb(inputs.merged_dir, fmt.name, out), ""


def nf4_calibrated(fmt: Format, inputs: Inputs, out: Path) -> tuple[dict[str, Any], str]:
    from adapt.export.nf4_calibrated import export_nf4_calibrated

    return export_nf4_calibrated(inputs.merged_dir, out, inputs.calibration or []), ""


def gguf(fmt: Format, inputs: Inputs, out: Path) -> tuple[dict[str, Any], str]:
    result = f"model-{fmt.gguf_type}.gguf"
    return {"file": result, **write_gguf_type(inputs.merged_dir, fmt.gguf_type, out / result, model_name(inputs.merged_dir))}, result


def nf4_lora(fmt: Format, inputs: Inputs, out: Path) -> tuple[dict[str, Any], str]:
    from adapt.export.nf4_lora import write_nf4_lora

    return write_nf4_lora(inputs.base_model, inputs.load_base, inputs.adapter_dir, out), ""


def gguf_lora(fmt: Format, inputs: Inputs, out: Path) -> tuple[dict[str, Any], str]:
    """A GGUF LoRA adapter and the base GGUF it applies to (see :func:`export`)."""
    from adapt.export.gguf_lora import write_gguf_lora

    if inputs.adapter_dir is None or inputs.base_dir is None:
        raise AdaptError("--format gguf-lora needs the run's adapter and its base model (adapter_dir and base_dir)")
    lora_base, reuse = inputs.lora_base, inputs.reuse_base_gguf
    if lora_base not in formats.LORA_BASE_TYPES:
        raise AdaptError(f"gguf-lora base type {lora_base!r}: choose from {', '.join(formats.LORA_BASE_TYPES)}")
    base_dir, adapter_dir = Path(inputs.base_dir), Path(inputs.adapter_dir)
    if reuse is None and lora_base in ("auto", "source"):
        reuse = source_gguf(base_dir)
        if reuse is None and lora_base == "source":
            raise AdaptError(
                f"{base_dir}: the GGUF this base was converted from is not on disk (a cache written by an older adapt); "
                f"delete {base_dir} so the next run converts it again, or pick --lora-base f16, q8_0, q4_0 or q4_k_m"
            )
    kind = "source" if reuse is not None else ("f16" if lora_base == "auto" else lora_base)
    base_file, adapter_file = f"base-{kind}.gguf", "adapter-lora-f16.gguf"
    adapter = write_gguf_lora(adapter_dir, base_dir, out / adapter_file, name=f"{adapter_dir.parent.name}-lora")
    if reuse is not None:
        _check_same_arch(Path(reuse), base_dir)
        _link_or_copy(Path(reuse), out / base_file)
        base = {"reused": str(Path(reuse).resolve()), "tensor_types": gguf_files.tensor_types(out / base_file)}
    else:
        base = write_gguf_type(base_dir, kind, out / base_file, model_name(base_dir))
    fields = {"file": adapter_file, "base_file": base_file, "base_source": str(base_dir.resolve()),
              "adapter_source": str(adapter_dir.resolve()), "base": base, "adapter": adapter}  # fmt: skip
    return fields | (inputs.base_origin or {}), adapter_file


# --------------------------------------------------------------------------- parts
def write_gguf_type(model_dir: Path, kind: str, out_file: Path, name: str) -> dict[str, Any]:
    """One GGUF of ``kind`` (written by adapt, or by llama.cpp's quantizer from a temporary F16)."""
    from adapt.export import llamacpp
    from adapt.export.gguf_writer import write_gguf

    if formats.GGUF_TYPES[kind].extra is None:
        summary = write_gguf(model_dir, out_file, kind, name=name)
        return {"tensor_types": summary.tensor_types, "n_params": summary.n_params, "arch": summary.arch}
    f16 = out_file.with_name(f".{out_file.stem}.f16.gguf")
    try:
        summary = write_gguf(model_dir, f16, "f16", name=name)
        llamacpp.quantize(f16, out_file, kind)
    finally:
        f16.unlink(missing_ok=True)
    return {"tensor_types": gguf_files.tensor_types(out_file), "n_params": summary.n_params, "arch": summary.arch}


def model_name(model_dir: Path) -> str:
    """``general.name``: ``<run>-<target>`` for a run's merged model, else the directory name."""
    if model_dir.parent.name == "merged":
        return f"{model_dir.parent.parent.name}-{model_dir.name}"
    return model_dir.name


def source_gguf(base_dir: Path) -> Path | None:
    """The GGUF a cached base model was converted from, when it is still on disk (and its checksum matches).

    adapt.models records the origin in ``adapt_source.json``; a GGUF LoRA applied on that
    very file involves no re-quantization of the base at all.
    """
    from adapt.models.gguf_import import file_sha256

    record_file = Path(base_dir) / SOURCE_FILE
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


def _check_same_arch(gguf_file: Path, base_dir: Path) -> None:
    from adapt.export.gguf_arch import load_arch

    arch, found = load_arch(base_dir), gguf_files.arch_name(gguf_file)
    if found != arch.name:
        raise AdaptError(f"{gguf_file}: a {found!r} GGUF cannot be the base of a LoRA trained on {base_dir} ({arch.name})")
