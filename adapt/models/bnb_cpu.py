"""bitsandbytes NF4 on the CPU: its in-place repacking, how to detect it, undo it exactly, and turn it off.

On CPUs with AVX512-BF16, bitsandbytes (checked on 0.50.x; pyproject pins the
range) repacks a ``Linear4bit`` in place the first time it runs in eval mode on
an input that does not require grad: ``weight.data`` becomes an [N, K/2] tiled
layout and ``quant_state.absmax`` a bf16 [K/64, N] matrix, un-nested
(``quant_state.packing_format_for_cpu`` is then True). The packed gemv kernel
has no backward, so training through a repacked layer gets silently wrong input
gradients (measured: ~50% error in the layer-0 LoRA gradients of the tiny
model), and code that reads or edits ``quant_state`` sees the packed form.
Evaluating a model before or between training steps (a callback, a test, the
demo) is enough to trigger it.

- :func:`disable_cpu_4bit_packing`: what ``adapt train`` does for every method
  before training: no repacking from then on, and any already done undone.
- :func:`unpack_cpu` / :func:`packed_absmax`: the exact inverse, for code that
  needs the canonical layout (PEQA reads and rewrites the block scales).
- :func:`uses_packed_kernel`: whether a forward call takes the packed path.

Everything here relies on bitsandbytes internals (``packing_format_for_cpu``,
``support_avx512bf16_for_cpu``, ``_convert_weight_packed_for_cpu_inverse``).
"""

from __future__ import annotations

import torch
from torch import nn

from adapt.errors import AdaptError


def is_4bit(module: nn.Module) -> bool:
    import bitsandbytes as bnb

    return isinstance(module, bnb.nn.Linear4bit)


def is_cpu_packed(module: nn.Module) -> bool:
    """True when bitsandbytes has repacked this Linear4bit for its AVX512-BF16 CPU kernel."""
    state = getattr(module.weight, "quant_state", None)
    return bool(getattr(state, "packing_format_for_cpu", False))


def uses_packed_kernel(base: nn.Module, x: torch.Tensor) -> bool:
    """Whether a call on ``x`` may use bitsandbytes' packed AVX512-BF16 CPU kernel (and pack for it).

    bitsandbytes itself packs on a CPU input that does not require grad in eval
    mode; this also demands that grad is off, so no autograd graph goes through the kernel.
    """
    return (
        x.device.type == "cpu"
        and bool(getattr(base, "support_avx512bf16_for_cpu", False))
        and not base.training
        and not x.requires_grad
        and not torch.is_grad_enabled()
    )


def packed_absmax(module: nn.Module) -> torch.Tensor:
    """The fp32 block scales of a CPU-packed Linear4bit, row-major (the packed form is [K/64, N])."""
    return module.weight.quant_state.absmax.T.reshape(-1).float()


def unpack_cpu(module: nn.Module) -> None:
    """Undo bitsandbytes' CPU repacking in place, exactly; a no-op on a canonical layer.

    bitsandbytes' own inverse re-quantizes the (now bf16) absmax with double
    quantization when the layer was nested, which changes the scales the
    packed layer computed with, and leaves it in the packed [K/64, N] order
    when the layer was not nested; we keep the scales the packed layer used,
    row-major, fp32, un-nested.
    """
    if not is_cpu_packed(module):
        return
    from bitsandbytes import functional as bnbf

    inverse = getattr(bnbf, "_convert_weight_packed_for_cpu_inverse", None)
    if inverse is None:  # pragma: no cover - guards a bitsandbytes upgrade
        raise AdaptError(
            "bitsandbytes: this version packs 4-bit weights for the CPU but has no "
            "_convert_weight_packed_for_cpu_inverse; use bitsandbytes 0.50.x, the version this code was tested with"
        )
    state = module.weight.quant_state
    absmax = packed_absmax(module)
    state.original_nested = False
    data, state = inverse(module.weight.data, state)
    # Only for nested layers does bitsandbytes transpose absmax back from its packed [K/64, N] layout.
    state.absmax = absmax
    module.weight.data = data


def disable_cpu_4bit_packing(model: nn.Module) -> int:
    """Keep bitsandbytes ``Linear4bit`` layers differentiable on AVX512-BF16 CPUs; return how many were unpacked.

    Turns the repacking off on every Linear4bit of ``model`` and undoes it
    (exactly, :func:`unpack_cpu`) where it already happened. Call it on a base
    before training (``adapt train`` does, for every method), and on a model
    that must compute with the same kernel as a training model. A no-op
    without bitsandbytes.
    """
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return 0
    unpacked = 0
    for module in model.modules():
        if is_4bit(module):
            module.support_avx512bf16_for_cpu = False
            if is_cpu_packed(module):
                unpack_cpu(module)
                unpacked += 1
    return unpacked
