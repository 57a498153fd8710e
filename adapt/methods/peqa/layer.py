"""PEQA's layer: learned scales on the NF4 quantization scales of one frozen linear layer.

``PEQALinear`` wraps the innermost base linear (bitsandbytes ``Linear4bit``, or
``nn.Linear`` for the channel form on a 16-bit base) and keeps any number of
named scale sets; ``theta`` is a log scale (``alpha = exp(theta)``, so zeros are
exactly the base):

- ``channel``: ``y = alpha * base(x)``, one alpha per output row, i.e. every
  NF4 block of the row scaled by alpha;
- ``block``: one alpha per 64-value NF4 block.

Either way the layer computes what the exported model will: bitsandbytes
dequantizes the codes with ``absmax * alpha`` as block scales and the result
goes through ``F.linear``; the autograd function below supplies the gradient
bitsandbytes has no formula for. Only for inference on bitsandbytes' packed
CPU kernel does the channel form call the base and scale its output.

bitsandbytes' CPU repacking (on CPUs with AVX512-BF16, ``Linear4bit`` rewrites
``weight.data`` to an [N, K/2] tiled layout and ``quant_state.absmax`` to a
bf16 [K/64, N] matrix, un-nested, the first time it runs in eval mode without
grad) is undone exactly by :func:`adapt.models.bnb_cpu.unpack_cpu` where this code
needs the canonical form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adapt.models.bnb_cpu import is_4bit, is_cpu_packed, packed_absmax, unpack_cpu, uses_packed_kernel
from adapt.errors import AdaptError
from adapt.methods.wrapping import WrapsBaseLinear

GRANULARITIES = ("channel", "block")


# --------------------------------------------------------------------------- NF4 state
def block_absmax(module: nn.Module) -> torch.Tensor:
    """The fp32 scale of every NF4 block, row-major (nesting and CPU packing resolved)."""
    from bitsandbytes import functional as bnbf

    state = module.weight.quant_state
    if is_cpu_packed(module):
        return packed_absmax(module)
    if state.nested:
        return bnbf.dequantize_blockwise(state.absmax, state.state2) + state.offset
    return state.absmax.float()


def write_absmax(module: nn.Module, absmax: torch.Tensor, double_quant: bool) -> None:
    """Replace a Linear4bit's block scales (row-major fp32); ``double_quant`` nests them as quantize_4bit does."""
    from bitsandbytes import functional as bnbf

    unpack_cpu(module)
    state = module.weight.quant_state
    absmax = absmax.float().contiguous()
    if double_quant:
        offset = absmax.mean()
        state.absmax, state.state2 = bnbf.quantize_blockwise(absmax - offset, blocksize=256)
        state.offset, state.nested = offset, True
    else:
        state.absmax, state.state2, state.offset, state.nested = absmax, None, None, False


def dequantize_with(module: nn.Module, absmax: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The [N, K] weight of a (canonical) Linear4bit dequantized with the given block scales."""
    from bitsandbytes import functional as bnbf

    state = module.weight.quant_state
    scales = bnbf.QuantState(
        absmax=absmax.float().contiguous(),
        shape=state.shape,
        code=state.code,
        blocksize=state.blocksize,
        quant_type=state.quant_type,
        dtype=dtype,
    )
    return bnbf.dequantize_4bit(module.weight.data, scales)


def compute_dtype(module: nn.Module, x: torch.Tensor) -> torch.dtype:
    """The dtype bitsandbytes' Linear4bit would compute in for this input."""
    if getattr(module, "compute_type_is_set", False) and module.compute_dtype is not None:
        return module.compute_dtype
    if x.dtype in (torch.float32, torch.bfloat16):
        return x.dtype
    return module.compute_dtype or x.dtype


def num_scales(module: nn.Module, granularity: str, name: str = "") -> int:
    """How many scales ``granularity`` gives this base layer; AdaptError if it cannot."""
    if granularity not in GRANULARITIES:
        raise AdaptError(f"method.granularity: {granularity!r} is not one of {GRANULARITIES}")
    out_features, in_features = module.out_features, module.in_features
    if not is_4bit(module):
        if granularity == "block":
            raise AdaptError(
                f"{name}: granularity 'block' scales NF4 blocks but this layer is not 4-bit; "
                "set model.quantization: nf4 or method.granularity: channel"
            )
        return out_features
    blocksize = module.weight.quant_state.blocksize
    if granularity == "channel":
        if in_features % blocksize:
            raise AdaptError(
                f"{name}: in_features {in_features} is not a multiple of the NF4 block size {blocksize}, so per-row "
                "scales cannot fold into the block scales; use method.granularity: block or leave this layer out of target_modules"
            )
        return out_features
    if (out_features * in_features) % blocksize:
        raise AdaptError(f"{name}: {out_features}x{in_features} weights do not fill whole {blocksize}-value blocks")
    return out_features * in_features // blocksize


# --------------------------------------------------------------------------- autograd
def scaled_absmax(absmax: torch.Tensor, theta: torch.Tensor, per_row: bool) -> torch.Tensor:
    """Block scales times ``exp(theta)``: one theta per block, or per row (repeated over the row's blocks)."""
    alpha = theta.exp()
    if per_row:
        alpha = alpha.repeat_interleave(absmax.numel() // alpha.numel())
    return absmax * alpha


class _ScaledNF4Linear(torch.autograd.Function):
    """``F.linear(x, dequant(codes, scaled_absmax))``: the folded model's own computation, with a theta gradient.

    The forward is bitsandbytes' (dequantize, then linear) with the scaled block
    scales, so the trained model and its exported checkpoint compute the same
    numbers. Per row, ``dy/dtheta = y``; per block the gradient needs the weight
    gradient, which is formed in backward only. The weight is dequantized again
    in backward instead of being saved.
    """

    @staticmethod
    def forward(ctx, x, theta, base, absmax, dtype, per_row):
        weight = dequantize_with(base, scaled_absmax(absmax, theta, per_row), dtype)
        bias = base.bias
        if bias is not None:
            bias = (bias.float() * theta.exp() if per_row else bias).to(dtype)
        y = F.linear(x, weight, bias)
        ctx.save_for_backward(None if per_row else x, theta, absmax, y if per_row else None)
        ctx.base, ctx.per_row = base, per_row
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, theta, absmax, y = ctx.saved_tensors
        base, per_row = ctx.base, ctx.per_row
        weight = dequantize_with(base, scaled_absmax(absmax, theta, per_row), torch.float32)
        grad_x = grad_theta = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ weight.to(grad_out.dtype)
        if ctx.needs_input_grad[1]:
            n_out = weight.shape[0]
            if per_row:
                grad_theta = (grad_out.float() * y.float()).reshape(-1, n_out).sum(0)
            else:  # d weight / d theta_b = the weight inside block b
                grad_w = grad_out.reshape(-1, n_out).T @ x.reshape(-1, weight.shape[1])
                grad_theta = (grad_w.float() * weight).reshape(-1, base.weight.quant_state.blocksize).sum(1)
        return grad_x, grad_theta, None, None, None, None


# --------------------------------------------------------------------------- the layer
class PEQALinear(WrapsBaseLinear, nn.Module):
    """Named sets of log scales over one frozen base linear; ``active`` picks the set (None: the base)."""

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        # Named like peft's wrappers so peft's get_base_layer() reaches the real Linear4bit.
        self.base_layer = base_layer
        self.log_scales = nn.ParameterDict()
        self.granularity: dict[str, str] = {}
        self.active: str | None = None

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def add_scales(self, name: str, granularity: str, theta: torch.Tensor | None = None, trainable: bool = True) -> None:
        count = num_scales(self.base_layer, granularity)
        device = self.base_layer.weight.device
        if theta is None:
            theta = torch.zeros(count, dtype=torch.float32, device=device)
        elif theta.shape != (count,):
            raise ValueError(f"expected {count} {granularity} scales, got shape {tuple(theta.shape)}")
        self.log_scales[name] = nn.Parameter(theta.to(device=device, dtype=torch.float32), requires_grad=trainable)
        self.granularity[name] = granularity

    def remove_scales(self, name: str) -> None:
        if name in self.log_scales:
            del self.log_scales[name]
            del self.granularity[name]
        if self.active == name:
            self.active = None

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        name = self.active
        if name is None or name not in self.log_scales:
            return self.base_layer(x, *args, **kwargs)
        theta, base = self.log_scales[name], self.base_layer
        if not isinstance(base, nn.Linear):
            raise AdaptError(
                f"peqa: a {type(base).__name__} was inserted between a PEQA layer and its linear layer; "
                "attach LoRA / MoE-LoRA adapters before PEQA scales (PEQA wraps the innermost linear)"
            )
        per_row = self.granularity[name] == "channel"
        if not is_4bit(base):  # 16-bit base, channel scales
            y = base(x, *args, **kwargs)
            return (y.float() * theta.exp()).to(y.dtype)
        if per_row and uses_packed_kernel(base, x):
            # Inference on the packed CPU kernel (fast, bf16 inside, like the exported model's).
            y = base(x, *args, **kwargs)
            return (y.float() * theta.exp()).to(y.dtype)
        unpack_cpu(base)  # our path reads the canonical layout
        dtype = compute_dtype(base, x)
        out = _ScaledNF4Linear.apply(x.to(dtype), theta, base, block_absmax(base), dtype, per_row)
        return out.to(x.dtype)

    def folded_absmax(self, name: str) -> torch.Tensor:
        """The NF4 block scales with set ``name`` folded in (fp32, row-major): exactly what forward uses."""
        theta = self.log_scales[name].detach()
        return scaled_absmax(block_absmax(self.base_layer), theta, self.granularity[name] == "channel")

    def extra_repr(self) -> str:
        sets = ", ".join(f"{k}:{g}" for k, g in self.granularity.items())
        return f"scales=[{sets}], active={self.active!r}"
