"""What one training process needs to know when a launcher (accelerate, torchrun) started several.

Read from the environment the launchers set, so ``load_base`` can decide where
weights go before any process group exists:

- ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``: torchrun and ``accelerate launch``;
- ``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED`` (+ ``ACCELERATE_DEEPSPEED_ZERO_STAGE``):
  ``accelerate launch`` with an FSDP or DeepSpeed config.

Under DDP every process holds a whole replica on its own device; under FSDP
or DeepSpeed ZeRO-3 the weights are sharded, so nothing is pinned and the NF4
weights are stored in a float dtype FSDP can shard (the FSDP-QLoRA recipe).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SHARDING_ENGINES = ("fsdp", "deepspeed-zero3")
ACCELERATE_ENGINES = {"NO": "single", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed"}
"""accelerate's ``distributed_type`` -> the engine adapt names it."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world_size() -> int:
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """True in the one process that writes artifacts (rank 0), and whenever training is not distributed."""
    return rank() == 0


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def engine() -> str:
    """``single``, ``ddp``, ``fsdp``, ``deepspeed-zero{0..3}``: how this process was launched."""
    if _flag("ACCELERATE_USE_FSDP"):
        return "fsdp"
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        return f"deepspeed-zero{os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '2')}"
    return "ddp" if world_size() > 1 else "single"


def shards_weights() -> bool:
    """FSDP and ZeRO-3 split every weight across processes; DDP and ZeRO-0/1/2 keep a full copy in each."""
    return engine() in SHARDING_ENGINES


def device_map(device: str) -> dict[str, Any] | None:
    """``from_pretrained``'s device_map: the device asked for when alone; under a launcher this
    process's own GPU (DDP), or None under FSDP / ZeRO-3 (they place and shard the weights)."""
    if shards_weights():
        return None
    if world_size() > 1 and device.startswith("cuda"):
        return {"": f"cuda:{local_rank()}"}
    return {"": device}


def quant_storage(compute_dtype: torch.dtype) -> torch.dtype:
    """bitsandbytes' ``bnb_4bit_quant_storage``: uint8, or the compute dtype when FSDP / ZeRO-3 shard the
    NF4 weights (they shard float tensors only; all shards of a unit must share one dtype)."""
    import torch

    return compute_dtype if shards_weights() else torch.uint8


def shard_problem(method: str, engine_name: str) -> str | None:
    """Why ``method`` cannot train under ``engine_name`` when that engine shards the weights (FSDP, ZeRO-3); None
    when it can. `adapt validate` (:func:`adapt.training.launch.config_problems`) and training (:func:`check_method`) say it."""
    from adapt import methods

    if not methods.get(method).whole_weights:
        return None
    return (
        f"{engine_name} shards the weights, but {method} saves from whole parameters and NF4 quant states; "
        "use DDP (distributed_type: MULTI_GPU) or DeepSpeed ZeRO-2"
    )


def check_method(method: str) -> None:
    """Refuse a method FSDP / ZeRO-3 cannot train here, before any weights load."""
    from adapt.errors import AdaptError

    problem = shard_problem(method, engine()) if shards_weights() else None
    if problem:
        raise AdaptError(f"method {method}: {problem}")


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def full_state_dict(trainer) -> dict | None:
    """The gathered state dict when FSDP / ZeRO-3 shard the weights, else None (the model holds them whole).

    Collective: every process must call it; only rank 0 then writes.
    """
    if not shards_weights():
        return None
    wrapped = getattr(trainer, "deepspeed", None) or trainer.model_wrapped
    return trainer.accelerator.get_state_dict(wrapped)


def _engine_that_ran(args) -> str:
    """The engine accelerate set up (on a CPU it runs DDP even when launched with an FSDP config)."""
    kind = getattr(getattr(getattr(args, "distributed_state", None), "distributed_type", None), "value", None)
    ran = ACCELERATE_ENGINES.get(kind)
    if ran is None:
        return engine()
    return engine() if ran == "deepspeed" else ran


def batch_metrics(args) -> dict[str, Any]:
    """What metrics.json states about the batch: per device, accumulation, processes and their product."""
    processes = max(int(getattr(args, "world_size", 1) or 1), 1)
    per_device = args.per_device_train_batch_size
    return {
        "engine": _engine_that_ran(args),
        "world_size": processes,
        "per_device_batch_size": per_device,
        "grad_accum": args.gradient_accumulation_steps,
        "global_batch_size": per_device * args.gradient_accumulation_steps * processes,
    }
