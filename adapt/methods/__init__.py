"""Fine-tuning methods: one typed registry, :data:`METHODS` (recipe ``method.name`` -> :class:`Method`).

Where to start reading: ``qlora.py`` (peft LoRA, one module); ``moe_lora/`` and
``peqa/`` (their ``__init__`` lists the files; start at ``model.py``). Stages,
tasks and the demo never name a method: they call :func:`get` (or
:func:`of`) and use the record's fields, so everything a method can or cannot
do is written down here, once.

Custom methods (MoE-LoRA, PEQA) wrap the innermost base linear layers
(bitsandbytes ``Linear4bit`` or ``nn.Linear``), so they co-exist with peft LoRA
layers on one shared base in the demo; they key saved tensors by
:func:`adapt.methods.shared.canonical_path`, so an adapter loads whatever else
wraps the base.

The registry imports only the config modules (pydantic, no torch): the recipe
builds its ``method:`` union from it, and ``adapt validate`` must stay fast.
Every callable is a :class:`~adapt.lazy.Lazy` reference that imports its module on first call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from adapt.errors import AdaptError
from adapt.lazy import Lazy
from adapt.methods import qlora
from adapt.methods.moe_lora import config as moe_lora_config
from adapt.methods.peqa import config as peqa_config


@dataclass(frozen=True)
class Method:
    """One fine-tuning method: its recipe config, its interface, and what else it can do."""

    name: str
    """``method.name`` in a recipe; also the ``name`` literal of :attr:`config`."""
    config: type[BaseModel]
    """The recipe's ``method:`` section for this method (pydantic, discriminated by ``name``)."""
    build: Callable[..., Any]
    """``build(cfg, model) -> nn.Module``: wrap a freshly loaded base (NF4 or 16-bit) for training;
    only the method's parameters require grad."""
    save: Callable[..., None]
    """``save(model, out_dir)``: the adapter in the PEFT layout (adapter_config.json + adapter_model.safetensors)."""
    load: Callable[..., Any]
    """``load(model, adapter_dir, name="default") -> nn.Module``: attach a saved adapter to a base (or to a
    model that already carries other adapters) under ``name``, in eval mode; returns the model to use."""
    set_active: Callable[..., None]
    """``set_active(model, name | None)``: the adapter the forward pass uses; None: the plain base."""
    auxiliary_loss: Callable[..., Any]
    """``auxiliary_loss(model) -> Tensor | None``: extra training loss (MoE-LoRA load balancing); None for most."""
    about: str
    """What the method changes, as a verb phrase after its name ("peqa rescales the NF4 weights")."""
    load_order: int
    """The demo attaches adapters to one shared base in this order, lowest first: peft LoRA first (peft wraps
    modules by name), then the methods that wrap whatever linear is innermost."""

    # ---- optional capabilities: None / False when the method lacks them
    fast_switch: Callable[..., Callable[[str | None], None]] | None = None
    """``fast_switch(model) -> switch(name | None)``: the demo's swap, the effect of ``set_active`` on layers
    cached once, without a module walk (the demo never trains). None: the demo calls ``set_active``."""
    lora_for_merge: Callable[..., Any] | None = None
    """``lora_for_merge(run, recipe) -> Path``: a plain peft LoRA directory for the run (the adapter itself,
    or a LoRA made from it). merge, quantize, combine and bundle use it; None: the method has no LoRA form
    (combine and bundle refuse the run, merge needs :attr:`merge_into`)."""
    lora_is_collapsed: bool = False
    """:attr:`lora_for_merge` approximates the adapter (``<run>/collapsed/``, mean gates): eval writes it and
    scores it as the ``collapsed`` variant beside the adapter; bundle.json marks the adapter ``collapsed``."""
    adapter_report: Callable[..., Any] | None = None
    """``adapter_report(run_dir, model, tokenizer, task, examples, max_len, default_group)``: extra files
    eval writes after scoring the adapter variant (MoE-LoRA: routing.json + routing.png)."""
    merge_into: Callable[..., None] | None = None
    """``merge_into(run, recipe, target, out_dir)``: ``adapt merge`` for a method whose adapter is no LoRA
    delta (PEQA folds its scales). None: merge adds :attr:`lora_for_merge` to the base."""
    export_run: Callable[..., Any] | None = None
    """``export_run(run, recipe, out_dir) -> Path``: the trained model already is NF4, so ``adapt quantize
    --format nf4`` folds it (no merge, no re-quantization), eval's 4-bit retention warning points there, and
    ``nf4-calibrated`` / ``gguf-lora`` (which re-quantize or ship a LoRA) are refused."""
    trains_head: bool = False
    """Can train a new ``score`` head (token or sequence classification) next to the adapter (peft ``modules_to_save``)."""
    whole_weights: bool = False
    """Saves from whole parameters and NF4 quant states, so FSDP / DeepSpeed ZeRO-3 (which shard the weights)
    cannot train it; DDP and ZeRO-2 can."""
    recipe_problems: Callable[[str, BaseModel], list[str]] | None = None
    """``recipe_problems(source, recipe) -> lines``: rules between the method and the rest of the recipe
    (``adapt validate``), each line ``"<source>: <field>: <problem>; <fix>"``."""


def _interface(model: str, files: str) -> dict[str, Lazy]:
    """The required callables: build, set_active and auxiliary_loss in module ``model``; save and load in ``files``."""
    on_model = {name: Lazy(f"{model}:{name}") for name in ("build", "set_active", "auxiliary_loss")}
    return on_model | {name: Lazy(f"{files}:{name}") for name in ("save", "load")}


METHODS: dict[str, Method] = {
    "qlora": Method(
        name="qlora",
        config=qlora.QLoRAConfig,
        **_interface("adapt.methods.qlora", "adapt.methods.qlora"),
        about="trains peft LoRA matrices beside the frozen base",
        load_order=0,
        fast_switch=Lazy("adapt.methods.qlora:fast_switch"),
        lora_for_merge=Lazy("adapt.methods.qlora:lora_for_merge"),
        trains_head=True,
    ),
    "moe_lora": Method(
        name="moe_lora",
        config=moe_lora_config.MoELoRAConfig,
        **_interface("adapt.methods.moe_lora.model", "adapt.methods.moe_lora.io"),
        about="trains routed LoRA experts beside the frozen base",
        load_order=1,
        lora_for_merge=Lazy("adapt.methods.moe_lora.run:lora_for_merge"),
        lora_is_collapsed=True,
        adapter_report=Lazy("adapt.methods.moe_lora.run:routing_report"),
        whole_weights=True,
        recipe_problems=moe_lora_config.recipe_problems,
    ),
    "peqa": Method(
        name="peqa",
        config=peqa_config.PEQAConfig,
        **_interface("adapt.methods.peqa.model", "adapt.methods.peqa.io"),
        about="rescales the NF4 weights",
        load_order=2,
        fast_switch=Lazy("adapt.methods.peqa.model:fast_switch"),
        merge_into=Lazy("adapt.methods.peqa.run:merge_into"),
        export_run=Lazy("adapt.methods.peqa.run:export_run"),
        whole_weights=True,
        recipe_problems=peqa_config.recipe_problems,
    ),
}


def get(name: str) -> Method:
    """The method called ``name``; an AdaptError naming the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise AdaptError(f"method {name!r}: not a known method; use one of {', '.join(METHODS)}") from None


def of(recipe: Any) -> Method:
    """The method of a recipe (``recipe.method.name``)."""
    return get(recipe.method.name)


def names(capability: Callable[[Method], Any]) -> list[str]:
    """The methods for which ``capability(method)`` holds, in registry order (for messages)."""
    return [name for name, method in METHODS.items() if capability(method)]


def lora_adapter_dir(run: Any, recipe: Any) -> Any:
    """A plain peft LoRA directory for this run: the adapter itself, or the method's LoRA form (MoE collapse);
    an AdaptError for a method without one (merge, quantize's gguf-lora, combine and bundle use it)."""
    method = of(recipe)
    if method.lora_for_merge is None:
        raise AdaptError(f"{run.root}: a {method.name} run has no LoRA form; merge it alone (adapt merge {run.root})")
    return method.lora_for_merge(run, recipe)
