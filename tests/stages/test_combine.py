"""`adapt merge RUN_A RUN_B --combine ...`: peft's add_weighted_adapter over tiny runs, errors, per-domain eval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from demo_fixtures import build_causal_run

from adapt.cli import main
from adapt.combine_recipe import CombineRecipe, load_combine_recipe
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]
PROMPT = "Context: a randomized trial of 120 patients. Question: is it effective? Licensee shall not assign."


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir) -> tuple[Path, Path]:
    """Two tiny QLoRA runs (healthcare, legal) with random adapters on one NF4 base."""
    folder = tmp_path_factory.mktemp("runs")
    return build_causal_run(folder / "healthcare", tiny_llama_dir, "healthcare", seed=1), build_causal_run(folder / "legal", tiny_llama_dir, "legal", seed=2)


def _logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(PROMPT, return_tensors="pt")).logits.float()


def _load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)


def _base(run: Path, target: str):
    from adapt.models.dequantized_base import base_for

    return base_for(RunDir(run).load_recipe(), target)


def _peft_reference(runs, target: str, weights: list[float], combination_type: str, density: float | None):
    """What peft itself gives: both adapters on the same base, add_weighted_adapter, merge_and_unload."""
    from peft import PeftModel

    base, tokenizer = _base(runs[0], target)
    model = PeftModel.from_pretrained(base, str(runs[0] / "adapter"), adapter_name="a")
    model.load_adapter(str(runs[1] / "adapter"), adapter_name="b")
    model.add_weighted_adapter(["a", "b"], weights, "ab", combination_type=combination_type, density=density)
    return model.merge_and_unload(adapter_names=["ab"]), tokenizer


def _combine(runs, out: Path, **fields) -> Path:
    from adapt import combine

    return combine.run(CombineRecipe(runs=[str(r) for r in runs], out=str(out), **fields))


@pytest.mark.parametrize(("combination_type", "density", "target"), [("linear", None, "nf4_dequant"), ("ties", 0.5, "fp16")])
def test_combined_model_equals_peft_add_weighted_adapter(tmp_path, runs, combination_type, density, target):
    out = _combine(runs, tmp_path / "out", combination_type=combination_type, weights=[0.7, 0.5], density=density, target=target)
    reference, tokenizer = _peft_reference(runs, target, [0.7, 0.5], combination_type, density)
    expected = _logits(reference, tokenizer)
    got = _logits(_load(out), tokenizer)
    assert (got - expected).abs().max().item() <= 0.02 * expected.abs().max().item()  # bf16 rounding only
    assert (got - _logits(_base(runs[0], target)[0], tokenizer)).abs().max().item() > 0.1  # the adapters did something
    manifest = json.loads((out / "combine.json").read_text())
    assert manifest["combination_type"] == combination_type and manifest["weights"] == [0.7, 0.5]
    assert manifest["density"] == density and manifest["target"] == target and manifest["seconds"] > 0
    assert [s["domain"] for s in manifest["sources"]] == ["healthcare", "legal"]
    assert not list(out.glob("*.bin")) and (out / "tokenizer.json").is_file()


def test_cat_is_the_exact_weighted_sum_of_the_single_merges(tmp_path, runs):
    from peft import PeftModel

    out = _combine(runs, tmp_path / "cat", combination_type="cat", weights=[1.0, 0.5], target="fp16")
    base = _base(runs[0], "fp16")[0].state_dict()
    singles = [PeftModel.from_pretrained(_base(r, "fp16")[0], str(r / "adapter")).merge_and_unload().state_dict() for r in runs]
    combined = _load(out).state_dict()
    for name in (n for n in base if n.endswith("proj.weight")):
        w0 = base[name].float()
        expected = w0 + 1.0 * (singles[0][name].float() - w0) + 0.5 * (singles[1][name].float() - w0)
        assert (combined[name].float() - expected).abs().max() <= 0.02 * expected.abs().max(), name


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _variant_run(runs, tmp_path: Path, **recipe_changes) -> Path:
    """A copy of the legal run whose recipe differs (another base, another method)."""
    copy = tmp_path / "legal-variant"
    shutil.copytree(runs[1], copy)
    recipe = yaml.safe_load((copy / "recipe.resolved.yaml").read_text())
    for section, change in recipe_changes.items():
        recipe[section] = {**recipe[section], **change} if section == "model" else change
    (copy / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    return copy


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model": {"quantization": "none"}}, "trained on another base than"),
        ({"method": {"name": "peqa"}}, "has no LoRA to combine"),
    ],
)
def test_run_that_cannot_combine_exits_2_naming_the_run(tmp_path, capsys, runs, change, expected):
    other = _variant_run(runs, tmp_path, **change)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "merge", str(runs[0]), str(other), "--combine", "cat", "--weights", "1,1", "--out", str(out))
    assert code == 2 and expected in err and str(other) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--combine", "linear", "--weights", "0.5,0.3,0.2"], "weights: 3 values for 2 runs"),
        (["--weights", "1,1"], "--combine: combining several runs needs them"),
        (["--combine", "ties", "--weights", "1,1"], "density: ties prunes"),
        (["--combine", "cat", "--weights", "1,1", "--density", "0.5"], "density: only ties and dare_ties"),
        (["--combine", "cat", "--weights", "1,1", "--target", "fp16", "--target", "nf4_dequant"], "pass one --target"),
    ],
)
def test_bad_combination_exits_2_with_one_line(tmp_path, capsys, runs, flags, expected):
    code, _, err = _cli(capsys, "merge", str(runs[0]), str(runs[1]), *flags, "--out", str(tmp_path / "out"))
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_one_run_still_merges_alone_and_refuses_combine_flags(capsys, runs):
    code, _, err = _cli(capsys, "merge", str(runs[0]), "--weights", "1")
    assert code == 2 and "--weights: only for combining several runs" in err
    code, out, _ = _cli(capsys, "merge", str(runs[0]), "--target", "fp16")
    assert code == 0 and (runs[0] / "merged" / "fp16" / "config.json").is_file()


def test_out_that_is_not_a_combined_model_is_never_replaced(capsys, runs):
    folder = runs[0].parent
    code, _, err = _cli(capsys, "merge", str(runs[0]), str(runs[1]), "--combine", "cat", "--weights", "1,1", "--out", str(folder))
    assert code == 2 and "is not a combined model" in err
    assert (runs[0] / "adapter" / "adapter_config.json").is_file()


def test_moe_lora_combines_through_its_collapse_and_unequal_ranks_need_cat(tmp_path, capsys, runs, tiny_llama_dir):
    moe = build_causal_run(tmp_path / "healthcare-moe", tiny_llama_dir, "healthcare", "moe_lora", seed=3)
    code, _, err = _cli(capsys, "merge", str(moe), str(runs[1]), "--combine", "linear", "--weights", "0.5,0.5", "--out", str(tmp_path / "lin"))
    assert code == 2 and "needs equal LoRA ranks" in err and "--combine cat" in err
    code, out, _ = _cli(capsys, "merge", str(moe), str(runs[1]), "--combine", "cat", "--weights", "1,1", "--out", str(tmp_path / "cat"))
    assert code == 0 and "adapt eval" in out
    assert json.loads((tmp_path / "cat" / "combine.json").read_text())["sources"][0]["lora"].endswith("collapsed")


def test_combine_recipe_then_eval_scores_every_source_domain(tmp_path, capsys, runs):
    recipe = tmp_path / "combine.yaml"
    body = {"runs": [str(r) for r in runs], "combination_type": "dare_ties", "weights": [1.0, 1.0], "density": 0.7, "out": str(tmp_path / "both")}
    recipe.write_text(yaml.safe_dump(body))
    code, out, err = _cli(capsys, "merge", "--combine-recipe", str(recipe))
    assert code == 0, err
    code, table, err = _cli(capsys, "eval", str(tmp_path / "both"), "--limit", "3")
    assert code == 0, err
    result = json.loads((tmp_path / "both" / "eval.json").read_text())
    assert [row["domain"] for row in result["rows"]] == ["healthcare", "legal"]
    for row in result["rows"]:
        assert row["n"] == 3 and row["primary_metric"] == "macro_f1" and row["single_from"] == "scored"
        assert row["retention"] == (round(row["combined"] / row["single"], 4) if row["single"] else None)
        assert set(row["metrics"]) == {"combined", "single"}
        assert f"| {row['run']} | {row['domain']} | macro_f1 | 3 |" in table
    assert result["combine"]["combination_type"] == "dare_ties" and "dare_ties of 2 adapters" in table


def test_each_domain_is_ranked_by_its_own_recipes_primary_metric(tmp_path, capsys, runs):
    legal = tmp_path / "legal"
    shutil.copytree(runs[1], legal)
    resolved = yaml.safe_load((legal / "recipe.resolved.yaml").read_text())
    resolved["eval"]["primary_metric"] = "balanced_accuracy"  # as recipes/legal-qlora.yaml says
    (legal / "recipe.resolved.yaml").write_text(yaml.safe_dump(resolved))
    out = tmp_path / "both"
    code, _, err = _cli(capsys, "merge", str(runs[0]), str(legal), "--combine", "cat", "--weights", "1,1", "--out", str(out))
    assert code == 0, err
    code, table, err = _cli(capsys, "eval", str(out), "--limit", "3")
    assert code == 0, err
    rows = json.loads((out / "eval.json").read_text())["rows"]
    assert [row["primary_metric"] for row in rows] == ["macro_f1", "balanced_accuracy"]
    assert rows[1]["combined"] == rows[1]["metrics"]["combined"]["balanced_accuracy"]
    assert rows[1]["single"] == rows[1]["metrics"]["single"]["balanced_accuracy"]
    assert "| legal | balanced_accuracy | 3 |" in table


def test_combine_recipe_is_strict_and_the_shipped_one_parses(tmp_path, capsys):
    shipped = load_combine_recipe(REPO / "recipes" / "combine-healthcare-legal.yaml")
    assert shipped.runs == ["runs/healthcare-qlora", "runs/legal-qlora"] and len(shipped.weights) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"runs": ["a", "b"], "combination_type": "svd", "weights": [1, 1], "out": "x", "surprise": 1}))
    code, _, err = _cli(capsys, "merge", "--combine-recipe", str(bad))
    assert code == 2 and "surprise: unknown key" in err and "combination_type" in err and "Traceback" not in err
    code, out, _ = _cli(capsys, "validate", str(REPO / "recipes" / "combine-healthcare-legal.yaml"), str(REPO / "recipes" / "quickstart.yaml"))
    assert code == 0 and out.count(": ok") == 2
    assert _cli(capsys, "validate", str(bad))[0] == 2
