"""The ``model:`` section of a recipe: which base, NF4 or 16-bit, in which compute dtype (pydantic, no torch).

Its own module so the recipe (which holds it) and the model library (which reads it) do not import each other.
"""

from __future__ import annotations

from typing import Literal

from adapt.strict import Strict


class ModelConfig(Strict):
    source: str = "smollm2-135m-instruct"
    """An offline short name (`adapt models`), a Hub id, a local HF directory or a local .gguf file."""
    quantization: Literal["nf4", "none"] = "nf4"
    """`nf4`: bitsandbytes 4-bit NormalFloat base (QLoRA); `none`: 16-bit base."""
    double_quant: bool = True
    """Quantize the NF4 block scales again (saves ~0.4 bit per weight)."""
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Dtype for matmuls and the non-quantized weights. `auto`: bf16 on GPUs and CPUs with native bf16
    (AVX512-BF16/AMX), fp16 on older GPUs, fp32 on other CPUs. Merged models and exports are written in
    16 bits whatever this is (fp16 when this is float16, else bf16)."""
    cpu_nf4_path: Literal["auto", "dequantize_once", "bitsandbytes"] = "auto"
    """How an NF4 base computes on the CPU. `dequantize_once`: each frozen weight is expanded once to the
    compute dtype (exactly bitsandbytes' values) and reused, so QLoRA runs at plain-LoRA speed;
    `bitsandbytes`: dequantize on every call (least memory); `auto`: dequantize_once when the expanded
    weights fit in half the available memory."""
