"""The LM head at supervised positions only (what `adapt train` runs) = full logits: same loss and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from adapt.training.supervised_head import SupervisedHeadForward, supervised_positions


def _lora(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    for name, p in model.named_parameters():  # B != 0 so every LoRA weight gets a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (3, 24), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0  # right padding
    labels = torch.full_like(ids, -100)
    labels[0, 20:23] = ids[0, 20:23]  # only the answer tokens are supervised, at different places per row
    labels[1, 15:18] = ids[1, 15:18]
    labels[2, 10:12] = ids[2, 10:12]
    return ids, mask, labels


def test_positions_are_those_before_each_label():
    _, _, labels = _batch()
    assert supervised_positions(labels).tolist() == [9, 10, 14, 15, 16, 19, 20, 21]


def test_same_loss_and_gradients_as_full_logits(tiny_llama_dir):
    ids, mask, labels = _batch()
    full = _lora(tiny_llama_dir)
    ours = copy.deepcopy(full)

    reference = full(input_ids=ids, attention_mask=mask, labels=labels).loss
    reference.backward()
    out = SupervisedHeadForward(ours)(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    loss = -out.log_probs.sum() / out.label_mask.sum()  # TRL's SFT loss from these outputs
    loss.backward()

    assert out.log_probs.shape == out.label_mask.shape == labels[:, 1:].shape
    assert torch.equal(out.log_probs != 0, out.label_mask)
    assert torch.allclose(loss, reference, atol=1e-6, rtol=1e-5) and torch.allclose(out.loss, reference, atol=1e-6)
    grads = {n: p.grad for n, p in full.named_parameters() if p.requires_grad}
    ours_grads = {n: p.grad for n, p in ours.named_parameters() if p.requires_grad}
    assert grads.keys() == ours_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.allclose(ours_grads[name], grad, atol=1e-6, rtol=1e-4), name


def test_adapt_trainer_loss_equals_full_logits_loss(tiny_llama_dir, tmp_path):
    """`adapt train`'s trainer computes the same loss as transformers' full-logits loss on a batch."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig

    from adapt.training.trainer import AuxLossSFTTrainer

    model = _lora(tiny_llama_dir)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, report_to="none", use_cpu=True)
    data = Dataset.from_list([{"prompt": "a question", "completion": " yes"}] * 2)
    trainer = AuxLossSFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    ids, mask, labels = _batch()
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(inputs))
        reference = model(**inputs).loss
    assert ours.item() == pytest.approx(reference.item(), abs=1e-5)
