"""The language-model head at the supervised positions only: the training loss without the full logits.

A classification label or a short answer supervises a handful of tokens of a
300-token example, yet a causal LM computes its head (vocabulary x hidden: most
of Gemma-3's compute with its 262k vocabulary) at every position.

TRL's SFTTrainer asks the model for ``fused_lm_head=True`` outputs (per-token
log-probabilities of the labels, zero where there is no label) and computes
the loss, token counts and metrics from them. Its own fused head scores only
the supervised positions on CUDA (Triton), but every position elsewhere, so on
a CPU it saves memory, not compute. :class:`SupervisedHeadForward` answers the
same call with the head run only at the positions whose next token carries a
label, through transformers' ``logits_to_keep`` (the union of those positions
over the batch), so TRL's loss, normalization and logging stay as they are.
"""

from __future__ import annotations

import torch

IGNORE = -100


def supervised_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p (over the batch) whose next token p+1 carries a label: where the head must run."""
    return (labels[:, 1:] != IGNORE).any(dim=0).nonzero().squeeze(1)


class SupervisedHeadForward:
    """Wraps a causal LM for TRL's ``compute_loss``: ``fused_lm_head=True`` calls get TRL's per-token outputs,
    computed at the supervised positions only; any other call goes to the model unchanged."""

    def __init__(self, model):
        self.model = model

    def __call__(self, *args, fused_lm_head: bool = False, labels=None, **kwargs):
        if not fused_lm_head or labels is None:
            return self.model(*args, **kwargs, **({} if labels is None else {"labels": labels}))
        from trl.trainer.utils import FusedCausalLMOutput

        kwargs.pop("shift_labels", None)
        kwargs.pop("num_items_in_batch", None)
        kwargs["use_cache"] = False
        keep = supervised_positions(labels)
        logits = self.model(*args, logits_to_keep=keep, **kwargs).logits.float()  # [batch, len(keep), vocab]
        targets = labels[:, 1:][:, keep]
        mask = targets != IGNORE
        logprobs = torch.log_softmax(logits, dim=-1)
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
        with torch.no_grad():
            entropy = -(logprobs.exp() * logprobs).sum(-1) * mask
            top1 = (logits.argmax(-1) == targets) & mask
        full_mask = labels[:, 1:] != IGNORE
        return FusedCausalLMOutput(
            loss=-picked.sum() / mask.sum().clamp(min=1),
            log_probs=_scatter(picked, keep, full_mask.shape),
            entropy=_scatter(entropy, keep, full_mask.shape),
            is_top1=_scatter(top1, keep, full_mask.shape),
            label_mask=full_mask,
        )


def _scatter(values: torch.Tensor, keep: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """[batch, len(keep)] -> [batch, seq-1], zeros elsewhere (differentiable)."""
    out = values.new_zeros(shape)
    return out.index_copy(1, keep, values)
