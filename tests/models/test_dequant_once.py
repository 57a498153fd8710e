"""The dequantize-once NF4 layer computes exactly what bitsandbytes' Linear4bit computes, in fp32 and bf16."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("bitsandbytes")

from adapt.models import dequant_once  # noqa: E402
from adapt.models.bnb_cpu import disable_cpu_4bit_packing  # noqa: E402
from adapt.recipe import ModelConfig  # noqa: E402


def _nf4(tiny_llama_dir, dtype: str):
    from adapt import models

    cfg = ModelConfig(source=str(tiny_llama_dir), compute_dtype=dtype, cpu_nf4_path="bitsandbytes")
    model, _ = models.load_base(cfg)
    disable_cpu_4bit_packing(model)
    return model


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("double_quant", [True, False])
def test_layer_bit_identical_to_linear4bit(tiny_llama_dir, dtype, double_quant):
    from adapt import models

    cfg = ModelConfig(source=str(tiny_llama_dir), compute_dtype=dtype, double_quant=double_quant, cpu_nf4_path="bitsandbytes")
    model, _ = models.load_base(cfg)
    disable_cpu_4bit_packing(model)
    layers = dequant_once.nf4_layers(model)
    assert layers and dequant_once.path_of(model) == "bitsandbytes"  # the reference is bitsandbytes' own layer
    torch.manual_seed(0)
    for layer in layers:
        x = torch.randn(3, 7, layer.in_features, dtype=models.compute_dtype(cfg), requires_grad=True)
        reference = layer(x)
        (grad_ref,) = torch.autograd.grad(reference.float().square().sum(), x)
        fast = copy.deepcopy(layer)
        dequant_once.install(fast)
        assert type(fast) is dequant_once.layer_class()
        out = fast(x)
        (grad,) = torch.autograd.grad(out.float().square().sum(), x)
        assert out.dtype == reference.dtype
        assert torch.equal(out, reference)
        assert torch.equal(grad, grad_ref)
        with torch.no_grad():  # the no-grad (scoring) path too, and the cached weight is reused
            assert torch.equal(fast(x), layer(x))


def test_whole_model_logits_identical_and_nf4_state_kept(tiny_llama_dir):
    model = _nf4(tiny_llama_dir, "float32")
    ids = torch.tensor([[5, 17, 33, 2, 9, 41]])
    model.train()
    reference = model(input_ids=ids).logits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert dequant_once.install(model) == len(dequant_once.nf4_layers(model)) > 0
    assert torch.equal(model(input_ids=ids).logits, reference)
    after = model.state_dict()
    assert before.keys() == after.keys()  # the dense cache is not part of the checkpoint
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cache_follows_changed_scales(tiny_llama_dir):
    """Editing the NF4 scales in place (as a fold does) must not leave a stale dense weight."""
    model = _nf4(tiny_llama_dir, "float32")
    layer = dequant_once.nf4_layers(model)[0]
    dequant_once.install(layer)
    x = torch.randn(2, layer.in_features)
    first = layer(x)
    with torch.no_grad():
        layer.weight.quant_state.absmax.mul_(2) if not layer.weight.quant_state.nested else layer.weight.quant_state.state2.absmax.mul_(2)
        layer.weight.quant_state.absmax.add_(0)  # bumps the version counter either way
    assert not torch.equal(layer(x), first)


def test_load_base_installs_it_on_the_cpu(tiny_llama_dir):
    from adapt import models

    model, _ = models.load_base(ModelConfig(source=str(tiny_llama_dir)))
    assert dequant_once.path_of(model) == "dequantize_once"


def test_auto_path_respects_memory_and_device(tiny_llama_dir, monkeypatch):
    model = _nf4(tiny_llama_dir, "float32")
    assert dequant_once.choose_path("auto", model, "cpu", torch.float32) == "dequantize_once"
    assert dequant_once.choose_path("auto", model, "cuda", torch.float32) == "bitsandbytes"
    assert dequant_once.choose_path("bitsandbytes", model, "cpu", torch.float32) == "bitsandbytes"
    monkeypatch.setattr(dequant_once, "available_memory_bytes", lambda: 1000)
    assert dequant_once.choose_path("auto", model, "cpu", torch.float32) == "bitsandbytes"
    assert dequant_once.choose_path("dequantize_once", model, "cpu", torch.float32) == "dequantize_once"
