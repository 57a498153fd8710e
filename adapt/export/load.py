"""Reload an export for scoring: :func:`load_export` runs the format's loader (:data:`adapt.export.formats.FORMATS`).

nf4, nf4-calibrated and int8 load with plain transformers. GGUF files load through transformers'
GGUF loader (dequantized, in the compute dtype). For gguf-lora the GGUF adapter is read back from its
file and attached with peft on the dequantized base (llama.cpp applies the same file natively); nf4-lora's
peft LoRA is attached to its saved NF4 base.

The tokenizer is the source model's (recorded in export.json) when it still exists, since transformers
rebuilds some GGUF tokenizers imperfectly (it drops SmolLM2's digit splitting, which llama.cpp keeps);
``gguf_tokenizer=True`` uses the one inside the GGUF instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError
from adapt.export import formats, gguf_files
from adapt.export.formats import MANIFEST


def load_export(path: Path, fmt: str, device: str = "cpu", *, dtype: Any = None, gguf_tokenizer: bool = False):
    """``(model, tokenizer)`` of the ``fmt`` export at ``path`` (its folder, or its model .gguf), computing in
    ``dtype`` (default ``auto`` for ``device``, adapt.models.dtypes)."""
    from adapt.models import dtypes

    record = formats.get(fmt)
    path = Path(path)
    if not path.exists():
        raise AdaptError(f"{path}: no export here; run `adapt quantize --format {fmt}` first")
    return record.load(path, device=device, dtype=dtype or dtypes.resolve("auto", device), gguf_tokenizer=gguf_tokenizer)


# --------------------------------------------------------------------------- loaders (FORMATS' load)
def bnb(path: Path, *, device: str, dtype: Any, gguf_tokenizer: bool = False):
    from adapt.export.bnb import load_bnb

    return load_bnb(path if path.is_dir() else path.parent, device, dtype)


def gguf(path: Path, *, device: str, dtype: Any, gguf_tokenizer: bool = False):
    folder, manifest = _manifest(path)
    file = _gguf_in(folder, manifest, path)
    return _load_gguf_model(file, device, dtype), _tokenizer(file, manifest.get("source"), gguf_tokenizer)


def nf4_lora(path: Path, *, device: str, dtype: Any, gguf_tokenizer: bool = False):
    from adapt.export.nf4_lora import load_nf4_lora

    return load_nf4_lora(path, device, dtype)


def gguf_lora(path: Path, *, device: str, dtype: Any, gguf_tokenizer: bool = False):
    from adapt.export.gguf_arch import Arch
    from adapt.export.gguf_lora import attach_lora, read_gguf_lora

    folder, manifest = _manifest(path)
    base = folder / manifest.get("base_file", next((p.name for p in folder.glob("base-*.gguf")), "base.gguf"))
    adapter = folder / manifest.get("file", "adapter-lora-f16.gguf")
    model = _load_gguf_model(base, device, dtype)
    pairs, alpha = read_gguf_lora(adapter, Arch(gguf_files.arch_name(base), model.config.to_dict()))
    return attach_lora(model, pairs, alpha), _tokenizer(base, manifest.get("base_source"), gguf_tokenizer)


# --------------------------------------------------------------------------- parts
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


def _tokenizer(file: Path, source: str | None, from_gguf: bool):
    """The source model's tokenizer when it still exists (and ``from_gguf`` is off), else the GGUF's own."""
    from adapt.models.loading import load_tokenizer, with_padding

    if not from_gguf and source and (Path(source) / "tokenizer_config.json").is_file():
        return load_tokenizer(Path(source))
    from transformers import AutoTokenizer

    return with_padding(AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name), file)
