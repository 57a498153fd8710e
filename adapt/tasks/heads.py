"""A classification head on a decoder SLM: model classes, loading, the fp32 head, merging.

Two shapes of head, both a ``score`` Linear over the last hidden states (transformers' generic heads):
``token`` (a label per token: NER, ``GenericForTokenClassification``) and ``sequence`` (a label per text, read at
its last token: ``GenericForSequenceClassification``). The head stays out of NF4 (``skip_modules``) and out of the
LoRA targets; peft trains it fully through ``modules_to_save``.

A sequence head may read the mean of the text's states instead (a hook turns the body's states into their running
mean, which transformers' head then reads at the last token), after the first ``layer`` decoder layers only (the
model is built with that many), with an intercept added to its logits. The :class:`HeadSpec` records all three
beside the adapter and in merged configs, and every loader here applies it.

transformers 5.23 has no token-classification class for Gemma 3 text models,
so :class:`Gemma3TextForTokenClassification` is defined here exactly as
transformers defines ``Gemma3TextForSequenceClassification`` (generic head over
``Gemma3TextModel``) and registered with ``AutoModelForTokenClassification`` in
this process (no remote code). Its checkpoints keep the ``model.*`` prefix of
``Gemma3ForCausalLM``, so the converted base loads into it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification
from transformers.modeling_layers import GenericForTokenClassification
from transformers.models.gemma3.configuration_gemma3 import Gemma3TextConfig
from transformers.models.gemma3.modeling_gemma3 import Gemma3PreTrainedModel

from adapt.errors import AdaptError
from adapt.recipe import HeadAttention, HeadShape, Pooling

if TYPE_CHECKING:
    from adapt.recipe import ModelConfig, Recipe
    from adapt.runs import RunDir

HEAD = "score"
HEAD_FILE = "labels.json"
"""Written beside the adapter: the :class:`HeadSpec` (shape, labels, attention, label position) of the head."""
ATTENTION = get_args(HeadAttention)
SHAPES = get_args(HeadShape)
POOLING = get_args(Pooling)


class Gemma3TextForTokenClassification(GenericForTokenClassification, Gemma3PreTrainedModel):
    """Gemma 3 text model + a linear ``score`` head per token (the generic transformers head)."""

    config_class = Gemma3TextConfig  # explicit: annotations are strings under `from __future__ import annotations`
    input_modalities = ("text",)


AutoModelForTokenClassification.register(Gemma3TextConfig, Gemma3TextForTokenClassification, exist_ok=True)


def check_method(recipe: Recipe) -> None:
    """The recipe's method can train a head (the registry's ``trains_head``)."""
    from adapt import methods

    if not methods.of(recipe).trains_head:
        able = methods.names(lambda m: m.trains_head)
        raise AdaptError(
            f"method.name: {recipe.method.name!r} cannot train a classification head (a new `score` layer trained "
            f"next to the adapter, and only {', '.join(able)} saves one); set method.name: {able[0]} in this recipe"
        )


AUTO_CLASSES = {"token": AutoModelForTokenClassification, "sequence": AutoModelForSequenceClassification}
"""The transformers auto class of each head shape."""


def check_architecture(config, shape: str, where: Path) -> None:
    """The model of ``config`` (read from ``where``) has a ``shape``-classification class."""
    from transformers.models.auto import modeling_auto

    registry = {"token": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING,  # with the Gemma 3 class above
                "sequence": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING}[shape]  # fmt: skip
    if type(config) not in registry:
        raise AdaptError(
            f"{where}: architecture {config.model_type!r} has no {shape}-classification class in transformers "
            "(nor in adapt.tasks.heads); use smollm2-135m-instruct (llama) or gemma-3-270m"
        )


def _cast_input(module: nn.Module, args: tuple) -> tuple:
    weight = module.weight if isinstance(module, nn.Linear) else next(module.parameters())
    return (args[0].to(weight.dtype), *args[1:])


def prepare_head(model: nn.Module) -> nn.Module:
    """Keep the head in fp32 (bf16 AdamW updates of a fresh head round away) and feed it fp32 inputs.

    Call before peft wraps the model (its ``modules_to_save`` copy inherits the
    dtype) and before an adapter is loaded (so its fp32 head loads losslessly).
    """
    head = getattr(model, HEAD, None)
    if not isinstance(head, nn.Linear):
        raise AdaptError(f"{type(model).__name__}: no `{HEAD}` Linear head; load it with load_head_model")
    head.float()
    if not getattr(head, "_adapt_cast_hook", False):
        head.register_forward_pre_hook(_cast_input)
        head._adapt_cast_hook = True
    return model


def _bidirectional_mask(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Replace the 2D padding mask by a 4D one that lets every token see every real token (both sides)."""
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.ndim == 4:
        return args, kwargs
    ref = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else kwargs["inputs_embeds"])
    batch, length = ref.shape[:2]
    if mask is None:
        mask = torch.ones(batch, length, dtype=torch.bool, device=ref.device)
    keep = mask.bool()[:, None, None, :].expand(batch, 1, length, length)
    if module.config._attn_implementation == "sdpa":
        kwargs["attention_mask"] = keep
    else:  # eager and friends add the mask to the scores
        dtype = module.dtype if module.dtype.is_floating_point else torch.float32
        kwargs["attention_mask"] = torch.zeros(keep.shape, dtype=dtype, device=ref.device).masked_fill(~keep, torch.finfo(dtype).min)
    return args, kwargs


@dataclass(frozen=True)
class HeadSpec:
    """How a head is trained and read: saved beside the adapter (labels.json) and in merged configs."""

    labels: tuple[str, ...]
    attention: str = "causal"
    """``causal`` (the decoder as pre-trained) or ``bidirectional`` (causal mask dropped in the body)."""
    label_position: str = "first"
    """Which subword of a word carries its label (token heads): ``first`` or ``last``."""
    shape: str = "token"
    """``token`` (a label per word) or ``sequence`` (a label per text)."""
    pooling: str = "last"
    """What a sequence head reads: the last token's hidden state, or the ``mean`` over the text's tokens."""
    layer: int | None = None
    """The body is cut after this many decoder layers (None: whole)."""
    intercept: tuple[float, ...] | None = None
    """Added to the head's logits (transformers' generic ``score`` has no bias): a probe's fitted intercept."""

    def __post_init__(self) -> None:
        from adapt.tasks.ner import POSITIONS

        if self.shape not in SHAPES:
            raise AdaptError(f"head shape {self.shape!r}: use one of {', '.join(SHAPES)}")
        if self.attention not in ATTENTION:
            raise AdaptError(f"attention {self.attention!r}: use one of {', '.join(ATTENTION)}")
        if self.label_position not in POSITIONS:
            raise AdaptError(f"label position {self.label_position!r}: use one of {', '.join(POSITIONS)}")
        if self.pooling not in POOLING:
            raise AdaptError(f"pooling {self.pooling!r}: use one of {', '.join(POOLING)}")
        if self.intercept is not None and len(self.intercept) != len(self.labels):
            raise AdaptError(f"head intercept has {len(self.intercept)} values for {len(self.labels)} labels")

    def to_json(self) -> dict:
        return {"shape": self.shape, "labels": list(self.labels), "attention": self.attention,
                "label_position": self.label_position, "pooling": self.pooling, "layer": self.layer,
                "intercept": None if self.intercept is None else list(self.intercept)}  # fmt: skip

    @classmethod
    def read(cls, adapter_dir: Path) -> HeadSpec:
        path = Path(adapter_dir) / HEAD_FILE
        if not path.is_file():
            raise AdaptError(f"{path}: missing; this adapter was not written by adapt's training of a classification head")
        raw = json.loads(path.read_text())  # adapters from before the options: a causal token head, first subword
        return cls(tuple(raw["labels"]), raw.get("attention", "causal"), raw.get("label_position", "first"), raw.get("shape", "token"),
                   raw.get("pooling", "last"), raw.get("layer"), _floats(raw.get("intercept")))  # fmt: skip

    @classmethod
    def from_config(cls, config) -> HeadSpec:
        labels = tuple(config.id2label[i] for i in sorted(config.id2label, key=int))
        return cls(labels, getattr(config, "adapt_attention", "causal"), getattr(config, "adapt_label_position", "first"),
                   getattr(config, "adapt_head_shape", "token"),  # merged before sequence heads: token
                   getattr(config, "adapt_pooling", "last"), getattr(config, "adapt_layer", None),
                   _floats(getattr(config, "adapt_intercept", None)))  # fmt: skip


def _floats(values) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def running_mean(states: torch.Tensor) -> torch.Tensor:
    """[batch, position, hidden] states -> their running mean over positions (fp32): at a text's last token (right
    padding) the mean over the whole text."""
    states = states.float()
    steps = torch.arange(1, states.shape[1] + 1, device=states.device, dtype=states.dtype)
    return states.cumsum(1) / steps[None, :, None]


def _running_mean(module: nn.Module, args: tuple, output):
    """The body's states replaced by their running mean, which the sequence head reads at the last token."""
    output.last_hidden_state = running_mean(output.last_hidden_state)
    return output


def _add_intercept(module: nn.Module, args: tuple, output):
    intercept = getattr(module.config, "adapt_intercept", None)
    if intercept is not None:
        output.logits = output.logits + torch.tensor(intercept, dtype=output.logits.dtype, device=output.logits.device)
    return output


def apply_spec(model: nn.Module, spec: HeadSpec) -> nn.Module:
    """Set the body's attention and pooling, add the head's intercept, and record the spec in the config (saved
    with merged models)."""
    body = getattr(model, model.base_model_prefix)
    if spec.attention == "bidirectional" and not getattr(body, "_adapt_bidirectional", False):
        body.register_forward_pre_hook(_bidirectional_mask, with_kwargs=True)
        body._adapt_bidirectional = True
    if spec.pooling == "mean" and not getattr(body, "_adapt_mean", False):
        body.register_forward_hook(_running_mean)
        body._adapt_mean = True
    if spec.intercept is not None and not getattr(model, "_adapt_intercept", False):
        model.register_forward_hook(_add_intercept)
        model._adapt_intercept = True
    model.config.adapt_attention = spec.attention
    model.config.adapt_label_position = spec.label_position
    model.config.adapt_head_shape = spec.shape
    model.config.adapt_pooling = spec.pooling
    model.config.adapt_layer = spec.layer
    model.config.adapt_intercept = None if spec.intercept is None else list(spec.intercept)
    return model


def cut_kwargs(config, layer: int | None, where: Path) -> dict:
    """``from_pretrained`` overrides that build only the first ``layer`` decoder layers (the rest are not loaded)."""
    if layer is None:
        return {}
    if layer > config.num_hidden_layers:
        raise AdaptError(f"train.sequence_head.layer: {layer} is more than the {config.num_hidden_layers} decoder layers "
                         f"of {where}; use 1 to {config.num_hidden_layers}")  # fmt: skip
    types = getattr(config, "layer_types", None)
    return {"num_hidden_layers": layer} | ({"layer_types": list(types[:layer])} if types else {})


def keep_end(ids: list[int], max_len: int, bos_id: int | None) -> list[int]:
    """``ids`` if they fit in ``max_len``; else the start token (when they begin with one) and the last tokens."""
    if len(ids) <= max_len:
        return ids
    keep_start = bos_id is not None and ids[0] == bos_id
    return ids[:1] + ids[len(ids) - max_len + 1 :] if keep_start else ids[len(ids) - max_len :]


def encode(tokenizer, text: str, max_len: int) -> list[int]:
    """``text``'s token ids (with the tokenizer's start token), cut by :func:`keep_end`."""
    return keep_end(tokenizer(text)["input_ids"], max_len, tokenizer.bos_token_id)


def batches_by_length(tokenizer, texts: list[str], max_len: int, batch_size: int, device) -> Iterator[tuple[list[int], dict]]:
    """(the texts' indices, their padded batch on ``device``): each text :func:`encode`-d once, batched with texts
    of similar length, right-padded as in training."""
    encoded = [encode(tokenizer, text, max_len) for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield chunk, tokenizer.pad([{"input_ids": encoded[i]} for i in chunk], return_tensors="pt").to(device)


def label_kwargs(labels: tuple[str, ...]) -> dict:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def load_head_model(cfg: ModelConfig, spec: HeadSpec, device: str = "cpu"):
    """The base (NF4 or 16-bit per ``cfg``) with a new, seeded-random ``score`` head of ``spec.shape`` kept out of NF4."""
    from adapt.models.loading import load_base
    from adapt.models.sources import resolve

    path = resolve(cfg.source)
    config = AutoConfig.from_pretrained(str(path))
    check_architecture(config, spec.shape, path)
    model, tokenizer = load_base(cfg, model_class=AUTO_CLASSES[spec.shape], device=device, skip_modules=[HEAD],
                                 **label_kwargs(spec.labels), **cut_kwargs(config, spec.layer, path))  # fmt: skip
    return apply_spec(prepare_head(model), spec), tokenizer


def trained_base(recipe: Recipe, adapter_dir: Path):
    """The base with the head the adapter in ``adapter_dir`` trained on (its HeadSpec), loaded as training loads it."""
    return load_head_model(recipe.model, HeadSpec.read(adapter_dir))


def load_adapted(run: RunDir, recipe: Recipe, device: str = "cpu"):
    """Base + the run's trained LoRA and head (as its HeadSpec says), in eval mode."""
    from adapt.methods import qlora

    model, tokenizer = load_head_model(recipe.model, HeadSpec.read(run.require_adapter()), device)
    return qlora.load(model, run.adapter).eval(), tokenizer


def load_nf4_lora(path: Path, device: str = "cpu"):
    """An ``nf4-lora`` export of a run with a head: its saved NF4 base + the LoRA and trained head."""
    from adapt.export.nf4_lora import BASE, with_adapter

    return with_adapter(path, *load_saved(path / BASE, device))


def load_saved(path: Path, device: str = "cpu"):
    """A merged (16-bit) directory with a head, written by :func:`merge` (or its bitsandbytes export)."""
    from adapt.models.loading import load_tokenizer

    from adapt.models import dequant_once

    config = AutoConfig.from_pretrained(str(path))
    shape = HeadSpec.from_config(config).shape
    check_architecture(config, shape, path)
    model = AUTO_CLASSES[shape].from_pretrained(str(path), config=config, use_safetensors=True, device_map={"": device})
    nf4 = dequant_once.nf4_layers(model)
    if nf4:  # an NF4 export (nf4, nf4-lora): on the CPU each weight expanded once, as the adapter's loader does
        dequant_once.apply("auto", model, device, nf4[0].compute_dtype)
    model = apply_spec(prepare_head(model), HeadSpec.from_config(model.config))
    return model.eval(), load_tokenizer(path)


def merge(run: RunDir, recipe: Recipe, target: str, out_dir: Path) -> None:
    """Fold the LoRA into 16-bit weights (``nf4_dequant``: the dequantized NF4 ones it was trained on) + the head.

    Writes a plain transformers token- or sequence-classification directory into ``out_dir``.
    """
    from adapt.tasks.lm import merge_lora

    spec = HeadSpec.read(run.require_adapter())
    merge_lora(recipe, target, run.adapter, out_dir, loader=lambda cfg: load_head_model(cfg, spec))


NF4_LORA = "export/nf4-lora"
"""The export kept as a saved NF4 base + the LoRA and head (:mod:`adapt.export.nf4_lora`)."""


def loadable(variant) -> bool:
    """The adapter, a transformers directory (merged, or a bitsandbytes export) or an nf4-lora export; not a GGUF."""
    from adapt.export.nf4_lora import BASE

    if variant.name == "adapter":
        return True
    folder = None if variant.path is None else (variant.path / BASE if variant.name == NF4_LORA else variant.path)
    return folder is not None and (folder / "config.json").is_file()


def load_variant_with_head(run: RunDir, recipe: Recipe, variant, device: str) -> tuple:
    """(model, tokenizer) of a head run's variant: the adapter (base + LoRA + head), an nf4-lora export, or a
    merged / bitsandbytes directory."""
    if variant.name == "adapter":
        return load_adapted(run, recipe, device)
    return (load_nf4_lora if variant.name == NF4_LORA else load_saved)(variant.path, device)
