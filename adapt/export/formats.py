"""The export formats: one record per format (:data:`FORMATS`), the one table `adapt quantize`, `adapt eval`,
the recipe schema and the CLI read.

| format           | what                                                          | made by                       | bits |
|------------------|---------------------------------------------------------------|-------------------------------|------|
| `nf4`            | bitsandbytes NF4 + double quant, bf16 compute (safetensors)   | transformers + bitsandbytes   | 4    |
| `nf4-calibrated` | `nf4` with block scales chosen for output error on training samples | adapt + bitsandbytes    | 4    |
| `int8`           | bitsandbytes LLM.int8 (safetensors)                           | transformers + bitsandbytes   | 8    |
| `gguf-f16`       | llama.cpp GGUF, F16                                           | adapt (gguf package)          | 16   |
| `gguf-q8_0`      | GGUF Q8_0                                                     | adapt (gguf package)          | 8    |
| `gguf-q4_0`      | GGUF Q4_0 (embedding/output Q8_0)                             | adapt (gguf package)          | 4    |
| `gguf-q4_k_m`    | GGUF Q4_K_M                                                   | llama.cpp's quantizer (extra) | 4    |
| `gguf-lora`      | GGUF base + separate GGUF LoRA adapter (no re-quantization)   | adapt (gguf package)          | -    |
| `nf4-lora`       | the NF4 base the adapter trained on (saved as NF4) + its LoRA | bitsandbytes + peft           | 4    |

Each record names its writer and loader as ``"module:function"`` (:class:`~adapt.lazy.Lazy`), so this
module imports neither torch nor the writers: the recipe builds its ``export.formats`` type from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapt.errors import AdaptError
from adapt.lazy import Lazy

MANIFEST = "export.json"
"""Written into every export folder: format, source, files, sizes, tensor types, seconds."""


@dataclass(frozen=True)
class Format:
    """One export format."""

    name: str
    """``--format`` / ``export.formats`` value; also the folder name under ``export/``."""
    about: str
    made_by: str
    write: Lazy
    """``write(fmt, inputs, out_dir) -> (manifest fields, result file name or "")``: see :mod:`adapt.export.write`."""
    load: Lazy
    """``load(path, *, device, dtype, gguf_tokenizer) -> (model, tokenizer)``: see :mod:`adapt.export.load`."""
    bits: int | None
    """Bits per weight of the bulk of the weights; None: chosen at export time (gguf-lora's ``--lora-base``)."""
    gguf_type: str | None = None
    """The GGUF tensor type written (``f16``, ``q8_0``, ``q4_0``, ``q4_k_m``); None for the other formats."""
    extra: str | None = None
    """The optional extra (``pip install 'adapt[<extra>]'``) the writer needs; None: the core install suffices."""
    from_merged: bool = True
    """Made from a merged model (``merged/<target>/``); False: from the adapter and its base (gguf-lora, nf4-lora)."""
    calibrated: bool = False
    """Chooses its quantization on training examples (``export.calibration_examples``)."""

    @property
    def gguf(self) -> bool:
        """Written for llama.cpp (a whole-model GGUF, or a GGUF LoRA over a GGUF base)."""
        return self.name.startswith("gguf-")

    @property
    def four_bit(self) -> bool:
        """Its bulk is 4-bit: merged weights re-quantized, or (nf4-lora) the base (``adapt eval`` warns when that loses
        quality)."""
        return self.bits == 4


def _bnb(name: str, about: str, made_by: str, bits: int, write: str = "bnb") -> Format:
    return Format(name, about, made_by, Lazy(f"adapt.export.write:{write}"), Lazy("adapt.export.load:bnb"), bits,
                  calibrated=write == "nf4_calibrated")  # fmt: skip


def _gguf(kind: str, about: str, bits: int, extra: str | None = None) -> Format:
    made_by = "llama.cpp's quantizer (extra)" if extra else "adapt (gguf package)"
    return Format(f"gguf-{kind}", about, made_by, Lazy("adapt.export.write:gguf"), Lazy("adapt.export.load:gguf"), bits,
                  gguf_type=kind, extra=extra)  # fmt: skip


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        _bnb("nf4", "bitsandbytes NF4 + double quant, bf16 compute (safetensors)", "transformers + bitsandbytes", 4),
        _bnb("nf4-calibrated", "nf4 with block scales chosen for output error on training samples", "adapt + bitsandbytes",
             4, write="nf4_calibrated"),  # fmt: skip
        _bnb("int8", "bitsandbytes LLM.int8 (safetensors)", "transformers + bitsandbytes", 8),
        _gguf("f16", "llama.cpp GGUF, F16", 16),
        _gguf("q8_0", "GGUF Q8_0", 8),
        _gguf("q4_0", "GGUF Q4_0 (embedding/output Q8_0)", 4),
        _gguf("q4_k_m", "GGUF Q4_K_M", 4, extra="gguf"),
        Format("gguf-lora", "GGUF base + separate GGUF LoRA adapter (no re-quantization)", "adapt (gguf package)",
               Lazy("adapt.export.write:gguf_lora"), Lazy("adapt.export.load:gguf_lora"), None, from_merged=False),
        Format("nf4-lora", "the NF4 base the adapter trained against (saved quantized) + the peft LoRA, unmerged",
               "bitsandbytes + peft", Lazy("adapt.export.write:nf4_lora"), Lazy("adapt.export.load:nf4_lora"),
               4, from_merged=False),
    )
}

FormatName = Literal[tuple(FORMATS)]  # type: ignore[valid-type]
"""The names of :data:`FORMATS` as a type (the recipe's ``export.formats``)."""

GGUF_TYPES: dict[str, Format] = {f.gguf_type: f for f in FORMATS.values() if f.gguf_type}
"""GGUF tensor type -> the format writing a whole model of that type."""
LORA_BASE_TYPES = ("auto", "source", *GGUF_TYPES)
"""gguf-lora's base GGUF: ``auto`` (the GGUF the base came from when on disk, else f16), ``source`` (that GGUF,
required) or a GGUF type written from the base."""
EXTRAS = {"gguf": Lazy("adapt.export.llamacpp:require")}
"""Extra -> ``require(what)``: the check that it is installed (one error line naming the extra otherwise)."""


def get(name: str) -> Format:
    """The format called ``name``; an AdaptError naming the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise AdaptError(f"--format {name!r}: choose from {', '.join(FORMATS)}") from None


def check_requirements(name: str, lora_base: str = "auto") -> None:
    """Fail before any work when format ``name`` (with gguf-lora's ``lora_base``) needs what is not installed."""
    fmt = get(name)
    needed = [fmt.extra]
    if not fmt.from_merged and lora_base in GGUF_TYPES:
        needed.append(GGUF_TYPES[lora_base].extra)
    for extra in filter(None, dict.fromkeys(needed)):
        EXTRAS[extra](f"--format {name}")
