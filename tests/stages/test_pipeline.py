"""Train -> eval -> merge on a tiny random Llama: the run directory contract, resume and merge equivalence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from adapt.checks import load_recipe
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "domains" / "healthcare" / "sample"


@pytest.fixture
def tiny_recipe(tmp_path, tiny_llama_dir) -> Path:
    body = {
        "name": "tiny-healthcare",
        "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir)},
        "method": {"name": "qlora", "rank": 4, "alpha": 8},
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 0.01, "max_seq_len": 96, "logging_steps": 1, "save_steps": 1},
        "eval": {"limit": 4},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture
def trained_run(tmp_path, tiny_recipe) -> RunDir:
    from adapt import train

    run_dir = train.run(load_recipe(tiny_recipe), tmp_path / "run")
    return RunDir(run_dir)


def test_train_writes_the_run_directory_contract(trained_run):
    run = trained_run
    assert (run.adapter / "adapter_config.json").is_file()
    assert (run.adapter / "adapter_model.safetensors").is_file()
    assert not list(run.adapter.glob("*.bin")), "safetensors only"
    metrics = json.loads(run.metrics.read_text())
    assert metrics["steps"] == 2
    assert metrics["train_tokens"] > 0 and metrics["tokens_per_s"] > 0
    assert metrics["peak_rss_mb"] > 0
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    log_lines = (run.logs / "train_log.csv").read_text().splitlines()
    assert log_lines[0].startswith("step,") and len(log_lines) >= 3
    assert list((run.logs / "tensorboard").iterdir())
    card = run.card.read_text()
    assert "## Intended use" in card and "PubMedQA" in card
    assert run.load_recipe().name == "tiny-healthcare"


def test_resume_continues_from_the_last_checkpoint(trained_run, tiny_recipe):
    from adapt import train

    recipe = load_recipe(tiny_recipe, ["train.max_steps=3"])
    train.run(recipe, trained_run.root, resume=True)
    metrics = json.loads(trained_run.metrics.read_text())
    assert metrics["resumed"] is True and metrics["steps"] == 3
    # only the one new step counts towards tokens/s, not the two already in the checkpoint
    assert 0 < metrics["train_tokens"] < metrics["log_history"][-1]["num_input_tokens_seen"]


def test_resume_from_a_checkpoint_with_a_damaged_loss_record_is_a_clean_error(trained_run, tiny_recipe):
    from adapt import train
    from adapt.training.checkpoints import LOSS_FILE, resume_point
    from adapt.errors import AdaptError

    (resume_point(trained_run.checkpoints) / LOSS_FILE).write_text("{not json")
    with pytest.raises(AdaptError, match=f"{LOSS_FILE}: damaged .*delete that checkpoint folder"):
        train.run(load_recipe(tiny_recipe, ["train.max_steps=3"]), trained_run.root, resume=True)


def test_resume_from_a_checkpoint_without_its_seconds_leaves_the_total_unknown(trained_run, tiny_recipe):
    """A checkpoint written before checkpoints kept their training seconds: the run resumes, and its total
    training time is unknown (null) rather than only the resumed process's."""
    from adapt import train
    from adapt.training.checkpoints import LOSS_FILE, resume_point

    checkpoint = resume_point(trained_run.checkpoints)
    steps = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    (checkpoint / LOSS_FILE).write_text(json.dumps({"loss_sum": 1.0, "steps": steps}))
    train.run(load_recipe(tiny_recipe, [f"train.max_steps={steps + 1}"]), trained_run.root, resume=True)
    metrics = json.loads(trained_run.metrics.read_text())
    assert metrics["steps"] == steps + 1 and metrics["train_runtime_s"] > 0
    assert metrics["train_runtime_total_s"] is None


def test_resume_refuses_a_different_method(trained_run, tiny_recipe):
    from adapt import train
    from adapt.errors import AdaptError

    with pytest.raises(AdaptError, match="method section differs"):
        train.run(load_recipe(tiny_recipe, ["method.rank=8"]), trained_run.root, resume=True)


def test_eval_scores_base_and_adapter_on_the_same_examples(trained_run):
    from adapt import eval as evaluate

    result = evaluate.run(trained_run.root)
    assert set(result["variants"]) == {"base", "adapter"}
    for row in result["variants"].values():
        metrics = row["metrics"]
        assert metrics["n"] == 4
        assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
        assert sum(metrics["label_counts"].values()) == 4
        assert metrics["perplexity_n"] == 4 and 1.0 < metrics["perplexity"] < float("inf")  # prompt + gold label text
    assert "perplexity" in result["headline_metrics"]
    assert result["variants"]["adapter"]["retention"] == 1.0
    assert json.loads(trained_run.eval.read_text())["n"] == 4
    assert "| adapter |" in evaluate.summary_table(result)

    # Rows are merged and judged at write time: a 4-bit export scored earlier that lost 10% gets a warning.
    stored = json.loads(trained_run.eval.read_text())
    stored["variants"] = {"adapter": {"metrics": {"macro_f1": 0.5}}, "export/gguf-q4_0": {"metrics": {"macro_f1": 0.45}}}
    trained_run.eval.write_text(json.dumps(stored))
    trained_run.export("gguf-q4_0").mkdir(parents=True)
    result = evaluate.run(trained_run.root, only=[])
    warning = result["variants"]["export/gguf-q4_0"]["warning"]
    assert "retention 0.900" in warning and f"adapt quantize {trained_run.root} --format nf4-lora" in warning
    assert f"warning: {warning}" in evaluate.summary_table(result)
    assert "warning" not in result["variants"]["adapter"]


def _logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("Context: a randomized trial of 120 patients. Question: is it effective?", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits.float()


def test_merge_into_dequantized_nf4_reproduces_the_adapter(trained_run):
    from transformers import AutoModelForCausalLM

    from adapt import merge, models
    from adapt import methods

    recipe = trained_run.load_recipe()
    written = merge.run(trained_run.root)
    assert {p.name for p in written} == {"nf4_dequant", "fp16"}
    base, tokenizer = models.load_base(recipe.model)
    adapted = methods.get("qlora").load(base, trained_run.adapter)
    reference = _logits(adapted, tokenizer)
    merged = AutoModelForCausalLM.from_pretrained(trained_run.merged("nf4_dequant"), dtype=torch.bfloat16)
    fp16 = AutoModelForCausalLM.from_pretrained(trained_run.merged("fp16"), dtype=torch.bfloat16)
    err_dequant = (_logits(merged, tokenizer) - reference).abs().max().item()
    err_fp16 = (_logits(fp16, tokenizer) - reference).abs().max().item()
    scale = reference.abs().max().item()
    # The NF4-dequantized merge is what was trained (bf16 rounding only); the 16-bit merge differs by the NF4 error.
    assert err_dequant < 0.02 * scale
    assert err_dequant < err_fp16
    assert not list(trained_run.merged("fp16").glob("*.bin"))


def test_adapt_run_chains_every_stage_and_prints_one_table(tmp_path, tiny_recipe):
    from adapt.pipeline import run_all

    recipe = load_recipe(
        tiny_recipe,
        ["train.max_steps=1", "export.merge=[nf4_dequant]", "export.quantize_from=nf4_dequant", "eval.limit=2",
         "export.formats=[nf4, nf4-calibrated]", "export.calibration_examples=4"],
    )  # fmt: skip
    table = run_all(recipe, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    result = json.loads(run.eval.read_text())
    assert set(result["variants"]) == {"base", "adapter", "merged/nf4_dequant", "export/nf4", "export/nf4-calibrated"}
    assert result["variants"]["export/nf4"]["size_bytes"] > 0
    assert all(row["metrics"]["perplexity"] > 1.0 for row in result["variants"].values())
    assert "| export/nf4 |" in table and "| export/nf4-calibrated |" in table and "stages: train" in table
