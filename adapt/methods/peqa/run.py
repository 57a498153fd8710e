"""PEQA over a run directory: ``adapt merge`` (:func:`merge_into`) and ``adapt quantize --format nf4`` (:func:`export_run`).

A PEQA run's trained model already is an NF4 model: its export folds the scales
in and must not re-quantize anything.
"""

from __future__ import annotations

from pathlib import Path

from adapt.errors import AdaptError
from adapt.methods.peqa.fold import export_nf4, fold
from adapt.methods.peqa.io import load, read_config


def merge_into(run, recipe, target: str, out_dir: Path) -> None:
    """`adapt merge` for PEQA: the base with the scales folded in, as a 16-bit HF model.

    ``nf4_dequant``: the folded NF4 weights dequantized (exactly the trained
    model); ``fp16``: the scales applied to the rows of the original 16-bit
    weights (channel granularity only).
    """
    from adapt.models import dequantized_base
    from adapt.models.loading import load_base, storage_dtype

    raw = read_config(run.require_adapter())
    if target == "fp16" and raw["granularity"] == "block":
        raise AdaptError(
            f"{run.adapter}: block scales belong to NF4 blocks and do not fold into 16-bit weights; "
            "use export.merge: [nf4_dequant] for granularity block"
        )
    if target == "nf4_dequant":
        model, tokenizer = dequantized_base.load(recipe.model, prepare=lambda nf4: fold(load(nf4, run.adapter)), biases=True)
    else:
        model, tokenizer = load_base(dequantized_base.sixteen_bit(recipe.model))
        model = fold(load(model, run.adapter))
    model.to(storage_dtype(recipe.model))  # folded in the compute dtype, written in 16 bits
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def export_run(run, recipe, out_dir: Path, double_quant: bool = False) -> Path:
    """`adapt quantize --format nf4` for PEQA: fold the run's scales into the NF4 base; no re-quantization."""
    from adapt.models.loading import load_base, storage_dtype

    # The non-quantized weights (embeddings, norms) are written as loaded: load them in 16 bits.
    storage = type(recipe.model)(**{**recipe.model.model_dump(), "compute_dtype": str(storage_dtype(recipe.model)).removeprefix("torch.")})
    model, tokenizer = load_base(storage)
    return export_nf4(load(model, run.require_adapter()), out_dir, tokenizer, double_quant=double_quant)
