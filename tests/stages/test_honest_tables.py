"""Issue 16, item 5: the recipe's primary metric ranks eval.json, a base row gets no retention, the NER base row says
it is the lexicon baseline, and an export that predicts like the base gets a warning whatever its bit width."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from adapt.recipe import Recipe
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]


SAMPLE = REPO / "domains" / "healthcare" / "sample"


def row(predictions: list[str], **metrics) -> dict:
    return {"metrics": {"predictions": predictions, **metrics}, "load_time_s": 1.0, "size_bytes": 10}


def rescore(tmp_path: Path, rows: dict, primary: str | None = None) -> dict:
    """eval.json rows scored earlier on the same examples, judged again by `adapt eval` (nothing is re-scored)."""
    from adapt import eval as evaluate

    body = yaml.safe_load((REPO / "recipes" / "healthcare-qlora.yaml").read_text())
    body["data"]["path"] = str(SAMPLE)
    body["eval"] |= {"limit": 4, "primary_metric": primary}
    run = RunDir(tmp_path / "run")
    run.root.mkdir(parents=True)
    (run.root / "recipe.resolved.yaml").write_text(Recipe.model_validate(body).to_yaml())
    run.eval.write_text(json.dumps({"split": "test", "n": 4, "variants": rows}))
    return evaluate.run(run.root, only=[])


def test_retention_and_ranking_use_the_recipes_primary_metric(tmp_path):
    from adapt.eval import summary_table

    base = ["no", "no", "no", "no"]
    adapter = ["yes", "no", "yes", "no"]
    scored = {
        "base": row(base, balanced_accuracy=0.5, macro_f1=0.33, accuracy=0.5),
        "adapter": row(adapter, balanced_accuracy=0.8, macro_f1=0.4, accuracy=0.75),
        "merged/nf4_dequant": row(adapter, balanced_accuracy=0.8, macro_f1=0.4, accuracy=0.75),
        "export/gguf-q8_0": row(["no", "no", "yes", "no"], balanced_accuracy=0.6, macro_f1=0.3, accuracy=0.5),
    }
    result = rescore(tmp_path, scored, primary="balanced_accuracy")
    assert result["primary_metric"] == "balanced_accuracy" and result["headline_metrics"][0] == "balanced_accuracy"
    rows = result["variants"]
    assert rows["base"]["retention"] is None and rows["base"]["agreement_base"] is None and "warning" not in rows["base"]
    assert rows["base"]["agreement"] == 0.5  # the base's own figure stays: what "predicts like the base" means
    assert rows["export/gguf-q8_0"]["retention"] == 0.75  # balanced accuracy 0.6 / 0.8, not macro-F1 0.3 / 0.4
    # q8_0 agrees with the base on 3 of 4, with the adapter on 3 of 4: not more like the base, no warning
    assert rows["export/gguf-q8_0"]["agreement_base"] == 0.75 and "warning" not in rows["export/gguf-q8_0"]
    assert rows["merged/nf4_dequant"]["agreement"] == 1.0 and "warning" not in rows["merged/nf4_dequant"]
    assert "| agreement with base |" in summary_table(result)
    assert rescore(tmp_path / "default", scored)["variants"]["export/gguf-q8_0"]["retention"] == 0.75  # macro-F1 0.3 / 0.4


def test_an_export_that_predicts_like_the_base_is_warned_whatever_its_bit_width(tmp_path):
    scored = {
        "base": row(["yes"] * 4, macro_f1=0.2),
        "adapter": row(["yes", "no", "maybe", "no"], macro_f1=0.5),
        "export/gguf-q8_0": row(["yes", "yes", "yes", "no"], macro_f1=0.45),  # 3/4 with the base, 2/4 with the adapter
    }
    rows = rescore(tmp_path, scored)["variants"]
    q8 = rows["export/gguf-q8_0"]
    assert q8["agreement"] == 0.5 and q8["agreement_base"] == 0.75
    assert "export/gguf-q8_0 predicts like the base, not the adapter (agreement with the base 0.750 > with the adapter 0.500)" in q8["warning"]
    assert "warning" not in rows["adapter"]  # the adapter is the reference, never "like the base" by this rule


def test_the_lexicon_baseline_row_says_so_and_gets_no_retention(tmp_path):
    """The NER base row (adapt.tasks.token_classification._baseline_row) is a lexicon, not a model: tables say so."""
    from adapt.eval import summary_table
    from adapt.tasks.token_classification import BASE_NOTE

    scored = {
        "base": {"metrics": {"macro_f1": 0.43, "lexicon_spans": 100, "note": BASE_NOTE}, "size_bytes": None},
        "adapter": {"metrics": {"macro_f1": 0.5}, "size_bytes": 10},
    }
    result = rescore(tmp_path, scored)
    base = result["variants"]["base"]
    assert base["retention"] is None and base["label"] == "lexicon baseline, not a neural model"
    assert "| base (lexicon baseline, not a neural model) | 0.4300 |" in summary_table(result)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "| base (lexicon baseline, not a neural model) |" in card and "Primary metric: macro_f1 on the test split (4 examples)" in card
