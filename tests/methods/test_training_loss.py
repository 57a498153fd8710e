"""Every method in the registry learns: a few optimizer steps on one fixed batch lower the tiny Llama's loss.

The path is `adapt train`'s (adapt/train.py): the base through ``load_base`` (NF4, as recipes default to),
bitsandbytes' CPU packing turned off, then the method's ``build`` from its record in
:data:`adapt.methods.METHODS`; the loss is the causal-LM loss plus the method's ``auxiliary_loss``, as
adapt's trainer adds it. A plain optimizer loop instead of the Trainer keeps it to seconds.
"""

from __future__ import annotations

import pytest
import torch

from adapt.methods import METHODS
from adapt.models.bnb_cpu import disable_cpu_4bit_packing
from adapt.models.config import ModelConfig
from adapt.models.loading import load_base

pytest.importorskip("bitsandbytes")

STEPS = 10
LEARNING_RATE = 1e-2
"""50x a LoRA recipe's rate, so that a handful of steps on one batch show a clear drop."""
SCALED_RATE = {"peqa": 1e-1}
"""Methods the recipes train at a much higher rate (recipes/*-peqa.yaml: 5e-3, 25x the LoRA recipes' 2e-4)."""
MARGIN = 0.25
"""Nats; the drop each method shows on the tiny Llama is 0.4 (peqa) to 1.0 (LoRA), from about ln(vocab) = 6.4."""
TEXTS = [
    "Does aspirin reduce the risk of stroke in patients with atrial fibrillation? yes",
    "The contract may be terminated by either party upon thirty days written notice.",
]


def losses(tiny_llama_dir, name: str) -> tuple[list[float], torch.nn.Module, dict[str, torch.Tensor]]:
    """The training loss before each of STEPS steps and after the last; the model; the frozen weights before."""
    method = METHODS[name]
    base, tokenizer = load_base(ModelConfig(source=str(tiny_llama_dir), quantization="nf4"))
    disable_cpu_4bit_packing(base)
    torch.manual_seed(0)
    model = method.build(method.config(name=name), base).train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=SCALED_RATE.get(name, LEARNING_RATE))

    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    seen = []
    for _ in range(STEPS + 1):
        loss = model(**batch, labels=labels).loss
        aux = method.auxiliary_loss(model)
        total = loss if aux is None else loss + aux
        seen.append(total.item())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return seen, model, frozen


@pytest.mark.parametrize("name", list(METHODS))
def test_training_loss_goes_down(tiny_llama_dir, name):
    seen, model, frozen = losses(tiny_llama_dir, name)
    assert all(torch.isfinite(torch.tensor(seen))), seen
    assert seen[-1] < seen[0] - MARGIN, f"{name}: loss {seen[0]:.3f} -> {seen[-1]:.3f} over {STEPS} steps: {seen}"
    assert seen[-1] < min(seen[: STEPS // 2]), f"{name}: the loss stopped falling: {seen}"
    assert frozen, f"{name}: build left every parameter trainable"
    changed = [n for n, p in model.named_parameters() if n in frozen and not torch.equal(p, frozen[n])]
    assert not changed, f"{name}: frozen parameters moved: {changed[:3]}"
