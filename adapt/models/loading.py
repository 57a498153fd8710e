"""Loading: the base model (NF4 or 16-bit, per :class:`~adapt.models.config.ModelConfig`) and its tokenizer, and
the compute / storage dtype a config means on a device (the choice itself: :mod:`adapt.models.dtypes`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapt.training import distributed
from adapt.errors import AdaptError
from adapt.models.quiet import new_head_load
from adapt.models.sources import resolve

if TYPE_CHECKING:
    import torch
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

    from adapt.models.config import ModelConfig


def load_tokenizer(source_or_dir: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a source, with a pad token (eos if none) and right padding."""
    from transformers import AutoTokenizer

    return with_padding(AutoTokenizer.from_pretrained(str(resolve(str(source_or_dir)))), source_or_dir)


def with_padding(tokenizer: PreTrainedTokenizerBase, where: str | Path) -> PreTrainedTokenizerBase:
    """``tokenizer`` with a pad token (eos if none) and right padding; ``where`` names it in the error."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise AdaptError(f"tokenizer of {where}: has neither a pad nor an eos token; add one to it")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def compute_dtype(cfg: ModelConfig, device: str | None = None) -> torch.dtype:
    """The dtype matmuls run in on ``device`` (default: CUDA if visible); ``auto`` resolves per device (adapt.models.dtypes)."""
    from adapt.models import dtypes

    return dtypes.resolve(cfg.compute_dtype, None if device in (None, "auto") else device.split(":")[0])


def storage_dtype(cfg: ModelConfig) -> torch.dtype:
    """The 16-bit dtype merged models and exports are written in, whatever the compute dtype."""
    from adapt.models import dtypes

    return dtypes.storage_dtype(cfg.compute_dtype)


def bnb_config(cfg: ModelConfig, skip_modules: list[str] | None = None, device: str | None = None) -> BitsAndBytesConfig | None:
    """NF4 (+ double quant) config, or None for a 16-bit base. ``lm_head`` always stays unquantized."""
    if cfg.quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=compute_dtype(cfg, device),
        bnb_4bit_quant_storage=distributed.quant_storage(compute_dtype(cfg, device)),  # FSDP-QLoRA: the compute dtype
        llm_int8_skip_modules=sorted({"lm_head", *skip_modules}) if skip_modules else None,
    )


def load_base(
    cfg: ModelConfig,
    *,
    model_class: Any = None,
    device: str = "cpu",
    skip_modules: list[str] | None = None,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the base model (NF4 or 16-bit per ``cfg``) in eval mode, and its tokenizer.

    ``skip_modules`` stay out of NF4 (e.g. a new ``score`` head, whose missing weights transformers then does not
    report: :mod:`adapt.models.quiet`); ``model_kwargs``
    go to ``from_pretrained`` (e.g. ``num_labels``) and may override anything.
    """
    path = resolve(cfg.source)
    if model_class is None:
        from transformers import AutoModelForCausalLM

        model_class = AutoModelForCausalLM
    from adapt.models import dtypes

    device = dtypes.pick_device(device)
    quant = bnb_config(cfg, skip_modules, device)
    if quant is not None:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise AdaptError("model.quantization: nf4 needs bitsandbytes; `pip install bitsandbytes`") from None
    kwargs: dict[str, Any] = {
        "dtype": compute_dtype(cfg, device),
        "use_safetensors": True,
        "device_map": distributed.device_map(device),  # DDP: this process's GPU; FSDP / ZeRO-3: none
    }
    if quant is not None:
        kwargs["quantization_config"] = quant
    with new_head_load(skip_modules, model_kwargs.get("num_hidden_layers")):  # a new head's weights are missing, a cut body's upper layers unused, by design
        model = model_class.from_pretrained(str(path), **(kwargs | model_kwargs))
    tokenizer = load_tokenizer(path)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    if quant is not None:  # on the CPU: expand each NF4 weight once, on first use, when memory allows
        from adapt.models import dequant_once

        dequant_once.apply(cfg.cpu_nf4_path, model, device, kwargs["dtype"])
    return model, tokenizer
