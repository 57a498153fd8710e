"""MoE-LoRA on the tiny random Llama (NF4 and 16-bit): routing, balance loss, save/load, telemetry, collapse."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from adapt.models.bnb_cpu import disable_cpu_4bit_packing
from adapt.errors import AdaptError
from adapt.methods.moe_lora import io as moe_io
from adapt.methods.moe_lora import model as moe_model
from adapt.methods.moe_lora.collapse import collapse
from adapt.methods.moe_lora.config import MoELoRAConfig
from adapt.methods.moe_lora.layer import LoRAExperts, MoELoRALinear
from adapt.methods.moe_lora.routing import balance_loss, route
from adapt.methods.moe_lora.telemetry import write_routing_report

REPO = Path(__file__).resolve().parents[2]

warnings.filterwarnings("ignore", message=".*gemv_4bit.*")


def nf4_config():
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_tiny(path, kind: str = "bf16"):
    from transformers import AutoModelForCausalLM

    if kind == "nf4":
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=nf4_config())
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if kind == "fp32" else torch.bfloat16)
    return model.eval()


def cfg(**overrides) -> MoELoRAConfig:
    return MoELoRAConfig(name="moe_lora", **({"rank": 4, "alpha": 8, "dropout": 0.0} | overrides))


def batch(seed: int = 0, pad: int = 3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 500, (2, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :pad] = 0  # left padding on the first row
    return {"input_ids": ids, "attention_mask": mask}


def randomize(model, name: str = "default", std: float = 0.2, seed: int = 0) -> None:
    """Give the experts an effect (B starts at zero) and the routers a real preference."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in moe_model.wrappers(model, name).values():
            experts = layer.adapters[name]
            experts.lora_B.copy_(torch.randn(experts.lora_B.shape, generator=g) * std)
            if experts.router is not None:
                experts.router.weight.copy_(torch.randn(experts.router.weight.shape, generator=g))


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits.float()


# --------------------------------------------------------------------------- routing math
def test_route_keeps_exactly_k_gates_summing_to_one():
    logits_ = torch.randn(50, 6)
    routing = route(logits_, top_k=2)
    assert routing.probs.shape == (50, 6) and routing.gates.shape == (50, 6) and routing.top_idx.shape == (50, 2)
    assert routing.probs.dtype == torch.float32
    assert torch.equal((routing.gates > 0).sum(-1), torch.full((50,), 2))
    torch.testing.assert_close(routing.gates.sum(-1), torch.ones(50))
    # the kept experts are the two most probable
    assert torch.equal(routing.top_idx.sort(-1).values, logits_.topk(2, -1).indices.sort(-1).values)


def test_balance_loss_is_one_at_uniform_routing_and_ignores_padding():
    uniform = route(torch.zeros(40, 4), top_k=2)
    assert balance_loss(uniform, None).item() == pytest.approx(1.0)
    # real tokens spread evenly, padding all on expert 0: the mask must hide the padding
    logits_ = torch.full((8, 4), -10.0)
    logits_[torch.arange(4), torch.arange(4)] = 10.0
    logits_[4:, 0] = 10.0
    mask = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    routed = route(logits_, top_k=1)
    assert balance_loss(routed, mask).item() == pytest.approx(1.0, abs=1e-3)
    assert balance_loss(routed, None).item() > 1.5  # collapsed onto expert 0 without the mask


def test_experts_are_one_dense_rank_er_lora():
    torch.manual_seed(0)
    experts = LoRAExperts(16, 24, num_experts=3, top_k=2, rank=2, alpha=4, dropout=0.0)
    torch.nn.init.normal_(experts.lora_B)
    x = torch.randn(2, 5, 16)
    delta, routing = experts(x)
    assert delta.shape == (2, 5, 24) and routing.gates.shape == (10, 3)
    flat = x.reshape(10, 16)
    looped = sum(
        routing.gates[:, e : e + 1] * (flat @ experts.lora_A[e].T @ experts.lora_B[e].T) * experts.scale for e in range(3)
    )
    torch.testing.assert_close(delta.reshape(10, 24), looped, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- on the tiny model
@pytest.mark.parametrize("kind", ["nf4", "bf16"])
def test_zero_b_reproduces_the_base_exactly(tiny_llama_dir, kind):
    model = load_tiny(tiny_llama_dir, kind).train()  # train mode: bitsandbytes keeps its autograd kernel path
    inputs = batch()
    before = logits(model, inputs)  # the tiny Llama has no dropout
    moe_model.build(cfg(), model)
    layers = moe_model.wrappers(model)
    assert len(layers) == 2 * 7  # gate/up/down routed + q/k/v/o plain, in both blocks
    routed = [layer for layer in layers.values() if layer.adapters["default"].routed]
    assert len(routed) == 6 and all(layer.adapters["default"].num_experts == 4 for layer in routed)
    if kind == "nf4":
        import bitsandbytes as bnb

        assert all(isinstance(layer.base_layer, bnb.nn.Linear4bit) for layer in layers.values())
    model.eval()
    assert torch.equal(logits(model, inputs), before)
    moe_model.set_active(model, None)
    assert torch.equal(logits(model, inputs), before)


def test_gradients_reach_only_experts_routers_and_attention_lora(tiny_llama_dir):
    model = load_tiny(tiny_llama_dir, "nf4")
    moe_model.build(cfg(), model)
    model.train()
    inputs = batch()
    out = model(**inputs, labels=inputs["input_ids"])
    aux = moe_model.auxiliary_loss(model)
    assert aux is not None and aux.requires_grad
    assert aux.item() == pytest.approx(0.01 * moe_model.last_balance(model), rel=1e-5)
    assert moe_model.last_balance(model) == pytest.approx(1.0, abs=0.15)  # near-uniform routers at init
    (out.loss + aux).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    assert all(".adapters.default." in n for n in trainable)
    kinds = {n.rsplit(".", 1)[-1] if "router" not in n else "router" for n in trainable}
    assert kinds == {"lora_A", "lora_B", "router"}
    assert any("self_attn" in n for n in trainable)
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("lora_B"))
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "router" in n)  # from the aux loss


def test_train_after_eval_keeps_4bit_input_gradients(tiny_llama_dir):
    """bitsandbytes repacks Linear4bit for a no-autograd CPU kernel after an eval pass; build undoes it."""
    model = load_tiny(tiny_llama_dir, "nf4")
    logits(model, batch())  # eval pass: may repack on AVX512-BF16 CPUs
    moe_model.build(cfg(), model)
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            assert module.support_avx512bf16_for_cpu is False
            assert not getattr(module.weight.quant_state, "packing_format_for_cpu", False)


def test_save_load_round_trip_and_switching(tiny_llama_dir, tmp_path):
    inputs = batch()
    model = load_tiny(tiny_llama_dir, "nf4").train()  # train mode: no CPU repacking before build
    base = logits(model, inputs)
    moe_model.build(cfg(), model)
    randomize(model, seed=1)
    model.eval()
    trained = logits(model, inputs)
    assert not torch.allclose(trained, base)
    moe_io.save(model, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["peft_type"] == "MOE_LORA" and config["adapt_method"] == "moe_lora"
    assert (config["r"], config["lora_alpha"], config["num_experts"], config["top_k"]) == (4, 8, 4, 2)
    assert config["base_model_name_or_path"] == str(tiny_llama_dir)

    other = load_tiny(tiny_llama_dir, "nf4")
    disable_cpu_4bit_packing(other)  # same bitsandbytes kernel as the training model (packed eval kernels round differently)
    moe_io.load(other, tmp_path / "a", name="health")
    assert torch.equal(logits(other, inputs), trained)
    assert not any(p.requires_grad for p in other.parameters())

    moe_model.build(cfg(top_k=1), model, name="legal")
    randomize(model, name="legal", seed=2)
    moe_io.save(model, tmp_path / "b", name="legal")
    moe_io.load(other, tmp_path / "b", name="legal")
    model.eval()
    legal = logits(other, inputs)
    torch.testing.assert_close(legal, logits(model, inputs))
    assert not torch.allclose(legal, trained)
    moe_model.set_active(other, "health")
    assert torch.equal(logits(other, inputs), trained)
    moe_model.set_active(other, None)
    assert torch.equal(logits(other, inputs), base)
    with pytest.raises(AdaptError, match="no adapter 'nope'"):
        moe_model.set_active(other, "nope")
    with pytest.raises(AdaptError, match="already loaded"):
        moe_io.load(other, tmp_path / "a", name="health")


def test_wraps_inside_a_peft_lora_layer(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(load_tiny(tiny_llama_dir, "nf4"), LoraConfig(r=2, target_modules=["up_proj", "q_proj"]))
    moe_model.build(cfg(), model)
    up = model.base_model.model.model.layers[0].mlp.up_proj
    assert type(up).__name__ == "Linear4bit" and hasattr(up, "lora_A")  # peft's layer stays outermost
    assert isinstance(up.base_layer, MoELoRALinear) and up.base_layer.path == "model.layers.0.mlp.up_proj"
    assert type(up.get_base_layer()).__name__ == "Linear4bit"
    model.eval()
    inputs = batch()
    with_moe = logits(model, inputs)
    moe_model.set_active(model, None)
    torch.testing.assert_close(logits(model, inputs), with_moe)  # B = 0: identical


def test_router_telemetry_table_and_report(tiny_llama_dir, tmp_path):
    model = load_tiny(tiny_llama_dir, "bf16")
    moe_model.build(cfg(num_experts=3, top_k=2), model)
    randomize(model)
    model.eval()
    with moe_model.record_routing(model, group="healthcare"):
        logits(model, batch(0, pad=3))
    with moe_model.record_routing(model, group="legal"):
        logits(model, batch(1, pad=0))
        logits(model, batch(2, pad=5))
    logits(model, batch(3))  # outside: not recorded
    table = moe_model.routing_table(model)
    assert list(table.groups) == ["healthcare", "legal"] and table.num_experts == 3
    health, legal = table.groups["healthcare"], table.groups["legal"]
    assert len(health) == 6 and health[0].layer == "model.layers.0.mlp.gate_proj"
    assert health[0].tokens == 24 - 3 and legal[0].tokens == 48 - 5  # padding masked
    for row in health + legal:
        assert sum(row.mean_gate) == pytest.approx(1.0) and sum(row.top1_share) == pytest.approx(1.0)
    json_path, png_path = write_routing_report(table, tmp_path)
    assert json.loads(json_path.read_text())["groups"]["legal"][0]["tokens"] == 43
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    moe_model.reset_routing(model)
    assert moe_model.routing_table(model).groups == {}


def _peft_logits(tiny_llama_dir, adapter_dir, inputs):
    from peft import PeftModel

    plain = PeftModel.from_pretrained(load_tiny(tiny_llama_dir, "fp32"), str(adapter_dir)).eval()
    return logits(plain, inputs)


def test_collapse_is_exact_for_constant_gates_and_loads_in_plain_peft(tiny_llama_dir, tmp_path):
    inputs = batch()
    model = load_tiny(tiny_llama_dir, "fp32")
    moe_model.build(cfg(num_experts=3, top_k=3), model)
    randomize(model)
    with torch.no_grad():  # zero router: every token gets gates 1/3 exactly
        for layer in moe_model.wrappers(model).values():
            if layer.adapters["default"].router is not None:
                layer.adapters["default"].router.weight.zero_()
    model.eval()
    routed = logits(model, inputs)
    out = collapse(model, [inputs], tmp_path / "collapsed")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 12 and config["lora_alpha"] == 24
    assert config["rank_pattern"] == {m: 4 for m in ["q_proj", "k_proj", "v_proj", "o_proj"]}
    gates = json.loads((out / "collapse.json").read_text())["mean_gates"]
    assert gates["model.layers.1.mlp.down_proj"] == pytest.approx([1 / 3] * 3)
    torch.testing.assert_close(_peft_logits(tiny_llama_dir, out, inputs), routed, rtol=1e-4, atol=1e-4)


def test_collapse_approximates_learned_routing(tiny_llama_dir, tmp_path):
    inputs = batch()
    model = load_tiny(tiny_llama_dir, "fp32")
    base = logits(model, inputs)
    moe_model.build(cfg(), model)
    randomize(model, std=0.1)
    model.eval()
    routed = logits(model, inputs)
    collapsed = _peft_logits(tiny_llama_dir, collapse(model, [inputs], tmp_path / "c"), inputs)
    # the collapse keeps most of what the experts changed
    assert (collapsed - routed).norm() < 0.5 * (base - routed).norm()


def test_clear_errors(tiny_llama_dir, tmp_path):
    model = load_tiny(tiny_llama_dir, "bf16")
    with pytest.raises(AdaptError, match="top_k=5 > method.num_experts=4"):
        moe_model.build(cfg(top_k=5), model)
    untouched = load_tiny(tiny_llama_dir, "bf16")
    with pytest.raises(AdaptError, match="no module matches method.expert_modules"):
        moe_model.build(cfg(expert_modules=["fc1"]), untouched)
    assert moe_model.wrappers(untouched) == {}  # nothing wrapped before the error
    with pytest.raises(AdaptError, match="both"):
        moe_model.build(cfg(attention_modules=["up_proj"]), load_tiny(tiny_llama_dir, "bf16"))
    with pytest.raises(AdaptError, match="adapter_config.json: missing"):
        moe_io.load(load_tiny(tiny_llama_dir, "bf16"), tmp_path)


# --------------------------------------------------------------------------- over a run directory
def test_run_level_collapse_and_routing_report(tiny_llama_dir, tmp_path):
    from peft import PeftModel

    from adapt.data.types import TaskData, TextExample
    from adapt.methods.moe_lora.run import lora_for_merge, routing_report
    from adapt.recipe import Recipe
    from adapt.runs import RunDir

    sample = REPO / "domains" / "healthcare" / "sample"
    if not sample.is_dir():
        pytest.skip("domains/healthcare/sample is not there")
    recipe = Recipe.model_validate(
        {
            "name": "moe-tiny",
            "domain": "healthcare",
            "model": {"source": str(tiny_llama_dir), "quantization": "nf4"},
            "method": {"name": "moe_lora", "rank": 4, "alpha": 8},
            "data": {"source": "pubmedqa", "path": str(sample), "validation_size": 4},
            "train": {"max_seq_len": 256},
        }
    )
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.recipe.write_text(recipe.to_yaml())
    model = load_tiny(tiny_llama_dir, "nf4")
    moe_model.build(recipe.method, model)
    randomize(model, std=0.05)
    moe_io.save(model, run.adapter)

    collapsed = lora_for_merge(run, recipe)
    assert collapsed == run.root / "collapsed"
    assert json.loads((collapsed / "collapse.json").read_text())["calibration_tokens"] > 100
    plain = PeftModel.from_pretrained(load_tiny(tiny_llama_dir, "nf4"), str(collapsed))
    assert logits(plain, batch()).isfinite().all()
    stamp = (collapsed / "adapter_model.safetensors").stat().st_mtime
    assert lora_for_merge(run, recipe) == collapsed and (collapsed / "adapter_model.safetensors").stat().st_mtime == stamp

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    examples = [TextExample(prompt=f"question {i}", completion="yes", group="a" if i % 2 else "b") for i in range(6)]
    task = TaskData(kind="classification", train=[], validation=[], test=examples, instruction="Answer.")
    json_path, png_path = routing_report(run.root, model, tokenizer, task, examples, max_len=64)
    table = json.loads(json_path.read_text())
    assert sorted(table["groups"]) == ["a", "b"] and png_path.is_file()


# --------------------------------------------------------------------------- adapt train --resume
def test_resume_matches_an_uninterrupted_run(tiny_llama_dir, tmp_path):
    """Stopped after 2 steps and resumed to 4, the adapter equals a 4-step run's: experts, routers,
    optimizer, scheduler, data order and RNG all come back from the Trainer checkpoint."""
    import yaml
    from safetensors.torch import load_file

    from adapt import train
    from adapt.checks import load_recipe

    body = {
        "name": "tiny-moe", "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir), "quantization": "nf4"},
        "method": {"name": "moe_lora", "num_experts": 2, "top_k": 1, "rank": 2, "alpha": 4, "dropout": 0.0},
        "data": {"source": "pubmedqa", "path": str(REPO / "domains/healthcare/sample"), "max_context_chars": 200},
        "train": {"max_steps": 2, "batch_size": 2, "max_seq_len": 96, "save_steps": 1, "learning_rate": 0.05,
                  "lr_scheduler": "constant", "warmup_ratio": 0.0, "eval_steps": 0},  # the last step's adapter, not the best
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    train.run(load_recipe(path), resumed)
    after_two = load_file(str(resumed / "adapter" / "adapter_model.safetensors"))
    train.run(load_recipe(path, ["train.max_steps=4"]), resumed, resume=True)
    train.run(load_recipe(path, ["train.max_steps=4"]), straight)

    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["resumed"] is True and metrics["steps"] == 4
    got, want = (load_file(str(d / "adapter" / "adapter_model.safetensors")) for d in (resumed, straight))
    assert got.keys() == want.keys() == after_two.keys()
    assert max((got[k].float() - after_two[k].float()).abs().max().item() for k in got) > 1e-3  # it trained on
    for key in got:
        torch.testing.assert_close(got[key].float(), want[key].float(), atol=1e-4, rtol=0, msg=key)
