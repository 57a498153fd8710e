"""PEQA on the tiny NF4 Llama: identity, gradients, export equivalence, save/load, hot swap, CPU repacking, resume."""

from __future__ import annotations

import json

import pytest
import torch

from adapt.models.bnb_cpu import is_cpu_packed, unpack_cpu
from adapt.errors import AdaptError
from adapt.methods.peqa import fold as peqa_fold
from adapt.methods.peqa import io as peqa_io
from adapt.methods.peqa import model as peqa
from adapt.methods.peqa import run as peqa_run
from adapt.methods.peqa.config import PEQAConfig
from adapt.methods.peqa.layer import PEQALinear
from adapt.training.trainer import trainable_parameters

bnb = pytest.importorskip("bitsandbytes")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GRANULARITIES = ["channel", "block"]
# tiny Llama: 2 layers x (q 64, k 32, v 32, o 64, gate 128, up 128, down 64 rows); in_features 64 (down: 128)
EXPECTED_SCALES = {"channel": 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64), "block": 2 * (64 + 32 + 32 + 64 + 128 + 128 + 128)}


def load_nf4(path, dtype=torch.bfloat16, double_quant=True):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=dtype
    )
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, dtype=dtype, device_map={"": DEVICE})
    return model.train()  # train mode: bitsandbytes keeps the canonical layout (no CPU repacking)


def load_plain(path, dtype=torch.bfloat16):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map={"": DEVICE}).train()


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randint(5, 500, (2, 16), generator=gen).to(DEVICE)


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


def randomize(model, name="default", std=0.1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in peqa.wrappers(model, name).values():
            theta = layer.log_scales[name]
            theta.copy_(torch.randn(theta.shape, generator=gen) * std)


def scales(model, name="default"):
    return {p: layer.log_scales[name].detach().clone() for p, layer in peqa.wrappers(model, name).items()}


# --------------------------------------------------------------------------- build
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_identity_at_initialization(tiny_llama_dir, inputs, granularity):
    model = load_nf4(tiny_llama_dir)
    base = logits(model, inputs)
    peqa.build(PEQAConfig(name="peqa", granularity=granularity), model)
    assert torch.equal(logits(model, inputs), base)
    assert len(peqa.wrappers(model)) == 14
    assert trainable_parameters(model)[0] == EXPECTED_SCALES[granularity]


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_gradients_only_into_scales_and_training_moves_them(tiny_llama_dir, inputs, granularity):
    model = peqa.build(PEQAConfig(name="peqa", granularity=granularity), load_nf4(tiny_llama_dir))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(isinstance(p, torch.nn.Parameter) and p.dtype == torch.float32 for p in trainable)
    optimizer = torch.optim.Adam(trainable, lr=0.05)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = model(inputs, labels=inputs).loss
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".log_scales.default" in n for n in with_grad)
    assert all(p.grad.abs().sum() > 0 for p in trainable)  # every layer, first to last, gets a gradient
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_hand_written_gradient_matches_autograd_through_dequantization(tiny_llama_dir, granularity):
    """The custom backward equals autograd through code[idx] * absmax * alpha followed by F.linear."""
    from bitsandbytes import functional as bnbf

    model = load_nf4(tiny_llama_dir, dtype=torch.float32)
    peqa.build(PEQAConfig(name="peqa", granularity=granularity), model)
    layer = model.model.layers[0].mlp.down_proj
    randomize(model, std=0.2)
    x = torch.randn(3, 5, layer.in_features, device=DEVICE, requires_grad=True)
    layer(x).square().sum().backward()
    got_theta, got_x = layer.log_scales["default"].grad.clone(), x.grad.clone()

    state = layer.base_layer.weight.quant_state
    theta = layer.log_scales["default"].detach().clone().requires_grad_(True)
    absmax = bnbf.dequantize_blockwise(state.absmax, state.state2) + state.offset
    codes = bnbf.dequantize_4bit(layer.base_layer.weight.data, state).float().reshape(-1, state.blocksize) / absmax[:, None]
    alpha = theta.exp().repeat_interleave(layer.in_features // state.blocksize) if granularity == "channel" else theta.exp()
    weight = (codes * (absmax * alpha)[:, None]).reshape(state.shape)
    x2 = x.detach().clone().requires_grad_(True)
    torch.nn.functional.linear(x2, weight).square().sum().backward()
    torch.testing.assert_close(got_theta, theta.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_x, x2.grad, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- export
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_export_matches_trained_model(tiny_llama_dir, tmp_path, inputs, granularity):
    from transformers import AutoModelForCausalLM

    model = peqa.build(PEQAConfig(name="peqa", granularity=granularity), load_nf4(tiny_llama_dir, dtype=torch.float32))
    randomize(model)
    trained = logits(model, inputs)
    assert (trained - logits(load_nf4(tiny_llama_dir, dtype=torch.float32), inputs)).abs().max() > 1e-2

    out = peqa_fold.export_nf4(model, tmp_path / "nf4")
    assert not any(isinstance(m, PEQALinear) for m in model.modules())
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["bnb_4bit_quant_type"] == "nf4"
    assert config["quantization_config"]["bnb_4bit_use_double_quant"] is False
    assert not list(out.glob("*.bin")) and list(out.glob("*.safetensors"))

    exported = AutoModelForCausalLM.from_pretrained(out, device_map={"": DEVICE}).train()  # no adapter code
    assert isinstance(exported.model.layers[1].mlp.down_proj, bnb.nn.Linear4bit)
    assert (logits(exported, inputs) - trained).abs().max().item() <= 1e-3


def test_fold_block_multipliers_per_row_or_per_block(tiny_llama_dir):
    """The reusable fold: row multipliers act on every block of their row; the codes stay; wrong counts are refused."""
    from adapt.methods.peqa.fold import fold_block_multipliers
    from adapt.methods.peqa.layer import block_absmax, dequantize_with

    model = load_nf4(tiny_llama_dir, dtype=torch.float32)
    layer = model.model.layers[0].mlp.down_proj  # 64 rows x 128 inputs: two 64-value blocks a row
    codes, before = layer.weight.data.clone(), dequantize_with(layer, block_absmax(layer), torch.float32)
    rows = torch.linspace(0.5, 1.5, 64, device=DEVICE)
    state = fold_block_multipliers(layer, rows)
    assert state is layer.weight.quant_state and not state.nested and torch.equal(layer.weight.data, codes)
    torch.testing.assert_close(dequantize_with(layer, block_absmax(layer), torch.float32), before * rows[:, None])
    per_row = block_absmax(layer).clone()

    other = load_nf4(tiny_llama_dir, dtype=torch.float32).model.layers[0].mlp.down_proj
    assert fold_block_multipliers(other, rows.repeat_interleave(2), double_quant=True).nested
    fold_block_multipliers(other, torch.ones(128))  # un-nests again
    torch.testing.assert_close(block_absmax(other), per_row, rtol=2e-2, atol=0)  # one 8-bit re-rounding in between
    with pytest.raises(ValueError, match="expected 128 block multipliers or 64 row multipliers"):
        fold_block_multipliers(other, torch.ones(100))
    with pytest.raises(ValueError, match="needs a bitsandbytes Linear4bit"):
        fold_block_multipliers(load_plain(tiny_llama_dir).model.layers[0].mlp.down_proj, rows)


def test_renested_export_trades_accuracy_for_size(tiny_llama_dir, tmp_path, inputs):
    """Double quantization of the folded block scales: smaller, but logits move past 1e-3 (hence off by default)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    errors, sizes = {}, {}
    for double_quant in (False, True):
        model = peqa.build(PEQAConfig(name="peqa"), load_nf4(tiny_llama_dir, dtype=torch.float32))
        randomize(model)
        trained = logits(model, inputs)
        out = peqa_fold.export_nf4(model, tmp_path / str(double_quant), double_quant=double_quant)
        exported = AutoModelForCausalLM.from_pretrained(out, device_map={"": DEVICE}).train()
        nested = exported.model.layers[0].self_attn.q_proj.weight.quant_state.nested
        assert nested is double_quant
        errors[double_quant] = (logits(exported, inputs) - trained).abs().max().item()
        absmax = {k: v for k, v in load_file(str(out / "model.safetensors")).items() if k.endswith("weight.absmax")}
        sizes[double_quant] = sum(v.numel() * v.element_size() for v in absmax.values())
    assert errors[False] <= 1e-3 < errors[True] < 2e-2
    assert sizes[True] * 4 == sizes[False]  # 8-bit codes instead of fp32 block scales


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_export_in_bfloat16_is_bit_exact(tiny_llama_dir, tmp_path, inputs, granularity):
    """bf16 compute: the trained layers already compute with the folded block scales, so nothing moves."""
    from transformers import AutoModelForCausalLM

    model = peqa.build(PEQAConfig(name="peqa", granularity=granularity), load_nf4(tiny_llama_dir))
    randomize(model)
    trained = logits(model, inputs)
    exported = AutoModelForCausalLM.from_pretrained(peqa_fold.export_nf4(model, tmp_path / "nf4"), device_map={"": DEVICE})
    assert torch.equal(logits(exported.train(), inputs), trained)


def test_fold_into_16bit_base(tiny_llama_dir, inputs):
    model = peqa.build(PEQAConfig(name="peqa"), load_plain(tiny_llama_dir, dtype=torch.float32))
    assert len(peqa.wrappers(model)) == 14  # every linear but the (tied) lm_head
    randomize(model)
    trained = logits(model, inputs)
    folded = peqa_fold.fold(model)
    assert not any(isinstance(m, PEQALinear) for m in folded.modules())
    assert (logits(folded, inputs) - trained).abs().max().item() <= 1e-4


def test_block_needs_nf4(tiny_llama_dir):
    with pytest.raises(AdaptError, match="granularity 'block'.*not 4-bit"):
        peqa.build(PEQAConfig(name="peqa", granularity="block"), load_plain(tiny_llama_dir))


def test_unknown_targets_are_an_error(tiny_llama_dir):
    with pytest.raises(AdaptError, match="target_modules.*matches no"):
        peqa.build(PEQAConfig(name="peqa", target_modules=["qkv"]), load_nf4(tiny_llama_dir))


# --------------------------------------------------------------------------- adapter files and hot swap
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_save_load_round_trip(tiny_llama_dir, tmp_path, inputs, granularity):
    cfg = PEQAConfig(name="peqa", granularity=granularity, target_modules=["q_proj", "down_proj"])
    model = peqa.build(cfg, load_nf4(tiny_llama_dir))
    randomize(model)
    trained = logits(model, inputs)
    peqa_io.save(model, tmp_path / "adapter")

    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PEQA" and config["adapt_method"] == "peqa"
    assert config["granularity"] == granularity and config["target_modules"] == ["q_proj", "down_proj"]
    assert config["base_model_name_or_path"] == str(tiny_llama_dir)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert sorted(saved) == sorted(f"model.layers.{i}.{m}.peqa_log_scale" for i in (0, 1) for m in ("self_attn.q_proj", "mlp.down_proj"))

    fresh = peqa_io.load(load_nf4(tiny_llama_dir), tmp_path / "adapter", name="med")
    assert not fresh.training
    assert not any(layer.log_scales["med"].requires_grad for layer in peqa.wrappers(fresh).values())
    assert torch.equal(logits(fresh.train(), inputs), trained)


def test_load_rejects_a_foreign_directory(tiny_llama_dir, tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(AdaptError, match="peft_type is 'LORA'"):
        peqa_io.load(load_nf4(tiny_llama_dir), tmp_path)


def test_set_active_switches_between_scale_sets(tiny_llama_dir, tmp_path, inputs):
    expected = {}
    for seed, name in enumerate(("med", "law")):
        model = peqa.build(PEQAConfig(name="peqa", granularity=("channel", "block")[seed]), load_nf4(tiny_llama_dir))
        randomize(model, seed=seed)
        expected[name] = logits(model, inputs)
        peqa_io.save(model, tmp_path / name)

    shared = load_nf4(tiny_llama_dir)
    expected[None] = logits(shared, inputs)
    for name in ("med", "law"):
        peqa_io.load(shared, tmp_path / name, name=name)
    assert peqa.scale_sets(shared) == ["law", "med"]
    shared.train()
    for name in ("med", None, "law", "med", None):  # swap latency: bench/bench_serve.py
        peqa.set_active(shared, name)
        assert torch.equal(logits(shared, inputs), expected[name])
    with pytest.raises(AdaptError, match="no scale set 'tax'"):
        peqa.set_active(shared, "tax")


def test_coexists_with_peft_lora(tiny_llama_dir, tmp_path, inputs):
    from peft import LoraConfig, get_peft_model

    scaled = peqa.build(PEQAConfig(name="peqa"), load_nf4(tiny_llama_dir))
    randomize(scaled)
    peqa_io.save(scaled, tmp_path / "peqa")

    model = get_peft_model(load_nf4(tiny_llama_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.train()
    lora_only = logits(model, inputs)
    peqa_io.load(model, tmp_path / "peqa", name="scales")
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, PEQALinear)  # inside peft's layer, around the Linear4bit
    assert isinstance(q_proj.get_base_layer(), bnb.nn.Linear4bit)
    model.train()
    both = logits(model, inputs)
    assert (both - lora_only).abs().max() > 1e-2
    peqa.set_active(model, None)
    assert torch.equal(logits(model, inputs), lora_only)
    with model.disable_adapter():
        peqa.set_active(model, "scales")
        assert torch.equal(logits(model, inputs), logits(scaled.train(), inputs))

    peqa_io.save(model, tmp_path / "again", name="scales")  # canonical names: loads into a plain base
    assert torch.equal(logits(peqa_io.load(load_nf4(tiny_llama_dir), tmp_path / "again").train(), inputs), logits(scaled, inputs))


# --------------------------------------------------------------------------- bitsandbytes CPU repacking
def _packs_on_this_machine() -> bool:
    from bitsandbytes.functional import has_avx512bf16

    return DEVICE == "cpu" and bool(has_avx512bf16())


def test_unpack_cpu_is_exact(tiny_llama_dir, inputs):
    model = load_nf4(tiny_llama_dir).eval()
    before = logits(model, inputs)  # eval + no grad: bitsandbytes repacks here on AVX512-BF16 CPUs
    layer = model.model.layers[0].mlp.down_proj
    if not _packs_on_this_machine():
        pytest.skip("bitsandbytes repacks 4-bit weights only on CPUs with AVX512-BF16")
    assert is_cpu_packed(layer)
    scales_packed = peqa.block_scales(model)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            unpack_cpu(module)
    assert not is_cpu_packed(layer) and layer.weight.data.shape == (64 * 128 // 2, 1)
    assert all(torch.equal(scales_packed[p], s) for p, s in peqa.block_scales(model).items())
    model.train()  # unpacked path, same block scales: the same function up to kernel rounding
    torch.testing.assert_close(logits(model, inputs), before, atol=2e-2, rtol=0)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_repacked_base_trains_and_exports(tiny_llama_dir, tmp_path, inputs, granularity):
    from transformers import AutoModelForCausalLM

    model = load_nf4(tiny_llama_dir, dtype=torch.float32).eval()
    logits(model, inputs)  # repacks every Linear4bit where bitsandbytes does that
    packed = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit) and is_cpu_packed(m)]
    assert len(packed) == (14 if _packs_on_this_machine() else 0)

    peqa.build(PEQAConfig(name="peqa", granularity=granularity), model)
    model.train()
    model(inputs, labels=inputs).loss.backward()  # the packed kernel has no backward: layers unpack themselves
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    randomize(model)
    model.eval()
    logits(model, inputs)  # repack again (channel calls the base in eval mode)
    trained = logits(model, inputs)
    expected = {path: layer.folded_absmax("default") for path, layer in peqa.wrappers(model).items()}
    out = peqa_fold.export_nf4(model, tmp_path / "nf4")  # fold reads and rewrites the packed state
    exported = AutoModelForCausalLM.from_pretrained(out, device_map={"": DEVICE}).eval()
    assert all(torch.equal(scale, expected[path]) for path, scale in peqa.block_scales(exported).items())
    # The packed CPU kernel computes in bf16 with bf16 block scales, so both sides carry bf16 rounding.
    tolerance = 1e-3 if not packed else 2 * 2**-7 * trained.abs().max().item()
    assert (logits(exported, inputs) - trained).abs().max().item() <= tolerance


# --------------------------------------------------------------------------- run-directory stages
def _run_with_adapter(tiny_llama_dir, tmp_path, granularity="channel"):
    from adapt.recipe import Recipe
    from adapt.runs import RunDir, write_text_atomic

    recipe = Recipe.model_validate({
        "name": "tiny-peqa", "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir), "quantization": "nf4"},
        "method": {"name": "peqa", "granularity": granularity},
        "data": {"source": "pubmedqa", "path": "domains/healthcare/sample"},
    })  # fmt: skip
    run = RunDir(tmp_path / "run")
    write_text_atomic(run.recipe, recipe.to_yaml())
    from adapt import models

    model = peqa.build(recipe.method, models.load_base(recipe.model, device=DEVICE)[0].train())
    randomize(model)
    peqa_io.save(model, run.adapter)
    return run, recipe, model


def test_export_run_and_merge_into(tiny_llama_dir, tmp_path, inputs):
    """The run-directory entry points: export/nf4 is the folded NF4 model; merged/nf4_dequant its 16-bit twin."""
    from transformers import AutoModelForCausalLM

    run, recipe, model = _run_with_adapter(tiny_llama_dir, tmp_path)
    trained = logits(model, inputs)
    exported = AutoModelForCausalLM.from_pretrained(peqa_run.export_run(run, recipe, run.export("nf4")), device_map={"": DEVICE})
    assert (run.export("nf4") / "tokenizer_config.json").is_file()
    assert torch.equal(logits(exported.train(), inputs), trained)

    for target in ("nf4_dequant", "fp16"):
        peqa_run.merge_into(run, recipe, target, run.merged(target))
    dequant = load_plain(run.merged("nf4_dequant"))
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in dequant.modules())
    assert torch.equal(logits(dequant, inputs), trained)  # the same bf16 weights through the same F.linear
    base16 = peqa_fold.fold(peqa_io.load(load_plain(tiny_llama_dir), run.adapter))
    assert torch.equal(logits(load_plain(run.merged("fp16")), inputs), logits(base16.train(), inputs))


def test_block_scales_do_not_merge_into_16bit(tiny_llama_dir, tmp_path):
    run, recipe, _ = _run_with_adapter(tiny_llama_dir, tmp_path, "block")
    with pytest.raises(AdaptError, match="block scales belong to NF4 blocks"):
        peqa_run.merge_into(run, recipe, "fp16", tmp_path / "merged")


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_resume_restores_scales_and_optimizer(tiny_llama_dir, tmp_path, granularity):
    """`adapt train --resume`: the Trainer checkpoint holds the scales; steps 3-4 rerun from checkpoint-2 match."""
    import shutil
    from pathlib import Path

    from safetensors.torch import load_file

    from adapt import train
    from adapt.recipe import Recipe

    sample = Path(__file__).resolve().parents[2] / "domains" / "healthcare" / "sample"
    recipe = Recipe.model_validate({
        "name": "tiny-peqa", "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir), "quantization": "nf4"},
        "method": {"name": "peqa", "granularity": granularity},
        "data": {"source": "pubmedqa", "path": str(sample), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 4, "batch_size": 2, "learning_rate": 0.05, "max_seq_len": 96,
                  "logging_steps": 1, "save_steps": 2},
    })  # fmt: skip
    straight = tmp_path / "straight"
    train.run(recipe, straight)
    checkpoint = load_file(str(straight / "checkpoints" / "checkpoint-2" / "model.safetensors"))
    assert sum(k.endswith(".log_scales.default") for k in checkpoint) == 14
    assert (straight / "checkpoints" / "checkpoint-2" / "optimizer.pt").is_file()

    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    shutil.rmtree(resumed / "adapter")
    train.run(recipe, resumed, resume=True)
    metrics = {d: json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("straight", "resumed")}
    assert metrics["resumed"]["resumed"] is True and metrics["resumed"]["steps"] == 4
    losses = {d: [h["loss"] for h in m["log_history"] if "loss" in h] for d, m in metrics.items()}
    assert losses["resumed"] == losses["straight"] and len(losses["straight"]) == 4
    final = {d: load_file(str(tmp_path / d / "adapter" / "adapter_model.safetensors")) for d in metrics}
    assert final["straight"].keys() == final["resumed"].keys()
    assert any(t.abs().max() > 0.05 for t in final["straight"].values())  # trained past steps 1-2
    # scales and Adam moments restored: steps 3-4 land on the same scales
    assert all(torch.equal(final["resumed"][k], t) for k, t in final["straight"].items())


def test_moe_lora_attached_first_keeps_peqa_innermost(tiny_llama_dir, tmp_path, inputs):
    from adapt.methods.moe_lora import model as moe_model
    from adapt.methods.moe_lora.config import MoELoRAConfig

    scaled = peqa.build(PEQAConfig(name="peqa"), load_nf4(tiny_llama_dir))
    randomize(scaled)
    peqa_io.save(scaled, tmp_path / "peqa")
    model = moe_model.build(MoELoRAConfig(name="moe_lora"), load_nf4(tiny_llama_dir))
    moe_model.set_active(model, None)
    peqa_io.load(model, tmp_path / "peqa", name="scales").train()
    down = model.model.layers[0].mlp.down_proj
    assert isinstance(down.base_layer, PEQALinear) and isinstance(down.base_layer.base_layer, bnb.nn.Linear4bit)
    assert torch.equal(logits(model, inputs), logits(scaled.train(), inputs))  # MoE off: the scales alone
