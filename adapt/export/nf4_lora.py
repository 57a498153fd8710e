"""``nf4-lora``: the NF4 base the adapter was trained against, saved already quantized, and the peft LoRA beside it.

A QLoRA adapter learned against its base's NF4 weights. Merging it and quantizing the merge again snaps most of
its change back onto the NF4 grid (``nf4`` kept 52% of a MedQuAD adapter's ROUGE-L, about its base's score), and
a GGUF base of another 4-bit type under it costs more than a third (``gguf-lora`` over ``q4_0``: 62%).

This format ships the model that was scored as ``adapter``: the source weights quantized by bitsandbytes with the
recipe's own NF4 settings (the same codes and scales training computed with, checked in the tests), saved with
``save_pretrained`` (safetensors, the quantization config in ``config.json``), and the adapter folder unmerged in
``adapter/`` (standard peft layout). Plain transformers + peft load a causal LM's:
``PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("base"), "adapter")``.

The weights kept in 16 bits (embeddings, norms) are saved in the storage dtype: they come from a 16-bit source,
so nothing is lost. Written by hand because neither peft nor transformers saves a QLoRA model this way in one call.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapt.errors import AdaptError

if TYPE_CHECKING:
    from adapt.models.config import ModelConfig

BASE, ADAPTER = "base", "adapter"
"""The two folders of an nf4-lora export."""
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def write_nf4_lora(base_model: ModelConfig | None, load_base: Callable[[], tuple] | None, adapter_dir: Path | None,
                   out: Path) -> dict[str, Any]:
    """Save the NF4 base of ``base_model`` into ``out/base`` and the adapter folder into ``out/adapter``.

    ``load_base()`` loads that base as training did (the task kind's ``trained_base``: a causal LM, or a token
    classifier with its head kept out of NF4); it is saved before it runs anything.
    """
    import bitsandbytes as bnb

    from adapt.models.loading import storage_dtype
    from adapt.models.sources import resolve

    if base_model is None or load_base is None or adapter_dir is None:
        raise AdaptError("--format nf4-lora needs the run's adapter and the loader of the base it trained against")
    if base_model.quantization != "nf4":
        raise AdaptError(
            f"--format nf4-lora: this run trained its adapter on a 16-bit base (model.quantization: {base_model.quantization}), "
            "so an NF4 base would be a new quantization under it; export gguf-lora or nf4 instead"
        )
    missing = [name for name in ADAPTER_FILES if not (Path(adapter_dir) / name).is_file()]
    if missing:
        raise AdaptError(f"{adapter_dir}: {', '.join(missing)} missing; train the run again (`adapt train RECIPE --resume`)")
    model, tokenizer = load_base()  # not run yet: the NF4 codes are as quantized
    keep = storage_dtype(base_model)
    for param in model.parameters():
        if not isinstance(param, bnb.nn.Params4bit) and param.is_floating_point():
            param.data = param.data.to(keep)  # a 16-bit source: the cast loses nothing
    model.save_pretrained(str(out / BASE), safe_serialization=True)
    tokenizer.save_pretrained(str(out / BASE))
    shutil.copytree(adapter_dir, out / ADAPTER)  # the peft files, and what the run keeps beside them (card, head labels)
    quantized = sum(1 for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))
    return {"base_source": str(resolve(base_model.source)), "adapter_source": str(Path(adapter_dir).resolve()),
            "base": {"quantized_linear_layers": quantized, "double_quant": base_model.double_quant,
                     "storage_dtype": str(keep).removeprefix("torch."), "model_class": type(model).__name__}}  # fmt: skip


def load_nf4_lora(path: Path, device: str, dtype: Any):
    """``(model, tokenizer)`` of a causal LM's export: the saved NF4 base with the LoRA attached (unmerged, as in
    training). A model with a head (token or sequence classification) goes through :func:`adapt.tasks.heads.load_nf4_lora`."""
    from adapt.export.bnb import load_bnb

    folder = path if path.is_dir() else path.parent
    return with_adapter(folder, *load_bnb(folder / BASE, device, dtype))


def with_adapter(folder: Path, model, tokenizer) -> tuple:
    """``(model + the export's adapter, tokenizer)``: the LoRA (and a trained head) attached unmerged, in eval mode."""
    from adapt.methods import qlora

    return qlora.load(model, Path(folder) / ADAPTER).eval(), tokenizer
