"""MoE-LoRA layers: LoRA experts + a router around one base linear (bitsandbytes ``Linear4bit`` or ``nn.Linear``).

One :class:`MoELoRALinear` wraps the innermost base linear of a projection and
holds any number of named adapters (:class:`LoRAExperts`); one of them, or none,
is active. An adapter with a router mixes E experts per token::

    probs = softmax(router(x))            # fp32, (N, E)
    gates = renormalized top-k of probs   # exactly k non-zeros per token, summing to 1
    y     = base(x) + scale * sum_e gates_e * B_e A_e dropout(x)

The experts are evaluated densely as one rank-E*r LoRA (two matmuls): the E
down-projections are stacked into one (E*r, d_in) matrix, the gate scales each
expert's r hidden units, and the stacked (d_out, E*r) up-projection sums them.
An adapter without a router (one expert) is a plain LoRA (attention projections).
Parameters are fp32; the matmuls run in the activations' dtype (bf16 on an NF4
base with bf16 compute), as under autocast; the router softmax is always fp32.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from adapt.methods.wrapping import WrapsBaseLinear
from adapt.methods.moe_lora.routing import Routing, balance_loss, route

if TYPE_CHECKING:
    from adapt.methods.moe_lora.state import MoEState

ROUTER_INIT_STD = 0.02
"""Router weights start near zero (near-uniform routing), as in MixLoRA."""


class LoRAExperts(nn.Module):
    """E LoRA experts (A: r x d_in, B: d_out x r, B zero-initialized) and, when E > 1, a router."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        num_experts: int,
        top_k: int,
        rank: int,
        alpha: float,
        dropout: float,
        device: torch.device | None = None,
    ):
        super().__init__()
        self.num_experts, self.top_k, self.rank = num_experts, top_k, rank
        self.scale = alpha / rank
        fp32 = {"device": device, "dtype": torch.float32}
        self.lora_A = nn.Parameter(torch.empty(num_experts, rank, in_features, **fp32))
        self.lora_B = nn.Parameter(torch.zeros(num_experts, out_features, rank, **fp32))
        for expert in self.lora_A.data:  # the same init as peft's LoRA A, per expert
            nn.init.kaiming_uniform_(expert, a=math.sqrt(5))
        self.router = nn.Linear(in_features, num_experts, bias=False, **fp32) if num_experts > 1 else None
        if self.router is not None:
            nn.init.normal_(self.router.weight, std=ROUTER_INIT_STD)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def routed(self) -> bool:
        return self.router is not None

    def forward(self, x: torch.Tensor, gates: torch.Tensor | None = None) -> tuple[torch.Tensor, Routing | None]:
        """``x`` (..., d_in) -> (scaled LoRA delta (..., d_out), routing or None).

        The matmuls run in the activations' dtype when it is 16-bit (the fp32 weights
        are cast, which is cheap: E*r rows), else in fp32; the router softmax is fp32.
        ``gates`` (N, E) overrides the router (tests, the collapse check).
        """
        lead = x.shape[:-1]
        dtype = x.dtype if x.dtype in (torch.bfloat16, torch.float16) else torch.float32
        flat = x.reshape(-1, x.shape[-1]).to(dtype)
        n_experts, rank = self.num_experts, self.rank
        hidden = F.linear(self.dropout(flat), self.lora_A.reshape(n_experts * rank, -1).to(dtype))
        routing = None
        if self.router is None:
            hidden = hidden * self.scale
        else:
            if gates is None:
                routing = route(F.linear(flat, self.router.weight.to(dtype)), self.top_k)
                gates = routing.gates
            weights = (gates * self.scale).to(dtype).unsqueeze(-1)  # the LoRA scale rides on the (N, E) gates
            hidden = (hidden.view(-1, n_experts, rank) * weights).view(-1, n_experts * rank)
        up = self.lora_B.permute(1, 0, 2).reshape(self.lora_B.shape[1], n_experts * rank).to(dtype)
        return F.linear(hidden, up).view(*lead, -1), routing


def token_mask(state_mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """The (N,) padding mask for ``x`` (B, T, d) from the model's 2-D attention mask (B, S >= T), if it fits."""
    if state_mask is None or state_mask.dim() != 2 or x.dim() != 3:
        return None
    if state_mask.shape[0] != x.shape[0] or state_mask.shape[1] < x.shape[1]:
        return None
    return state_mask[:, -x.shape[1] :].reshape(-1).to(device=x.device) > 0


class MoELoRALinear(WrapsBaseLinear, nn.Module):
    """A base linear plus named MoE-LoRA adapters; ``active`` picks the one in use (None: the base alone).

    The base sits under ``base_layer`` like peft's layers, so peft's ``get_base_layer()``
    walks through this wrapper to the real weight.
    """

    def __init__(self, base_layer: nn.Module, path: str, state: MoEState):
        super().__init__()
        self.base_layer = base_layer
        self.adapters = nn.ModuleDict()
        self.path = path
        """Canonical module path (no peft prefixes), the key in saved files and telemetry."""
        self.__dict__["state"] = state  # shared, not a submodule

    def add_adapter(self, name: str, *, num_experts: int, top_k: int, rank: int, alpha: float, dropout: float) -> None:
        device = self.base_layer.weight.device
        self.adapters[name] = LoRAExperts(
            self.in_features,
            self.out_features,
            num_experts=num_experts,
            top_k=top_k,
            rank=rank,
            alpha=alpha,
            dropout=dropout,
            device=device,
        )

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        name = self.state.active
        if name is None or name not in self.adapters:
            return result
        experts = self.adapters[name]
        delta, routing = experts(x)
        if routing is not None:
            self._observe(name, routing, token_mask(self.state.attention_mask, x))
        return result + delta.to(result.dtype)

    def _observe(self, name: str, routing: Routing, mask: torch.Tensor | None) -> None:
        state = self.state
        if torch.is_grad_enabled() or state.track_balance:
            loss = balance_loss(routing, mask)
            state.balance_terms.append(loss if torch.is_grad_enabled() else loss.detach())
        if state.recording is not None:
            state.recorder(name).add(state.recording, self.path, routing, mask)

    def extra_repr(self) -> str:
        return f"path={self.path!r}, adapters={list(self.adapters)}, active={self.state.active!r}"
