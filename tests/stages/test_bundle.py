"""`adapt bundle`: plain transformers + peft, loading the bundle, reproduce each trained adapter's logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from adapt.errors import AdaptError
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "domains" / "healthcare" / "sample"
LOGITS_ATOL = 2e-2
"""bf16 logits of values ~1-6: the bundle's dense 16-bit base vs bitsandbytes' NF4 matmul, both bf16 (seen: ~1e-2)."""


def _train(tmp_path: Path, model_dir: Path, method: dict, name: str) -> RunDir:
    from adapt import train
    from adapt.checks import load_recipe

    body = {
        "name": name,
        "domain": "healthcare",
        "model": {"source": str(model_dir), "compute_dtype": "bfloat16"},  # dequantized NF4 is exact in bf16
        "method": method,
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 0.05, "max_seq_len": 96, "logging_steps": 1, "save_steps": 10, "device": "cpu"},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return RunDir(train.run(load_recipe(path), tmp_path / name))


@pytest.fixture(scope="module")
def bundled(tmp_path_factory, tiny_llama_dir):
    from adapt import bundle

    tmp = tmp_path_factory.mktemp("bundle")
    qlora = _train(tmp, tiny_llama_dir, {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.0}, "health-qlora")
    moe = _train(tmp, tiny_llama_dir, {"name": "moe_lora", "rank": 2, "alpha": 4, "num_experts": 4, "dropout": 0.0}, "health-moe")
    out = bundle.run([qlora.root, moe.root], tmp / "bundle", names=["qa", "moe"])
    return out, {"qa": qlora, "moe": moe}


def _inputs(tokenizer) -> dict:
    return tokenizer(["Does aspirin reduce the risk of stroke?", "The contract may be terminated."], return_tensors="pt", padding=True)


def _logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs).logits.float()
    return out[inputs["attention_mask"].bool()]


def _trained(run: RunDir):
    """The model adapt trained and evaluates: the NF4 base with the run's LoRA (MoE-LoRA: its collapse)."""
    from peft import PeftModel

    from adapt import models
    from adapt.methods import lora_adapter_dir

    recipe = run.load_recipe()
    base, tokenizer = models.load_base(recipe.model)
    return PeftModel.from_pretrained(base, str(lora_adapter_dir(run, recipe))).eval(), tokenizer


def test_plain_peft_on_the_bundle_reproduces_each_adapter(bundled):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, runs = bundled
    tokenizer = AutoTokenizer.from_pretrained(out / "base")
    inputs = _inputs(tokenizer)
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(out / "base").eval(), inputs)
    for name, run in runs.items():
        served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out / "base"), str(out / "adapters" / name)).eval()
        trained, _ = _trained(run)
        expected, got = _logits(trained, inputs), _logits(served, inputs)
        print(f"{name}: bundle vs trained max |logit diff| {(got - expected).abs().max():.2e}, adapter effect {(expected - base_logits).abs().max():.2e}")
        assert (got - expected).abs().max() <= LOGITS_ATOL, name
        assert (expected - base_logits).abs().max() > 10 * LOGITS_ATOL, f"{name}: the adapter changes the logits"


def test_bundle_layout_readme_and_manifest(bundled):
    out, runs = bundled
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["adapters"]["moe"]["rank"] == 8 and manifest["adapters"]["moe"]["collapsed"]
    assert manifest["adapters"]["qa"]["rank"] == 4 and manifest["max_lora_rank"] == 8
    command = "vllm serve base --enable-lora --lora-modules qa=adapters/qa moe=adapters/moe --max-lora-rank 8 --max-loras 2"
    readme = (out / "README.md").read_text()
    assert manifest["vllm_command"] == command and command in readme
    assert 'client.chat.completions.create(model="qa"' in readme  # the tiny tokenizer has a chat template
    for name in runs:
        config = json.loads((out / "adapters" / name / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "base" and config["peft_type"] == "LORA"
        assert (out / "adapters" / name / "adapt_recipe.yaml").is_file()
    assert (out / "adapters" / "moe" / "collapse.json").is_file()
    assert torch.bfloat16 == _stored_dtype(out / "base")


def _stored_dtype(folder: Path) -> torch.dtype:
    from safetensors import safe_open

    with safe_open(str(next(folder.glob("*.safetensors"))), "pt") as fh:
        return fh.get_tensor(next(iter(fh.keys()))).dtype


def _edited_copy(run: RunDir, dest: Path, **changes) -> Path:
    shutil.copytree(run.root, dest)
    recipe = yaml.safe_load(run.recipe.read_text())
    for key, value in changes.items():
        section, field = key.split("__")
        recipe[section] = value if field == "" else {**recipe[section], field: value}
    (dest / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    return dest


def test_bundle_refuses_peqa_and_runs_of_different_bases(bundled, tmp_path):
    from adapt import bundle

    _, runs = bundled
    peqa = _edited_copy(runs["qa"], tmp_path / "peqa", method__={"name": "peqa"})
    with pytest.raises(AdaptError, match="peqa rescales the NF4 weights"):
        bundle.run([runs["qa"].root, peqa], tmp_path / "b1", names=["a", "b"])
    other = _edited_copy(runs["qa"], tmp_path / "fp16", model__quantization="none")
    with pytest.raises(AdaptError, match="different bases"):
        bundle.run([runs["qa"].root, other], tmp_path / "b2", names=["a", "b"])
    with pytest.raises(AdaptError, match="names repeat"):
        bundle.run([runs["qa"].root, runs["moe"].root], tmp_path / "b3", names=["x", "x"])
    assert bundle.vllm_max_rank(9) == 16 and bundle.vllm_max_rank(320) == 320


def test_cli_bundle_of_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    from adapt.cli import main

    assert main(["bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err and not (tmp_path / "b").exists()
