"""bitsandbytes deliverables: NF4 (+ double quant, bf16 compute) and LLM.int8.

The merged 16-bit model is quantized while loading and saved with
``save_pretrained`` (safetensors, quantization config in ``config.json``), so a
plain ``AutoModelForCausalLM.from_pretrained(dir)`` loads it with no adapter code.
The model is saved before it runs anything: on CPUs with AVX512-BF16,
bitsandbytes repacks 4-bit weights in place on the first forward pass.
Both formats save and reload on CPU with bitsandbytes 0.50 (int8 computes in fp16 there).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from adapt.errors import AdaptError

BnbFormat = Literal["nf4", "int8"]


def model_class_for(model_dir: Path) -> Any:
    """The transformers Auto class matching the saved architecture (causal LM unless it is a classifier)."""
    import transformers

    config = json.loads((Path(model_dir) / "config.json").read_text())
    arch = (config.get("architectures") or [""])[0]
    for suffix, auto in (
        ("ForTokenClassification", transformers.AutoModelForTokenClassification),
        ("ForSequenceClassification", transformers.AutoModelForSequenceClassification),
    ):
        if arch.endswith(suffix):
            return auto
    return transformers.AutoModelForCausalLM


def bnb_config(fmt: BnbFormat, skip_modules: list[str] | None = None):
    import torch
    from transformers import BitsAndBytesConfig

    if fmt == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_storage=torch.uint8,
            llm_int8_skip_modules=skip_modules,
        )
    if fmt == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip_modules)
    raise AdaptError(f"bitsandbytes format {fmt!r}: use nf4 or int8")


def _require_bnb(fmt: str) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise AdaptError(f"--format {fmt} needs bitsandbytes; `pip install bitsandbytes`") from None


def load_quantized(merged_dir: Path, fmt: BnbFormat):
    """The 16-bit model in ``merged_dir`` quantized to ``fmt`` while loading (on the CPU, not run yet)."""
    import torch

    _require_bnb(fmt)
    auto = model_class_for(merged_dir)
    skip = None if auto.__name__ == "AutoModelForCausalLM" else ["score", "classifier"]
    return auto.from_pretrained(
        str(merged_dir),
        quantization_config=bnb_config(fmt, skip),
        dtype=torch.bfloat16,
        device_map={"": "cpu"},
        use_safetensors=True,
    )


def save_quantized(model, merged_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Save a quantized model and the tokenizer of ``merged_dir`` into ``out_dir``; returns manifest fields."""
    from transformers import AutoTokenizer

    model.save_pretrained(str(out_dir), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(merged_dir)).save_pretrained(str(out_dir))
    linear = [m for m in model.modules() if type(m).__name__ in ("Linear4bit", "Linear8bitLt")]
    return {"quantized_linear_layers": len(linear), "model_class": type(model).__name__}


def export_bnb(merged_dir: Path, fmt: BnbFormat, out_dir: Path) -> dict[str, Any]:
    """Quantize the 16-bit model in ``merged_dir`` and save it (with its tokenizer) into ``out_dir``."""
    return save_quantized(load_quantized(merged_dir, fmt), merged_dir, out_dir)


class _DropInt8CastNotice(logging.Filter):
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast ... to float16" on every int8 matmul with bf16 inputs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "inputs will be cast" not in record.getMessage()


def load_bnb(path: Path, device: str = "cpu", dtype=None):
    """Load an NF4/int8 export with plain transformers (the quantization config travels in config.json).

    ``dtype`` (default: ``auto`` for ``device``, adapt.models.dtypes) is what it computes in here, whatever compute
    dtype the export's config names (bf16, for GPUs); on the CPU NF4 weights are dequantized once.
    """
    from adapt.models import dequant_once, dtypes
    from adapt.models.loading import load_tokenizer

    _require_bnb("nf4/int8")
    notice_logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _DropInt8CastNotice) for f in notice_logger.filters):
        notice_logger.addFilter(_DropInt8CastNotice())
    dtype = dtype or dtypes.resolve("auto", device)
    model = model_class_for(path).from_pretrained(str(path), device_map={"": device}, dtype=dtype, use_safetensors=True)
    for layer in dequant_once.nf4_layers(model):
        layer.compute_dtype = dtype
    dequant_once.apply("auto", model, device, dtype)
    return model, load_tokenizer(path)
