"""The router's math: top-k gates from router logits, and the Switch-style load-balancing loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Routing:
    """One routed forward pass, flattened over tokens."""

    probs: torch.Tensor
    """(N, E) fp32 router softmax."""
    top_idx: torch.Tensor
    """(N, k) experts each token is routed to, best first."""
    gates: torch.Tensor
    """(N, E) fp32 sparse gates: renormalized top-k probabilities, zero elsewhere."""


def route(logits: torch.Tensor, top_k: int) -> Routing:
    """Softmax in fp32, keep the top k, renormalize them to sum to 1."""
    probs = torch.softmax(logits.float(), dim=-1)
    top_p, top_idx = probs.topk(top_k, dim=-1)
    top_p = top_p / top_p.sum(dim=-1, keepdim=True)
    gates = torch.zeros_like(probs).scatter(-1, top_idx, top_p)
    return Routing(probs=probs, top_idx=top_idx, gates=gates)


def balance_loss(routing: Routing, mask: torch.Tensor | None) -> torch.Tensor:
    """Switch-style load balancing ``E * sum_e f_e * P_e`` over the non-padding tokens.

    ``f_e``: share of the top-k assignments that go to expert e (not differentiable);
    ``P_e``: mean router probability of e (carries the gradient). 1.0 at uniform routing.
    """
    probs, top_idx = routing.probs, routing.top_idx
    n_experts, top_k = probs.shape[-1], top_idx.shape[-1]
    weight = torch.ones(probs.shape[0], device=probs.device) if mask is None else mask.to(probs.dtype)
    n_tokens = weight.sum().clamp_min(1.0)
    counts = torch.zeros(n_experts, device=probs.device, dtype=probs.dtype)
    counts.scatter_add_(0, top_idx.reshape(-1), weight.repeat_interleave(top_k))
    frac = counts / (n_tokens * top_k)
    mean_prob = (probs * weight[:, None]).sum(0) / n_tokens
    return n_experts * (frac * mean_prob).sum()
